//! Running a command: logged to a file ([`run_logged`]), captured ([`capture`], [`output`]) or
//! in the background ([`Running`]), each in its own process group registered in the run's
//! [`Cancel`] token, with a timeout; and how a run ended when it did not succeed
//! ([`ExecError`]).

use super::cancel::{Cancel, DEATH_WAIT, GRACE, GroupGuard, signal_name, wait_group_dead};
use super::cmd::Cmd;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// What a finished command gave back.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub duration: Duration,
}

/// Runs `cmd` in its own process group, appending stdout and stderr to `log` (created with its
/// parent directories), killing the group on timeout or cancellation. A non-zero exit is an
/// error carrying the last 30 log lines.
pub fn run_logged(
    cmd: &Cmd,
    log: &Path,
    timeout: Option<Duration>,
    cancel: &Cancel,
) -> Result<Finished, ExecError> {
    run_logged_until(cmd, log, timeout, None, cancel)
}

/// Like [`run_logged`], and also stops (TERM, grace, KILL) when `stop` becomes true (another
/// target of a build failed); `stop` is looked at every 100 ms.
pub fn run_logged_until(
    cmd: &Cmd,
    log: &Path,
    timeout: Option<Duration>,
    stop: Option<&AtomicBool>,
    cancel: &Cancel,
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
    let finished = wait(cmd, &expr, timeout, stop, cancel);
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
    /// Starts `cmd` with stdout and stderr going to the given files; `cancel` terminates it.
    pub fn start_with(
        cmd: &Cmd,
        stdout: File,
        stderr: File,
        cancel: &Cancel,
    ) -> Result<Running, ExecError> {
        cancelled_before(cmd, cancel)?;
        let handle = spawn(
            cmd,
            &cmd.duct().stdout_file(stdout).stderr_file(stderr),
            cancel,
        )?;
        let pid = handle.pids().first().copied().unwrap_or(0) as i32;
        Ok(Running {
            handle,
            pid,
            started: Instant::now(),
            _guard: cancel.register(pid),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exit status if it has ended.
    pub fn try_wait(&self) -> Option<std::process::ExitStatus> {
        self.handle.try_wait().ok().flatten().map(|o| o.status)
    }

    /// Waits up to `d`; None if it is still running. A cancellation terminates the group, so
    /// the wait ends with it.
    pub fn wait_for(&self, d: Duration) -> Option<std::process::ExitStatus> {
        self.handle.wait_timeout(d).ok().flatten().map(|o| o.status)
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

/// A finished command's status and (bounded) stdout, whatever the status.
#[derive(Debug)]
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
}

/// Runs `cmd` with a timeout and returns its status and at most `limit` bytes of its stdout;
/// stderr is dropped. For programs whose output may hold a secret (credential helpers): the
/// caller decides what of it to show.
pub fn output(
    cmd: &Cmd,
    timeout: Duration,
    limit: u64,
    cancel: &Cancel,
) -> Result<Output, ExecError> {
    let io_err = |source| ExecError::Io {
        purpose: cmd.purpose.clone(),
        source,
    };
    let out = tempfile::tempfile().map_err(io_err)?;
    let expr = cmd
        .duct()
        .stdout_file(out.try_clone().map_err(io_err)?)
        .stderr_null();
    let f = wait(cmd, &expr, Some(timeout), None, cancel)?;
    let mut stdout = Vec::new();
    let mut out = out;
    out.seek(SeekFrom::Start(0)).map_err(io_err)?;
    out.take(limit).read_to_end(&mut stdout).map_err(io_err)?;
    Ok(Output {
        status: f.status,
        stdout,
    })
}

/// Runs `cmd` and returns its stdout (stderr is kept for the error), with a timeout. For short
/// probes (`--version`, `cargo metadata`, `git`).
pub fn capture(cmd: &Cmd, timeout: Duration, cancel: &Cancel) -> Result<String, ExecError> {
    let io_err = |source| ExecError::Io {
        purpose: cmd.purpose.clone(),
        source,
    };
    let out = tempfile::tempfile().map_err(io_err)?;
    let err = tempfile::tempfile().map_err(io_err)?;
    let read_all = |mut f: &File| {
        let mut s = String::new();
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut s);
        s
    };
    let expr = cmd
        .duct()
        .stdout_file(out.try_clone().map_err(io_err)?)
        .stderr_file(err.try_clone().map_err(io_err)?);
    let f = wait(cmd, &expr, Some(timeout), None, cancel)?;
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

fn cancelled_before(cmd: &Cmd, cancel: &Cancel) -> Result<(), ExecError> {
    cancel.check().map_err(|c| ExecError::Cancelled {
        purpose: cmd.purpose.clone(),
        signal: c.0,
    })
}

/// How often, and how long in all, a spawn is retried when exec says ETXTBSY.
const BUSY_RETRIES: u32 = 12;

/// Starts `expr`. `execve` fails with ETXTBSY ("Text file busy") while any process still holds
/// a write fd to the program: every fd shipit opens is close-on-exec, but a sibling thread's
/// child holds copies of them between its fork and its exec, so a binary unpacked and closed a
/// moment ago can still be "busy" for that instant. Such a spawn is retried with a short,
/// growing pause (about 2 s in all) before it is reported.
fn spawn(cmd: &Cmd, expr: &duct::Expression, cancel: &Cancel) -> Result<duct::Handle, ExecError> {
    let mut attempt = 0;
    loop {
        match expr.start() {
            Ok(h) => return Ok(h),
            Err(source)
                if source.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_RETRIES =>
            {
                attempt += 1;
                if let Err(c) = cancel.sleep(Duration::from_millis(5) * attempt * attempt) {
                    return Err(ExecError::Cancelled {
                        purpose: cmd.purpose.clone(),
                        signal: c.0,
                    });
                }
            }
            Err(source) => {
                let source = if source.raw_os_error() == Some(libc::ETXTBSY) {
                    io::Error::new(
                        source.kind(),
                        format!(
                            "{source}: still busy after {BUSY_RETRIES} retries; another process holds the program open for writing"
                        ),
                    )
                } else {
                    source
                };
                return Err(ExecError::Spawn {
                    purpose: cmd.purpose.clone(),
                    program: cmd.program.clone(),
                    source,
                });
            }
        }
    }
}

/// Starts `expr`, registers its process group in `cancel`, and blocks until it ends, times out
/// or (if given) `stop` is set. Cancellation needs no looking: the token terminates the
/// registered group, which ends the wait.
fn wait(
    cmd: &Cmd,
    expr: &duct::Expression,
    timeout: Option<Duration>,
    stop: Option<&AtomicBool>,
    cancel: &Cancel,
) -> Result<Finished, ExecError> {
    cancelled_before(cmd, cancel)?;
    let start = Instant::now();
    let handle = spawn(cmd, expr, cancel)?;
    let pid = handle.pids().first().copied().unwrap_or(0) as i32;
    let guard = cancel.register(pid);
    let deadline = timeout.map(|t| start + t);
    loop {
        let waited = match (deadline, stop) {
            (None, None) => handle.wait().map(Some),
            (Some(d), None) => handle.wait_deadline(d),
            (d, Some(_)) => {
                let look = Instant::now() + STOP_LOOK;
                handle.wait_deadline(d.map_or(look, |d| d.min(look)))
            }
        };
        match waited {
            Ok(Some(out)) => {
                let status = out.status;
                drop(guard);
                cancelled_before(cmd, cancel)?;
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
        if let (Some(t), Some(d)) = (timeout, deadline)
            && Instant::now() >= d
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
    }
}

/// How often a run with a `stop` flag looks at it.
const STOP_LOOK: Duration = Duration::from_millis(100);

/// TERM the group, give it the grace period, then KILL it; reap the child.
fn terminate_group(pgid: i32, handle: &duct::Handle) {
    // SAFETY: killpg only sends signals.
    unsafe {
        libc::killpg(pgid, libc::SIGTERM);
    }
    let _ = handle.wait_timeout(GRACE);
    // SAFETY: as above.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = handle.wait();
    // The leader is reaped; its descendants in the group may still be dying.
    wait_group_dead(pgid, DEATH_WAIT);
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
        let e = run_logged(&c, &log, None, &Cancel::new()).unwrap_err();
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
            &Cancel::new(),
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
    fn cancel_terminates_a_running_group() {
        let cancel = Cancel::new();
        let c = Cmd::new("sh", "test").args(["-c", "sleep 300"]);
        let token = cancel.clone();
        let t = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            token.cancel(libc::SIGTERM);
        });
        let dir = tempfile::tempdir().unwrap();
        let e = run_logged(&c, &dir.path().join("c.log"), None, &cancel).unwrap_err();
        assert!(
            matches!(
                e,
                ExecError::Cancelled {
                    signal: libc::SIGTERM,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // nothing starts after the cancellation
        let e = capture(&Cmd::new("true", "t"), Duration::from_secs(5), &cancel).unwrap_err();
        assert!(matches!(e, ExecError::Cancelled { .. }), "{e:?}");
    }

    #[test]
    fn output_feeds_stdin_and_bounds_stdout() {
        let c = Cmd::new("sh", "helper")
            .args(["-c", "read x; echo \"got $x\"; echo secret >&2; exit 4"])
            .stdin("r.example");
        let o = output(&c, Duration::from_secs(5), 6, &Cancel::new()).unwrap();
        assert_eq!(o.status.code(), Some(4));
        assert_eq!(o.stdout, b"got r.");
    }

    #[test]
    fn capture_returns_stdout() {
        let c = Cmd::new("sh", "probe").args(["-c", "echo hello; echo noise >&2"]);
        assert_eq!(
            capture(&c, Duration::from_secs(5), &Cancel::new()).unwrap(),
            "hello\n"
        );
    }
}
