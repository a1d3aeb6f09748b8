//! The OCI image layout on disk (image-spec `image-layout.md`): `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`. shipit writes its images here (`dist/oci`), reads base images from here
//! (`oci:PATH[:TAG]`), and verify and publish read the very same blobs.
//!
//! Blobs are written atomically (a temporary file in the blob directory, then a rename) and only
//! once; every blob path comes from a validated `Digest`; every blob read is checked against its
//! descriptor's digest and size, under a size cap. `index.json` entries are tagged with the
//! `org.opencontainers.image.ref.name` annotation and kept in a stable order.
//!
//! A layout is read as hostile input: every file in it is opened through `fsafe` (relative to the
//! layout directory, no symbolic link followed, no FIFO or device, bounded), `oci-layout` is read
//! up to 4 KiB, `index.json` and every manifest, index and config blob up to `MAX_JSON_BLOB`, and
//! every walk over nested indexes stops at `MAX_INDEX_DEPTH` levels, `MAX_INDEX_ENTRIES` entries
//! per index and `MAX_PLATFORM_IMAGES` distinct images, visiting each index digest once.

use crate::exec::{Cancel, Cancelled, Interruptible};
use crate::oci::digest::{Digest, HashingReader, HashingWriter};
use crate::oci::fsafe::{self, FileError, Why};
use crate::oci::image::{self, Base, BuiltImage, Descriptor, ImageError, Manifest};
use crate::oci::index::{self, BuiltIndex, Index, IndexError, Platform};
use crate::oci::json::canonical;
use crate::oci::layer::{self, Entry, LayerDigests, LayerError};
use crate::oci::media;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The annotation that names an `index.json` entry (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The largest manifest, index or config shipit reads (they are JSON; real ones are a few KiB).
pub const MAX_JSON_BLOB: u64 = 4 << 20;
/// How deep indexes may nest (an index in an index is depth 2) before a layout is treated as
/// hostile; real multi-platform images use one level, attestation wrappers two.
pub const MAX_INDEX_DEPTH: usize = 8;
/// The most entries one index may list (real ones list a few platforms and attestations).
pub const MAX_INDEX_ENTRIES: usize = 1024;
/// The most distinct platform images one walk over an index may reach.
pub const MAX_PLATFORM_IMAGES: usize = 256;
/// The path of the blob directory inside a layout.
const BLOB_DIR: &str = "blobs/sha256";

/// Serialises read-modify-write of `index.json` between threads of this process (the flock on
/// `lock::INDEX_LOCK` serialises processes).
static INDEX_LOCK: Mutex<()> = Mutex::new(());
/// How long an `index.json` update waits for another process's (each takes milliseconds).
const INDEX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An OCI image layout directory. Its long copies (layers written, blobs copied in) stop
/// within a few MiB once its cancel token fires (`with_cancel`; none by default).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    cancel: Cancel,
}

impl PartialEq for Layout {
    fn eq(&self, other: &Layout) -> bool {
        self.root == other.root
    }
}

impl Eq for Layout {}

/// `oci:PATH[:TAG]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    pub path: PathBuf,
    pub tag: Option<String>,
}

/// The image chosen for one platform: its manifest descriptor, manifest and config.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedImage {
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: Value,
}

impl SelectedImage {
    /// Turns the selection into a base for `image::build`.
    pub fn into_base(self) -> Result<Base, LayoutError> {
        Ok(Base::new(self.config, &self.manifest)?)
    }
}

/// Why a layout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: not an OCI image layout: {why}")]
    NotALayout { path: PathBuf, why: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "blob {path} does not match its descriptor (expected {digest}, {size} bytes; found {found}); \
         the layout is corrupt: delete the blob and write or copy the image again"
    )]
    BlobMismatch {
        path: PathBuf,
        digest: Digest,
        size: u64,
        found: String,
    },
    #[error("blob {digest} is {size} bytes, more than the {cap} bytes allowed here")]
    TooLarge { digest: Digest, size: u64, cap: u64 },
    #[error("blob {digest} is missing from {layout}: {why}")]
    MissingBlob {
        digest: Digest,
        layout: PathBuf,
        why: &'static str,
    },
    #[error("tag {tag:?} not found in {layout}/index.json (tags there: {known})")]
    TagNotFound {
        tag: String,
        layout: PathBuf,
        known: String,
    },
    #[error("{0:?} is not an OCI layout reference; write oci:PATH or oci:PATH:TAG")]
    BadRef(String),
    #[error(
        "{0:?} is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)"
    )]
    BadTag(String),
    #[error("no image for {want} in {place} (platforms there: {available})")]
    NoPlatform {
        want: String,
        place: String,
        available: String,
    },
    #[error(
        "several different images for {want} in {place}: {digests}; name one with oci:PATH:TAG"
    )]
    AmbiguousPlatform {
        want: String,
        place: String,
        digests: String,
    },
    #[error("{place}: {why}")]
    Invalid { place: String, why: String },
    #[error("{0}")]
    File(FileError),
    #[error(
        "{what}: over shipit's limit of {limit}; such a layout is refused as hostile \
         (see \"Limits\" under \"Verification\" in the README)"
    )]
    Limit { what: String, limit: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// A file refused by `fsafe`; a plain open failure keeps the operation's name.
fn file_err(op: &'static str) -> impl FnOnce(FileError) -> LayoutError {
    move |e| match e.why {
        Why::Open(source) => LayoutError::Io {
            op,
            path: e.path,
            source,
        },
        _ => LayoutError::File(e),
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LayoutError {
    let path = path.to_path_buf();
    move |source| match crate::exec::cancelled_in(&source) {
        Some(c) => LayoutError::Cancelled(c),
        None => LayoutError::Io { op, path, source },
    }
}

/// Parses `oci:PATH[:TAG]` (the path ends at the first `:` after `oci:`, as in skopeo): the one
/// parser for bases in the pipeline, `shipit verify oci:…` and the tests.
pub fn parse_oci_ref(s: &str) -> Result<OciRef, LayoutError> {
    let rest = s
        .strip_prefix("oci:")
        .ok_or_else(|| LayoutError::BadRef(s.to_string()))?;
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => {
            validate_tag(t)?;
            (p, Some(t.to_string()))
        }
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(LayoutError::BadRef(s.to_string()));
    }
    Ok(OciRef {
        path: PathBuf::from(path),
        tag,
    })
}

/// The Docker tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), LayoutError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(LayoutError::BadTag(tag.to_string()))
    }
}

impl Layout {
    /// Opens the layout at `dir`, creating it (and `dir`) if needed.
    pub fn create(dir: &Path) -> Result<Layout, LayoutError> {
        let layout = Layout {
            root: dir.to_path_buf(),
            cancel: Cancel::new(),
        };
        fs::create_dir_all(layout.blob_dir()).map_err(io_err("create", &layout.blob_dir()))?;
        let marker = dir.join("oci-layout");
        if marker.exists() {
            layout.check_marker()?;
        } else {
            atomic_write(dir, &marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !dir.join("index.json").exists() {
            let _guard = layout.lock_index()?;
            if !dir.join("index.json").exists() {
                layout.write_index_json(&empty_index())?;
            }
        }
        Ok(layout)
    }

    /// Opens an existing layout (`oci-layout` must say version 1.0.0).
    pub fn open(dir: &Path) -> Result<Layout, LayoutError> {
        let layout = Layout {
            root: dir.to_path_buf(),
            cancel: Cancel::new(),
        };
        layout.check_marker()?;
        // Blobs are opened below the layout without following links; so that paths handed on
        // (a layer to unpack) stay inside too, the blob directories must not be links either.
        for d in ["blobs", BLOB_DIR] {
            let p = dir.join(d);
            match fs::symlink_metadata(&p) {
                Ok(m) if !m.is_dir() => {
                    return Err(LayoutError::NotALayout {
                        path: layout.root.clone(),
                        why: format!(
                            "{} is a {}, not a directory (shipit follows no link inside a layout)",
                            p.display(),
                            fsafe::kind_name(&m.file_type())
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(layout)
    }

    /// The token that stops this layout's long copies.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The same layout, its long copies stopped by `cancel`.
    pub fn with_cancel(mut self, cancel: &Cancel) -> Layout {
        self.cancel = cancel.clone();
        self
    }

    /// Opens the blob `desc` names for reading (a regular file inside the layout, at most `cap`
    /// bytes; its content is not checked here: hash it while reading).
    pub fn open_blob(&self, desc: &Descriptor, cap: u64) -> Result<fsafe::Regular, LayoutError> {
        fsafe::open_in(&self.root, &self.blob_rel(&desc.digest), cap).map_err(|e| {
            if e.is_not_found() {
                LayoutError::MissingBlob {
                    digest: desc.digest.clone(),
                    layout: self.root.clone(),
                    why: "the layout is incomplete (a non-distributable layer?); copy the image in full with skopeo",
                }
            } else {
                file_err("open blob")(e)
            }
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// True when the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Writes `bytes` as a blob (skipped when already present) and describes it.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, LayoutError> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            let mut tmp = self.temp_blob()?;
            tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
            self.persist(tmp, &digest)?;
        }
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }

    /// [`Layout::write_blob`] for many small blobs (an attach stage's referrers): every new blob
    /// is written to its temporary file first, then all are made durable in one pass (their
    /// `fsync`s side by side, so the file system commits them together rather than one journal
    /// commit per blob), and only then renamed to their digests. A blob is never visible under
    /// its digest before its bytes are on disk, as with `write_blob`; the caller lists them in
    /// `index.json` after this returns. Descriptors come back in the order given.
    pub fn write_blobs(&self, blobs: &[(&str, &[u8])]) -> Result<Vec<Descriptor>, LayoutError> {
        let mut pending: Vec<(tempfile::NamedTempFile, Digest)> = Vec::new();
        let mut descs = Vec::with_capacity(blobs.len());
        for (media_type, bytes) in blobs {
            let digest = Digest::of(bytes);
            if !self.has_blob(&digest) && !pending.iter().any(|(_, d)| *d == digest) {
                let mut tmp = self.temp_blob()?;
                tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
                tmp.as_file()
                    .set_permissions(fs::Permissions::from_mode(0o644))
                    .map_err(io_err("chmod", tmp.path()))?;
                pending.push((tmp, digest.clone()));
            }
            descs.push(Descriptor::new(media_type, digest, bytes.len() as u64));
        }
        const SYNC_THREADS: usize = 8;
        let chunk = pending.len().div_ceil(SYNC_THREADS).max(1);
        std::thread::scope(|s| {
            let runs: Vec<_> = pending
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        for (tmp, _) in c {
                            tmp.as_file()
                                .sync_all()
                                .map_err(io_err("sync", tmp.path()))?;
                        }
                        Ok::<(), LayoutError>(())
                    })
                })
                .collect();
            runs.into_iter().try_for_each(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LayoutError::Io {
                        op: "sync",
                        path: self.blob_dir(),
                        source: io::Error::other("a sync thread panicked"),
                    })
                })
            })
        })?;
        for (tmp, digest) in pending {
            let dest = self.blob_path(&digest);
            if dest.is_file() {
                continue; // dropping `tmp` deletes it
            }
            tmp.persist(&dest)
                .map_err(|e| io_err("rename into place", &dest)(e.error))?;
        }
        Ok(descs)
    }

    /// Copies the file at `src` in as a blob, hashing it on the way, and describes it.
    pub fn write_blob_from_file(
        &self,
        media_type: &str,
        src: &Path,
    ) -> Result<Descriptor, LayoutError> {
        let from = fsafe::open_file(src, u64::MAX)
            .map_err(file_err("open"))?
            .file;
        let mut from = Interruptible::new(from, &self.cancel);
        let tmp = self.temp_blob()?;
        let mut w = HashingWriter::new(BufWriter::new(tmp));
        io::copy(&mut from, &mut w).map_err(io_err("copy", src))?;
        let (digest, size, buf) = w.finish_into();
        let tmp = buf.into_inner().map_err(|e| LayoutError::Io {
            op: "write",
            path: self.blob_dir(),
            source: e.into_error(),
        })?;
        self.persist(tmp, &digest)?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Builds a deterministic layer (see `layer`) straight into the layout.
    pub fn write_layer(
        &self,
        entries: &[Entry],
        epoch: u64,
    ) -> Result<(Descriptor, LayerDigests), LayoutError> {
        let tmp = self.temp_blob()?;
        let (digests, buf) = layer::write(entries, epoch, BufWriter::new(tmp), &self.cancel)?;
        let tmp = buf.into_inner().map_err(|e| LayoutError::Io {
            op: "write",
            path: self.blob_dir(),
            source: e.into_error(),
        })?;
        self.persist(tmp, &digests.digest)?;
        let desc = Descriptor::new(media::OCI_LAYER_GZIP, digests.digest.clone(), digests.size);
        Ok((desc, digests))
    }

    /// Writes an image's config and manifest; its layers must already be in the layout.
    pub fn write_image(&self, image: &BuiltImage) -> Result<(), LayoutError> {
        for l in &image.manifest.layers {
            if !self.has_blob(&l.digest) {
                return Err(LayoutError::MissingBlob {
                    digest: l.digest.clone(),
                    layout: self.root.clone(),
                    why: "a layer of the image being written; write the layer or copy the base image first",
                });
            }
        }
        self.write_blob(media::OCI_CONFIG, &image.config_bytes)?;
        self.write_blob(media::OCI_MANIFEST, &image.manifest_bytes)?;
        Ok(())
    }

    /// Writes an index; the manifests it lists must already be in the layout.
    pub fn write_index(&self, index: &BuiltIndex) -> Result<(), LayoutError> {
        for m in &index.index.manifests {
            if !self.has_blob(&m.digest) {
                return Err(LayoutError::MissingBlob {
                    digest: m.digest.clone(),
                    layout: self.root.clone(),
                    why: "a manifest listed by the index being written; write the images first",
                });
            }
        }
        self.write_blob(media::OCI_INDEX, &index.bytes)?;
        Ok(())
    }

    /// Reads a blob, refusing it if it is larger than `cap` or does not match `desc`.
    pub fn read_blob(&self, desc: &Descriptor, cap: u64) -> Result<Vec<u8>, LayoutError> {
        if desc.size > cap {
            return Err(LayoutError::TooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
                cap,
            });
        }
        let path = self.blob_path(&desc.digest);
        let file = fsafe::open_in(&self.root, &self.blob_rel(&desc.digest), cap)
            .map_err(file_err("open blob"))?
            .file;
        let mut bytes = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
        file.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read blob", &path))?;
        let digest = Digest::of(&bytes);
        if digest != desc.digest || bytes.len() as u64 != desc.size {
            return Err(LayoutError::BlobMismatch {
                path,
                digest: desc.digest.clone(),
                size: desc.size,
                found: format!("{digest}, {} bytes", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> Result<Index, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = self.read_capped("index.json", MAX_JSON_BLOB)?;
        index::parse(&bytes).map_err(|e| LayoutError::Invalid {
            place: path.display().to_string(),
            why: e.to_string(),
        })
    }

    /// The entries of `index.json`, in file order.
    pub fn entries(&self) -> Result<Vec<Descriptor>, LayoutError> {
        Ok(self.index()?.manifests)
    }

    /// Points `tag` at `desc` in `index.json`, replacing any entry with that tag. Untagged entries
    /// keep their order and come first; tagged ones follow, sorted by tag.
    pub fn tag(&self, tag: &str, desc: &Descriptor) -> Result<(), LayoutError> {
        self.tag_all(&[(tag, desc)])
    }

    /// [`Layout::tag`] for several tags, with one `index.json` write: they all move, or (an
    /// invalid tag, a missing blob, a failed write) none does.
    pub fn tag_all(&self, tags: &[(&str, &Descriptor)]) -> Result<(), LayoutError> {
        for (tag, desc) in tags {
            validate_tag(tag)?;
            if !self.has_blob(&desc.digest) {
                return Err(LayoutError::MissingBlob {
                    digest: desc.digest.clone(),
                    layout: self.root.clone(),
                    why: "tags may only point at blobs the layout holds; write it first",
                });
            }
        }
        if tags.is_empty() {
            return Ok(());
        }
        let _guard = self.lock_index()?;
        let mut idx = self.index()?;
        for (tag, desc) in tags {
            idx.manifests
                .retain(|d| d.annotation(REF_NAME) != Some(*tag));
            let mut entry = (*desc).clone();
            entry
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(REF_NAME.to_string(), tag.to_string());
            idx.manifests.push(entry);
        }
        idx.manifests.sort_by(|a, b| {
            let key = |d: &Descriptor| d.annotation(REF_NAME).map(str::to_string);
            key(a).cmp(&key(b))
        });
        if idx.media_type.is_none() {
            idx.media_type = Some(media::OCI_INDEX.to_string());
        }
        self.write_index_json(&idx)
    }

    /// Lists a referrer (an artifact manifest whose `subject` is an image of this layout,
    /// already written as a blob) in `index.json`: untagged, with its `artifactType`, as the
    /// image-spec has OCI tools discover a subject's referrers in a layout. Never an entry of
    /// an image index. Listing the same manifest again changes nothing.
    pub fn add_referrer(&self, desc: &Descriptor) -> Result<(), LayoutError> {
        self.add_referrers(std::slice::from_ref(desc))
    }

    /// [`Layout::add_referrer`] for several, with one `index.json` write.
    pub fn add_referrers(&self, descs: &[Descriptor]) -> Result<(), LayoutError> {
        for desc in descs {
            if !self.has_blob(&desc.digest) {
                return Err(LayoutError::MissingBlob {
                    digest: desc.digest.clone(),
                    layout: self.root.clone(),
                    why: "a referrer is listed only once its manifest is in the layout",
                });
            }
        }
        let _guard = INDEX_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.index()?;
        let mut changed = false;
        for desc in descs {
            if idx
                .manifests
                .iter()
                .any(|d| d.digest == desc.digest && d.annotation(REF_NAME).is_none())
            {
                continue;
            }
            let mut entry = desc.clone();
            if let Some(a) = entry.annotations.as_mut() {
                a.remove(REF_NAME);
            }
            // Untagged entries come first (see `tag`): after the other untagged ones.
            let at = idx
                .manifests
                .iter()
                .position(|d| d.annotation(REF_NAME).is_some())
                .unwrap_or(idx.manifests.len());
            idx.manifests.insert(at, entry);
            changed = true;
        }
        if !changed {
            return Ok(());
        }
        if idx.media_type.is_none() {
            idx.media_type = Some(media::OCI_INDEX.to_string());
        }
        self.write_index_json(&idx)
    }

    /// The descriptor `tag` names in `index.json`.
    pub fn resolve(&self, tag: &str) -> Result<Descriptor, LayoutError> {
        let entries = self.entries()?;
        if let Some(d) = entries.iter().find(|d| d.annotation(REF_NAME) == Some(tag)) {
            return Ok(d.clone());
        }
        let known: Vec<&str> = entries
            .iter()
            .filter_map(|d| d.annotation(REF_NAME))
            .collect();
        Err(LayoutError::TagNotFound {
            tag: tag.to_string(),
            layout: self.root.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        })
    }

    /// Finds the one image for `want`: under `tag` if given, else among all of `index.json`.
    /// Handles indexes and manifest lists (nested too) and single-platform manifests whose
    /// descriptor has no platform (then the config says which platform it is).
    pub fn select_platform(
        &self,
        tag: Option<&str>,
        want: &Platform,
    ) -> Result<SelectedImage, LayoutError> {
        let place = match tag {
            Some(t) => format!("oci:{}:{t}", self.root.display()),
            None => format!("oci:{}", self.root.display()),
        };
        let start = match tag {
            Some(t) => vec![self.resolve(t)?],
            None => self.entries()?,
        };
        let mut found: Vec<SelectedImage> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut walk = IndexWalk::default();
        walk.check_count(start.len())?;
        for d in start {
            self.walk(&d, want, 1, &mut walk, &mut found, &mut seen)?;
        }
        found.dedup_by(|a, b| a.descriptor.digest == b.descriptor.digest);
        let mut digests: Vec<&Digest> = found.iter().map(|f| &f.descriptor.digest).collect();
        digests.sort();
        digests.dedup();
        match digests.len() {
            0 => {
                seen.sort();
                seen.dedup();
                Err(LayoutError::NoPlatform {
                    want: want.to_string(),
                    place,
                    available: if seen.is_empty() {
                        "none".into()
                    } else {
                        seen.join(", ")
                    },
                })
            }
            1 => Ok(found.swap_remove(0)),
            _ => Err(LayoutError::AmbiguousPlatform {
                want: want.to_string(),
                place,
                digests: digests
                    .iter()
                    .map(|d| d.short().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn walk(
        &self,
        desc: &Descriptor,
        want: &Platform,
        depth: usize,
        walk: &mut IndexWalk,
        found: &mut Vec<SelectedImage>,
        seen: &mut Vec<String>,
    ) -> Result<(), LayoutError> {
        if let Some(p) = &desc.platform
            && !p.matches(want)
        {
            seen.push(p.to_string());
            return Ok(());
        }
        if index::is_index_media_type(&desc.media_type) {
            let Some(bytes) = walk.enter(self, desc, depth)? else {
                return Ok(());
            };
            let idx = index::parse(&bytes)?;
            walk.check_entries(desc, &idx)?;
            for child in &idx.manifests {
                self.walk(child, want, depth + 1, walk, found, seen)?;
            }
            return Ok(());
        }
        if desc.media_type != media::OCI_MANIFEST && desc.media_type != media::DOCKER_MANIFEST {
            return Ok(()); // an artifact or something else that is not an image
        }
        if !walk.image(desc)? {
            return Ok(()); // the same manifest, labelled the same, was looked at already
        }
        let manifest = image::parse_manifest(&self.read_blob(desc, MAX_JSON_BLOB)?)?;
        let config = image::parse_config(&self.read_blob(&manifest.config, MAX_JSON_BLOB)?)?;
        let actual = image::config_platform(&config)?;
        if !actual.matches(want) {
            if desc.platform.is_some() {
                return Err(LayoutError::Invalid {
                    place: format!("{} manifest {}", self.root.display(), desc.digest),
                    why: format!(
                        "the index says {want} but the image config says {actual}; the image is mislabelled"
                    ),
                });
            }
            seen.push(actual.to_string());
            return Ok(());
        }
        found.push(SelectedImage {
            descriptor: desc.clone(),
            manifest,
            config,
        });
        Ok(())
    }

    /// Copies the image or index `desc` names (manifests, configs, layers) from this layout into
    /// `to`, verifying every blob; blobs `to` already holds are skipped. Tags are not copied.
    pub fn copy_image(&self, to: &Layout, desc: &Descriptor) -> Result<(), LayoutError> {
        let mut walk = IndexWalk::default();
        self.copy_tree(to, desc, 1, &mut walk)
    }

    fn copy_tree(
        &self,
        to: &Layout,
        desc: &Descriptor,
        depth: usize,
        walk: &mut IndexWalk,
    ) -> Result<(), LayoutError> {
        if to.has_blob(&desc.digest) && depth > 1 && !index::is_index_media_type(&desc.media_type) {
            // A manifest is written after its blobs, so its presence means it is complete.
            return Ok(());
        }
        let bytes = if index::is_index_media_type(&desc.media_type) {
            let Some(bytes) = walk.enter(self, desc, depth)? else {
                return Ok(());
            };
            let idx = index::parse(&bytes)?;
            walk.check_entries(desc, &idx)?;
            for child in &idx.manifests {
                self.copy_tree(to, child, depth + 1, walk)?;
            }
            bytes
        } else {
            if !walk.image(desc)? {
                return Ok(());
            }
            let bytes = self.read_blob(desc, MAX_JSON_BLOB)?;
            let manifest = image::parse_manifest(&bytes)?;
            self.copy_blob(to, &manifest.config)?;
            for l in &manifest.layers {
                self.copy_blob(to, l)?;
            }
            bytes
        };
        to.write_blob(&desc.media_type, &bytes)?;
        Ok(())
    }

    /// Streams one blob into `to`, checking digest and size.
    fn copy_blob(&self, to: &Layout, desc: &Descriptor) -> Result<(), LayoutError> {
        if to.has_blob(&desc.digest) {
            return Ok(());
        }
        let src = self.blob_path(&desc.digest);
        let file = self.open_blob(desc, u64::MAX)?.file;
        let mut r = HashingReader::new(Interruptible::new(file, &to.cancel).take(desc.size + 1));
        let tmp = to.temp_blob()?;
        let mut w = BufWriter::new(tmp);
        io::copy(&mut r, &mut w).map_err(io_err("copy blob", &src))?;
        let (digest, size) = r.finish();
        if digest != desc.digest || size != desc.size {
            return Err(LayoutError::BlobMismatch {
                path: src,
                digest: desc.digest.clone(),
                size: desc.size,
                found: format!("{digest}, {size} bytes"),
            });
        }
        let tmp = w.into_inner().map_err(|e| LayoutError::Io {
            op: "write",
            path: to.blob_dir(),
            source: e.into_error(),
        })?;
        to.persist(tmp, &digest)
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join(BLOB_DIR)
    }

    /// A blob's path relative to the layout directory.
    fn blob_rel(&self, digest: &Digest) -> PathBuf {
        Path::new(BLOB_DIR).join(digest.hex())
    }

    /// Reads `name` (`oci-layout`, `index.json`) from the layout directory, at most `cap` bytes.
    fn read_capped(&self, name: &str, cap: u64) -> Result<Vec<u8>, LayoutError> {
        fsafe::read_in(&self.root, Path::new(name), cap).map_err(|e| match e.why {
            Why::TooLarge { .. } => LayoutError::Invalid {
                place: e.path.display().to_string(),
                why: format!("larger than {cap} bytes"),
            },
            _ => file_err("open")(e),
        })
    }

    fn check_marker(&self) -> Result<(), LayoutError> {
        let not = |why: String| LayoutError::NotALayout {
            path: self.root.clone(),
            why,
        };
        let bytes = self
            .read_capped("oci-layout", 4096)
            .map_err(|e| not(e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| not(format!("oci-layout is not JSON: {e}")))?;
        match v.get("imageLayoutVersion").and_then(Value::as_str) {
            Some("1.0.0") => Ok(()),
            other => Err(not(format!(
                "oci-layout has imageLayoutVersion {other:?}, expected \"1.0.0\""
            ))),
        }
    }

    /// Holds `index.json` for a read-modify-write: against this process's other threads and
    /// against every other process (see `crate::lock`).
    fn lock_index(
        &self,
    ) -> Result<(std::sync::MutexGuard<'static, ()>, crate::lock::DirLock), LayoutError> {
        let threads = INDEX_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let process = crate::lock::acquire(
            &self.root,
            crate::lock::INDEX_LOCK,
            INDEX_LOCK_WAIT,
            &crate::exec::Cancel::new(),
            &|_| {},
        )
        .map_err(|e| LayoutError::Invalid {
            place: format!("{}/index.json", self.root.display()),
            why: e.to_string(),
        })?;
        Ok((threads, process))
    }

    fn write_index_json(&self, idx: &Index) -> Result<(), LayoutError> {
        let path = self.root.join("index.json");
        let bytes = canonical(idx).map_err(|source| LayoutError::Json {
            path: path.clone(),
            source,
        })?;
        atomic_write(&self.root, &path, &bytes)
    }

    fn temp_blob(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        tempfile::Builder::new()
            .prefix(".tmp-shipit-")
            .tempfile_in(self.blob_dir())
            .map_err(io_err("create a temporary file in", &self.blob_dir()))
    }

    /// Flushes a finished temporary blob to disk and renames it to its digest.
    fn persist(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(()); // dropping `tmp` deletes it
        }
        finish_file(tmp, &dest)
    }
}

fn finish_file(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), LayoutError> {
    let f = tmp.as_file();
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err("chmod", tmp.path()))?;
    f.sync_all().map_err(io_err("sync", tmp.path()))?;
    tmp.persist(dest)
        .map_err(|e| io_err("rename into place", dest)(e.error))?;
    Ok(())
}

fn atomic_write(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-shipit-")
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
    finish_file(tmp, dest)
}

/// One bounded walk over nested indexes: how deep it went, which indexes it read (each once),
/// and which images it reached, checked against `MAX_INDEX_DEPTH`, `MAX_INDEX_ENTRIES` and
/// `MAX_PLATFORM_IMAGES`. Content addressing rules out cycles; this rules out blow-ups (a chain
/// 10 000 deep, ten indexes each listing the same thousand entries).
#[derive(Debug, Default)]
pub struct IndexWalk {
    indexes: HashSet<Digest>,
    images: HashSet<Digest>,
    labelled: HashSet<(Digest, Option<String>)>,
}

impl IndexWalk {
    /// Reads the index `desc` found at `depth` (the first is 1) from `layout`; None when this
    /// walk read it already.
    pub fn enter(
        &mut self,
        layout: &Layout,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<Option<Vec<u8>>, LayoutError> {
        if depth > MAX_INDEX_DEPTH {
            return Err(LayoutError::Limit {
                what: format!(
                    "indexes nested more than {MAX_INDEX_DEPTH} deep (index {} is at depth {depth})",
                    desc.digest
                ),
                limit: format!("{MAX_INDEX_DEPTH} levels of nested indexes"),
            });
        }
        if !self.indexes.insert(desc.digest.clone()) {
            return Ok(None);
        }
        layout.read_blob(desc, MAX_JSON_BLOB).map(Some)
    }

    /// Checks the number of entries of the index `desc`.
    pub fn check_entries(&self, desc: &Descriptor, idx: &Index) -> Result<(), LayoutError> {
        if idx.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(LayoutError::Limit {
                what: format!(
                    "index {} lists {} entries",
                    desc.digest,
                    idx.manifests.len()
                ),
                limit: format!("{MAX_INDEX_ENTRIES} entries per index"),
            });
        }
        Ok(())
    }

    /// Checks the number of entries of a list to walk (e.g. `index.json`).
    pub fn check_count(&self, n: usize) -> Result<(), LayoutError> {
        if n > MAX_INDEX_ENTRIES {
            return Err(LayoutError::Limit {
                what: format!("index.json lists {n} entries"),
                limit: format!("{MAX_INDEX_ENTRIES} entries per index"),
            });
        }
        Ok(())
    }

    /// Counts the image manifest `desc`: false when the same digest with the same platform
    /// label was counted already (a duplicate to skip).
    pub fn image(&mut self, desc: &Descriptor) -> Result<bool, LayoutError> {
        let label = desc.platform.as_ref().map(|p| p.to_string());
        if !self.labelled.insert((desc.digest.clone(), label)) {
            return Ok(false);
        }
        self.images.insert(desc.digest.clone());
        if self.images.len() > MAX_PLATFORM_IMAGES {
            return Err(LayoutError::Limit {
                what: format!("the indexes reach more than {MAX_PLATFORM_IMAGES} distinct images"),
                limit: format!("{MAX_PLATFORM_IMAGES} images"),
            });
        }
        Ok(true)
    }
}

fn empty_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests: Vec::new(),
        annotations: None,
        extra: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::ImageSpec;

    fn image_in(l: &Layout, platform: &str, content: &[u8]) -> BuiltImage {
        let (_, digests) = l
            .write_layer(
                &[Entry::file("bin/app", content.to_vec(), 0o755)],
                1_700_000_000,
            )
            .unwrap();
        let spec = ImageSpec {
            platform: Platform::parse(platform).unwrap(),
            epoch: 1_700_000_000,
            ..ImageSpec::default()
        };
        let img = image::build(None, &[digests], &spec).unwrap();
        l.write_image(&img).unwrap();
        img
    }

    #[test]
    fn create_write_read_and_verify_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(&dir.path().join("oci")).unwrap();
        assert_eq!(
            fs::read(l.root().join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        assert_eq!(
            fs::read_to_string(l.root().join("index.json")).unwrap(),
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
        let d = l.write_blob("application/octet-stream", b"hello").unwrap();
        assert_eq!(d.digest, Digest::of(b"hello"));
        assert_eq!(
            l.write_blob("application/octet-stream", b"hello").unwrap(),
            d
        );
        assert_eq!(l.read_blob(&d, 100).unwrap(), b"hello");
        assert!(matches!(
            l.read_blob(&d, 4),
            Err(LayoutError::TooLarge { .. })
        ));

        let src = dir.path().join("src");
        fs::write(&src, b"from a file").unwrap();
        let f = l.write_blob_from_file("x/y", &src).unwrap();
        assert_eq!((f.digest.clone(), f.size), (Digest::of(b"from a file"), 11));
        assert_eq!(
            fs::metadata(l.blob_path(&f.digest))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );

        // Tampering is caught; no temporary files are left behind.
        fs::write(l.blob_path(&d.digest), b"HELLO").unwrap();
        let err = l.read_blob(&d, 100).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        let names: Vec<_> = fs::read_dir(l.blob_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
            "{names:?}"
        );

        // Re-opening works; a directory that is not a layout is refused.
        Layout::open(l.root()).unwrap();
        Layout::create(l.root()).unwrap();
        let err = Layout::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not an OCI image layout"), "{err}");
    }

    #[test]
    fn tags_replace_resolve_and_stay_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let a = image_in(&l, "linux/amd64", b"a");
        let b = image_in(&l, "linux/arm64", b"b");
        l.tag("v2", &a.descriptor).unwrap();
        l.tag("v1", &a.descriptor).unwrap();
        l.tag("v2", &b.descriptor).unwrap();
        let tags: Vec<String> = l
            .entries()
            .unwrap()
            .iter()
            .map(|d| d.annotation(REF_NAME).unwrap().to_string())
            .collect();
        assert_eq!(tags, ["v1", "v2"]);
        assert_eq!(l.resolve("v2").unwrap().digest, b.descriptor.digest);
        let err = l.resolve("v3").unwrap_err().to_string();
        assert!(err.contains("v1, v2"), "{err}");
        assert!(matches!(
            l.tag("../x", &a.descriptor),
            Err(LayoutError::BadTag(_))
        ));
        let missing = Descriptor::new(media::OCI_MANIFEST, Digest::of(b"nope"), 4);
        assert!(matches!(
            l.tag("v4", &missing),
            Err(LayoutError::MissingBlob { .. })
        ));

        // Several at once: all move in one write, or none (a bad tag or a missing blob).
        let before = std::fs::read(dir.path().join("index.json")).unwrap();
        for bad in [
            vec![("v5", &a.descriptor), ("../x", &b.descriptor)],
            vec![("v5", &a.descriptor), ("v6", &missing)],
        ] {
            assert!(l.tag_all(&bad).is_err());
            assert_eq!(
                std::fs::read(dir.path().join("index.json")).unwrap(),
                before
            );
        }
        l.tag_all(&[
            ("v1", &b.descriptor),
            ("latest", &b.descriptor),
            ("v0", &a.descriptor),
        ])
        .unwrap();
        let tags: Vec<(String, Digest)> = l
            .entries()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d.annotation(REF_NAME).unwrap().to_string(),
                    d.digest.clone(),
                )
            })
            .collect();
        let (da, db) = (a.descriptor.digest.clone(), b.descriptor.digest.clone());
        assert_eq!(
            tags,
            [
                ("latest".to_string(), db.clone()),
                ("v0".to_string(), da),
                ("v1".to_string(), db.clone()),
                ("v2".to_string(), db)
            ]
        );
    }

    /// 20 processes tag one layout at once, 10 tags each: every tag is there afterwards. (The
    /// child processes are this test binary, re-run on this test with the layout in the env.)
    #[test]
    fn concurrent_tag_writers_in_many_processes_lose_no_tag() {
        const CHILD: &str = "SHIPIT_TEST_TAG_CHILD";
        if let Ok(spec) = std::env::var(CHILD) {
            let (dir, n, desc) = spec
                .split_once('|')
                .and_then(|(d, rest)| {
                    rest.split_once('|')
                        .map(|(n, desc)| (d.to_string(), n.to_string(), desc.to_string()))
                })
                .unwrap();
            let desc: Descriptor = serde_json::from_str(&desc).unwrap();
            let l = Layout::create(Path::new(&dir)).unwrap();
            for i in 0..10 {
                l.tag(&format!("p{n}-{i}"), &desc).unwrap();
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let img = image_in(&l, "linux/amd64", b"a");
        let desc = serde_json::to_string(&img.descriptor).unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..20)
            .map(|n| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "oci::layout::tests::concurrent_tag_writers_in_many_processes_lose_no_tag",
                        "--test-threads=1",
                    ])
                    .env(CHILD, format!("{}|{n}|{desc}", dir.path().display()))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let mut tags: Vec<String> = l
            .entries()
            .unwrap()
            .iter()
            .filter_map(|d| d.annotation(REF_NAME).map(str::to_string))
            .collect();
        tags.sort();
        let mut want: Vec<String> = (0..20)
            .flat_map(|n| (0..10).map(move |i| format!("p{n}-{i}")))
            .collect();
        want.sort();
        assert_eq!(tags, want);
    }

    #[test]
    fn oci_refs() {
        let r = |path: &str, tag: Option<&str>| OciRef {
            path: path.into(),
            tag: tag.map(str::to_string),
        };
        assert_eq!(parse_oci_ref("oci:dir").unwrap(), r("dir", None));
        assert_eq!(parse_oci_ref("oci:dir:tag").unwrap(), r("dir", Some("tag")));
        assert_eq!(
            parse_oci_ref("oci:/abs/dir:tag").unwrap(),
            r("/abs/dir", Some("tag"))
        );
        assert!(matches!(
            parse_oci_ref("oci:dir:"),
            Err(LayoutError::BadTag(_))
        ));
        // The path ends at the first colon: a second one is part of the tag, which rejects it.
        assert!(parse_oci_ref("oci:a:b:c").is_err());
        assert_eq!(
            parse_oci_ref("oci:dist/oci:1.2.3").unwrap(),
            OciRef {
                path: "dist/oci".into(),
                tag: Some("1.2.3".into())
            }
        );
        assert_eq!(
            parse_oci_ref("oci:/srv/base").unwrap(),
            OciRef {
                path: "/srv/base".into(),
                tag: None
            }
        );
        for bad in [
            "dist/oci",
            "oci:",
            "oci::tag",
            "oci:dir:",
            "oci:dir:a/b",
            "oci:dir:-x",
        ] {
            assert!(parse_oci_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_platforms_from_indexes_and_from_configs() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let amd = image_in(&l, "linux/amd64", b"a");
        let arm = image_in(&l, "linux/arm64/v8", b"b");
        let v7 = image_in(&l, "linux/arm/v7", b"c");
        // Single-platform manifests tagged without a platform field (as umoci does).
        let strip = |d: &Descriptor| Descriptor {
            platform: None,
            ..d.clone()
        };
        l.tag("amd", &strip(&amd.descriptor)).unwrap();
        l.tag("arm", &strip(&arm.descriptor)).unwrap();
        let p = |s| Platform::parse(s).unwrap();
        let got = l.select_platform(Some("arm"), &p("linux/arm64")).unwrap();
        assert_eq!(got.descriptor.digest, arm.descriptor.digest);
        assert_eq!(got.manifest, arm.manifest);
        let got = l.select_platform(None, &p("linux/amd64")).unwrap();
        assert_eq!(got.descriptor.digest, amd.descriptor.digest);
        let err = l
            .select_platform(Some("amd"), &p("linux/arm64"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("platforms there: linux/amd64"), "{err}");

        // An index, nested in another index.
        let inner = index::build(
            &[
                (amd.descriptor.clone(), p("linux/amd64")),
                (v7.descriptor.clone(), p("linux/arm/v7")),
            ],
            &BTreeMap::new(),
        )
        .unwrap();
        l.write_index(&inner).unwrap();
        let outer_bytes = canonical(&Index {
            manifests: vec![inner.descriptor.clone()],
            ..empty_index()
        })
        .unwrap();
        let outer = l.write_blob(media::OCI_INDEX, &outer_bytes).unwrap();
        l.tag("multi", &outer).unwrap();
        let got = l.select_platform(Some("multi"), &p("linux/arm")).unwrap();
        assert_eq!(got.descriptor.digest, v7.descriptor.digest);
        assert!(got.into_base().unwrap().layers().len() == 1);
        let err = l
            .select_platform(Some("multi"), &p("linux/arm/v6"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux/amd64, linux/arm/v7"), "{err}");

        // Without a tag, amd64 is now reachable through "amd" and "multi": same digest, fine.
        l.select_platform(None, &p("linux/amd64")).unwrap();
        // Two different amd64 images are ambiguous.
        let other = image_in(&l, "linux/amd64", b"other");
        l.tag("amd2", &other.descriptor).unwrap();
        let err = l
            .select_platform(None, &p("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("oci:PATH:TAG"), "{err}");
    }

    fn mkfifo(p: &Path) {
        fs::remove_file(p).unwrap();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// A base layout (`oci:` base) whose manifest is a FIFO, whose layer leads out through a
    /// link, or whose blob directory is a link: refused at once, naming the file.
    #[test]
    fn base_layouts_with_fifos_or_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = |s| Platform::parse(s).unwrap();
        let l = Layout::create(&dir.path().join("fifo")).unwrap();
        let img = image_in(&l, "linux/amd64", b"a");
        l.tag("t", &img.descriptor).unwrap();
        mkfifo(&l.blob_path(&img.descriptor.digest));
        let err = l
            .select_platform(Some("t"), &p("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FIFO") && err.contains(img.descriptor.digest.hex()),
            "{err}"
        );

        let l = Layout::create(&dir.path().join("link")).unwrap();
        let to = Layout::create(&dir.path().join("to")).unwrap();
        let img = image_in(&l, "linux/amd64", b"b");
        let layer = l.blob_path(&img.manifest.layers[0].digest);
        fs::rename(&layer, dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), &layer).unwrap();
        let err = l.copy_image(&to, &img.descriptor).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!to.has_blob(&img.manifest.layers[0].digest));

        let l = Layout::create(&dir.path().join("linked-blobs")).unwrap();
        fs::rename(l.root().join("blobs"), dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), l.root().join("blobs")).unwrap();
        let err = Layout::open(l.root()).unwrap_err().to_string();
        assert!(err.contains("symbolic link, not a directory"), "{err}");
    }

    /// Base selection and copying share verify's limits: depth, entries, distinct images.
    #[test]
    fn index_walks_are_bounded_and_visit_each_index_once() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let to = Layout::create(&dir.path().join("to")).unwrap();
        let p = |s| Platform::parse(s).unwrap();
        let img = image_in(&l, "linux/amd64", b"a");
        let wrap = |inner: &Descriptor, n: usize| {
            let bytes = canonical(&Index {
                manifests: vec![inner.clone(); n],
                ..empty_index()
            })
            .unwrap();
            l.write_blob(media::OCI_INDEX, &bytes).unwrap()
        };
        // Eight levels are fine, nine are not.
        let mut d = img.descriptor.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            d = wrap(&d, 1);
        }
        l.tag("eight", &d).unwrap();
        l.select_platform(Some("eight"), &p("linux/amd64")).unwrap();
        l.copy_image(&to, &d).unwrap();
        l.tag("nine", &wrap(&d, 1)).unwrap();
        let err = l
            .select_platform(Some("nine"), &p("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than 8 deep"), "{err}");
        // 1 000 copies of an index listing 1 000 copies: read once, one image.
        let wide = wrap(&wrap(&img.descriptor, 1000), 1000);
        l.tag("wide", &wide).unwrap();
        let got = l.select_platform(Some("wide"), &p("linux/amd64")).unwrap();
        assert_eq!(got.descriptor.digest, img.descriptor.digest);
        l.copy_image(&to, &wide).unwrap();
        // Over the per-index limit.
        l.tag("wider", &wrap(&img.descriptor, MAX_INDEX_ENTRIES + 1))
            .unwrap();
        let err = l
            .select_platform(Some("wider"), &p("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1025 entries") && err.contains("1024 entries per index"),
            "{err}"
        );
    }

    #[test]
    fn copies_images_and_indexes_completely() {
        let dir = tempfile::tempdir().unwrap();
        let from = Layout::create(&dir.path().join("a")).unwrap();
        let to = Layout::create(&dir.path().join("b")).unwrap();
        let amd = image_in(&from, "linux/amd64", b"a");
        let arm = image_in(&from, "linux/arm64", b"b");
        let idx = index::build(
            &[
                (
                    amd.descriptor.clone(),
                    Platform::parse("linux/amd64").unwrap(),
                ),
                (
                    arm.descriptor.clone(),
                    Platform::parse("linux/arm64").unwrap(),
                ),
            ],
            &BTreeMap::new(),
        )
        .unwrap();
        from.write_index(&idx).unwrap();
        from.copy_image(&to, &amd.descriptor).unwrap();
        assert!(to.has_blob(&amd.descriptor.digest) && to.has_blob(&amd.config.digest));
        assert!(!to.has_blob(&arm.descriptor.digest));
        from.copy_image(&to, &idx.descriptor).unwrap();
        let blobs = |l: &Layout| {
            let mut v: Vec<_> = fs::read_dir(l.blob_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(blobs(&from), blobs(&to));
        // A corrupt source blob is refused, not copied.
        let third = Layout::create(&dir.path().join("c")).unwrap();
        fs::write(from.blob_path(&amd.manifest.layers[0].digest), b"junk").unwrap();
        assert!(matches!(
            from.copy_image(&third, &amd.descriptor),
            Err(LayoutError::BlobMismatch { .. })
        ));
        assert!(!third.has_blob(&amd.manifest.layers[0].digest));
    }

    #[test]
    fn a_batch_of_blobs_lands_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(&dir.path().join("oci")).unwrap();
        let there = l.write_blob("application/json", b"{}").unwrap();
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("blob {i}").into_bytes()).collect();
        let mut batch: Vec<(&str, &[u8])> = vec![("application/json", b"{}")];
        batch.extend(many.iter().map(|b| ("text/plain", b.as_slice())));
        batch.push(("text/plain", many[3].as_slice()));
        let descs = l.write_blobs(&batch).unwrap();
        assert_eq!(descs.len(), batch.len());
        assert_eq!(descs[0], there);
        for ((media, bytes), d) in batch.iter().zip(&descs) {
            assert_eq!(
                (d.media_type.as_str(), d.size),
                (*media, bytes.len() as u64)
            );
            assert_eq!(&fs::read(l.blob_path(&d.digest)).unwrap(), bytes);
        }
        let names: Vec<String> = fs::read_dir(l.blob_path(&there.digest).parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 41, "no temporary file is left: {names:?}");
        assert!(l.write_blobs(&[]).unwrap().is_empty());
    }
}
