//! The stages, and the one order they run in. `RELEASE` below is that order, a line per stage;
//! `release`, `publish`, `release --split` and `smoke` all walk it (`pipeline::run`), each
//! skipping some stages with a reason that the summary prints, and their `--dry-run` (and
//! `package --dry-run`) describes it from the Plan (`dry_run`). No tag moves unless every
//! platform image passed verification and every attestation was attached.

pub mod archives;
pub mod attach;
pub mod build;
pub mod build_fresh;
pub mod deb_base;
pub mod doctor;
pub mod dry_run;
pub mod early;
pub mod image_rules;
pub mod init;
pub mod locks;
pub mod package;
pub mod package_docker;
pub mod pipeline;
pub mod publish;
pub mod pull;
pub mod release;
pub mod split;
pub mod sysroots;
pub mod verify;
pub mod verify_attest;
pub mod verify_cmd;

/// One stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Doctor,
    Build,
    Package,
    Verify,
    Archives,
    Publish,
    Attach,
    Tag,
    Report,
}

/// The pipeline, in order.
pub const RELEASE: &[Stage] = &[
    Stage::Doctor,   // every tool the plan needs is here, before anything is built
    Stage::Build,    // every (platform, libc) target, side by side, into dist/bin
    Stage::Package,  // one image per platform, one index per variant, into dist/oci (staging refs)
    Stage::Verify,   // every platform image under QEMU; a failure stops here, before any push
    Stage::Archives, // dist/archives: a .tar.gz per target (binary, license, README), SHA256SUMS
    Stage::Publish,  // blobs, manifests and indexes by digest: every image, no tag yet
    Stage::Attach,   // SBOMs, provenance, verification attestations: signed, as OCI referrers
    Stage::Tag,      // the tags, exact version first and `latest` last; a failure before moves none
    Stage::Report,   // dist/release.json, the summary, GitHub Actions outputs
];

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Doctor => "doctor",
            Stage::Build => "build",
            Stage::Package => "package",
            Stage::Verify => "verify",
            Stage::Archives => "archives",
            Stage::Publish => "publish",
            Stage::Attach => "attach",
            Stage::Tag => "tag",
            Stage::Report => "report",
        }
    }
}

/// Which command walks the pipeline: each runs `RELEASE` with some stages skipped or narrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `shipit release`: every stage.
    Release,
    /// `shipit publish`: what `dist/oci` holds, verified again, then pushed.
    Publish,
    /// `shipit release --split`: one matrix job's platform, pushed by digest, with a fragment.
    Split,
    /// `shipit smoke`: one platform built, packaged and verified; nothing published.
    Smoke,
    /// `shipit package`: the package stage alone.
    Package,
}

impl Mode {
    pub fn command(self) -> &'static str {
        match self {
            Mode::Release => "release",
            Mode::Publish => "publish",
            Mode::Split => "release --split",
            Mode::Smoke => "smoke",
            Mode::Package => "package",
        }
    }
}

/// A stage as a command runs it: run, or skipped for a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub stage: Stage,
    /// Why this command skips the stage (printed in the summary and by `--dry-run`).
    pub skip: Option<&'static str>,
}

/// `RELEASE` as `mode` runs it.
pub fn steps(mode: Mode) -> Vec<Step> {
    RELEASE
        .iter()
        .map(|&stage| Step {
            stage,
            skip: skip_reason(mode, stage),
        })
        .collect()
}

/// `RELEASE` as `mode` runs it for this pipeline: `steps(mode)`, with the stages the pipeline
/// turns off (`archives: false`) skipped, saying so.
pub fn configured_steps(mode: Mode, cfg: &crate::config::Config) -> Vec<Step> {
    let mut steps = steps(mode);
    for step in &mut steps {
        if step.stage == Stage::Archives && step.skip.is_none() && !cfg.archives {
            step.skip = Some("`archives: false` in the pipeline");
        }
    }
    steps
}

fn skip_reason(mode: Mode, stage: Stage) -> Option<&'static str> {
    match (mode, stage) {
        (Mode::Release, _) => None,
        (Mode::Publish, Stage::Doctor | Stage::Build | Stage::Package) => {
            Some("publish pushes what `shipit package` made in dist/oci")
        }
        (Mode::Publish, Stage::Archives) => {
            Some("`shipit release` writes the archives; publish pushes images only")
        }
        (Mode::Split | Mode::Smoke, Stage::Doctor) => {
            Some("one platform: build says what this machine lacks for it")
        }
        (Mode::Split, Stage::Attach) => Some(
            "split jobs seal their platforms' statements into the fragment; --merge attaches them",
        ),
        (Mode::Split, Stage::Tag) => Some("the merge job moves the tags"),
        (Mode::Split, Stage::Report) => Some("the merge job writes release.json"),
        (
            Mode::Smoke,
            Stage::Archives | Stage::Publish | Stage::Attach | Stage::Tag | Stage::Report,
        ) => Some("smoke publishes nothing"),
        (Mode::Package, Stage::Doctor | Stage::Build) => {
            Some("package packs what `shipit build` made in dist/bin")
        }
        (
            Mode::Package,
            Stage::Verify
            | Stage::Archives
            | Stage::Publish
            | Stage::Attach
            | Stage::Tag
            | Stage::Report,
        ) => Some("package stops at dist/oci (staging refs, no release tag)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_walks_the_one_order() {
        for mode in [
            Mode::Release,
            Mode::Publish,
            Mode::Split,
            Mode::Smoke,
            Mode::Package,
        ] {
            let order: Vec<Stage> = steps(mode).iter().map(|s| s.stage).collect();
            assert_eq!(order, RELEASE, "{mode:?}");
        }
        assert!(steps(Mode::Release).iter().all(|s| s.skip.is_none()));
        let smoke: Vec<&str> = steps(Mode::Smoke)
            .iter()
            .filter(|s| s.skip.is_none())
            .map(|s| s.stage.name())
            .collect();
        assert_eq!(smoke, ["build", "package", "verify"]);
    }
}
