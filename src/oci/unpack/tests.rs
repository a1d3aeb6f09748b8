//! Malicious-layer suite (reliab.md §2.7 M1..M30) and positive/differential checks.
//!
//! Every fixture is built here from raw tar headers. Each refusal test snapshots a sentinel tree
//! next to the rootfs parent (files, a directory, symlinks, modes, sizes, contents) and checks
//! it is byte-for-byte unchanged afterwards and that the temporary rootfs is gone.

use super::*;
use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

// ---- tar building ---------------------------------------------------------------------------

fn header(name: &[u8], kind: u8, link: &[u8], mode: u32, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let b = h.as_mut_bytes();
        let n = name.len().min(100);
        b[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        b[157..157 + l].copy_from_slice(&link[..l]);
    }
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    out
}

#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn raw(mut self, hdr: [u8; 512], data: &[u8]) -> Self {
        self.0.extend_from_slice(&hdr);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn entry(self, name: &[u8], kind: u8, link: &[u8], mode: u32, data: &[u8]) -> Self {
        let h = header(name, kind, link, mode, data.len() as u64);
        self.raw(h, data)
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name.as_bytes(), b'0', b"", 0o644, data)
    }
    fn file_mode(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.entry(name.as_bytes(), b'0', b"", mode, data)
    }
    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(name.as_bytes(), b'5', b"", mode, b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'2', target.as_bytes(), 0o777, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'1', target.as_bytes(), 0o644, b"")
    }
    /// A PAX extended header describing the next entry.
    fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}=").len() + v.len() + 1;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry(b"PaxHeaders/x", b'x', b"", 0o644, &body)
    }
    /// A GNU long-name (`L`) or long-link (`K`) header for the next entry.
    fn gnu_long(self, kind: u8, value: &[u8]) -> Self {
        let mut v = value.to_vec();
        v.push(0);
        self.entry(b"././@LongLink", kind, b"", 0o644, &v)
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), GzLevel::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---- fixture: a sentinel tree next to the rootfs parent -------------------------------------

struct Fixture {
    base: tempfile::TempDir,
    blobs: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let p = base.path();
        std::fs::create_dir_all(p.join("dest")).unwrap();
        std::fs::create_dir_all(p.join("blobs")).unwrap();
        let s = p.join("sentinel");
        std::fs::create_dir_all(s.join("dir/sub")).unwrap();
        std::fs::write(s.join("secret"), b"top secret").unwrap();
        std::fs::set_permissions(s.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(s.join("dir/file"), b"data").unwrap();
        std::fs::set_permissions(s.join("dir"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("secret", s.join("link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", s.join("dangling")).unwrap();
        Fixture { base, blobs: 0 }
    }
    fn path(&self) -> &Path {
        self.base.path()
    }
    /// Absolute path of something in the sentinel tree, as a string for tar link targets.
    fn sentinel(&self, rel: &str) -> String {
        self.path().join("sentinel").join(rel).display().to_string()
    }
    fn dest(&self) -> PathBuf {
        self.path().join("dest")
    }
    /// Stores a tar as a gzip blob and describes it with correct digests.
    fn layer(&mut self, tar: &[u8]) -> LayerInput {
        self.blob(gzip(tar), media::OCI_LAYER_GZIP, Some(Digest::of(tar)))
    }
    fn blob(&mut self, bytes: Vec<u8>, media_type: &str, diff_id: Option<Digest>) -> LayerInput {
        self.blobs += 1;
        let path = self.path().join("blobs").join(self.blobs.to_string());
        std::fs::write(&path, &bytes).unwrap();
        LayerInput {
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            media_type: media_type.to_string(),
            blob: path,
            diff_id,
        }
    }
    fn opts(&self, limits: Limits) -> UnpackOptions {
        UnpackOptions {
            parent: Some(self.dest()),
            limits,
            ..UnpackOptions::default()
        }
    }
    /// Runs an unpack that must fail; checks nothing outside changed and the rootfs is gone.
    fn refuse_with(&mut self, tars: &[Vec<u8>], limits: Limits) -> UnpackError {
        let layers: Vec<LayerInput> = tars.iter().map(|t| self.layer(t)).collect();
        self.refuse_layers(&layers, limits)
    }
    fn refuse(&mut self, tars: &[Vec<u8>]) -> UnpackError {
        self.refuse_with(tars, Limits::default())
    }
    fn refuse_layers(&mut self, layers: &[LayerInput], limits: Limits) -> UnpackError {
        let before = listing(self.path(), None);
        let err = unpack_image(layers, &self.opts(limits)).expect_err("unpack must be refused");
        assert_eq!(
            listing(self.path(), None),
            before,
            "something outside changed: {err}"
        );
        assert_eq!(
            std::fs::read_dir(self.dest()).unwrap().count(),
            0,
            "temporary rootfs survived the error {err}"
        );
        err
    }
    /// Runs an unpack that must succeed; checks nothing outside the rootfs changed.
    fn accept(&mut self, tars: &[Vec<u8>]) -> Rootfs {
        let layers: Vec<LayerInput> = tars.iter().map(|t| self.layer(t)).collect();
        let skip = self.dest();
        let before = listing(self.path(), Some(&skip));
        let rootfs = unpack_image(&layers, &self.opts(Limits::default())).expect("unpack");
        assert_eq!(listing(self.path(), Some(&skip)), before);
        let mode = std::fs::metadata(rootfs.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "rootfs must be private");
        rootfs
    }
}

/// Full listing: path -> "type mode size target/content-digest mtime".
fn listing(root: &Path, skip: Option<&Path>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if Some(p.as_path()) == skip {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("l {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "d".to_string()
            } else {
                format!("f {}", Digest::of(&std::fs::read(&p).unwrap()))
            };
            // The rootfs parent's own mtime changes when a rootfs comes and goes.
            let mtime = if rel == "dest" {
                String::new()
            } else {
                format!("{}.{}", m.mtime(), m.mtime_nsec())
            };
            let line = format!("{what} {:o} {} {mtime}", m.mode(), m.len());
            out.insert(rel, line);
        }
    }
    out
}

/// The merged tree as "path -> type mode content" for exact comparisons.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (path, _) in listing(root, None) {
        let p = root.join(&path);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let v = if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            format!("dir {:o}", m.mode() & 0o7777)
        } else {
            let data = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            format!("file {:o} {data}", m.mode() & 0o7777)
        };
        out.insert(path, v);
    }
    out
}

fn rule_of(err: &UnpackError) -> &Rule {
    match err {
        UnpackError::Entry { rule, .. } => rule,
        other => panic!("expected an entry error, got {other}"),
    }
}

fn problem_of(err: &UnpackError) -> &LayerProblem {
    match err {
        UnpackError::Layer { problem, .. } => problem,
        other => panic!("expected a layer error, got {other}"),
    }
}

fn assert_msg(err: &UnpackError, parts: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.starts_with("layer sha256:"),
        "no layer digest in: {msg}"
    );
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
}

// ---- M1..M30 ----------------------------------------------------------------------------------

#[test]
fn m01_dotdot_escape_is_refused() {
    let mut fx = Fixture::new();
    for name in ["../../sentinel/evil", "a/../../sentinel/evil", "./../x"] {
        let err = fx.refuse(&[Tar::default().file("ok", b"1").file(name, b"x").end()]);
        assert!(matches!(rule_of(&err), Rule::DotDot), "{err}");
        assert_msg(&err, &[name, "\"..\" component"]);
    }
}

#[test]
fn m02_absolute_path_is_refused() {
    let mut fx = Fixture::new();
    let abs = fx.sentinel("evil");
    for name in ["/etc/evil", abs.as_str()] {
        let err = fx.refuse(&[Tar::default().file(name, b"x").end()]);
        assert!(matches!(rule_of(&err), Rule::Absolute), "{err}");
        assert_msg(&err, &[name, "absolute path"]);
    }
}

#[test]
fn m03_symlink_named_root_is_refused() {
    let mut fx = Fixture::new();
    let target = fx.sentinel("");
    for name in [".", "./", "a/.."] {
        let err = fx.refuse(&[Tar::default().symlink(name, &target).file("x", b"1").end()]);
        let rule = rule_of(&err);
        assert!(
            matches!(rule, Rule::NamesRoot | Rule::DotDot),
            "{name}: {err}"
        );
    }
    let err = fx.refuse(&[Tar::default().symlink("/", &target).end()]);
    assert!(matches!(rule_of(&err), Rule::Absolute), "{err}");
    let err = fx.refuse(&[Tar::default().symlink("./", &target).end()]);
    assert_msg(&err, &["image root itself"]);
    // A later layer cannot replace the root either.
    let err = fx.refuse(&[
        Tar::default().file("a", b"1").end(),
        Tar::default().symlink(".", &target).end(),
    ]);
    assert!(matches!(rule_of(&err), Rule::NamesRoot));
}

#[test]
fn m03_root_directory_entry_is_neutralised() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&[Tar::default().dir("./", 0o777).file("./a", b"1").end()]);
    assert_eq!(rootfs.report().neutralised.len(), 1);
    assert_eq!(
        rootfs.report().neutralised[0].action,
        Neutralisation::SkippedRootEntry
    );
    let mode = std::fs::metadata(rootfs.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn m04_write_through_symlink_to_root_is_refused() {
    let mut fx = Fixture::new();
    let via = format!("lnk{}/evil", fx.sentinel(""));
    let err = fx.refuse(&[Tar::default().symlink("lnk", "/").file(&via, b"x").end()]);
    assert!(matches!(rule_of(&err), Rule::LeavesRoot { .. }), "{err}");
    assert_msg(
        &err,
        &["symlink \"lnk\" -> \"/\"", "outside the image root"],
    );
    // Also across layers.
    let err = fx.refuse(&[
        Tar::default().symlink("lnk", "/").end(),
        Tar::default()
            .dir(&format!("lnk{}/newdir", fx.sentinel("")), 0o755)
            .end(),
    ]);
    assert!(matches!(rule_of(&err), Rule::LeavesRoot { .. }), "{err}");
}

#[test]
fn m05_write_through_climbing_symlink_is_refused() {
    let mut fx = Fixture::new();
    for target in ["../../..", "../../sentinel", "a/../../.."] {
        let err = fx.refuse(&[Tar::default()
            .dir("a", 0o755)
            .symlink("lnk", target)
            .file("lnk/evil", b"x")
            .end()]);
        assert!(matches!(rule_of(&err), Rule::LeavesRoot { .. }), "{err}");
        assert_msg(&err, &["lnk/evil", "outside the image root"]);
    }
    // A relative in-root symlink is followed normally.
    let rootfs = fx.accept(&[Tar::default()
        .dir("real", 0o755)
        .dir("d", 0o755)
        .symlink("d/lnk", "../real")
        .file("d/lnk/f", b"in")
        .end()]);
    assert_eq!(std::fs::read(rootfs.path().join("real/f")).unwrap(), b"in");
}

#[test]
fn m06_directory_over_escaping_symlink_never_chmods_target() {
    let mut fx = Fixture::new();
    let target = fx.sentinel("dir");
    let err = fx.refuse(&[Tar::default()
        .dir("dir", 0o755)
        .symlink("dir/lnk", &target)
        .dir("dir/lnk", 0o777)
        .end()]);
    assert!(matches!(rule_of(&err), Rule::Duplicate), "{err}");
    // Across layers it is a type change: the link is replaced by a real directory.
    let rootfs = fx.accept(&[
        Tar::default()
            .dir("dir", 0o755)
            .symlink("dir/lnk", &target)
            .end(),
        Tar::default().dir("dir/lnk", 0o777).end(),
    ]);
    let m = std::fs::symlink_metadata(rootfs.path().join("dir/lnk")).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o755);
}

#[test]
fn m07_duplicate_entry_is_refused() {
    let mut fx = Fixture::new();
    let secret = fx.sentinel("secret");
    let err = fx.refuse(&[Tar::default()
        .file("a", b"1")
        .symlink("a", &secret)
        .file("a", b"pwned")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::Duplicate), "{err}");
    assert_msg(&err, &["\"a\"", "duplicate path"]);
    let err = fx.refuse(&[Tar::default().file("x/a", b"1").file("./x//a", b"2").end()]);
    assert!(matches!(rule_of(&err), Rule::Duplicate), "{err}");
}

#[test]
fn m08_hardlink_to_absolute_path_is_refused() {
    let mut fx = Fixture::new();
    let secret = fx.sentinel("secret");
    for target in [secret.as_str(), "/etc/shadow"] {
        let err = fx.refuse(&[Tar::default().hardlink("h", target).end()]);
        assert!(
            matches!(rule_of(&err), Rule::HardlinkTarget { .. }),
            "{err}"
        );
        assert_msg(&err, &["hardlink target", "absolute path"]);
    }
    // Through an escaping symlink.
    let dir = fx.sentinel("");
    let err = fx.refuse(&[Tar::default()
        .symlink("s", &dir)
        .hardlink("h", "s/secret")
        .end()]);
    assert_msg(
        &err,
        &["hardlink target \"s/secret\"", "outside the image root"],
    );
}

#[test]
fn m09_hardlink_with_dotdot_is_refused() {
    let mut fx = Fixture::new();
    let err = fx.refuse(&[Tar::default().hardlink("h", "../../sentinel/secret").end()]);
    assert!(
        matches!(rule_of(&err), Rule::HardlinkTarget { .. }),
        "{err}"
    );
    assert_msg(&err, &["hardlink target", "\"..\" component"]);
}

#[test]
fn m10_hardlink_to_missing_or_later_entry_is_refused() {
    let mut fx = Fixture::new();
    let err = fx.refuse(&[Tar::default()
        .hardlink("h", "later")
        .file("later", b"1")
        .end()]);
    assert!(
        matches!(rule_of(&err), Rule::HardlinkTarget { .. }),
        "{err}"
    );
    assert_msg(
        &err,
        &["not a previously extracted regular file", "not found"],
    );
}

#[test]
fn m11_hardlink_to_directory_or_symlink_is_refused() {
    let mut fx = Fixture::new();
    let err = fx.refuse(&[Tar::default().dir("d", 0o755).hardlink("h", "d").end()]);
    assert_msg(&err, &["it is a directory"]);
    let err = fx.refuse(&[Tar::default().symlink("s", "x").hardlink("h", "s").end()]);
    assert_msg(&err, &["it is a symlink"]);
    let err = fx.refuse(&[Tar::default().file("f", b"1").hardlink("f", "f").end()]);
    assert!(matches!(
        rule_of(&err),
        Rule::Duplicate | Rule::HardlinkTarget { .. }
    ));
}

#[test]
fn m12_devices_and_fifos_are_skipped_and_reported() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&[Tar::default()
        .dir("dev", 0o755)
        .entry(b"dev/sda", b'3', b"", 0o660, b"")
        .entry(b"dev/loop0", b'4', b"", 0o660, b"")
        .entry(b"dev/fifo", b'6', b"", 0o644, b"")
        .file("ok", b"1")
        .end()]);
    let kinds: Vec<_> = rootfs
        .report()
        .neutralised
        .iter()
        .map(|n| (n.entry.clone(), n.action.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "dev/sda".into(),
                Neutralisation::SkippedDevice {
                    kind: "character device"
                }
            ),
            (
                "dev/loop0".into(),
                Neutralisation::SkippedDevice {
                    kind: "block device"
                }
            ),
            (
                "dev/fifo".into(),
                Neutralisation::SkippedDevice { kind: "FIFO" }
            ),
        ]
    );
    assert_eq!(
        std::fs::read_dir(rootfs.path().join("dev"))
            .unwrap()
            .count(),
        0
    );
    assert!(
        rootfs.report().neutralised[0]
            .to_string()
            .contains("never created")
    );
}

#[test]
fn m13_special_mode_bits_are_stripped() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&[Tar::default()
        .file_mode("su", 0o4755, b"x")
        .dir("shared", 0o2775)
        .dir("tmp", 0o1777)
        .file_mode("ww", 0o666, b"x")
        .file_mode("plain", 0o755, b"x")
        .end()]);
    let mode = |p: &str| {
        std::fs::symlink_metadata(rootfs.path().join(p))
            .unwrap()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("su"), 0o755);
    assert_eq!(mode("shared"), 0o755);
    assert_eq!(mode("tmp"), 0o755);
    assert_eq!(mode("ww"), 0o644);
    assert_eq!(mode("plain"), 0o755);
    let stripped: Vec<_> = rootfs
        .report()
        .neutralised
        .iter()
        .map(|n| n.entry.as_str())
        .collect();
    assert_eq!(stripped, ["su", "shared", "tmp", "ww"]);
    assert_eq!(
        rootfs.report().neutralised[0].action,
        Neutralisation::StrippedModeBits {
            from: 0o4755,
            to: 0o755
        }
    );
}

#[test]
fn m14_xattrs_are_never_restored() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&[Tar::default()
        .pax(&[("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\xff")])
        .file("ping", b"elf")
        .end()]);
    assert_eq!(
        rootfs.report().neutralised[0].action,
        Neutralisation::DroppedXattrs {
            keys: vec!["security.capability".into()]
        }
    );
    let p = CString::new(rootfs.path().join("ping").as_os_str().as_encoded_bytes()).unwrap();
    let name = CString::new("security.capability").unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, -1, "xattr was restored");
}

#[test]
fn m15_whiteout_without_basename_is_refused() {
    let mut fx = Fixture::new();
    for name in [".wh.", "etc/.wh."] {
        let err = fx.refuse(&[
            Tar::default().dir("etc", 0o755).end(),
            Tar::default().file(name, b"").end(),
        ]);
        assert!(matches!(rule_of(&err), Rule::WhiteoutNoName), "{err}");
        assert_msg(&err, &["no basename"]);
    }
}

#[test]
fn m16_whiteout_traversal_is_refused() {
    let mut fx = Fixture::new();
    let lower = Tar::default()
        .dir("a", 0o755)
        .file("a/f", b"1")
        .file("top", b"1")
        .end();
    for name in ["a/.wh...", "a/.wh.."] {
        let err = fx.refuse(&[lower.clone(), Tar::default().file(name, b"").end()]);
        assert!(
            matches!(rule_of(&err), Rule::WhiteoutTraversal { .. }),
            "{err}"
        );
        assert_msg(&err, &["would delete outside its directory"]);
    }
    let err = fx.refuse(&[lower.clone(), Tar::default().file(".wh.../x", b"").end()]);
    assert!(matches!(rule_of(&err), Rule::WhiteoutInPath), "{err}");
    let err = fx.refuse(&[lower, Tar::default().file("a/.wh.../../../x", b"").end()]);
    assert!(matches!(rule_of(&err), Rule::DotDot), "{err}");
}

#[test]
fn m17_opaque_marker_after_siblings_only_hides_lower_layers() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&[
        Tar::default()
            .dir("d", 0o755)
            .file("d/old", b"lower")
            .dir("d/sub", 0o755)
            .file("d/sub/lower", b"lower")
            .file("keep", b"k")
            .end(),
        Tar::default()
            .file("d/new", b"upper")
            .file("d/sub/upper", b"upper")
            .file("d/.wh..wh..opq", b"")
            .end(),
    ]);
    let t = tree(rootfs.path());
    let names: Vec<_> = t.keys().map(String::as_str).collect();
    assert_eq!(names, ["d", "d/new", "d/sub", "d/sub/upper", "keep"]);
    // An explicit whiteout of a path this same layer created keeps the new version.
    let rootfs = fx.accept(&[
        Tar::default()
            .file("x", b"lower")
            .dir("y", 0o755)
            .file("y/l", b"1")
            .end(),
        Tar::default()
            .file("x", b"upper")
            .file(".wh.x", b"")
            .file("y/u", b"2")
            .file(".wh.y", b"")
            .end(),
    ]);
    let t = tree(rootfs.path());
    assert_eq!(t["x"], "file 644 upper");
    assert!(t.contains_key("y/u") && !t.contains_key("y/l"), "{t:?}");
}

#[test]
fn m18_whiteout_of_escaping_symlink_removes_only_the_link() {
    let mut fx = Fixture::new();
    let (secret, dir) = (fx.sentinel("secret"), fx.sentinel("dir"));
    let rootfs = fx.accept(&[
        Tar::default()
            .symlink("lnk", &secret)
            .symlink("lnkdir", &dir)
            .end(),
        Tar::default()
            .file(".wh.lnk", b"")
            .file(".wh.lnkdir", b"")
            .end(),
    ]);
    assert!(tree(rootfs.path()).is_empty());
    assert_eq!(rootfs.report().whiteouts, 2);
    drop(rootfs);
    // Whiteout *through* an escaping symlink is refused, not followed.
    let err = fx.refuse(&[
        Tar::default().symlink("lnkdir", &dir).end(),
        Tar::default().file("lnkdir/.wh.file", b"").end(),
    ]);
    assert!(matches!(rule_of(&err), Rule::LeavesRoot { .. }), "{err}");
    // An opaque marker inside a symlink is a no-op: the link is not a directory to empty, and
    // the sentinel directory it points at keeps its contents (checked by `accept`).
    let rootfs = fx.accept(&[
        Tar::default().symlink("lnkdir", &dir).end(),
        Tar::default().file("lnkdir/.wh..wh..opq", b"").end(),
    ]);
    assert_eq!(tree(rootfs.path())["lnkdir"], format!("-> {dir}"));
}

#[test]
fn m19_gzip_bomb_fails_fast_at_the_limit() {
    let mut fx = Fixture::new();
    // 64 MiB of zeros in one file: ~64 KiB compressed, streamed without a 64 MiB buffer.
    let size: u64 = 64 << 20;
    let mut enc = GzEncoder::new(Vec::new(), GzLevel::fast());
    let hdr = header(b"zeros", b'0', b"", 0o644, size);
    enc.write_all(&hdr).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&chunk).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let layer = fx.blob(gz, media::OCI_LAYER_GZIP, None);
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let start = std::time::Instant::now();
    let err = fx.refuse_layers(&[layer], limits);
    assert!(matches!(problem_of(&err), LayerProblem::TotalLimit { max } if *max == 1 << 20));
    assert_msg(&err, &["decompression bomb", "max_total_bytes"]);
    // Generous bound: it stops after ~1 MiB instead of inflating 64 MiB.
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // The single-file cap trips before any data is read.
    let mut fx = Fixture::new();
    let limits = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let err = fx.refuse_with(&[Tar::default().file("big", &[7u8; 2000]).end()], limits);
    assert!(matches!(
        rule_of(&err),
        Rule::FileTooLarge {
            size: 2000,
            max: 1000
        }
    ));
}

#[test]
fn m20_entry_count_bomb_is_refused() {
    let mut fx = Fixture::new();
    let mut t = Tar::default();
    for i in 0..2000 {
        t = t.file(&format!("f{i}"), b"");
    }
    let limits = Limits {
        max_entries: 100,
        ..Limits::default()
    };
    let err = fx.refuse_with(&[t.end()], limits);
    assert!(
        matches!(rule_of(&err), Rule::TooManyEntries { max: 100 }),
        "{err}"
    );
    assert_msg(&err, &["f100", "entry-count limit"]);
}

#[test]
fn m21_deep_and_long_paths_are_refused() {
    let mut fx = Fixture::new();
    let deep = "a/".repeat(10_000) + "f";
    let err = fx.refuse(&[Tar::default()
        .gnu_long(b'L', deep.as_bytes())
        .file("x", b"1")
        .end()]);
    assert!(
        matches!(
            rule_of(&err),
            Rule::PathTooLong {
                len: 20001,
                max: 4096
            }
        ),
        "{err}"
    );
    let deep = "a/".repeat(200) + "f";
    let err = fx.refuse(&[Tar::default()
        .gnu_long(b'L', deep.as_bytes())
        .file("x", b"1")
        .end()]);
    assert!(
        matches!(
            rule_of(&err),
            Rule::TooDeep {
                depth: 201,
                max: 128
            }
        ),
        "{err}"
    );
    let long = "n".repeat(300);
    let err = fx.refuse(&[Tar::default()
        .gnu_long(b'L', long.as_bytes())
        .file("x", b"1")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::ComponentTooLong), "{err}");
}

#[test]
fn m22_pax_size_disagreeing_with_header_is_refused() {
    let mut fx = Fixture::new();
    // ustar says 512 bytes (hiding an entry in the data), PAX says 0.
    let hidden = Tar::default().file("../../sentinel/evil", b"x").0;
    let err = fx.refuse(&[Tar::default()
        .pax(&[("size", b"0")])
        .entry(b"a", b'0', b"", 0o644, &hidden[..512])
        .end()]);
    assert!(
        matches!(
            rule_of(&err),
            Rule::PaxSize {
                header: 512,
                pax: 0
            }
        ),
        "{err}"
    );
    assert_msg(&err, &["parser-differential"]);
    // ustar size 0, PAX size 1024 (the TARmageddon shape).
    let mut t = Tar::default().pax(&[("size", b"1024")]);
    t.0.extend_from_slice(&header(b"a", b'0', b"", 0o644, 0));
    t.0.extend_from_slice(&hidden);
    let err = fx.refuse(&[t.end()]);
    assert!(
        matches!(
            rule_of(&err),
            Rule::PaxSize {
                header: 0,
                pax: 1024
            }
        ),
        "{err}"
    );
}

#[test]
fn m23_oversized_pax_header_is_refused() {
    let mut fx = Fixture::new();
    let big = vec![b'v'; 200_000];
    let limits = Limits {
        max_header_bytes: 64 << 10,
        ..Limits::default()
    };
    let err = fx.refuse_with(
        &[Tar::default()
            .pax(&[("comment", &big)])
            .file("a", b"1")
            .end()],
        limits,
    );
    assert!(
        matches!(problem_of(&err), LayerProblem::HeaderLimit { .. }),
        "{err}"
    );
    let err = fx.refuse_with(
        &[Tar::default().gnu_long(b'L', &big).file("a", b"1").end()],
        Limits {
            max_header_bytes: 64 << 10,
            ..Limits::default()
        },
    );
    assert!(
        matches!(problem_of(&err), LayerProblem::HeaderLimit { .. }),
        "{err}"
    );
}

#[test]
fn m24_gnu_long_names_with_dotdot_are_refused() {
    let mut fx = Fixture::new();
    let name = format!("{}/../../../../sentinel/evil", "x".repeat(120));
    let err = fx.refuse(&[Tar::default()
        .gnu_long(b'L', name.as_bytes())
        .file("short", b"x")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::DotDot), "{err}");
    assert_msg(&err, &[&name]);
    let link = format!("{}/../../../sentinel/secret", "y".repeat(120));
    let err = fx.refuse(&[Tar::default()
        .file("t", b"1")
        .gnu_long(b'K', link.as_bytes())
        .hardlink("h", "t")
        .end()]);
    assert!(
        matches!(rule_of(&err), Rule::HardlinkTarget { .. }),
        "{err}"
    );
    // PAX path / linkpath get the same treatment.
    let err = fx.refuse(&[Tar::default()
        .pax(&[("path", b"../evil")])
        .file("ok", b"x")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::DotDot), "{err}");
}

#[test]
fn m25_truncated_and_corrupt_archives_are_refused() {
    let mut fx = Fixture::new();
    let good = Tar::default().file("a", &[1u8; 3000]).file("b", b"2").end();
    // Plain tar cut in the middle of a's data.
    let cut = good[..512 + 1000].to_vec();
    let layer = fx.blob(cut, media::OCI_LAYER_TAR, None);
    let err = fx.refuse_layers(&[layer], Limits::default());
    assert!(matches!(rule_of(&err), Rule::Truncated { .. }), "{err}");
    assert_msg(&err, &["\"a\"", "truncated"]);
    // Gzip stream cut short.
    let gz = gzip(&good);
    let layer = fx.blob(gz[..gz.len() / 2].to_vec(), media::OCI_LAYER_GZIP, None);
    let err = fx.refuse_layers(&[layer], Limits::default());
    assert!(err.to_string().contains("truncated"), "{err}");
    // Bad header checksum.
    let mut bad = good.clone();
    bad[0] = b'z';
    let layer = fx.blob(bad, media::OCI_LAYER_TAR, None);
    let err = fx.refuse_layers(&[layer], Limits::default());
    assert!(
        matches!(problem_of(&err), LayerProblem::Corrupt(_)),
        "{err}"
    );
    assert_msg(&err, &["checksum"]);
    // Not gzip at all.
    let layer = fx.blob(good, media::OCI_LAYER_GZIP, None);
    let err = fx.refuse_layers(&[layer], Limits::default());
    assert!(
        matches!(problem_of(&err), LayerProblem::Corrupt(_)),
        "{err}"
    );
}

#[test]
fn m26_digest_size_and_diff_id_mismatches_are_refused() {
    let mut fx = Fixture::new();
    let tar = Tar::default().file("a", b"1").end();
    let good = fx.layer(&tar);
    let mut wrong_digest = good.clone();
    wrong_digest.digest = Digest::of(b"something else");
    let err = fx.refuse_layers(&[wrong_digest], Limits::default());
    assert!(
        matches!(problem_of(&err), LayerProblem::Digest { .. }),
        "{err}"
    );
    assert_msg(&err, &["blob digest mismatch"]);
    let mut wrong_size = good.clone();
    wrong_size.size += 1;
    let err = fx.refuse_layers(&[wrong_size], Limits::default());
    assert!(
        matches!(problem_of(&err), LayerProblem::Size { .. }),
        "{err}"
    );
    assert_msg(&err, &["blob size mismatch"]);
    let mut wrong_diff = good.clone();
    wrong_diff.diff_id = Some(Digest::of(b"other tar"));
    let err = fx.refuse_layers(&[wrong_diff], Limits::default());
    assert!(
        matches!(problem_of(&err), LayerProblem::DiffId { .. }),
        "{err}"
    );
    assert_msg(&err, &["diff_id mismatch", Digest::of(&tar).as_str()]);
    // Media types.
    let mut zstd = good.clone();
    zstd.media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
    assert!(matches!(
        problem_of(&fx.refuse_layers(&[zstd], Limits::default())),
        LayerProblem::Zstd(_)
    ));
    let mut unknown = good.clone();
    unknown.media_type = "text/plain".into();
    assert!(matches!(
        problem_of(&fx.refuse_layers(&[unknown], Limits::default())),
        LayerProblem::MediaType(_)
    ));
    // A bad second layer removes the first layer's tree too.
    let err = fx.refuse_layers(
        &[good.clone(), {
            let mut l = good;
            l.size -= 1;
            l
        }],
        Limits::default(),
    );
    assert!(matches!(problem_of(&err), LayerProblem::Size { .. }));
}

#[test]
fn m27_ambiguous_or_mismatched_manifest_documents_are_refused() {
    let both = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[],"manifests":[]}"#;
    assert_eq!(
        check_manifest_document(both, media::OCI_MANIFEST),
        Err(ManifestError::Ambiguous)
    );
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    assert_eq!(
        check_manifest_document(manifest, media::OCI_MANIFEST),
        Ok(())
    );
    let err = check_manifest_document(manifest, media::OCI_INDEX).unwrap_err();
    assert!(matches!(err, ManifestError::MediaTypeMismatch { .. }));
    assert!(err.to_string().contains("disagrees"));
    let untyped_index = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert_eq!(
        check_manifest_document(untyped_index, media::OCI_INDEX),
        Ok(())
    );
    assert!(matches!(
        check_manifest_document(untyped_index, media::OCI_MANIFEST),
        Err(ManifestError::NotAManifest { .. })
    ));
    assert!(matches!(
        check_manifest_document(b"[1]", media::OCI_INDEX),
        Err(ManifestError::NotJson(_))
    ));
}

#[test]
fn m28_bad_digest_strings_are_refused_at_input() {
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for bad in [
        "sha256:../../x".to_string(),
        format!("sha512:{hex}{hex}"),
        format!("sha256:{}", hex.to_uppercase()),
    ] {
        let err =
            LayerInput::parse(&bad, 1, media::OCI_LAYER_GZIP, "/nonexistent", None).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::Descriptor {
                    field: "digest",
                    ..
                }
            ),
            "{err}"
        );
        let good = format!("sha256:{hex}");
        let err = LayerInput::parse(&good, 1, media::OCI_LAYER_GZIP, "/x", Some(&bad)).unwrap_err();
        assert!(err.to_string().contains("diff_id is invalid"), "{err}");
    }
    assert!(
        LayerInput::parse(
            &format!("sha256:{hex}"),
            0,
            media::OCI_LAYER_TAR,
            "/x",
            None
        )
        .is_ok()
    );
}

#[test]
fn m29_reads_follow_symlinks_in_root_only() {
    let mut fx = Fixture::new();
    let secret = fx.sentinel("secret");
    let rootfs = fx.accept(&[Tar::default()
        .dir("etc", 0o755)
        .symlink("etc/passwd", "/etc/shadow")
        .symlink("etc/hosts", &secret)
        .symlink("etc/climb", "../../../../../../sentinel/secret")
        .file("etc/shadow", b"root:*:image")
        .symlink("loop", "loop")
        .symlink("etc/dir", "/etc")
        .file("big", &[0u8; 100])
        .end()]);
    assert_eq!(rootfs.read("/etc/passwd", 1024).unwrap(), b"root:*:image");
    assert_eq!(
        rootfs.resolve("/etc/passwd").unwrap(),
        rootfs.path().join("etc/shadow")
    );
    for (path, want) in [
        ("/etc/hosts", "not found"),
        ("etc/climb", "not found"),
        ("/loop", "more than 40 symlinks"),
        ("/etc/dir", "not a regular file (it is a directory)"),
        ("/big", "larger than the 99-byte cap"),
        ("/etc/shadow/x", "is not a directory"),
    ] {
        let err = rootfs.read(path, 99).unwrap_err();
        assert!(err.to_string().contains(want), "{path}: {err}");
    }
    // A FIFO is refused without opening it (no hang).
    let fifo = rootfs.path().join("fifo");
    let c = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = rootfs.read("fifo", 10).unwrap_err();
    assert!(
        matches!(err.why, ReadProblem::NotRegular { kind: "FIFO" }),
        "{err}"
    );
}

#[test]
fn m30_nul_non_utf8_and_empty_names_are_refused() {
    let mut fx = Fixture::new();
    let err = fx.refuse(&[Tar::default()
        .entry(b"bad\xffname", b'0', b"", 0o644, b"x")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::NonUtf8), "{err}");
    assert_msg(&err, &["bad\\xffname", "not valid UTF-8"]);
    let err = fx.refuse(&[Tar::default()
        .pax(&[("path", b"a\0b")])
        .file("ok", b"x")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::Nul), "{err}");
    assert_msg(&err, &["a\\0b"]);
    let err = fx.refuse(&[Tar::default().entry(b"", b'0', b"", 0o644, b"x").end()]);
    assert!(matches!(rule_of(&err), Rule::Empty), "{err}");
    let err = fx.refuse(&[Tar::default()
        .pax(&[("linkpath", b"t\0x")])
        .symlink("s", "t")
        .end()]);
    assert!(matches!(rule_of(&err), Rule::SymlinkTarget { .. }), "{err}");
}

// ---- positive and differential --------------------------------------------------------------

fn benign_layers() -> Vec<Vec<u8>> {
    vec![
        Tar::default()
            .dir("etc", 0o755)
            .file("etc/passwd", b"root:x:0:0")
            .file("etc/old", b"old")
            .dir("usr", 0o755)
            .dir("usr/lib", 0o755)
            .file_mode("usr/lib/libc.so.6", 0o755, b"\x7fELF")
            .symlink("lib", "usr/lib")
            .symlink("lib64", "/usr/lib")
            .dir("usr/bin", 0o755)
            .file_mode("usr/bin/a", 0o755, b"tool")
            .hardlink("usr/bin/b", "usr/bin/a")
            .dir("opq", 0o755)
            .file("opq/x", b"x")
            .dir("opq/sub", 0o755)
            .file("opq/sub/y", b"y")
            .file("gone", b"g")
            .end(),
        Tar::default()
            .file("etc/.wh.old", b"")
            .file("etc/passwd", b"root:x:0:0\napp:x:1000:1000")
            .dir("opq", 0o750)
            .file("opq/.wh..wh..opq", b"")
            .file("opq/z", b"z")
            .dir("usr/lib", 0o700)
            .file(".wh.gone", b"")
            .symlink("etc/rel", "../usr/bin/a")
            .end(),
    ]
}

#[test]
fn multi_layer_image_produces_exact_tree() {
    let mut fx = Fixture::new();
    let rootfs = fx.accept(&benign_layers());
    let expected: BTreeMap<String, String> = [
        ("etc", "dir 755"),
        ("etc/passwd", "file 644 root:x:0:0\napp:x:1000:1000"),
        ("etc/rel", "-> ../usr/bin/a"),
        ("lib", "-> usr/lib"),
        ("lib64", "-> /usr/lib"),
        ("opq", "dir 750"),
        ("opq/z", "file 644 z"),
        ("usr", "dir 755"),
        ("usr/bin", "dir 755"),
        ("usr/bin/a", "file 755 tool"),
        ("usr/bin/b", "file 755 tool"),
        ("usr/lib", "dir 700"),
        ("usr/lib/libc.so.6", "file 755 \u{7f}ELF"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(tree(rootfs.path()), expected);
    let a = std::fs::metadata(rootfs.path().join("usr/bin/a")).unwrap();
    let b = std::fs::metadata(rootfs.path().join("usr/bin/b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink");
    assert_eq!(rootfs.read("/lib64/libc.so.6", 16).unwrap(), b"\x7fELF");
    assert_eq!(rootfs.read("lib/libc.so.6", 16).unwrap(), b"\x7fELF");
    assert_eq!(rootfs.read("/etc/rel", 16).unwrap(), b"tool");
    let r = rootfs.report();
    assert_eq!((r.layers, r.whiteouts, r.neutralised.len()), (2, 3, 0));
    assert_eq!((r.entries_read, r.entries_written), (24, 21));
    // Dropping the rootfs removes it.
    let path = rootfs.path().to_path_buf();
    drop(rootfs);
    assert!(!path.exists());
}

/// Same layers through `umoci raw unpack` (Go's archive/tar + umoci's whiteout code).
#[test]
fn differential_against_umoci() {
    let mut fx = Fixture::new();
    let tars = benign_layers();
    let layers: Vec<LayerInput> = tars.iter().map(|t| fx.layer(t)).collect();
    let rootfs = unpack_image(&layers, &fx.opts(Limits::default())).unwrap();

    let layout = fx.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        serde_json::json!({"digest": d.as_str(), "size": bytes.len()})
    };
    let mut layer_descs = Vec::new();
    for l in &layers {
        let mut desc = put(&std::fs::read(&l.blob).unwrap());
        desc["mediaType"] = media::OCI_LAYER_GZIP.into();
        layer_descs.push(desc);
    }
    let diff_ids: Vec<_> = tars.iter().map(|t| Digest::of(t).to_string()).collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let mut config_desc = put(&serde_json::to_vec(&config).unwrap());
    config_desc["mediaType"] = media::OCI_CONFIG.into();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": config_desc, "layers": layer_descs});
    let mut manifest_desc = put(&serde_json::to_vec(&manifest).unwrap());
    manifest_desc["mediaType"] = media::OCI_MANIFEST.into();
    manifest_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let theirs = fx.path().join("umoci-rootfs");
    let out = std::process::Command::new("umoci")
        .arg("raw")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(&theirs)
        .output()
        .expect("umoci is installed on this machine");
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(rootfs.path()), tree(&theirs));
}

/// A real tree (this machine's `/etc`, written by GNU tar in PAX format with a `./` root entry, as
/// mmdebstrap does) unpacks to the same files as `tar -x`, modulo the documented mode policy.
#[test]
fn differential_against_gnu_tar_on_a_real_tree() {
    let mut fx = Fixture::new();
    let tgz = fx.path().join("etc.tgz");
    let status = std::process::Command::new("tar")
        .args(["--format=pax", "--sort=name", "-C", "/etc", "-czf"])
        .arg(&tgz)
        .arg(".")
        .status()
        .expect("GNU tar is installed");
    assert!(status.success());
    let bytes = std::fs::read(&tgz).unwrap();
    let layer = fx.blob(bytes, media::OCI_LAYER_GZIP, None);
    let rootfs = unpack_image(&[layer], &fx.opts(Limits::default())).unwrap();
    let theirs = fx.path().join("tar-x");
    std::fs::create_dir(&theirs).unwrap();
    let status = std::process::Command::new("tar")
        .args(["--no-same-owner", "-C"])
        .arg(&theirs)
        .arg("-xzf")
        .arg(&tgz)
        .status()
        .unwrap();
    assert!(status.success());
    // Apply shipit's mode policy to tar's result: no special or group/other write bits, owner
    // always rw (files) / rwx (directories).
    let policy = |v: &String| -> String {
        let mut parts = v.splitn(3, ' ');
        let (kind, rest) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        match kind {
            "dir" | "file" => {
                let mode = u32::from_str_radix(rest, 8).unwrap() & 0o755;
                let mode = mode | if kind == "dir" { 0o700 } else { 0o600 };
                let tail = parts.next().map(|t| format!(" {t}")).unwrap_or_default();
                format!("{kind} {mode:o}{tail}")
            }
            _ => v.clone(),
        }
    };
    let ours = tree(rootfs.path());
    let theirs: BTreeMap<_, _> = tree(&theirs)
        .iter()
        .map(|(k, v)| (k.clone(), policy(v)))
        .collect();
    assert!(
        ours.len() > 50,
        "expected a real tree, got {} entries",
        ours.len()
    );
    assert_eq!(ours, theirs);
    assert!(
        rootfs
            .report()
            .neutralised
            .iter()
            .any(|n| n.action == Neutralisation::SkippedRootEntry)
    );
}

// ---- layers shared by several images of one run ---------------------------------------------

/// Options that share `layers` between unpacks, the store outside the fixture (so the fixture's
/// "nothing outside changed" listing sees only the rootfs parent).
fn shared_opts(
    fx: &Fixture,
    layers: &[&LayerInput],
    limits: Limits,
    store: &Path,
) -> (UnpackOptions, std::sync::Arc<SharedLayers>) {
    let share = layers.iter().map(|l| l.digest.clone()).collect();
    let shared = std::sync::Arc::new(SharedLayers::new(share, Some(store)).unwrap());
    let opts = UnpackOptions {
        shared: Some(std::sync::Arc::clone(&shared)),
        ..fx.opts(limits)
    };
    (opts, shared)
}

#[test]
fn a_shared_layer_is_read_once_and_replayed_into_the_same_tree() {
    let mut fx = Fixture::new();
    let store = tempfile::tempdir().unwrap();
    let tars = benign_layers();
    let (lower, upper) = (fx.layer(&tars[0]), fx.layer(&tars[1]));
    let alone = fx.layer(&Tar::default().file("only", b"o").end());
    let plain = unpack_image(&[lower.clone(), upper.clone()], &fx.opts(Limits::default())).unwrap();
    let (opts, shared) = shared_opts(&fx, &[&lower, &upper], Limits::default(), store.path());
    let first = unpack_image(&[lower.clone(), upper.clone()], &opts).unwrap();
    assert_eq!(first.report().layers_reused, 0);
    assert_eq!(
        shared.stats(),
        SharedStats {
            shared: 2,
            unpacked: 2,
            reused: 0
        }
    );
    let second = unpack_image(&[lower.clone(), upper.clone()], &opts).unwrap();
    assert_eq!(
        shared.stats(),
        SharedStats {
            shared: 2,
            unpacked: 2,
            reused: 2
        },
        "the second image read a shared layer again"
    );
    // The replay is the unpack: the same tree, hardlink, whiteouts and counts.
    assert_eq!(tree(second.path()), tree(plain.path()));
    assert_eq!(tree(first.path()), tree(plain.path()));
    let r = second.report();
    assert_eq!(
        (r.layers, r.layers_reused, r.whiteouts, r.entries_read),
        (2, 2, 3, 24)
    );
    assert_eq!(r.entries_written, plain.report().entries_written);
    let a = std::fs::metadata(second.path().join("usr/bin/a")).unwrap();
    let b = std::fs::metadata(second.path().join("usr/bin/b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink");
    // Each rootfs has its own files: writing in one leaves the other as it was.
    let file = |r: &Rootfs| r.path().join("etc/passwd");
    assert_ne!(
        std::fs::metadata(file(&first)).unwrap().ino(),
        std::fs::metadata(file(&second)).unwrap().ino()
    );
    std::fs::write(file(&first), b"changed").unwrap();
    assert_eq!(
        std::fs::read(file(&second)).unwrap(),
        b"root:x:0:0\napp:x:1000:1000"
    );
    // A layer listed by one image only is read as before, shared or not.
    let third = unpack_image(&[lower.clone(), alone], &opts).unwrap();
    assert_eq!(third.report().layers_reused, 1);
    assert_eq!(shared.stats().reused, 3);
    // The store goes with the run.
    drop(opts);
    drop(shared);
    assert_eq!(std::fs::read_dir(store.path()).unwrap().count(), 0);
}

#[test]
fn a_shared_layer_is_still_hostile_input_in_every_image() {
    let mut fx = Fixture::new();
    let store = tempfile::tempdir().unwrap();
    // Harmless on its own: recorded by the first image.
    let shared_tar = Tar::default().file("d/f", b"data").hardlink("h", "a").end();
    let s = fx.layer(&shared_tar);
    let a_file = fx.layer(&Tar::default().file("a", b"a").end());
    let (opts, shared) = shared_opts(&fx, &[&s], Limits::default(), store.path());
    let ok = unpack_image(&[a_file.clone(), s.clone()], &opts).unwrap();
    assert_eq!(std::fs::read(ok.path().join("d/f")).unwrap(), b"data");
    assert_eq!(shared.stats().unpacked, 1);
    // Later images replay the record: the blob is not read again (each refusal below comes
    // from the replay's own checks, not from a missing blob).
    std::fs::remove_file(&s.blob).unwrap();

    // Replayed over a lower layer that makes `d` a symlink out of the root: refused, nothing
    // outside written, the rootfs gone.
    let escape = fx.layer(
        &Tar::default()
            .file("a", b"a")
            .symlink("d", &fx.sentinel("dir"))
            .end(),
    );
    let before = listing(fx.path(), None);
    let err = unpack_image(&[escape, s.clone()], &opts).expect_err("must be refused");
    assert!(matches!(rule_of(&err), Rule::LeavesRoot { .. }), "{err}");
    assert_eq!(listing(fx.path(), None), before, "{err}");
    assert_eq!(
        std::fs::read_dir(fx.dest()).unwrap().count(),
        1,
        "only `ok`"
    );

    // Replayed where its hardlink target is a directory: refused.
    let a_dir = fx.layer(&Tar::default().dir("a", 0o755).end());
    let before = listing(fx.path(), None);
    let err = unpack_image(&[a_dir, s.clone()], &opts).expect_err("must be refused");
    assert!(
        matches!(rule_of(&err), Rule::HardlinkTarget { .. }),
        "{err}"
    );
    assert_eq!(listing(fx.path(), None), before, "{err}");

    // Another image's config with another diff_id for the same blob: refused.
    let mut wrong = s.clone();
    wrong.diff_id = Some(Digest::of(b"other tar"));
    let err = unpack_image(&[a_file.clone(), wrong], &opts).expect_err("must be refused");
    assert!(
        matches!(problem_of(&err), LayerProblem::DiffId { .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(fx.dest()).unwrap().count(),
        1,
        "only `ok`"
    );
    // Each refusal came from the replay (the blob was read once); a refused replay is not
    // counted as reused.
    assert_eq!(shared.stats().unpacked, 1, "recorded once");
    assert_eq!(shared.stats().reused, 0);
}

#[test]
fn a_replayed_layer_counts_against_the_limits_and_a_refused_one_is_never_recorded() {
    let mut fx = Fixture::new();
    let store = tempfile::tempdir().unwrap();
    let mut t = Tar::default();
    for i in 0..10 {
        t = t.file(&format!("f{i}"), b"0123456789");
    }
    let s = fx.layer(&t.end());
    let one_more = fx.layer(&Tar::default().file("g", b"").end());
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let (opts, shared) = shared_opts(&fx, &[&s], limits, store.path());
    unpack_image(std::slice::from_ref(&s), &opts).unwrap();
    let err = unpack_image(&[one_more, s.clone()], &opts).expect_err("entry limit");
    assert!(
        matches!(rule_of(&err), Rule::TooManyEntries { max: 10 }),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(fx.dest()).unwrap().count(), 0);

    // The byte limit: the layer's tar counts in full when replayed.
    let big_tar = Tar::default().file("big", &[7u8; 10 * 1024]).end();
    let limits = Limits {
        max_total_bytes: big_tar.len() as u64 + 512,
        ..Limits::default()
    };
    let big = fx.layer(&big_tar);
    let small = fx.layer(&Tar::default().file("small", &[1u8; 600]).end());
    let (opts, shared2) = shared_opts(&fx, &[&big], limits, store.path());
    unpack_image(std::slice::from_ref(&big), &opts).unwrap();
    let err = unpack_image(&[small, big.clone()], &opts).expect_err("byte limit");
    assert!(
        matches!(problem_of(&err), LayerProblem::TotalLimit { .. }),
        "{err}"
    );
    assert_eq!(shared2.stats().reused, 0);

    // A shared layer refused in the first image is read (and refused) again by the next one.
    let bad = fx.layer(&Tar::default().file("x", b"1").file("x", b"2").end());
    let (opts, shared3) = shared_opts(&fx, &[&bad], Limits::default(), store.path());
    for _ in 0..2 {
        let err = unpack_image(std::slice::from_ref(&bad), &opts).expect_err("duplicate");
        assert!(matches!(rule_of(&err), Rule::Duplicate), "{err}");
    }
    assert_eq!(
        shared3.stats(),
        SharedStats {
            shared: 1,
            unpacked: 0,
            reused: 0
        }
    );
    assert_eq!(shared.stats().unpacked, 1);
}
