//! cross: `cross build --target T` runs the build in cross's toolchain container (a user's
//! `Cross.toml` is honoured: cross reads it from the project root). Needs a container engine.

use super::{BuildSpec, common_cargo_args};
use crate::exec::Cmd;

pub const MIN: semver::Version = semver::Version::new(0, 2, 5);

pub fn version() -> Option<semver::Version> {
    super::probe_version("cross", &["--version"])
}

pub fn build(s: &BuildSpec) -> Cmd {
    let cmd = Cmd::new("cross", format!("build {} ({})", s.platform.name, s.libc))
        .args(["build", "--target", s.target]);
    common_cargo_args(s, cmd)
}
