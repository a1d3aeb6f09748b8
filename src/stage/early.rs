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
//! written here). `SHIPIT_NO_EARLY=1` turns it off.

use super::build::{Built, OnBuilt};
use super::{deb_base, package, verify, verify_cmd};
use crate::error::Result;
use crate::exec::Cancel;
use crate::oci::layout::Layout;
use crate::session::Session;
use crate::ui::Ui;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

/// The environment variable that turns early work off (`1`).
pub const DISABLE_ENV: &str = "SHIPIT_NO_EARLY";

/// Early verifications that passed, under their cache keys (`verify::Settings::earlier`).
pub type Earlier = HashMap<String, verify::PlatformReport>;

/// Whether this run does early work: images packaged natively, more than one target, and not
/// turned off.
pub fn wanted(s: &Session) -> bool {
    s.config.package == crate::config::Packager::Native
        && s.plan.platforms().count() > 1
        && std::env::var(DISABLE_ENV).map_or(true, |v| v != "1")
}

/// Runs `build`, which is handed the callback to tell of each target built, with the early work
/// beside it, and returns the build's result and the early verifications that passed. The early
/// work is over when this returns: what it was doing when the last build ended is finished (its
/// result is wanted), what it had not started is left to the stages; when the build failed or
/// the run was cancelled it is stopped instead (guests killed, temporary files removed).
pub fn beside<R>(
    s: &Session,
    ui: &Ui,
    build: impl FnOnce(&OnBuilt<'_>) -> Result<R>,
) -> (Result<R>, Earlier) {
    let cancel = s.opts.cancel.child();
    let (tx, rx) = mpsc::channel::<usize>();
    let closing = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| work(s, rx, &closing, &cancel, ui));
        let tx = Mutex::new(tx);
        let tell = |i: usize, b: &Built| {
            if !b.fresh
                && let Ok(tx) = tx.lock()
            {
                let _ = tx.send(i);
            }
        };
        let built = build(&tell);
        closing.store(true, Ordering::SeqCst);
        // A failed build stops the early work (a signal has stopped it already).
        if built.is_err() && !cancel.is_cancelled() {
            cancel.cancel(libc::SIGTERM);
        }
        drop(tx);
        let earlier = worker.join().unwrap_or_default();
        (built, earlier)
    })
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
    ui: &Ui,
) -> Earlier {
    idle_priority();
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
        let t = Instant::now();
        if ready.is_none() {
            match prepare(s, &layout_dir, cancel, &muted) {
                Ok(r) => ready = Some(r),
                Err(e) => {
                    ui.verbose(format!(
                        "  early: nothing is packaged ahead ({}); left to the stages",
                        e.message()
                    ));
                    break;
                }
            }
        }
        let Some(r) = &ready else { break };
        let who = format!("{} ({})", p.platform, p.libc);
        let desc = match package::package_platform(
            cfg, plan, img, p, &r.layout, &r.bases, &r.shared, cancel, true,
        ) {
            Ok((desc, _, _)) => desc,
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
        if verify::is_cached(&item, &r.settings, &plan.out_dir) {
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
