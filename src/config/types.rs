//! The validated pipeline: what `schema.rs` produces from `pipeline.yaml`, with every default
//! filled in. Nothing here can be invalid; the planner and the stages read only these types.

use crate::platform::{Libc, Platform};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// The pipeline file, and the project root (the directory holding it).
    pub file: PathBuf,
    pub root: PathBuf,
    pub project: Project,
    pub build: Build,
    pub platforms: Vec<&'static Platform>,
    pub variants: Vec<Variant>,
    pub image: Image,
    pub package: Packager,
    pub verify: Verify,
    pub publish: Publish,
    pub attest: Attest,
    /// `archives`: `shipit release` writes `dist/archives/<bin>-<version>-<target>.tar.gz` per
    /// built target and `SHA256SUMS` (default true).
    pub archives: bool,
}

#[derive(Debug, Clone)]
pub struct Project {
    /// The Cargo manifest, absolute.
    pub manifest: PathBuf,
    pub package: Option<String>,
    pub bin: Option<String>,
    pub version: VersionSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    Cargo,
    GitTag,
    Explicit(semver::Version),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Auto,
    Cargo,
    Zigbuild,
    Cross,
    Docker,
}

impl Backend {
    pub const NAMES: [&'static str; 5] = ["auto", "cargo", "zigbuild", "cross", "docker"];

    pub fn parse(s: &str) -> Option<Backend> {
        Some(match s {
            "auto" => Backend::Auto,
            "cargo" => Backend::Cargo,
            "zigbuild" => Backend::Zigbuild,
            "cross" => Backend::Cross,
            "docker" => Backend::Docker,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Backend::NAMES[self as usize]
    }
}

#[derive(Debug, Clone)]
pub struct Build {
    pub backend: Backend,
    pub profile: String,
    pub features: Vec<String>,
    /// The oldest glibc the gnu binaries must run on, as (major, minor).
    pub glibc: Option<(u32, u32)>,
    /// Debian packages (`name` or `name=version`) for the gnu targets' sysroot: used by the
    /// sysroot (the libraries a build links against), never put in an image.
    pub packages: Vec<String>,
}

/// Where an image's base comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// A local OCI image layout (absolute path) and an optional tag.
    Oci {
        path: PathBuf,
        tag: Option<String>,
    },
    /// An image reference pulled over the registry API.
    Registry(String),
    /// A base shipit assembles from the Debian archive (`deb:SUITE`, one of `deb::SUITES`).
    Deb {
        suite: String,
    },
}

impl Base {
    /// How the config spelled it, for plans and messages.
    pub fn display(&self, root: &std::path::Path) -> String {
        match self {
            Base::Scratch => "scratch".into(),
            Base::Oci { path, tag } => {
                let p = path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .display()
                    .to_string();
                match tag {
                    Some(t) => format!("oci:{p}:{t}"),
                    None => format!("oci:{p}"),
                }
            }
            Base::Registry(r) => r.clone(),
            Base::Deb { suite } => format!("deb:{suite}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub libc: Libc,
    pub base: Base,
    pub tag_suffix: String,
    /// The platforms of this variant, in the order of the top-level `platforms`.
    pub platforms: Vec<&'static Platform>,
}

#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// Absolute path on the build machine.
    pub src: PathBuf,
    /// Absolute path inside the image.
    pub dest: String,
    pub mode: u32,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub repository: String,
    pub user: String,
    /// None: `/usr/local/bin/<bin>`, decided by the planner once the binary is known.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub workdir: Option<String>,
    pub ports: Vec<u16>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// `image.annotations`: added to (or overriding) the standard `org.opencontainers.image.*`
    /// annotations, each on the index, the platform manifests, or both.
    pub annotations: Vec<Annotation>,
    pub tags: Vec<String>,
    pub files: Vec<ExtraFile>,
    /// Debian packages (`name` or `name=version`) added to every image whose base is
    /// `deb:SUITE`, with their `Depends`/`Pre-Depends`.
    pub packages: Vec<String>,
}

/// One `image.annotations` entry: `KEY: value`, or buildx-style `index:KEY` / `manifest:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub scope: AnnotationScope,
    pub key: String,
    pub value: String,
}

/// Where an annotation goes. The manifest's annotations are also the image config's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationScope {
    /// No prefix: the index and every platform manifest.
    Both,
    /// `index:KEY`: the multi-arch index only.
    Index,
    /// `manifest:KEY`: every platform manifest (and its config's labels) only.
    Manifest,
}

impl AnnotationScope {
    pub fn on_index(self) -> bool {
        matches!(self, AnnotationScope::Both | AnnotationScope::Index)
    }
    pub fn on_manifest(self) -> bool {
        matches!(self, AnnotationScope::Both | AnnotationScope::Manifest)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Packager {
    Native,
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuMode {
    /// The oldest CPU of each platform (arm1176, cortex-a7, cortex-a53).
    Strict,
    /// QEMU's default (`max`): accepts any instruction the architecture has.
    Max,
}

#[derive(Debug, Clone)]
pub struct Verify {
    pub cpu: CpuMode,
    pub max_size: Option<u64>,
    pub allow_root: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    Run {
        args: Vec<String>,
        stdout: Option<String>,
        stderr: Option<String>,
        exit: i32,
        timeout: Duration,
    },
    Serve {
        port: u16,
        path: String,
        status: u16,
        timeout: Duration,
        stop_signal: StopSignal,
        stop_within: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
}

impl StopSignal {
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Int => libc::SIGINT,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTo {
    /// An OCI image layout directory (absolute).
    Oci(PathBuf),
    /// The registry named by `image.repository`.
    Registry,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub to: PublishTo,
    pub insecure: bool,
}

/// `attest:`: which statements the release attaches to each image as OCI referrers (each on by
/// default; signed when `SHIPIT_SIGNING_KEY` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attest {
    /// The CycloneDX and SPDX SBOMs of each platform image.
    pub sbom: bool,
    /// SLSA provenance of each platform image and each index.
    pub provenance: bool,
    /// The verification attestation of each platform image.
    pub verification: bool,
}

impl Default for Attest {
    fn default() -> Self {
        Attest {
            sbom: true,
            provenance: true,
            verification: true,
        }
    }
}

impl Attest {
    /// Whether anything is attached.
    pub fn any(&self) -> bool {
        self.sbom || self.provenance || self.verification
    }
}
