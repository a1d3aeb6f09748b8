//! cargo: `cargo build --target T` with the linker given through `CARGO_TARGET_<T>_LINKER`
//! (nothing is written into the user's `.cargo/config.toml`), and `cargo metadata` for facts:
//! the package facts (`--no-deps`), and the dependency graph every target reads — one unfiltered
//! `cargo metadata` per run ([`graph_for_targets`], remembered in the plan's `GraphMemo`), cut
//! per target by evaluating each edge's `target` against the target's cfg set (`tools::cfg`), the
//! same cut `--filter-platform T` makes. Both `cargo metadata` reads and each target's `rustc
//! --print cfg` are remembered across runs under the project's `target/shipit/` ([`plan_cache_dir`]),
//! keyed by a digest of every input cargo reads for them (manifests, `Cargo.lock`, `.cargo/config*`
//! up the tree, the toolchain's identity, `CARGO*`/`RUST*` variables, the arguments): a changed
//! input reads afresh.

use super::cfg::{Cfgs, Platform};
use super::{BuildSpec, common_cargo_args, target_env};
use crate::exec::{Cancel, Cmd};
use crate::plan::ProjectPlan;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const MIN: semver::Version = semver::Version::new(1, 75, 0);

pub fn build(s: &BuildSpec) -> Cmd {
    let mut cmd = Cmd::new("cargo", format!("build {} ({})", s.platform.name, s.libc))
        .args(["build", "--target", s.target]);
    cmd = common_cargo_args(s, cmd);
    if let Some(linker) = s.linker {
        cmd = cmd.env(target_env(s.target, "LINKER"), linker);
    }
    cmd
}

/// `cargo metadata` for the package facts (no dependencies resolved, no network).
pub fn metadata(manifest: &Path) -> Cmd {
    Cmd::new("cargo", "read the Cargo manifest").args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
        "--manifest-path",
        &manifest.display().to_string(),
    ])
}

/// `cargo metadata` with the dependency graph resolved for one target and the plan's features.
/// [`graph_for_targets`] computes the same from one [`metadata_graph`] read, and falls back to
/// this call only for a graph whose edges it cannot evaluate. It may update the lock file and
/// download crate manifests, as `cargo build` would.
pub fn metadata_for_target(manifest: &Path, target: &str, features: &[String]) -> Cmd {
    let mut cmd = Cmd::new("cargo", format!("read the dependency graph for {target}")).args([
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        target,
        "--manifest-path",
        &manifest.display().to_string(),
    ]);
    if !features.is_empty() {
        cmd = cmd.args(["--features", &features.join(",")]);
    }
    cmd
}

/// `cargo metadata` with the dependency graph resolved for every platform and the plan's features
/// (no `--filter-platform`): the one read [`graph_for_targets`] cuts per target. Like
/// [`metadata_for_target`], it may update the lock file and download crate manifests.
pub fn metadata_graph(manifest: &Path, features: &[String]) -> Cmd {
    let mut cmd = Cmd::new("cargo", "read the dependency graph").args([
        "metadata",
        "--format-version",
        "1",
        "--manifest-path",
        &manifest.display().to_string(),
    ]);
    if !features.is_empty() {
        cmd = cmd.args(["--features", &features.join(",")]);
    }
    cmd
}

/// The rustflags cargo passes to rustc for `target` when it reads the target's cfg set, from the
/// environment (the first set of `CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`,
/// `CARGO_TARGET_<T>_RUSTFLAGS`). `[build] rustflags` in a `.cargo/config.toml` is not read.
pub fn rustflags(target: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    if let Some(e) = env("CARGO_ENCODED_RUSTFLAGS") {
        return e
            .split('\x1f')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
    }
    env("RUSTFLAGS")
        .or_else(|| env(&target_env(target, "RUSTFLAGS")))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// What `cargo metadata --filter-platform TARGET` prints, computed from the unfiltered output
/// `all`: from each workspace member, the dependency edges with at least one declaration that
/// applies to `target` (no `target`, the same triple, or a `cfg(…)` that holds for `cfgs`),
/// walked transitively; `packages` and `resolve.nodes` keep the crates reached, each node its
/// applying `deps` and `dependencies`. Like cargo, a build-dependency's `target` is evaluated
/// for `target`, not for the host, and an edge's `dep_kinds` are kept whole. The `features` of
/// a node are what the unfiltered resolve says: cargo's metadata reports the dependency
/// resolver's features, which `--filter-platform` does not change (the test
/// `attest::one_graph_read_equals_filter_platform` compares both for every planned target).
/// An edge `target` that does not parse is an error: the caller falls back to the filtered call.
pub fn filter_platform<'a>(all: &'a Value, target: &str, cfgs: &Cfgs) -> Result<Value, String> {
    let bad = |what: &str| format!("cargo metadata printed something unexpected: {what}");
    let nodes: BTreeMap<&str, &Value> = all["resolve"]["nodes"]
        .as_array()
        .ok_or_else(|| bad("no resolve graph"))?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut platforms: BTreeMap<&str, bool> = BTreeMap::new();
    let mut applies = |dep: &'a Value| -> Result<bool, String> {
        let kinds = dep["dep_kinds"].as_array();
        if kinds.is_none_or(|k| k.is_empty()) {
            return Ok(true);
        }
        for k in kinds.into_iter().flatten() {
            let Some(t) = k["target"].as_str() else {
                return Ok(true);
            };
            let yes = match platforms.get(t) {
                Some(y) => *y,
                None => {
                    let y = Platform::parse(t)?.matches(target, cfgs);
                    platforms.insert(t, y);
                    y
                }
            };
            if yes {
                return Ok(true);
            }
        }
        Ok(false)
    };
    let mut kept: BTreeMap<&str, Value> = BTreeMap::new();
    let mut stack: Vec<&str> = all["workspace_members"]
        .as_array()
        .ok_or_else(|| bad("no workspace_members"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    stack.reverse();
    while let Some(id) = stack.pop() {
        if kept.contains_key(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        let mut deps: Vec<&'a Value> = Vec::new();
        for d in node["deps"].as_array().into_iter().flatten() {
            if applies(d)? {
                deps.push(d);
            }
        }
        let reached: BTreeSet<&'a str> = deps.iter().filter_map(|d| d["pkg"].as_str()).collect();
        let mut n = (*node).clone();
        if let Some(list) = n.get_mut("dependencies").and_then(Value::as_array_mut) {
            list.retain(|d| d.as_str().is_some_and(|d| reached.contains(d)));
        }
        n["deps"] = Value::Array(deps.into_iter().cloned().collect());
        kept.insert(id, n);
        stack.extend(reached.iter().rev().filter(|d| !kept.contains_key(*d)));
    }
    let mut out = all.clone();
    if let Some(ps) = out["packages"].as_array_mut() {
        ps.retain(|p| p["id"].as_str().is_some_and(|id| kept.contains_key(id)));
    }
    if let Some(ns) = out["resolve"]["nodes"].as_array_mut() {
        *ns = ns
            .iter()
            .filter_map(|n| kept.get(n["id"].as_str()?).cloned())
            .collect();
    }
    Ok(out)
}

/// Per target, what `cargo metadata --filter-platform T` with the plan's features prints (as a
/// value), from ONE unfiltered `cargo metadata` of the run and each target's cfg set (`rustc
/// --print cfg`, side by side with it), both remembered in `project.graph` so that every later
/// stage of the run reads them from there. A graph with an edge `target` that does not parse
/// (a cfg syntax newer than this code) is read with `--filter-platform` per target instead.
pub fn graph_for_targets(
    project: &ProjectPlan,
    targets: &[&str],
    cancel: &Cancel,
) -> Result<BTreeMap<String, Arc<Value>>, String> {
    let mut memo = project.graph.lock();
    let key = (
        project.manifest.display().to_string(),
        project.features.clone(),
    );
    let env = |k: &str| std::env::var(k).ok();
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !memo.cfgs.contains_key(*t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let have_metadata = memo.metadata.get(&key).cloned();
    let mut cfg_cache = crate::cache::Cache::open(&plan_cache_dir(&project.manifest), "print-cfg");
    let toolchain = toolchain_inputs(&[&project.root]);
    let (metadata, cfgs) = std::thread::scope(|s| {
        let cfg_runs: Vec<_> = missing
            .iter()
            .map(|t| {
                let rustc = env("RUSTC").filter(|r| !r.is_empty());
                let cmd =
                    super::cfg::print_cfg(t, &project.root, rustc.as_deref(), &rustflags(t, &env));
                let mut inputs = toolchain.clone();
                inputs
                    .line("rustc --print cfg v1")
                    .line(&format!("{:?} {:?} {:?}", cmd.program, cmd.args, cmd.cwd));
                let key = inputs.digest();
                let known = cfg_cache.get::<String>(&key);
                s.spawn(move || {
                    let out = match known {
                        Some(out) => out,
                        None => crate::exec::capture(&cmd, Duration::from_secs(60), cancel)
                            .map_err(|e| exec_error(&e))?,
                    };
                    Cfgs::parse(&out).map(|c| (t.to_string(), key, out, c))
                })
            })
            .collect();
        let metadata = match have_metadata {
            Some(m) => Ok(m),
            None => metadata_cached(
                &metadata_graph(&project.manifest, &project.features).cwd(&project.root),
                &project.manifest,
                &project.root,
                Duration::from_secs(600),
                cancel,
            )
            .and_then(|out| {
                serde_json::from_str(&out)
                    .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))
            })
            .map(Arc::new),
        };
        let cfgs: Vec<Result<(String, String, String, Cfgs), String>> = cfg_runs
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a rustc --print cfg thread panicked".into()))
            })
            .collect();
        (metadata, cfgs)
    });
    let metadata = metadata?;
    memo.metadata.insert(key, metadata.clone());
    // Bounded: the user's cache collects every project planned before it was built.
    cfg_cache.cap(4 * USER_CACHE_ENTRIES);
    for c in cfgs {
        let (t, key, out, c) = c?;
        if cfg_cache.get::<String>(&key).as_deref() != Some(out.as_str()) {
            cfg_cache.put(&key, &out);
        }
        memo.cfgs.insert(t, Arc::new(c));
    }
    if !cancel.is_cancelled() && may_write(&plan_cache_dir(&project.manifest)) {
        cfg_cache.save();
    }
    let mut out = BTreeMap::new();
    for t in targets {
        let cut = match filter_platform(&metadata, t, &memo.cfgs[*t]) {
            Ok(v) => v,
            Err(_) => read_json(
                &metadata_for_target(&project.manifest, t, &project.features).cwd(&project.root),
                cancel,
            )?,
        };
        out.insert(t.to_string(), Arc::new(cut));
    }
    Ok(out)
}

/// Where the planning caches live: `$CARGO_TARGET_DIR/shipit` when that is set, else
/// `target/shipit` in the nearest directory up from the manifest that holds a `Cargo.lock` (the
/// workspace root once cargo has resolved it), else beside the manifest; but while that target
/// directory does not exist (a project never built: planning, a dry run or a config error must
/// not create it), the user's cache, `$XDG_CACHE_HOME/shipit/plan` (else `~/.cache`), kept to
/// the newest [`USER_CACHE_ENTRIES`] reads. Entries are named by the absolute manifest path and
/// working directory, so projects sharing a directory do not collide.
pub fn plan_cache_dir(manifest: &Path) -> PathBuf {
    let target = project_cache_dir(manifest);
    if target.parent().is_some_and(Path::is_dir) {
        return target;
    }
    user_plan_cache().unwrap_or(target)
}

/// How many `cargo metadata` reads the user's cache keeps (oldest removed first).
pub const USER_CACHE_ENTRIES: usize = 256;

fn project_cache_dir(manifest: &Path) -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        let t = PathBuf::from(t);
        return std::path::absolute(&t).unwrap_or(t).join("shipit");
    }
    let manifest = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let dir = manifest.parent().unwrap_or(Path::new("/"));
    dir.ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(dir)
        .join("target")
        .join("shipit")
}

fn user_plan_cache() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("shipit").join("plan"))
}

/// Whether the planning caches may be written to `dir`: inside a target directory that already
/// exists, or the user's cache.
fn may_write(dir: &Path) -> bool {
    dir.parent().is_some_and(Path::is_dir) || user_plan_cache().as_deref() == Some(dir)
}

/// Keeps the newest `keep` metadata entries (`.json` + `.out`) in `dir`.
fn prune(dir: &Path, keep: usize) {
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("metadata-") && n.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= keep {
        return;
    }
    entries.sort();
    for (_, p) in &entries[..entries.len() - keep] {
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(p.with_extension("out"));
    }
}

/// What decides which cargo and rustc run and how they are configured, as inputs of a cache key:
/// the `CARGO*` and `RUST*` variables (toolchain, target dir, rustflags, registries, offline…),
/// `PATH` and `HOME`; cargo's home config; rustup's settings and every toolchain's `cargo` and
/// `rustc` binaries by identity (an update or `target add` replaces them); the `cargo` and `rustc`
/// found on `PATH`; and from each of `dirs` up, `.cargo/config[.toml]` and `rust-toolchain[.toml]`.
pub fn toolchain_inputs(dirs: &[&Path]) -> crate::cache::Inputs {
    let mut i = crate::cache::Inputs::new("toolchain v1");
    i.env(&["CARGO", "RUST", "__CARGO"], &["PATH", "HOME"]);
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME").unwrap_or_default();
    let cargo_home = var("CARGO_HOME").unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = var("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup"));
    i.file(&cargo_home.join("config"))
        .file(&cargo_home.join("config.toml"))
        .file(&rustup_home.join("settings.toml"));
    let mut toolchains: Vec<PathBuf> = std::fs::read_dir(rustup_home.join("toolchains"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    toolchains.sort();
    for tc in toolchains {
        i.file_id(&tc.join("bin/cargo"))
            .file_id(&tc.join("bin/rustc"))
            .file_id(&tc.join("lib/rustlib/components"));
    }
    for program in ["cargo", "rustc"] {
        match which::which(program) {
            Ok(p) => i.file_id(&p),
            Err(_) => i.line(&format!("no {program}")),
        };
    }
    let mut seen = BTreeSet::new();
    for dir in dirs {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        for a in dir.ancestors() {
            if !seen.insert(a.to_path_buf()) {
                continue;
            }
            i.file(&a.join(".cargo/config"))
                .file(&a.join(".cargo/config.toml"))
                .file(&a.join("rust-toolchain"))
                .file(&a.join("rust-toolchain.toml"));
        }
    }
    i
}

/// A cached `cargo metadata` output: the key of its inputs, the files and directories its
/// output was made from (each path package's manifest and target sources), and the output's
/// digest (its bytes are in the `.out` file beside).
#[derive(serde::Serialize, serde::Deserialize)]
struct MetadataEntry {
    key: String,
    read: Vec<String>,
    read_digest: String,
    output: String,
}

/// The key inputs of a `cargo metadata` command known before running it: its arguments and
/// directory, the manifest, every `Cargo.toml` and `Cargo.lock` from the manifest's directory
/// up (the workspace root is among them) and the toolchain ([`toolchain_inputs`]).
fn metadata_key(cmd: &Cmd, manifest: &Path, cwd: &Path) -> String {
    let manifest = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let mdir = manifest.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut i = toolchain_inputs(&[cwd, &mdir]);
    i.line("cargo metadata v1")
        .line(&format!(
            "{:?} {:?} {}",
            cmd.program,
            cmd.args,
            cwd.display()
        ))
        .file(&manifest);
    for a in mdir.ancestors() {
        i.file(&a.join("Cargo.toml")).file(&a.join("Cargo.lock"));
    }
    i.digest()
}

/// What else the output of `cargo metadata` was made from: for every path package (`source`
/// null: the members and path dependencies), its manifest and where cargo discovers targets
/// (`src/main.rs`, `src/lib.rs`, `build.rs`, the `src/bin`, `examples`, `tests` and `benches`
/// directories and their subdirectories); for a package below the workspace root, its parent
/// directory (a `members = ["crates/*"]` glob); the workspace root's manifest and lock.
fn metadata_reads(out: &Value) -> Vec<String> {
    let mut read = BTreeSet::new();
    let root = out["workspace_root"].as_str().map(PathBuf::from);
    if let Some(r) = &root {
        read.insert(format!("f {}", r.join("Cargo.toml").display()));
        read.insert(format!("f {}", r.join("Cargo.lock").display()));
    }
    for p in out["packages"].as_array().into_iter().flatten() {
        if !p["source"].is_null() {
            continue;
        }
        let Some(m) = p["manifest_path"].as_str().map(Path::new) else {
            continue;
        };
        read.insert(format!("f {}", m.display()));
        let Some(dir) = m.parent() else { continue };
        for f in ["src/main.rs", "src/lib.rs", "build.rs"] {
            read.insert(format!("x {}", dir.join(f).display()));
        }
        for d in ["src/bin", "examples", "tests", "benches"] {
            let d = dir.join(d);
            read.insert(format!("d {}", d.display()));
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    read.insert(format!("d {}", e.path().display()));
                }
            }
        }
        if root.as_deref().is_some_and(|r| r != dir)
            && let Some(parent) = dir.parent()
        {
            read.insert(format!("d {}", parent.display()));
        }
    }
    read.into_iter().collect()
}

/// The digest of what [`metadata_reads`] listed, as it is now.
fn reads_digest(read: &[String]) -> String {
    let mut i = crate::cache::Inputs::new("cargo metadata reads v1");
    for r in read {
        match r.split_once(' ') {
            Some(("f", p)) => i.file(Path::new(p)),
            Some(("d", p)) => i.dir(Path::new(p)),
            Some(("x", p)) => i.line(&format!("x {p} {}", Path::new(p).exists())),
            _ => i.line(r),
        };
    }
    i.digest()
}

/// Runs `cmd`, a `cargo metadata` of `manifest` in `cwd`, or reuses its output from the last
/// run with the same inputs ([`metadata_key`] and [`metadata_reads`]; see [`plan_cache_dir`]).
/// An output is stored only when the inputs were the same before and after the read (a first
/// read that writes `Cargo.lock` is stored by the next one), and a failed read never is.
fn metadata_cached(
    cmd: &Cmd,
    manifest: &Path,
    cwd: &Path,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<String, String> {
    let abs = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let name = crate::oci::digest::Digest::of(
        format!(
            "{:?}
{}
{}",
            cmd.args,
            abs.display(),
            cwd.display()
        )
        .as_bytes(),
    );
    let dir = plan_cache_dir(manifest);
    let entry_path = dir.join(format!("metadata-{}.json", &name.hex()[..16]));
    let out_path = entry_path.with_extension("out");
    let key = metadata_key(cmd, manifest, cwd);
    let entry: Option<MetadataEntry> = std::fs::read(&entry_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(e) = entry.filter(|e| e.key == key)
        && reads_digest(&e.read) == e.read_digest
        && let Ok(out) = std::fs::read_to_string(&out_path)
        && crate::oci::digest::Digest::of(out.as_bytes()).to_string() == e.output
    {
        return Ok(out);
    }
    let out = crate::exec::capture(cmd, timeout, cancel).map_err(|e| exec_error(&e))?;
    if !cancel.is_cancelled()
        && may_write(&dir)
        && let Ok(v) = serde_json::from_str::<Value>(&out)
    {
        // Without a lock file, cargo resolves against the registry each time: nothing to keep.
        let locked = cmd.args.iter().any(|a| a == "--no-deps")
            || v["workspace_root"]
                .as_str()
                .is_some_and(|r| Path::new(r).join("Cargo.lock").is_file());
        let read = metadata_reads(&v);
        let entry = MetadataEntry {
            read_digest: reads_digest(&read),
            read,
            key: metadata_key(cmd, manifest, cwd),
            output: crate::oci::digest::Digest::of(out.as_bytes()).to_string(),
        };
        if locked
            && entry.key == key
            && let Ok(json) = serde_json::to_vec(&entry)
        {
            // A failure to write only loses the cache.
            let _ = crate::cache::write_atomic(&out_path, out.as_bytes())
                .and_then(|()| crate::cache::write_atomic(&entry_path, &json));
            if user_plan_cache().as_deref() == Some(dir.as_path()) {
                prune(&dir, USER_CACHE_ENTRIES);
            }
        }
    }
    Ok(out)
}

fn exec_error(e: &crate::exec::ExecError) -> String {
    match e.tail() {
        Some(t) => format!("{e}\n{t}"),
        None => e.to_string(),
    }
}

/// Runs a `cargo metadata` command and parses its output.
fn read_json(cmd: &Cmd, cancel: &Cancel) -> Result<Value, String> {
    let out =
        crate::exec::capture(cmd, Duration::from_secs(600), cancel).map_err(|e| exec_error(&e))?;
    serde_json::from_str(&out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))
}

/// The part of `cargo metadata --format-version 1` shipit reads.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    target_directory: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    license_file: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    homepage: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// Package facts: name, version, binaries, manifest path, target directory, descriptive keys.
pub type Facts = (
    String,
    semver::Version,
    Vec<String>,
    PathBuf,
    PathBuf,
    crate::plan::CrateMeta,
);

/// Reads the package facts the planner needs from `cargo metadata`.
pub fn facts(
    manifest: &Path,
    package: Option<&str>,
    cancel: &crate::exec::Cancel,
) -> Result<Facts, String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let out = metadata_cached(
        &metadata(manifest),
        manifest,
        &cwd,
        Duration::from_secs(120),
        cancel,
    )?;
    parse_facts(&out, manifest, package)
}

/// The facts of `package` (default: the only member, or the manifest's own package) in the output
/// of `cargo metadata`.
fn parse_facts(out: &str, manifest: &Path, package: Option<&str>) -> Result<Facts, String> {
    let meta: Metadata = serde_json::from_str(out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    let packages: Vec<&Package> = meta
        .packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id))
        .collect();
    let manifest_abs = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let chosen: &Package = match package {
        Some(name) => packages.iter().find(|p| p.name == name).ok_or_else(|| {
            format!(
                "project.package: no package `{name}` in {} (it has: {})",
                manifest.display(),
                packages
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => match packages.as_slice() {
            [one] => one,
            many => many
                .iter()
                .find(|p| p.manifest_path == manifest_abs)
                .ok_or_else(|| {
                    format!(
                        "{} is a workspace of {} packages: say which one with project.package",
                        manifest.display(),
                        many.len()
                    )
                })?,
        },
    };
    let version =
        semver::Version::parse(&chosen.version).map_err(|e| format!("package version: {e}"))?;
    let bins = chosen
        .targets
        .iter()
        .filter(|t| t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.name.clone())
        .collect();
    let (name, manifest_path, target_dir) = (
        chosen.name.clone(),
        chosen.manifest_path.clone(),
        meta.target_directory,
    );
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let crate_meta = crate::plan::CrateMeta {
        repository: nonempty(&chosen.repository),
        license: nonempty(&chosen.license),
        // cargo metadata gives `license-file` relative to the package's manifest.
        license_file: nonempty(&chosen.license_file)
            .map(|f| manifest_path.parent().unwrap_or(Path::new(".")).join(f)),
        description: nonempty(&chosen.description),
        homepage: nonempty(&chosen.homepage),
    };
    Ok((name, version, bins, manifest_path, target_dir, crate_meta))
}

/// A workspace member as `shipit init` needs it: its name, version and binary targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub version: semver::Version,
    pub bins: Vec<String>,
}

/// Every member of the workspace (or the one package) of `manifest`, in `cargo metadata` order.
pub fn members(manifest: &Path, cancel: &crate::exec::Cancel) -> Result<Vec<Member>, String> {
    let out = crate::exec::capture(
        &metadata(manifest),
        std::time::Duration::from_secs(120),
        cancel,
    )
    .map_err(|e| match e.tail() {
        Some(t) => format!("{e}\n{t}"),
        None => e.to_string(),
    })?;
    parse_members(&out)
}

fn parse_members(out: &str) -> Result<Vec<Member>, String> {
    let meta: Metadata = serde_json::from_str(out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    meta.packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id))
        .map(|p| {
            Ok(Member {
                name: p.name.clone(),
                version: semver::Version::parse(&p.version)
                    .map_err(|e| format!("package `{}` version: {e}", p.name))?,
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.kind.iter().any(|k| k == "bin"))
                    .map(|t| t.name.clone())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_for_one_target_filters_the_platform_and_passes_the_features() {
        let c = metadata_for_target(
            Path::new("/p/Cargo.toml"),
            "aarch64-unknown-linux-gnu",
            &["a".into(), "b".into()],
        );
        assert_eq!(
            c.args,
            [
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                "aarch64-unknown-linux-gnu",
                "--manifest-path",
                "/p/Cargo.toml",
                "--features",
                "a,b"
            ]
        );
    }

    const TWO: &str = r#"{"packages":[
        {"id":"a 0.1.0","name":"a","version":"0.1.0","manifest_path":"/w/a/Cargo.toml",
         "targets":[{"name":"a","kind":["bin"]},{"name":"a","kind":["lib"]}],"extra":1},
        {"id":"b 2.0.0-rc.1","name":"b","version":"2.0.0-rc.1","manifest_path":"/w/b/Cargo.toml",
         "targets":[{"name":"b1","kind":["bin"]},{"name":"b2","kind":["bin"]}]},
        {"id":"dep 1.0.0","name":"dep","version":"1.0.0","manifest_path":"/r/dep/Cargo.toml","targets":[]}],
      "workspace_members":["a 0.1.0","b 2.0.0-rc.1"],"target_directory":"/w/target","version":1}"#;

    #[test]
    fn reads_the_named_member_or_the_manifests_own_package() {
        let (name, version, bins, manifest, target, _) =
            parse_facts(TWO, Path::new("/w/Cargo.toml"), Some("b")).unwrap();
        assert_eq!(name, "b");
        assert_eq!(version, semver::Version::parse("2.0.0-rc.1").unwrap());
        assert_eq!(bins, ["b1", "b2"]);
        assert_eq!(manifest, Path::new("/w/b/Cargo.toml"));
        assert_eq!(target, Path::new("/w/target"));
        let own = parse_facts(TWO, Path::new("/w/a/Cargo.toml"), None).unwrap();
        assert_eq!((own.0.as_str(), own.2), ("a", vec!["a".to_string()]));
    }

    #[test]
    fn lists_the_members_with_their_binaries() {
        let m = parse_members(TWO).unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.name.as_str(), m.bins.clone()))
                .collect::<Vec<_>>(),
            [
                ("a", vec!["a".to_string()]),
                ("b", vec!["b1".to_string(), "b2".to_string()])
            ]
        );
    }

    /// A graph with a `cfg(windows)` edge, a triple edge, an edge declared twice (normal on
    /// windows, build everywhere) and a crate reached only through a dropped edge.
    fn graph() -> Value {
        let dep = |pkg: &str, kinds: Value| serde_json::json!({"name": pkg, "pkg": pkg, "dep_kinds": kinds});
        let k = |kind: Option<&str>, target: Option<&str>| serde_json::json!({"kind": kind, "target": target});
        serde_json::json!({
            "packages": [{"id": "app"}, {"id": "win"}, {"id": "winonly-dep"}, {"id": "gnullvm"}, {"id": "both"}, {"id": "libc"}],
            "workspace_members": ["app"],
            "resolve": {"root": "app", "nodes": [
                {"id": "app", "features": [], "dependencies": ["both", "gnullvm", "libc", "win"], "deps": [
                    dep("win", serde_json::json!([k(None, Some("cfg(windows)"))])),
                    dep("gnullvm", serde_json::json!([k(None, Some("x86_64-pc-windows-gnullvm"))])),
                    dep("both", serde_json::json!([k(None, Some("cfg(windows)")), k(Some("build"), None)])),
                    dep("libc", serde_json::json!([k(None, Some("cfg(unix)"))])),
                ]},
                {"id": "win", "features": ["x"], "dependencies": ["winonly-dep"], "deps": [dep("winonly-dep", serde_json::json!([k(None, None)]))]},
                {"id": "winonly-dep", "features": [], "dependencies": [], "deps": []},
                {"id": "gnullvm", "features": [], "dependencies": [], "deps": []},
                {"id": "both", "features": [], "dependencies": [], "deps": []},
                {"id": "libc", "features": [], "dependencies": [], "deps": []},
            ]}
        })
    }

    fn ids(v: &Value) -> Vec<&str> {
        v["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn cuts_the_graph_per_target() {
        let linux = Cfgs::parse("unix\ntarget_os=\"linux\"\n").unwrap();
        let windows = Cfgs::parse("windows\ntarget_os=\"windows\"\n").unwrap();
        let g = graph();
        let l = filter_platform(&g, "x86_64-unknown-linux-gnu", &linux).unwrap();
        assert_eq!(ids(&l), ["app", "both", "libc"]);
        assert_eq!(l["packages"].as_array().unwrap().len(), 3);
        assert_eq!(
            l["resolve"]["nodes"][0]["dependencies"],
            serde_json::json!(["both", "libc"])
        );
        // The edge stays whole: both of its declarations.
        assert_eq!(
            l["resolve"]["nodes"][0]["deps"][0]["dep_kinds"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let w = filter_platform(&g, "x86_64-pc-windows-gnullvm", &windows).unwrap();
        assert_eq!(ids(&w), ["app", "win", "winonly-dep", "gnullvm", "both"]);
        let mut bad = graph();
        bad["resolve"]["nodes"][0]["deps"][0]["dep_kinds"][0]["target"] = "cfg(windows".into();
        assert!(filter_platform(&bad, "x86_64-unknown-linux-gnu", &linux).is_err());
    }

    #[test]
    fn rustflags_as_cargo_reads_them() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let t = "aarch64-unknown-linux-musl";
        assert!(rustflags(t, &env(&[])).is_empty());
        assert_eq!(
            rustflags(
                t,
                &env(&[(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
                    "--cfg  x"
                )])
            ),
            ["--cfg", "x"]
        );
        assert_eq!(
            rustflags(
                t,
                &env(&[
                    ("RUSTFLAGS", "-Ca"),
                    (
                        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
                        "--cfg x"
                    )
                ])
            ),
            ["-Ca"]
        );
        assert_eq!(
            rustflags(
                t,
                &env(&[
                    ("CARGO_ENCODED_RUSTFLAGS", "--cfg\x1fa b"),
                    ("RUSTFLAGS", "-Ca")
                ])
            ),
            ["--cfg", "a b"]
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let e = parse_facts(TWO, Path::new("/w/Cargo.toml"), Some("dep")).unwrap_err();
        assert!(
            e.contains("no package `dep`") && e.contains("it has: a, b"),
            "{e}"
        );
        let e = parse_facts(TWO, Path::new("/w/Cargo.toml"), None).unwrap_err();
        assert!(e.contains("a workspace of 2 packages"), "{e}");
        let e = parse_facts("{}", Path::new("/w/Cargo.toml"), None).unwrap_err();
        assert!(e.contains("unexpected"), "{e}");
    }

    /// A project in a temporary directory and a `cargo` wrapper that counts its runs.
    struct Project {
        dir: tempfile::TempDir,
        cargo: PathBuf,
    }

    impl Project {
        fn new() -> Project {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::create_dir_all(root.join("p/src")).unwrap();
            std::fs::write(
                root.join("p/Cargo.toml"),
                "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
            )
            .unwrap();
            std::fs::write(root.join("p/src/main.rs"), "fn main() {}\n").unwrap();
            // Built before: the caches are written only into an existing target directory.
            std::fs::create_dir_all(root.join("p/target")).unwrap();
            let cargo = root.join("cargo-counting");
            let real = which::which("cargo").unwrap();
            std::fs::write(
                &cargo,
                format!(
                    "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
                    root.join("runs").display(),
                    real.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
            Project { dir, cargo }
        }

        fn manifest(&self) -> PathBuf {
            self.dir.path().join("p/Cargo.toml")
        }

        /// `cargo metadata --no-deps` (as `facts` runs it) or the graph read, through the cache.
        fn read(&self, graph: bool) -> Value {
            let mut cmd = if graph {
                metadata_graph(&self.manifest(), &[])
            } else {
                metadata(&self.manifest())
            };
            cmd.program = self.cargo.display().to_string();
            let cwd = self.dir.path().join("p");
            let out = metadata_cached(
                &cmd.cwd(&cwd),
                &self.manifest(),
                &cwd,
                Duration::from_secs(120),
                &Cancel::new(),
            )
            .unwrap();
            serde_json::from_str(&out).unwrap()
        }

        fn runs(&self) -> usize {
            std::fs::read_to_string(self.dir.path().join("runs"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        }

        fn edit(&self, rel: &str, f: impl FnOnce(String) -> String) {
            let p = self.dir.path().join(rel);
            let old = std::fs::read_to_string(&p).unwrap_or_default();
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f(old)).unwrap();
        }
    }

    fn bins(v: &Value) -> Vec<String> {
        let mut b: Vec<String> = v["packages"][0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"][0] == "bin")
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        b.sort();
        b
    }

    #[test]
    fn metadata_is_read_again_only_when_an_input_changed() {
        if which::which("cargo").is_err() {
            return;
        }
        let p = Project::new();
        let first = p.read(false);
        assert_eq!(p.runs(), 1);
        assert_eq!(p.read(false), first, "the same answer from the cache");
        assert_eq!(p.runs(), 1, "an unchanged project is not read again");
        let target_dir_set = std::env::var_os("CARGO_TARGET_DIR").is_some();
        if !target_dir_set {
            assert!(plan_cache_dir(&p.manifest()).starts_with(p.dir.path().join("p/target")));
        }

        // A new feature in Cargo.toml.
        p.edit("p/Cargo.toml", |t| format!("{t}\n[features]\nextra = []\n"));
        let v = p.read(false);
        assert_eq!(p.runs(), 2);
        assert!(v["packages"][0]["features"]["extra"].is_array(), "{v}");
        p.read(false);
        assert_eq!(p.runs(), 2);

        // A new binary found by cargo's target discovery.
        p.edit("p/src/bin/other.rs", |_| "fn main() {}\n".into());
        let v = p.read(false);
        assert_eq!(p.runs(), 3);
        assert_eq!(bins(&v), ["other", "p"]);

        // A .cargo/config.toml (here moving the target directory).
        p.edit("p/.cargo/config.toml", |_| {
            "[build]\ntarget-dir = \"elsewhere\"\n".into()
        });
        let v = p.read(false);
        assert_eq!(p.runs(), 4);
        assert!(
            target_dir_set
                || v["target_directory"]
                    .as_str()
                    .unwrap()
                    .ends_with("elsewhere"),
            "{v}"
        );
        p.read(false);
        assert_eq!(p.runs(), 4);
    }

    #[test]
    fn a_project_never_built_is_cached_outside_it() {
        if which::which("cargo").is_err() || std::env::var_os("CARGO_TARGET_DIR").is_some() {
            return;
        }
        let p = Project::new();
        let target = p.dir.path().join("p/target");
        std::fs::remove_dir_all(&target).unwrap();
        p.read(false);
        p.read(false);
        assert_eq!(p.runs(), 1);
        assert!(!target.exists(), "planning a fresh project wrote target/");
        if let Some(user) = user_plan_cache() {
            assert_eq!(plan_cache_dir(&p.manifest()), user);
        }
    }

    #[test]
    fn the_user_cache_keeps_the_newest_entries() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("metadata-{i}.json")), "{}").unwrap();
            std::fs::write(dir.path().join(format!("metadata-{i}.out")), "{}").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("metadata-{i}.json")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "metadata-3.json",
                "metadata-3.out",
                "metadata-4.json",
                "metadata-4.out"
            ]
        );
    }

    #[test]
    fn the_graph_read_follows_the_lock_and_path_dependencies() {
        if which::which("cargo").is_err() {
            return;
        }
        let p = Project::new();
        // A path dependency outside the package.
        p.edit("dep/Cargo.toml", |_| {
            "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n".into()
        });
        p.edit("dep/src/lib.rs", |_| String::new());
        p.edit("p/Cargo.toml", |t| {
            format!("{t}dep = {{ path = \"../dep\" }}\n")
        });
        // The first read writes Cargo.lock: stored by the next read, reused from then on.
        p.read(true);
        p.read(true);
        let runs = p.runs();
        let v = p.read(true);
        assert_eq!(p.runs(), runs, "reused");
        assert_eq!(v["packages"].as_array().unwrap().len(), 2);

        // A changed path dependency's manifest (a new feature).
        p.edit("dep/Cargo.toml", |t| {
            format!("{t}\n[features]\nfast = []\n")
        });
        let v = p.read(true);
        assert_eq!(p.runs(), runs + 1);
        let dep = v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "dep")
            .unwrap();
        assert!(dep["features"]["fast"].is_array(), "{dep}");

        // A changed Cargo.lock.
        p.read(true);
        let runs = p.runs();
        p.edit("p/Cargo.lock", |t| format!("{t}\n"));
        p.read(true);
        assert_eq!(p.runs(), runs + 1);
    }

    #[test]
    fn toolchain_inputs_see_configs_up_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let before = toolchain_inputs(&[&deep]).digest();
        assert_eq!(toolchain_inputs(&[&deep]).digest(), before);
        std::fs::create_dir_all(dir.path().join("a/.cargo")).unwrap();
        std::fs::write(dir.path().join("a/.cargo/config.toml"), "[build]\n").unwrap();
        let with_config = toolchain_inputs(&[&deep]).digest();
        assert_ne!(with_config, before);
        std::fs::write(dir.path().join("a/rust-toolchain.toml"), "[toolchain]\n").unwrap();
        assert_ne!(toolchain_inputs(&[&deep]).digest(), with_config);
    }
}
