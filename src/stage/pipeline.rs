//! Walks `stage::RELEASE` for a command (`Mode`): each stage runs, or is skipped with its
//! reason, in the one order. The stages' own work lives in their modules; this is where
//! `release`, `publish`, `release --split` and `smoke` differ, stage by stage, in one match.

use super::{
    Mode, Stage, Step, archives, attach, build, dry_run, early, package, publish, release, split,
    verify, verify_cmd,
};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::ui::Ui;
use std::time::Instant;

/// What the stages made so far.
#[derive(Default)]
struct Made {
    packaged: Option<package::Packaged>,
    verified: Option<verify::Report>,
    pushed: Option<publish::Pushed>,
    attached: Option<attach::Attached>,
    /// The attach stage's SBOM inputs, gathered while verification runs.
    sbom: Option<attach::Prefetched>,
    /// Blob uploads started while verification runs (registry targets).
    early: Option<publish::EarlyUploads>,
    /// Images verified while later targets still built, and the one still being verified
    /// (`early`), for the verify stage.
    verified_early: early::Later,
    published: Option<publish::Published>,
    /// The archives, compressed while the images were verified and not yet in place.
    archiving: Option<Result<archives::Ready>>,
    archives: Option<archives::Archives>,
    /// A verification failure that `release --split` reports after writing its fragments.
    failed: Option<Error>,
    /// How long each stage that ran took, in order (for the report and `-v`).
    stages: Vec<release::StageTime>,
}

/// Runs `mode`'s walk of the pipeline (or, with `--dry-run`, describes it).
pub fn run(mode: Mode, s: &Session, password: Option<String>, ui: &Ui) -> Result<()> {
    let started = Instant::now();
    let steps = super::configured_steps(mode, &s.config);
    if mode == Mode::Split {
        split::check_job(s)?;
    }
    if s.opts.dry_run {
        dry_run::print(&s.config, &s.plan, mode, &steps);
        return Ok(());
    }
    // Another run writing the same dist/ or layout is waited for (see `locks`).
    let _locks = super::locks::take(s, mode, ui)?;
    let mut made = Made::default();
    let mut password = password;
    for step in &steps {
        if step.skip.is_some() {
            continue;
        }
        let t = Instant::now();
        if let Err(e) = run_stage(mode, step.stage, s, &mut made, &mut password, started, ui) {
            // Uploads still running (a stage between verify and publish failed) stop with it.
            if let Some(early) = made.early.take() {
                early.stop();
            }
            return Err(e);
        }
        let seconds = t.elapsed().as_secs_f64();
        ui.verbose(format!("{} took {seconds:.3}s", step.stage.name()));
        made.stages.push(release::StageTime {
            stage: step.stage.name(),
            seconds,
        });
    }
    for Step { stage, skip } in &steps {
        if let Some(why) = skip {
            ui.info(format!("skipped {}: {why}", stage.name()));
        }
    }
    match made.failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn run_stage(
    mode: Mode,
    stage: Stage,
    s: &Session,
    made: &mut Made,
    password: &mut Option<String>,
    started: Instant,
    ui: &Ui,
) -> Result<()> {
    let (cfg, plan) = (&s.config, &s.plan);
    match stage {
        Stage::Doctor => release::doctor_gate(s),
        Stage::Build => {
            // Every stage from build to verify runs in each mode that builds: the targets built
            // first are packaged and verified while the others build (`early`).
            let (built, earlier) = early::beside(s, mode != Mode::Smoke, ui, |tell| {
                build::run(plan, &build_options(s, Some(tell)), ui)
            });
            made.verified_early = earlier;
            built.map(drop)
        }
        Stage::Package => {
            made.packaged = Some(package::run(
                cfg,
                plan,
                s.opts.lock_mode(),
                &s.opts.cancel,
                ui,
            )?);
            Ok(())
        }
        Stage::Verify => {
            if super::steps(mode)
                .iter()
                .any(|st| st.stage == Stage::Attach && st.skip.is_none())
            {
                let p = packaged(made, s)?;
                made.sbom = attach::prefetch(s, &p);
            }
            let items = verify_cmd::packaged_items(plan)?;
            let mut settings = verify_cmd::settings(Some(cfg), None, &s.opts)?;
            // The verification cache (identical bytes, identical checks); smoke always runs.
            if mode != Mode::Smoke {
                settings.cache = Some(plan.out_dir.clone());
            }
            settings.earlier = Box::new(std::mem::take(&mut made.verified_early));
            // The blobs go up while the images are verified; manifests and tags only after.
            if matches!(mode, Mode::Release | Mode::Publish) {
                let p = publish::of_plan(&packaged(made, s)?, plan);
                let to_verify: Vec<_> = items.iter().map(|i| i.manifest.digest.clone()).collect();
                made.early = publish::EarlyUploads::start(
                    cfg,
                    &p,
                    &to_verify,
                    password,
                    publish::upload_jobs(s.opts.jobs),
                    &s.opts.cancel,
                    ui,
                )?;
            }
            // The archives are compressed meanwhile, yielding the CPU to the verification (which
            // decides when the run ends); the archives stage puts them in place.
            let archive = super::configured_steps(mode, cfg)
                .iter()
                .any(|st| st.stage == Stage::Archives && st.skip.is_none());
            let archive_cancel = s.opts.cancel.child();
            let (verified, failure) = std::thread::scope(|scope| {
                let archiving = archive.then(|| {
                    scope.spawn(|| {
                        crate::exec::priority::yield_to_the_run();
                        archives::prepare(cfg, plan, s.opts.jobs(), &archive_cancel)
                    })
                });
                let verified = verify::run(&items, &settings, ui);
                let failure = verified.as_ref().ok().and_then(verify::failure);
                // Archives no stage will put in place are not finished (a split job writes its
                // archives whatever its verification found: its fragment says which passed).
                if verified.is_err() || (failure.is_some() && mode != Mode::Split) {
                    archive_cancel.cancel(libc::SIGTERM);
                }
                made.archiving = archiving.map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::stage("archives: the work panicked")))
                });
                (verified, failure)
            });
            if (verified.is_err() || failure.is_some())
                && let Some(early) = made.early.take()
            {
                early.stop();
            }
            let verified = verified?;
            if s.opts.json && (mode == Mode::Smoke || (mode == Mode::Release && failure.is_some()))
            {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&verified).unwrap_or_default()
                );
            }
            made.verified = Some(verified);
            match (mode, failure) {
                (_, None) => Ok(()),
                (Mode::Split, Some(e)) => {
                    // Each platform's fragment says whether it passed; the job fails after them.
                    made.failed = Some(e);
                    Ok(())
                }
                (Mode::Smoke, Some(e)) => Err(e),
                (_, Some(e)) => Err(Error::stage(format!(
                    "{e}; no image was published and no tag moved"
                ))),
            }
        }
        Stage::Archives => {
            made.archives = Some(match made.archiving.take() {
                Some(ready) => ready?.commit(ui)?,
                None => archives::run(cfg, plan, s.opts.jobs(), &s.opts.cancel, ui)?,
            });
            Ok(())
        }
        Stage::Publish => {
            let packaged = packaged(made, s)?;
            let verified = made.verified.as_ref().ok_or_else(not_verified)?;
            if mode == Mode::Split {
                return split::push_and_write_fragments(
                    s,
                    &packaged,
                    verified,
                    made.archives.as_ref(),
                    password.take(),
                    ui,
                );
            }
            // A filtered publish publishes only the filtered images, and pushes (so tags) only
            // indexes whose every platform image was verified in this run.
            let packaged = publish::select(&packaged, plan, verified)?;
            made.packaged = Some(packaged.clone());
            made.pushed = Some(publish::push_by_digest(
                cfg,
                &packaged,
                verified,
                made.early.take(),
                password.take(),
                publish::upload_jobs(s.opts.jobs),
                &s.opts.cancel,
                ui,
            )?);
            Ok(())
        }
        Stage::Attach => {
            let packaged = packaged(made, s)?;
            let verified = made.verified.as_ref().ok_or_else(not_verified)?;
            let pushed = made.pushed.as_ref().ok_or_else(not_pushed)?;
            match attach::run(s, &packaged, verified, pushed, made.sbom.take(), ui) {
                Ok(a) => {
                    made.attached = Some(a);
                    Ok(())
                }
                Err(e) => {
                    ui.warn("no tag was moved");
                    Err(e)
                }
            }
        }
        Stage::Tag => {
            let packaged = packaged(made, s)?;
            let pushed = made.pushed.as_ref().ok_or_else(not_pushed)?;
            made.published = Some(publish::move_all_tags(pushed, &packaged, ui)?);
            Ok(())
        }
        Stage::Report => {
            let packaged = packaged(made, s)?;
            let verified = made.verified.as_ref().ok_or_else(not_verified)?;
            let published = made
                .published
                .as_ref()
                .ok_or_else(|| Error::stage("report: nothing was published"))?;
            let attached = made.attached.clone().unwrap_or_default();
            let archives = made.archives.clone().unwrap_or_default();
            let outcome = release::Outcome {
                packaged: &packaged,
                verified,
                published,
                attached: &attached,
                archives: &archives,
                stages: made.stages.clone(),
            };
            release::finish(s, outcome, started, ui)
        }
    }
}

/// The build stage's options: the run's, and whom to tell of each target built.
fn build_options<'a>(s: &Session, on_built: Option<&'a build::OnBuilt<'a>>) -> build::Options<'a> {
    build::Options {
        jobs: s.opts.jobs(),
        keep_going: false,
        dry_run: false,
        cancel: s.opts.cancel.clone(),
        lock_mode: s.opts.lock_mode(),
        on_built,
    }
}

/// What `package` made in this run, or (`shipit publish`) what dist/package.json records.
fn packaged(made: &mut Made, s: &Session) -> Result<package::Packaged> {
    match &made.packaged {
        Some(p) => Ok(p.clone()),
        None => {
            let p = package::load_for(&s.plan)?;
            made.packaged = Some(p.clone());
            Ok(p)
        }
    }
}

fn not_pushed() -> Error {
    Error::stage("tag: nothing was pushed by digest in this pipeline")
}

fn not_verified() -> Error {
    Error::stage("publish: no verification ran in this pipeline")
}
