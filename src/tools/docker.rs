//! docker: the binary compiled inside BuildKit from `docker/Dockerfile`, cross-compiling from
//! `$BUILDPLATFORM` (never compiling under emulation), exported with `--output type=local`.
//! Also the commands of the docker packager (`stage::package_docker`): build an image from a
//! generated Dockerfile, `docker save` it, `docker load` a base, remove a temporary tag.
//!
//! Which `docker` runs matters: a docker CLI 23 or newer without the buildx plugin refuses
//! `DOCKER_BUILDKIT=1 docker build`, while a 20.10 CLI has BuildKit built in. [`program`] picks
//! the first CLI on PATH that can do BuildKit builds (`SHIPIT_DOCKER` overrides it). `DOCKER_HOST`
//! and the rest of the environment are inherited, so a private daemon is honoured.

use super::BuildSpec;
use crate::exec::{Cancel, Cmd};
use std::path::Path;
use std::sync::OnceLock;

pub const MIN: semver::Version = semver::Version::new(20, 10, 0);

/// The first docker CLI version that needs the buildx plugin for BuildKit builds.
const BUILDX_REQUIRED_FROM: u64 = 23;

/// The environment variable that names the docker CLI to use, overriding the search.
pub const ENV_OVERRIDE: &str = "SHIPIT_DOCKER";

/// The docker CLI shipit runs: [`buildkit_cli`], else plain `docker` (whose BuildKit builds
/// then fail with docker's own message, which names the missing buildx plugin). The session
/// probes it (with the run's cancel token) in `inventory_for` whenever the config uses docker,
/// before any command is built; only a caller that skipped that probes here, with a token no
/// signal reaches (a `--version` probe bounded by `PROBE_TIMEOUT`).
pub fn program() -> &'static str {
    buildkit_cli(&Cancel::new()).unwrap_or("docker")
}

/// `$SHIPIT_DOCKER`, else the first `docker` on PATH that has the buildx plugin or is older than
/// 23 (BuildKit built in); `None` when no CLI here can run BuildKit builds. Probed once.
pub fn buildkit_cli(cancel: &Cancel) -> Option<&'static str> {
    static PROGRAM: OnceLock<Option<String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            if let Some(p) = std::env::var_os(ENV_OVERRIDE).filter(|p| !p.is_empty()) {
                return Some(p.to_string_lossy().into_owned());
            }
            let mut seen = Vec::new();
            for path in which::which_all("docker").ok()? {
                let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen.contains(&real) {
                    continue;
                }
                seen.push(real);
                let name = path.display().to_string();
                if can_buildkit(&name, cancel) {
                    return Some(name);
                }
            }
            None
        })
        .as_deref()
}

/// Whether the docker CLI at `program` can run `DOCKER_BUILDKIT=1 docker build`.
fn can_buildkit(program: &str, cancel: &Cancel) -> bool {
    if has_buildx_at(program, cancel) {
        return true;
    }
    let cmd = Cmd::new(program, "probe docker").arg("--version");
    crate::exec::capture(&cmd, super::PROBE_TIMEOUT, cancel)
        .ok()
        .and_then(|out| super::first_version(&out))
        .is_some_and(|v| v.major < BUILDX_REQUIRED_FROM)
}

fn has_buildx_at(program: &str, cancel: &Cancel) -> bool {
    let cmd = Cmd::new(program, "probe docker buildx").args(["buildx", "version"]);
    crate::exec::capture(&cmd, super::PROBE_TIMEOUT, cancel).is_ok()
}

/// The client version of the docker CLI shipit will run.
pub fn client_version(cancel: &Cancel) -> Option<semver::Version> {
    let program = buildkit_cli(cancel).unwrap_or("docker");
    let cmd = Cmd::new(program, "probe docker").arg("--version");
    let out = crate::exec::capture(&cmd, super::PROBE_TIMEOUT, cancel).ok()?;
    super::first_version(&out)
}

/// The environment variable whose value, when set, is passed as `docker build --network VALUE`
/// (`none` for a daemon without a bridge network, or for builds that must not reach out).
pub const ENV_NETWORK: &str = "SHIPIT_DOCKER_NETWORK";

/// `docker build --target binary --platform P --output type=local,dest=DIR .`
pub fn build_binary(s: &BuildSpec) -> Cmd {
    let dest = s.target_dir.join("docker-out");
    let mut cmd = Cmd::new(
        program(),
        format!("build {} ({}) in BuildKit", s.platform.name, s.libc),
    )
    .args(["build", "--file", "docker/Dockerfile", "--target", "binary"]);
    if let Some(net) = std::env::var(ENV_NETWORK).ok().filter(|n| !n.is_empty()) {
        cmd = cmd.args(["--network", &net]);
    }
    cmd.args(["--platform", s.platform.name])
        .args(["--build-arg", &format!("RUST_TARGET={}", s.target)])
        .args(["--build-arg", &format!("BIN={}", s.project.bin)])
        .args(["--output", &format!("type=local,dest={}", dest.display())])
        .arg(".")
        .env("DOCKER_BUILDKIT", "1")
        .cwd(&s.project.root)
}

/// `docker build --platform P --tag TAG CONTEXT` with BuildKit: the docker packager's image.
pub fn build_image(context: &Path, platform: &str, tag: &str) -> Cmd {
    Cmd::new(program(), format!("package {platform} with docker build"))
        .args(["build", "--platform", platform, "--tag", tag])
        .args(["--file", &context.join("Dockerfile").display().to_string()])
        .arg(context.display().to_string())
        .env("DOCKER_BUILDKIT", "1")
}

/// `docker save --output FILE IMAGE`: the image as a docker archive (or, from Docker 25 on, an
/// OCI layout that also carries `manifest.json`).
pub fn save(image: &str, out: &Path) -> Cmd {
    Cmd::new(program(), format!("export {image} with docker save")).args([
        "save",
        "--output",
        &out.display().to_string(),
        image,
    ])
}

/// `docker load --input FILE`: a docker archive into the daemon (how an `oci:` base gets there).
pub fn load(archive: &Path) -> Cmd {
    Cmd::new(program(), "load a base image into dockerd").args([
        "load",
        "--input",
        &archive.display().to_string(),
    ])
}

/// `docker image inspect --format {{.Id}} IMAGE`: succeeds when the daemon has the image.
pub fn image_id(image: &str) -> Cmd {
    Cmd::new(program(), format!("look up {image} in dockerd"))
        .args(["image", "inspect", "--format", "{{.Id}}", image])
}

/// `docker image rm IMAGE`: drops a temporary tag (layers shared with other images stay).
pub fn remove_image(image: &str) -> Cmd {
    Cmd::new(program(), format!("remove {image} from dockerd")).args(["image", "rm", image])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packager_commands_use_buildkit_and_the_context() {
        let c = build_image(Path::new("/tmp/ctx"), "linux/arm64", "shipit-pkg/x:1");
        assert_eq!(c.env.get("DOCKER_BUILDKIT").map(String::as_str), Some("1"));
        assert_eq!(
            c.args,
            [
                "build",
                "--platform",
                "linux/arm64",
                "--tag",
                "shipit-pkg/x:1",
                "--file",
                "/tmp/ctx/Dockerfile",
                "/tmp/ctx"
            ]
        );
        assert_eq!(
            save("a:b", Path::new("/o/i.tar")).args,
            ["save", "--output", "/o/i.tar", "a:b"]
        );
    }
}
