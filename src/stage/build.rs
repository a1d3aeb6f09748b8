//! `shipit build`: one binary per (platform, libc), built in parallel (bounded by `--jobs`),
//! each with its own log. Right after a build the binary's ELF facts are checked against its
//! platform (machine, class, float ABI, ARM attributes: an "ARMv6" binary that is really ARMv7
//! fails here), then it is copied to `dist/bin/<libc>/<os>-<arch>[-<variant>]/<bin>` and recorded
//! in `dist/build.json` with its sha256, size and ELF facts.
//!
//! A target whose stamp from the last successful build still matches everything cargo would look
//! at is not handed to its toolchain at all: it is reported "fresh (no toolchain started)" and
//! only the post-build checks and the copy run (`build_fresh`; `SHIPIT_NO_FRESHNESS=1` turns
//! this off).

use crate::error::{Error, Result};
use crate::exec::{self, Cancel, ExecError};
use crate::oci::digest::Digest;
use crate::plan::{Plan, PlatformPlan};
use crate::platform::Libc;
use crate::ui::Ui;
use crate::verify::elf;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A build may take this long before its process group is killed.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// Called with a target's index in `Plan::platforms` and its record as soon as its binary is
/// in dist/bin, while other targets may still build (`stage::early`).
pub type OnBuilt<'a> = dyn Fn(usize, &Built) + Sync + 'a;

pub struct Options<'a> {
    pub jobs: usize,
    pub keep_going: bool,
    pub dry_run: bool,
    /// The run's cancel token: no new target starts once it is set, and running builds stop.
    pub cancel: Cancel,
    /// How the build sysroots' rows of `pipeline.lock` are used (`--locked`).
    pub lock_mode: crate::deb::LockMode,
    /// Told of each target built (not of failed or stopped ones).
    pub on_built: Option<&'a OnBuilt<'a>>,
}

/// One built binary, as recorded in `dist/build.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub platform: String,
    pub libc: Libc,
    pub target: String,
    pub backend: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Whether the compiler ran (false: cargo found everything up to date, or it never started).
    pub compiled: bool,
    /// Whether the toolchain was not started at all: the stamp of the last build still matched.
    pub fresh: bool,
    pub seconds: f64,
    pub elf: elf::ElfFacts,
    /// Warnings from the ELF check (errors fail the build).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: String,
    pub built: Vec<Built>,
}

/// `--dry-run`: each build command exactly as it would run, and the copy into dist/bin.
pub fn print_dry_run(plan: &Plan) {
    for (_, p) in plan.platforms() {
        println!(
            "# build {} ({}) with {}: {}",
            p.platform,
            p.libc,
            p.backend.name(),
            p.backend_reason
        );
        println!("{}", p.build.display());
        println!("cp {} {}", p.built.display(), p.binary.display());
    }
}

/// Builds every platform of the plan.
pub fn run(plan: &Plan, opts: &Options<'_>, ui: &Ui) -> Result<Report> {
    let targets: Vec<&PlatformPlan> = plan.platforms().map(|(_, p)| p).collect();
    if opts.dry_run {
        print_dry_run(plan);
        return Ok(Report {
            version: plan.version.to_string(),
            built: Vec::new(),
        });
    }
    let missing: Vec<String> = targets
        .iter()
        .filter(|p| !p.missing.is_empty())
        .map(|p| format!("  {} ({}): {}", p.platform, p.libc, p.missing.join(", ")))
        .collect();
    if !missing.is_empty() {
        return Err(Error::env(
            "this machine cannot build every planned target; run `shipit doctor --fix`",
        )
        .with_detail(missing.join("\n")));
    }
    // C libraries: what nothing provides stops here (exit 2), before any compiler runs; what
    // shipit provides (static OpenSSL for musl, the gnu targets' Debian sysroots with
    // `build.packages`) is made now, and a glibc pin below the sysroot's libraries is refused.
    let build_packages = plan
        .sysroots
        .as_ref()
        .map(|s| s.build_packages.clone())
        .unwrap_or_default();
    let (mut syslib_env, syslibs) =
        crate::syslibs::prepare(plan, &build_packages, opts.jobs, ui, &opts.cancel)?;
    let sysroots = super::sysroots::prepare(plan, opts.lock_mode, &opts.cancel, ui)?;
    super::sysroots::add_env(plan, &sysroots, &mut syslib_env);
    ui.step(format!(
        "build {} target{} ({} at a time)",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        opts.jobs.min(targets.len())
    ));
    let progress = Progress::new(ui, &targets);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<Built>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, targets.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(p) = targets.get(i) else { break };
                    if stop.load(Ordering::SeqCst) || opts.cancel.is_cancelled() {
                        progress.set(i, "skipped");
                        break;
                    }
                    progress.set(i, "compiling");
                    ui.verbose(format!("  $ {}", p.build.display()));
                    let env = syslib_env
                        .get(&(p.platform.to_string(), p.libc))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let cmd = crate::syslibs::sysroot::apply(sysroots.command(p), env);
                    let r = build_one(plan, p, &cmd, &stop, &opts.cancel, &progress, i);
                    if let (Ok(b), Some(tell)) = (&r, opts.on_built) {
                        tell(i, b);
                    }
                    match &r {
                        Ok(b) => progress.finish(
                            i,
                            format!(
                                "done in {:.1}s{}",
                                b.seconds,
                                if b.fresh {
                                    " (fresh: no toolchain started)"
                                } else if b.compiled {
                                    ""
                                } else {
                                    " (up to date: no compiler work)"
                                }
                            ),
                        ),
                        Err(_) => {
                            progress.finish(i, "FAILED".to_string());
                            if !opts.keep_going {
                                stop.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    results.lock().map(|mut v| v.push((i, r))).ok();
                }
            });
        }
        s.spawn(|| progress.tick_until_done(&targets, &opts.cancel));
    });
    progress.clear();
    opts.cancel.check()?;
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let mut built = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results {
        match r {
            Ok(b) => built.push(b),
            Err(Error::Exec(ExecError::Stopped { .. })) => {
                ui.info(format!(
                    "  {} ({}): stopped",
                    targets[i].platform, targets[i].libc
                ));
            }
            // Under the log's last lines: a hint naming the package and key, for known patterns.
            Err(e) => failures.push(crate::syslibs::hints::for_failed_build(
                e,
                &targets[i].log,
                (syslibs.iter())
                    .find(|t| t.platform == targets[i].platform && t.libc == targets[i].libc),
            )),
        }
    }
    let report = Report {
        version: plan.version.to_string(),
        built,
    };
    write_json(&plan.out_dir.join("build.json"), &report)?;
    if let Some(first) = failures.into_iter().next() {
        return Err(first);
    }
    let fresh = report.built.iter().filter(|b| !b.compiled).count();
    if fresh == report.built.len() && !report.built.is_empty() {
        ui.ok("every binary was already up to date: no compiler work was done");
        if report.built.iter().all(|b| b.fresh) {
            ui.ok("every target was fresh (no toolchain started)");
        }
    }
    for b in &report.built {
        ui.ok(format!(
            "{} ({}) {} {} bytes {}",
            b.platform,
            b.libc,
            b.path.display(),
            b.size,
            &b.sha256[..19]
        ));
    }
    Ok(report)
}

/// Builds one target with `cmd` (its plan's command with the build variables added).
fn build_one(
    plan: &Plan,
    p: &PlatformPlan,
    cmd: &exec::Cmd,
    stop: &AtomicBool,
    cancel: &Cancel,
    progress: &Progress,
    i: usize,
) -> Result<Built> {
    let start = Instant::now();
    let _ = std::fs::remove_file(&p.log);
    progress.set_log(i, &p.log);
    let not_fresh = super::build_fresh::check(p, cmd).err();
    let fresh = not_fresh.is_none();
    let started = std::time::SystemTime::now();
    if let Some(why) = &not_fresh {
        super::build_fresh::forget(p);
        run_toolchain(p, cmd, stop, cancel)?;
        append_log(&p.log, &format!("shipit: the toolchain ran: {why}\n"));
    } else {
        write_log(
            &p.log,
            "shipit: fresh (no toolchain started): nothing the binary depends on changed since its last build\n",
        );
    }
    let log = std::fs::read_to_string(&p.log).unwrap_or_default();
    let compiled = !fresh
        && log
            .lines()
            .any(|l| l.trim_start().starts_with("Compiling "));
    let built = finish_binary(p, compiled, fresh, start)?;
    if !fresh
        && let Err(why) = super::build_fresh::record(p, cmd, started, &plan.out_dir, &built.sha256)
    {
        append_log(
            &p.log,
            &format!("shipit: no freshness stamp recorded: {why}\n"),
        );
    }
    Ok(built)
}

/// Starts the target's toolchain (`cmd`: its build command with the build variables; its
/// output appended to the log).
fn run_toolchain(
    p: &PlatformPlan,
    cmd: &exec::Cmd,
    stop: &AtomicBool,
    cancel: &Cancel,
) -> Result<()> {
    exec::run_logged_until(cmd, &p.log, Some(BUILD_TIMEOUT), Some(stop), cancel).map_err(|e| {
        match e {
            // Not a failure of its own: `run` reports it as stopped.
            ExecError::Stopped { .. } => Error::from(e),
            other => {
                Error::from(other).context(format!("build of {} ({}) failed", p.platform, p.libc))
            }
        }
    })?;
    Ok(())
}

/// The post-build steps, whether or not the toolchain ran: the ELF check and the copy.
fn finish_binary(p: &PlatformPlan, compiled: bool, fresh: bool, start: Instant) -> Result<Built> {
    let bytes = std::fs::read(&p.built).map_err(|e| {
        Error::stage(format!(
            "build of {} ({}) reported success but {} is missing: {e}",
            p.platform,
            p.libc,
            p.built.display()
        ))
    })?;
    let facts = elf::inspect(&bytes).map_err(|e| {
        Error::stage(format!(
            "{}: {} is not a usable ELF binary: {e}",
            p.platform,
            p.built.display()
        ))
    })?;
    let (errors, warnings) = check_binary(p, &facts);
    if !errors.is_empty() {
        return Err(Error::stage(format!(
            "the {} ({}) binary does not fit its platform, so it was not used:",
            p.platform, p.libc
        ))
        .with_detail(
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    if let Some(dir) = p.binary.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = p.binary.with_extension("tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        })
        .and_then(|_| std::fs::rename(&tmp, &p.binary))
        .map_err(|e| Error::io(&p.binary, e))?;
    Ok(Built {
        platform: p.platform.to_string(),
        libc: p.libc,
        target: p.target.clone(),
        backend: p.backend.name().to_string(),
        path: p.binary.clone(),
        sha256: Digest::of(&bytes).to_string(),
        size: bytes.len() as u64,
        compiled,
        fresh,
        seconds: start.elapsed().as_secs_f64(),
        elf: facts,
        warnings,
    })
}

/// Checks a binary against its platform and libc: (errors, warnings). The glibc floor is
/// checked by `verify`, against the image's own glibc.
pub fn check_binary(p: &PlatformPlan, facts: &elf::ElfFacts) -> (Vec<String>, Vec<String>) {
    let expect = elf::ElfExpect::for_platform(p.spec).with_libc(p.libc);
    let findings = elf::check(facts, &expect);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        match f.severity {
            elf::Severity::Error => errors.push(f.to_string()),
            elf::Severity::Warning => warnings.push(f.to_string()),
        }
    }
    (errors, warnings)
}

fn write_log(log: &Path, text: &str) {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(log, text).ok();
}

fn append_log(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        f.write_all(text.as_bytes()).ok();
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// One line per target: indicatif bars on a terminal, plain lines otherwise.
struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    names: Vec<String>,
    logs: Mutex<Vec<Option<PathBuf>>>,
    done: Mutex<Vec<bool>>,
    quiet: bool,
}

impl Progress {
    fn new(ui: &Ui, targets: &[&PlatformPlan]) -> Progress {
        let names: Vec<String> = targets
            .iter()
            .map(|p| format!("{} ({})", p.platform, p.libc))
            .collect();
        let bars = ui.bars.then(|| {
            let mp = indicatif::MultiProgress::new();
            let style =
                indicatif::ProgressStyle::with_template("{spinner} {prefix:<24} {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let bars = names
                .iter()
                .map(|n| {
                    let b = mp.add(indicatif::ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(n.clone());
                    b.set_message("waiting");
                    b
                })
                .collect();
            (mp, bars)
        });
        Progress {
            bars,
            logs: Mutex::new(vec![None; names.len()]),
            done: Mutex::new(vec![false; names.len()]),
            names,
            quiet: ui.quiet,
        }
    }

    fn set(&self, i: usize, msg: &str) {
        match &self.bars {
            Some((_, bars)) => bars[i].set_message(msg.to_string()),
            None if !self.quiet && msg != "compiling" => eprintln!("  {}: {msg}", self.names[i]),
            None if !self.quiet => eprintln!("  {}: started", self.names[i]),
            None => {}
        }
    }

    fn set_log(&self, i: usize, log: &Path) {
        if let Ok(mut l) = self.logs.lock() {
            l[i] = Some(log.to_path_buf());
        }
    }

    fn finish(&self, i: usize, msg: String) {
        if let Ok(mut d) = self.done.lock() {
            d[i] = true;
        }
        match &self.bars {
            Some((_, bars)) => bars[i].finish_with_message(msg),
            None if !self.quiet => eprintln!("  {}: {msg}", self.names[i]),
            None => {}
        }
    }

    /// Refreshes the bars from the build logs ("compiling serde (12 crates)") until all finish.
    fn tick_until_done(&self, targets: &[&PlatformPlan], cancel: &Cancel) {
        let Some((_, bars)) = &self.bars else { return };
        loop {
            let done = self
                .done
                .lock()
                .map(|d| d.iter().all(|x| *x))
                .unwrap_or(true);
            if done {
                return;
            }
            let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
            for (i, log) in logs.iter().enumerate() {
                let finished = self.done.lock().map(|d| d[i]).unwrap_or(true);
                if finished {
                    continue;
                }
                if let Some(text) = log.as_ref().and_then(|l| std::fs::read_to_string(l).ok()) {
                    let crates: Vec<&str> = text
                        .lines()
                        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
                        .collect();
                    let last = crates
                        .last()
                        .map(|c| c.split(' ').next().unwrap_or(c))
                        .unwrap_or("");
                    bars[i].set_message(format!(
                        "compiling {last} ({} crates) with {}",
                        crates.len(),
                        targets[i].backend.name()
                    ));
                }
                bars[i].tick();
            }
            if cancel.sleep(Duration::from_millis(150)).is_err() {
                return;
            }
        }
    }

    fn clear(&self) {
        if let Some((mp, _)) = &self.bars {
            let _ = mp.clear();
        }
    }
}
