//! `shipit init`: writes a commented `pipeline.yaml` and `docker/Dockerfile` for the Cargo project
//! in the current directory. Refuses to overwrite either without `--force`. In a workspace it
//! releases the only member with a binary target; when several have one, `--package`/`--bin`
//! say which (the error lists them). The Dockerfile is the repository's `docker/init.Dockerfile`.

use crate::error::{Error, Result};
use crate::tools::cargo::Member;
use crate::ui::Ui;
use std::path::Path;

/// The Dockerfile `shipit init` writes; `__BIN__` stands for the binary's name.
const DOCKERFILE: &str = include_str!("../../docker/init.Dockerfile");

/// What `--package` and `--bin` ask for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pick<'a> {
    pub package: Option<&'a str>,
    pub bin: Option<&'a str>,
}

pub fn run(
    dir: &Path,
    force: bool,
    pick: Pick,
    cancel: &crate::exec::Cancel,
    ui: &Ui,
) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        return Err(Error::config(format!(
            "no Cargo.toml in {}: run `shipit init` in the directory of the Rust package to release",
            dir.display()
        )));
    }
    let members = crate::tools::cargo::members(&manifest, cancel).map_err(Error::config)?;
    let (member, bin) = choose(&members, pick).map_err(Error::config)?;
    if pick.bin.is_none() && member.bins.len() > 1 {
        ui.warn(format!(
            "the package has several binaries ({}); using `{bin}`: pass --bin or change project.bin to pick another",
            member.bins.join(", ")
        ));
    }
    let (package, version) = (&member.name, &member.version);
    let pipeline = dir.join("pipeline.yaml");
    let dockerfile = dir.join("docker/Dockerfile");
    for f in [&pipeline, &dockerfile] {
        if f.exists() && !force {
            return Err(Error::config(format!(
                "{} already exists: nothing was written (use --force to overwrite it)",
                f.display()
            )));
        }
    }
    let text = pipeline_text(package, &bin, &version.to_string());
    // What init writes must be a valid pipeline.
    crate::config::parse_str(&text, &pipeline, dir)
        .map_err(|e| Error::stage(format!("internal: init wrote an invalid pipeline:\n{e}")))?;
    std::fs::write(&pipeline, text).map_err(|e| Error::io(&pipeline, e))?;
    std::fs::create_dir_all(dockerfile.parent().unwrap_or(dir))
        .map_err(|e| Error::stage(e.to_string()))?;
    std::fs::write(&dockerfile, dockerfile_text(&bin)).map_err(|e| Error::io(&dockerfile, e))?;
    ui.ok(format!(
        "wrote {} and {}",
        pipeline.display(),
        dockerfile.display()
    ));
    ui.info("next: `shipit doctor --fix`, then `shipit plan` to see what a release will do");
    Ok(())
}

/// Lists members as `name (bin, bin)`.
fn listing<'a>(members: impl IntoIterator<Item = &'a Member>) -> String {
    members
        .into_iter()
        .map(|m| {
            if m.bins.is_empty() {
                format!("{} (no binary)", m.name)
            } else {
                format!("{} ({})", m.name, m.bins.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The member and binary to release. Without `--package`, the only member with a binary (or
/// the one whose binaries include `--bin`); without `--bin`, the member's only binary (or its
/// first, with a warning by the caller).
pub fn choose<'a>(
    members: &'a [Member],
    pick: Pick,
) -> std::result::Result<(&'a Member, String), String> {
    let with_bins: Vec<&Member> = members.iter().filter(|m| !m.bins.is_empty()).collect();
    let member = match (pick.package, pick.bin) {
        (Some(name), _) => members.iter().find(|m| m.name == name).ok_or_else(|| {
            format!(
                "--package {name}: no such package here (the workspace has: {})",
                listing(members)
            )
        })?,
        (None, Some(bin)) => {
            let owners: Vec<&'a Member> = with_bins
                .iter()
                .copied()
                .filter(|m| m.bins.iter().any(|b| b == bin))
                .collect();
            match owners.as_slice() {
                [one] => *one,
                [] => {
                    return Err(format!(
                        "--bin {bin}: no package here has that binary (binaries: {})",
                        listing(with_bins)
                    ));
                }
                many => {
                    return Err(format!(
                        "--bin {bin}: {} packages have that binary; say which with --package: {}",
                        many.len(),
                        listing(many.iter().copied())
                    ));
                }
            }
        }
        (None, None) => match with_bins.as_slice() {
            [one] => *one,
            [] => {
                return Err(match members {
                    [one] => format!("the package `{}` has no binary target to release", one.name),
                    _ => format!(
                        "no package of the workspace has a binary target to release ({})",
                        listing(members)
                    ),
                });
            }
            many => {
                return Err(format!(
                    "{} packages of the workspace have binaries: say which to release with --package NAME (and --bin NAME): {}",
                    many.len(),
                    listing(many.iter().copied())
                ));
            }
        },
    };
    let bin = match pick.bin {
        Some(b) if member.bins.iter().any(|x| x == b) => b.to_string(),
        Some(b) => {
            return Err(format!(
                "--bin {b}: the package `{}` has no such binary (it has: {})",
                member.name,
                if member.bins.is_empty() {
                    "none".to_string()
                } else {
                    member.bins.join(", ")
                }
            ));
        }
        None => member.bins.first().cloned().ok_or_else(|| {
            format!(
                "the package `{}` has no binary target to release",
                member.name
            )
        })?,
    };
    Ok((member, bin))
}

pub fn pipeline_text(package: &str, bin: &str, version: &str) -> String {
    format!(
        r#"# shipit pipeline for {package} {version} (schema version 1; unknown keys are errors).
# `shipit plan` shows what a release will do; `shipit release` does it.
version: 1
project:
  manifest: Cargo.toml
  package: {package}
  bin: {bin}
  version: cargo            # cargo | git-tag | an explicit version like 1.4.0-rc.1
build:
  backend: auto             # auto | cargo | zigbuild | cross | docker
  profile: release
  glibc: "2.31"             # oldest glibc the gnu binaries must run on (Debian bullseye)
# linux/arm/v6 is the Pi Zero / Pi 1; linux/arm/v7 a Pi 2-5 on a 32-bit OS.
platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]
variants:                   # one multi-arch image per libc
  musl: {{ base: scratch }}   # static binaries, nothing else in the image
  # gnu: {{ base: "debian:bookworm-slim", tag_suffix: "-gnu", platforms: [linux/amd64, linux/arm64, linux/arm/v7] }}
image:
  repository: ghcr.io/your-org/{bin}   # where `publish.to: registry` pushes
  user: "10001:10001"       # never root unless verify.allow_root says so
  entrypoint: ["/usr/local/bin/{bin}"]
  ports: []
  env: {{}}
  labels: {{}}
  tags: ["{{version}}", "{{major}}.{{minor}}", "{{major}}", latest]   # a pre-release gets only {{version}}
verify:
  cpu: strict               # the oldest CPU of each platform: arm1176, cortex-a7, cortex-a53
  max_size: 64MiB
  checks:
    - name: version
      run: ["--version"]
      stdout: '{bin}'
      timeout: 10s
    # - name: serves
    #   serve: {{ port: 8080, path: /health, status: 200, timeout: 20s }}
    #   stop: {{ signal: SIGTERM, within: 5s }}
publish:
  to: oci:dist/oci          # or `registry` to push image.repository
  insecure: false           # plain http only for loopback registries, or when set true
"#
    )
}

/// `docker/Dockerfile` for a project whose binary is `bin`.
pub fn dockerfile_text(bin: &str) -> String {
    DOCKERFILE.replace("__BIN__", bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, bins: &[&str]) -> Member {
        Member {
            name: name.into(),
            version: semver::Version::new(0, 1, 0),
            bins: bins.iter().map(|b| b.to_string()).collect(),
        }
    }

    fn pick<'a>(package: Option<&'a str>, bin: Option<&'a str>) -> Pick<'a> {
        Pick { package, bin }
    }

    fn chosen(members: &[Member], p: Pick) -> (String, String) {
        let (m, b) = choose(members, p).unwrap();
        (m.name.clone(), b)
    }

    #[test]
    fn the_only_package_with_a_binary() {
        let ws = [m("core", &[]), m("app", &["app"])];
        assert_eq!(chosen(&ws, pick(None, None)), ("app".into(), "app".into()));
        let single = [m("solo", &["a", "b"])];
        assert_eq!(
            chosen(&single, pick(None, None)),
            ("solo".into(), "a".into())
        );
        assert_eq!(
            chosen(&single, pick(None, Some("b"))),
            ("solo".into(), "b".into())
        );
    }

    #[test]
    fn several_packages_with_binaries_need_a_flag() {
        let ws = [
            m("core", &[]),
            m("server", &["server"]),
            m("cli", &["cli", "cli-admin"]),
        ];
        let e = choose(&ws, pick(None, None)).unwrap_err();
        assert!(
            e.contains("2 packages of the workspace have binaries"),
            "{e}"
        );
        assert!(
            e.contains("--package") && e.contains("server (server), cli (cli, cli-admin)"),
            "{e}"
        );
        assert_eq!(
            chosen(&ws, pick(Some("cli"), None)),
            ("cli".into(), "cli".into())
        );
        assert_eq!(
            chosen(&ws, pick(None, Some("cli-admin"))),
            ("cli".into(), "cli-admin".into())
        );
        assert_eq!(
            chosen(&ws, pick(Some("server"), Some("server"))),
            ("server".into(), "server".into())
        );
    }

    #[test]
    fn wrong_flags_say_what_there_is() {
        let ws = [m("core", &[]), m("server", &["server"])];
        let e = choose(&ws, pick(Some("nope"), None)).unwrap_err();
        assert!(e.contains("core (no binary), server (server)"), "{e}");
        let e = choose(&ws, pick(Some("core"), None)).unwrap_err();
        assert!(e.contains("`core` has no binary"), "{e}");
        let e = choose(&ws, pick(None, Some("x"))).unwrap_err();
        assert!(e.contains("binaries: server (server)"), "{e}");
        let e = choose(&ws, pick(Some("server"), Some("x"))).unwrap_err();
        assert!(e.contains("it has: server"), "{e}");
        let e = choose(&[m("lib", &[])], pick(None, None)).unwrap_err();
        assert!(e.contains("`lib` has no binary"), "{e}");
    }

    #[test]
    fn the_dockerfile_names_the_binary_and_nothing_else_is_left_to_fill() {
        let d = dockerfile_text("hello");
        assert!(d.contains("ARG BIN=hello"));
        assert!(d.contains("ENTRYPOINT [\"/usr/local/bin/hello\"]"));
        assert!(!d.contains("__BIN__"));
    }
}
