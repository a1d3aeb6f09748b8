//! `pipeline.lock`: the exact Debian packages of every suite and architecture a pipeline uses,
//! so the same lock gives the same layers on any machine. TOML, one `[[deb]]` table per package,
//! sorted by suite, architecture and name, with the resolved dependency edges so that a lock can
//! be resolved without any index ([`resolve_locked`]). Written deterministically: the same
//! content gives the same bytes.
//!
//! ```toml
//! # pipeline.lock: written by shipit; do not edit. `shipit lock --update` refreshes it.
//! version = 1
//!
//! [[deb]]
//! suite = "bookworm"
//! arch = "amd64"
//! name = "libc6"
//! version = "2.36-9+deb12u10"
//! architecture = "amd64"
//! filename = "pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb"
//! size = 2757936
//! sha256 = "…"
//! depends = ["libgcc-s1"]
//! ```
//!
//! The gnu targets' build sysroots (`libc6-dev` plus `build.packages`, see [`super::sysroot`])
//! are locked in the same file, in rows with `sysroot = true`: a second table per suite and
//! architecture, apart from the image's packages (a base's lock keeps exactly what its image
//! installs, so the two sets must not prune each other). [`Lock::sysroot_view`] gives that table
//! as a lock of its own, so `resolve_with_lock` and `resolve_locked` work on it unchanged.

use super::error::DebError;
use super::packages::valid_name;
use super::resolve::{Pkg, Request, Resolution};
use super::sha::is_sha256_hex;
use super::version::Relation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// The lock format's version.
pub const LOCK_VERSION: u32 = 1;

const HEADER: &str =
    "# pipeline.lock: written by shipit; do not edit. `shipit lock --update` refreshes it.\n";

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub version: String,
    /// The package's own architecture (`all` or the locked architecture).
    pub architecture: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub depends: Vec<String>,
}

/// suite → architecture → package → entry.
pub type Entries = BTreeMap<String, Locked>;

/// A lock file's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    /// Where it was read from (for errors); empty for a new lock.
    pub path: PathBuf,
    pub suites: BTreeMap<String, BTreeMap<String, Entries>>,
    /// The build sysroots' packages (rows with `sysroot = true`), suite → architecture.
    pub sysroots: BTreeMap<String, BTreeMap<String, Entries>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    deb: Vec<Row>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    suite: String,
    arch: String,
    /// A build sysroot's package (not the image's).
    #[serde(default, skip_serializing_if = "is_false")]
    sysroot: bool,
    name: String,
    version: String,
    architecture: String,
    filename: String,
    size: u64,
    sha256: String,
    #[serde(default)]
    depends: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Lock {
    /// Reads and validates a lock file. A missing file is `Ok(None)`.
    pub fn read(path: &Path) -> Result<Option<Lock>, DebError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DebError::io(path)(e)),
        };
        Lock::parse(&text, path).map(Some)
    }

    /// Parses and validates lock text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Lock, DebError> {
        let bad = |why: String| DebError::Lock {
            path: path.to_path_buf(),
            why,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.version != LOCK_VERSION {
            return Err(bad(format!(
                "lock format version {} is not supported (this shipit writes {LOCK_VERSION}); \
                 run `shipit lock --update`",
                file.version
            )));
        }
        let mut lock = Lock {
            path: path.to_path_buf(),
            ..Lock::default()
        };
        for r in file.deb {
            let at = format!("{}/{}/{}", r.suite, r.arch, r.name);
            if !super::packages::SUITES.contains(&r.suite.as_str())
                && !r
                    .suite
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad(format!("{at}: bad suite")));
            }
            if !valid_name(&r.name) || r.depends.iter().any(|d| !valid_name(d)) {
                return Err(bad(format!("{at}: bad package name")));
            }
            if !is_sha256_hex(&r.sha256) {
                return Err(bad(format!("{at}: sha256 is not 64 lowercase hex digits")));
            }
            if r.filename.starts_with('/')
                || r.filename.split('/').any(|c| c.is_empty() || c == "..")
                || !r.filename.ends_with(".deb")
            {
                return Err(bad(format!(
                    "{at}: filename {:?} is not a pool path",
                    r.filename
                )));
            }
            if r.architecture != r.arch && r.architecture != "all" {
                return Err(bad(format!(
                    "{at}: architecture {:?} does not belong to {}",
                    r.architecture, r.arch
                )));
            }
            let table = if r.sysroot {
                &mut lock.sysroots
            } else {
                &mut lock.suites
            };
            let entries = table
                .entry(r.suite.clone())
                .or_default()
                .entry(r.arch.clone())
                .or_default();
            let dup = entries.insert(
                r.name.clone(),
                Locked {
                    version: r.version,
                    architecture: r.architecture,
                    filename: r.filename,
                    size: r.size,
                    sha256: r.sha256,
                    depends: r.depends,
                },
            );
            if dup.is_some() {
                return Err(bad(format!("{at} is listed twice")));
            }
        }
        for (set, table) in [("", &lock.suites), (" (sysroot)", &lock.sysroots)] {
            for (suite, arches) in table {
                for (arch, entries) in arches {
                    for (name, e) in entries {
                        if let Some(d) = e.depends.iter().find(|d| !entries.contains_key(*d)) {
                            return Err(bad(format!(
                                "{suite}/{arch}/{name}{set} depends on {d:?}, which is not locked"
                            )));
                        }
                    }
                }
            }
        }
        Ok(lock)
    }

    /// The lock as text: sorted, so equal locks give equal bytes.
    pub fn render(&self) -> String {
        let mut rows = Vec::new();
        for (sysroot, table) in [(false, &self.suites), (true, &self.sysroots)] {
            for (suite, arches) in table {
                for (arch, entries) in arches {
                    for (name, e) in entries {
                        rows.push(Row {
                            suite: suite.clone(),
                            arch: arch.clone(),
                            sysroot,
                            name: name.clone(),
                            version: e.version.clone(),
                            architecture: e.architecture.clone(),
                            filename: e.filename.clone(),
                            size: e.size,
                            sha256: e.sha256.clone(),
                            depends: e.depends.clone(),
                        });
                    }
                }
            }
        }
        let body = toml::to_string(&File {
            version: LOCK_VERSION,
            deb: rows,
        })
        .expect("a lock serialises");
        format!("{HEADER}{body}")
    }

    /// Writes the lock atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> Result<(), DebError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".pipeline.lock.")
            .tempfile_in(dir)
            .map_err(DebError::io(dir))?;
        std::io::Write::write_all(&mut tmp, self.render().as_bytes())
            .map_err(DebError::io(path))?;
        tmp.persist(path).map_err(|e| DebError::io(path)(e.error))?;
        Ok(())
    }

    /// The build sysroots' table as a lock of its own (same path), for `resolve_with_lock` and
    /// `resolve_locked`; put it back with [`Lock::set_sysroots`].
    pub fn sysroot_view(&self) -> Lock {
        Lock {
            path: self.path.clone(),
            suites: self.sysroots.clone(),
            sysroots: BTreeMap::new(),
        }
    }

    /// Takes the image table of `view` (from [`Lock::sysroot_view`]) as the sysroots' table.
    pub fn set_sysroots(&mut self, view: Lock) {
        self.sysroots = view.suites;
    }

    /// The entries of one suite and architecture.
    pub fn entries(&self, suite: &str, arch: &str) -> Option<&Entries> {
        self.suites.get(suite).and_then(|a| a.get(arch))
    }

    /// Adds a resolution's packages (replacing entries of the same name in its suite and
    /// architecture; other entries stay, so several package sets can share one lock).
    pub fn merge(&mut self, r: &Resolution) {
        let entries = self
            .suites
            .entry(r.suite.clone())
            .or_default()
            .entry(r.arch.clone())
            .or_default();
        for p in &r.packages {
            entries.insert(
                p.name.clone(),
                Locked {
                    version: p.version.clone(),
                    architecture: p.architecture.clone(),
                    filename: p.filename.clone(),
                    size: p.size,
                    sha256: p.sha256.clone(),
                    depends: p.depends.clone(),
                },
            );
        }
    }

    /// A lock holding exactly these resolutions (what `shipit lock --update` writes).
    pub fn from_resolutions<'a>(rs: impl IntoIterator<Item = &'a Resolution>) -> Lock {
        let mut lock = Lock::default();
        for r in rs {
            lock.merge(r);
        }
        lock
    }
}

/// Resolves a request from a lock alone (no index): the roots and everything their locked
/// dependency edges reach. A root the lock lacks is [`DebError::NotLocked`] (the caller resolves
/// afresh, or fails under `--locked`).
pub fn resolve_locked(lock: &Lock, request: &Request) -> Result<Resolution, DebError> {
    let Some(entries) = lock.entries(&request.suite, &request.arch) else {
        let (first, _) = request.roots().remove(0);
        return Err(DebError::NotLocked {
            package: first,
            suite: request.suite.clone(),
            arch: request.arch.clone(),
        });
    };
    let mut chosen = BTreeMap::new();
    let mut queue = VecDeque::new();
    for (name, version) in request.roots() {
        match entries.get(&name) {
            Some(e)
                if version
                    .as_deref()
                    .is_none_or(|v| Relation::Eq.holds(&e.version, v)) =>
            {
                queue.push_back(name);
            }
            _ => {
                return Err(DebError::NotLocked {
                    package: match version {
                        Some(v) => format!("{name}={v}"),
                        None => name,
                    },
                    suite: request.suite.clone(),
                    arch: request.arch.clone(),
                });
            }
        }
    }
    while let Some(name) = queue.pop_front() {
        if chosen.contains_key(&name) {
            continue;
        }
        let Some(e) = entries.get(&name) else {
            return Err(DebError::Lock {
                path: lock.path.clone(),
                why: format!(
                    "{}/{}: a locked package depends on {name:?}, which is not locked; run `shipit lock --update`",
                    request.suite, request.arch
                ),
            });
        };
        for d in &e.depends {
            queue.push_back(d.clone());
        }
        chosen.insert(
            name.clone(),
            Pkg {
                name: name.clone(),
                version: e.version.clone(),
                architecture: e.architecture.clone(),
                filename: e.filename.clone(),
                size: e.size,
                sha256: e.sha256.clone(),
                depends: e.depends.clone(),
            },
        );
    }
    Ok(Resolution {
        suite: request.suite.clone(),
        arch: request.arch.clone(),
        packages: chosen.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::resolve::{Pkg, Request};

    fn res(arch: &str) -> Resolution {
        let p = |name: &str, deps: &[&str]| Pkg {
            name: name.into(),
            version: "1.0-1".into(),
            architecture: arch.into(),
            filename: format!("pool/main/x/{name}_1.0-1_{arch}.deb"),
            size: 42,
            sha256: "0f".repeat(32),
            depends: deps.iter().map(|d| d.to_string()).collect(),
        };
        Resolution {
            suite: "bookworm".into(),
            arch: arch.into(),
            packages: vec![
                p("libc6", &["libgcc-s1"]),
                p("libgcc-s1", &["libc6"]),
                p("libssl3", &["libc6"]),
            ],
        }
    }

    #[test]
    fn round_trip_is_byte_stable_and_sorted() {
        let lock = Lock::from_resolutions([&res("arm64"), &res("amd64")]);
        let text = lock.render();
        assert!(text.starts_with(HEADER));
        assert!(text.find("arch = \"amd64\"").unwrap() < text.find("arch = \"arm64\"").unwrap());
        let back = Lock::parse(&text, Path::new("pipeline.lock")).unwrap();
        assert_eq!(back.suites, lock.suites);
        assert_eq!(back.render(), text);
    }

    #[test]
    fn a_lock_resolves_without_an_index() {
        let lock = Lock::from_resolutions([&res("amd64")]);
        let r = resolve_locked(&lock, &Request::new("bookworm", "amd64", &["libssl3"])).unwrap();
        assert_eq!(r, res("amd64"));
        let r = resolve_locked(&lock, &Request::new("bookworm", "amd64", &[] as &[&str])).unwrap();
        assert_eq!(r.packages.len(), 2);
        let e = resolve_locked(&lock, &Request::new("bookworm", "amd64", &["curl"])).unwrap_err();
        assert!(
            matches!(&e, DebError::NotLocked { package, .. } if package == "curl"),
            "{e}"
        );
        let e =
            resolve_locked(&lock, &Request::new("bookworm", "armhf", &["libssl3"])).unwrap_err();
        assert!(matches!(e, DebError::NotLocked { .. }));
        let e = resolve_locked(&lock, &Request::new("bookworm", "amd64", &["libssl3=2.0"]))
            .unwrap_err();
        assert!(e.to_string().contains("libssl3=2.0"), "{e}");
    }

    #[test]
    fn sysroot_rows_are_a_table_of_their_own() {
        let mut lock = Lock::from_resolutions([&res("amd64")]);
        let mut view = lock.sysroot_view();
        assert!(view.suites.is_empty());
        let mut dev = res("amd64");
        dev.packages.truncate(2);
        view.merge(&dev);
        lock.set_sysroots(view);
        let text = lock.render();
        assert_eq!(text.matches("sysroot = true").count(), 2, "{text}");
        let back = Lock::parse(&text, Path::new("pipeline.lock")).unwrap();
        assert_eq!(
            back,
            Lock {
                path: "pipeline.lock".into(),
                ..lock.clone()
            }
        );
        assert_eq!(back.suites["bookworm"]["amd64"].len(), 3);
        let r = resolve_locked(
            &back.sysroot_view(),
            &Request::new("bookworm", "amd64", &["libssl3"]),
        )
        .unwrap_err();
        assert!(matches!(r, DebError::NotLocked { .. }), "{r}");
        // An image row never satisfies a sysroot row's dependency.
        let mut only_ssl = res("amd64");
        only_ssl.packages.retain(|p| p.name == "libssl3");
        let mut broken = Lock::from_resolutions([&res("amd64")]);
        broken.sysroots = Lock::from_resolutions([&only_ssl]).suites;
        let e = Lock::parse(&broken.render(), Path::new("pipeline.lock")).unwrap_err();
        assert!(
            e.to_string().contains("libssl3 (sysroot) depends on"),
            "{e}"
        );
    }

    #[test]
    fn damaged_locks_are_refused_with_the_path() {
        let text = Lock::from_resolutions([&res("amd64")]).render();
        for (from, to, want) in [
            ("sha256 = \"0f0f", "sha256 = \"zz0f", "sha256"),
            ("pool/main/x/libc6", "../../libc6", "pool path"),
            ("version = 1\n", "version = 7\n", "version 7"),
            (
                "depends = [\"libgcc-s1\"]",
                "depends = [\"libgcc-s2\"]",
                "not locked",
            ),
            (
                "name = \"libc6\"",
                "name = \"libc6\"\nextra = 1",
                "unknown field",
            ),
        ] {
            let bad = text.replacen(from, to, 1);
            assert_ne!(bad, text, "{from}");
            let e = Lock::parse(&bad, Path::new("/p/pipeline.lock")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("/p/pipeline.lock") && msg.contains(want),
                "{msg}"
            );
            assert_eq!(e.kind(), crate::error::Kind::Config);
        }
    }
}
