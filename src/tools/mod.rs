//! External tools, one file each: how to find a tool, its minimum version, how to install it, and
//! how to call it — as pure functions returning commands as data (`exec::Cmd`). This module also
//! gathers the facts the planner reads (Cargo metadata, git, the tool inventory) and runs
//! `shipit doctor`.

pub mod cargo;
pub mod cfg;
pub mod cross;
pub mod docker;
pub mod doctor;
pub mod git;
pub mod gpgv;
pub mod memo;
pub mod openssl;
pub mod pkg_config;
pub mod qemu;
pub mod rustup;
pub mod zigbuild;

use crate::config::Backend;
use crate::exec::{Cancel, Cmd};
use crate::plan::Inventory;
use std::time::Duration;

/// How long a `--version` probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::plan::BuildSpec;

/// The build command for one target, as data (handed to `plan::make`, which decides the spec).
pub fn build_command(s: &BuildSpec) -> Cmd {
    match s.backend {
        Backend::Auto | Backend::Cargo => cargo::build(s),
        Backend::Zigbuild => zigbuild::build(s),
        Backend::Cross => cross::build(s),
        Backend::Docker => docker::build_binary(s),
    }
}

/// `CARGO_TARGET_<TRIPLE>_<WHAT>`: cargo's per-target environment variable names.
pub fn target_env(target: &str, what: &str) -> String {
    format!(
        "CARGO_TARGET_{}_{what}",
        target.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The arguments every cargo-like backend shares: profile, bin, features, manifest, target dir.
pub fn common_cargo_args(s: &BuildSpec, mut cmd: Cmd) -> Cmd {
    if s.project.profile == "release" {
        cmd = cmd.arg("--release");
    } else {
        cmd = cmd.args(["--profile", &s.project.profile]);
    }
    cmd = cmd
        .args(["--bin", &s.project.bin])
        .args(["--manifest-path", &s.manifest.display().to_string()])
        .args(["--target-dir", &s.target_dir.display().to_string()]);
    if !s.project.features.is_empty() {
        cmd = cmd.args(["--features", &s.project.features.join(",")]);
    }
    if s.build_std {
        cmd = cmd
            .arg("-Zbuild-std=std,panic_abort")
            .env("RUSTC_BOOTSTRAP", "1");
    }
    cmd.cwd(&s.project.root)
}

/// Probes the machine for the tools the planner chooses between.
/// Probes the machine for the tools the planner chooses between. cross and docker are probed
/// only when the config may use them (`auto` never picks them), since their probes are slow.
pub fn inventory_for(cfg: &crate::config::Config, cancel: &Cancel) -> Inventory {
    use crate::config::{Backend, Packager};
    let cross = cfg.build.backend == Backend::Cross;
    let docker = cross || cfg.build.backend == Backend::Docker || cfg.package == Packager::Docker;
    probe_inventory(cross, docker, cancel)
}

/// Probes every tool (doctor and tests).
pub fn inventory(cancel: &Cancel) -> Inventory {
    probe_inventory(true, true, cancel)
}

pub(crate) fn probe_inventory(cross_too: bool, docker_too: bool, cancel: &Cancel) -> Inventory {
    let mut inv = Inventory {
        // Presence only (a pyenv shim costs ~150 ms per call); doctor checks the version.
        zigbuild: which::which("cargo-zigbuild").is_ok(),
        // Presence only: inside a Cargo project `cross --version` resolves the project's
        // toolchain through `rustup toolchain add` (a network sync, ~0.6 s, and a non-zero exit
        // when that fails), which no plan should pay for. Doctor checks cross's version when a
        // plan uses it.
        cross: cross_too && which::which("cross").is_ok(),
        docker: docker_too && docker::client_version(cancel).is_some(),
        ..Inventory::default()
    };
    if let Some((targets, src)) = doctor::rustup_installed(cancel) {
        inv.rust_std = targets;
        inv.rust_src = src;
    } else {
        // Without rustup, only the host's own std is known to exist.
        inv.rust_std.insert(crate::plan::host_target().to_string());
    }
    for p in &crate::platform::PLATFORMS {
        if which::which(format!("{}-gcc", p.gcc_triple)).is_ok() {
            inv.gcc.insert(p.gcc_triple.to_string());
        }
    }
    inv
}

/// Runs `PROGRAM ARGS` and finds the first semantic version in its output.
pub fn probe_version(program: &str, args: &[&str], cancel: &Cancel) -> Option<semver::Version> {
    let path = which::which(program).ok()?;
    let cmd =
        Cmd::new(path.display().to_string(), format!("probe {program}")).args(args.iter().copied());
    let out = crate::exec::capture(&cmd, PROBE_TIMEOUT, cancel).ok()?;
    first_version(&out)
}

/// The first `X.Y[.Z]` in some text, as a semver version.
pub fn first_version(text: &str) -> Option<semver::Version> {
    let re = regex::Regex::new(r"(\d+)\.(\d+)(?:\.(\d+))?").ok()?;
    let c = re.captures(text)?;
    let n = |i: usize| {
        c.get(i)
            .and_then(|m| m.as_str().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(semver::Version::new(n(1), n(2), n(3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_tool_output() {
        assert_eq!(
            first_version("qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"),
            Some(semver::Version::new(7, 2, 19))
        );
        assert_eq!(
            first_version("cargo-zigbuild 0.24.1"),
            Some(semver::Version::new(0, 24, 1))
        );
        assert_eq!(
            first_version("Docker version 20.10"),
            Some(semver::Version::new(20, 10, 0))
        );
        assert_eq!(first_version("nothing"), None);
    }

    #[test]
    fn target_env_names() {
        assert_eq!(
            target_env("armv7-unknown-linux-gnueabihf", "LINKER"),
            "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER"
        );
    }
}
