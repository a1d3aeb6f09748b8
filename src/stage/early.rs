//! Early work: while the last targets still build, the images of each target already built are
//! packaged into `dist/oci` and verified, a target at a time, at the lowest CPU priority
//! (`SCHED_IDLE`: the builds are not slowed; it runs in the gaps they leave, such as links).
//! After the last build only the images of the targets that finished last are left to verify.
//!
//! Nothing here is final, and nothing here can change the outcome:
//! - the package stage makes every image again: the same inputs make the same bytes, and its
//!   layers come back from the layer cache;
//! - the verify stage takes an early verification only when it passed, for the very manifest
//!   digest, variant, platform and checks the stage would verify (`verify::Settings::earlier`);
//!   a failure, an error, or a target that finished after the last build is left to the stages,
//!   which run as before (a check that failed early, perhaps only because the builds held the
//!   CPU, runs again on an idle machine);
//! - nothing is tagged, recorded in `package.json`, cached as verified or pushed here. A failed
//!   or interrupted build leaves at most blobs in `dist/oci` that nothing refers to.
//!
//! Targets whose build was fresh (no toolchain started) are left to the stages: the build then
//! ends within moments anyway. Bases are prepared as `--locked` would (`pipeline.lock` is never
//! written here). The sandbox is probed on the calling thread first, so that a probe starved by
//! the builds cannot decide it. A failed build or a signal waits for the work at most
//! [`STOP_WAIT`] (its guests get their TERM and KILL within it); work still blocked past that, on
//! a mirror or registry read, is left to end with the process.
//!
//! `SHIPIT_EARLY` chooses: `idle` (the default), `normal` (early work at the builds' own priority:
//! for machines whose builds leave no idle time, and for tests on a busy machine) or `off`.

use super::build::{Built, OnBuilt};
use super::{deb_base, package, verify, verify_cmd};
use crate::error::Result;
use crate::exec::Cancel;
use crate::oci::layout::Layout;
use crate::session::Session;
use crate::ui::Ui;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The environment variable that chooses how early work runs: `idle`, `normal` or `off`.
pub const ENV: &str = "SHIPIT_EARLY";

/// How long a failed or interrupted build waits for the early work to stop: the guests' grace
/// period and a second.
const STOP_WAIT: Duration = Duration::from_secs(crate::exec::GRACE.as_secs() + 1);

/// Early verifications that passed, under their cache keys (`verify::Settings::earlier`).
pub type Earlier = HashMap<String, verify::PlatformReport>;

/// How early work runs (`SHIPIT_EARLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// `SCHED_IDLE`: only the CPU time the builds leave.
    Idle,
    /// The builds' own priority.
    Normal,
}

/// How this run does early work: none unless the images are packaged natively, there is more
/// than one target, and `SHIPIT_EARLY` is not `off`.
fn priority(s: &Session) -> Option<Priority> {
    if s.config.package != crate::config::Packager::Native || s.plan.platforms().count() < 2 {
        return None;
    }
    match std::env::var(ENV).as_deref() {
        Ok("off") => None,
        Ok("normal") => Some(Priority::Normal),
        _ => Some(Priority::Idle),
    }
}

/// Runs `build`, which is handed the callback to tell of each target built, with the early work
/// beside it, and returns the build's result and the early verifications that passed. After a
/// successful build the work in hand is finished (its result is wanted) and what it had not
/// started is left to the stages; after a failed build or a signal it is stopped, and waited for
/// at most [`STOP_WAIT`]. `use_cache`: the verify stage reuses cached passes (not in `smoke`),
/// so those are not verified early.
pub fn beside<R>(
    s: &Session,
    use_cache: bool,
    ui: &Ui,
    build: impl FnOnce(&OnBuilt<'_>) -> Result<R>,
) -> (Result<R>, Earlier) {
    let Some(priority) = priority(s) else {
        return (build(&|_, _| {}), Earlier::new());
    };
    // Probed here, at the run's priority: the answer is kept for the whole run.
    crate::verify::qemu::Isolation::detect(&s.opts.cancel);
    let cancel = s.opts.cancel.child();
    let (tx, rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<Earlier>();
    let closing = Arc::new(AtomicBool::new(false));
    let spawned = {
        let (s, ui, cancel, closing) = (s.clone(), ui.clone(), cancel.clone(), closing.clone());
        std::thread::Builder::new()
            .name("early".into())
            .spawn(move || {
                let earlier = work(&s, rx, &closing, &cancel, use_cache, priority, &ui);
                let _ = done_tx.send(earlier);
            })
    };
    if spawned.is_err() {
        return (build(&|_, _| {}), Earlier::new());
    }
    let tell = |i: usize, b: &Built| {
        if !b.fresh {
            let _ = tx.send(i);
        }
    };
    let built = build(&tell);
    closing.store(true, Ordering::SeqCst);
    drop(tx);
    // What the work has in hand after a good build is wanted, unless a signal comes meanwhile.
    let mut stopping = None;
    loop {
        if stopping.is_none() && (built.is_err() || s.opts.cancel.is_cancelled()) {
            if !cancel.is_cancelled() {
                cancel.cancel(libc::SIGTERM);
            }
            stopping = Some(Instant::now() + STOP_WAIT);
        }
        let wait = match stopping {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(100),
        };
        match done_rx.recv_timeout(wait) {
            Ok(earlier) => return (built, earlier),
            Err(RecvTimeoutError::Disconnected) => {
                ui.verbose("  early: the work ended without a result; left to the stages");
                return (built, Earlier::new());
            }
            Err(RecvTimeoutError::Timeout) if stopping.is_some() => {
                ui.verbose("  early: still waiting on a read when the run stopped; left behind");
                return (built, Earlier::new());
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// What the early work needs once, made when the first target is built.
struct Ready {
    bases: deb_base::DebBases,
    layout: Layout,
    shared: package::SharedLayers,
    settings: verify::Settings,
}

fn work(
    s: &Session,
    rx: mpsc::Receiver<usize>,
    closing: &AtomicBool,
    cancel: &Cancel,
    use_cache: bool,
    priority: Priority,
    ui: &Ui,
) -> Earlier {
    if priority == Priority::Idle {
        idle_priority();
    }
    let (cfg, plan) = (&s.config, &s.plan);
    let muted = Ui {
        quiet: true,
        muted: true,
        json: true,
        ..Ui::default()
    };
    let targets: Vec<_> = plan.platforms().collect();
    let layout_dir = plan.out_dir.join("oci");
    let mut earlier = Earlier::new();
    let mut ready: Option<Ready> = None;
    while let Ok(i) = rx.recv() {
        if closing.load(Ordering::SeqCst) || cancel.is_cancelled() {
            break;
        }
        let Some(&(img, p)) = targets.get(i) else {
            continue;
        };
        let who = format!("{} ({})", p.platform, p.libc);
        ui.verbose(format!("  early: {who}: packaging and verifying"));
        let t = Instant::now();
        if ready.is_none() {
            match prepare(s, &layout_dir, cancel, &muted) {
                Ok(r) => ready = Some(r),
                Err(e) if !cancel.is_cancelled() => {
                    ui.verbose(format!(
                        "  early: nothing is packaged ahead ({}); left to the stages",
                        e.message()
                    ));
                    break;
                }
                Err(_) => break,
            }
        }
        let Some(r) = &ready else { break };
        let desc = match package::package_platform(
            cfg, plan, img, p, &r.layout, &r.bases, &r.shared, cancel, true,
        ) {
            Ok((desc, _, _)) => desc,
            Err(_) if cancel.is_cancelled() => break,
            Err(e) => {
                ui.verbose(format!(
                    "  early: {who} not packaged ahead ({}); left to the package stage",
                    e.message()
                ));
                continue;
            }
        };
        let item = verify::Item {
            image: img.repository.clone(),
            variant: Some(img.variant),
            layout: layout_dir.clone(),
            index_platform: desc.platform.clone(),
            manifest: desc,
        };
        if use_cache && verify::is_cached(&item, &r.settings, &plan.out_dir) {
            continue; // the verify stage reuses the earlier run's pass
        }
        match verify::ahead(&item, &r.settings, &muted) {
            Some((key, report)) => {
                ui.verbose(format!(
                    "  early: {who} packaged and verified in {:.2}s while other targets build",
                    t.elapsed().as_secs_f64()
                ));
                earlier.insert(key, report);
            }
            None if !cancel.is_cancelled() => ui.verbose(format!(
                "  early: {who} did not pass ahead; the verify stage runs it again"
            )),
            None => break,
        }
    }
    earlier
}

/// The bases (as `--locked`: the lock is not written here), the layout, and the verify stage's
/// settings with this work's token, one platform at a time and no cache.
fn prepare(
    s: &Session,
    layout_dir: &std::path::Path,
    cancel: &Cancel,
    muted: &Ui,
) -> Result<Ready> {
    let bases = deb_base::prepare(
        &s.config,
        &s.plan,
        crate::deb::LockMode::Locked,
        cancel,
        muted,
    )?;
    let layout = Layout::create(layout_dir)?.with_cancel(cancel);
    let mut settings = verify_cmd::settings(Some(&s.config), None, &s.opts)?;
    settings.jobs = 1;
    settings.cancel = cancel.clone();
    Ok(Ready {
        bases,
        layout,
        shared: package::SharedLayers::default(),
        settings,
    })
}

/// Puts the calling thread (and so what it starts: compression threads, QEMU guests) on the
/// `SCHED_IDLE` policy: it runs only when no build wants the CPU. Unprivileged; ignored where
/// refused.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for SCHED_IDLE.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}
