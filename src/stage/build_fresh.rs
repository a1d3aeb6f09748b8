//! The no-op build: knowing that a target's binary is up to date without starting cargo (or
//! cargo-zigbuild) at all. After a successful build a *stamp* is written next to the binary
//! (`<bin>.shipit-fresh.json`); the next build skips the toolchain only when everything cargo's
//! own fingerprint depends on is as the stamp recorded it:
//!
//! - every file of cargo's dep-info for the binary (`<bin>.d`: the sources of every local crate,
//!   and the `rerun-if-changed` paths of build scripts, a directory with everything under it),
//!   by size, mtime and inode;
//! - every file of a local package that has a build script (cargo reruns such a script when any
//!   file of its package changes, unless it declared what it reads);
//! - by content: every `Cargo.toml`, `Cargo.lock`, `.cargo/config[.toml]`,
//!   `rust-toolchain[.toml]` from the project (and each local package) up to `/`, and
//!   `$CARGO_HOME/config[.toml]` and rustup's `settings.toml`;
//! - the exact command (program, arguments, the variables shipit sets, the working directory),
//!   as it runs: with the C library variables added for the target (`syslibs`), so a build
//!   sysroot's path, which carries its key (`bookworm-arm64-<key>`: the locked packages), is in
//!   it and a changed sysroot or variable starts the toolchain;
//! - the environment: every inherited variable whose name starts with `CARGO`, `RUST`, `CC`,
//!   `CXX`, `CFLAGS`, `AR`, `TARGET_`, `HOST_`, `ZIG`, … (RUSTFLAGS, CARGO_ENCODED_RUSTFLAGS,
//!   CARGO_PROFILE_*, RUSTC_WRAPPER, RUSTUP_TOOLCHAIN, CC_<target> …), a variable appearing or
//!   vanishing included, plus each variable a build script declared with `rerun-if-env-changed`
//!   and each one rustc recorded as read by `env!`/`option_env!` (`# env-dep:` in `deps/*.d`);
//! - the toolchain, without running it: the size, mtime and inode of every rustup toolchain's
//!   `rustc`, `cargo` and `librustc_driver`, and of the `cargo`, `rustc`, `cargo-zigbuild`,
//!   `zig` and linker that `PATH` resolves;
//! - the binary itself (size, mtime, inode and sha256).
//!
//! A stamp is written only when no tracked file changed while the build ran (its mtime is older
//! than the build's start), so an edit during a compile is never taken as built. `cross` and
//! `docker` builds run elsewhere and are never skipped. `SHIPIT_NO_FRESHNESS=1` turns the check
//! off (cargo then decides, as before).

use crate::exec::Cmd;
use crate::oci::digest::Digest;
use crate::plan::PlatformPlan;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Set to `1` to always start the toolchain (cargo's own up-to-date check then decides).
pub const DISABLE_ENV: &str = "SHIPIT_NO_FRESHNESS";

/// Bumped whenever what a stamp covers changes: an older stamp is then simply not fresh.
const STAMP_VERSION: u32 = 1;

/// Inherited variables whose names start with one of these are part of the stamp.
const ENV_PREFIXES: &[&str] = &[
    "CARGO",
    "RUST",
    "CC",
    "CXX",
    "CFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "AR",
    "TARGET_",
    "HOST_",
    "ZIG",
    "PKG_CONFIG",
    "SOURCE_DATE_EPOCH",
    "MACOSX_DEPLOYMENT_TARGET",
];

/// A file's identity without reading it: what cargo's mtime comparison sees, and more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileId {
    size: u64,
    mtime_ns: i128,
    inode: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    version: u32,
    command: String,
    env: BTreeMap<String, Option<String>>,
    /// Dep-info sources and build-script inputs, by identity (`None`: did not exist).
    files: BTreeMap<PathBuf, Option<FileId>>,
    /// Manifests, lockfiles, configs and toolchain files, by sha256 (`None`: did not exist).
    contents: BTreeMap<PathBuf, Option<String>>,
    /// Toolchain binaries, by identity.
    tools: BTreeMap<PathBuf, Option<FileId>>,
    binary: FileId,
    binary_sha256: String,
}

/// Whether the stamp of `p` says its binary is up to date when built by `cmd` (the plan's
/// command with the build variables added): `Ok(())`, or why not (for the log).
pub fn check(p: &PlatformPlan, cmd: &Cmd) -> Result<(), String> {
    if std::env::var(DISABLE_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err(format!("{DISABLE_ENV} is set"));
    }
    if !applies(p) {
        return Err(format!("the {} backend always runs", p.backend.name()));
    }
    let path = stamp_path(p);
    let text = std::fs::read(&path).map_err(|_| "no stamp from an earlier build".to_string())?;
    let old: Stamp =
        serde_json::from_slice(&text).map_err(|_| "the stamp is unreadable".to_string())?;
    if old.version != STAMP_VERSION {
        return Err("the stamp is from another shipit".into());
    }
    if file_id(&p.built).as_ref() != Some(&old.binary) {
        return Err(format!("{} changed", p.built.display()));
    }
    if command_key(cmd) != old.command {
        return Err("the build command changed".into());
    }
    let declared: BTreeSet<String> = old.env.keys().cloned().collect();
    if env_snapshot(&declared) != old.env {
        return Err("the environment changed".into());
    }
    for (f, was) in &old.contents {
        if &content_hash(f) != was {
            return Err(format!("{} changed", f.display()));
        }
    }
    for (f, was) in &old.files {
        if &file_id(f) != was {
            return Err(format!("{} changed", f.display()));
        }
    }
    if tool_ids(p) != old.tools {
        return Err("the toolchain changed".into());
    }
    let bytes = std::fs::read(&p.built).map_err(|e| format!("{}: {e}", p.built.display()))?;
    if Digest::of(&bytes).to_string() != old.binary_sha256 {
        return Err(format!("{} changed", p.built.display()));
    }
    Ok(())
}

/// Removes the stamp of `p` (before its toolchain starts: a failed build leaves none).
pub fn forget(p: &PlatformPlan) {
    std::fs::remove_file(stamp_path(p)).ok();
}

/// Records the stamp of `p` after a successful build by `cmd` that started at `started` and
/// gave the binary with digest `built_sha256`; says why not when no stamp could be made (then
/// the next build simply starts the toolchain).
pub fn record(
    p: &PlatformPlan,
    cmd: &Cmd,
    started: SystemTime,
    out_dir: &Path,
    built_sha256: &str,
) -> Result<(), String> {
    if !applies(p) {
        return Err(format!("the {} backend always runs", p.backend.name()));
    }
    let home = Homes::from_env();
    let dep_info = PathBuf::from(format!("{}.d", p.built.display()));
    let sources = read_dep_info(&dep_info, &p.built)?;
    let profile_dir = p.built.parent().ok_or("the binary has no directory")?;
    let mut declared = declared_env(profile_dir);
    let mut files: BTreeMap<PathBuf, Option<FileId>> = BTreeMap::new();
    let mut contents: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    let mut roots: BTreeSet<PathBuf> = BTreeSet::new();
    if let Some(cwd) = &cmd.cwd {
        roots.insert(cwd.clone());
    }
    for s in &sources {
        files.insert(s.clone(), file_id(s));
        // `rerun-if-changed=DIR`: cargo looks at everything under it.
        if s.is_dir() {
            walk_dir(s, &mut files);
        }
        if !home.is_toolchain_or_registry(s)
            && let Some(root) = package_root(s)
        {
            roots.insert(root);
        }
    }
    for root in &roots {
        for dir in root.ancestors() {
            for name in [
                "Cargo.toml",
                "Cargo.lock",
                ".cargo/config",
                ".cargo/config.toml",
                "rust-toolchain",
                "rust-toolchain.toml",
            ] {
                let f = dir.join(name);
                contents
                    .entry(f.clone())
                    .or_insert_with(|| content_hash(&f));
            }
        }
        if has_build_script(root) {
            walk_package(root, out_dir, &mut files);
        }
    }
    for f in home.config_files() {
        let h = content_hash(&f);
        contents.insert(f, h);
    }
    declared.extend(prefixed_env_names());
    let binary = file_id(&p.built).ok_or_else(|| format!("{} is missing", p.built.display()))?;
    let bytes = std::fs::read(&p.built).map_err(|e| format!("{}: {e}", p.built.display()))?;
    let binary_sha256 = Digest::of(&bytes).to_string();
    // Another build into the same target directory may have replaced it since.
    if binary_sha256 != built_sha256 {
        return Err(format!("{} changed after the build", p.built.display()));
    }
    let stamp = Stamp {
        version: STAMP_VERSION,
        command: command_key(cmd),
        env: env_snapshot(&declared),
        files,
        contents,
        tools: tool_ids(p),
        binary,
        binary_sha256,
    };
    // A file written after the build started may not be what the compiler read. File times come
    // from a coarse clock that may lag by a few ms: anything within 100 ms counts as late.
    let started_ns = mtime_ns(started) - 100_000_000;
    let late = stamp
        .files
        .iter()
        .filter_map(|(f, id)| id.as_ref().map(|id| (f, id.mtime_ns)))
        .chain(stamp.contents.keys().filter_map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| m.modified().ok())
                .map(|t| (f, mtime_ns(t)))
        }))
        .find(|(_, t)| *t >= started_ns);
    if let Some((f, _)) = late {
        return Err(format!("{} changed while the build ran", f.display()));
    }
    let text = serde_json::to_vec(&stamp).map_err(|e| e.to_string())?;
    let path = stamp_path(p);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Only builds that run here, with cargo's own target directory, can be judged from outside.
fn applies(p: &PlatformPlan) -> bool {
    use crate::config::Backend;
    matches!(
        p.backend,
        Backend::Auto | Backend::Cargo | Backend::Zigbuild
    )
}

fn stamp_path(p: &PlatformPlan) -> PathBuf {
    PathBuf::from(format!("{}.shipit-fresh.json", p.built.display()))
}

/// Everything about the command that reaches the toolchain.
fn command_key(cmd: &Cmd) -> String {
    format!(
        "{}\nremove: {:?}\nclear: {}",
        cmd.display(),
        cmd.env_remove,
        cmd.clear_env
    )
}

fn prefixed_env_names() -> BTreeSet<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect()
}

/// The values of `names` and of every prefixed variable now set (`None`: unset).
fn env_snapshot(names: &BTreeSet<String>) -> BTreeMap<String, Option<String>> {
    names
        .iter()
        .cloned()
        .chain(prefixed_env_names())
        .map(|k| {
            let v = std::env::var_os(&k).map(|v| v.to_string_lossy().into_owned());
            (k, v)
        })
        .collect()
}

/// Variables build scripts declared (`rerun-if-env-changed`) and rustc recorded (`env-dep`), in
/// the binary's profile directory and in the host profile directory beside it (build scripts and
/// proc macros of a `--target` build live there).
fn declared_env(profile_dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![profile_dir.to_path_buf()];
    if let (Some(profile), Some(target_dir)) = (
        profile_dir.file_name(),
        profile_dir.parent().and_then(Path::parent),
    ) {
        dirs.push(target_dir.join(profile));
    }
    for dir in dirs {
        for out in read_dir_paths(&dir.join("build")) {
            let Ok(text) = std::fs::read_to_string(out.join("output")) else {
                continue;
            };
            for line in text.lines() {
                let rest = line
                    .strip_prefix("cargo::rerun-if-env-changed=")
                    .or_else(|| line.strip_prefix("cargo:rerun-if-env-changed="));
                if let Some(name) = rest {
                    names.insert(name.trim().to_string());
                }
            }
        }
        for d in read_dir_paths(&dir.join("deps")) {
            if d.extension().is_none_or(|e| e != "d") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&d) else {
                continue;
            };
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("# env-dep:") {
                    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

fn read_dir_paths(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The sources cargo lists for `built` in its dep-info file (Makefile syntax, `\ ` escapes).
/// Refused when the file names another output (a project copied with its target directory)
/// or relative paths (`build.dep-info-basedir`): then no stamp is made.
fn read_dep_info(path: &Path, built: &Path) -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ' ' | '\t' => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut it = tokens.into_iter();
    let target = it
        .next()
        .and_then(|t| t.strip_suffix(':').map(str::to_string))
        .ok_or_else(|| format!("{}: no target line", path.display()))?;
    if Path::new(&target) != built {
        return Err(format!(
            "{} describes {target}, not {}",
            path.display(),
            built.display()
        ));
    }
    let sources: Vec<PathBuf> = it.map(PathBuf::from).collect();
    if sources.iter().any(|s| s.is_relative()) {
        return Err(format!("{} has relative paths", path.display()));
    }
    Ok(sources)
}

/// The nearest directory above `file` holding a `Cargo.toml`.
fn package_root(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

fn has_build_script(root: &Path) -> bool {
    root.join("build.rs").is_file()
        || std::fs::read_to_string(root.join("Cargo.toml"))
            .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("build")))
}

/// Every file of a package (not its target or output directories, not hidden ones).
fn walk_package(root: &Path, out_dir: &Path, files: &mut BTreeMap<PathBuf, Option<FileId>>) {
    let out_dir = std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_path_buf());
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for path in read_dir_paths(&dir) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if name.starts_with('.')
                    || name == "target"
                    || path == out_dir
                    || path.join("CACHEDIR.TAG").exists()
                {
                    continue;
                }
                stack.push(path);
            } else {
                files.insert(path.clone(), file_id(&path));
            }
        }
    }
}

/// Every file and directory under `dir` (directories too: an entry added or removed changes
/// its directory's mtime).
fn walk_dir(dir: &Path, files: &mut BTreeMap<PathBuf, Option<FileId>>) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for path in read_dir_paths(&d) {
            files.insert(path.clone(), file_id(&path));
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                stack.push(path);
            }
        }
    }
}

struct Homes {
    cargo: PathBuf,
    rustup: PathBuf,
}

impl Homes {
    fn from_env() -> Homes {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        Homes {
            cargo: std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cargo")),
            rustup: std::env::var_os("RUSTUP_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".rustup")),
        }
    }

    /// Sources that never change under the same name: registry and git checkouts (pinned by
    /// Cargo.lock), the toolchain's own (`-Zbuild-std`).
    fn is_toolchain_or_registry(&self, f: &Path) -> bool {
        f.starts_with(self.cargo.join("registry"))
            || f.starts_with(self.cargo.join("git"))
            || f.starts_with(&self.rustup)
    }

    fn config_files(&self) -> Vec<PathBuf> {
        vec![
            self.cargo.join("config"),
            self.cargo.join("config.toml"),
            self.rustup.join("settings.toml"),
        ]
    }
}

/// The toolchain without running it: every rustup toolchain's compiler files, and what `PATH`
/// resolves for the programs a build starts.
fn tool_ids(p: &PlatformPlan) -> BTreeMap<PathBuf, Option<FileId>> {
    tool_ids_in(&Homes::from_env(), p.linker.as_deref())
}

fn tool_ids_in(home: &Homes, linker: Option<&str>) -> BTreeMap<PathBuf, Option<FileId>> {
    let mut tools = BTreeMap::new();
    for tc in read_dir_paths(&home.rustup.join("toolchains")) {
        for f in [tc.join("bin/rustc"), tc.join("bin/cargo")] {
            tools.insert(f.clone(), file_id(&f));
        }
        for f in read_dir_paths(&tc.join("lib")) {
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("librustc_driver"))
            {
                tools.insert(f.clone(), file_id(&f));
            }
        }
    }
    let mut programs = vec!["cargo", "rustc", "cargo-zigbuild", "zig"];
    programs.extend(linker);
    for prog in programs {
        let key = PathBuf::from(format!("PATH:{prog}"));
        let resolved = which::which(prog)
            .ok()
            .and_then(|w| std::fs::canonicalize(w).ok());
        match resolved {
            Some(r) => {
                tools.insert(key, file_id(&r));
                tools.insert(r.clone(), file_id(&r));
            }
            None => {
                tools.insert(key, None);
            }
        }
    }
    tools
}

fn file_id(f: &Path) -> Option<FileId> {
    let m = std::fs::metadata(f).ok()?;
    Some(FileId {
        size: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        inode: m.ino(),
    })
}

fn content_hash(f: &Path) -> Option<String> {
    std::fs::read(f).ok().map(|b| Digest::of(&b).to_string())
}

fn mtime_ns(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_key_covers_the_sysroot_and_the_build_variables() {
        use crate::config::Backend;
        use crate::syslibs::sysroot::{apply, env};
        let p = crate::platform::Platform::parse("linux/arm64").unwrap();
        let t = "aarch64-unknown-linux-gnu";
        let base = Cmd::new("cargo", "build").args(["zigbuild", "--target", t]);
        let with = |dir: &str| {
            command_key(&apply(
                base.clone(),
                &env(Path::new(dir), t, p, Backend::Zigbuild),
            ))
        };
        let a = with("/t/shipit/sysroot/bookworm-arm64-0123456789abcdef");
        // Another lock (another key, so another directory) or no sysroot at all: not fresh.
        assert_ne!(a, with("/t/shipit/sysroot/bookworm-arm64-fedcba9876543210"));
        assert_ne!(a, command_key(&base));
        assert_eq!(a, with("/t/shipit/sysroot/bookworm-arm64-0123456789abcdef"));
        assert!(a.contains("PKG_CONFIG_SYSROOT_DIR="), "{a}");
        // A variable shipit adds for the target changes it too.
        let more = apply(
            base.clone(),
            &[crate::syslibs::sysroot::Var {
                name: "OPENSSL_STATIC".into(),
                value: "1".into(),
                append: false,
            }],
        );
        assert_ne!(command_key(&more), command_key(&base));
    }

    #[test]
    fn dep_info_is_parsed_with_escapes_and_checked_against_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("app.d");
        std::fs::write(
            &d,
            "/t/release/app: /p/src/main.rs /p/src/with\\ space.rs /p/build.rs\n\n/p/src/main.rs:\n",
        )
        .unwrap();
        assert_eq!(
            read_dep_info(&d, Path::new("/t/release/app")).unwrap(),
            [
                PathBuf::from("/p/src/main.rs"),
                PathBuf::from("/p/src/with space.rs"),
                PathBuf::from("/p/build.rs")
            ]
        );
        let e = read_dep_info(&d, Path::new("/elsewhere/release/app")).unwrap_err();
        assert!(e.contains("describes /t/release/app"), "{e}");
        std::fs::write(&d, "/t/release/app: src/main.rs\n").unwrap();
        assert!(
            read_dep_info(&d, Path::new("/t/release/app"))
                .unwrap_err()
                .contains("relative")
        );
    }

    #[test]
    fn declared_variables_come_from_build_outputs_and_env_deps() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("x86_64-unknown-linux-musl/release");
        let host = dir.path().join("release");
        std::fs::create_dir_all(profile.join("build/app-1")).unwrap();
        std::fs::create_dir_all(host.join("build/helper-2")).unwrap();
        std::fs::create_dir_all(profile.join("deps")).unwrap();
        std::fs::write(
            profile.join("build/app-1/output"),
            "cargo:rerun-if-env-changed=APP_FLAVOUR\ncargo:rustc-cfg=x\n",
        )
        .unwrap();
        std::fs::write(
            host.join("build/helper-2/output"),
            "cargo::rerun-if-env-changed=HELPER_MODE\n",
        )
        .unwrap();
        std::fs::write(
            profile.join("deps/app-abc.d"),
            "/x: /p/src/main.rs\n# env-dep:GIT_SHA=abc\n# env-dep:UNSET_ONE\n",
        )
        .unwrap();
        let got: Vec<String> = declared_env(&profile).into_iter().collect();
        assert_eq!(got, ["APP_FLAVOUR", "GIT_SHA", "HELPER_MODE", "UNSET_ONE"]);
    }

    #[test]
    fn a_directory_named_by_rerun_if_changed_is_watched_all_the_way_down() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("assets");
        std::fs::create_dir_all(watched.join("deep")).unwrap();
        std::fs::write(watched.join("deep/a.txt"), "one").unwrap();
        let mut files = BTreeMap::new();
        walk_dir(&watched, &mut files);
        assert!(files.contains_key(&watched.join("deep")));
        let before = files[&watched.join("deep/a.txt")].clone();
        std::fs::write(watched.join("deep/a.txt"), "two!").unwrap();
        assert_ne!(file_id(&watched.join("deep/a.txt")), before);
    }

    #[test]
    fn an_updated_or_added_toolchain_changes_the_tool_identity() {
        let dir = tempfile::tempdir().unwrap();
        let tc = dir
            .path()
            .join("toolchains/stable-x86_64-unknown-linux-gnu");
        std::fs::create_dir_all(tc.join("bin")).unwrap();
        std::fs::create_dir_all(tc.join("lib")).unwrap();
        std::fs::write(tc.join("bin/rustc"), "rustc 1").unwrap();
        std::fs::write(tc.join("lib/librustc_driver-abc.so"), "driver 1").unwrap();
        let home = Homes {
            cargo: dir.path().join("cargo"),
            rustup: dir.path().to_path_buf(),
        };
        let before = tool_ids_in(&home, None);
        assert!(before.contains_key(&tc.join("lib/librustc_driver-abc.so")));
        assert_eq!(tool_ids_in(&home, None), before);
        // `rustup update`: new files under the same names.
        std::fs::remove_file(tc.join("lib/librustc_driver-abc.so")).unwrap();
        std::fs::write(tc.join("lib/librustc_driver-def.so"), "driver 2").unwrap();
        assert_ne!(tool_ids_in(&home, None), before);
        // Another toolchain installed.
        let now = tool_ids_in(&home, None);
        std::fs::create_dir_all(dir.path().join("toolchains/nightly/bin")).unwrap();
        assert_ne!(tool_ids_in(&home, None), now);
    }
}
