//! What goes into an SBOM, read from the real sources: the crates compiled into one binary for
//! one target and feature set (what `cargo metadata --filter-platform` prints, which the attach
//! stage cuts from the run's one metadata read, `tools::cargo::graph_for_targets`; walked from
//! the binary's package through normal and build dependencies, never dev-dependencies), their checksums from
//! Cargo.lock, and the base image's Debian packages from its dpkg status file. The two renderers
//! (`cyclonedx`, `spdx`) turn the same [`Sbom`] into documents; nothing here writes files.

pub mod cyclonedx;
pub mod spdx;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an SBOM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("{0}")]
    Cargo(String),
    #[error("cargo metadata printed something unexpected: {0}")]
    Metadata(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One crate of the resolved graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The `license` field as an SPDX expression (`MIT/Apache-2.0` → `MIT OR Apache-2.0`).
    pub license: Option<String>,
    /// SHA-256 (hex) from Cargo.lock, for registry crates.
    pub checksum: Option<String>,
    /// `registry+https://…`, `git+…`, or `None` for path crates.
    pub source: Option<String>,
    /// Compiled for the build host only (a build script's dependency or a proc-macro): not
    /// linked into the binary.
    pub build_only: bool,
}

impl Crate {
    /// `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!(
            "pkg:cargo/{}@{}",
            purl_encode(&self.name),
            purl_encode(&self.version)
        )
    }

    /// Where the crate comes from, for SPDX `downloadLocation`.
    pub fn download_location(&self) -> Option<String> {
        match self.source.as_deref() {
            Some(s) if s == CRATES_IO => Some(format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                self.name, self.version
            )),
            Some(s) if s.starts_with("git+") => Some(s.to_string()),
            _ => None,
        }
    }
}

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// One dependency edge, by purl.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// A build-dependency edge (or one into a proc-macro): the target is needed to build
    /// `from`, not linked into it.
    pub build: bool,
}

/// The crates of one binary for one target: the binary's own package, every other crate
/// (sorted by purl), and the edges between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoGraph {
    pub root: Crate,
    pub crates: Vec<Crate>,
    pub edges: Vec<Edge>,
}

/// One installed Debian package of the base image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package when it differs from `name` (`Source:` without its version).
    pub source: Option<String>,
}

impl DebPackage {
    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO` (qualifiers sorted, as purl wants).
    pub fn purl(&self, distro: &str) -> String {
        format!(
            "pkg:deb/debian/{}@{}?arch={}&distro={}",
            purl_encode(&self.name),
            purl_encode(&self.version),
            purl_encode(&self.architecture),
            purl_encode(distro)
        )
    }
}

/// Everything one platform image's SBOM says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The image repository (`ghcr.io/acme/hello-server`): the described container's name.
    pub image_name: String,
    /// `linux/arm64`.
    pub platform: String,
    /// The Rust target triple.
    pub target: String,
    /// `gnu` or `musl`.
    pub variant: String,
    pub features: Vec<String>,
    pub cargo: CargoGraph,
    /// The base's packages (empty for scratch or a base without a dpkg status).
    pub debs: Vec<DebPackage>,
    /// The purl `distro` qualifier of `debs` (`debian-12`).
    pub distro: String,
    /// SOURCE_DATE_EPOCH: the document's timestamp.
    pub created: u64,
    /// shipit's version, named as the creating tool.
    pub tool_version: String,
}

/// The default purl `distro` of a Debian base (bookworm).
pub const DEFAULT_DISTRO: &str = "debian-12";

/// Runs [`crate::tools::cargo::metadata_for_target`] (one `--filter-platform` read) and resolves the graph of `package`'s
/// binary, with checksums from the workspace's Cargo.lock. `cancel` (the run's token) stops
/// `cargo metadata`. The attach stage uses [`from_metadata`] on the run's shared graph instead;
/// this is the reference its tests compare with.
pub fn cargo_graph(
    manifest: &Path,
    target: &str,
    features: &[String],
    package: &str,
    cancel: &crate::exec::Cancel,
) -> Result<CargoGraph, SbomError> {
    let out = crate::exec::capture(
        &crate::tools::cargo::metadata_for_target(manifest, target, features),
        Duration::from_secs(300),
        cancel,
    )
    .map_err(|e| {
        SbomError::Cargo(match e.tail() {
            Some(t) => format!("{e}\n{t}"),
            None => e.to_string(),
        })
    })?;
    let metadata: Value =
        serde_json::from_str(&out).map_err(|e| SbomError::Metadata(e.to_string()))?;
    from_metadata(&metadata, package)
}

/// The graph of `package`'s binary in one target's `cargo metadata` output (as
/// `--filter-platform` prints it), with checksums from the workspace's Cargo.lock.
pub fn from_metadata(metadata: &Value, package: &str) -> Result<CargoGraph, SbomError> {
    let root = metadata["workspace_root"]
        .as_str()
        .ok_or_else(|| SbomError::Metadata("no workspace_root".into()))?;
    let lock_path = Path::new(root).join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).map_err(|source| SbomError::Read {
        path: lock_path.clone(),
        source,
    })?;
    resolve(metadata, &lock, package)
}

/// Walks `cargo metadata` output from `package` through normal and build dependencies.
/// A crate reached only through a build-dependency or a proc-macro is build-only; one reached
/// through normal dependencies from the binary is linked into it. Dev-dependencies are skipped.
pub fn resolve(metadata: &Value, lock: &str, package: &str) -> Result<CargoGraph, SbomError> {
    let bad = |what: &str| SbomError::Metadata(what.to_string());
    let checksums = lock_checksums(lock);
    let mut packages: BTreeMap<&str, &Value> = BTreeMap::new();
    for p in metadata["packages"]
        .as_array()
        .ok_or_else(|| bad("no packages"))?
    {
        let id = p["id"]
            .as_str()
            .ok_or_else(|| bad("a package without id"))?;
        packages.insert(id, p);
    }
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .ok_or_else(|| bad("no workspace_members"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let root_id = members
        .iter()
        .copied()
        .find(|id| packages.get(id).and_then(|p| p["name"].as_str()) == Some(package))
        .ok_or_else(|| {
            SbomError::Metadata(format!("package {package:?} is not a workspace member"))
        })?;
    let mut nodes: BTreeMap<&str, &Value> = BTreeMap::new();
    for n in metadata["resolve"]["nodes"]
        .as_array()
        .ok_or_else(|| bad("no resolve graph (was --no-deps given?)"))?
    {
        nodes.insert(n["id"].as_str().ok_or_else(|| bad("a node without id"))?, n);
    }
    let is_proc_macro = |id: &str| {
        packages.get(id).is_some_and(|p| {
            p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
                })
            })
        })
    };

    // Breadth-first over (crate, reached-as-runtime); each crate is visited at most once per
    // mode, so a crate used at run time and by a build script ends up runtime.
    let mut runtime: BTreeSet<&str> = BTreeSet::new();
    let mut build: BTreeSet<&str> = BTreeSet::new();
    let mut edges: BTreeSet<(&str, &str, bool)> = BTreeSet::new();
    let mut queue = VecDeque::from([(root_id, true)]);
    runtime.insert(root_id);
    while let Some((id, at_runtime)) = queue.pop_front() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            let kinds: Vec<Option<&str>> = match dep["dep_kinds"].as_array() {
                Some(k) => k.iter().map(|k| k["kind"].as_str()).collect(),
                None => vec![None],
            };
            let normal = kinds.contains(&None);
            let build_kind = kinds.contains(&Some("build"));
            if !normal && !build_kind {
                continue; // dev-dependency only
            }
            let edge_is_build = !normal || is_proc_macro(dep_id);
            edges.insert((id, dep_id, edge_is_build));
            let dep_runtime = at_runtime && !edge_is_build;
            let seen = if dep_runtime {
                &mut runtime
            } else {
                &mut build
            };
            if seen.insert(dep_id) {
                queue.push_back((dep_id, dep_runtime));
            }
        }
    }

    let make = |id: &str| -> Result<Crate, SbomError> {
        let p = packages.get(id).ok_or_else(|| {
            SbomError::Metadata(format!("{id} is in the graph but not a package"))
        })?;
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let version = p["version"].as_str().unwrap_or_default().to_string();
        let source = p["source"].as_str().map(str::to_string);
        let checksum = source
            .as_ref()
            .filter(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
            .and_then(|_| checksums.get(&(name.clone(), version.clone())).cloned());
        Ok(Crate {
            license: p["license"].as_str().map(spdx_license),
            checksum,
            source,
            build_only: !runtime.contains(id),
            name,
            version,
        })
    };
    let root = make(root_id)?;
    let mut by_id: BTreeMap<&str, Crate> = BTreeMap::new();
    for id in runtime.iter().chain(build.iter()) {
        if *id != root_id && !by_id.contains_key(id) {
            by_id.insert(id, make(id)?);
        }
    }
    let purl_of = |id: &str| {
        if id == root_id {
            root.purl()
        } else {
            by_id[id].purl()
        }
    };
    let mut edge_list: Vec<Edge> = edges
        .iter()
        .map(|(f, t, b)| Edge {
            from: purl_of(f),
            to: purl_of(t),
            build: *b,
        })
        .collect();
    edge_list.sort();
    edge_list.dedup();
    // The same name and version from two sources (a registry and a git fork) is one purl, so
    // one component: linked into the binary if either is.
    let mut by_purl: BTreeMap<String, Crate> = BTreeMap::new();
    for c in by_id.into_values() {
        by_purl
            .entry(c.purl())
            .and_modify(|seen| seen.build_only &= c.build_only)
            .or_insert(c);
    }
    by_purl.remove(&root.purl());
    let crates: Vec<Crate> = by_purl.into_values().collect();
    edge_list.retain(|e| e.from != e.to);
    Ok(CargoGraph {
        root,
        crates,
        edges: edge_list,
    })
}

/// `(name, version) → checksum` of every `[[package]]` of a Cargo.lock that has one. The lock
/// format is a flat list of tables with plain string values, so a line reader suffices.
pub fn lock_checksums(lock: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut current: BTreeMap<&str, String> = BTreeMap::new();
    let mut flush = |current: &mut BTreeMap<&str, String>| {
        if let (Some(n), Some(v), Some(c)) = (
            current.get("name"),
            current.get("version"),
            current.get("checksum"),
        ) {
            out.insert((n.clone(), v.clone()), c.clone());
        }
        current.clear();
    };
    for line in lock.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(&mut current);
            continue;
        }
        if let Some((k, v)) = line.split_once(" = ") {
            let k = k.trim();
            if matches!(k, "name" | "version" | "checksum")
                && let Some(s) = v.trim().strip_prefix('"').and_then(|s| s.strip_suffix('"'))
            {
                current.insert(k, s.to_string());
            }
        }
    }
    flush(&mut current);
    out
}

/// A Cargo `license` field as an SPDX expression: the legacy `/` separator means OR
/// (`MIT/Apache-2.0` → `MIT OR Apache-2.0`); an alternative that is itself compound is
/// parenthesised. Anything else is kept as written (trimmed).
pub fn spdx_license(cargo: &str) -> String {
    let cargo = cargo.trim();
    if !cargo.contains('/') {
        return cargo.to_string();
    }
    cargo
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains(char::is_whitespace) && !(p.starts_with('(') && p.ends_with(')')) {
                format!("({p})")
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The installed packages of a dpkg status file (`var/lib/dpkg/status`), sorted by name and
/// architecture. Packages whose `Status` is not "… installed" are skipped; a paragraph without
/// `Status` (a minimal database) counts as installed.
pub fn parse_dpkg_status(text: &str) -> Vec<DebPackage> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // continuation of a multi-line field (Description, Conffiles)
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        let (Some(name), Some(version)) = (fields.get("Package"), fields.get("Version")) else {
            continue;
        };
        if fields
            .get("Status")
            .is_some_and(|s| s.split_whitespace().last() != Some("installed"))
        {
            continue;
        }
        let source = fields
            .get("Source")
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| s != name)
            .map(str::to_string);
        out.push(DebPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture: fields.get("Architecture").unwrap_or(&"all").to_string(),
            source,
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Percent-encodes everything outside RFC 3986's unreserved set (purl components: `:` of an
/// epoch becomes `%3A`, `+` becomes `%2B`).
pub fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// UUID-shaped serial derived from content (version nibble 5, RFC 4122 variant), so the same
/// document always has the same serial number.
pub(crate) fn uuid_from_digest(bytes: &[u8]) -> String {
    let d = crate::oci::digest::Digest::of(bytes);
    let mut b: Vec<u8> = hex::decode(d.hex()).expect("a digest is hex")[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `cargo metadata` shape with every case: a normal dep with a build script dep of its
    /// own, a build-dependency, a dev-dependency, a proc-macro, a crate used both ways.
    pub(crate) fn sample_metadata() -> Value {
        let reg = CRATES_IO;
        let id = |n: &str, v: &str| format!("{reg}#{n}@{v}");
        let pkg = |n: &str, v: &str, lic: Option<&str>, kind: &str| {
            serde_json::json!({"id": id(n, v), "name": n, "version": v, "license": lic,
                "source": reg, "targets": [{"kind": [kind]}]})
        };
        let dep = |n: &str, v: &str, kinds: &[Option<&str>]| {
            serde_json::json!({"name": n, "pkg": id(n, v),
                "dep_kinds": kinds.iter().map(|k| serde_json::json!({"kind": k, "target": null})).collect::<Vec<_>>()})
        };
        let app = "path+file:///src/app#0.3.1";
        serde_json::json!({
            "packages": [
                {"id": app, "name": "app", "version": "0.3.1", "license": "MIT OR Apache-2.0",
                 "source": null, "targets": [{"kind": ["bin"]}]},
                pkg("libc", "0.2.1", Some("MIT/Apache-2.0"), "lib"),
                pkg("cc", "1.0.0", Some("MIT OR Apache-2.0"), "lib"),
                pkg("shlex", "1.3.0", Some("MIT"), "lib"),
                pkg("serde_derive", "1.0.0", Some("MIT"), "proc-macro"),
                pkg("insta", "1.0.0", Some("Apache-2.0"), "lib"),
                pkg("memchr", "2.7.0", Some("Unlicense/MIT"), "lib"),
            ],
            "workspace_members": [app],
            "resolve": {"root": app, "nodes": [
                {"id": app, "deps": [
                    dep("libc", "0.2.1", &[None]),
                    dep("cc", "1.0.0", &[Some("build")]),
                    dep("insta", "1.0.0", &[Some("dev")]),
                    dep("serde_derive", "1.0.0", &[None]),
                    dep("memchr", "2.7.0", &[None, Some("build")]),
                ]},
                {"id": id("libc", "0.2.1"), "deps": []},
                {"id": id("cc", "1.0.0"), "deps": [dep("shlex", "1.3.0", &[None]), dep("memchr", "2.7.0", &[None])]},
                {"id": id("shlex", "1.3.0"), "deps": []},
                {"id": id("serde_derive", "1.0.0"), "deps": []},
                {"id": id("insta", "1.0.0"), "deps": []},
                {"id": id("memchr", "2.7.0"), "deps": []},
            ]}
        })
    }

    pub(crate) const SAMPLE_LOCK: &str = r#"# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "app"
version = "0.3.1"
dependencies = [
 "libc",
]

[[package]]
name = "libc"
version = "0.2.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1111111111111111111111111111111111111111111111111111111111111111"

[[package]]
name = "shlex"
version = "1.3.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "2222222222222222222222222222222222222222222222222222222222222222"
"#;

    pub(crate) fn sample_graph() -> CargoGraph {
        resolve(&sample_metadata(), SAMPLE_LOCK, "app").unwrap()
    }

    #[test]
    fn walks_normal_and_build_dependencies_only() {
        let g = sample_graph();
        let names: Vec<(&str, bool)> = g
            .crates
            .iter()
            .map(|c| (c.name.as_str(), c.build_only))
            .collect();
        assert_eq!(
            names,
            [
                ("cc", true),
                ("libc", false),
                ("memchr", false),
                ("serde_derive", true),
                ("shlex", true)
            ]
        );
        assert_eq!(g.root.purl(), "pkg:cargo/app@0.3.1");
        let libc = &g.crates[1];
        assert_eq!(libc.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(libc.checksum.as_deref(), Some(&"1".repeat(64)[..]));
        assert!(g.edges.contains(&Edge {
            from: "pkg:cargo/app@0.3.1".into(),
            to: "pkg:cargo/cc@1.0.0".into(),
            build: true
        }));
        assert!(g.edges.contains(&Edge {
            from: "pkg:cargo/app@0.3.1".into(),
            to: "pkg:cargo/libc@0.2.1".into(),
            build: false
        }));
        assert!(!g.edges.iter().any(|e| e.to.contains("insta")));
    }

    #[test]
    fn license_expressions() {
        assert_eq!(spdx_license("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_license("MIT / Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_license("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(
            spdx_license("Apache-2.0 WITH LLVM-exception/MIT"),
            "(Apache-2.0 WITH LLVM-exception) OR MIT"
        );
        assert_eq!(spdx_license(" Unlicense "), "Unlicense");
    }

    #[test]
    fn dpkg_status() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C\n Library: shared\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n\nPackage: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: arm64\nSource: base-files (12.4)\n";
        let p = parse_dpkg_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "base-files");
        assert_eq!(p[0].source, None);
        assert_eq!(p[1].source.as_deref(), Some("glibc"));
        assert_eq!(
            p[1].purl("debian-12"),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64&distro=debian-12"
        );
    }

    #[test]
    fn serial_is_a_uuid() {
        let u = uuid_from_digest(b"x");
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&u), "{u}");
    }
}
