//! The command line: clap definitions and the dispatch to stages. `main` stays thin; every
//! command returns `error::Result`, mapped to the documented exit codes here.

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::plan::{self, Facts, Plan};
use crate::platform::Libc;
use crate::ui::Ui;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes: 0 ok · 1 a stage failed (build, verify, publish) · 2 usage or config error ·
3 environment (tool missing or too old, credentials unusable) · 130/143 interrupted.

shipit reads pipeline.yaml in the current directory (or -c PATH / SHIPIT_CONFIG).";

/// shipit: turn one Rust project into a verified multi-arch container release.
///
/// It cross-compiles the binary for every platform and libc variant, packages each into an OCI
/// image, runs every platform image under QEMU before anything is tagged, assembles the
/// multi-arch index and publishes it.
#[derive(Parser, Debug)]
#[command(name = "shipit", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// The pipeline file.
    #[arg(
        short = 'c',
        long = "config",
        env = "SHIPIT_CONFIG",
        global = true,
        default_value = "pipeline.yaml"
    )]
    pub config: PathBuf,
    /// Only this platform (repeatable), e.g. --platform linux/arm64.
    #[arg(long = "platform", global = true, value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// Only this libc variant.
    #[arg(long, global = true, value_parser = ["gnu", "musl"])]
    pub variant: Option<String>,
    /// Print every command and push the run would do, and do none of it.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Machine-readable output on stdout (and nothing else there).
    #[arg(long, global = true)]
    pub json: bool,
    /// Show every command as it runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How many targets build or verify at once (default: the number of cores).
    #[arg(long, global = true, value_name = "N")]
    pub jobs: Option<usize>,
    /// Where binaries, images, logs and reports go.
    #[arg(
        long = "out",
        global = true,
        default_value = "dist",
        value_name = "DIR"
    )]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the plan: version, images and tags, and per platform the Rust target, backend
    /// (and why), linker, base image, QEMU binary and CPU. Reads only the config, the Cargo
    /// manifest, git and which tools exist.
    Plan,
    /// Check that every tool the plan needs is installed and new enough; say how to install
    /// what is missing. Exits 3 when something required is missing.
    Doctor {
        /// Install what is missing where possible (apt as root, rustup, pip).
        #[arg(long)]
        fix: bool,
    },
    /// Package the built binaries into per-platform OCI images and one multi-arch index per
    /// libc variant, in the OCI layout dist/oci (staging refs only: no release tag moves).
    Package,
    /// Verify every platform image before anything is tagged: static ELF/library/glibc/user
    /// checks, then each check of the pipeline under QEMU with the platform's strict CPU, in a
    /// sandbox made from the image's own layers. Without IMAGE: what `shipit package` made.
    Verify(VerifyArgs),
    /// Build, package and verify one platform (default linux/arm64), publishing nothing: the
    /// local smoke test.
    Smoke,
    /// Push what dist/oci holds (after verifying it again): blobs, manifests and indexes by
    /// digest first, then the tags, exact version first and `latest` last.
    Publish {
        /// Read the registry password from standard input (user in SHIPIT_REGISTRY_USER).
        #[arg(long)]
        password_stdin: bool,
    },
    /// The whole pipeline: doctor, build, package, verify, publish, report. No tag moves unless
    /// every platform image passed verification.
    Release {
        /// Read the registry password from standard input (user in SHIPIT_REGISTRY_USER).
        #[arg(long)]
        password_stdin: bool,
        /// Publish to the OCI layout dist/oci instead of the pipeline's target (a dry rehearsal
        /// that still builds, packages and verifies everything).
        #[arg(long)]
        no_push: bool,
        /// One job of a matrix: build, package, verify and push this job's --platform by digest
        /// (no index, no tag), and write dist/fragments/<libc>-<platform>.json.
        #[arg(long, conflicts_with_all = ["merge", "no_push"])]
        split: bool,
        /// The final job: check the fragments cover exactly the planned platforms and passed,
        /// then push the indexes and move the tags.
        #[arg(long, value_name = "FRAGMENT", num_args = 1.., conflicts_with = "no_push")]
        merge: Vec<PathBuf>,
    },
    /// Continuous integration helpers.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Write a commented pipeline.yaml and docker/Dockerfile for the Cargo project in the
    /// current directory.
    Init {
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// The workspace member to release (default: the only one with a binary).
        #[arg(long, value_name = "NAME")]
        package: Option<String>,
        /// The binary to release (default: the package's only one).
        #[arg(long, value_name = "NAME")]
        bin: Option<String>,
    },
    /// Compile every (platform, libc) target into dist/bin/<libc>/<os>-<arch>[-<variant>]/.
    Build {
        /// Build the other targets when one fails (default: stop them).
        #[arg(long)]
        keep_going: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CiCommand {
    /// Write .github/workflows/release.yml for this project: one job, or with --matrix one job
    /// per platform (`release --split`) plus a merge job (`release --merge`).
    Github {
        /// One job per platform and a merge job.
        #[arg(long)]
        matrix: bool,
        /// Runner label for linux/arm64 jobs (native arm64 runners), e.g. ubuntu-24.04-arm.
        #[arg(long, value_name = "LABEL")]
        arm64_runner: Option<String>,
        /// Overwrite an existing workflow.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// `oci:DIR[:TAG]` or `REGISTRY/REPO[:TAG|@DIGEST]`: any multi-arch or single image.
    pub image: Option<String>,
    /// A run check: the entrypoint with these arguments (shell-quoted), e.g. --run "--version".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub run: Option<String>,
    /// With --run: a regex its stdout must match.
    #[arg(long, value_name = "REGEX", requires = "run")]
    pub expect_stdout: Option<String>,
    /// Accept an image whose user is root.
    #[arg(long)]
    pub allow_root: bool,
    /// Plain http to a non-loopback registry (credentials are never sent over it).
    #[arg(long)]
    pub insecure: bool,
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    crate::exec::install_signal_handlers();
    let cli = Cli::parse();
    let ui = Ui::new(
        cli.global.quiet,
        cli.global.verbose || cli.global.dry_run,
        cli.global.json,
    );
    match run(&cli, &ui) {
        Ok(()) => 0,
        Err(e) => {
            ui.end_groups();
            if let Some(sig) = crate::exec::cancelled() {
                let e = Error::interrupted(sig);
                ui.error(e.to_string());
                return e.exit_code();
            }
            if e.kind == crate::error::Kind::Config && e.message.contains(": error: ") {
                // A rendered config error already says `file:line:col: error:` per problem.
                eprintln!("{e}");
            } else {
                ui.error(e.to_string());
            }
            if ui.github && e.kind != crate::error::Kind::Config {
                println!("::error::{}", crate::ui::escape_gh(&e.message));
            }
            e.exit_code()
        }
    }
}

fn run(cli: &Cli, ui: &Ui) -> Result<()> {
    match &cli.command {
        Command::Plan => {
            let (_, plan) = load_plan(&cli.global, ui)?;
            crate::report::print_plan(&plan, ui);
            Ok(())
        }
        Command::Doctor { fix } => {
            let (cfg, plan) = load_plan(&cli.global, ui)?;
            crate::stage::doctor::run(&cfg, &plan, *fix, &cli.global, ui)
        }
        Command::Package => {
            let (cfg, plan) = load_plan(&cli.global, ui)?;
            if cli.global.dry_run {
                for (img, p) in plan.platforms() {
                    println!(
                        "# package {} ({}) on {} into {}",
                        p.platform,
                        img.variant,
                        img.base,
                        plan.out_dir.join("oci").display()
                    );
                }
                return Ok(());
            }
            let packaged = crate::stage::package::run(&cfg, &plan, ui)?;
            if cli.global.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&packaged).unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Verify(args) => crate::stage::verify_cmd::run(&cli.global, args, ui),
        Command::Smoke => crate::stage::verify_cmd::smoke(&cli.global, ui),
        Command::Publish { password_stdin } => {
            crate::stage::release::publish_only(&cli.global, *password_stdin, ui)
        }
        Command::Release {
            password_stdin,
            no_push,
            split,
            merge,
        } => {
            let password = crate::stage::release::read_password_stdin(*password_stdin)?;
            if *split {
                crate::stage::split::split(&cli.global, password, ui)
            } else if !merge.is_empty() {
                crate::stage::split::merge(&cli.global, merge, password, ui)
            } else {
                crate::stage::release::release(&cli.global, password, *no_push, ui)
            }
        }
        Command::Ci(CiCommand::Github {
            matrix,
            arm64_runner,
            force,
        }) => {
            let (cfg, plan) = load_plan(&cli.global, ui)?;
            let mut platforms: Vec<String> = Vec::new();
            for (_, p) in plan.platforms() {
                if !platforms.iter().any(|x| x == p.platform) {
                    platforms.push(p.platform.to_string());
                }
            }
            let registry_host = cfg
                .image
                .repository
                .split('/')
                .next()
                .filter(|h| h.contains('.') || h.contains(':'))
                .map(str::to_string);
            let opts = crate::ci::github::WorkflowOptions {
                matrix: *matrix,
                platforms,
                arm64_runner: arm64_runner.clone(),
                registry_host,
                config_path: cli.global.config.display().to_string(),
            };
            let path = crate::ci::github::write_workflow(
                &cfg.root.join(".github/workflows"),
                &opts,
                *force,
            )
            .map_err(Error::config)?;
            ui.ok(format!("wrote {}", path.display()));
            Ok(())
        }
        Command::Init {
            force,
            package,
            bin,
        } => {
            let dir = std::env::current_dir()
                .map_err(|e| Error::env(format!("current directory: {e}")))?;
            let pick = crate::stage::init::Pick {
                package: package.as_deref(),
                bin: bin.as_deref(),
            };
            crate::stage::init::run(&dir, *force, pick, ui)
        }
        Command::Build { keep_going } => {
            let (_, plan) = load_plan(&cli.global, ui)?;
            let opts = crate::stage::build::Options {
                jobs: jobs(&cli.global),
                keep_going: *keep_going,
                dry_run: cli.global.dry_run,
            };
            let report = crate::stage::build::run(&plan, &opts, ui)?;
            if cli.global.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

pub fn jobs(g: &Global) -> usize {
    g.jobs.filter(|j| *j > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// Loads and validates the config; a config error exits 2 (with GitHub annotations in Actions).
pub fn load_config(g: &Global, ui: &Ui) -> Result<Config> {
    config::load(&g.config).map_err(|e| {
        if ui.github {
            print!("{}", e.github_annotations());
        }
        Error::config(e.to_string())
    })
}

/// Config + facts + plan: what every pipeline command starts with.
pub fn load_plan(g: &Global, ui: &Ui) -> Result<(Config, Plan)> {
    let cfg = load_config(g, ui)?;
    // cargo metadata, git and the tool probes are independent processes: run them side by side.
    let (cargo_facts, git, tools) = std::thread::scope(|s| {
        let git = s.spawn(|| crate::tools::git::facts(&cfg.root));
        let tools = s.spawn(|| crate::tools::inventory_for(&cfg));
        let cargo_facts =
            crate::tools::cargo::facts(&cfg.project.manifest, cfg.project.package.as_deref());
        (
            cargo_facts,
            git.join().unwrap_or_default(),
            tools.join().unwrap_or_default(),
        )
    });
    let (package, package_version, bins, manifest_path, target_dir) = cargo_facts
        .map_err(|e| Error::config(format!("{}: {e}", cfg.project.manifest.display())))?;
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
    };
    let out_dir = if g.out.is_absolute() {
        g.out.clone()
    } else {
        std::env::current_dir()
            .map(|d| d.join(&g.out))
            .unwrap_or_else(|_| g.out.clone())
    };
    let opts = plan::Options {
        platforms: g.platforms.clone(),
        variant: g.variant.as_deref().and_then(Libc::parse),
        out_dir,
    };
    let plan = plan::make(&cfg, &facts, &opts)?;
    Ok((cfg, plan))
}
