//! cargo-zigbuild: links with `zig cc`, which builds the C runtime for the exact target. That
//! pins the glibc floor (`--target T.2.31`) and gives genuine ARMv6 code, where Debian's
//! arm-linux-gnueabihf-gcc silently links ARMv7 start files. Installed from PyPI
//! (`pip install ziglang cargo-zigbuild`).

use super::{BuildSpec, common_cargo_args, target_env};
use crate::exec::Cmd;
use crate::platform::Libc;

pub const MIN: semver::Version = semver::Version::new(0, 17, 0);

pub fn version(cancel: &crate::exec::Cancel) -> Option<semver::Version> {
    super::probe_version("cargo-zigbuild", &["--version"], cancel)
}

pub fn build(s: &BuildSpec) -> Cmd {
    let target = match (s.libc, s.glibc) {
        (Libc::Gnu, Some((a, b))) => format!("{}.{a}.{b}", s.target),
        _ => s.target.to_string(),
    };
    let mut cmd = Cmd::new("cargo", format!("build {} ({})", s.platform.name, s.libc))
        .args(["zigbuild", "--target", &target]);
    cmd = common_cargo_args(s, cmd);
    if s.libc == Libc::Musl {
        // zig brings musl's crt and libc; rustc's self-contained copies would clash (and do not
        // exist at all for targets built with -Zbuild-std).
        cmd = cmd.env(
            target_env(s.target, "RUSTFLAGS"),
            "-C link-self-contained=no",
        );
    }
    cmd
}
