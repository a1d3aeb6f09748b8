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
//! When the last build ends, the work starts nothing new. The image it still holds, if any, is
//! finished beside the package and verify stages rather than before them ([`Later`]): the verify
//! stage verifies the other images meanwhile, takes that one's pass when it comes, and verifies
//! it itself if it did not pass.
//!
//! Targets whose build was fresh (no toolchain started) are left to the stages: the build then
//! ends within moments anyway. Bases are prepared as `--locked` would (`pipeline.lock` is never
//! written here). The sandbox is probed on the calling thread first, so that a probe starved by
//! the builds cannot decide it. A failed build, a failed stage or a signal waits for the work at
//! most [`STOP_WAIT`] (its guests get their TERM and KILL within it); work still blocked past
//! that, on a mirror or registry read, is left to end with the process.
//!
//! `SHIPIT_EARLY` chooses: `idle` (the default), `normal` (early work at the builds' own priority:
//! for machines whose builds leave no idle time, and for tests on a busy machine) or `off`.

use super::build::{Built, OnBuilt};
use super::{deb_base, package, verify, verify_cmd};
use crate::error::Result;
use crate::exec::{Cancel, priority as sched};
use crate::oci::layout::Layout;
use crate::platform::Libc;
use crate::session::Session;
use crate::ui::Ui;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that chooses how early work runs: `idle`, `normal` or `off`.
pub const ENV: &str = "SHIPIT_EARLY";

/// How long a failed or interrupted build waits for the early work to stop: the guests' grace
/// period and a second.
const STOP_WAIT: Duration = Duration::from_secs(crate::exec::GRACE.as_secs() + 1);

/// Early verifications that passed, under their cache keys.
pub type Earlier = HashMap<String, verify::PlatformReport>;

/// The image a target's early work is on: its repository, variant and platform.
type Held = (String, Libc, &'static str);

/// What the early work shares with the run: the passes so far and the image it is on.
#[derive(Default)]
struct Shared {
    passed: Earlier,
    holding: Option<Held>,
    /// Whether the work runs at `SCHED_IDLE` (entering it may be refused, as in some sandboxes).
    idle: bool,
}

/// The early work as the last build left it (`verify::Settings::earlier`): the passes it made,
/// and the one image it may still be verifying. Dropped before [`Later::finish`], the work is
/// stopped (waited for at most [`STOP_WAIT`]).
#[derive(Default)]
pub struct Later {
    shared: Arc<Mutex<Shared>>,
    live: Option<Live>,
}

/// Early work still running.
struct Live {
    /// Closed when the work ends.
    done: Mutex<mpsc::Receiver<()>>,
    /// The work's own token, and the run's.
    cancel: Cancel,
    run: Cancel,
    ended: AtomicBool,
    ui: Ui,
}

impl Later {
    /// Work running with `shared`, whose thread closes `done` when it ends; `cancel` is its own
    /// token, `run` the run's.
    fn running(
        shared: Arc<Mutex<Shared>>,
        done: mpsc::Receiver<()>,
        cancel: Cancel,
        run: &Cancel,
        ui: &Ui,
    ) -> Later {
        Later {
            shared,
            live: Some(Live {
                done: Mutex::new(done),
                cancel,
                run: run.clone(),
                ended: AtomicBool::new(false),
                ui: ui.clone(),
            }),
        }
    }

    /// Work still on `image` (`variant`, `platform`), as the last build may leave it (for tests
    /// of the verify stage), and what ends it with these passes.
    #[cfg(test)]
    pub fn holding(
        image: &str,
        variant: Libc,
        platform: &'static str,
        run: &Cancel,
    ) -> (Later, impl FnOnce(Earlier) + Send + 'static) {
        let shared = Arc::new(Mutex::new(Shared {
            holding: Some((image.to_string(), variant, platform)),
            ..Shared::default()
        }));
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let later = Later::running(shared.clone(), done_rx, run.child(), run, &Ui::default());
        let end = move |passed: Earlier| {
            if let Ok(mut sh) = shared.lock() {
                sh.passed.extend(passed);
                sh.holding = None;
            }
            let _ = done_tx.send(());
        };
        (later, end)
    }
}

impl verify::Earlier for Later {
    fn passed(&self) -> Earlier {
        self.shared
            .lock()
            .map(|s| s.passed.clone())
            .unwrap_or_default()
    }

    fn holds(&self, image: &str, variant: Option<Libc>, platform: &str) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| !l.ended.load(Ordering::SeqCst) && !l.cancel.is_cancelled())
            && self.shared.lock().is_ok_and(|s| {
                s.holding
                    .as_ref()
                    .is_some_and(|(i, v, p)| i == image && Some(*v) == variant && *p == platform)
            })
    }

    /// A signal meanwhile stops the work (waited for at most [`STOP_WAIT`]).
    fn finish(&self) -> Earlier {
        if let Some(live) = &self.live {
            live.wait(false);
        }
        self.passed()
    }
}

impl Drop for Later {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.wait(true);
        }
    }
}

impl Live {
    /// Waits until the work ends; `stop` (or a signal to the run meanwhile) stops it first, and
    /// then it is waited for at most [`STOP_WAIT`].
    fn wait(&self, stop: bool) {
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let Ok(done) = self.done.lock() else { return };
        let mut stopping = None;
        loop {
            if stopping.is_none() && (stop || self.run.is_cancelled()) {
                if !self.cancel.is_cancelled() {
                    self.cancel.cancel(libc::SIGTERM);
                }
                stopping = Some(Instant::now() + STOP_WAIT);
            }
            let wait = match stopping {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(100),
            };
            match done.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if stopping.is_some() => {
                    self.ui.verbose(
                        "  early: still waiting on a read when the run stopped; left behind",
                    );
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.ended.store(true, Ordering::SeqCst);
    }
}

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
/// beside it, and returns the build's result and the early work as the build left it. After a
/// successful build the work starts nothing new, and what it has in hand is finished beside the
/// next stages ([`Later`]); after a failed build or a signal it is stopped, and waited for at
/// most [`STOP_WAIT`]. `use_cache`: the verify stage reuses cached passes (not in `smoke`), so
/// those are not verified early.
pub fn beside<R>(
    s: &Session,
    use_cache: bool,
    ui: &Ui,
    build: impl FnOnce(&OnBuilt<'_>) -> Result<R>,
) -> (Result<R>, Later) {
    let Some(priority) = priority(s) else {
        return (build(&|_, _| {}), Later::default());
    };
    // Probed here, at the run's priority: the answer is kept for the whole run.
    crate::verify::qemu::Isolation::detect(&s.opts.cancel);
    let cancel = s.opts.cancel.child();
    let (tx, rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let closing = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let spawned = {
        let (s, ui, cancel, closing, shared) = (
            s.clone(),
            ui.clone(),
            cancel.clone(),
            closing.clone(),
            shared.clone(),
        );
        std::thread::Builder::new()
            .name("early".into())
            .spawn(move || {
                work(&s, rx, &closing, &shared, &cancel, use_cache, priority, &ui);
                let _ = done_tx.send(());
            })
    };
    if spawned.is_err() {
        return (build(&|_, _| {}), Later::default());
    }
    // The target that finishes last is left to the stages, which verify it at the run's own
    // priority; there is nothing left to build beside it.
    let targets = s.plan.platforms().count();
    let told = std::sync::atomic::AtomicUsize::new(0);
    let tell = |i: usize, b: &Built| {
        let last = told.fetch_add(1, Ordering::SeqCst) + 1 >= targets;
        if !b.fresh && !last {
            let _ = tx.send(i);
        }
    };
    let built = build(&tell);
    closing.store(true, Ordering::SeqCst);
    drop(tx);
    // What the work still has in hand is now on the critical path: back to the run's priority,
    // its threads and guests alike. Where that is refused (leaving SCHED_IDLE needs root or
    // RLIMIT_NICE room), the work stops here and the stages verify that image themselves: at
    // SCHED_IDLE it would wait behind the stages' own work and any other load on the machine.
    if shared.lock().is_ok_and(|sh| sh.idle) && !sched::leave_idle() {
        cancel.cancel(libc::SIGTERM);
    }
    let later = Later::running(shared, done_rx, cancel, &s.opts.cancel, ui);
    if built.is_err() || s.opts.cancel.is_cancelled() {
        drop(later); // stopped, and waited for at most STOP_WAIT
        return (built, Later::default());
    }
    (built, later)
}

/// What the early work needs once, made when the first target is built.
struct Ready {
    bases: deb_base::DebBases,
    layout: Layout,
    shared: package::SharedLayers,
    settings: verify::Settings,
}

#[allow(clippy::too_many_arguments)]
fn work(
    s: &Session,
    rx: mpsc::Receiver<usize>,
    closing: &AtomicBool,
    shared: &Mutex<Shared>,
    cancel: &Cancel,
    use_cache: bool,
    priority: Priority,
    ui: &Ui,
) {
    if priority == Priority::Idle
        && sched::set_policy(0, libc::SCHED_IDLE)
        && let Ok(mut sh) = shared.lock()
    {
        sh.idle = true;
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
    let mut ready: Option<Ready> = None;
    let hold = |held: Option<Held>| {
        if let Ok(mut sh) = shared.lock() {
            sh.holding = held;
        }
    };
    while let Ok(i) = rx.recv() {
        hold(None);
        let Some(&(img, p)) = targets.get(i) else {
            continue;
        };
        // Held before `closing` is read: the run, which sets `closing` and then reads what is
        // held, sees this image held or sees it never started.
        hold(Some((img.repository.clone(), img.variant, p.platform)));
        if closing.load(Ordering::SeqCst) || cancel.is_cancelled() {
            break;
        }
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
                if let Ok(mut sh) = shared.lock() {
                    sh.passed.insert(key, report);
                }
            }
            None if !cancel.is_cancelled() => ui.verbose(format!(
                "  early: {who} did not pass ahead; the verify stage runs it again"
            )),
            None => break,
        }
    }
    hold(None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CpuMode;
    use verify::tests::{item, passed, settings};

    #[test]
    fn an_image_still_verified_early_is_waited_for_and_verified_by_the_stage_when_it_did_not_pass()
    {
        let ui = Ui::default();
        let it = item(b"image");

        // Held when the stage starts, passed 0.3 s later: the stage waits for it and takes it.
        let mut s = settings(CpuMode::Strict);
        let (later, end) = Later::holding("localhost/app", Libc::Musl, "linux/amd64", &s.cancel);
        s.earlier = Box::new(later);
        let pass = HashMap::from([(s.key(&it), passed(&it))]);
        let t = Instant::now();
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            end(pass);
        });
        let r = verify::run(std::slice::from_ref(&it), &s, &ui).unwrap();
        ender.join().unwrap();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(r.passed && r.platforms[0].early, "{r:?}");

        // Ended without a pass: the stage verifies it itself (this image cannot be read).
        let mut s = settings(CpuMode::Strict);
        let (later, end) = Later::holding("localhost/app", Libc::Musl, "linux/amd64", &s.cancel);
        s.earlier = Box::new(later);
        end(HashMap::new());
        let r = verify::run(std::slice::from_ref(&it), &s, &ui).unwrap();
        assert!(!r.passed && !r.platforms[0].early, "{r:?}");
        assert_eq!(r.platforms[0].checks[0].name, "image", "{r:?}");

        // Work on another image (another variant) does not hold this one: verified at once.
        let mut s = settings(CpuMode::Strict);
        let (later, _end) = Later::holding("localhost/app", Libc::Gnu, "linux/amd64", &s.cancel);
        s.earlier = Box::new(later);
        let r = verify::run(std::slice::from_ref(&it), &s, &ui).unwrap();
        assert!(!r.passed && !r.platforms[0].early, "{r:?}");
    }
}
