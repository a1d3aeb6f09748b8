//! Cross-process locks on shipit's outputs. Every command that writes (package, publish to a
//! layout, release, the verification cache) holds an exclusive `flock` on `.shipit.lock` inside
//! each directory it writes: the output dir (`dist/`: package.json, release.json, cache/) and
//! each OCI layout (`dist/oci`, an `oci:` publish target). A second run waits, saying so
//! ("waiting for another shipit run on dist/oci (pid N)"), up to a bound
//! (`SHIPIT_LOCK_WAIT` seconds, default 600), then fails. Every read-modify-write of a layout's
//! `index.json` also holds `.shipit-index.lock` for its few milliseconds, whoever the writer is
//! (a package run, a base pulled into the cache, a publish), so no tag is ever lost.
//!
//! A lock is released when its value drops (or the process dies: the kernel drops flocks with
//! the file). The lock files themselves stay, empty; while held they name the holder's pid.

use crate::exec::{Cancel, Cancelled};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file a run holds in each directory it writes.
pub const RUN_LOCK: &str = ".shipit.lock";
/// The lock file held around each read-modify-write of a layout's `index.json`.
pub const INDEX_LOCK: &str = ".shipit-index.lock";
/// How long a run waits for another one by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(50);

/// A held lock: released when dropped.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl Drop for DirLock {
    /// Empties the file before the lock goes (with the file's close): a finished run leaves no
    /// pid behind, and a layout's bytes do not depend on who wrote it.
    fn drop(&mut self) {
        self.file.set_len(0).ok();
    }
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another shipit run{} has held {} for {}s (the wait limit, SHIPIT_LOCK_WAIT); nothing was written: wait for it to finish, or stop it",
        holder_text(*.holder), .dir.display(), .waited.as_secs()
    )]
    Busy {
        dir: PathBuf,
        holder: Option<u32>,
        waited: Duration,
    },
    #[error("lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

fn holder_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// The wait bound: `SHIPIT_LOCK_WAIT` (seconds), else [`DEFAULT_WAIT`].
pub fn wait_bound() -> Duration {
    std::env::var("SHIPIT_LOCK_WAIT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_WAIT)
}

/// Takes the exclusive lock `name` in `dir` (created if needed). While another process holds
/// it, calls `on_wait` once with "waiting for another shipit run on DIR (pid N)", then retries
/// until `bound` has passed (`Busy`) or `cancel` fires (`Cancelled`).
pub fn acquire(
    dir: &Path,
    name: &str,
    bound: Duration,
    cancel: &Cancel,
    on_wait: &dyn Fn(&str),
) -> Result<DirLock, LockError> {
    std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io)?;
    let started = Instant::now();
    let mut said = false;
    loop {
        // SAFETY: flock on a file descriptor we own; it only changes lock state.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => return Err(io(err)),
        }
        let holder = holder_pid(&mut file);
        if !said {
            on_wait(&format!(
                "waiting for another shipit run on {}{}",
                dir.display(),
                holder_text(holder)
            ));
            said = true;
        }
        if started.elapsed() >= bound {
            return Err(LockError::Busy {
                dir: dir.to_path_buf(),
                holder,
                waited: started.elapsed(),
            });
        }
        cancel.sleep(POLL)?;
    }
    // Best effort: the pid only feeds the message a waiting run prints.
    file.set_len(0).ok();
    file.rewind().ok();
    write!(file, "{}", std::process::id()).ok();
    Ok(DirLock { file, path })
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_second_holder_waits_says_who_and_gives_up_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), RUN_LOCK, DEFAULT_WAIT, &Cancel::new(), &|_| {}).unwrap();
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap(),
            std::process::id().to_string()
        );
        // flock conflicts between two open files even in one process.
        let said = RefCell::new(Vec::new());
        let t = Instant::now();
        let err = acquire(
            dir.path(),
            RUN_LOCK,
            Duration::from_millis(200),
            &Cancel::new(),
            &|m| said.borrow_mut().push(m.to_string()),
        )
        .unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(200));
        let pid = std::process::id();
        assert_eq!(
            *said.borrow(),
            [format!(
                "waiting for another shipit run on {} (pid {pid})",
                dir.path().display()
            )]
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("(pid {pid})")) && msg.contains("SHIPIT_LOCK_WAIT"),
            "{msg}"
        );
        // A cancelled wait stops at once.
        let cancel = Cancel::new();
        cancel.cancel(libc::SIGTERM);
        assert!(matches!(
            acquire(dir.path(), RUN_LOCK, DEFAULT_WAIT, &cancel, &|_| {}),
            Err(LockError::Cancelled(_))
        ));
        // Released on drop; another name is another lock. (A moment's wait: a process another
        // test forks at the same time holds a copy of the descriptor until it execs.)
        let moment = Duration::from_secs(5);
        acquire(dir.path(), INDEX_LOCK, moment, &Cancel::new(), &|_| {}).unwrap();
        let path = first.path().to_path_buf();
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        acquire(dir.path(), RUN_LOCK, moment, &Cancel::new(), &|_| {}).unwrap();
    }
}
