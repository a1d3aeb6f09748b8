//! One run of shipit below the command line: the plain run options (`RunOptions`, no clap
//! types), the loaded and validated `Config`, the `Facts` gathered from the machine and the
//! `Plan` made from them. The CLI builds a `RunOptions` from its arguments and hands it over;
//! every stage reads what it needs from a `Session`, never from the CLI.

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::plan::{self, Facts, Plan};
use crate::platform::Libc;
use crate::ui::Ui;
use std::path::PathBuf;

/// The options every command shares, as plain values.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The pipeline file.
    pub config: PathBuf,
    /// `--platform` filters (empty: every planned platform).
    pub platforms: Vec<String>,
    /// Only this libc variant (`gnu` or `musl`).
    pub variant: Option<String>,
    /// Say what would be done, do none of it.
    pub dry_run: bool,
    /// Machine-readable output on stdout.
    pub json: bool,
    pub verbose: bool,
    pub quiet: bool,
    /// How many targets build or verify at once (`None` or 0: the number of cores).
    pub jobs: Option<usize>,
    /// Where binaries, images, logs and reports go (relative to the current directory).
    pub out: PathBuf,
    /// `--locked`: `pipeline.lock` must not change (as `cargo --locked`).
    pub locked: bool,
    /// The run's cancel token, made where the signal handlers are installed (`cli::main`);
    /// every stage takes it from here. `Default`: a token no signal reaches.
    pub cancel: Cancel,
}

impl RunOptions {
    /// How `deb:` bases treat `pipeline.lock` in this run (`shipit lock --update` asks for
    /// `LockMode::Update` itself).
    pub fn lock_mode(&self) -> crate::deb::LockMode {
        if self.locked {
            crate::deb::LockMode::Locked
        } else {
            crate::deb::LockMode::Use
        }
    }

    /// How many targets build or verify at once.
    pub fn jobs(&self) -> usize {
        self.jobs.filter(|j| *j > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }
}

/// Config + facts + plan + run options: what every pipeline command starts with.
#[derive(Debug, Clone)]
pub struct Session {
    pub opts: RunOptions,
    pub config: Config,
    pub facts: Facts,
    pub plan: Plan,
}

impl Session {
    /// Loads the config, gathers the facts (cargo metadata, git and the tool probes side by
    /// side) and makes the plan.
    pub fn load(opts: RunOptions, ui: &Ui) -> Result<Session> {
        let config = load_config(&opts, ui)?;
        let (cargo_facts, git, tools) = std::thread::scope(|s| {
            let git = s.spawn(|| crate::tools::git::facts(&config.root, &opts.cancel));
            let tools = s.spawn(|| crate::tools::inventory_for(&config, &opts.cancel));
            let cargo_facts = crate::tools::cargo::facts(
                &config.project.manifest,
                config.project.package.as_deref(),
                &opts.cancel,
            );
            (
                cargo_facts,
                git.join().unwrap_or_default(),
                tools.join().unwrap_or_default(),
            )
        });
        // `project.manifest` is the config's: `cargo metadata` failing on it is exit 2.
        let (package, package_version, bins, manifest_path, target_dir, meta) = cargo_facts
            .map_err(|e| Error::config(format!("{}: {e}", config.project.manifest.display())))?;
        let facts = Facts {
            package,
            package_version,
            bins,
            manifest_path,
            target_dir,
            git,
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            tools,
            meta,
            deb_lock: read_deb_lock(&config)?,
        };
        let out_dir = if opts.out.is_absolute() {
            opts.out.clone()
        } else {
            std::env::current_dir()
                .map(|d| d.join(&opts.out))
                .unwrap_or_else(|_| opts.out.clone())
        };
        let plan_opts = plan::Options {
            platforms: opts.platforms.clone(),
            variant: opts.variant.as_deref().and_then(Libc::parse),
            out_dir,
        };
        let plan = plan::make(&config, &facts, &plan_opts, crate::tools::build_command)?;
        Ok(Session {
            opts,
            config,
            facts,
            plan,
        })
    }
}

/// What `pipeline.lock` beside the pipeline says each `deb:SUITE` base of the config will hold
/// (every variant and platform, before any filter), resolved from the lock alone (no network);
/// `None` without a lock or a `deb:` base. A lock that does not parse is a config error (exit 2).
fn read_deb_lock(config: &Config) -> Result<Option<plan::DebLockView>> {
    let bases: Vec<(&str, &'static crate::platform::Platform)> = config
        .variants
        .iter()
        .filter_map(|v| match &v.base {
            config::Base::Deb { suite } => Some((suite.as_str(), &v.platforms)),
            _ => None,
        })
        .flat_map(|(suite, ps)| ps.iter().map(move |p| (suite, *p)))
        .collect();
    if bases.is_empty() {
        return Ok(None);
    }
    let Some(lock) = crate::deb::Lock::read(&config.root.join("pipeline.lock"))? else {
        return Ok(None);
    };
    let mut view = plan::DebLockView::new();
    for (suite, p) in bases {
        let Ok(arch) = crate::deb::debian_arch(p) else {
            continue;
        };
        let request = crate::deb::Request::new(suite, arch, &config.image.packages);
        let entry = crate::deb::resolve_locked(&lock, &request)
            .map(|r| {
                r.packages
                    .iter()
                    .map(|p| plan::DebPackagePlan {
                        name: p.name.clone(),
                        version: p.version.clone(),
                    })
                    .collect()
            })
            .map_err(|e| e.to_string());
        view.insert((suite.to_string(), arch.to_string()), entry);
    }
    Ok(Some(view))
}

/// Loads and validates the config; a config error exits 2 (with GitHub annotations in Actions).
pub fn load_config(opts: &RunOptions, ui: &Ui) -> Result<Config> {
    config::load(&opts.config).map_err(|e| {
        ui.github_config_error(&e);
        Error::Config(e)
    })
}
