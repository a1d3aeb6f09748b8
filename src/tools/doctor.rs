//! `shipit doctor`: for what the Plan needs, find each tool (`which` + its version parsed with
//! semver against a minimum), say what is missing or too old and the exact command that installs
//! it; `--fix` runs those installs where it can (apt as root, rustup, pip).

use crate::config::Backend;
use crate::exec::Cmd;
use crate::plan::Plan;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a missing tool gets installed. In JSON: `{"with": "apt"|"rustup"|"pip"|"cargo"|"manual",
/// "what": [the packages or arguments], "note": null | what to do by hand}` (`what` is always
/// a list, and an instruction in words is only ever `note`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    Apt(String),
    Rustup(Vec<String>),
    Pip(Vec<String>),
    Cargo(String),
    Manual(String),
}

impl Serialize for Install {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (with, what, note): (&str, Vec<&str>, Option<&str>) = match self {
            Install::Apt(p) => ("apt", vec![p.as_str()], None),
            Install::Rustup(a) => ("rustup", a.iter().map(String::as_str).collect(), None),
            Install::Pip(p) => ("pip", p.iter().map(String::as_str).collect(), None),
            Install::Cargo(c) => ("cargo", vec![c.as_str()], None),
            Install::Manual(t) => ("manual", Vec::new(), Some(t.as_str())),
        };
        let mut st = s.serialize_struct("Install", 3)?;
        st.serialize_field("with", with)?;
        st.serialize_field("what", &what)?;
        st.serialize_field("note", &note)?;
        st.end()
    }
}

impl Install {
    /// The command that installs it; `None` when it is installed by hand (see `how`).
    pub fn shell_command(&self) -> Option<String> {
        match self {
            Install::Manual(_) => None,
            other => Some(other.command()),
        }
    }

    /// The command, or for a manual install what to do, for people.
    pub fn command(&self) -> String {
        match self {
            Install::Apt(p) => format!("apt-get install -y {p}"),
            Install::Rustup(a) => format!("rustup {}", a.join(" ")),
            Install::Pip(p) => format!("pip install {}", p.join(" ")),
            Install::Cargo(c) => format!("cargo install --locked {c}"),
            Install::Manual(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Missing,
    TooOld,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub tool: String,
    pub status: Status,
    pub version: Option<String>,
    pub minimum: Option<String>,
    pub path: Option<String>,
    /// Which platforms or stages need it.
    pub needed_for: Vec<String>,
    pub install: Install,
    /// The exact command that installs it; `null` when there is none (`install.note` says
    /// what to do by hand).
    pub install_command: Option<String>,
    /// False for improvements that the run can do without (a prebuilt rust-std where
    /// -Zbuild-std works too).
    pub required: bool,
}

enum Probe {
    Binary(String, semver::Version),
    /// cross, probed through rustup's linked toolchain (a bare `cross --version` may make rustup
    /// try to install a toolchain over the network).
    Cross(semver::Version),
    /// A docker CLI that can build with BuildKit (the first `docker` on PATH may not).
    Docker(semver::Version),
    RustStd(String),
    RustSrc,
}

/// Whether one reason for a tool blocks the run without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Necessity {
    Required,
    /// An improvement the run can do without (a prebuilt rust-std where -Zbuild-std works too).
    Optional,
}

struct Need {
    /// True when at least one reason needs it (false when every reason is optional).
    required: bool,
    tool: String,
    probe: Probe,
    install: Install,
    needed_for: Vec<String>,
}

fn requirements(plan: &Plan, verify: bool, docker_packager: bool) -> Vec<Need> {
    let mut needs: BTreeMap<String, Need> = BTreeMap::new();
    // `need` is Optional for an improvement the run can do without.
    let mut add = |tool: String, probe: Probe, install: Install, why: String, need: Necessity| {
        let n = needs.entry(tool.clone()).or_insert(Need {
            required: false,
            tool,
            probe,
            install,
            needed_for: Vec::new(),
        });
        n.required |= need == Necessity::Required;
        if !n.needed_for.contains(&why) {
            n.needed_for.push(why);
        }
    };
    add(
        "cargo".into(),
        Probe::Binary("cargo".into(), super::cargo::MIN),
        Install::Manual("install Rust with rustup (https://rustup.rs)".into()),
        "every build".into(),
        Necessity::Required,
    );
    for (_, p) in plan.platforms() {
        let why = format!("{} ({})", p.platform, p.libc);
        if p.build_std {
            add(
                format!("rust-std {}", p.target),
                Probe::RustStd(p.target.clone()),
                Install::Rustup(vec!["target".into(), "add".into(), p.target.clone()]),
                format!("{why} (optional: -Zbuild-std builds std instead)"),
                Necessity::Optional,
            );
            add(
                "rust-src".into(),
                Probe::RustSrc,
                Install::Rustup(vec!["component".into(), "add".into(), "rust-src".into()]),
                format!("{why}: -Zbuild-std (no rust-std for {})", p.target),
                Necessity::Required,
            );
        } else if p.target != crate::plan::host_target() {
            add(
                format!("rust-std {}", p.target),
                Probe::RustStd(p.target.clone()),
                Install::Rustup(vec!["target".into(), "add".into(), p.target.clone()]),
                why.clone(),
                Necessity::Required,
            );
        }
        match p.backend {
            Backend::Zigbuild => add(
                "cargo-zigbuild".into(),
                Probe::Binary("cargo-zigbuild".into(), super::zigbuild::MIN),
                Install::Pip(vec!["ziglang".into(), "cargo-zigbuild".into()]),
                why.clone(),
                Necessity::Required,
            ),
            Backend::Cross => {
                add(
                    "cross".into(),
                    Probe::Cross(super::cross::MIN),
                    Install::Cargo("cross".into()),
                    why.clone(),
                    Necessity::Required,
                );
                add(
                    "docker".into(),
                    Probe::Docker(super::docker::MIN),
                    Install::Apt("docker.io".into()),
                    why.clone(),
                    Necessity::Required,
                );
            }
            Backend::Docker => add(
                "docker".into(),
                Probe::Docker(super::docker::MIN),
                Install::Apt("docker.io".into()),
                why.clone(),
                Necessity::Required,
            ),
            Backend::Cargo | Backend::Auto => {
                if let Some(linker) = p.linker.as_deref().filter(|l| *l != "rust-lld") {
                    add(
                        linker.to_string(),
                        Probe::Binary(linker.to_string(), semver::Version::new(8, 0, 0)),
                        Install::Apt(format!("gcc-{}", p.spec.gcc_triple)),
                        why.clone(),
                        Necessity::Required,
                    );
                }
            }
        }
        if let Some(d) = &p.deb {
            // A deb:SUITE base: the archive's InRelease is checked with gpgv (and the keyring).
            add(
                "gpgv".into(),
                Probe::Binary("gpgv".into(), semver::Version::new(2, 0, 0)),
                Install::Apt("gpgv".into()),
                format!("{why}: deb base ({})", d.arch),
                Necessity::Required,
            );
        }
        if verify && !p.native {
            let q = p.spec.qemu_static();
            add(
                q.clone(),
                Probe::Binary(q, super::qemu::MIN),
                Install::Apt("qemu-user-static".into()),
                format!("verify {why}"),
                Necessity::Required,
            );
        }
    }
    if docker_packager {
        add(
            "docker".into(),
            Probe::Docker(super::docker::MIN),
            Install::Apt("docker.io".into()),
            "package: docker".into(),
            Necessity::Required,
        );
    }
    needs.into_values().collect()
}

fn probe(
    need: &Need,
    inv: &crate::plan::Inventory,
    cancel: &crate::exec::Cancel,
) -> (Status, Option<String>, Option<String>, Option<String>) {
    match &need.probe {
        Probe::Binary(program, min) => {
            let path = which::which(program).ok().map(|p| p.display().to_string());
            if path.is_none() {
                return (Status::Missing, None, Some(min.to_string()), None);
            }
            match super::probe_version(program.as_str(), &["--version"], cancel) {
                Some(v) if v >= *min => {
                    (Status::Ok, Some(v.to_string()), Some(min.to_string()), path)
                }
                Some(v) => (
                    Status::TooOld,
                    Some(v.to_string()),
                    Some(min.to_string()),
                    path,
                ),
                // Found but no parsable version: report it found, version unknown.
                None => (Status::Ok, None, Some(min.to_string()), path),
            }
        }
        Probe::Cross(min) => match super::cross::version(cancel) {
            Some(v) if v >= *min => (
                Status::Ok,
                Some(v.to_string()),
                Some(min.to_string()),
                which::which("cross").ok().map(|p| p.display().to_string()),
            ),
            Some(v) => (
                Status::TooOld,
                Some(v.to_string()),
                Some(min.to_string()),
                None,
            ),
            None => (Status::Missing, None, Some(min.to_string()), None),
        },
        Probe::Docker(min) => match super::docker::buildkit_cli(cancel) {
            Some(cli) => match super::docker::client_version(cancel) {
                Some(v) if v >= *min => (
                    Status::Ok,
                    Some(v.to_string()),
                    Some(min.to_string()),
                    Some(cli.to_string()),
                ),
                Some(v) => (
                    Status::TooOld,
                    Some(v.to_string()),
                    Some(min.to_string()),
                    Some(cli.to_string()),
                ),
                None => (
                    Status::Ok,
                    None,
                    Some(min.to_string()),
                    Some(cli.to_string()),
                ),
            },
            // A CLI without BuildKit (no buildx plugin, docker >= 23) counts as missing.
            None => (Status::Missing, None, Some(min.to_string()), None),
        },
        Probe::RustStd(t) => {
            if inv.rust_std.contains(t) {
                (Status::Ok, None, None, None)
            } else {
                (Status::Missing, None, None, None)
            }
        }
        Probe::RustSrc => {
            if inv.rust_src {
                (Status::Ok, None, None, None)
            } else {
                (Status::Missing, None, None, None)
            }
        }
    }
}

/// Checks every requirement of the plan.
pub fn check(
    plan: &Plan,
    verify: bool,
    docker_packager: bool,
    cancel: &crate::exec::Cancel,
) -> Vec<Finding> {
    let needs = requirements(plan, verify, docker_packager);
    // Rustup's lists only matter for rust-std / rust-src findings.
    let inv = if needs
        .iter()
        .any(|n| matches!(n.probe, Probe::RustStd(_) | Probe::RustSrc))
    {
        super::probe_inventory(false, false, cancel) // cross and docker have probes of their own
    } else {
        crate::plan::Inventory::default()
    };
    // Each probe runs `TOOL --version`: run them side by side.
    let probed: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = needs
            .iter()
            .map(|n| s.spawn(|| probe(n, &inv, cancel)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((Status::Missing, None, None, None)))
            .collect()
    });
    needs
        .into_iter()
        .zip(probed)
        .map(|(n, (status, version, minimum, path))| Finding {
            required: n.required,
            install_command: n.install.shell_command(),
            tool: n.tool,
            status,
            version,
            minimum,
            path,
            needed_for: n.needed_for,
            install: n.install,
        })
        .collect()
}

/// The commands `--fix` would run for these findings (apt grouped into one install).
pub fn fix_commands(findings: &[Finding]) -> Vec<Cmd> {
    let mut apt: Vec<String> = Vec::new();
    let mut cmds = Vec::new();
    for f in findings.iter().filter(|f| f.status != Status::Ok) {
        match &f.install {
            Install::Apt(p) => {
                if !apt.contains(p) {
                    apt.push(p.clone())
                }
            }
            Install::Rustup(a) => {
                cmds.push(Cmd::new("rustup", format!("install {}", f.tool)).args(a.iter().cloned()))
            }
            Install::Pip(p) => cmds.push(
                Cmd::new("python3", format!("install {}", f.tool))
                    .args(["-m", "pip", "install", "--upgrade"])
                    .args(p.iter().cloned()),
            ),
            Install::Cargo(c) => cmds.push(
                Cmd::new("cargo", format!("install {}", f.tool)).args(["install", "--locked", c]),
            ),
            Install::Manual(_) => {}
        }
    }
    if !apt.is_empty() {
        let mut all = vec![
            Cmd::new("apt-get", "refresh the package lists")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
            Cmd::new("apt-get", "install system packages")
                .args(["install", "-y", "--no-install-recommends"])
                .args(apt)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        ];
        all.extend(cmds);
        cmds = all;
    }
    cmds
}

/// Whether a finding blocks the run (missing or too old).
pub fn blocking(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.required && f.status != Status::Ok)
        .collect()
}
