//! The run's cancel token. One [`Cancel`] is made where the signal handlers are installed
//! (`cli::main`) and handed down to everything that can block: exec's run functions, the
//! registry client, the credential-helper runner. It holds the signal that cancelled the run and
//! the process groups of the live children, so that cancelling terminates them all (TERM, then
//! KILL after [`GRACE`]); a second signal kills them at once. Signals are received by one
//! blocking `signal_hook` thread; nothing polls.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How long a process group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

/// The cancel token of a run. Cheap to clone (all clones are the same token).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// The signal that cancelled the run (0 while not cancelled).
    signal: AtomicI32,
    /// Process groups of live children, terminated on cancellation.
    groups: Mutex<Vec<i32>>,
    /// Notified (with `groups` as its lock) when the run is cancelled, waking [`Cancel::sleep`].
    woken: Condvar,
    /// Tokens made by [`Cancel::child`]: cancelled with this one (changed with `groups` held).
    children: Mutex<Vec<Weak<Inner>>>,
}

/// The run was cancelled by this signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled by {}", signal_name(self.0))]
pub struct Cancelled(pub i32);

impl Cancel {
    /// A token no signal reaches (tests, library callers); [`Cancel::cancel`] still works.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Installs the SIGINT/SIGTERM/SIGHUP handlers and returns the token they cancel. Called
    /// once, by `cli::main`; the token then goes down through the `Session`.
    pub fn install_signal_handlers() -> Cancel {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let cancel = Cancel::new();
        if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            let token = cancel.clone();
            let _ = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for sig in signals.forever() {
                        token.cancel(sig);
                    }
                });
        }
        cancel
    }

    /// A token that this one cancels (with the same signal) and that can also be cancelled on
    /// its own, without cancelling this one: for work that must stop when the run stops, and
    /// also when something else makes it pointless (uploads started during verification, which
    /// a failed verification stops).
    pub fn child(&self) -> Cancel {
        let child = Cancel::new();
        let groups = self.lock();
        match self.signal() {
            Some(sig) => {
                drop(groups);
                child.cancel(sig);
            }
            None => {
                let mut children = self.0.children.lock().unwrap_or_else(|p| p.into_inner());
                children.retain(|c| c.strong_count() > 0);
                children.push(Arc::downgrade(&child.0));
            }
        }
        child
    }

    /// The signal that cancelled the run, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.0.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Whether the run is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.signal().is_some()
    }

    /// `Err` once the run is cancelled: call before starting anything.
    pub fn check(&self) -> Result<(), Cancelled> {
        match self.signal() {
            None => Ok(()),
            Some(s) => Err(Cancelled(s)),
        }
    }

    /// Sleeps for `d`, waking at once (with `Err`) when the run is cancelled.
    pub fn sleep(&self, d: Duration) -> Result<(), Cancelled> {
        let deadline = std::time::Instant::now() + d;
        let mut groups = self.lock();
        loop {
            self.check()?;
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            groups = match self.0.woken.wait_timeout(groups, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Cancels the run by `sig`. The first cancellation sends SIGTERM to every registered
    /// process group and SIGKILL to what is left after [`GRACE`]; a later one sends SIGKILL
    /// at once.
    pub fn cancel(&self, sig: i32) {
        let (first, groups) = {
            let groups = self.lock();
            let first = self
                .0
                .signal
                .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            self.0.woken.notify_all();
            (first, groups.clone())
        };
        // A child registered after this point sees the signal in `child` (both hold `groups`).
        // The children stay registered: a second signal reaches them too (and kills at once).
        let children: Vec<Cancel> = {
            let mut list = self.0.children.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|c| c.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).map(Cancel).collect()
        };
        for c in &children {
            c.cancel(sig);
        }
        if first {
            kill_all(&groups, libc::SIGTERM);
            let token = self.clone();
            let _ = std::thread::Builder::new()
                .name("cancel-grace".into())
                .spawn(move || {
                    std::thread::sleep(GRACE);
                    let groups = token.lock().clone();
                    kill_all(&groups, libc::SIGKILL);
                });
        } else {
            kill_all(&groups, libc::SIGKILL);
        }
    }

    /// Registers a live process group until the guard drops. A group registered after the
    /// run was cancelled (the signal came between the check before the spawn and this call) is
    /// killed at once: it never got to do anything worth a grace period.
    pub(super) fn register(&self, pgid: i32) -> GroupGuard {
        let mut groups = self.lock();
        groups.push(pgid);
        if self.is_cancelled() {
            kill_all(&[pgid], libc::SIGKILL);
        }
        GroupGuard {
            cancel: self.clone(),
            pgid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<i32>> {
        self.0.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn kill_all(groups: &[i32], sig: i32) {
    for &pgid in groups.iter().filter(|p| **p > 0) {
        // SAFETY: killpg only sends a signal; a stale pgid yields ESRCH, which is harmless.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

/// A registered process group: killed (with whatever grandchildren are left in it) and
/// unregistered when dropped.
pub(super) struct GroupGuard {
    cancel: Cancel,
    pgid: i32,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_all(&[self.pgid], libc::SIGKILL);
        wait_group_dead(self.pgid, DEATH_WAIT);
        self.cancel.lock().retain(|p| *p != self.pgid);
    }
}

/// How long [`wait_group_dead`] waits at most.
pub const DEATH_WAIT: Duration = Duration::from_secs(2);

/// Waits (up to `bound`) until no member of process group `pgid` is still running. `killpg`
/// returns before its signal has taken effect: a grandchild that SIGKILL reached may still be
/// running for a moment on a loaded machine, so a caller that returns at once could leave a
/// process behind its report. Members that have died but await reaping (zombies: their parent
/// is gone or dying) count as dead.
pub fn wait_group_dead(pgid: i32, bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    while group_has_running_member(pgid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether any process, a zombie included, is still in group `pgid`: signal 0 reaches none
/// (ESRCH) once the last member has been reaped. The usual case when a command has ended, and
/// one system call where a walk of `/proc` reads every process's stat.
fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 checks only that the group exists and may be signalled; nothing is sent.
    let rc = unsafe { libc::killpg(pgid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether some process in `/proc` is in group `pgid` and not yet dead (state other than Z/X).
/// A group no process is in any more is known without the walk.
fn group_has_running_member(pgid: i32) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_state_and_group(&stat))
            .is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
    })
}

/// The state and process group of a `/proc/PID/stat` line: after the command (in parentheses,
/// which may itself hold `)`), the fields are `state ppid pgrp …`.
fn stat_state_and_group(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// How many bytes in-process work (hashing, compressing, copying, unpacking) handles between
/// two looks at the cancel token.
pub const CHECK_EVERY: u64 = 4 << 20;

/// A reader that fails with [`Cancelled`] (inside an `io::Error`, see [`cancelled_in`]) once
/// the token fires, looking at it every [`CHECK_EVERY`] bytes: in-process loops over large
/// data stop within a moment of a signal.
pub struct Interruptible<R> {
    inner: R,
    cancel: Cancel,
    since_check: u64,
}

impl<R> Interruptible<R> {
    pub fn new(inner: R, cancel: &Cancel) -> Interruptible<R> {
        Interruptible {
            inner,
            cancel: cancel.clone(),
            since_check: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since_check == 0 || self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.cancel.check().map_err(std::io::Error::other)?;
        }
        let n = self.inner.read(buf)?;
        self.since_check += n.max(1) as u64;
        Ok(n)
    }
}

/// The cancellation an `io::Error` carries, if it is one made by [`Interruptible`].
pub fn cancelled_in(e: &std::io::Error) -> Option<Cancelled> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Cancelled>())
        .copied()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_records_the_first_signal() {
        let c = Cancel::new();
        let other = c.clone();
        assert_eq!(c.check(), Ok(()));
        other.cancel(libc::SIGTERM);
        other.cancel(libc::SIGINT);
        assert_eq!(c.signal(), Some(libc::SIGTERM));
        assert_eq!(c.check(), Err(Cancelled(libc::SIGTERM)));
        assert!(!Cancel::new().is_cancelled());
    }

    #[test]
    fn interruptible_readers_stop_once_cancelled() {
        use std::io::Read;
        let c = Cancel::new();
        let mut r = Interruptible::new(std::io::repeat(7), &c);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..10 {
            r.read_exact(&mut buf).unwrap();
        }
        c.cancel(libc::SIGTERM);
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert_eq!(cancelled_in(&e), Some(Cancelled(libc::SIGTERM)));
        assert_eq!(cancelled_in(&std::io::Error::other("x")), None);
    }

    #[test]
    fn a_child_stops_with_its_parent_and_alone_without_it() {
        let run = Cancel::new();
        let uploads = run.child();
        uploads.cancel(libc::SIGTERM);
        assert_eq!(uploads.signal(), Some(libc::SIGTERM));
        assert!(
            !run.is_cancelled(),
            "a child's cancellation stays in the child"
        );
        let again = run.child();
        let grandchild = again.child();
        let sleeper = {
            let g = grandchild.clone();
            std::thread::spawn(move || g.sleep(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(50));
        run.cancel(libc::SIGINT);
        assert_eq!(again.signal(), Some(libc::SIGINT));
        assert_eq!(
            sleeper.join().unwrap(),
            Err(Cancelled(libc::SIGINT)),
            "woken at once"
        );
        // A child made after the run was cancelled is born cancelled.
        assert_eq!(run.child().signal(), Some(libc::SIGINT));
        assert_eq!(
            uploads.signal(),
            Some(libc::SIGTERM),
            "the first signal stays"
        );
    }

    /// A second signal kills a child's process groups at once, as it does the parent's.
    #[test]
    fn a_second_signal_reaches_a_child_and_kills_its_group_at_once() {
        let run = Cancel::new();
        let uploads = run.child();
        let cmd = crate::exec::Cmd::new("sh", "test").args(["-c", "trap '' TERM; sleep 30"]);
        let t = std::time::Instant::now();
        let waiter = {
            let u = uploads.clone();
            std::thread::spawn(move || crate::exec::capture(&cmd, Duration::from_secs(60), &u))
        };
        std::thread::sleep(Duration::from_millis(300));
        run.cancel(libc::SIGINT);
        std::thread::sleep(Duration::from_millis(100));
        run.cancel(libc::SIGINT);
        assert!(waiter.join().unwrap().is_err());
        assert!(
            t.elapsed() < GRACE,
            "the group waited out the grace period: {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn sleep_wakes_on_cancel() {
        let c = Cancel::new();
        let token = c.clone();
        let t = std::time::Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            token.cancel(libc::SIGINT);
        });
        assert_eq!(
            c.sleep(Duration::from_secs(30)),
            Err(Cancelled(libc::SIGINT))
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(Cancel::new().sleep(Duration::from_millis(10)), Ok(()));
    }

    #[test]
    fn stat_lines_give_state_and_group_even_with_parentheses_in_the_name() {
        let line = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0";
        assert_eq!(stat_state_and_group(line), Some(('S', 4240)));
        assert_eq!(stat_state_and_group("7 (x) Z 1 7 7 0"), Some(('Z', 7)));
        assert_eq!(stat_state_and_group("garbage"), None);
    }

    #[test]
    fn a_killed_group_with_a_grandchild_is_dead_when_the_wait_returns() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        let t = std::time::Instant::now();
        while !group_has_running_member(pgid) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(group_has_running_member(pgid), "the group runs");
        kill_all(&[pgid], libc::SIGKILL);
        child.wait().unwrap();
        wait_group_dead(pgid, DEATH_WAIT);
        assert!(
            !group_has_running_member(pgid),
            "no member of the group still runs"
        );
    }

    #[test]
    fn a_group_exists_until_its_last_member_is_reaped() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exit 0"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        // Dead but not reaped: a zombie is still a member, so the walk of /proc decides.
        let t = std::time::Instant::now();
        while group_has_running_member(pgid) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(group_exists(pgid), "an unreaped zombie keeps its group");
        child.wait().unwrap();
        assert!(!group_exists(pgid), "the group is gone once reaped");
    }
}
