//! Assembles a root filesystem layer from `.deb`s without running any maintainer script: the
//! union of the packages' data trees, laid out like a Debian bookworm image, written by the
//! deterministic layer writer (`oci::layer`: sorted entries, explicit parents, fixed mtimes).
//!
//! Effects shipit performs itself (what the skipped scripts or tools would have done):
//! - **merged `/usr`**: files under `/bin`, `/sbin`, `/lib*` move to `/usr/…`, and `bin`, `sbin`,
//!   `lib` (and `lib32`, `lib64`, `libx32` where used, e.g. `lib64` on amd64) are symlinks into
//!   `usr`, as in Debian's images; relative symlinks that moved keep pointing at the same file.
//! - **the dpkg database**: `/var/lib/dpkg/status` lists exactly the installed packages (their
//!   control stanza with `Status: install ok installed`), `/var/lib/dpkg/info/<pkg>.list` (the
//!   package's paths as it ships them), `.md5sums` and `.conffiles` when the package has them —
//!   what syft and trivy read. Multi-Arch: same packages use `<pkg>:<arch>`, as dpkg does.
//! - **`/etc/passwd` and `/etc/group`**: root and the image user (`RootfsOptions::user`).
//! - **`update-ca-certificates`** when `ca-certificates` is installed: see [`super::cacerts`].
//! - **the dynamic loader**: no `/etc/ld.so.cache` is written. glibc's loader searches its
//!   built-in trusted directories when there is no cache, and Debian builds glibc with the
//!   multiarch directories (`/lib/<triplet>`, `/usr/lib/<triplet>`) among them, which is where
//!   every Debian library lives; `/etc/ld.so.conf` (from libc-bin, not installed) is written with
//!   its usual `include /etc/ld.so.conf.d/*.conf` so a later `ldconfig` behaves as on Debian.
//!   Libraries in a private directory that needs `ld.so.conf.d` would need a cache: not handled.
//! - `/tmp` (1777).

use super::cacerts;
use super::debfile::{DataKind, read_deb};
use super::error::DebError;
use super::fetch::LocalDeb;
use super::packages::Stanza;
use crate::oci::layer::{self, Entry, EntryKind};
use std::collections::BTreeMap;

/// Directories merged into `/usr` (Debian's usrmerge set).
const MERGED: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The user the image runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// How to assemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsOptions {
    /// The Debian architecture (for dpkg's `<pkg>:<arch>` info names).
    pub arch: String,
    /// The mtime of every entry (SOURCE_DATE_EPOCH).
    pub epoch: u64,
    /// `None` or uid 0: only root.
    pub user: Option<ImageUser>,
}

/// An assembled root filesystem, ready to become a layer.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub entries: Vec<Entry>,
    /// `(name, version)` of each installed package, sorted by name.
    pub installed: Vec<(String, String)>,
    pub epoch: u64,
}

impl Rootfs {
    /// The rootfs as a gzip-compressed layer in memory.
    pub fn layer(&self) -> Result<layer::Layer, DebError> {
        Ok(layer::build(&self.entries, self.epoch)?)
    }

    /// Streams the layer (gzip) into `out`.
    pub fn write_layer<W: std::io::Write>(
        &self,
        out: W,
    ) -> Result<(layer::LayerDigests, W), DebError> {
        // In-memory entries only (no host file to stream): nothing long enough to interrupt.
        Ok(layer::write(
            &self.entries,
            self.epoch,
            out,
            &crate::exec::Cancel::new(),
        )?)
    }
}

/// One path of the tree being built.
struct Node {
    kind: EntryKind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// The package that shipped it (or `shipit`).
    owner: String,
}

/// `lib/x86_64-linux-gnu/libc.so.6` → `usr/lib/x86_64-linux-gnu/libc.so.6`.
pub fn merged_usr(path: &str) -> String {
    let first = path.split('/').next().unwrap_or("");
    if MERGED.contains(&first) {
        format!("usr/{path}")
    } else {
        path.to_string()
    }
}

/// Lexically resolves `target` relative to the directory `dir` (both relative to the root).
fn lexical_join(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// The target a symlink needs after moving from `old` to `new` so that it reaches the same file.
fn relink(old: &str, new: &str, target: &str) -> String {
    if target.starts_with('/') || old == new {
        return target.to_string();
    }
    let meant = merged_usr(&lexical_join(parent(old), target));
    let reached = merged_usr(&lexical_join(parent(new), target));
    if meant == reached {
        target.to_string()
    } else {
        format!("/{}", lexical_join("", &meant))
    }
}

/// The dpkg info name of a package: `<pkg>:<arch>` for Multi-Arch: same, else `<pkg>`.
fn info_name(control: &Stanza, arch: &str) -> String {
    let name = control.get("Package").unwrap_or("");
    if control.get("Multi-Arch") == Some("same") {
        format!("{name}:{arch}")
    } else {
        name.to_string()
    }
}

/// Unions the packages' trees and adds what their scripts would have made (see the module doc).
pub fn assemble(debs: &[LocalDeb], opts: &RootfsOptions) -> Result<Rootfs, DebError> {
    let mut debs: Vec<&LocalDeb> = debs.iter().collect();
    debs.sort_by(|a, b| a.pkg.name.cmp(&b.pkg.name));
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    let mut status = String::new();
    let mut installed = Vec::new();
    let mut generated: Vec<Entry> = Vec::new();
    for deb in &debs {
        let what = format!(
            "{} {} ({})",
            deb.pkg.name,
            deb.pkg.version,
            deb.path.display()
        );
        let c = read_deb(&deb.path)?;
        let (name, version) = (
            c.control.get("Package").unwrap_or(""),
            c.control.get("Version").unwrap_or(""),
        );
        if name != deb.pkg.name || version != deb.pkg.version {
            return Err(DebError::format(
                &what,
                format!("its control file says {name} {version}"),
            ));
        }
        let mut list = String::from("/.\n");
        for e in &c.files {
            list.push('/');
            list.push_str(&e.path);
            list.push('\n');
            let path = merged_usr(&e.path);
            let kind = match &e.kind {
                DataKind::Dir => EntryKind::Dir,
                DataKind::File(b) => EntryKind::File(b.clone()),
                DataKind::Symlink(t) => EntryKind::Symlink(relink(&e.path, &path, t)),
            };
            add(
                &mut tree,
                path,
                Node {
                    kind,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    owner: deb.pkg.name.clone(),
                },
            )?;
        }
        let info = format!("var/lib/dpkg/info/{}", info_name(&c.control, &opts.arch));
        generated.push(Entry::file(format!("{info}.list"), list, 0o644));
        if let Some(m) = &c.md5sums {
            generated.push(Entry::file(format!("{info}.md5sums"), m.clone(), 0o644));
        }
        if let Some(cf) = &c.conffiles {
            generated.push(Entry::file(format!("{info}.conffiles"), cf.clone(), 0o644));
        }
        let mut stanza = Stanza {
            fields: vec![
                ("Package".into(), name.to_string()),
                ("Status".into(), "install ok installed".into()),
            ],
        };
        stanza.fields.extend(
            c.control
                .fields
                .iter()
                .filter(|(n, _)| {
                    !n.eq_ignore_ascii_case("Package") && !n.eq_ignore_ascii_case("Status")
                })
                .cloned(),
        );
        if !status.is_empty() {
            status.push('\n');
        }
        status.push_str(&stanza.render());
        installed.push((name.to_string(), version.to_string()));
    }
    // Merged /usr.
    for d in MERGED {
        let target = format!("usr/{d}");
        let used = tree
            .keys()
            .any(|k| k == &target || k.starts_with(&format!("{target}/")));
        if used || ["bin", "sbin", "lib"].contains(&d) {
            add_generated(&mut tree, &target, EntryKind::Dir, 0o755)?;
            add_generated(&mut tree, d, EntryKind::Symlink(target), 0o777)?;
        }
    }
    generated.push(Entry::file("var/lib/dpkg/status", status, 0o644));
    let (passwd, group) = passwd_group(opts.user.as_ref());
    generated.push(Entry::file("etc/passwd", passwd, 0o644));
    generated.push(Entry::file("etc/group", group, 0o644));
    if !tree.contains_key("etc/ld.so.conf") {
        generated.push(Entry::file(
            "etc/ld.so.conf",
            "include /etc/ld.so.conf.d/*.conf\n",
            0o644,
        ));
    }
    generated.push(Entry {
        path: "tmp".into(),
        kind: EntryKind::Dir,
        mode: 0o1777,
        uid: 0,
        gid: 0,
    });
    if installed.iter().any(|(n, _)| n == "ca-certificates") {
        let prefix = format!("{}/", cacerts::SHARE_DIR);
        let certs: BTreeMap<String, Vec<u8>> = tree
            .iter()
            .filter_map(|(k, n)| match (&n.kind, k.strip_prefix(&prefix)) {
                (EntryKind::File(b), Some(rel)) => Some((rel.to_string(), b.clone())),
                _ => None,
            })
            .collect();
        generated.extend(cacerts::update_ca_certificates(&certs)?);
    }
    for g in generated {
        add(
            &mut tree,
            g.path.clone(),
            Node {
                kind: g.kind,
                mode: g.mode,
                uid: g.uid,
                gid: g.gid,
                owner: "shipit".into(),
            },
        )?;
    }
    check_no_path_through_symlink(&tree)?;
    let entries = tree
        .into_iter()
        .map(|(path, n)| Entry {
            path,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
        })
        .collect();
    Ok(Rootfs {
        entries,
        installed,
        epoch: opts.epoch,
    })
}

fn add_generated(
    tree: &mut BTreeMap<String, Node>,
    path: &str,
    kind: EntryKind,
    mode: u32,
) -> Result<(), DebError> {
    add(
        tree,
        path.to_string(),
        Node {
            kind,
            mode,
            uid: 0,
            gid: 0,
            owner: "shipit".into(),
        },
    )
}

/// Adds a node; the same directory twice is fine (the first one's mode stays), the same file or
/// link twice only with the same content, anything else is a conflict naming both owners.
fn add(tree: &mut BTreeMap<String, Node>, path: String, node: Node) -> Result<(), DebError> {
    match tree.get(&path) {
        None => {
            tree.insert(path, node);
            Ok(())
        }
        Some(old) => match (&old.kind, &node.kind) {
            (EntryKind::Dir, EntryKind::Dir) => Ok(()),
            (a, b) if a == b && old.mode == node.mode => Ok(()),
            _ => Err(DebError::format(
                format!("/{path}"),
                format!(
                    "shipped differently by {} and {} (dpkg would refuse to install both)",
                    old.owner, node.owner
                ),
            )),
        },
    }
}

/// Refuses a tree where a path goes through a symlink (an extractor would follow it).
fn check_no_path_through_symlink(tree: &BTreeMap<String, Node>) -> Result<(), DebError> {
    for (path, node) in tree {
        let mut p = path.as_str();
        while let Some((up, _)) = p.rsplit_once('/') {
            p = up;
            if let Some(n) = tree.get(p)
                && !matches!(n.kind, EntryKind::Dir)
            {
                return Err(DebError::format(
                    format!("/{path}"),
                    format!(
                        "from {}, lies below /{p}, which {} ships as a file or symlink",
                        node.owner, n.owner
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `/etc/passwd` and `/etc/group`: root, and the image user when it is not root. The one
/// builder of these files: scratch and registry bases without them get the same lines
/// (`stage::image_rules::passwd_group`). The shell is `/sbin/nologin` (through the merged
/// `/usr` of a `deb:` base, Debian's `/usr/sbin/nologin` when `login` is installed).
pub fn passwd_group(user: Option<&ImageUser>) -> (String, String) {
    let mut passwd = String::from("root:x:0:0:root:/root:/sbin/nologin\n");
    let mut group = String::from("root:x:0:\n");
    if let Some(u) = user.filter(|u| u.uid != 0) {
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:/nonexistent:/sbin/nologin\n",
            u.name, u.uid, u.gid, u.name
        ));
        if u.gid != 0 {
            group.push_str(&format!("{}:x:{}:\n", u.name, u.gid));
        }
    }
    (passwd, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::debfile::tests::deb;
    use crate::deb::resolve::Pkg;
    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    #[test]
    fn merged_usr_moves_paths_and_keeps_links_working() {
        assert_eq!(
            merged_usr("lib64/ld-linux-x86-64.so.2"),
            "usr/lib64/ld-linux-x86-64.so.2"
        );
        assert_eq!(merged_usr("libexec/x"), "libexec/x");
        assert_eq!(merged_usr("etc/x"), "etc/x");
        // /lib/foo -> ../usr/lib/foo would point at itself after the move: made absolute.
        assert_eq!(
            relink("lib/foo", "usr/lib/foo", "../usr/lib/bar"),
            "/usr/lib/bar"
        );
        assert_eq!(relink("lib/x/a.so", "usr/lib/x/a.so", "a.so.1"), "a.so.1");
        assert_eq!(relink("sbin/x", "usr/sbin/x", "../bin/y"), "../bin/y");
    }

    fn local(
        dir: &std::path::Path,
        name: &str,
        data: &[(&str, tar::EntryType, &[u8], &str)],
    ) -> LocalDeb {
        let bytes = deb(name, data);
        let path = dir.join(format!("{name}.deb"));
        std::fs::write(&path, &bytes).unwrap();
        LocalDeb {
            pkg: Pkg {
                name: name.into(),
                version: "1.0".into(),
                architecture: "amd64".into(),
                filename: format!("pool/{name}.deb"),
                size: bytes.len() as u64,
                sha256: crate::deb::sha::sha256_hex(&bytes),
                depends: vec![],
            },
            path,
        }
    }

    fn opts() -> RootfsOptions {
        RootfsOptions {
            arch: "amd64".into(),
            epoch: 1_700_000_000,
            user: Some(ImageUser {
                name: "app".into(),
                uid: 10001,
                gid: 10001,
            }),
        }
    }

    #[test]
    fn a_rootfs_holds_the_union_the_dpkg_database_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let a = local(
            dir.path(),
            "pkg-a",
            &[
                ("./", D, b"", ""),
                ("./lib/", D, b"", ""),
                ("./lib/liba.so.1", F, b"A", ""),
                ("./usr/", D, b"", ""),
                ("./usr/share/", D, b"", ""),
            ],
        );
        let b = local(
            dir.path(),
            "pkg-b",
            &[
                ("./usr/", D, b"", ""),
                ("./usr/lib/", D, b"", ""),
                ("./usr/lib/liba.so", L, b"", "../../lib/liba.so.1"),
                ("./bin/", D, b"", ""),
                ("./bin/tool", F, b"T", ""),
            ],
        );
        let r = assemble(&[b.clone(), a.clone()], &opts()).unwrap();
        let get = |p: &str| {
            r.entries
                .iter()
                .find(|e| e.path == p)
                .map(|e| e.kind.clone())
        };
        assert_eq!(
            get("usr/lib/liba.so.1"),
            Some(EntryKind::File(b"A".to_vec()))
        );
        assert_eq!(get("usr/bin/tool"), Some(EntryKind::File(b"T".to_vec())));
        assert_eq!(get("lib"), Some(EntryKind::Symlink("usr/lib".into())));
        assert_eq!(get("bin"), Some(EntryKind::Symlink("usr/bin".into())));
        assert_eq!(get("lib64"), None);
        assert_eq!(
            get("usr/lib/liba.so"),
            Some(EntryKind::Symlink("../../lib/liba.so.1".into()))
        );
        let Some(EntryKind::File(status)) = get("var/lib/dpkg/status") else {
            panic!("no status")
        };
        let status = String::from_utf8(status).unwrap();
        assert!(
            status.starts_with("Package: pkg-a\nStatus: install ok installed\nVersion: 1.0\n"),
            "{status}"
        );
        assert!(status.contains("\n\nPackage: pkg-b\n"), "{status}");
        assert_eq!(
            get("var/lib/dpkg/info/pkg-b.list"),
            Some(EntryKind::File(
                b"/.\n/usr\n/usr/lib\n/usr/lib/liba.so\n/bin\n/bin/tool\n".to_vec()
            ))
        );
        assert!(get("var/lib/dpkg/info/pkg-a.md5sums").is_some());
        let Some(EntryKind::File(passwd)) = get("etc/passwd") else {
            panic!()
        };
        assert!(
            String::from_utf8(passwd)
                .unwrap()
                .contains("app:x:10001:10001:")
        );
        assert_eq!(
            r.installed,
            [
                ("pkg-a".into(), "1.0".into()),
                ("pkg-b".into(), "1.0".into())
            ]
        );
        // Same input, same bytes, whatever the order of the debs.
        let again = assemble(&[a, b], &opts()).unwrap();
        assert_eq!(r.layer().unwrap(), again.layer().unwrap());
    }

    #[test]
    fn conflicting_files_name_both_packages() {
        let dir = tempfile::tempdir().unwrap();
        let a = local(dir.path(), "pkg-a", &[("./etc/x", F, b"1", "")]);
        let b = local(dir.path(), "pkg-b", &[("./etc/x", F, b"2", "")]);
        let e = assemble(&[a, b], &opts()).unwrap_err().to_string();
        assert!(
            e.contains("/etc/x") && e.contains("pkg-a") && e.contains("pkg-b"),
            "{e}"
        );
        let c = local(dir.path(), "pkg-c", &[("./etc/passwd", F, b"evil", "")]);
        let e = assemble(&[c], &opts()).unwrap_err().to_string();
        assert!(e.contains("/etc/passwd") && e.contains("shipit"), "{e}");
        let d = local(
            dir.path(),
            "pkg-d",
            &[("./etc/link", L, b"", "/"), ("./etc/link/x", F, b"1", "")],
        );
        let e = assemble(&[d], &opts()).unwrap_err().to_string();
        assert!(e.contains("/etc/link"), "{e}");
    }

    #[test]
    fn a_deb_that_lies_about_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = local(dir.path(), "pkg-a", &[("./etc/x", F, b"1", "")]);
        a.pkg.name = "pkg-z".into();
        let e = assemble(&[a], &opts()).unwrap_err().to_string();
        assert!(e.contains("control file says pkg-a"), "{e}");
    }
}
