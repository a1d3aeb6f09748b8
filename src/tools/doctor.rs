//! `shipit doctor`: for what the Plan needs, find each tool (`which` + its version parsed with
//! semver against a minimum), say what is missing or too old and the exact command that installs
//! it; `--fix` runs those installs where it can (apt as root, rustup, pip).
//!
//! The release's gate (`Probing::Remembered`) does not start every tool again: a version probed
//! once is remembered in `$XDG_CACHE_HOME/shipit/cache/tool-versions.json` (else `~/.cache`,
//! else `dist/cache`), for every project of the user, under the identity of what would run
//! (the path `PATH` finds and the file it resolves to, each by size, mtime and inode, and what
//! picks the program behind a rustup proxy or a pyenv shim: the toolchains, rustup's settings,
//! `rust-toolchain` files, pyenv's version file and their environment variables). Anything of
//! that changed probes again; `shipit doctor` always probes afresh. The session's rustup lists
//! (`rustup_installed`) are remembered the same way, in the user's cache.

use crate::cache::file_id;
use crate::config::Backend;
use crate::exec::Cmd;
use crate::plan::Plan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How `check` learns what is installed.
#[derive(Debug, Clone, Copy)]
pub enum Probing<'a> {
    /// Every probe runs now (`shipit doctor`, and after `--fix`).
    Fresh,
    /// The inventory this run's session probed, and versions remembered in the user's
    /// `cache/tool-versions.json` (else `<out>/cache/`) while the tool's identity is unchanged
    /// (the release gate).
    Remembered {
        out: &'a Path,
        inventory: &'a crate::plan::Inventory,
    },
}

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
    /// The Debian archive keyring in this directory (`gpgv::archive_keyrings` finds one).
    Keyring(PathBuf),
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
            // A deb:SUITE base: the archive's InRelease is checked with gpgv and the keyring.
            for (tool, probe, install) in archive_checkers() {
                add(
                    tool,
                    probe,
                    install,
                    format!("{why}: deb base ({})", d.arch),
                    Necessity::Required,
                );
            }
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
    // `build.packages`: every gnu target's build sysroot comes from a Debian suite, whose
    // InRelease is checked the same way, whatever the bases are.
    let sysroot_targets = plan.sysroots.iter().flat_map(|s| &s.targets);
    // (A target another backend builds in its own container has no Debian architecture here.)
    for t in sysroot_targets.filter(|t| !t.arch.is_empty()) {
        for (tool, probe, install) in archive_checkers() {
            add(
                tool,
                probe,
                install,
                format!(
                    "{} ({}): build sysroot ({} {})",
                    t.platform, t.libc, t.suite, t.arch
                ),
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

/// What checks a Debian archive's `InRelease`: gpgv and the Debian archive keyring.
fn archive_checkers() -> [(String, Probe, Install); 2] {
    [
        (
            "gpgv".into(),
            Probe::Binary("gpgv".into(), semver::Version::new(2, 0, 0)),
            Install::Apt("gpgv".into()),
        ),
        (
            "debian-archive-keyring".into(),
            Probe::Keyring(PathBuf::from(super::gpgv::KEYRING_DIR)),
            Install::Apt("debian-archive-keyring".into()),
        ),
    ]
}

fn probe(
    need: &Need,
    inv: &crate::plan::Inventory,
    memo: Option<&Memo>,
    cancel: &crate::exec::Cancel,
) -> (Status, Option<String>, Option<String>, Option<String>) {
    match &need.probe {
        Probe::Binary(program, min) => {
            let path = which::which(program).ok();
            let Some(path) = path else {
                return (Status::Missing, None, Some(min.to_string()), None);
            };
            let version = match memo {
                Some(memo) => memo.version(program, &path, cancel),
                None => super::probe_version(program.as_str(), &["--version"], cancel),
            };
            let path = Some(path.display().to_string());
            match version {
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
        Probe::Keyring(dir) => match super::gpgv::archive_keyrings(dir).first() {
            Some(k) => (Status::Ok, None, None, Some(k.display().to_string())),
            None => (Status::Missing, None, None, None),
        },
        Probe::RustSrc => {
            if inv.rust_src {
                (Status::Ok, None, None, None)
            } else {
                (Status::Missing, None, None, None)
            }
        }
    }
}

/// Checks every requirement of the plan, probing as `probing` says.
pub fn check(
    plan: &Plan,
    verify: bool,
    docker_packager: bool,
    probing: Probing<'_>,
    cancel: &crate::exec::Cancel,
) -> Vec<Finding> {
    let needs = requirements(plan, verify, docker_packager);
    let rustup_needed = needs
        .iter()
        .any(|n| matches!(n.probe, Probe::RustStd(_) | Probe::RustSrc));
    // Rustup's lists only matter for rust-std / rust-src findings; the session has them.
    let inv = match probing {
        _ if !rustup_needed => crate::plan::Inventory::default(),
        Probing::Remembered { inventory, .. } => inventory.clone(),
        Probing::Fresh => super::probe_inventory(false, false, cancel), // cross and docker have probes of their own
    };
    let memo = match probing {
        Probing::Remembered { out, .. } => Some(Memo::open(out)),
        Probing::Fresh => None,
    };
    // Each probe runs `TOOL --version` (unless remembered): run them side by side.
    let probed: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = needs
            .iter()
            .map(|n| s.spawn(|| probe(n, &inv, memo.as_ref(), cancel)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((Status::Missing, None, None, None)))
            .collect()
    });
    if let Some(memo) = memo {
        memo.save();
    }
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

/// Tool versions remembered by the identity of what would run (see the module's comment).
struct Memo {
    cache: Mutex<crate::cache::Cache>,
    /// What picks the program behind a proxy or a shim, the same for every tool of a run.
    selectors: String,
}

/// The version a probe found (`None`: the tool printed none shipit could parse).
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    version: Option<String>,
}

impl Memo {
    fn open(out: &Path) -> Memo {
        Memo {
            // The user's cache (else the output dir): a tool's identity is the same for every
            // project on the machine, so a new checkout does not probe what another one did.
            cache: Mutex::new(crate::cache::Cache::open(
                &user_cache_dir().unwrap_or_else(|| out.to_path_buf()),
                "tool-versions",
            )),
            selectors: selectors(),
        }
    }

    /// `program`'s version: remembered while its identity is unchanged, else probed (and
    /// remembered when the probe ran to the end).
    fn version(
        &self,
        program: &str,
        path: &Path,
        cancel: &crate::exec::Cancel,
    ) -> Option<semver::Version> {
        let key = self.key(program, path);
        if let Some(r) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get::<Remembered>(&key))
        {
            return r.version.and_then(|v| semver::Version::parse(&v).ok());
        }
        let v = super::probe_version(program, &["--version"], cancel);
        // An interrupted probe found nothing: nothing to remember.
        if !cancel.is_cancelled()
            && let Ok(mut c) = self.cache.lock()
        {
            c.put(
                &key,
                &Remembered {
                    version: v.as_ref().map(ToString::to_string),
                },
            );
        }
        v
    }

    fn key(&self, program: &str, path: &Path) -> String {
        crate::cache::Inputs::new(program)
            .file_id(path)
            .line(&self.selectors)
            .digest()
    }

    fn save(self) {
        if let Ok(mut c) = self.cache.into_inner() {
            c.save();
        }
    }
}

/// What rustup has installed for the active toolchain (targets with a rust-std, and whether
/// rust-src is there): `rustup::installed`, remembered in `$XDG_CACHE_HOME/shipit/cache/
/// rustup-installed.json` (else `~/.cache`) while nothing that decides the answer changed: what
/// picks the toolchain (see `selectors`) and every toolchain's `lib/rustlib/components` list,
/// which rustup rewrites on each `target add` / `component add` / update. Two rustup runs
/// (~0.25 s) saved on every command after the first.
pub fn rustup_installed(
    cancel: &crate::exec::Cancel,
) -> Option<(std::collections::BTreeSet<String>, bool)> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Installed {
        targets: std::collections::BTreeSet<String>,
        rust_src: bool,
    }
    let Some(dir) = user_cache_dir() else {
        return super::rustup::installed(cancel);
    };
    let rustup = rustup_home();
    let mut text = format!("rustup installed v1\n{}", selectors());
    for tc in sorted_entries(&rustup.join("toolchains")) {
        let f = tc.join("lib/rustlib/components");
        text.push_str(&format!("{} {}\n", f.display(), file_id(&f)));
    }
    let key = crate::oci::digest::Digest::of(text.as_bytes()).to_string();
    let mut cache = crate::cache::Cache::open(&dir, "rustup-installed");
    if let Some(known) = cache.get::<Installed>(&key) {
        return Some((known.targets, known.rust_src));
    }
    let (targets, rust_src) = super::rustup::installed(cancel)?;
    if !cancel.is_cancelled() {
        cache.put(
            &key,
            &Installed {
                targets: targets.clone(),
                rust_src,
            },
        );
        cache.save();
    }
    Some((targets, rust_src))
}

/// `$XDG_CACHE_HOME/shipit` (else `~/.cache/shipit`), as the Debian download cache.
fn user_cache_dir() -> Option<PathBuf> {
    let nonempty = |v: &str| {
        std::env::var_os(v)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("shipit"))
}

fn rustup_home() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What decides which program a rustup proxy or a pyenv shim runs: their environment
/// variables, every rustup toolchain's `cargo` and `rustc`, rustup's settings, the
/// `rust-toolchain` files from the working directory up, pyenv's version file.
fn selectors() -> String {
    selectors_from(std::env::current_dir().ok().as_deref(), &rustup_home())
}

/// Files that pick a tool's version for the directory they are in and those below it: rustup's,
/// pyenv's, and asdf's and mise's (which shim tools the same way).
const OVERRIDE_FILES: [&str; 6] = [
    "rust-toolchain",
    "rust-toolchain.toml",
    ".python-version",
    ".tool-versions",
    "mise.toml",
    ".mise.toml",
];

/// `selectors`, for a run in `cwd` with rustup's home at `rustup`.
fn selectors_from(cwd: Option<&Path>, rustup: &Path) -> String {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".pyenv"));
    let mut out = String::new();
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTUP_HOME",
        "PYENV_VERSION",
        "PYENV_ROOT",
        "PATH",
    ] {
        out.push_str(&format!("{var}={:?}\n", std::env::var_os(var)));
    }
    let mut files = vec![rustup.join("settings.toml"), pyenv.join("version")];
    for tc in sorted_entries(&rustup.join("toolchains")) {
        files.push(tc.join("bin/cargo"));
        files.push(tc.join("bin/rustc"));
    }
    // Only the override files that exist: a directory without any decides nothing, so a fresh
    // checkout elsewhere finds what the last one remembered (the path of one that exists is
    // part of the answer, as its identity is). rustup's own directory overrides (`rustup
    // override set`) are kept in settings.toml by path: while it has any, the directory itself
    // is part of the answer too.
    if let Some(cwd) = cwd {
        let settings = std::fs::read_to_string(rustup.join("settings.toml")).unwrap_or_default();
        if settings.lines().any(|l| l.trim() == "[overrides]") {
            out.push_str(&format!("cwd={}\n", cwd.display()));
        }
        for dir in cwd.ancestors() {
            for name in OVERRIDE_FILES {
                let f = dir.join(name);
                if std::fs::symlink_metadata(&f).is_ok() {
                    files.push(f);
                }
            }
        }
    }
    for f in files {
        out.push_str(&format!("{} {}\n", f.display(), file_id(&f)));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_toolchain_overrides_selects_like_any_other() {
        let rustup = tempfile::tempdir().unwrap();
        let rustup_home = || rustup.path().to_path_buf();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        assert_eq!(
            selectors_from(Some(a.path()), &rustup_home()),
            selectors_from(Some(b.path()), &rustup_home()),
            "two fresh checkouts remember the same answers"
        );
        std::fs::write(
            a.path().join("rust-toolchain.toml"),
            "[toolchain]\nchannel = \"1.80\"\n",
        )
        .unwrap();
        let pinned = selectors_from(Some(a.path()), &rustup_home());
        assert_ne!(
            pinned,
            selectors_from(Some(b.path()), &rustup_home()),
            "an override decides"
        );
        assert!(pinned.contains("rust-toolchain.toml"), "{pinned}");
        std::fs::write(
            a.path().join("rust-toolchain.toml"),
            "[toolchain]\nchannel = \"1.81.0\"\n",
        )
        .unwrap();
        assert_ne!(
            pinned,
            selectors_from(Some(a.path()), &rustup_home()),
            "its content decides"
        );
        // An override in a parent directory counts for the directories under it.
        let sub = a.path().join("crate");
        std::fs::create_dir(&sub).unwrap();
        assert!(selectors_from(Some(&sub), &rustup_home()).contains("rust-toolchain.toml"));
        std::fs::write(b.path().join(".tool-versions"), "rust 1.80.0\n").unwrap();
        assert!(
            selectors_from(Some(b.path()), &rustup_home()).contains(".tool-versions"),
            "asdf"
        );
    }

    #[test]
    fn rustup_directory_overrides_make_every_directory_its_own_answer() {
        let rustup = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let settings = rustup.path().join("settings.toml");
        std::fs::write(&settings, "version = \"12\"\n").unwrap();
        assert_eq!(
            selectors_from(Some(a.path()), rustup.path()),
            selectors_from(Some(b.path()), rustup.path())
        );
        // `rustup override set` keeps the directory's toolchain in settings.toml, by path.
        std::fs::write(
            &settings,
            format!(
                "version = \"12\"\n\n[overrides]\n\"{}\" = \"1.75\"\n",
                a.path().display()
            ),
        )
        .unwrap();
        assert_ne!(
            selectors_from(Some(a.path()), rustup.path()),
            selectors_from(Some(b.path()), rustup.path())
        );
    }
}
