//! cross: `cross build --target T` runs the build in cross's toolchain container (a user's
//! `Cross.toml` is honoured: cross reads it from the project root, where the command runs, so
//! `[target.T] image = "..."` can point at a local image). Needs a container engine; cross mounts
//! the host's Rust toolchain and cargo home into the container, so the image needs only a linker.
//!
//! Two facts about cross 0.2.5 (the latest release) shape the command:
//! - It does not map `--manifest-path` into the container (it mounts the project at `/project`),
//!   so the command runs in the manifest's directory instead of passing the path.
//! - It parses `rustup toolchain list` and misses the default toolchain, which rustup 1.28+ lists
//!   as `stable-... (active, default)`: it then runs `rustup toolchain add stable` (an update,
//!   over the network) and fails when a target of that toolchain is no longer distributed. The
//!   command therefore names the toolchain [`TOOLCHAIN`], a `rustup toolchain link` to the
//!   active toolchain's sysroot that [`link_toolchain`] makes (`shipit doctor --fix`).

use super::BuildSpec;
use crate::exec::Cmd;

pub const MIN: semver::Version = semver::Version::new(0, 2, 5);

/// The linked toolchain cross runs with (see the module docs).
pub const TOOLCHAIN: &str = "shipit-cross";

/// `cross --version` (with [`TOOLCHAIN`]: a bare `cross --version` can trigger the toolchain
/// install described above).
pub fn version(cancel: &crate::exec::Cancel) -> Option<semver::Version> {
    let path = which::which("cross").ok()?;
    let cmd = Cmd::new(path.display().to_string(), "probe cross")
        .arg("--version")
        .env("RUSTUP_TOOLCHAIN", TOOLCHAIN);
    let out = crate::exec::capture(&cmd, super::PROBE_TIMEOUT, cancel).ok()?;
    let line = out.lines().find(|l| l.starts_with("cross "))?;
    super::first_version(line)
}

/// `rustup toolchain link shipit-cross SYSROOT`: makes [`TOOLCHAIN`] (idempotent: relinking
/// replaces the link). `sysroot` is `rustc --print sysroot` of the toolchain to use.
pub fn link_toolchain(sysroot: &std::path::Path) -> Cmd {
    Cmd::new("rustup", "link the toolchain cross runs with").args([
        "toolchain",
        "link",
        TOOLCHAIN,
        &sysroot.display().to_string(),
    ])
}

/// `cross build --target T --release --bin B --target-dir D`, run in the manifest's directory.
pub fn build(s: &BuildSpec) -> Cmd {
    let mut cmd = Cmd::new("cross", format!("build {} ({})", s.platform.name, s.libc))
        .args(["build", "--target", s.target])
        .env("RUSTUP_TOOLCHAIN", TOOLCHAIN);
    if s.project.profile == "release" {
        cmd = cmd.arg("--release");
    } else {
        cmd = cmd.args(["--profile", &s.project.profile]);
    }
    cmd = cmd
        .args(["--bin", &s.project.bin])
        .args(["--target-dir", &s.target_dir.display().to_string()]);
    if !s.project.features.is_empty() {
        cmd = cmd.args(["--features", &s.project.features.join(",")]);
    }
    let dir = s
        .manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(&s.project.root);
    cmd.cwd(dir)
}
