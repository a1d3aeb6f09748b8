//! Dependency resolution over one suite's `Packages` index for one architecture: `libc6`,
//! `libgcc-s1` and the requested packages, closed under `Depends` and `Pre-Depends` (never
//! `Recommends` or `Suggests`). For each dependency an already chosen package that satisfies it
//! wins; otherwise the first alternative that can be satisfied, with the highest version of a real
//! package that meets the version relation, else the first provider (by name) of a virtual
//! package. Packages are visited breadth-first in request order, so the result depends only on the
//! index and the request; it is listed sorted by name.
//!
//! Not modelled (apt does, a minimal image rarely needs it): `Conflicts`/`Breaks`/`Replaces`,
//! several architectures in one root, and `Essential` packages that nothing depends on.

use super::error::DebError;
use super::packages::{Dep, Index, Package, show_alternatives};
use super::version::Relation;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What to resolve: the packages asked for, beyond [`super::packages::BASE_PACKAGES`]. Each is `name` or
/// `name=version` (that exact version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub suite: String,
    pub arch: String,
    pub packages: Vec<String>,
}

impl Request {
    pub fn new(suite: &str, arch: &str, packages: &[impl AsRef<str>]) -> Request {
        Request {
            suite: suite.to_string(),
            arch: arch.to_string(),
            packages: packages.iter().map(|p| p.as_ref().to_string()).collect(),
        }
    }

    /// The base packages, then the requested ones, each once, as `(name, version)`.
    pub fn roots(&self) -> Vec<(String, Option<String>)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for spec in super::packages::BASE_PACKAGES
            .iter()
            .map(|s| s.to_string())
            .chain(self.packages.iter().cloned())
        {
            let (name, version) = match spec.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (spec.trim().to_string(), None),
            };
            if seen.insert(name.clone()) {
                out.push((name, version));
            }
        }
        out
    }
}

/// A chosen package: what fetching and locking need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// The chosen packages that satisfy its `Depends`/`Pre-Depends`, sorted.
    pub depends: Vec<String>,
}

/// The closed package set of one suite and architecture, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub suite: String,
    pub arch: String,
    pub packages: Vec<Pkg>,
}

impl Resolution {
    pub fn get(&self, name: &str) -> Option<&Pkg> {
        self.packages.iter().find(|p| p.name == name)
    }
}

struct State<'a> {
    index: &'a Index,
    chosen: BTreeMap<String, &'a Package>,
    /// Virtual name → `(provider, provided version)` among chosen packages.
    provided: BTreeMap<String, Vec<(String, Option<String>)>>,
    edges: BTreeMap<String, BTreeSet<String>>,
    queue: VecDeque<&'a Package>,
}

impl<'a> State<'a> {
    fn choose(&mut self, p: &'a Package) {
        if self.chosen.insert(p.name.clone(), p).is_none() {
            for (v, ver) in &p.provides {
                self.provided
                    .entry(v.clone())
                    .or_default()
                    .push((p.name.clone(), ver.clone()));
            }
            self.queue.push_back(p);
        }
    }

    fn arch_ok(&self, d: &Dep) -> bool {
        match d.arch.as_deref() {
            None | Some("any") | Some("native") => true,
            Some(a) => a == self.index.arch,
        }
    }

    /// The chosen package that already satisfies `d`, if any.
    fn satisfied(&self, d: &Dep) -> Option<String> {
        if !self.arch_ok(d) {
            return None;
        }
        if let Some(p) = self.chosen.get(&d.name)
            && version_ok(&p.version, d)
        {
            return Some(p.name.clone());
        }
        self.provided.get(&d.name).and_then(|provs| {
            provs
                .iter()
                .find(|(_, v)| provided_ok(v.as_deref(), d))
                .map(|(n, _)| n.clone())
        })
    }

    /// The package to choose for `d`, if one can be.
    fn candidate(&self, d: &Dep) -> Option<&'a Package> {
        if !self.arch_ok(d) {
            return None;
        }
        let index = self.index;
        let real = index
            .packages
            .get(&d.name)
            .and_then(|vs| vs.iter().find(|p| version_ok(&p.version, d)));
        if let Some(p) = real {
            // A different version of the same name is already chosen: it cannot be both.
            if self.chosen.contains_key(&p.name) {
                return None;
            }
            return Some(p);
        }
        index.provides.get(&d.name).and_then(|provs| {
            provs
                .iter()
                .filter(|(_, v)| provided_ok(v.as_deref(), d))
                .filter_map(|(n, _)| index.packages.get(n).and_then(|vs| vs.first()))
                .find(|p| !self.chosen.contains_key(&p.name))
        })
    }
}

fn version_ok(version: &str, d: &Dep) -> bool {
    match &d.version {
        None => true,
        Some((rel, want)) => rel.holds(version, want),
    }
}

/// A virtual package satisfies an unversioned dependency; a versioned one only if the provider
/// states a version (`Provides: x (= 1.0)`) that meets it.
fn provided_ok(provided: Option<&str>, d: &Dep) -> bool {
    match (&d.version, provided) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((rel, want)), Some(v)) => rel.holds(v, want),
    }
}

/// Resolves a request against an index of the same suite and architecture.
pub fn resolve(index: &Index, request: &Request) -> Result<Resolution, DebError> {
    let mut st = State {
        index,
        chosen: BTreeMap::new(),
        provided: BTreeMap::new(),
        edges: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    for (name, version) in request.roots() {
        let p = root(index, request, &name, version.as_deref())?;
        st.choose(p);
    }
    while let Some(p) = st.queue.pop_front() {
        let mut edges = BTreeSet::new();
        for group in p.pre_depends.iter().chain(&p.depends) {
            if let Some(n) = group.iter().find_map(|d| st.satisfied(d)) {
                edges.insert(n);
                continue;
            }
            match group.iter().find_map(|d| st.candidate(d)) {
                Some(c) => {
                    edges.insert(c.name.clone());
                    st.choose(c);
                }
                None => {
                    let hint = group
                        .iter()
                        .filter_map(|d| st.chosen.get(&d.name))
                        .map(|c| format!("{} {} is already chosen", c.name, c.version))
                        .next();
                    return Err(DebError::Unsatisfiable {
                        package: format!("{} {}", p.name, p.version),
                        needs: show_alternatives(group),
                        suite: request.suite.clone(),
                        arch: request.arch.clone(),
                        hint,
                    });
                }
            }
        }
        edges.remove(&p.name);
        st.edges.insert(p.name.clone(), edges);
    }
    let packages = st
        .chosen
        .values()
        .map(|p| Pkg {
            name: p.name.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
            depends: st.edges[&p.name].iter().cloned().collect(),
        })
        .collect();
    Ok(Resolution {
        suite: request.suite.clone(),
        arch: request.arch.clone(),
        packages,
    })
}

/// Resolves the same packages for several architectures of one suite (one index each, in the
/// order given). A package missing from one architecture's index but present in another's is
/// [`DebError::NoBuild`], naming the architectures that have it.
pub fn resolve_each(
    indexes: &[&Index],
    suite: &str,
    packages: &[impl AsRef<str>],
) -> Result<Vec<Resolution>, DebError> {
    let mut out = Vec::new();
    for index in indexes {
        match resolve(index, &Request::new(suite, &index.arch, packages)) {
            Ok(r) => out.push(r),
            Err(DebError::UnknownPackage {
                package,
                suite,
                arch,
                component,
                hint,
            }) => {
                let name = package.split('=').next().unwrap_or(&package);
                let built_for: Vec<String> = indexes
                    .iter()
                    .filter(|i| i.packages.contains_key(name))
                    .map(|i| i.arch.clone())
                    .collect();
                return Err(if built_for.is_empty() {
                    DebError::UnknownPackage {
                        package,
                        suite,
                        arch,
                        component,
                        hint,
                    }
                } else {
                    DebError::NoBuild {
                        package,
                        suite,
                        arch,
                        built_for,
                    }
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The package a requested name stands for: the real package (its highest version, or the
/// exact version asked for), else the only provider of a virtual name.
fn root<'a>(
    index: &'a Index,
    request: &Request,
    name: &str,
    version: Option<&str>,
) -> Result<&'a Package, DebError> {
    let unknown = |hint: Option<String>| DebError::UnknownPackage {
        package: match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        },
        suite: request.suite.clone(),
        arch: request.arch.clone(),
        component: super::packages::COMPONENT,
        hint,
    };
    if let Some(vs) = index.packages.get(name) {
        return match version {
            None => Ok(&vs[0]),
            Some(v) => vs
                .iter()
                .find(|p| Relation::Eq.holds(&p.version, v))
                .ok_or_else(|| {
                    unknown(Some(format!(
                        "it has {}",
                        vs.iter()
                            .map(|p| format!("{name}={}", p.version))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }),
        };
    }
    if let Some(provs) = index.provides.get(name)
        && version.is_none()
    {
        let names: BTreeSet<&str> = provs.iter().map(|(n, _)| n.as_str()).collect();
        if names.len() == 1 {
            let n = names.first().expect("one name");
            if let Some(p) = index.packages.get(*n).and_then(|vs| vs.first()) {
                return Ok(p);
            }
        }
        return Err(unknown(Some(format!(
            "it is a virtual package provided by {}; name one of them",
            names.into_iter().collect::<Vec<_>>().join(", ")
        ))));
    }
    let close: Vec<&str> = index
        .packages
        .keys()
        .filter(|k| strsim::levenshtein(k, name) <= 2)
        .map(String::as_str)
        .take(3)
        .collect();
    let hint = if close.is_empty() {
        format!(
            "check the name (https://packages.debian.org/{}/{name}); a package may also have no \
             build for {}",
            request.suite, request.arch
        )
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    Err(unknown(Some(hint)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, arch: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}Filename: pool/main/{name}_{version}_{arch}.deb\nSize: 10\nSHA256: {}\n\n",
            "ab".repeat(32)
        )
    }

    fn index() -> Index {
        let text = [
            pkg("libc6", "2.36-9", "amd64", "Depends: libgcc-s1\n"),
            pkg(
                "libgcc-s1",
                "12.2.0-14",
                "amd64",
                "Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)\n",
            ),
            pkg("gcc-12-base", "12.2.0-14", "amd64", ""),
            pkg("gcc-12-base", "12.2.0-15", "amd64", ""),
            pkg(
                "libssl3",
                "3.0.15-1~deb12u1",
                "amd64",
                "Depends: libc6 (>= 2.34)\n",
            ),
            pkg(
                "openssl",
                "3.0.15-1~deb12u1",
                "amd64",
                "Depends: libc6 (>= 2.34), libssl3 (>= 3.0.9)\n",
            ),
            pkg(
                "ca-certificates",
                "20230311",
                "all",
                "Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0\n",
            ),
            pkg(
                "debconf",
                "1.5.82",
                "all",
                "Pre-Depends: perl-base (>= 5.20.1-3~)\n",
            ),
            pkg("cdebconf", "0.270", "amd64", "Provides: debconf-2.0\n"),
            pkg("perl-base", "5.36.0-7", "amd64", ""),
            pkg("mawk", "1.3.4", "amd64", "Provides: awk\n"),
            pkg("gawk", "5.2.1", "amd64", "Provides: awk\n"),
            pkg(
                "needs-awk",
                "1",
                "amd64",
                "Depends: awk, libfoo:any (>= 2) | mawk\n",
            ),
            pkg("libfoo", "1.0", "amd64", ""),
            pkg("tool", "1", "amd64", "Depends: libc6 (>= 9.0)\n"),
            pkg("other-arch", "1", "arm64", ""),
        ]
        .concat();
        Index::parse(&text, "bookworm", "amd64", "test index").unwrap()
    }

    fn names(r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect()
    }

    #[test]
    fn closure_follows_depends_pre_depends_versions_and_alternatives() {
        let r = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["ca-certificates"]),
        )
        .unwrap();
        assert_eq!(
            names(&r),
            [
                "ca-certificates=20230311",
                "debconf=1.5.82",
                "gcc-12-base=12.2.0-14",
                "libc6=2.36-9",
                "libgcc-s1=12.2.0-14",
                "libssl3=3.0.15-1~deb12u1",
                "openssl=3.0.15-1~deb12u1",
                "perl-base=5.36.0-7",
            ]
        );
        assert_eq!(r.get("openssl").unwrap().depends, ["libc6", "libssl3"]);
        assert_eq!(r.get("libc6").unwrap().depends, ["libgcc-s1"]);
    }

    #[test]
    fn virtual_packages_and_already_chosen_providers() {
        let r = resolve(&index(), &Request::new("bookworm", "amd64", &["needs-awk"])).unwrap();
        // `awk` → first provider by name (gawk); `libfoo (>= 2)` fails, so `mawk` is chosen.
        let n = names(&r);
        assert!(n.contains(&"gawk=5.2.1".to_string()), "{n:?}");
        assert!(n.contains(&"mawk=1.3.4".to_string()), "{n:?}");
        assert!(!n.iter().any(|x| x.starts_with("libfoo")), "{n:?}");
        // Asking for mawk first makes it the awk provider.
        let r = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["mawk", "needs-awk"]),
        )
        .unwrap();
        assert!(!names(&r).iter().any(|x| x.starts_with("gawk")));
        assert_eq!(r.get("needs-awk").unwrap().depends, ["mawk"]);
    }

    #[test]
    fn resolution_is_deterministic() {
        let req = Request::new("bookworm", "amd64", &["needs-awk", "ca-certificates"]);
        let a = resolve(&index(), &req).unwrap();
        for _ in 0..3 {
            assert_eq!(resolve(&index(), &req).unwrap(), a);
        }
    }

    #[test]
    fn unknown_packages_name_package_suite_and_arch() {
        let e = resolve(&index(), &Request::new("bookworm", "amd64", &["libssl4"])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"libssl4\"") && msg.contains("bookworm") && msg.contains("amd64"),
            "{msg}"
        );
        assert!(msg.contains("did you mean libssl3"), "{msg}");
        assert_eq!(e.kind(), crate::error::Kind::Config);
        let e = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["other-arch"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("other-arch"), "{e}");
        let e = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["libssl3=9.9"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("libssl3=3.0.15-1~deb12u1"), "{e}");
        let e = resolve(&index(), &Request::new("bookworm", "amd64", &["awk"])).unwrap_err();
        assert!(e.to_string().contains("provided by gawk, mawk"), "{e}");
    }

    #[test]
    fn unsatisfiable_versions_name_the_dependency() {
        let e = resolve(&index(), &Request::new("bookworm", "amd64", &["tool"])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("tool 1") && msg.contains("libc6 (>= 9.0)"),
            "{msg}"
        );
        assert!(msg.contains("libc6 2.36-9 is already chosen"), "{msg}");
    }

    #[test]
    fn a_package_missing_from_one_architecture_names_it() {
        let amd64 = index();
        let text = "Package: libc6\nVersion: 2.36-9\nArchitecture: arm64\nFilename: pool/l/libc6.deb\nSize: 1\nSHA256: 00000000000000000000000000000000000000000000000000000000000000aa\n\nPackage: libgcc-s1\nVersion: 12\nArchitecture: arm64\nFilename: pool/l/libgcc.deb\nSize: 1\nSHA256: 00000000000000000000000000000000000000000000000000000000000000bb\n";
        let arm64 = Index::parse(text, "bookworm", "arm64", "t").unwrap();
        let e = resolve_each(&[&amd64, &arm64], "bookworm", &["libssl3"]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(
                "\"libssl3\" has no build for arm64 in Debian bookworm (it is built for amd64)"
            ),
            "{msg}"
        );
        assert_eq!(e.kind(), crate::error::Kind::Config);
        let e = resolve_each(&[&amd64, &arm64], "bookworm", &["nope-nope"]).unwrap_err();
        assert!(matches!(e, DebError::UnknownPackage { .. }), "{e}");
        let rs = resolve_each(&[&amd64, &arm64], "bookworm", &[] as &[&str]).unwrap();
        assert_eq!(rs[1].arch, "arm64");
        assert_eq!(rs[1].packages.len(), 2);
    }

    #[test]
    fn exact_versions_can_be_requested() {
        let r = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["gcc-12-base=12.2.0-15"]),
        );
        // libgcc-s1 needs (= 12.2.0-14): the request makes that impossible.
        assert!(r.is_err());
        let r = resolve(
            &index(),
            &Request::new("bookworm", "amd64", &["libssl3=3.0.15-1~deb12u1"]),
        )
        .unwrap();
        assert!(r.get("libssl3").is_some());
    }
}
