//! Control-file stanzas (deb822: `Field: value`, continuation lines start with a space or tab,
//! stanzas separated by blank lines) and the `Packages` index built from them: per package its
//! version, architecture, `Depends`/`Pre-Depends` (parsed into alternatives with version relations
//! and architecture qualifiers), `Provides`, where its `.deb` is and its size and SHA256.

use super::error::DebError;
use super::version::Relation;

/// The archive component shipit reads (Debian's `main`).
pub const COMPONENT: &str = "main";

/// The packages every `deb:SUITE` base holds: what a dynamically linked Rust binary needs.
pub const BASE_PACKAGES: [&str; 2] = ["libc6", "libgcc-s1"];

/// The suites shipit accepts in `deb:SUITE`.
pub const SUITES: [&str; 3] = ["bullseye", "bookworm", "trixie"];
use std::collections::BTreeMap;

/// One stanza, fields in their original order (the order dpkg's status database keeps).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stanza {
    /// `(name, value)`; a multi-line value keeps its continuation lines (with their leading space)
    /// after `\n`, and an empty first line stays empty (`Description` of a status stanza).
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of a field (names compare case-insensitively, as in deb822).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The stanza as text, ending in a newline (no blank line).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (n, v) in &self.fields {
            if v.starts_with('\n') || v.is_empty() {
                out.push_str(&format!("{n}:{v}\n"));
            } else {
                out.push_str(&format!("{n}: {v}\n"));
            }
        }
        out
    }
}

/// Parses deb822 text into stanzas. Comment lines (`#`) are skipped, as apt does in `.sources`.
pub fn parse_stanzas(text: &str, what: &str) -> Result<Vec<Stanza>, DebError> {
    parse_stanzas_keeping(text, what, &|_| true)
}

/// The same, keeping only the fields `keep` accepts (an index's long descriptions are skipped
/// without being copied).
fn parse_stanzas_keeping(
    text: &str,
    what: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<Stanza>, DebError> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    let mut keeping = true;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if !keeping {
                continue;
            }
            let Some((_, v)) = cur.fields.last_mut() else {
                return Err(DebError::format(
                    format!("{what}:{}", n + 1),
                    "a continuation line before any field",
                ));
            };
            v.push('\n');
            v.push_str(line);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(DebError::format(
                format!("{what}:{}", n + 1),
                format!("expected `Field: value`, found {:?}", truncate(line)),
            ));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(DebError::format(
                format!("{what}:{}", n + 1),
                format!("bad field name {:?}", truncate(name)),
            ));
        }
        keeping = keep(name);
        if keeping {
            cur.fields
                .push((name.to_string(), value.trim().to_string()));
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// One possibility of a dependency: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// `any`, `native` or an architecture name, when qualified.
    pub arch: Option<String>,
    pub version: Option<(Relation, String)>,
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((r, v)) = &self.version {
            write!(f, " ({} {v})", r.as_str())?;
        }
        Ok(())
    }
}

/// `a | b`: the alternatives of one dependency, in preference order.
pub type Alternatives = Vec<Dep>;

/// Formats alternatives as they are written in a control file.
pub fn show_alternatives(a: &[Dep]) -> String {
    a.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Parses a `Depends`-style field: comma-separated groups of `|`-separated alternatives.
/// Architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`) are source-package
/// syntax; they are dropped here.
pub fn parse_depends(field: &str, what: &str) -> Result<Vec<Alternatives>, DebError> {
    let mut out = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            alts.push(parse_dep(alt, what)?);
        }
        out.push(alts);
    }
    Ok(out)
}

fn parse_dep(s: &str, what: &str) -> Result<Dep, DebError> {
    let bad = |why: &str| DebError::format(what, format!("dependency {:?}: {why}", s.trim()));
    let s = match s.find(['[', '<']) {
        // `<` also starts `<<`/`<=` inside parentheses; only cut where no `(` came before.
        Some(i) if !s[..i].contains('(') => &s[..i],
        _ => s,
    };
    let (head, version) = match s.split_once('(') {
        Some((head, rest)) => {
            let inner = rest
                .split_once(')')
                .ok_or_else(|| bad("unclosed `(`"))?
                .0
                .trim();
            let op_len = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .ok_or_else(|| bad("no version after the relation"))?;
            let (op, v) = inner.split_at(op_len);
            let rel = Relation::parse(op.trim()).ok_or_else(|| bad("unknown relation"))?;
            let v = v.trim();
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(bad("bad version"));
            }
            (head, Some((rel, v.to_string())))
        }
        None => (s, None),
    };
    let head = head.trim();
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (head, None),
    };
    if !valid_name(name) {
        return Err(bad("bad package name"));
    }
    Ok(Dep {
        name: name.to_string(),
        arch,
        version,
    })
}

/// Debian package names: lowercase letters, digits, `+ - .`, at least two characters, starting
/// with a letter or digit.
pub fn valid_name(n: &str) -> bool {
    n.len() >= 2
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

/// One binary package of a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub depends: Vec<Alternatives>,
    pub pre_depends: Vec<Alternatives>,
    /// `(name, version)` of each virtual package it provides.
    pub provides: Vec<(String, Option<String>)>,
    /// Path of the `.deb` below the mirror (`pool/main/...`).
    pub filename: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub multi_arch: Option<String>,
    pub essential: bool,
}

impl Package {
    /// Reads the fields shipit uses from an index stanza; `what` names the index for errors.
    pub fn from_stanza(s: &Stanza, what: &str) -> Result<Package, DebError> {
        let name = s
            .get("Package")
            .ok_or_else(|| DebError::format(what, "a stanza without Package"))?;
        let what = format!("{what}: package {name}");
        let need = |f: &str| {
            s.get(f)
                .map(str::to_string)
                .ok_or_else(|| DebError::format(&what, format!("no {f} field")))
        };
        let deps = |f: &str| match s.get(f) {
            Some(v) => parse_depends(v, &what),
            None => Ok(Vec::new()),
        };
        let provides = deps("Provides")?
            .into_iter()
            .flatten()
            .map(|d| {
                let v = match d.version {
                    Some((Relation::Eq, v)) => Some(v),
                    _ => None,
                };
                (d.name, v)
            })
            .collect();
        let filename = need("Filename")?;
        if filename.starts_with('/')
            || filename
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(DebError::format(
                &what,
                format!("Filename {filename:?} leaves the mirror"),
            ));
        }
        let size = need("Size")?
            .parse()
            .map_err(|_| DebError::format(&what, "Size is not a number"))?;
        let sha256 = need("SHA256")?;
        if !super::sha::is_sha256_hex(&sha256) {
            return Err(DebError::format(&what, "SHA256 is not 64 hex digits"));
        }
        if !valid_name(name) {
            return Err(DebError::format(&what, "bad package name"));
        }
        Ok(Package {
            name: name.to_string(),
            version: need("Version")?,
            architecture: need("Architecture")?,
            depends: deps("Depends")?,
            pre_depends: deps("Pre-Depends")?,
            provides,
            filename,
            size,
            sha256,
            multi_arch: s.get("Multi-Arch").map(str::to_string),
            essential: s.get("Essential") == Some("yes"),
        })
    }
}

/// A parsed `Packages` index of one suite, component and architecture.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub suite: String,
    pub arch: String,
    /// By name; several versions of one name are kept, highest first.
    pub packages: BTreeMap<String, Vec<Package>>,
    /// Virtual name → `(provider name, provided version)`, sorted.
    pub provides: BTreeMap<String, Vec<(String, Option<String>)>>,
}

impl Index {
    /// Builds an index from the text of a `Packages` file.
    pub fn parse(text: &str, suite: &str, arch: &str, what: &str) -> Result<Index, DebError> {
        let mut idx = Index {
            suite: suite.to_string(),
            arch: arch.to_string(),
            ..Index::default()
        };
        const USED: [&str; 11] = [
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Pre-Depends",
            "Provides",
            "Filename",
            "Size",
            "SHA256",
            "Multi-Arch",
            "Essential",
        ];
        let keep = |name: &str| USED.iter().any(|u| u.eq_ignore_ascii_case(name));
        for s in parse_stanzas_keeping(text, what, &keep)? {
            let p = Package::from_stanza(&s, what)?;
            if p.architecture != arch && p.architecture != "all" {
                continue;
            }
            idx.insert(p);
        }
        idx.finish();
        Ok(idx)
    }

    /// Adds a package (call `finish` afterwards).
    pub fn insert(&mut self, p: Package) {
        for (v, ver) in &p.provides {
            self.provides
                .entry(v.clone())
                .or_default()
                .push((p.name.clone(), ver.clone()));
        }
        self.packages.entry(p.name.clone()).or_default().push(p);
    }

    /// Orders versions (highest first) and providers (by name), so lookups are deterministic.
    pub fn finish(&mut self) {
        for v in self.packages.values_mut() {
            v.sort_by(|a, b| super::version::compare(&b.version, &a.version));
        }
        for v in self.provides.values_mut() {
            v.sort();
            v.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Package: libssl3
Source: openssl
Version: 3.0.15-1~deb12u1
Installed-Size: 6353
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: same
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries
Multi-Arch: same
Homepage: https://www.openssl.org/
Description-md5: 88547c6206c7fbc4fcc7d09ce100d210
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/o/openssl/libssl3_3.0.15-1~deb12u1_amd64.deb
Size: 2025956
SHA256: 1d3a6d5f3a1b0d2b9d0c1f1b4c1c9e0f7e6d5c4b3a2910f8e7d6c5b4a3928170

Package: ca-certificates
Version: 20230311
Architecture: all
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0
Pre-Depends: foo:any (<< 2~), bar [amd64] <!nocheck>
Provides: ca-bundle, xv (= 1.0)
Description: Common CA certificates
 Contains the certificate authorities shipped with Mozilla's browser.
 .
 Please note that Debian can neither confirm nor deny whether the
Filename: pool/main/c/ca-certificates/ca-certificates_20230311_all.deb
Size: 153296
SHA256: 5308b9bd88eebe2a48be3168cb3d87677aaec5da9c63ad0cf561a29b8219115c
";

    #[test]
    fn stanzas_keep_order_and_continuation_lines() {
        let s = parse_stanzas(SAMPLE, "Packages").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("package"), Some("libssl3"));
        assert_eq!(s[0].fields[1], ("Source".into(), "openssl".into()));
        let d = s[1].get("Description").unwrap();
        assert!(d.starts_with("Common CA certificates\n Contains"), "{d:?}");
        assert!(
            s[1].render()
                .contains("Description: Common CA certificates\n Contains the")
        );
        let round = parse_stanzas(&s[1].render(), "again").unwrap();
        assert_eq!(round[0], s[1]);
    }

    #[test]
    fn packages_parse_depends_provides_and_pool_paths() {
        let idx = Index::parse(SAMPLE, "bookworm", "amd64", "Packages").unwrap();
        let ssl = &idx.packages["libssl3"][0];
        assert_eq!(ssl.version, "3.0.15-1~deb12u1");
        assert_eq!(ssl.size, 2025956);
        assert_eq!(ssl.multi_arch.as_deref(), Some("same"));
        assert_eq!(ssl.depends.len(), 1);
        assert_eq!(ssl.depends[0][0].to_string(), "libc6 (>= 2.34)");
        let ca = &idx.packages["ca-certificates"][0];
        assert_eq!(
            show_alternatives(&ca.depends[1]),
            "debconf (>= 0.5) | debconf-2.0"
        );
        assert_eq!(ca.pre_depends[0][0].arch.as_deref(), Some("any"));
        assert_eq!(ca.pre_depends[0][0].to_string(), "foo:any (<< 2~)");
        assert_eq!(ca.pre_depends[1][0].to_string(), "bar");
        assert_eq!(
            idx.provides["xv"],
            vec![("ca-certificates".to_string(), Some("1.0".to_string()))]
        );
        assert_eq!(idx.provides["ca-bundle"][0].1, None);
    }

    #[test]
    fn other_architectures_are_skipped_and_hostile_fields_refused() {
        let idx = Index::parse(SAMPLE, "bookworm", "arm64", "Packages").unwrap();
        assert!(!idx.packages.contains_key("libssl3"));
        assert!(idx.packages.contains_key("ca-certificates"));
        let evil = SAMPLE.replace("pool/main/c/", "pool/../../etc/");
        let e = Index::parse(&evil, "bookworm", "amd64", "Packages").unwrap_err();
        assert!(e.to_string().contains("leaves the mirror"), "{e}");
        let evil = SAMPLE.replace("Size: 153296", "Size: lots");
        assert!(Index::parse(&evil, "bookworm", "amd64", "P").is_err());
        assert!(parse_depends("libc6 (>= )", "x").is_err());
        assert!(parse_depends("Libc6", "x").is_err());
    }
}
