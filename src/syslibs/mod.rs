//! C libraries for every target. Before anything compiles, shipit reads the resolved dependency
//! graph of each target (what `cargo metadata --filter-platform` prints), finds the crates with a `links` key
//! (`openssl-sys` → `openssl`, …) and their enabled features, and says per target what each needs
//! to build and to run and what provides it: a Debian sysroot (`build.packages`), the host's own
//! `-dev` package (native gnu builds), a static build by shipit (OpenSSL for musl, `openssl`),
//! the crate itself (`vendored`/`bundled`/`static`), or nothing — then it is an error (exit 2)
//! naming the crate chain and the key to add, before any compiler runs. `sysroot` holds the
//! build environment a sysroot implies; `table` what shipit knows about well-known sys crates.

pub mod hints;
pub mod openssl;
pub mod sysroot;
pub mod table;

use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::plan::{Plan, PlatformPlan};
use crate::platform::Libc;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use table::MuslWay;

/// How a target gets a C library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Provider {
    /// The target's Debian sysroot holds these `build.packages`.
    DebSysroot { packages: Vec<String> },
    /// A native build finds the host's own development files (pkg-config found `module`).
    Host { module: String },
    /// shipit builds the library statically for the target (OpenSSL for musl).
    ShipitStatic { library: String },
    /// The crate compiles the library itself (a feature, or its fallback).
    Bundled { how: String },
    /// shipit does not know this crate: it names the `links` value only.
    Unknown { links: String },
}

/// One crate with a `links` key in a target's graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysLib {
    #[serde(rename = "crate")]
    pub krate: String,
    pub version: String,
    pub links: String,
    /// From the package being shipped to the sys crate: `tlsapp → openssl → openssl-sys`.
    pub chain: Vec<String>,
    /// Its enabled features.
    pub features: Vec<String>,
    /// Debian packages its build needs (in a gnu target's sysroot).
    pub needs_build: Vec<String>,
    /// Debian packages the image needs at run time.
    pub needs_runtime: Vec<String>,
    /// What provides it, or `None` when nothing does (see `missing`).
    pub provided_by: Option<Provider>,
    /// When nothing provides it: the config to add, e.g. `build.packages: [libssl-dev]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl SysLib {
    pub fn chain_text(&self) -> String {
        self.chain.join(" → ")
    }

    /// One line for humans: what it is, what provides it or what to add.
    pub fn describe(&self) -> String {
        let what = match (&self.provided_by, &self.missing) {
            (Some(Provider::DebSysroot { packages }), _) => {
                format!("from the Debian sysroot ({})", packages.join(", "))
            }
            (Some(Provider::Host { module }), _) => {
                format!("from this machine's development files (pkg-config {module}; native build)")
            }
            (Some(Provider::ShipitStatic { library }), _) => {
                format!(
                    "static {library} built by shipit for this target (no `vendored` feature needed)"
                )
            }
            (Some(Provider::Bundled { how }), _) => format!("bundled: {how}"),
            (Some(Provider::Unknown { links }), _) => format!(
                "links `{links}`: not a crate shipit knows; if it links a system library, add its -dev package to build.packages"
            ),
            (None, Some(key)) => format!("MISSING: add `{key}`"),
            (None, None) => "MISSING".into(),
        };
        let runtime = if self.needs_runtime.is_empty() {
            String::new()
        } else {
            format!("; runs with {}", self.needs_runtime.join(", "))
        };
        format!("{} ({}): {what}{runtime}", self.krate, self.chain_text())
    }
}

/// The sys crates of one planned target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetLibs {
    pub platform: String,
    pub libc: Libc,
    pub target: String,
    pub syslibs: Vec<SysLib>,
}

/// What the pipeline and the machine provide, as the diagnosis reads it.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// `build.packages` (Debian packages in each gnu target's sysroot).
    pub build_packages: Vec<String>,
    /// The target is the host's own (a native gnu build finds the host's development files).
    pub native: bool,
    /// pkg-config modules the host has (consulted only when `native`).
    pub host_modules: BTreeSet<String>,
}

/// The part of `cargo metadata --format-version 1` (with the resolve) the diagnosis reads.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<MetaPackage>,
    resolve: Option<Resolve>,
}

#[derive(Debug, Deserialize)]
struct MetaPackage {
    id: String,
    name: String,
    version: String,
    #[serde(default)]
    links: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    kind: Option<String>,
}

/// The sys crates in the metadata of one target (`cargo metadata --filter-platform T`), seen from
/// the package `root`, and what provides each. Pure.
pub fn diagnose(
    metadata_json: &str,
    root: &str,
    libc: Libc,
    provided: &Provided,
) -> std::result::Result<Vec<SysLib>, String> {
    let meta: Metadata = serde_json::from_str(metadata_json)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    let resolve = meta
        .resolve
        .ok_or("cargo metadata has no resolved graph (was it run with --no-deps?)")?;
    let packages: BTreeMap<&str, &MetaPackage> =
        meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let nodes: BTreeMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let root_id = meta
        .packages
        .iter()
        .filter(|p| p.name == root)
        .map(|p| p.id.as_str())
        .find(|id| nodes.contains_key(id))
        .ok_or_else(|| format!("the package `{root}` is not in the resolved graph"))?;
    // Breadth first along normal dependencies (build and dev dependencies run on the host or not
    // at all): the first path found to each crate is its shortest chain.
    let mut parent: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    parent.insert(root_id, None);
    let mut queue = VecDeque::from([root_id]);
    let mut order = Vec::new();
    while let Some(id) = queue.pop_front() {
        order.push(id);
        let Some(node) = nodes.get(id) else { continue };
        for d in &node.deps {
            let normal = d.dep_kinds.is_empty() || d.dep_kinds.iter().any(|k| k.kind.is_none());
            if normal && !parent.contains_key(d.pkg.as_str()) {
                parent.insert(d.pkg.as_str(), Some(id));
                queue.push_back(d.pkg.as_str());
            }
        }
    }
    let mut out = Vec::new();
    for id in order {
        let Some(pkg) = packages.get(id) else {
            continue;
        };
        let Some(links) = &pkg.links else { continue };
        let mut chain = Vec::new();
        let mut at = Some(id);
        while let Some(i) = at {
            chain.push(packages.get(i).map(|p| p.name.clone()).unwrap_or_default());
            at = parent.get(i).copied().flatten();
        }
        chain.reverse();
        let features = nodes
            .get(id)
            .map(|n| n.features.clone())
            .unwrap_or_default();
        out.push(judge(pkg, links, chain, features, libc, provided));
    }
    out.sort_by(|a, b| a.krate.cmp(&b.krate));
    Ok(out)
}

/// What one sys crate needs on this target and what provides it.
fn judge(
    pkg: &MetaPackage,
    links: &str,
    chain: Vec<String>,
    features: Vec<String>,
    libc: Libc,
    provided: &Provided,
) -> SysLib {
    let mut lib = SysLib {
        krate: pkg.name.clone(),
        version: pkg.version.clone(),
        links: links.to_string(),
        chain,
        features,
        needs_build: Vec::new(),
        needs_runtime: Vec::new(),
        provided_by: None,
        missing: None,
    };
    let Some(k) = table::known(&pkg.name) else {
        lib.provided_by = Some(Provider::Unknown {
            links: links.to_string(),
        });
        return lib;
    };
    if let Some(f) = k
        .self_build_features
        .iter()
        .find(|f| lib.features.iter().any(|x| x == *f))
    {
        lib.provided_by = Some(Provider::Bundled {
            how: format!(
                "{}'s `{f}` feature compiles {} into the binary",
                k.krate, k.links
            ),
        });
        return lib;
    }
    match libc {
        Libc::Gnu => {
            lib.needs_build.push(k.build_deb.to_string());
            lib.needs_runtime.push(k.runtime_deb.to_string());
            if provided.build_packages.iter().any(|p| p == k.build_deb) {
                lib.provided_by = Some(Provider::DebSysroot {
                    packages: vec![k.build_deb.to_string()],
                });
            } else if provided.native && provided.host_modules.contains(k.pkg_config) {
                lib.provided_by = Some(Provider::Host {
                    module: k.pkg_config.to_string(),
                });
            } else if k.gnu_fallback {
                lib.needs_runtime.clear();
                lib.provided_by = Some(Provider::Bundled {
                    how: format!(
                        "{} compiles its bundled {} when the system's is not found (add {} to build.packages to link the system's)",
                        k.krate, k.links, k.build_deb
                    ),
                });
            } else {
                lib.missing = Some(format!("build.packages: [{}]", k.build_deb));
            }
        }
        Libc::Musl => match k.musl {
            MuslWay::ShipitStatic => {
                lib.provided_by = Some(Provider::ShipitStatic {
                    library: k.links.to_string(),
                })
            }
            MuslWay::CrateBuilds => {
                lib.provided_by = Some(Provider::Bundled {
                    how: format!(
                        "{} compiles {} statically for musl targets",
                        k.krate, k.links
                    ),
                })
            }
            MuslWay::NeedsFeature(f) => {
                lib.missing = Some(format!(
                    "build.features: the `{f}` feature of {} (Debian has no musl {}; e.g. rusqlite/{f}, diesel's pq-sys/{f})",
                    k.krate, k.links
                ))
            }
        },
    }
    lib
}

/// The sys crates of every planned target: each target's dependency graph (what
/// `cargo metadata --filter-platform` prints, cut from the run's one metadata read by
/// `tools::cargo::graph_for_targets`), judged against what the pipeline and the machine provide.
pub fn check(plan: &Plan, build_packages: &[String], cancel: &Cancel) -> Result<Vec<TargetLibs>> {
    let triples: Vec<&str> = plan.platforms().map(|(_, p)| p.target.as_str()).collect();
    let graphs =
        crate::tools::cargo::graph_for_targets(&plan.project, &triples, cancel).map_err(|e| {
            Error::config(format!(
                "reading the dependency graph (cargo metadata): {e}"
            ))
        })?;
    let by_target: BTreeMap<String, String> = graphs
        .iter()
        .map(|(t, v)| (t.clone(), v.to_string()))
        .collect();
    // pkg-config runs only when some graph has a `links` crate at all.
    let host_modules = if by_target.values().any(|j| j.contains("\"links\":\"")) {
        host_modules(cancel)
    } else {
        BTreeSet::new()
    };
    let mut out = Vec::new();
    for (_, p) in plan.platforms() {
        let json = &by_target[&p.target];
        let provided = Provided {
            build_packages: build_packages.to_vec(),
            native: p.target == crate::plan::host_target(),
            host_modules: host_modules.clone(),
        };
        let syslibs = diagnose(json, &plan.project.package, p.libc, &provided)
            .map_err(|e| Error::config(format!("{} ({}): {e}", p.platform, p.libc)))?;
        out.push(TargetLibs {
            platform: p.platform.to_string(),
            libc: p.libc,
            target: p.target.clone(),
            syslibs,
        });
    }
    Ok(out)
}

/// The pkg-config modules of the well-known libraries that this machine has.
fn host_modules(cancel: &Cancel) -> BTreeSet<String> {
    table::KNOWN
        .iter()
        .filter(|k| {
            crate::exec::capture(
                &crate::tools::pkg_config::exists(k.pkg_config),
                Duration::from_secs(10),
                cancel,
            )
            .is_ok()
        })
        .map(|k| k.pkg_config.to_string())
        .collect()
}

/// The error for what nothing provides (exit 2, before any compiler runs), or `Ok`.
pub fn require_provided(libs: &[TargetLibs]) -> Result<()> {
    let missing: Vec<String> = libs
        .iter()
        .flat_map(|t| {
            t.syslibs.iter().filter_map(move |l| {
                l.missing.as_ref().map(|key| {
                    format!(
                        "  {} ({}): {} needs {} to build: add `{key}`",
                        t.platform,
                        t.libc,
                        l.chain_text(),
                        if l.needs_build.is_empty() {
                            l.links.clone()
                        } else {
                            l.needs_build.join(", ")
                        }
                    )
                })
            })
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::config(format!(
        "C libraries the build needs are not provided; nothing was compiled:\n{}",
        missing.join("\n")
    )))
}

/// Human lines for `shipit plan` / `doctor`: per platform, the sys crates and what provides them.
pub fn render(libs: &[TargetLibs]) -> Vec<String> {
    let mut lines = Vec::new();
    for t in libs.iter().filter(|t| !t.syslibs.is_empty()) {
        lines.push(format!("{} ({}) {}:", t.platform, t.libc, t.target));
        for l in &t.syslibs {
            lines.push(format!("  {}", l.describe()));
        }
    }
    lines
}

/// Extra build variables per planned target, keyed by (platform, libc).
pub type BuildEnv = BTreeMap<(String, Libc), Vec<sysroot::Var>>;

/// Before any compiler runs: the diagnosis of every target (an error, exit 2, when a library is
/// provided by nothing), then what shipit provides unasked — a static OpenSSL for each musl target
/// that needs one, built or taken from the cache, said on stderr — as variables for the builds,
/// with the diagnosis (for the hints of a build that still fails, `hints`).
pub fn prepare(
    plan: &Plan,
    build_packages: &[String],
    jobs: usize,
    ui: &crate::ui::Ui,
    cancel: &Cancel,
) -> Result<(BuildEnv, Vec<TargetLibs>)> {
    let libs = check(plan, build_packages, cancel)?;
    for line in render(&libs) {
        ui.verbose(line);
    }
    require_provided(&libs)?;
    let mut env = BuildEnv::new();
    // A native gnu build with cargo-zigbuild links this machine's own development files: zig
    // searches neither /usr/include/<multiarch> nor /usr/lib/<multiarch>, so `/` is its sysroot.
    for (_, p) in plan.platforms() {
        let host_provided = libs.iter().any(|t| {
            t.platform == p.platform
                && t.libc == p.libc
                && t.syslibs
                    .iter()
                    .any(|l| matches!(l.provided_by, Some(Provider::Host { .. })))
        });
        if host_provided && p.backend == crate::config::Backend::Zigbuild {
            env.insert(
                (p.platform.to_string(), p.libc),
                sysroot::env(std::path::Path::new("/"), &p.target, p.spec, p.backend),
            );
        }
    }
    for (p, _) in needs_static_openssl(plan, &libs) {
        let log = plan
            .out_dir
            .join("logs")
            .join(format!("openssl-{}.log", p.target));
        ui.step(format!(
            "OpenSSL for {} ({}): a static build by shipit (the crate graph has openssl-sys without `vendored`)",
            p.platform, p.libc
        ));
        let installed = openssl::ensure(&p.target, &log, jobs, cancel)?;
        ui.info(format!(
            "  {} openssl-src {} in {}",
            if installed.built { "built" } else { "cached:" },
            installed.version,
            installed.dir.display()
        ));
        env.insert(
            (p.platform.to_string(), p.libc),
            openssl::env(&installed.dir, &p.target, installed.cc.as_deref()),
        );
    }
    Ok((env, libs))
}

/// The platforms whose build needs shipit's static OpenSSL.
pub fn needs_static_openssl<'a>(
    plan: &'a Plan,
    libs: &[TargetLibs],
) -> Vec<(&'a PlatformPlan, String)> {
    plan.platforms()
        .filter_map(|(_, p)| {
            let t = libs
                .iter()
                .find(|t| t.platform == p.platform && t.libc == p.libc)?;
            let l = t.syslibs.iter().find(|l| {
                matches!(l.provided_by, Some(Provider::ShipitStatic { .. }))
                    && l.krate == "openssl-sys"
            })?;
            Some((p, l.version.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
