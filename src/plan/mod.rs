//! The Plan: every detail of a release decided before anything runs — version, tags, and for
//! each (platform, libc) the Rust target, backend (and why), linker, the exact build command,
//! where the binary lands, the base image, and the QEMU binary and CPU that will verify it.
//!
//! `plan::make` is pure: it reads only the validated config and the `Facts` that the caller
//! gathered (Cargo metadata, git, the tool inventory). `shipit plan`, `--dry-run` and a real run
//! all use the same value, and tests check that a run executes the commands listed here.

pub mod tags;

use crate::config::{Backend, Base, Config, CpuMode, PublishTo};
use crate::exec::Cmd;
use crate::platform::{Libc, Platform};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the plan reads besides the config. Gathered by `session::Session::load`.
#[derive(Debug, Clone)]
pub struct Facts {
    pub package: String,
    pub package_version: semver::Version,
    pub bins: Vec<String>,
    pub manifest_path: PathBuf,
    pub target_dir: PathBuf,
    pub git: GitFacts,
    /// SOURCE_DATE_EPOCH from the environment, if set.
    pub source_date_epoch: Option<i64>,
    pub tools: Inventory,
    /// The package's descriptive Cargo keys (for the image annotations and release archives).
    pub meta: CrateMeta,
    /// What `pipeline.lock` (beside the pipeline file) says each `deb:` base will hold, by
    /// (suite, Debian architecture): the packages, or why the lock does not cover them. `None`:
    /// no lock file (or no `deb:` base). Read by the session: the plan reads no file.
    pub deb_lock: Option<DebLockView>,
}

#[derive(Debug, Clone, Default)]
pub struct GitFacts {
    pub sha: Option<String>,
    /// The tag pointing exactly at HEAD (`git describe --tags --exact-match`).
    pub exact_tag: Option<String>,
    pub commit_time: Option<i64>,
    /// The branch built (a pull request's head branch), from `GITHUB_*` or git.
    pub branch: Option<String>,
    /// The pull request number, when building one (`GITHUB_REF=refs/pull/N/merge`).
    pub pr: Option<u64>,
    /// The repository's default branch (for the `edge` tag), when known.
    pub default_branch: Option<String>,
    /// Where the source lives, as an https URL without credentials: git's `origin` remote, else
    /// `https://github.com/$GITHUB_REPOSITORY`.
    pub source_url: Option<String>,
}

/// The descriptive keys of the Cargo package, as `cargo metadata` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CrateMeta {
    pub repository: Option<String>,
    /// The `license` key as written (`MIT/Apache-2.0` included).
    pub license: Option<String>,
    /// The `license-file` key, absolute.
    pub license_file: Option<PathBuf>,
    pub description: Option<String>,
    pub homepage: Option<String>,
}

/// Which build tools the machine has, as far as the planner needs to know.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub zigbuild: bool,
    pub cross: bool,
    pub docker: bool,
    /// Targets whose rust-std component is installed.
    pub rust_std: BTreeSet<String>,
    pub rust_src: bool,
    /// Cross gcc triples found (`aarch64-linux-gnu` for `aarch64-linux-gnu-gcc`).
    pub gcc: BTreeSet<String>,
}

/// Everything a backend needs to make its build command.
/// The planner fills it; `tools::build_command` spells the command (the plan names no tool
/// module: tools read plan types, not the other way round).
pub struct BuildSpec<'a> {
    pub backend: Backend,
    pub target: &'a str,
    pub libc: Libc,
    pub glibc: Option<(u32, u32)>,
    pub build_std: bool,
    pub linker: Option<&'a str>,
    pub project: &'a ProjectPlan,
    pub manifest: &'a Path,
    /// CARGO_TARGET_DIR for this target (one per target, so targets build in parallel).
    pub target_dir: &'a Path,
    pub platform: &'static Platform,
}

/// Filters and locations from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--platform` filters (empty: all).
    pub platforms: Vec<String>,
    pub variant: Option<Libc>,
    /// `--out` (absolute).
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub version: semver::Version,
    pub revision: Option<String>,
    /// Timestamps inside images (SOURCE_DATE_EPOCH, else the commit time, else 0).
    pub source_date_epoch: i64,
    pub project: ProjectPlan,
    pub images: Vec<ImagePlan>,
    pub out_dir: PathBuf,
    /// Where `publish` sends images: an OCI layout path or `registry`.
    pub publish_to: String,
    /// The gnu targets' build sysroots (`None` when `build.packages` is empty).
    pub sysroots: Option<SysrootsPlan>,
    /// A hash of what the release is, independent of `--platform`/`--variant` filters:
    /// `package_facts` (version, repository, per variant its tags, platforms and base, the image
    /// config) plus the revision and the epoch. Split jobs of one release share it; `--merge`
    /// refuses fragments of another release.
    pub identity: String,
    /// What an image made from this plan is, as far as publishing goes: version, repository,
    /// per variant its tags, platforms and base, the binary, the image config and what its
    /// standard annotations are made of (Cargo's license, description, homepage; the source).
    /// `package` records its digest in dist/package.json; publish refuses a package made from
    /// another.
    #[serde(skip)]
    pub package_facts: serde_json::Value,
    /// The digest of `package_facts`.
    #[serde(skip)]
    pub package_digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectPlan {
    pub root: PathBuf,
    pub manifest: PathBuf,
    pub package: String,
    pub bin: String,
    pub profile: String,
    pub features: Vec<String>,
    /// The package's descriptive Cargo keys.
    pub meta: CrateMeta,
    /// Where the source lives: Cargo's `repository`, else the git remote (https, no
    /// credentials), else `https://github.com/$GITHUB_REPOSITORY`.
    pub source: Option<String>,
    /// The run's dependency graph, read once when a stage first needs it (empty here: planning
    /// stays pure); clones of the plan share it (`tools::cargo::graph_for_targets`).
    #[serde(skip)]
    pub graph: crate::tools::memo::GraphMemo,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    pub variant: Libc,
    pub repository: String,
    pub tags: Vec<String>,
    /// Templates that made no tag here, and why (`{pr}` outside a pull request, ...).
    pub dropped_tags: Vec<tags::Dropped>,
    pub base: String,
    #[serde(skip)]
    pub base_ref: Base,
    pub entrypoint: Vec<String>,
    /// The `deb:SUITE` base and the packages asked for (None for the other bases).
    pub deb: Option<DebBasePlan>,
    pub platforms: Vec<PlatformPlan>,
}

/// `pipeline.lock` as the plan sees it: (suite, arch) → the locked packages or why not.
pub type DebLockView = BTreeMap<(String, String), Result<Vec<DebPackagePlan>, String>>;

/// A `deb:SUITE` base as the plan records it.
#[derive(Debug, Clone, Serialize)]
pub struct DebBasePlan {
    pub suite: String,
    /// `image.packages` as written (`name` or `name=version`), beyond `deb::BASE_PACKAGES`.
    pub packages: Vec<String>,
    /// `pipeline.lock`, beside the pipeline file.
    pub lock: PathBuf,
}

/// What a platform's `deb:` base will hold.
#[derive(Debug, Clone, Serialize)]
pub struct DebPlatformPlan {
    /// The Debian architecture (`deb::debian_arch`).
    pub arch: String,
    /// The packages and versions from `pipeline.lock`; `None` until the lock covers them.
    pub locked: Option<Vec<DebPackagePlan>>,
    /// Where the versions come from: `pipeline.lock`, or `package-time` (resolved from the
    /// Debian archive when packaging).
    pub source: DebSource,
    /// Why the lock does not give them (`source: package-time`), in words.
    pub unlocked_reason: Option<String>,
}

/// Where a `deb:` base's package versions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DebSource {
    #[serde(rename = "pipeline.lock")]
    Lock,
    #[serde(rename = "package-time")]
    PackageTime,
}

impl DebPlatformPlan {
    /// Where the versions come from, in words: `pipeline.lock`, or `resolved at package time
    /// (why)`.
    pub fn describe_source(&self) -> String {
        match (self.source, &self.unlocked_reason) {
            (DebSource::Lock, _) => "pipeline.lock".to_string(),
            (DebSource::PackageTime, Some(why)) => format!("resolved at package time ({why})"),
            (DebSource::PackageTime, None) => "resolved at package time".to_string(),
        }
    }
}

/// The gnu targets' Debian build sysroots: `libc6-dev` plus `build.packages`, from the suite of
/// the gnu variant's `deb:` base (bookworm when the base is not `deb:`), locked in
/// `pipeline.lock` beside the base's packages. The plan decides which targets get one; the lock
/// and an assembled sysroot fill in `sysroot` and `glibc_floor` (`stage::sysroots::annotate`
/// for `shipit plan`, `stage::sysroots::prepare` for a build).
#[derive(Debug, Clone, Serialize)]
pub struct SysrootsPlan {
    /// What every sysroot is resolved from: `libc6-dev`, then `build.packages`.
    pub packages: Vec<String>,
    /// `build.packages` as written.
    pub build_packages: Vec<String>,
    /// `pipeline.lock`, beside the pipeline file.
    pub lock: PathBuf,
    /// Where sysroots are unpacked: `<cargo target dir>/shipit/sysroot`.
    pub dir: PathBuf,
    /// `build.glibc` as pinned (`2.34`).
    pub glibc_pin: Option<String>,
    /// The pipeline file (for an error at `build.glibc`).
    #[serde(skip)]
    pub config_file: PathBuf,
    pub targets: Vec<SysrootTarget>,
}

/// One gnu target's sysroot.
#[derive(Debug, Clone, Serialize)]
pub struct SysrootTarget {
    pub platform: &'static str,
    pub libc: Libc,
    pub target: String,
    pub suite: String,
    /// Why this suite, in words: `the deb:bookworm base`, or the default.
    #[serde(rename = "suite_reason")]
    pub suite_from: String,
    /// The Debian architecture.
    pub arch: String,
    /// The assembled sysroot, once known.
    pub sysroot: Option<PathBuf>,
    /// The glibc the linked libraries need, once the sysroot is assembled.
    pub glibc_floor: Option<GlibcFloor>,
    /// Where it stands, in words.
    #[serde(rename = "note")]
    pub status: String,
}

/// The highest glibc symbol version a sysroot's linked libraries need, and which one needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlibcFloor {
    /// `2.34`.
    pub version: String,
    /// `libssl.so.3`.
    pub library: String,
    pub package: String,
    pub package_version: String,
    pub suite: String,
}

impl GlibcFloor {
    /// `glibc floor 2.34 — libssl3 3.0.15-1~deb12u1 from bookworm needs GLIBC_2.34 (libssl.so.3)`.
    pub fn describe(&self) -> String {
        format!(
            "glibc floor {} — {} {} from {} needs GLIBC_{} ({})",
            self.version,
            self.package,
            self.package_version,
            self.suite,
            self.version,
            self.library
        )
    }

    /// (major, minor) of the floor.
    pub fn parts(&self) -> Option<(u32, u32)> {
        let (a, b) = self.version.split_once('.')?;
        let b = b.split('.').next()?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

impl SysrootsPlan {
    /// The sysroot plan of one (platform, libc), if it gets one.
    pub fn target(&self, platform: &str, libc: Libc) -> Option<&SysrootTarget> {
        self.targets
            .iter()
            .find(|t| t.platform == platform && t.libc == libc)
    }

    /// Lines for `shipit plan`.
    pub fn render(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "build sysroots ({}; {}):",
            self.packages.join(", "),
            match &self.glibc_pin {
                Some(v) => format!("build.glibc {v}"),
                None => "build.glibc not pinned".to_string(),
            }
        )];
        for t in &self.targets {
            lines.push(format!(
                "  {} ({}) {} {} from {}: {}",
                t.platform, t.libc, t.suite, t.arch, t.suite_from, t.status
            ));
            if let Some(f) = &t.glibc_floor {
                lines.push(format!("    {}", f.describe()));
            }
        }
        lines
    }
}

/// The sysroots a config asks for: every gnu target built on this machine (cargo with a cross
/// gcc, cargo-zigbuild; cross and docker build in their own containers) when `build.packages`
/// is not empty.
fn sysroots_plan(cfg: &Config, facts: &Facts, images: &[ImagePlan]) -> Option<SysrootsPlan> {
    if cfg.build.packages.is_empty() {
        return None;
    }
    let mut targets = Vec::new();
    for img in images.iter().filter(|i| i.variant == Libc::Gnu) {
        let (suite, suite_from) = match &img.base_ref {
            Base::Deb { suite } => (suite.clone(), format!("the deb:{suite} base")),
            _ => (
                DEFAULT_SYSROOT_SUITE.to_string(),
                format!("default {DEFAULT_SYSROOT_SUITE} (the gnu base is not deb:)"),
            ),
        };
        for p in &img.platforms {
            let status = if !matches!(p.backend, Backend::Cargo | Backend::Zigbuild) {
                Some(format!(
                    "no sysroot: the {} backend builds in its own container",
                    p.backend.name()
                ))
            } else {
                crate::deb::names::no_debian_arch(p.spec)
                    .map(|why| format!("no sysroot: no Debian architecture ({why})"))
            };
            if let Some(why) = status {
                targets.push(SysrootTarget {
                    platform: p.platform,
                    libc: p.libc,
                    target: p.target.clone(),
                    suite: suite.clone(),
                    suite_from: suite_from.clone(),
                    arch: String::new(),
                    sysroot: None,
                    glibc_floor: None,
                    status: why,
                });
                continue;
            }
            targets.push(SysrootTarget {
                platform: p.platform,
                libc: p.libc,
                target: p.target.clone(),
                suite: suite.clone(),
                suite_from: suite_from.clone(),
                arch: p.spec.debian_arch.to_string(),
                sysroot: None,
                glibc_floor: None,
                status: "resolved and assembled at build time".into(),
            });
        }
    }
    let mut packages: Vec<String> = vec!["libc6-dev".to_string()];
    for p in &cfg.build.packages {
        if !packages.contains(p) {
            packages.push(p.clone());
        }
    }
    Some(SysrootsPlan {
        packages,
        build_packages: cfg.build.packages.clone(),
        lock: cfg.root.join("pipeline.lock"),
        dir: facts.target_dir.join("shipit").join("sysroot"),
        glibc_pin: cfg.build.glibc.map(|(a, b)| format!("{a}.{b}")),
        config_file: cfg.file.clone(),
        targets,
    })
}

/// The suite of a gnu target's sysroot when its variant's base is not `deb:SUITE`.
pub const DEFAULT_SYSROOT_SUITE: &str = "bookworm";

#[derive(Debug, Clone, Serialize)]
pub struct DebPackagePlan {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformPlan {
    pub platform: &'static str,
    #[serde(skip)]
    pub spec: &'static Platform,
    pub libc: Libc,
    pub target: String,
    pub backend: Backend,
    pub backend_reason: String,
    pub linker: Option<String>,
    pub build_std: bool,
    /// What is missing on this machine to build it (empty when it can be built).
    pub missing: Vec<String>,
    pub build: Cmd,
    /// Where cargo leaves the binary.
    pub built: PathBuf,
    /// Where shipit puts it: `dist/bin/<libc>/<os>-<arch>[-<variant>]/<bin>`.
    pub binary: PathBuf,
    pub log: PathBuf,
    /// The QEMU user binary that runs this platform's checks; `None` when the host runs it
    /// natively (`native`).
    pub qemu: Option<String>,
    pub cpu: Option<String>,
    pub native: bool,
    /// The platform's `deb:` base (None for the other bases).
    pub deb: Option<DebPlatformPlan>,
}

/// Why no plan could be made from this config and command line (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--platform {0}: not a platform of this pipeline (it has: {1})")]
    UnknownPlatform(String, String),
    #[error("--variant {0}: this pipeline has no such variant (it has: {1})")]
    UnknownVariant(String, String),
    #[error("project.bin: the package `{package}` has no binary named `{bin}` (it has: {have})")]
    NoSuchBin {
        package: String,
        bin: String,
        have: String,
    },
    #[error("the package `{0}` has {1} binaries: say which one with project.bin")]
    WhichBin(String, String),
    #[error("the package `{0}` has no binary target; shipit packages a binary")]
    NoBin(String),
    #[error(
        "project.version is git-tag, but HEAD has no tag (git describe --tags --exact-match found none)"
    )]
    NoGitTag,
    #[error("the git tag `{0}` is not a semantic version (a leading `v` is allowed)")]
    BadGitTag(String),
    #[error("nothing to do: the filters leave no platform")]
    Empty,
}

impl Plan {
    /// Every platform plan, image by image.
    pub fn platforms(&self) -> impl Iterator<Item = (&ImagePlan, &PlatformPlan)> {
        self.images
            .iter()
            .flat_map(|i| i.platforms.iter().map(move |p| (i, p)))
    }

    /// The `shipit plan --json` document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Makes the plan. Pure: no filesystem, process or network access.
pub fn make(
    cfg: &Config,
    facts: &Facts,
    opts: &Options,
    build_command: fn(&BuildSpec) -> Cmd,
) -> Result<Plan, PlanError> {
    let version = match &cfg.project.version {
        crate::config::VersionSource::Cargo => facts.package_version.clone(),
        crate::config::VersionSource::Explicit(v) => v.clone(),
        crate::config::VersionSource::GitTag => {
            let tag = facts.git.exact_tag.as_deref().ok_or(PlanError::NoGitTag)?;
            semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag))
                .map_err(|_| PlanError::BadGitTag(tag.to_string()))?
        }
    };
    let bin = match &cfg.project.bin {
        Some(b) if facts.bins.contains(b) => b.clone(),
        Some(b) => {
            return Err(PlanError::NoSuchBin {
                package: facts.package.clone(),
                bin: b.clone(),
                have: facts.bins.join(", "),
            });
        }
        None => match facts.bins.as_slice() {
            [one] => one.clone(),
            [] => return Err(PlanError::NoBin(facts.package.clone())),
            many => return Err(PlanError::WhichBin(facts.package.clone(), many.join(", "))),
        },
    };

    // Filters.
    let all: Vec<&'static Platform> = cfg.platforms.clone();
    let mut wanted = all.clone();
    if !opts.platforms.is_empty() {
        wanted.clear();
        for f in &opts.platforms {
            match Platform::parse(f).filter(|p| all.contains(p)) {
                Some(p) => {
                    if !wanted.contains(&p) {
                        wanted.push(p)
                    }
                }
                None => {
                    return Err(PlanError::UnknownPlatform(
                        f.clone(),
                        all.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                    ));
                }
            }
        }
    }
    if let Some(v) = opts.variant
        && !cfg.variants.iter().any(|x| x.libc == v)
    {
        return Err(PlanError::UnknownVariant(
            v.to_string(),
            cfg.variants
                .iter()
                .map(|x| x.libc.name())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }

    let epoch = facts
        .source_date_epoch
        .or(facts.git.commit_time)
        .unwrap_or(0);
    let tag_ctx = tags::Context {
        version: &version,
        sha: facts.git.sha.as_deref(),
        branch: facts.git.branch.as_deref(),
        pr: facts.git.pr,
        default_branch: facts.git.default_branch.as_deref(),
    };
    let project = ProjectPlan {
        root: cfg.root.clone(),
        manifest: facts.manifest_path.clone(),
        package: facts.package.clone(),
        bin: bin.clone(),
        profile: cfg.build.profile.clone(),
        features: cfg.build.features.clone(),
        meta: facts.meta.clone(),
        source: facts
            .meta
            .repository
            .clone()
            .or_else(|| facts.git.source_url.clone()),
        graph: Default::default(),
    };
    let entrypoint = cfg
        .image
        .entrypoint
        .clone()
        .unwrap_or_else(|| vec![format!("/usr/local/bin/{bin}")]);

    let mut images = Vec::new();
    for variant in &cfg.variants {
        if opts.variant.is_some_and(|v| v != variant.libc) {
            continue;
        }
        let deb = match &variant.base {
            Base::Deb { suite } => Some(DebBasePlan {
                suite: suite.clone(),
                packages: cfg.image.packages.clone(),
                lock: cfg.root.join("pipeline.lock"),
            }),
            _ => None,
        };
        let platforms: Vec<PlatformPlan> = variant
            .platforms
            .iter()
            .filter(|p| wanted.contains(p))
            .map(|p| {
                let mut pp =
                    platform_plan(cfg, facts, opts, build_command, &project, p, variant.libc);
                pp.deb = deb.as_ref().map(|d| deb_platform(d, facts, p));
                pp
            })
            .collect();
        if platforms.is_empty() {
            continue;
        }
        let tags = tags::expand(&cfg.image.tags, &tag_ctx, &variant.tag_suffix);
        images.push(ImagePlan {
            variant: variant.libc,
            repository: cfg.image.repository.clone(),
            tags: tags.tags,
            dropped_tags: tags.dropped,
            base: variant.base.display(&cfg.root),
            base_ref: variant.base.clone(),
            entrypoint: entrypoint.clone(),
            deb,
            platforms,
        });
    }
    if images.is_empty() {
        return Err(PlanError::Empty);
    }
    let mut package_facts = package_facts(cfg, &version, &tag_ctx, &bin, &entrypoint);
    // The Cargo keys and the source the standard annotations are made of.
    package_facts["annotated"] = serde_json::json!({
        "source": project.source,
        "license": project.meta.license,
        "description": project.meta.description,
        "homepage": project.meta.homepage,
    });
    let package_digest = digest_json(&package_facts);
    let identity = digest_json(&serde_json::json!({
        "package": package_facts,
        "revision": facts.git.sha,
        "epoch": epoch,
    }));
    let sysroots = sysroots_plan(cfg, facts, &images);
    Ok(Plan {
        sysroots,
        identity,
        package_facts,
        package_digest,
        version,
        revision: facts.git.sha.clone(),
        source_date_epoch: epoch,
        project,
        images,
        out_dir: opts.out_dir.clone(),
        publish_to: match &cfg.publish.to {
            PublishTo::Registry => "registry".into(),
            PublishTo::Oci(p) => format!("oci:{}", p.display()),
        },
    })
}

/// The publish-relevant part of a plan (see `Plan::package_facts`); independent of the
/// `--platform`/`--variant` filters, of the revision and of the timestamp.
fn package_facts(
    cfg: &Config,
    version: &semver::Version,
    tag_ctx: &tags::Context,
    bin: &str,
    entrypoint: &[String],
) -> serde_json::Value {
    let variants: serde_json::Map<String, serde_json::Value> = cfg
        .variants
        .iter()
        .map(|v| {
            (
                v.libc.name().to_string(),
                serde_json::json!({
                    "tags": tags::expand(&cfg.image.tags, tag_ctx, &v.tag_suffix).tags,
                    "platforms": v.platforms.iter().map(|p| p.name).collect::<Vec<_>>(),
                    "base": v.base.display(&cfg.root),
                }),
            )
        })
        .collect();
    let img = &cfg.image;
    serde_json::json!({
        "version": version.to_string(),
        "repository": img.repository,
        "variants": variants,
        "bin": bin,
        "packager": cfg.package,
        "image": {
            "user": img.user,
            "entrypoint": entrypoint,
            "cmd": img.cmd,
            "workdir": img.workdir,
            "ports": img.ports,
            "env": img.env,
            "labels": img.labels,
            "annotations": img.annotations.iter().map(|a| {
                let scope = match a.scope {
                    crate::config::AnnotationScope::Both => "",
                    crate::config::AnnotationScope::Index => "index:",
                    crate::config::AnnotationScope::Manifest => "manifest:",
                };
                (format!("{scope}{}", a.key), a.value.clone())
            }).collect::<Vec<_>>(),
            "files": img.files.iter().map(|f| serde_json::json!({
                "src": f.src.strip_prefix(&cfg.root).unwrap_or(&f.src),
                "dest": f.dest,
                "mode": f.mode,
            })).collect::<Vec<_>>(),
        },
    })
}

/// The digest of a JSON document's canonical form.
fn digest_json(doc: &serde_json::Value) -> String {
    crate::oci::digest::Digest::of(&crate::oci::json::canonical(doc).unwrap_or_default())
        .to_string()
}

/// What differs between two `package_facts` documents, one `path: old → new` per leaf.
pub fn facts_diff(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn flatten(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&p, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let (mut a, mut b) = Default::default();
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |m: &std::collections::BTreeMap<String, String>| {
                m.get(k).cloned().unwrap_or_else(|| "(none)".into())
            };
            format!("{k}: {} → {}", show(&a), show(&b))
        })
        .collect()
}

/// The host's own target triple (shipit is built for the machine it runs on).
pub fn host_target() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-gnu",
        "aarch64" => "aarch64-unknown-linux-gnu",
        _ => "unknown",
    }
}

struct Choice {
    backend: Backend,
    reason: String,
    linker: Option<String>,
    missing: Vec<String>,
}

fn choose(
    cfg: &Config,
    inv: &Inventory,
    p: &Platform,
    libc: Libc,
    target: &str,
    build_std: bool,
) -> Choice {
    let native = target == host_target();
    let glibc_pin = (libc == Libc::Gnu).then_some(cfg.build.glibc).flatten();
    let debian_gcc_v7 = p.name == "linux/arm/v6" && libc == Libc::Gnu;
    let mut missing = Vec::new();
    if build_std && !inv.rust_src {
        missing.push("rustup component rust-src (for -Zbuild-std)".to_string());
    }
    let zig = |reason: String, mut missing: Vec<String>| {
        if !inv.zigbuild {
            missing.push("cargo-zigbuild".into());
        }
        Choice {
            backend: Backend::Zigbuild,
            reason,
            // cargo-zigbuild links with `zig cc`.
            linker: Some("zig".into()),
            missing,
        }
    };
    let cargo = |reason: String, mut missing: Vec<String>| {
        let linker = if native {
            None
        } else {
            let gcc = format!("{}-gcc", p.gcc_triple);
            if !inv.gcc.contains(p.gcc_triple) {
                missing.push(gcc.clone());
            }
            Some(gcc)
        };
        Choice {
            backend: Backend::Cargo,
            reason,
            linker,
            missing,
        }
    };
    match cfg.build.backend {
        Backend::Zigbuild => zig("build.backend: zigbuild".into(), missing),
        Backend::Cargo if libc == Libc::Musl && !build_std => Choice {
            backend: Backend::Cargo,
            reason: "build.backend: cargo (Rust's bundled musl, rust-lld)".into(),
            linker: (!p.is_native()).then(|| "rust-lld".to_string()),
            missing,
        },
        Backend::Cargo => {
            if debian_gcc_v7 {
                missing.push("a genuine ARMv6 linker: Debian's arm-linux-gnueabihf-gcc links ARMv7 start files (use backend zigbuild)".into());
            }
            if build_std && libc == Libc::Musl {
                missing.push(format!(
                    "rust-std for {target} (not installable here; use backend zigbuild)"
                ));
            }
            cargo("build.backend: cargo".into(), missing)
        }
        Backend::Cross => {
            if !inv.cross {
                missing.push("cross".into());
            }
            if !inv.docker {
                missing.push("docker (cross runs its toolchains in containers)".into());
            }
            Choice {
                backend: Backend::Cross,
                reason: "build.backend: cross".into(),
                // Inside cross's container: its toolchain, not a program of this machine.
                linker: None,
                missing,
            }
        }
        Backend::Docker => {
            if !inv.docker {
                missing.push("docker".into());
            }
            Choice {
                backend: Backend::Docker,
                reason: "build.backend: docker (docker/Dockerfile, BuildKit, cross-compiling from $BUILDPLATFORM)".into(),
                linker: None,
                missing,
            }
        }
        Backend::Auto => {
            if native && glibc_pin.is_none() && !build_std {
                return cargo("auto: native target, plain cargo".into(), missing);
            }
            if libc == Libc::Musl && !build_std {
                // Rust's musl targets bring musl and its crt; rust-lld links them for any arch.
                return Choice {
                    backend: Backend::Cargo,
                    reason: if p.is_native() {
                        "auto: Rust's bundled musl, linked by the host cc".into()
                    } else {
                        "auto: Rust's bundled musl, linked by rust-lld (no C cross toolchain needed)".into()
                    },
                    linker: (!p.is_native()).then(|| "rust-lld".to_string()),
                    missing,
                };
            }
            if inv.zigbuild {
                let why = match (glibc_pin, build_std) {
                    (Some((a, b)), _) => {
                        format!("auto: cargo-zigbuild pins the glibc floor to {a}.{b}")
                    }
                    (None, true) => {
                        "auto: no rust-std here, so -Zbuild-std with zig as the linker".into()
                    }
                    (None, false) if p.arm.is_some() => {
                        "auto: zig links genuine code for this ARM profile".into()
                    }
                    (None, false) => "auto: zig cross-links without a cross gcc".into(),
                };
                return zig(why, missing);
            }
            if debian_gcc_v7 || (build_std && libc == Libc::Musl) {
                return zig(
                    "auto: only cargo-zigbuild can build this target here".into(),
                    missing,
                );
            }
            cargo(
                match glibc_pin {
                    Some((a, b)) => format!(
                        "auto: cargo-zigbuild not found, Debian's cross gcc links (glibc floor {a}.{b} not pinned, only checked)"
                    ),
                    None => "auto: cargo-zigbuild not found, Debian's cross gcc links".into(),
                },
                missing,
            )
        }
    }
}

fn platform_plan(
    cfg: &Config,
    facts: &Facts,
    opts: &Options,
    build_command: fn(&BuildSpec) -> Cmd,
    project: &ProjectPlan,
    p: &'static Platform,
    libc: Libc,
) -> PlatformPlan {
    let target = p.target(libc).to_string();
    let build_std = !facts.tools.rust_std.contains(&target);
    let choice = choose(cfg, &facts.tools, p, libc, &target, build_std);
    let shipit_target_dir = facts.target_dir.join("shipit");
    let build = build_command(&BuildSpec {
        backend: choice.backend,
        target: &target,
        libc,
        glibc: cfg.build.glibc,
        build_std,
        linker: choice.linker.as_deref(),
        project,
        manifest: &facts.manifest_path,
        target_dir: &shipit_target_dir.join(&target),
        platform: p,
    });
    let profile_dir = match project.profile.as_str() {
        "dev" | "test" => "debug",
        "release" | "bench" => "release",
        other => other,
    };
    let built = match choice.backend {
        Backend::Docker => shipit_target_dir
            .join(&target)
            .join("docker-out")
            .join(&project.bin),
        _ => shipit_target_dir
            .join(&target)
            .join(&target)
            .join(profile_dir)
            .join(&project.bin),
    };
    let native = target.starts_with(std::env::consts::ARCH) && p.is_native();
    let cpu = match cfg.verify.cpu {
        CpuMode::Strict => p.strict_cpu.map(str::to_string),
        CpuMode::Max => None,
    };
    PlatformPlan {
        platform: p.name,
        spec: p,
        libc,
        target,
        backend: choice.backend,
        backend_reason: choice.reason,
        linker: choice.linker,
        build_std,
        missing: choice.missing,
        build,
        built,
        binary: bin_path(&opts.out_dir, libc, p, &project.bin),
        log: opts
            .out_dir
            .join("logs")
            .join(format!("build-{}-{}.log", libc.name(), p.slug())),
        qemu: (!native).then(|| p.qemu.to_string()),
        cpu,
        native,
        deb: None,
    }
}

/// What a platform's `deb:` base will hold, read from the lock (no network): the lock's
/// packages when it covers the request, else "resolved at package time".
fn deb_platform(d: &DebBasePlan, facts: &Facts, p: &'static Platform) -> DebPlatformPlan {
    // The config refused platforms without a Debian architecture.
    let arch = p.debian_arch.to_string();
    let (locked, unlocked_reason) = match &facts.deb_lock {
        None => (None, Some("no pipeline.lock yet".to_string())),
        Some(view) => match view.get(&(d.suite.clone(), arch.clone())) {
            Some(Ok(pkgs)) => (Some(pkgs.clone()), None),
            Some(Err(why)) => (
                None,
                Some(format!("pipeline.lock does not cover it: {why}")),
            ),
            None => (None, Some("pipeline.lock has no entry for it".to_string())),
        },
    };
    DebPlatformPlan {
        arch,
        source: if locked.is_some() {
            DebSource::Lock
        } else {
            DebSource::PackageTime
        },
        locked,
        unlocked_reason,
    }
}

/// `dist/bin/<libc>/<os>-<arch>[-<variant>]/<bin>`.
pub fn bin_path(out: &Path, libc: Libc, p: &Platform, bin: &str) -> PathBuf {
    out.join("bin").join(libc.name()).join(p.slug()).join(bin)
}
