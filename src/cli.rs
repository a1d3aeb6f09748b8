//! The command line: clap definitions, turned into plain `session::RunOptions` and handed to the
//! stages (nothing below this module imports it). `main` stays thin; every command returns
//! `error::Result`, whose `exit_code()` is the process exit code.

use crate::error::{Error, Kind, Result};
use crate::session::{RunOptions, Session};
use crate::stage::{self, Mode};
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
    /// How many targets build or verify at once (default: the number of cores), and how many
    /// registry uploads run at once when given (default: 4).
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
    /// Fail (exit 2) instead of changing pipeline.lock, as `cargo --locked`.
    #[arg(long, global = true)]
    pub locked: bool,
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
    /// Push what dist/oci holds, verifying it again: blobs go up while verification runs;
    /// manifests and indexes by digest only once every platform passed, then the tags, exact
    /// version first and `latest` last.
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
    /// Write or refresh pipeline.lock (beside pipeline.yaml) for the `deb:SUITE` bases: every
    /// Debian package of each suite and architecture with its version, filename and SHA256.
    /// Builds nothing; downloads only the signed indexes.
    Lock {
        /// Resolve again from the archive and replace the locked versions (default: keep a
        /// lock that covers the pipeline's packages, resolve again only when it does not).
        #[arg(long)]
        update: bool,
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
        /// Also run actions/attest-build-provenance on the pushed digests (adds the
        /// `id-token: write` and `attestations: write` permissions).
        #[arg(long)]
        attest_build_provenance: bool,
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
    /// Check IMAGE's attestations instead of running it: every signature against this SPKI PEM
    /// public key, and each platform manifest's SBOM, provenance and verification attestation.
    #[arg(long, value_name = "PUB.pem", requires = "image")]
    pub key: Option<std::path::PathBuf>,
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cancel = crate::exec::Cancel::install_signal_handlers();
    let cli = Cli::parse();
    let ui = Ui::new(
        cli.global.quiet,
        cli.global.verbose || cli.global.dry_run,
        cli.global.json,
    );
    match run(&cli, cancel.clone(), &ui) {
        Ok(()) => 0,
        Err(e) => {
            ui.end_groups();
            if let Some(sig) = cancel.signal() {
                let e = Error::interrupted(sig);
                ui.error(e.to_string());
                return e.exit_code();
            }
            match e.rendered_config() {
                // A rendered config error already says `file:line:col: error:` per problem.
                Some(rendered) => eprintln!("{rendered}"),
                None => ui.error(e.to_string()),
            }
            // Config errors were annotated per problem (file, line, column) when loaded.
            if e.kind() != Kind::Config {
                ui.github_error(&e.message());
            }
            e.exit_code()
        }
    }
}

impl Global {
    /// The run options below the command line, with the run's cancel token.
    pub fn run_options(&self, cancel: crate::exec::Cancel) -> RunOptions {
        RunOptions {
            config: self.config.clone(),
            platforms: self.platforms.clone(),
            variant: self.variant.clone(),
            dry_run: self.dry_run,
            json: self.json,
            verbose: self.verbose,
            quiet: self.quiet,
            jobs: self.jobs,
            out: self.out.clone(),
            locked: self.locked,
            cancel,
        }
    }
}

impl VerifyArgs {
    fn options(&self) -> stage::verify_cmd::VerifyOptions {
        stage::verify_cmd::VerifyOptions {
            image: self.image.clone(),
            run: self.run.clone(),
            expect_stdout: self.expect_stdout.clone(),
            allow_root: self.allow_root,
            insecure: self.insecure,
            key: self.key.clone(),
        }
    }
}

fn run(cli: &Cli, cancel: crate::exec::Cancel, ui: &Ui) -> Result<()> {
    let opts = cli.global.run_options(cancel);
    let session = |opts: RunOptions| Session::load(opts, ui);
    match &cli.command {
        Command::Plan => {
            let mut s = session(opts)?;
            // The build sysroots and their glibc floor, as far as pipeline.lock and what is
            // already assembled say (no network).
            stage::sysroots::annotate(&mut s.plan);
            let build_packages = s
                .plan
                .sysroots
                .as_ref()
                .map(|sp| sp.build_packages.clone())
                .unwrap_or_default();
            let libs = crate::syslibs::check(&s.plan, &build_packages, &s.opts.cancel);
            let libs = match libs {
                Ok(l) => Some(l),
                Err(e) => {
                    ui.warn(format!("C libraries not diagnosed: {}", e.message()));
                    None
                }
            };
            crate::report::print_plan(&s.plan, libs.as_deref(), ui);
            if let Some(sp) = &s.plan.sysroots {
                if !ui.json {
                    println!();
                    for line in sp.render() {
                        println!("{line}");
                    }
                }
                stage::sysroots::check_floor(sp, &sp.targets)?;
            }
            libs.map_or(Ok(()), |l| crate::syslibs::require_provided(&l))
        }
        Command::Doctor { fix } => {
            let s = session(opts)?;
            stage::doctor::run(&s, *fix, ui)
        }
        Command::Package => {
            let s = session(opts)?;
            if s.opts.dry_run {
                let steps = stage::steps(Mode::Package);
                stage::dry_run::print(&s.config, &s.plan, Mode::Package, &steps);
                return Ok(());
            }
            let _locks = stage::locks::take(&s, Mode::Package, ui)?;
            let packaged =
                stage::package::run(&s.config, &s.plan, s.opts.lock_mode(), &s.opts.cancel, ui)?;
            if s.opts.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&packaged).unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Verify(args) => stage::verify_cmd::run(&opts, &args.options(), ui),
        Command::Smoke => {
            let mut opts = opts;
            if opts.platforms.is_empty() {
                opts.platforms.push("linux/arm64".into());
            }
            stage::pipeline::run(Mode::Smoke, &session(opts)?, None, ui)
        }
        Command::Publish { password_stdin } => {
            let s = session(opts)?;
            let password = stage::release::read_password_stdin(*password_stdin)?;
            stage::pipeline::run(Mode::Publish, &s, password, ui)
        }
        Command::Release {
            password_stdin,
            no_push,
            split,
            merge,
        } => {
            let password = stage::release::read_password_stdin(*password_stdin)?;
            if *split {
                stage::pipeline::run(Mode::Split, &session(opts)?, password, ui)
            } else if !merge.is_empty() {
                stage::split::merge(&session(opts)?, merge, password, ui)
            } else {
                let mut s = session(opts)?;
                if *no_push {
                    s.config.publish.to = crate::config::PublishTo::Oci(s.plan.out_dir.join("oci"));
                }
                stage::pipeline::run(Mode::Release, &s, password, ui)
            }
        }
        Command::Ci(CiCommand::Github {
            matrix,
            arm64_runner,
            attest_build_provenance,
            force,
        }) => {
            let s = session(opts)?;
            let (cfg, plan) = (&s.config, &s.plan);
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
                config_path: s.opts.config.display().to_string(),
                attest_build_provenance: *attest_build_provenance,
            };
            let path = crate::ci::github::write_workflow(
                &cfg.root.join(".github/workflows"),
                &opts,
                *force,
            )
            // An existing workflow without --force: the command line's to fix (exit 2).
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
                // A current directory that cannot be read is the machine's (exit 3).
                .map_err(|e| Error::env(format!("current directory: {e}")))?;
            let pick = crate::stage::init::Pick {
                package: package.as_deref(),
                bin: bin.as_deref(),
            };
            stage::init::run(&dir, *force, pick, &opts.cancel, ui)
        }
        Command::Lock { update } => {
            let s = session(opts)?;
            let mode = if *update {
                crate::deb::LockMode::Update
            } else {
                s.opts.lock_mode()
            };
            // The build sysroots' rows first: a pipeline without a deb: base may still have them.
            stage::sysroots::run_lock(&s.plan, mode, &s.opts.cancel, ui)?;
            if s.plan.sysroots.is_some() && !s.plan.images.iter().any(|i| i.deb.is_some()) {
                return Ok(());
            }
            stage::deb_base::run_lock(&s.config, &s.plan, mode, &s.opts.cancel, ui)
        }
        Command::Build { keep_going } => {
            let s = session(opts)?;
            let build_opts = stage::build::Options {
                jobs: s.opts.jobs(),
                keep_going: *keep_going,
                dry_run: s.opts.dry_run,
                cancel: s.opts.cancel.clone(),
                lock_mode: s.opts.lock_mode(),
                on_built: None,
            };
            let report = stage::build::run(&s.plan, &build_opts, ui)?;
            if s.opts.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
