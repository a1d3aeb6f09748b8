//! Build sysroots for gnu targets: `libc6-dev` of the target's Debian architecture plus
//! `build.packages` and their dependencies (resolved and fetched like a base, see the module
//! doc of [`super`]), unpacked into a plain directory that the compiler and linker read with
//! `--sysroot` / `-L` (the variables are `syslibs::sysroot::env`'s).
//!
//! The directory is made by [`assemble_into`]: the packages are unioned by [`super::assemble`]
//! (merged `/usr`, conflicts refused, no path through a symlink), written into a temporary
//! directory next to the destination and renamed into place, so a sysroot is either complete
//! or absent. Unpacking is safe: every path is relative and plain (no `..`, nothing below a
//! symlink), files are written with `create_new` and permission bits only (no setuid), and no
//! symlink may leave the sysroot. Absolute symlinks (`libc6-dev` ships
//! `usr/lib/<triplet>/libBrokenLocale.so → /lib/<triplet>/…`) are rewritten relative to the
//! link, so they resolve inside the sysroot and not on the host. Linker scripts (`libc.so`,
//! `libm.so`: `GROUP ( /lib/<triplet>/libc.so.6 … )`) are kept as Debian ships them: GNU ld
//! prefixes an absolute path in a script found inside the sysroot with the `--sysroot` it was
//! given (as it does for `=` paths), which is how the cross gcc builds link; cargo-zigbuild
//! links libc from zig's own stubs and never reads them.
//!
//! The directory name is `<suite>-<arch>-<key>`, where the key ([`key`]) hashes every
//! package's name, version and SHA256 (from `pipeline.lock`): an unchanged lock finds the same
//! directory and needs no network. Beside the tree, [`MANIFEST`] records the packages and, for
//! each shared library the `build.packages` bring (not glibc's own), the highest `GLIBC_x.y`
//! it needs (`.gnu.version_r`): the glibc floor the linked libraries impose
//! ([`Manifest::glibc_floor`]).

use super::debfile::{DataKind, read_deb};
use super::error::DebError;
use super::fetch::LocalDeb;
use super::resolve::Resolution;
use super::rootfs::{RootfsOptions, assemble, merged_usr};
use crate::oci::layer::EntryKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What every sysroot holds besides `build.packages`: the C library's development files (crt
/// objects, headers, `libc.so`), with their dependencies (`linux-libc-dev`, `libcrypt-dev`, …).
pub const SYSROOT_PACKAGES: &[&str] = &["libc6-dev"];

/// The manifest file at the top of an assembled sysroot.
pub const MANIFEST: &str = "shipit-sysroot.json";

/// Bumped when the unpacking changes the tree for the same packages (part of the key).
const SYSROOT_VERSION: u32 = 2;

/// The packages a sysroot is resolved from: [`SYSROOT_PACKAGES`], then `build.packages` (each
/// once, in order).
pub fn request(build_packages: &[String]) -> Vec<String> {
    let mut out: Vec<String> = SYSROOT_PACKAGES.iter().map(|s| s.to_string()).collect();
    for p in build_packages {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// The key of a sysroot: its format version, suite, architecture and every package's name,
/// version and SHA256 (sorted), as hex.
pub fn key(r: &Resolution) -> String {
    let mut text = format!(
        "shipit sysroot v{SYSROOT_VERSION}\nsuite {}\narch {}\n",
        r.suite, r.arch
    );
    let mut pkgs: Vec<_> = r.packages.iter().collect();
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    for p in pkgs {
        text.push_str(&format!("{} {} {}\n", p.name, p.version, p.sha256));
    }
    crate::oci::digest::Digest::of(text.as_bytes())
        .hex()
        .to_string()
}

/// `bookworm-arm64-0123456789abcdef`: the directory name of a resolution's sysroot.
pub fn dir_name(r: &Resolution) -> String {
    format!("{}-{}-{}", r.suite, r.arch, &key(r)[..16])
}

/// What an assembled sysroot holds (written as [`MANIFEST`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub suite: String,
    pub arch: String,
    pub key: String,
    /// Every package, sorted by name.
    pub packages: Vec<PackageVersion>,
    /// The shared libraries `build.packages` bring (glibc's own excluded) and the glibc each
    /// needs, sorted by path.
    pub libraries: Vec<LibraryNeed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    pub name: String,
    pub version: String,
}

/// One shared library of a sysroot and the highest glibc symbol version it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryNeed {
    /// Inside the sysroot: `usr/lib/aarch64-linux-gnu/libssl.so.3`.
    pub path: String,
    /// The package shipping it, and its version.
    pub package: String,
    pub package_version: String,
    /// `2.34` (from `GLIBC_2.34`).
    pub glibc: String,
}

impl LibraryNeed {
    /// `libssl.so.3`.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl Manifest {
    /// The library with the highest glibc need (the first by path among equals), if any.
    pub fn glibc_floor(&self) -> Option<&LibraryNeed> {
        let v = |l: &LibraryNeed| crate::verify::elf::GlibcVersion::parse(&l.glibc);
        self.libraries.iter().filter(|l| v(l).is_some()).fold(
            None,
            |best: Option<&LibraryNeed>, l| match best {
                Some(b) if v(b) >= v(l) => Some(b),
                _ => Some(l),
            },
        )
    }

    /// Reads `dir`'s manifest; `None` when it is absent or unreadable (not assembled).
    pub fn read(dir: &Path) -> Option<Manifest> {
        let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The packages `roots` reach along the resolution's dependency edges, not entering `stop` (a
/// root may be written `name=version`).
fn closure(r: &Resolution, roots: &[impl AsRef<str>], stop: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = roots
        .iter()
        .map(|s| s.as_ref().split('=').next().unwrap_or("").to_string())
        .collect();
    while let Some(n) = queue.pop_front() {
        if stop.contains(&n.as_str()) || !seen.insert(n.clone()) {
            continue;
        }
        if let Some(p) = r.get(&n) {
            queue.extend(p.depends.iter().cloned());
        }
    }
    seen
}

/// The packages whose libraries set the glibc floor: what `build.packages` reach without going
/// through glibc itself (`libc6`, `libc6-dev`). What only glibc pulls in is not linked unless
/// asked for: `libc6-dev` reaches libcrypt1 (which needs the suite's newest glibc) and, through
/// libtirpc and Kerberos, even libssl3; `-dev` packages such as libsqlite3-dev depend on
/// `libc6-dev` themselves.
pub fn linked_packages(r: &Resolution, build_packages: &[String]) -> BTreeSet<String> {
    let mut stop: Vec<&str> = vec!["libc6"];
    stop.extend(SYSROOT_PACKAGES);
    closure(r, build_packages, &stop)
        .into_iter()
        .filter(|p| r.get(p).is_some())
        .collect()
}

/// The shared libraries of one `.deb` and the glibc each needs.
fn library_needs(deb: &LocalDeb) -> Result<Vec<LibraryNeed>, DebError> {
    let c = read_deb(&deb.path)?;
    let mut out = Vec::new();
    for e in &c.files {
        let DataKind::File(bytes) = &e.kind else {
            continue;
        };
        let name = e.path.rsplit('/').next().unwrap_or("");
        if !name.contains(".so") || !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        let Ok(facts) = crate::verify::elf::inspect(bytes) else {
            continue;
        };
        if let Some(v) = facts.max_glibc {
            out.push(LibraryNeed {
                path: merged_usr(&e.path),
                package: deb.pkg.name.clone(),
                package_version: deb.pkg.version.clone(),
                glibc: v.to_string(),
            });
        }
    }
    Ok(out)
}

/// Unpacks `debs` (the whole resolution `r`) as the sysroot `dest` (atomically: a temporary
/// directory beside it, then a rename) and writes its manifest; `build_packages` decide which
/// libraries set the glibc floor. When `dest` already holds this sysroot it is kept.
pub fn assemble_into(
    debs: &[LocalDeb],
    r: &Resolution,
    build_packages: &[String],
    dest: &Path,
) -> Result<Manifest, DebError> {
    let key = key(r);
    if let Some(m) = Manifest::read(dest)
        && m.key == key
    {
        return Ok(m);
    }
    let parent = dest
        .parent()
        .ok_or_else(|| DebError::format(dest.display().to_string(), "has no parent directory"))?;
    std::fs::create_dir_all(parent).map_err(DebError::io(parent))?;
    let rootfs = assemble(
        debs,
        &RootfsOptions {
            arch: r.arch.clone(),
            epoch: 0,
            user: None,
        },
    )?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-sysroot-")
        .tempdir_in(parent)
        .map_err(DebError::io(parent))?;
    for e in &rootfs.entries {
        write_entry(tmp.path(), &e.path, &e.kind, e.mode)?;
    }
    let linked = linked_packages(r, build_packages);
    let mut libraries = Vec::new();
    for d in debs.iter().filter(|d| linked.contains(&d.pkg.name)) {
        libraries.extend(library_needs(d)?);
    }
    libraries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut packages: Vec<PackageVersion> = r
        .packages
        .iter()
        .map(|p| PackageVersion {
            name: p.name.clone(),
            version: p.version.clone(),
        })
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let manifest = Manifest {
        version: SYSROOT_VERSION,
        suite: r.suite.clone(),
        arch: r.arch.clone(),
        key,
        packages,
        libraries,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let mpath = tmp.path().join(MANIFEST);
    std::fs::write(&mpath, json).map_err(DebError::io(&mpath))?;
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another run put the same sysroot there first.
        match Manifest::read(dest) {
            Some(m) if m.key == manifest.key => return Ok(m),
            _ => return Err(DebError::io(dest)(e)),
        }
    }
    Ok(manifest)
}

/// `path`'s components, refusing anything that is not a plain relative path.
fn plain_components(path: &str) -> Result<Vec<&str>, DebError> {
    let parts: Vec<&str> = path.split('/').collect();
    if path.is_empty()
        || parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(DebError::format(
            format!("/{path}"),
            "is not a plain relative path; refused in a sysroot",
        ));
    }
    Ok(parts)
}

/// The target a symlink at `link` (relative to the sysroot) gets inside the sysroot: absolute
/// targets become relative to the link's directory; a target that would leave the sysroot is
/// refused.
pub fn contained_target(link: &str, target: &str) -> Result<String, DebError> {
    let refuse = || {
        DebError::format(
            format!("/{link}"),
            format!("is a symlink to {target:?}, which leaves the sysroot; refused"),
        )
    };
    let dir: Vec<&str> = link.split('/').collect();
    let dir = &dir[..dir.len().saturating_sub(1)];
    // Where the target lands, lexically, from the sysroot's top.
    let mut at: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.to_vec()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return Err(refuse());
                }
            }
            c => at.push(c),
        }
    }
    if !target.starts_with('/') {
        return Ok(target.to_string());
    }
    let mut rel: Vec<&str> = vec![".."; dir.len()];
    rel.extend(at);
    if rel.is_empty() {
        return Ok(".".into());
    }
    Ok(rel.join("/"))
}

fn write_entry(root: &Path, path: &str, kind: &EntryKind, mode: u32) -> Result<(), DebError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let parts = plain_components(path)?;
    let full: PathBuf = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    if let Some(dir) = full.parent() {
        std::fs::create_dir_all(dir).map_err(DebError::io(dir))?;
    }
    match kind {
        EntryKind::Dir => match std::fs::create_dir(&full) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && full.is_dir() => Ok(()),
            Err(e) => Err(DebError::io(&full)(e)),
        },
        EntryKind::File(bytes) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&full)
                .map_err(DebError::io(&full))?;
            f.write_all(bytes).map_err(DebError::io(&full))?;
            // Permission bits only: nothing in a sysroot runs setuid.
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o755 | 0o600))
                .map_err(DebError::io(&full))
        }
        EntryKind::Symlink(target) => {
            let target = contained_target(path, target)?;
            std::os::unix::fs::symlink(&target, &full).map_err(DebError::io(&full))
        }
        EntryKind::HostFile(_) => Err(DebError::format(
            format!("/{path}"),
            "a host file in a sysroot; refused",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::resolve::Pkg;

    fn pkg(name: &str, deps: &[&str]) -> Pkg {
        Pkg {
            name: name.into(),
            version: "1.0-1".into(),
            architecture: "arm64".into(),
            filename: format!("pool/main/x/{name}_1.0-1_arm64.deb"),
            size: 1,
            sha256: "ab".repeat(32),
            depends: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn res() -> Resolution {
        Resolution {
            suite: "bookworm".into(),
            arch: "arm64".into(),
            packages: vec![
                pkg("libc6", &["libgcc-s1"]),
                pkg("libc6-dev", &["libc6", "linux-libc-dev", "libtirpc3"]),
                pkg("libtirpc3", &["libssl3", "libcrypt1"]),
                pkg("libcrypt1", &["libc6"]),
                pkg("libgcc-s1", &["libc6"]),
                pkg("libssl-dev", &["libc6-dev", "libssl3"]),
                pkg("libssl3", &["libc6"]),
                pkg("linux-libc-dev", &[]),
            ],
        }
    }

    #[test]
    fn the_request_starts_with_libc6_dev_and_names_each_package_once() {
        let r = request(&["libssl-dev".into(), "libc6-dev".into(), "zlib1g-dev".into()]);
        assert_eq!(r, ["libc6-dev", "libssl-dev", "zlib1g-dev"]);
    }

    #[test]
    fn the_floor_comes_from_what_build_packages_bring_beyond_glibc() {
        let linked = linked_packages(&res(), &["libssl-dev".into()]);
        assert_eq!(
            linked.into_iter().collect::<Vec<_>>(),
            ["libssl-dev", "libssl3"]
        );
        let m = Manifest {
            version: 1,
            suite: "bookworm".into(),
            arch: "arm64".into(),
            key: "k".into(),
            packages: Vec::new(),
            libraries: [
                ("libcrypto.so.3", "2.34"),
                ("libssl.so.3", "2.34"),
                ("x.so", "2.17"),
            ]
            .iter()
            .map(|(f, g)| LibraryNeed {
                path: format!("usr/lib/aarch64-linux-gnu/{f}"),
                package: "libssl3".into(),
                package_version: "3.0.15-1~deb12u1".into(),
                glibc: g.to_string(),
            })
            .collect(),
        };
        let f = m.glibc_floor().unwrap();
        assert_eq!(
            (f.file_name(), f.glibc.as_str()),
            ("libcrypto.so.3", "2.34")
        );
    }

    #[test]
    fn the_key_follows_every_locked_package() {
        let a = res();
        let mut b = res();
        b.packages[4].sha256 = "cd".repeat(32);
        assert_ne!(key(&a), key(&b));
        assert_eq!(key(&a), key(&res()));
        assert!(dir_name(&a).starts_with("bookworm-arm64-"));
        assert_eq!(dir_name(&a).len(), "bookworm-arm64-".len() + 16);
    }

    #[test]
    fn symlinks_stay_inside_the_sysroot() {
        assert_eq!(
            contained_target(
                "usr/lib/aarch64-linux-gnu/libBrokenLocale.so",
                "/lib/aarch64-linux-gnu/libBrokenLocale.so.1"
            )
            .unwrap(),
            "../../../lib/aarch64-linux-gnu/libBrokenLocale.so.1"
        );
        assert_eq!(contained_target("lib", "usr/lib").unwrap(), "usr/lib");
        assert_eq!(
            contained_target("usr/lib/x/libz.so", "libz.so.1").unwrap(),
            "libz.so.1"
        );
        assert_eq!(contained_target("a/b", "/").unwrap(), "..");
        for (link, target) in [("usr/lib/x", "../../../etc/passwd"), ("a", "../b")] {
            let e = contained_target(link, target).unwrap_err();
            assert!(e.to_string().contains("leaves the sysroot"), "{e}");
        }
    }

    #[test]
    fn entries_are_written_as_plain_files_dirs_and_contained_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_entry(root, "usr/lib/x", &EntryKind::Dir, 0o755).unwrap();
        write_entry(
            root,
            "usr/lib/x/a.so.1",
            &EntryKind::File(b"elf".to_vec()),
            0o4755,
        )
        .unwrap();
        write_entry(
            root,
            "usr/lib/x/a.so",
            &EntryKind::Symlink("/usr/lib/x/a.so.1".into()),
            0o777,
        )
        .unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/x/a.so")).unwrap(), b"elf");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("usr/lib/x/a.so.1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "no setuid in a sysroot");
        for bad in ["../x", "/etc/x", "a/./b", ""] {
            assert!(
                write_entry(root, bad, &EntryKind::Dir, 0o755).is_err(),
                "{bad}"
            );
        }
        // A file already there (two packages racing for a path) is not overwritten.
        assert!(
            write_entry(
                root,
                "usr/lib/x/a.so.1",
                &EntryKind::File(b"x".to_vec()),
                0o644
            )
            .is_err()
        );
    }
}
