//! docker: the binary compiled inside BuildKit from `docker/Dockerfile`, cross-compiling from
//! `$BUILDPLATFORM` (never compiling under emulation), exported with `--output type=local`.
//! Also the docker packager's image build.

use super::BuildSpec;
use crate::exec::Cmd;

pub const MIN: semver::Version = semver::Version::new(20, 10, 0);

pub fn client_version() -> Option<semver::Version> {
    super::probe_version("docker", &["--version"])
}

/// `docker build --target binary --platform P --output type=local,dest=DIR .`
pub fn build_binary(s: &BuildSpec) -> Cmd {
    let dest = s.target_dir.join("docker-out");
    Cmd::new(
        "docker",
        format!("build {} ({}) in BuildKit", s.platform.name, s.libc),
    )
    .args(["build", "--file", "docker/Dockerfile", "--target", "binary"])
    .args(["--platform", s.platform.name])
    .args(["--build-arg", &format!("RUST_TARGET={}", s.target)])
    .args(["--build-arg", &format!("BIN={}", s.project.bin)])
    .args(["--output", &format!("type=local,dest={}", dest.display())])
    .arg(".")
    .env("DOCKER_BUILDKIT", "1")
    .cwd(&s.project.root)
}
