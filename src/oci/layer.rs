//! Deterministic image layers: a list of entries becomes a gzip-compressed ustar archive whose
//! bytes depend only on the entries and the epoch, never on the host (its file mtimes, modes,
//! owners, umask, directory order or the time of day).
//!
//! What is pinned, and why (`research/tech.md` §3): entries sorted by path bytes, every parent
//! directory written explicitly (0755, 0:0), ustar headers built by hand (no PAX, no xattrs, no
//! atime, empty uname/gname), mtime = the given epoch (SOURCE_DATE_EPOCH), gzip with mtime 0,
//! OS byte 255, no file name and level 6. The layer's `digest` (of the gzip) and `diff_id` (of the
//! tar) are computed while the bytes stream out, so a layer is never read back to be hashed.
//!
//! The gzip is block-parallel (`pgzip`: fixed 128 KiB chunks, pigz's format), so its bytes are
//! the same on every machine whatever its number of cores. `diff_id` alone (no compression) is
//! what the compressed-layer cache (`layer_cache`) keys on.

use crate::exec::{Cancel, Cancelled, Interruptible};
use crate::oci::digest::{Digest, HashingWriter};
use crate::oci::fsafe::{self, Why};
use crate::oci::pgzip::{self, ParGzWriter};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Largest value a ustar octal field of 8 bytes holds (uid, gid).
const MAX_ID: u32 = 0o7_777_777;
/// Largest file a ustar octal size field of 12 bytes holds (8 GiB - 1).
const MAX_SIZE: u64 = 0o77_777_777_777;

/// One thing to put in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, relative (`usr/local/bin/app`); a leading `/` is accepted and dropped.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (0o7777 at most). setuid/setgid/sticky are written only if given here.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file whose bytes are in memory.
    File(Vec<u8>),
    /// A regular file whose bytes are read from this host path when the layer is built (only its
    /// bytes: its mtime, mode and owner are ignored).
    HostFile(PathBuf),
    /// A symbolic link to this target (stored as given, not resolved).
    Symlink(String),
}

impl Entry {
    /// A directory owned by 0:0.
    pub fn dir(path: impl Into<String>, mode: u32) -> Entry {
        Entry::new(path, EntryKind::Dir, mode)
    }

    /// A regular file from bytes in memory, owned by 0:0.
    pub fn file(path: impl Into<String>, bytes: impl Into<Vec<u8>>, mode: u32) -> Entry {
        Entry::new(path, EntryKind::File(bytes.into()), mode)
    }

    /// A regular file read from `host` at build time, owned by 0:0.
    pub fn host_file(path: impl Into<String>, host: impl Into<PathBuf>, mode: u32) -> Entry {
        Entry::new(path, EntryKind::HostFile(host.into()), mode)
    }

    /// A symlink (mode 0777, owned by 0:0).
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Symlink(target.into()), 0o777)
    }

    /// The same entry owned by `uid:gid`.
    pub fn owned_by(mut self, uid: u32, gid: u32) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    fn new(path: impl Into<String>, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

/// The identity of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the compressed bytes (the blob digest in the manifest).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (the `rootfs.diff_ids` entry in the config).
    pub diff_id: Digest,
    /// Size of the compressed bytes.
    pub size: u64,
}

/// A layer built in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub bytes: Vec<u8>,
    pub digests: LayerDigests,
}

/// Why a layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {path:?}: {why}; use a relative path like usr/local/bin/app")]
    BadPath { path: String, why: &'static str },
    #[error("layer entry {0:?} is listed twice; list each path once")]
    Duplicate(String),
    #[error(
        "layer entry {child:?} needs {parent:?} to be a directory, but it is listed as a file or symlink"
    )]
    ParentNotDir { parent: String, child: String },
    #[error(
        "layer entry {0:?} is too long for a ustar header (at most 100 bytes after the last '/' that \
         splits it, and 155 before it); shorten the path"
    )]
    PathTooLong(String),
    #[error(
        "symlink {path:?}: target {target:?} is longer than the 100 bytes a ustar header holds"
    )]
    LinkTooLong { path: String, target: String },
    #[error("layer entry {path:?}: {what} {value:#o} is out of range (at most {max:#o})")]
    OutOfRange {
        path: String,
        what: &'static str,
        value: u64,
        max: u64,
    },
    #[error("layer entry {path:?}: cannot read {host}: {source}")]
    ReadHost {
        path: String,
        host: PathBuf,
        source: io::Error,
    },
    #[error("layer entry {path:?}: {source}")]
    HostRefused {
        path: String,
        source: crate::oci::fsafe::FileError,
    },
    #[error("layer entry {path:?}: {host} changed size while it was being read; build again")]
    HostChanged { path: String, host: PathBuf },
    #[error("writing the layer failed: {0}")]
    Write(#[source] io::Error),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// Builds a layer in memory.
pub fn build(entries: &[Entry], epoch: u64) -> Result<Layer, LayerError> {
    let (digests, bytes) = write(entries, epoch, Vec::new(), &Cancel::new())?;
    Ok(Layer { bytes, digests })
}

/// Streams a layer into `out` (a file, a socket, a `Vec`), and gives `out` back. Stops with
/// `Cancelled` within a few MiB of host file data once `cancel` fires.
pub fn write<W: Write>(
    entries: &[Entry],
    epoch: u64,
    out: W,
    cancel: &Cancel,
) -> Result<(LayerDigests, W), LayerError> {
    let sorted = normalise(entries)?;
    let gz = ParGzWriter::new(HashingWriter::new(out), pgzip::LEVEL);
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    for (path, entry) in &sorted {
        cancel.check()?;
        append(&mut tar, path, entry, epoch, cancel)?;
    }
    let tar_hasher = tar.into_inner().map_err(LayerError::Write)?;
    let (diff_id, _, gz) = tar_hasher.finish_into();
    let gz_hasher = gz.finish().map_err(LayerError::Write)?;
    let (digest, size, out) = gz_hasher.finish_into();
    Ok((
        LayerDigests {
            digest,
            diff_id,
            size,
        },
        out,
    ))
}

/// The `diff_id` (sha256 of the uncompressed tar) and the tar's size, computed by streaming the
/// tar into the hash alone: what `write` would record, without compressing anything.
pub fn diff_id(
    entries: &[Entry],
    epoch: u64,
    cancel: &Cancel,
) -> Result<(Digest, u64), LayerError> {
    let sorted = normalise(entries)?;
    let mut tar = tar::Builder::new(HashingWriter::new(io::sink()));
    for (path, entry) in &sorted {
        cancel.check()?;
        append(&mut tar, path, entry, epoch, cancel)?;
    }
    let hasher = tar.into_inner().map_err(LayerError::Write)?;
    Ok(hasher.finish())
}

/// Checks entries as `write` would (paths, modes, owners, no path twice, parents that are
/// directories) without reading a host file: for entries split over several layers, the checks
/// one layer holding them all would make.
pub fn check_entries(entries: &[Entry]) -> Result<(), LayerError> {
    normalise(entries).map(|_| ())
}

/// An entry after validation: its normalised path is the map key.
enum Item<'a> {
    Given(&'a Entry),
    Parent,
}

/// Validates paths, adds missing parent directories, sorts by path bytes.
fn normalise(entries: &[Entry]) -> Result<BTreeMap<String, Item<'_>>, LayerError> {
    let mut map: BTreeMap<String, Item<'_>> = BTreeMap::new();
    for e in entries {
        let path = clean_path(&e.path)?;
        if e.mode > 0o7777 {
            return Err(out_of_range(&path, "mode", e.mode.into(), 0o7777));
        }
        for (what, id) in [("uid", e.uid), ("gid", e.gid)] {
            if id > MAX_ID {
                return Err(out_of_range(&path, what, id.into(), MAX_ID.into()));
            }
        }
        if map.insert(path.clone(), Item::Given(e)).is_some() {
            return Err(LayerError::Duplicate(path));
        }
    }
    let paths: Vec<String> = map.keys().cloned().collect();
    for path in paths {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            parent = p;
            match map.get(parent) {
                None => {
                    map.insert(parent.to_string(), Item::Parent);
                }
                Some(Item::Parent) => {}
                Some(Item::Given(e)) if e.kind == EntryKind::Dir => {}
                Some(Item::Given(_)) => {
                    return Err(LayerError::ParentNotDir {
                        parent: parent.to_string(),
                        child: path.clone(),
                    });
                }
            }
        }
    }
    Ok(map)
}

fn out_of_range(path: &str, what: &'static str, value: u64, max: u64) -> LayerError {
    LayerError::OutOfRange {
        path: path.to_string(),
        what,
        value,
        max,
    }
}

/// `"/usr//local/"` is refused (empty component), `"/usr/local/"` becomes `"usr/local"`.
fn clean_path(raw: &str) -> Result<String, LayerError> {
    let bad = |why| LayerError::BadPath {
        path: raw.to_string(),
        why,
    };
    let p = raw.strip_prefix('/').unwrap_or(raw);
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() {
        return Err(bad("empty path (the root directory is implicit)"));
    }
    if p.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    for c in p.split('/') {
        match c {
            "" => return Err(bad("empty path component (`//`)")),
            "." | ".." => return Err(bad("`.` and `..` components are not allowed")),
            _ => {}
        }
    }
    Ok(p.to_string())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    item: &Item<'_>,
    epoch: u64,
    cancel: &Cancel,
) -> Result<(), LayerError> {
    let (kind, mode, uid, gid) = match item {
        Item::Parent => (&EntryKind::Dir, 0o755, 0, 0),
        Item::Given(e) => (&e.kind, e.mode, e.uid, e.gid),
    };
    let mut h = tar::Header::new_ustar();
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(epoch);
    h.set_device_major(0).map_err(LayerError::Write)?;
    h.set_device_minor(0).map_err(LayerError::Write)?;
    let name = match kind {
        EntryKind::Dir => format!("{path}/"),
        _ => path.to_string(),
    };
    set_name(ustar(&mut h), &name)?;
    match kind {
        EntryKind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_cksum();
            tar.append(&h, io::empty()).map_err(LayerError::Write)
        }
        EntryKind::Symlink(target) => {
            let link = &mut ustar(&mut h).linkname;
            if target.len() > link.len() || target.contains('\0') || target.is_empty() {
                return Err(LayerError::LinkTooLong {
                    path: path.to_string(),
                    target: target.clone(),
                });
            }
            link[..target.len()].copy_from_slice(target.as_bytes());
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_cksum();
            tar.append(&h, io::empty()).map_err(LayerError::Write)
        }
        EntryKind::File(bytes) => {
            let size = bytes.len() as u64;
            if size > MAX_SIZE {
                return Err(out_of_range(path, "size", size, MAX_SIZE));
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            h.set_cksum();
            tar.append(&h, bytes.as_slice()).map_err(LayerError::Write)
        }
        EntryKind::HostFile(host) => {
            let read_err = |source| LayerError::ReadHost {
                path: path.to_string(),
                host: host.clone(),
                source,
            };
            // A regular file only, not a link (config time resolved it), opened without
            // blocking on a FIFO swapped in since.
            let (file, size) = match fsafe::open_file(host, MAX_SIZE) {
                Ok(r) => (r.file, r.size),
                Err(e) => {
                    return Err(match e.why {
                        Why::Open(source) => read_err(source),
                        Why::TooLarge { size, .. } => out_of_range(path, "size", size, MAX_SIZE),
                        _ => LayerError::HostRefused {
                            path: path.to_string(),
                            source: e,
                        },
                    });
                }
            };
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            h.set_cksum();
            let mut reader = ExactReader {
                inner: Interruptible::new(file, cancel),
                left: size,
                changed: false,
            };
            let res = tar.append(&h, &mut reader);
            if let Err(e) = &res
                && let Some(c) = crate::exec::cancelled_in(e)
            {
                return Err(LayerError::Cancelled(c));
            }
            if reader.changed || reader.left != 0 {
                return Err(LayerError::HostChanged {
                    path: path.to_string(),
                    host: host.clone(),
                });
            }
            res.map_err(LayerError::Write)
        }
    }
}

fn ustar(h: &mut tar::Header) -> &mut tar::UstarHeader {
    h.as_ustar_mut()
        .expect("Header::new_ustar always gives a ustar header")
}

/// Splits `name` into the ustar `prefix` and `name` fields, or says it cannot be stored.
fn set_name(h: &mut tar::UstarHeader, name: &str) -> Result<(), LayerError> {
    let b = name.as_bytes();
    if b.len() <= h.name.len() {
        h.name[..b.len()].copy_from_slice(b);
        return Ok(());
    }
    // The longest prefix that fits leaves the shortest name: try splits from the right.
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for (i, _) in trimmed.rmatch_indices('/') {
        let (prefix, rest) = (&b[..i], &b[i + 1..]);
        if prefix.len() <= h.prefix.len() && rest.len() <= h.name.len() {
            h.prefix[..prefix.len()].copy_from_slice(prefix);
            h.name[..rest.len()].copy_from_slice(rest);
            return Ok(());
        }
        if rest.len() > h.name.len() {
            break;
        }
    }
    Err(LayerError::PathTooLong(name.to_string()))
}

/// Yields exactly `left` bytes of `inner`; notes whether the file turned out longer or shorter.
struct ExactReader {
    inner: Interruptible<File>,
    left: u64,
    changed: bool,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One more byte means the file grew after its size was written in the header.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                self.changed = true;
                return Err(io::Error::other("file grew while it was being read"));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.changed = true;
            return Err(io::Error::other("file shrank while it was being read"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// (path, mode, uid, gid, mtime, type, data) of every entry.
    type Seen = (String, u32, u64, u64, u64, tar::EntryType, Vec<u8>);

    fn headers(bytes: &[u8]) -> Vec<Seen> {
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    String::from_utf8(h.path_bytes().to_vec()).unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.entry_type(),
                    data,
                )
            })
            .collect()
    }

    fn sample(host: &Path) -> Vec<Entry> {
        vec![
            Entry::host_file("/usr/local/bin/app", host, 0o755),
            Entry::file("etc/app/config.toml", b"x = 1\n".to_vec(), 0o644),
            Entry::symlink("usr/bin/app", "/usr/local/bin/app"),
            Entry::dir("data", 0o700).owned_by(10001, 10001),
        ]
    }

    #[test]
    fn same_entries_twice_and_any_order_give_the_same_bytes_and_host_metadata_does_not_leak() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("app");
        std::fs::write(&host, b"\x7fELF pretend binary").unwrap();
        let a = build(&sample(&host), 1_700_000_000).unwrap();
        let b = build(&sample(&host), 1_700_000_000).unwrap();
        assert_eq!(a, b);

        let mut reversed = sample(&host);
        reversed.reverse();
        assert_eq!(build(&reversed, 1_700_000_000).unwrap(), a);

        // Touch the host file, change its mode (setuid even) and owner: nothing may change.
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o4700)).unwrap();
        let f = File::options().append(true).open(&host).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        drop(f);
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(host.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 1234, 5678) }, 0);
        }
        assert_eq!(build(&sample(&host), 1_700_000_000).unwrap(), a);

        // The digests are what they claim to be.
        assert_eq!(a.digests.digest, Digest::of(&a.bytes));
        assert_eq!(a.digests.size, a.bytes.len() as u64);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(a.bytes.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(a.digests.diff_id, Digest::of(&tar));
        // gzip header: no mtime, no name, OS 255, level-6 XFL 0.
        assert_eq!(&a.bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    }

    #[test]
    fn different_epoch_gives_a_different_digest() {
        let e = [Entry::file("a", b"a".to_vec(), 0o644)];
        let a = build(&e, 1_700_000_000).unwrap();
        let b = build(&e, 1_700_000_001).unwrap();
        assert_ne!(a.digests.digest, b.digests.digest);
        assert_ne!(a.digests.diff_id, b.digests.diff_id);
    }

    #[test]
    fn parents_are_explicit_sorted_and_headers_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("app");
        std::fs::write(&host, b"bin").unwrap();
        let l = build(&sample(&host), 1_700_000_000).unwrap();
        let got = headers(&l.bytes);
        let names: Vec<&str> = got.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "data/",
                "etc/",
                "etc/app/",
                "etc/app/config.toml",
                "usr/",
                "usr/bin/",
                "usr/bin/app",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/app",
            ]
        );
        for (name, mode, uid, gid, mtime, kind, data) in &got {
            assert_eq!(*mtime, 1_700_000_000, "{name}");
            match name.as_str() {
                "data/" => assert_eq!((*mode, *uid, *gid), (0o700, 10001, 10001)),
                "usr/bin/app" => assert_eq!(*kind, tar::EntryType::Symlink),
                "usr/local/bin/app" => {
                    assert_eq!((*mode, *uid, *gid), (0o755, 0, 0));
                    assert_eq!(data, b"bin");
                }
                "etc/app/config.toml" => assert_eq!(*mode, 0o644),
                _ => assert_eq!(
                    (*mode, *uid, *gid, *kind),
                    (0o755, 0, 0, tar::EntryType::Directory)
                ),
            }
        }
        // No uname/gname, ustar magic, no PAX/GNU records.
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(l.bytes.as_slice()));
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert!(h.as_ustar().is_some());
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        }
    }

    #[test]
    fn setuid_only_when_asked() {
        let l = build(
            &[
                Entry::file("a", b"a".to_vec(), 0o755),
                Entry::file("b", b"b".to_vec(), 0o4755),
            ],
            0,
        )
        .unwrap();
        let got = headers(&l.bytes);
        assert_eq!(got[0].1, 0o755);
        assert_eq!(got[1].1, 0o4755);
    }

    #[test]
    fn long_paths_use_the_prefix_field_or_fail_clearly() {
        let long = format!("{}/{}/file", "d".repeat(90), "e".repeat(90));
        let l = build(&[Entry::file(long.as_str(), b"x".to_vec(), 0o644)], 0).unwrap();
        let names: Vec<String> = headers(&l.bytes).into_iter().map(|h| h.0).collect();
        assert_eq!(names.last().unwrap(), &long);
        assert!(names.contains(&format!("{}/{}/", "d".repeat(90), "e".repeat(90))));

        let too_long = format!("{}/file", "d".repeat(200));
        let err = build(&[Entry::file(too_long.as_str(), b"x".to_vec(), 0o644)], 0).unwrap_err();
        assert!(matches!(err, LayerError::PathTooLong(_)), "{err}");
        assert!(err.to_string().contains("shorten"));
    }

    #[test]
    fn bad_entries_are_refused() {
        let f = |p: &str| Entry::file(p, b"x".to_vec(), 0o644);
        for p in ["", "/", "a/../b", "./a", "a//b"] {
            assert!(
                matches!(build(&[f(p)], 0), Err(LayerError::BadPath { .. })),
                "{p}"
            );
        }
        assert!(matches!(
            build(&[f("a"), f("/a")], 0),
            Err(LayerError::Duplicate(_))
        ));
        assert!(matches!(
            build(&[f("a"), f("a/b")], 0),
            Err(LayerError::ParentNotDir { .. })
        ));
        let missing = Entry::host_file("x", "/nonexistent/shipit", 0o755);
        let err = build(&[missing], 0).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/shipit"), "{err}");
        let long_link = Entry::symlink("l", "t".repeat(101));
        assert!(matches!(
            build(&[long_link], 0),
            Err(LayerError::LinkTooLong { .. })
        ));
    }

    /// `image.files` sources are checked at config time; one swapped for a FIFO or a link by
    /// package time is refused at once (the open must not wait for a writer).
    #[test]
    fn host_files_that_became_fifos_or_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        for (host, says) in [
            (&fifo, "FIFO (named pipe), not a regular file"),
            (&link, "symbolic link"),
        ] {
            let err = build(&[Entry::host_file("etc/x", host, 0o644)], 0)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&host.display().to_string()) && err.contains(says),
                "{err}"
            );
        }
    }
}
