//! The one place shipit runs processes. A command is data first (`Cmd`: program, args, env,
//! cwd, purpose), printed shell-quoted for `-v` and `--dry-run`; it runs through duct in its own
//! process group with a timeout and its output in a log file. SIGINT/SIGTERM/SIGHUP to shipit
//! terminate every live group (TERM, then KILL after a grace period), so no compiler, linker or
//! emulated program outlives a cancelled run; `main` then exits 130/143.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A command as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Variables set for the child (on top of the inherited environment unless `clear_env`).
    pub env: BTreeMap<String, String>,
    /// Variables removed from the inherited environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_remove: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
    /// Why shipit runs it, for logs and errors ("build linux/arm64 (gnu)").
    pub purpose: String,
    /// Run it confined to an unpacked image (verification), see [`Sandbox`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
}

/// How a verification run is confined: chrooted into the image's rootfs, as the image's user,
/// optionally in a network namespace of its own (so servers of parallel checks never collide
/// and the guest cannot reach the host's network), killed if shipit dies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    pub root: PathBuf,
    /// Real root: chroot + setgid/setuid to the image user. Otherwise a user namespace maps the
    /// caller to root inside, and the chroot happens there.
    pub as_root: bool,
    pub uid: u32,
    pub gid: u32,
    pub new_netns: bool,
    pub workdir: String,
}

impl Cmd {
    pub fn new(program: impl Into<String>, purpose: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_remove: Vec::new(),
            clear_env: false,
            cwd: None,
            purpose: purpose.into(),
            sandbox: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Cmd {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }

    /// The command as one shell line, `cd DIR && VAR=value program args`, quoted so that it can
    /// be pasted into a shell.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dir) = &self.cwd {
            parts.push(format!("cd {} &&", quote(&dir.display().to_string())));
        }
        for (k, v) in &self.env {
            parts.push(format!("{k}={}", quote(v)));
        }
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        parts.join(" ")
    }

    fn duct(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args);
        if self.clear_env {
            e = e.full_env(self.env.iter());
        } else {
            for k in &self.env_remove {
                e = e.env_remove(k);
            }
            for (k, v) in &self.env {
                e = e.env(k, v);
            }
        }
        if let Some(dir) = &self.cwd {
            e = e.dir(dir);
        }
        let sandbox = self.sandbox.as_ref().map(sandbox::Prepared::new);
        e.stdin_null().unchecked().before_spawn(move |c| {
            c.process_group(0);
            if let Some(prepared) = &sandbox {
                let prepared = prepared
                    .as_ref()
                    .map_err(|e| io::Error::new(e.kind(), e.to_string()))?
                    .clone();
                // SAFETY: the closure only makes raw system calls on data prepared before the
                // fork (no allocation, no locks), as pre_exec requires.
                unsafe {
                    c.pre_exec(move || prepared.enter());
                }
            }
            Ok(())
        })
    }
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| format!("{s:?}"))
}

/// How a run ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{purpose}: cannot start `{program}`: {source}")]
    Spawn {
        purpose: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{purpose}: `{command}` exited with status {status}{}", log_hint(log))]
    Failed {
        purpose: String,
        command: String,
        status: String,
        log: Option<PathBuf>,
        /// The last lines of output.
        tail: String,
    },
    #[error("{purpose}: `{command}` timed out after {}s; its process group was killed", timeout.as_secs())]
    Timeout {
        purpose: String,
        command: String,
        timeout: Duration,
        tail: String,
    },
    #[error("{purpose}: stopped because another target failed")]
    Stopped { purpose: String },
    #[error("{purpose}: cancelled by {}", signal_name(*signal))]
    Cancelled { purpose: String, signal: i32 },
    #[error("{purpose}: {source}")]
    Io {
        purpose: String,
        #[source]
        source: io::Error,
    },
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(p) => format!(" (full log: {})", p.display()),
        None => String::new(),
    }
}

impl ExecError {
    /// The output tail to show under the error, if any.
    pub fn tail(&self) -> Option<&str> {
        match self {
            ExecError::Failed { tail, .. } | ExecError::Timeout { tail, .. }
                if !tail.is_empty() =>
            {
                Some(tail)
            }
            _ => None,
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        _ => "a signal",
    }
}

// ---- cancellation ------------------------------------------------------------------------

/// The signal that cancelled this run (0 while not cancelled).
static CANCELLED: AtomicI32 = AtomicI32::new(0);
/// Process groups of live children, killed on cancellation.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

/// How long a process group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

/// Installs the SIGINT/SIGTERM/SIGHUP handlers (once). A first signal cancels the run: every
/// live process group gets SIGTERM, then SIGKILL after [`GRACE`]. A second signal kills them at
/// once.
pub fn install_signal_handlers() {
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::iterator::Signals;
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            for sig in signals.forever() {
                let first = CANCELLED
                    .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if first {
                    signal_groups(libc::SIGTERM);
                    std::thread::spawn(|| {
                        std::thread::sleep(GRACE);
                        signal_groups(libc::SIGKILL);
                    });
                } else {
                    signal_groups(libc::SIGKILL);
                }
            }
        });
    });
}

/// The signal that cancelled the run, if any.
pub fn cancelled() -> Option<i32> {
    match CANCELLED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// A flag that turns true when the run is cancelled, for code that polls (the registry client).
pub fn cancel_flag() -> std::sync::Arc<AtomicBool> {
    static FLAG: OnceLock<std::sync::Arc<AtomicBool>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let f = std::sync::Arc::new(AtomicBool::new(false));
        let watcher = f.clone();
        std::thread::spawn(move || {
            while cancelled().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            watcher.store(true, Ordering::SeqCst);
        });
        f
    });
    flag.clone()
}

/// Marks the run cancelled (used by tests and by stages that give up).
pub fn cancel(sig: i32) {
    let _ = CANCELLED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    signal_groups(libc::SIGTERM);
}

fn signal_groups(sig: i32) {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        // SAFETY: killpg only sends a signal; a stale pgid yields ESRCH, which is harmless.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

struct GroupGuard(i32);

impl GroupGuard {
    fn register(pgid: i32) -> GroupGuard {
        if let Ok(mut g) = GROUPS.lock() {
            g.push(pgid);
        }
        GroupGuard(pgid)
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // Whatever is left of the group (grandchildren) dies with it.
        // SAFETY: see signal_groups.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
        if let Ok(mut g) = GROUPS.lock() {
            g.retain(|p| *p != self.0);
        }
    }
}

// ---- running -----------------------------------------------------------------------------

/// What a finished command gave back.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub duration: Duration,
}

/// Runs `cmd` in its own process group, appending stdout and stderr to `log` (created with its
/// parent directories), killing the group on timeout or cancellation. A non-zero exit is an
/// error carrying the last 30 log lines.
pub fn run_logged(cmd: &Cmd, log: &Path, timeout: Option<Duration>) -> Result<Finished, ExecError> {
    run_logged_until(cmd, log, timeout, None)
}

/// Like [`run_logged`], and also stops (TERM, grace, KILL) when `stop` becomes true.
pub fn run_logged_until(
    cmd: &Cmd,
    log: &Path,
    timeout: Option<Duration>,
    stop: Option<&AtomicBool>,
) -> Result<Finished, ExecError> {
    let io_err = |source| ExecError::Io {
        purpose: cmd.purpose.clone(),
        source,
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err)?;
    let start_offset = file.metadata().map(|m| m.len()).unwrap_or(0);
    use std::io::Write;
    writeln!(&file, "$ {}", cmd.display()).map_err(io_err)?;
    let err_file = file.try_clone().map_err(io_err)?;
    let expr = cmd.duct().stdout_file(file).stderr_file(err_file);
    let finished = wait(cmd, expr, timeout, stop);
    let tail = || read_tail(log, start_offset, 30);
    match finished {
        Ok(f) if f.status.success() => Ok(f),
        Ok(f) => Err(ExecError::Failed {
            purpose: cmd.purpose.clone(),
            command: cmd.display(),
            status: describe_status(&f.status),
            log: Some(log.to_path_buf()),
            tail: tail(),
        }),
        Err(ExecError::Timeout {
            purpose,
            command,
            timeout,
            ..
        }) => Err(ExecError::Timeout {
            purpose,
            command,
            timeout,
            tail: tail(),
        }),
        Err(e) => Err(e),
    }
}

/// A process started in the background, in its own process group (killed when dropped).
pub struct Running {
    handle: duct::Handle,
    pub pid: i32,
    started: Instant,
    _guard: GroupGuard,
}

impl Running {
    /// Starts `cmd` with stdout and stderr going to the given files.
    pub fn start(cmd: &Cmd, stdout: File, stderr: File) -> Result<Running, ExecError> {
        if let Some(sig) = cancelled() {
            return Err(ExecError::Cancelled {
                purpose: cmd.purpose.clone(),
                signal: sig,
            });
        }
        let handle = cmd
            .duct()
            .stdout_file(stdout)
            .stderr_file(stderr)
            .start()
            .map_err(|source| ExecError::Spawn {
                purpose: cmd.purpose.clone(),
                program: cmd.program.clone(),
                source,
            })?;
        let pid = handle.pids().first().copied().unwrap_or(0) as i32;
        Ok(Running {
            handle,
            pid,
            started: Instant::now(),
            _guard: GroupGuard::register(pid),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exit status if it has ended.
    pub fn try_wait(&self) -> Option<std::process::ExitStatus> {
        self.handle.try_wait().ok().flatten().map(|o| o.status)
    }

    /// Waits up to `d`; None if it is still running.
    pub fn wait_for(&self, d: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + d;
        let mut poll = Duration::from_millis(2);
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline || cancelled().is_some() {
                return None;
            }
            std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
            poll = (poll * 2).min(Duration::from_millis(25));
        }
    }

    /// Sends `sig` to the process itself (qemu-user forwards it to the guest).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.pid, sig);
        }
    }

    /// TERM the whole group, grace period, KILL, reap.
    pub fn terminate(&self) {
        terminate_group(self.pid, &self.handle);
    }
}

/// Runs `cmd` and returns its stdout (stderr is kept for the error), with a timeout. For short
/// probes (`--version`, `cargo metadata`, `git`).
pub fn capture(cmd: &Cmd, timeout: Duration) -> Result<String, ExecError> {
    let out = tempfile::tempfile().map_err(|source| ExecError::Io {
        purpose: cmd.purpose.clone(),
        source,
    })?;
    let err = tempfile::tempfile().map_err(|source| ExecError::Io {
        purpose: cmd.purpose.clone(),
        source,
    })?;
    let read_all = |mut f: &File| {
        let mut s = String::new();
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut s);
        s
    };
    let expr = cmd
        .duct()
        .stdout_file(out.try_clone().map_err(|source| ExecError::Io {
            purpose: cmd.purpose.clone(),
            source,
        })?)
        .stderr_file(err.try_clone().map_err(|source| ExecError::Io {
            purpose: cmd.purpose.clone(),
            source,
        })?);
    let f = wait(cmd, expr, Some(timeout), None)?;
    if f.status.success() {
        Ok(read_all(&out))
    } else {
        let stderr = read_all(&err);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        Err(ExecError::Failed {
            purpose: cmd.purpose.clone(),
            command: cmd.display(),
            status: describe_status(&f.status),
            log: None,
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }
}

fn wait(
    cmd: &Cmd,
    expr: duct::Expression,
    timeout: Option<Duration>,
    stop: Option<&AtomicBool>,
) -> Result<Finished, ExecError> {
    if let Some(sig) = cancelled() {
        return Err(ExecError::Cancelled {
            purpose: cmd.purpose.clone(),
            signal: sig,
        });
    }
    let start = Instant::now();
    let handle = expr.start().map_err(|source| ExecError::Spawn {
        purpose: cmd.purpose.clone(),
        program: cmd.program.clone(),
        source,
    })?;
    let pid = handle.pids().first().copied().unwrap_or(0) as i32;
    let guard = GroupGuard::register(pid);
    let mut poll = Duration::from_millis(5);
    loop {
        match handle.try_wait() {
            Ok(Some(out)) => {
                let status = out.status;
                drop(guard);
                if let Some(sig) = cancelled() {
                    return Err(ExecError::Cancelled {
                        purpose: cmd.purpose.clone(),
                        signal: sig,
                    });
                }
                return Ok(Finished {
                    status,
                    duration: start.elapsed(),
                });
            }
            Ok(None) => {}
            Err(source) => {
                return Err(ExecError::Io {
                    purpose: cmd.purpose.clone(),
                    source,
                });
            }
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            terminate_group(pid, &handle);
            drop(guard);
            return Err(ExecError::Stopped {
                purpose: cmd.purpose.clone(),
            });
        }
        if let Some(t) = timeout
            && start.elapsed() > t
        {
            terminate_group(pid, &handle);
            drop(guard);
            return Err(ExecError::Timeout {
                purpose: cmd.purpose.clone(),
                command: cmd.display(),
                timeout: t,
                tail: String::new(),
            });
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(50));
    }
}

/// TERM the group, give it the grace period, then KILL it; reap the child.
fn terminate_group(pgid: i32, handle: &duct::Handle) {
    // SAFETY: killpg only sends signals.
    unsafe {
        libc::killpg(pgid, libc::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = handle.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = handle.wait();
}

pub fn describe_status(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("killed by {} ({sig})", signal_name(sig)),
        _ => "unknown".into(),
    }
}

fn read_tail(path: &Path, from: u64, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(64 * 1024));
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_shell_quoted() {
        let c = Cmd::new("cargo", "build")
            .args(["build", "--features", "a b"])
            .env("RUSTFLAGS", "-C link-self-contained=no")
            .cwd("/tmp/x y");
        assert_eq!(
            c.display(),
            "cd '/tmp/x y' && RUSTFLAGS='-C link-self-contained=no' cargo build --features 'a b'"
        );
    }

    #[test]
    fn failure_carries_status_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/x.log");
        let c = Cmd::new("sh", "test").args(["-c", "echo one; echo two >&2; exit 3"]);
        let e = run_logged(&c, &log, None).unwrap_err();
        let ExecError::Failed { status, tail, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(status, "3");
        assert!(tail.contains("one") && tail.contains("two"), "{tail}");
        assert!(e.to_string().contains("exited with status 3"));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let c = Cmd::new("sh", "test").args([
            "-c",
            &format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
        ]);
        let e = run_logged(
            &c,
            &dir.path().join("t.log"),
            Some(Duration::from_millis(300)),
        );
        assert!(matches!(e, Err(ExecError::Timeout { .. })), "{e:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // the grandchild is gone (or a zombie reaped by init shortly)
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[test]
    fn capture_returns_stdout() {
        let c = Cmd::new("sh", "probe").args(["-c", "echo hello; echo noise >&2"]);
        assert_eq!(capture(&c, Duration::from_secs(5)).unwrap(), "hello\n");
    }
}

/// The part of a sandboxed spawn that runs in the child between fork and exec.
mod sandbox {
    use super::Sandbox;
    use std::ffi::CString;
    use std::io;
    use std::os::unix::ffi::OsStrExt;

    /// Everything `enter` needs, allocated before the fork.
    #[derive(Clone)]
    pub struct Prepared {
        root: CString,
        workdir: CString,
        as_root: bool,
        uid: u32,
        gid: u32,
        new_netns: bool,
        uid_map: CString,
        gid_map: CString,
        outer_uid: u32,
        outer_gid: u32,
    }

    impl Prepared {
        pub fn new(s: &Sandbox) -> io::Result<Prepared> {
            let c =
                |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("NUL in a sandbox path"));
            // SAFETY: getuid/getgid cannot fail.
            let (outer_uid, outer_gid) = unsafe { (libc::getuid(), libc::getgid()) };
            Ok(Prepared {
                root: c(s.root.as_os_str().as_bytes())?,
                workdir: c(s.workdir.as_bytes())?,
                as_root: s.as_root,
                uid: s.uid,
                gid: s.gid,
                new_netns: s.new_netns,
                uid_map: c(format!("0 {outer_uid} 1").as_bytes())?,
                gid_map: c(format!("0 {outer_gid} 1").as_bytes())?,
                outer_uid,
                outer_gid,
            })
        }

        /// Runs in the child after fork: namespaces, loopback up, chroot, drop to the image user,
        /// die with the parent.
        pub fn enter(&self) -> io::Result<()> {
            let _ = (self.outer_uid, self.outer_gid);
            // SAFETY: raw system calls on pre-allocated data only.
            unsafe {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if !self.as_root {
                    let mut flags = libc::CLONE_NEWUSER;
                    if self.new_netns {
                        flags |= libc::CLONE_NEWNET;
                    }
                    check(libc::unshare(flags))?;
                    write_file(c"/proc/self/setgroups", c"deny")?;
                    write_file(c"/proc/self/uid_map", &self.uid_map)?;
                    write_file(c"/proc/self/gid_map", &self.gid_map)?;
                } else if self.new_netns {
                    check(libc::unshare(libc::CLONE_NEWNET))?;
                }
                if self.new_netns {
                    loopback_up()?;
                }
                check(libc::chroot(self.root.as_ptr()))?;
                if libc::chdir(self.workdir.as_ptr()) != 0 {
                    check(libc::chdir(c"/".as_ptr()))?;
                }
                if self.as_root {
                    check(libc::setgroups(0, std::ptr::null()))?;
                    check(libc::setgid(self.gid))?;
                    check(libc::setuid(self.uid))?;
                }
            }
            Ok(())
        }
    }

    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    unsafe fn write_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> io::Result<()> {
        // SAFETY: open/write/close on NUL-terminated, pre-allocated strings.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let bytes = text.to_bytes();
            let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            libc::close(fd);
            if n != bytes.len() as isize {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// `ip link set lo up` in the new network namespace.
    unsafe fn loopback_up() -> io::Result<()> {
        // SAFETY: a socket and two ioctls on a zeroed ifreq naming "lo".
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut req: libc::ifreq = std::mem::zeroed();
            req.ifr_name[0] = b'l' as libc::c_char;
            req.ifr_name[1] = b'o' as libc::c_char;
            if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
                libc::close(fd);
                return Err(io::Error::last_os_error());
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
            libc::close(fd);
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Opens a TCP connection to `127.0.0.1:port` inside the network namespace of process `pid`
/// (a sandboxed server), from a short-lived thread that joins that namespace.
pub fn connect_in_netns(pid: i32, port: u16, timeout: Duration) -> io::Result<std::net::TcpStream> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only; the thread ends right after connecting.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                timeout,
            )
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}
