//! Turns an image's layers into a private rootfs, treating every byte as hostile.
//!
//! The verifier needs the image's files on disk (to read ELF headers, `libc.so.6`, `/etc/passwd`
//! and to run the binary under QEMU). Base layers come from anywhere, so this module is the one
//! place where untrusted archives touch the filesystem. It follows the rules of
//! `research/reliab.md` §2.6: blobs are size- and digest-checked before use (and the uncompressed
//! stream against the config's `diff_id`), everything is extracted into a fresh 0700 temporary
//! directory that is deleted on any error, every path is resolved component by component with
//! fd-relative syscalls (`openat(O_NOFOLLOW)`, `mkdirat`, `symlinkat`, `linkat`, `unlinkat`,
//! `fchmod`) so nothing is ever written, created or chmod-ed through a symlink that leads out of
//! the root, and the OCI whiteout rules are applied. The `tar` crate is used only as a parser.
//!
//! Policy, in short. Refused (the whole unpack fails): `..` components, absolute names, names that
//! resolve to the root (except a plain directory entry such as mmdebstrap's `./`, which is
//! skipped and reported), NUL, empty or non-UTF-8 names, duplicate paths within a layer, hardlinks
//! whose target is not an already extracted regular file in the root, writes through a symlink
//! that is absolute or climbs above the root, malformed whiteouts, PAX sizes that disagree with the
//! header, sparse files, corrupt or truncated archives, exceeded [`Limits`]. Neutralised and
//! reported: device nodes and FIFOs (skipped), setuid/setgid/sticky and group/other write bits
//! (stripped), xattrs (never restored), PAX global headers and `.wh..wh.` meta files (skipped).
//! Ownership is ignored: everything belongs to the current user, and directories always keep
//! `u+rwx` so later layers and the cleanup can work without root.
//!
//! Layers several images of one run share ([`SharedLayers`]) are read once: the first unpack
//! records the entries it applied and later ones replay them through the same rules.
//!
//! Reading back ([`read_in_root`], [`resolve_in_root`]) follows symlinks with chroot semantics (an
//! absolute target `/usr/lib` means `<root>/usr/lib`, `..` stops at the root), bounded to 40 hops,
//! and only ever returns regular files, size-capped (CVE-2024-9676 shape).

use crate::exec::Interruptible;
use crate::oci::digest::{Digest, DigestError};
use crate::oci::media;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[cfg(test)]
mod tests;

/// The largest value a ustar octal size field can hold; above it a PAX `size` is required.
const USTAR_MAX_SIZE: u64 = 0o77777777777;
/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: u32 = 40;
/// Longest single path component Linux accepts.
const NAME_MAX: usize = 255;

/// One layer of an image, bottom layer first in the list given to [`unpack_image`].
#[derive(Debug, Clone)]
pub struct LayerInput {
    /// Descriptor digest: the sha256 of the blob as stored (compressed).
    pub digest: Digest,
    /// Descriptor size in bytes.
    pub size: u64,
    /// Descriptor media type.
    pub media_type: String,
    /// The blob on disk.
    pub blob: PathBuf,
    /// The config's `rootfs.diff_ids` entry for this layer, if known (sha256 of the tar).
    pub diff_id: Option<Digest>,
}

impl LayerInput {
    /// Builds a layer input from descriptor strings, validating both digests first (a digest
    /// such as `sha256:../../x` never reaches a path or a comparison).
    pub fn parse(
        digest: &str,
        size: u64,
        media_type: &str,
        blob: impl Into<PathBuf>,
        diff_id: Option<&str>,
    ) -> Result<LayerInput, UnpackError> {
        let digest = Digest::parse(digest).map_err(|source| UnpackError::Descriptor {
            field: "digest",
            source,
        })?;
        let diff_id =
            diff_id
                .map(Digest::parse)
                .transpose()
                .map_err(|source| UnpackError::Descriptor {
                    field: "diff_id",
                    source,
                })?;
        Ok(LayerInput {
            digest,
            size,
            media_type: media_type.to_string(),
            blob: blob.into(),
            diff_id,
        })
    }
}

/// Resource limits; every one is checked while streaming, so a bomb fails fast.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Total uncompressed bytes over all layers (tar headers and padding included).
    pub max_total_bytes: u64,
    /// Total tar entries over all layers.
    pub max_entries: u64,
    /// Longest entry name or link target, in bytes.
    pub max_path_bytes: usize,
    /// Most components in one entry name.
    pub max_path_depth: usize,
    /// Largest single regular file.
    pub max_file_bytes: u64,
    /// Most bytes of headers (PAX extensions, GNU long names) in front of one entry.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    /// Generous for real images (a Debian base is ~100 MB and ~10 000 entries).
    fn default() -> Self {
        Limits {
            max_total_bytes: 8 << 30,
            max_entries: 1_000_000,
            max_path_bytes: 4096,
            max_path_depth: 128,
            max_file_bytes: 4 << 30,
            max_header_bytes: 1 << 20,
        }
    }
}

/// Where to unpack and how much to allow.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Directory in which the private temporary rootfs is created (default: the system temp dir).
    pub parent: Option<PathBuf>,
    pub limits: Limits,
    /// Stops hashing and unpacking within a few MiB once it fires (the partial tree is removed).
    pub cancel: crate::exec::Cancel,
    /// Layers several images of one run share: each is read and checked once, then replayed
    /// into every other rootfs that has it (see [`SharedLayers`]).
    pub shared: Option<std::sync::Arc<SharedLayers>>,
}

/// An unpacked image: a private 0700 directory, removed when this value is dropped.
#[derive(Debug)]
pub struct Rootfs {
    dir: tempfile::TempDir,
    report: UnpackReport,
}

impl Rootfs {
    /// The root directory of the merged tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What was written and what was neutralised.
    pub fn report(&self) -> &UnpackReport {
        &self.report
    }

    /// [`read_in_root`] on this rootfs.
    pub fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
        read_in_root(self.path(), path, max_bytes)
    }

    /// [`resolve_in_root`] on this rootfs.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ReadError> {
        resolve_in_root(self.path(), path)
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    pub layers: usize,
    /// Layers replayed from an earlier unpack of the same blob in this run (see [`SharedLayers`])
    /// instead of being read, decompressed and hashed again.
    pub layers_reused: usize,
    /// Tar entries read (all layers, extension headers not counted).
    pub entries_read: u64,
    /// Files, directories, symlinks and hardlinks created or updated.
    pub entries_written: u64,
    /// Bytes of regular-file content written.
    pub bytes_written: u64,
    /// Whiteouts (explicit and opaque) applied.
    pub whiteouts: u64,
    /// Everything skipped or stripped instead of refused, with the reason.
    pub neutralised: Vec<Neutralised>,
}

/// One entry that was skipped or altered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neutralised {
    /// Short layer digest.
    pub layer: String,
    /// Entry name (escaped if not UTF-8).
    pub entry: String,
    pub action: Neutralisation,
}

/// The ways an entry is neutralised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Neutralisation {
    /// Character/block device or FIFO: never created (no `mknod`).
    SkippedDevice { kind: &'static str },
    /// setuid/setgid/sticky or group/other write bits removed.
    StrippedModeBits { from: u32, to: u32 },
    /// Extended attributes (e.g. `security.capability`) not restored.
    DroppedXattrs { keys: Vec<String> },
    /// A directory entry naming the root (`./`): the root keeps its private mode.
    SkippedRootEntry,
    /// A PAX global header: carries no file.
    SkippedGlobalHeader,
    /// A `.wh..wh.*` meta file other than the opaque marker (aufs leftovers).
    SkippedWhiteoutMeta,
}

impl fmt::Display for Neutralisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Neutralisation::SkippedDevice { kind } => {
                write!(
                    f,
                    "{kind} skipped: device nodes and FIFOs are never created"
                )
            }
            Neutralisation::StrippedModeBits { from, to } => write!(
                f,
                "mode {from:04o} reduced to {to:04o}: setuid/setgid/sticky and group/other write bits are stripped"
            ),
            Neutralisation::DroppedXattrs { keys } => {
                write!(f, "extended attributes not restored: {}", keys.join(", "))
            }
            Neutralisation::SkippedRootEntry => {
                f.write_str("directory entry for the image root skipped; the root stays private")
            }
            Neutralisation::SkippedGlobalHeader => f.write_str("PAX global header skipped"),
            Neutralisation::SkippedWhiteoutMeta => {
                f.write_str("whiteout meta file skipped (only .wh..wh..opq has a meaning)")
            }
        }
    }
}

impl fmt::Display for Neutralised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layer {}: entry \"{}\": {}",
            self.layer, self.entry, self.action
        )
    }
}

/// Why an unpack failed. The temporary rootfs is already gone when you see this.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: entry \"{entry}\": {rule}")]
    Entry {
        layer: String,
        entry: String,
        rule: Rule,
    },
    #[error("layer {layer}: {problem}")]
    Layer {
        layer: String,
        problem: LayerProblem,
    },
    #[error("layer descriptor {field} is invalid: {source}")]
    Descriptor {
        field: &'static str,
        source: DigestError,
    },
    #[error(
        "cannot create a private temporary directory under {}: {source}; choose another parent directory",
        parent.display()
    )]
    TempDir { parent: PathBuf, source: io::Error },
}

/// The rule an entry broke.
#[derive(Debug, thiserror::Error)]
pub enum Rule {
    #[error("path climbs out of the image root (\"..\" component)")]
    DotDot,
    #[error("absolute path refused: layer entries must be relative to the image root")]
    Absolute,
    #[error("name resolves to the image root itself; only a directory entry may name the root")]
    NamesRoot,
    #[error("empty name")]
    Empty,
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name is not valid UTF-8 (refused by policy)")]
    NonUtf8,
    #[error("path is {len} bytes, over the limit of {max}")]
    PathTooLong { len: usize, max: usize },
    #[error("a path component is longer than {NAME_MAX} bytes")]
    ComponentTooLong,
    #[error("path has {depth} components, over the limit of {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("duplicate path within the layer (an earlier entry has the same name)")]
    Duplicate,
    #[error("would replace a directory that earlier entries of this same layer populated")]
    ReplacesOwnDirectory,
    #[error("hardlink target \"{target}\" {why}")]
    HardlinkTarget { target: String, why: String },
    #[error("symlink target {why}")]
    SymlinkTarget { why: &'static str },
    #[error(
        "path goes through symlink \"{link}\" -> \"{target}\", which leads outside the image root"
    )]
    LeavesRoot { link: String, target: String },
    #[error("more than {MAX_SYMLINK_HOPS} symlinks while resolving the path")]
    TooManySymlinks,
    #[error("parent \"{component}\" is not a directory")]
    NotADirectory { component: String },
    #[error("whiteout \".wh.\" has no basename to delete")]
    WhiteoutNoName,
    #[error(
        "whiteout of \"{name}\" would delete outside its directory (traversal in a whiteout name)"
    )]
    WhiteoutTraversal { name: String },
    #[error("a parent component uses the reserved whiteout prefix \".wh.\"")]
    WhiteoutInPath,
    #[error("more than {max} entries (entry-count limit)")]
    TooManyEntries { max: u64 },
    #[error("file is {size} bytes, over the single-file limit of {max}")]
    FileTooLarge { size: u64, max: u64 },
    #[error(
        "PAX size {pax} disagrees with the header's size field {header} (parser-differential attack)"
    )]
    PaxSize { header: u64, pax: u64 },
    #[error("unsupported entry type {kind}")]
    Unsupported { kind: String },
    #[error("archive is truncated or unreadable inside this entry: {source}")]
    Truncated { source: io::Error },
    #[error("cannot {op}: {source}")]
    Io { op: &'static str, source: io::Error },
}

/// A layer-level failure (blob, stream or limits).
#[derive(Debug, thiserror::Error)]
pub enum LayerProblem {
    #[error(
        "unsupported layer media type \"{0}\" (supported: OCI tar+gzip, OCI tar, Docker rootfs.diff.tar.gzip)"
    )]
    MediaType(String),
    #[error(
        "zstd-compressed layers are not supported (media type \"{0}\"); use a gzip-compressed base image"
    )]
    Zstd(String),
    #[error("cannot read blob {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Refused(crate::oci::fsafe::FileError),
    #[error(
        "blob size mismatch: the blob is {actual} bytes but the descriptor declares {declared}; the blob is corrupt or the manifest is wrong"
    )]
    Size { declared: u64, actual: u64 },
    #[error(
        "blob digest mismatch: the blob hashes to {actual}, not the descriptor digest; the blob is corrupt or tampered with"
    )]
    Digest { actual: Digest },
    #[error(
        "diff_id mismatch: the uncompressed layer hashes to {actual}, but the image config's diff_id is {expected}"
    )]
    DiffId { expected: Digest, actual: Digest },
    #[error(
        "uncompressed data exceeds the limit of {max} bytes (decompression bomb?); raise Limits::max_total_bytes if the image really is that large"
    )]
    TotalLimit { max: u64 },
    #[error("extension headers (PAX / GNU long names) before one entry exceed {max} bytes")]
    HeaderLimit { max: u64 },
    #[error("corrupt or truncated archive: {0}")]
    Corrupt(io::Error),
}

/// Why a file could not be read out of a rootfs.
#[derive(Debug, thiserror::Error)]
#[error("cannot read \"{path}\" inside the rootfs {}: {why}", root.display())]
pub struct ReadError {
    pub root: PathBuf,
    pub path: String,
    pub why: ReadProblem,
}

/// The specific reason behind a [`ReadError`].
#[derive(Debug, thiserror::Error)]
pub enum ReadProblem {
    #[error("not found")]
    NotFound,
    #[error("\"{component}\" is not a directory")]
    NotADirectory { component: String },
    #[error("more than {MAX_SYMLINK_HOPS} symlinks")]
    TooManySymlinks,
    #[error("not a regular file (it is a {kind})")]
    NotRegular { kind: &'static str },
    #[error("file is larger than the {max}-byte cap")]
    TooLarge { max: u64 },
    #[error("path contains a NUL byte")]
    Nul,
    #[error("{0}")]
    Io(io::Error),
}

/// Why a manifest/index document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("document is not a JSON object: {0}")]
    NotJson(String),
    #[error(
        "document has both \"manifests\" and \"layers\": it is ambiguous (CVE-2021-41190) and refused"
    )]
    Ambiguous,
    #[error("document mediaType \"{found}\" disagrees with the declared media type \"{declared}\"")]
    MediaTypeMismatch { found: String, declared: String },
    #[error("declared media type \"{declared}\" is an index but the document has no \"manifests\"")]
    NotAnIndex { declared: String },
    #[error(
        "declared media type \"{declared}\" is a manifest but the document has no \"layers\"/\"config\""
    )]
    NotAManifest { declared: String },
    #[error("unknown manifest media type \"{0}\"")]
    UnknownMediaType(String),
}

/// Refuses a manifest or index document whose shape or `mediaType` disagrees with the media type
/// it was served or referenced as (CVE-2021-41190: one document read as two things).
pub fn check_manifest_document(
    bytes: &[u8],
    declared_media_type: &str,
) -> Result<(), ManifestError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ManifestError::NotJson("top level is not an object".into()))?;
    let has_manifests = obj.contains_key("manifests");
    let has_layers = obj.contains_key("layers");
    if has_manifests && has_layers {
        return Err(ManifestError::Ambiguous);
    }
    if let Some(found) = obj.get("mediaType") {
        let found = found.as_str().unwrap_or("<not a string>");
        if found != declared_media_type {
            return Err(ManifestError::MediaTypeMismatch {
                found: found.to_string(),
                declared: declared_media_type.to_string(),
            });
        }
    }
    let declared = declared_media_type.to_string();
    match declared_media_type {
        media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => {
            if !has_manifests {
                return Err(ManifestError::NotAnIndex { declared });
            }
        }
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
            if !has_layers || !obj.contains_key("config") {
                return Err(ManifestError::NotAManifest { declared });
            }
        }
        other => return Err(ManifestError::UnknownMediaType(other.to_string())),
    }
    Ok(())
}

/// Unpacks `layers` (bottom first) into a new private rootfs under `opts.parent`.
///
/// On any error the temporary directory is removed before this returns.
pub fn unpack_image(layers: &[LayerInput], opts: &UnpackOptions) -> Result<Rootfs, UnpackError> {
    let parent = opts.parent.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("shipit-rootfs-")
        .tempdir_in(&parent)
        .map_err(|source| UnpackError::TempDir {
            parent: parent.clone(),
            source,
        })?;
    let root_fd = open_dir_path(dir.path()).map_err(|source| UnpackError::TempDir {
        parent: parent.clone(),
        source,
    })?;
    // tempfile honours the umask only; make the root private explicitly.
    fchmod(&root_fd, 0o700).map_err(|rule| UnpackError::TempDir {
        parent: parent.clone(),
        source: io::Error::other(rule.to_string()),
    })?;
    let mut report = UnpackReport {
        layers: layers.len(),
        ..UnpackReport::default()
    };
    let guard = Rc::new(RefCell::new(GuardState::default()));
    for layer in layers {
        let mut unpacker = LayerUnpacker {
            root: &root_fd,
            layer,
            short: layer.digest.short().to_string(),
            limits: &opts.limits,
            cancel: &opts.cancel,
            report: &mut report,
            guard: Rc::clone(&guard),
            seen: HashSet::new(),
            touched: HashSet::new(),
            record: None,
        };
        // An error drops `dir`, which deletes the whole partial tree.
        match &opts.shared {
            Some(shared) => shared.unpack(&mut unpacker, &guard)?,
            None => {
                unpacker.run(&guard)?;
            }
        }
    }
    Ok(Rootfs { dir, report })
}

/// The layers that several images of one verification run share (the same blob: shipit's
/// platform-independent layer, a base layer two images have in common), unpacked once each.
///
/// The first image that needs a shared layer unpacks it as any layer (size, digest, every entry
/// rule, `diff_id`) and records, on the side, the entries it applied: their names and headers as
/// parsed, and each regular file's bytes in a private store. Every later image replays that record
/// into its own rootfs through the same entry code: names, whiteouts, symlinks, hardlinks and
/// modes are checked again against that rootfs (what a layer may do depends on the layers below
/// it), file bytes are copied from the store (each rootfs keeps its own files: a check that writes
/// in one image never touches another's), the entry and byte limits count the layer as if it were
/// read again, and the recorded `diff_id` is compared with the image config's. Only a layer that
/// was applied completely is recorded: a refused one is read again (and refused again) by the
/// next image. A record is keyed by the blob's path, digest, size, media type and the limits, so
/// a same-named blob in another layout is read for itself.
pub struct SharedLayers {
    store: tempfile::TempDir,
    share: HashSet<Digest>,
    slots: std::sync::Mutex<std::collections::HashMap<String, SharedSlot>>,
    next_dir: std::sync::atomic::AtomicUsize,
    unpacked: std::sync::atomic::AtomicUsize,
    reused: std::sync::atomic::AtomicUsize,
}

type SharedSlot = std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<Recorded>>>>;

impl fmt::Debug for SharedLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLayers")
            .field("store", &self.store.path())
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

/// How many shared layers a run unpacked, and how many times it replayed one instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedStats {
    /// Distinct layer digests listed by more than one image of the run.
    pub shared: usize,
    /// Shared layers read from their blob (once each, unless one was refused).
    pub unpacked: usize,
    /// Times a shared layer was replayed into a rootfs instead of being read again.
    pub reused: usize,
}

/// A layer as the first image applied it.
struct Recorded {
    /// The `diff_id` computed from the tar stream.
    diff_id: Digest,
    /// Uncompressed bytes of the tar stream (what the total limit counts).
    tar_bytes: u64,
    ops: Vec<Op>,
}

/// One tar entry as parsed, with its file bytes in the store.
struct Op {
    raw_name: Vec<u8>,
    meta: StoredMeta,
    data: Option<PathBuf>,
}

/// The entry being recorded for [`SharedLayers`].
struct Recording {
    dir: PathBuf,
    ops: Vec<Op>,
}

impl SharedLayers {
    /// Shares the layers in `share` (the digests more than one image lists), storing recorded
    /// file bytes in a new private directory under `parent` (default: the system temp dir).
    pub fn new(share: HashSet<Digest>, parent: Option<&Path>) -> io::Result<SharedLayers> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let store = tempfile::Builder::new()
            .prefix("shipit-layers-")
            .tempdir_in(parent)?;
        std::fs::set_permissions(
            store.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        Ok(SharedLayers {
            store,
            share,
            slots: std::sync::Mutex::default(),
            next_dir: std::sync::atomic::AtomicUsize::new(0),
            unpacked: std::sync::atomic::AtomicUsize::new(0),
            reused: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// What this run shared so far.
    pub fn stats(&self) -> SharedStats {
        use std::sync::atomic::Ordering::SeqCst;
        SharedStats {
            shared: self.share.len(),
            unpacked: self.unpacked.load(SeqCst),
            reused: self.reused.load(SeqCst),
        }
    }

    /// Applies the unpacker's layer: replayed when recorded before, else read (and recorded
    /// when shared). Images that need the same layer at the same time wait for the first one.
    fn unpack(
        &self,
        unpacker: &mut LayerUnpacker<'_>,
        guard: &Rc<RefCell<GuardState>>,
    ) -> Result<(), UnpackError> {
        use std::sync::atomic::Ordering::SeqCst;
        let layer = unpacker.layer;
        if !self.share.contains(&layer.digest) {
            return unpacker.run(guard).map(|_| ());
        }
        let key = format!(
            "{}|{}|{}|{}|{:?}",
            layer.blob.display(),
            layer.digest,
            layer.size,
            layer.media_type,
            unpacker.limits
        );
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            std::sync::Arc::clone(slots.entry(key).or_default())
        };
        // A panic while recording leaves the slot empty: the next image reads the layer itself.
        let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(recorded) = held.clone() {
            drop(held);
            unpacker.replay(&recorded, guard)?;
            self.reused.fetch_add(1, SeqCst);
            return Ok(());
        }
        let dir = self
            .store
            .path()
            .join(self.next_dir.fetch_add(1, SeqCst).to_string());
        std::fs::create_dir(&dir).map_err(|source| UnpackError::TempDir {
            parent: self.store.path().to_path_buf(),
            source,
        })?;
        unpacker.record = Some(Recording {
            dir: dir.clone(),
            ops: Vec::new(),
        });
        let before = guard.borrow().total;
        let result = unpacker.run(guard);
        let recording = unpacker.record.take();
        match (result, recording) {
            (Ok(diff_id), Some(recording)) => {
                *held = Some(std::sync::Arc::new(Recorded {
                    diff_id,
                    tar_bytes: guard.borrow().total - before,
                    ops: recording.ops,
                }));
                self.unpacked.fetch_add(1, SeqCst);
                Ok(())
            }
            (result, _) => {
                std::fs::remove_dir_all(&dir).ok();
                result.map(|_| ())
            }
        }
    }
}

#[derive(Default)]
struct GuardState {
    total: u64,
    in_header: bool,
    header_bytes: u64,
    tripped: Option<Trip>,
}

#[derive(Clone, Copy)]
enum Trip {
    Total,
    Header,
}

/// Counts, caps and hashes the uncompressed stream.
struct GuardedReader<R> {
    inner: R,
    hasher: Sha256,
    state: Rc<RefCell<GuardState>>,
    max_total: u64,
    max_header: u64,
}

impl<R: Read> Read for GuardedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.borrow_mut();
        if st.tripped.is_some() {
            return Err(io::Error::other("unpack limit exceeded"));
        }
        // Never ask for more than one byte past the remaining budget.
        let room = self.max_total.saturating_sub(st.total).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        st.total += n as u64;
        if st.total > self.max_total {
            st.tripped = Some(Trip::Total);
            return Err(io::Error::other("unpack limit exceeded"));
        }
        if st.in_header {
            st.header_bytes += n as u64;
            if st.header_bytes > self.max_header {
                st.tripped = Some(Trip::Header);
                return Err(io::Error::other("unpack limit exceeded"));
            }
        }
        Ok(n)
    }
}

/// Decompression applied to a layer's blob.
enum Compression {
    Gzip,
    None,
}

fn compression_of(media_type: &str) -> Result<Compression, LayerProblem> {
    match media_type {
        media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
        media::OCI_LAYER_TAR => Ok(Compression::None),
        m if m.ends_with("+zstd") || m.ends_with(".zstd") => Err(LayerProblem::Zstd(m.into())),
        m => Err(LayerProblem::MediaType(m.into())),
    }
}

struct LayerUnpacker<'a> {
    root: &'a OwnedFd,
    layer: &'a LayerInput,
    short: String,
    limits: &'a Limits,
    cancel: &'a crate::exec::Cancel,
    report: &'a mut UnpackReport,
    guard: Rc<RefCell<GuardState>>,
    /// Normalised names of this layer's entries (duplicate detection).
    seen: HashSet<String>,
    /// This layer's entries and all their ancestors: what whiteouts of this layer must not touch.
    touched: HashSet<String>,
    /// Set while a shared layer is recorded for later images (see [`SharedLayers`]).
    record: Option<Recording>,
}

type Entry<'a> = tar::Entry<'a, GuardedReader<Box<dyn Read>>>;

impl LayerUnpacker<'_> {
    fn layer_err(&self, problem: LayerProblem) -> UnpackError {
        UnpackError::Layer {
            layer: self.short.clone(),
            problem,
        }
    }

    fn entry_err(&self, entry: &str, rule: Rule) -> UnpackError {
        UnpackError::Entry {
            layer: self.short.clone(),
            entry: entry.to_string(),
            rule,
        }
    }

    /// Maps a stream error to the limit it tripped, or to a corrupt-archive error.
    fn stream_err(&self, guard: &Rc<RefCell<GuardState>>, e: io::Error) -> UnpackError {
        match guard.borrow().tripped {
            Some(Trip::Total) => self.layer_err(LayerProblem::TotalLimit {
                max: self.limits.max_total_bytes,
            }),
            Some(Trip::Header) => self.layer_err(LayerProblem::HeaderLimit {
                max: self.limits.max_header_bytes,
            }),
            None => self.layer_err(LayerProblem::Corrupt(e)),
        }
    }

    fn neutralise(&mut self, entry: &str, action: Neutralisation) {
        self.report.neutralised.push(Neutralised {
            layer: self.short.clone(),
            entry: entry.to_string(),
            action,
        });
    }

    /// Checks the blob, then streams it through the decompressor and the tar parser; gives the
    /// `diff_id` the stream hashed to.
    fn run(&mut self, guard: &Rc<RefCell<GuardState>>) -> Result<Digest, UnpackError> {
        let layer = self.layer;
        let compression = compression_of(&layer.media_type).map_err(|p| self.layer_err(p))?;
        let open_err = |source| LayerProblem::Open {
            path: layer.blob.clone(),
            source,
        };
        // A regular file only, not a link, opened without blocking on a FIFO.
        let (mut file, actual) = match crate::oci::fsafe::open_file(&layer.blob, u64::MAX) {
            Ok(r) => (r.file, r.size),
            Err(e) => {
                return Err(self.layer_err(match e.why {
                    crate::oci::fsafe::Why::Open(source) => open_err(source),
                    _ => LayerProblem::Refused(e),
                }));
            }
        };
        if actual != layer.size {
            return Err(self.layer_err(LayerProblem::Size {
                declared: layer.size,
                actual,
            }));
        }
        // Verify the compressed bytes before a single one reaches the decompressor.
        let (digest, read) = Digest::of_reader(Interruptible::new(
            (&mut file).take(layer.size.saturating_add(1)),
            self.cancel,
        ))
        .map_err(|e| self.layer_err(open_err(e)))?;
        if read != layer.size {
            return Err(self.layer_err(LayerProblem::Size {
                declared: layer.size,
                actual: read,
            }));
        }
        if digest != layer.digest {
            return Err(self.layer_err(LayerProblem::Digest { actual: digest }));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| self.layer_err(open_err(e)))?;
        let raw = BufReader::new(Interruptible::new(file.take(layer.size), self.cancel));
        let decompressed: Box<dyn Read> = match compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::None => Box::new(raw),
        };
        let guarded = GuardedReader {
            inner: decompressed,
            hasher: Sha256::new(),
            state: Rc::clone(guard),
            max_total: self.limits.max_total_bytes,
            max_header: self.limits.max_header_bytes,
        };
        let mut archive = tar::Archive::new(guarded);
        {
            let mut entries = archive.entries().map_err(|e| self.stream_err(guard, e))?;
            loop {
                {
                    let mut st = guard.borrow_mut();
                    st.in_header = true;
                    st.header_bytes = 0;
                }
                let next = entries.next();
                guard.borrow_mut().in_header = false;
                let mut entry = match next {
                    None => break,
                    Some(Err(e)) => return Err(self.stream_err(guard, e)),
                    Some(Ok(entry)) => entry,
                };
                self.entry(&mut entry, guard)?;
            }
        }
        // The diff_id covers the whole tar stream, including the end blocks and any padding.
        let mut inner = archive.into_inner();
        io::copy(&mut inner, &mut io::sink()).map_err(|e| self.stream_err(guard, e))?;
        let actual = Digest::parse(&format!("sha256:{}", hex::encode(inner.hasher.finalize())))
            .map_err(|source| UnpackError::Descriptor {
                field: "computed diff_id",
                source,
            })?;
        if let Some(expected) = &layer.diff_id
            && *expected != actual
        {
            return Err(self.layer_err(LayerProblem::DiffId {
                expected: expected.clone(),
                actual,
            }));
        }
        Ok(actual)
    }

    /// Applies a layer recorded by an earlier image of the run: every entry goes through the
    /// same rules against this rootfs, file bytes come from the store, the limits count the
    /// layer as read, and the recorded `diff_id` must be this image's.
    fn replay(
        &mut self,
        recorded: &Recorded,
        guard: &Rc<RefCell<GuardState>>,
    ) -> Result<(), UnpackError> {
        {
            let mut st = guard.borrow_mut();
            st.total = st.total.saturating_add(recorded.tar_bytes);
            if st.total > self.limits.max_total_bytes {
                st.tripped = Some(Trip::Total);
                drop(st);
                return Err(self.layer_err(LayerProblem::TotalLimit {
                    max: self.limits.max_total_bytes,
                }));
            }
        }
        for op in &recorded.ops {
            self.cancel
                .check()
                .map_err(|c| self.layer_err(LayerProblem::Corrupt(io::Error::other(c))))?;
            let shown = escape_name(&op.raw_name);
            self.count_entry(&shown)?;
            let mut data: Box<dyn Read> = match &op.data {
                Some(path) => {
                    let file = File::open(path).map_err(|source| {
                        self.entry_err(
                            &shown,
                            Rule::Io {
                                op: "read the shared layer's stored file",
                                source,
                            },
                        )
                    })?;
                    Box::new(Interruptible::new(file, self.cancel))
                }
                None => Box::new(io::empty()),
            };
            self.apply(op.meta.meta(), &mut data, &op.raw_name, &shown)?;
        }
        if let Some(expected) = &self.layer.diff_id
            && *expected != recorded.diff_id
        {
            return Err(self.layer_err(LayerProblem::DiffId {
                expected: expected.clone(),
                actual: recorded.diff_id.clone(),
            }));
        }
        self.report.layers_reused += 1;
        Ok(())
    }

    /// Counts one entry against the entry limit.
    fn count_entry(&mut self, shown: &str) -> Result<(), UnpackError> {
        self.report.entries_read += 1;
        if self.report.entries_read > self.limits.max_entries {
            return Err(self.entry_err(
                shown,
                Rule::TooManyEntries {
                    max: self.limits.max_entries,
                },
            ));
        }
        Ok(())
    }

    /// Applies one tar entry, then drains its data so the parser never skips unread bytes in
    /// header mode.
    fn entry(
        &mut self,
        entry: &mut Entry<'_>,
        guard: &Rc<RefCell<GuardState>>,
    ) -> Result<(), UnpackError> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = escape_name(&raw_name);
        self.count_entry(&shown)?;
        let meta = EntryMeta::of(entry);
        let stored = self.record.as_ref().map(|_| meta.stored());
        let data = self.apply(meta, entry, &raw_name, &shown)?;
        io::copy(entry, &mut io::sink()).map_err(|e| self.data_err(guard, &shown, e))?;
        if let (Some(rec), Some(meta)) = (self.record.as_mut(), stored) {
            rec.ops.push(Op {
                raw_name,
                meta,
                data,
            });
        }
        Ok(())
    }

    fn data_err(&self, guard: &Rc<RefCell<GuardState>>, shown: &str, e: io::Error) -> UnpackError {
        if guard.borrow().tripped.is_some() {
            self.stream_err(guard, e)
        } else {
            self.entry_err(shown, Rule::Truncated { source: e })
        }
    }

    /// Applies one entry (its header as parsed, its file bytes from `data`); gives the path of
    /// the file's copy in the store while a shared layer is recorded.
    fn apply(
        &mut self,
        meta: EntryMeta,
        data: &mut dyn Read,
        raw_name: &[u8],
        shown: &str,
    ) -> Result<Option<PathBuf>, UnpackError> {
        let kind = meta.kind;
        if kind.is_pax_global_extensions() {
            self.neutralise(shown, Neutralisation::SkippedGlobalHeader);
            return Ok(None);
        }
        let short = self.short.clone();
        let err = |rule| UnpackError::Entry {
            layer: short.clone(),
            entry: shown.to_string(),
            rule,
        };
        // The parser honours a PAX size; refuse archives where another parser would not.
        let header_size = meta
            .header_size
            .map_err(|e| err(Rule::Truncated { source: e }))?;
        let size = meta.size;
        if header_size != size && !(header_size == 0 && size > USTAR_MAX_SIZE) {
            return Err(err(Rule::PaxSize {
                header: header_size,
                pax: size,
            }));
        }
        let comps = normalise(raw_name, self.limits).map_err(&err)?;
        let Some((name, parents)) = comps.split_last() else {
            if kind.is_dir() {
                self.neutralise(shown, Neutralisation::SkippedRootEntry);
                return Ok(None);
            }
            return Err(err(Rule::NamesRoot));
        };
        if parents.iter().any(|c| c.starts_with(".wh.")) {
            return Err(err(Rule::WhiteoutInPath));
        }
        let path = comps.join("/");
        if !self.seen.insert(path.clone()) {
            return Err(err(Rule::Duplicate));
        }
        if let Some(rest) = name.strip_prefix(".wh.") {
            return self.whiteout(parents, rest, shown).map(|()| None);
        }
        if !kind.is_dir() && self.touched.contains(&path) {
            return Err(err(Rule::ReplacesOwnDirectory));
        }
        self.touch(&comps);
        let xattrs = meta
            .xattrs
            .map_err(|e| err(Rule::Truncated { source: e }))?;
        if !xattrs.is_empty() {
            self.neutralise(shown, Neutralisation::DroppedXattrs { keys: xattrs });
        }
        let mode = meta.mode.map_err(|e| err(Rule::Truncated { source: e }))? & 0o7777;
        let mut stored = None;
        let safe_mode = mode & 0o755;
        use tar::EntryType as T;
        match kind {
            T::Char | T::Block | T::Fifo => {
                let kind = match kind {
                    T::Char => "character device",
                    T::Block => "block device",
                    _ => "FIFO",
                };
                self.neutralise(shown, Neutralisation::SkippedDevice { kind });
                return Ok(None);
            }
            T::Directory => {
                let dir = self.parent_dir(parents).map_err(&err)?;
                make_dir(&dir, name, safe_mode | 0o700).map_err(&err)?;
            }
            T::Regular | T::Continuous => {
                if size > self.limits.max_file_bytes {
                    return Err(err(Rule::FileTooLarge {
                        size,
                        max: self.limits.max_file_bytes,
                    }));
                }
                let dir = self.parent_dir(parents).map_err(&err)?;
                remove_existing(&dir, name).map_err(&err)?;
                let fd = openat(
                    &dir,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|source| {
                    err(Rule::Io {
                        op: "create file",
                        source,
                    })
                })?;
                let mut file = File::from(fd);
                let mut content = data.take(size);
                let written = match self.record.as_ref() {
                    None => io::copy(&mut content, &mut file),
                    Some(rec) => {
                        // The store's copy is written alongside, from the same bytes.
                        let path = rec.dir.join(rec.ops.len().to_string());
                        let mut copy = File::create_new(&path).map_err(|source| {
                            err(Rule::Io {
                                op: "store the shared layer's file",
                                source,
                            })
                        })?;
                        stored = Some(path);
                        io::copy(&mut content, &mut Tee(&mut file, &mut copy))
                    }
                }
                .map_err(|e| self.data_err(&self.guard, shown, e))?;
                if written != size {
                    return Err(err(Rule::Truncated {
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{written} of {size} bytes present"),
                        ),
                    }));
                }
                fchmod(&file, safe_mode | 0o600).map_err(&err)?;
                self.report.bytes_written += written;
            }
            T::Symlink => {
                let target =
                    check_symlink_target(meta.link.as_deref(), self.limits).map_err(&err)?;
                let dir = self.parent_dir(parents).map_err(&err)?;
                remove_existing(&dir, name).map_err(&err)?;
                symlinkat(&target, &dir, name).map_err(&err)?;
            }
            T::Link => {
                let target = meta.link.unwrap_or_default();
                self.hardlink(&target, &path, parents, name).map_err(&err)?;
            }
            other => {
                return Err(err(Rule::Unsupported {
                    kind: format!("{other:?} (typeflag {:?})", char::from(other.as_byte())),
                }));
            }
        }
        if !kind.is_symlink() && !kind.is_hard_link() && mode != safe_mode {
            self.neutralise(
                shown,
                Neutralisation::StrippedModeBits {
                    from: mode,
                    to: safe_mode,
                },
            );
        }
        self.report.entries_written += 1;
        Ok(stored)
    }

    fn touch(&mut self, comps: &[String]) {
        for i in 1..=comps.len() {
            self.touched.insert(comps[..i].join("/"));
        }
    }

    fn parent_dir(&self, parents: &[String]) -> Result<OwnedFd, Rule> {
        match walk(self.root, parents, Walk::Extract { create: true })? {
            Resolved::Dir(fd, _) => Ok(fd),
            _ => Err(Rule::Io {
                op: "create parent directories",
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    }

    fn hardlink(
        &mut self,
        target: &[u8],
        path: &str,
        parents: &[String],
        name: &str,
    ) -> Result<(), Rule> {
        let shown = escape_name(target);
        let bad = |why: &str| Rule::HardlinkTarget {
            target: shown.clone(),
            why: why.to_string(),
        };
        let tcomps = normalise(target, self.limits).map_err(|rule| bad(&rule.to_string()))?;
        let Some((tname, tparents)) = tcomps.split_last() else {
            return Err(bad("names the image root"));
        };
        if tcomps.join("/") == path {
            return Err(bad("is the link itself"));
        }
        let not_file = "is not a previously extracted regular file inside the image root";
        let tdir = match walk(self.root, tparents, Walk::Extract { create: false }) {
            Ok(Resolved::Dir(fd, _)) => fd,
            Ok(_) => return Err(bad(&format!("{not_file} (not found)"))),
            Err(rule) => return Err(bad(&rule.to_string())),
        };
        match fstatat(&tdir, tname) {
            Ok(st) if is_type(&st, libc::S_IFREG) => {}
            Ok(st) => return Err(bad(&format!("{not_file} (it is a {})", kind_name(&st)))),
            Err(_) => return Err(bad(&format!("{not_file} (not found)"))),
        }
        let dir = self.parent_dir(parents)?;
        remove_existing(&dir, name)?;
        let (t, n) = (cstr(tname)?, cstr(name)?);
        // SAFETY: valid fds and NUL-terminated names; flags 0 never follows a symlink target.
        let rc =
            unsafe { libc::linkat(tdir.as_raw_fd(), t.as_ptr(), dir.as_raw_fd(), n.as_ptr(), 0) };
        if rc != 0 {
            return Err(Rule::Io {
                op: "create hardlink",
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// `.wh.<rest>` in `parents`: removes `<rest>` (or, for the opaque marker, every child) that
    /// came from lower layers, never this layer's own entries.
    fn whiteout(&mut self, parents: &[String], rest: &str, shown: &str) -> Result<(), UnpackError> {
        let short = self.short.clone();
        let err = |rule| UnpackError::Entry {
            layer: short.clone(),
            entry: shown.to_string(),
            rule,
        };
        if rest == ".wh..opq" {
            let dir_path = parents.join("/");
            let Some((dname, dparents)) = parents.split_last() else {
                prune_lower(self.root, "", &self.touched).map_err(&err)?;
                self.report.whiteouts += 1;
                return Ok(());
            };
            if let Resolved::Dir(pfd, _) =
                walk(self.root, dparents, Walk::Extract { create: false }).map_err(&err)?
                && let Ok(st) = fstatat(&pfd, dname)
                && is_type(&st, libc::S_IFDIR)
            {
                let dfd = open_subdir(&pfd, dname).map_err(&err)?;
                prune_lower(&dfd, &dir_path, &self.touched).map_err(&err)?;
            }
            self.touch(parents);
            self.report.whiteouts += 1;
            return Ok(());
        }
        if rest.starts_with(".wh.") {
            self.neutralise(shown, Neutralisation::SkippedWhiteoutMeta);
            return Ok(());
        }
        if rest.is_empty() {
            return Err(err(Rule::WhiteoutNoName));
        }
        if rest == "." || rest == ".." {
            return Err(err(Rule::WhiteoutTraversal {
                name: rest.to_string(),
            }));
        }
        let mut target = parents.to_vec();
        target.push(rest.to_string());
        let target_path = target.join("/");
        if let Resolved::Dir(pfd, _) =
            walk(self.root, parents, Walk::Extract { create: false }).map_err(&err)?
            && let Ok(st) = fstatat(&pfd, rest)
        {
            if !self.touched.contains(&target_path) {
                // Lower-layer only: remove it (a symlink is removed, never followed).
                remove_at(&pfd, rest).map_err(&err)?;
            } else if is_type(&st, libc::S_IFDIR) {
                // This layer made `rest` a directory too: hide only what lower layers put in it.
                let dfd = open_subdir(&pfd, rest).map_err(&err)?;
                prune_lower(&dfd, &target_path, &self.touched).map_err(&err)?;
            }
        }
        self.report.whiteouts += 1;
        Ok(())
    }
}

/// What `apply` needs of a tar entry besides its name and bytes, read before it is applied.
/// The fallible fields keep their error until `apply` reaches them, so the rules are checked in
/// the same order as before.
struct EntryMeta {
    kind: tar::EntryType,
    header_size: io::Result<u64>,
    size: u64,
    xattrs: io::Result<Vec<String>>,
    mode: io::Result<u32>,
    link: Option<Vec<u8>>,
}

/// An [`EntryMeta`] kept for a replay (errors as text: a recorded layer applied without one,
/// so a kept error is one `apply` never reached).
struct StoredMeta {
    kind: tar::EntryType,
    header_size: Result<u64, String>,
    size: u64,
    xattrs: Result<Vec<String>, String>,
    mode: Result<u32, String>,
    link: Option<Vec<u8>>,
}

impl EntryMeta {
    fn of(entry: &mut Entry<'_>) -> EntryMeta {
        let header = entry.header();
        let (kind, header_size, mode) = (header.entry_type(), header.entry_size(), header.mode());
        EntryMeta {
            kind,
            header_size,
            size: entry.size(),
            mode,
            link: entry.link_name_bytes().map(|t| t.into_owned()),
            xattrs: xattr_keys(entry),
        }
    }

    fn stored(&self) -> StoredMeta {
        let text = |e: &io::Error| e.to_string();
        StoredMeta {
            kind: self.kind,
            header_size: self.header_size.as_ref().copied().map_err(text),
            size: self.size,
            xattrs: self.xattrs.as_ref().cloned().map_err(text),
            mode: self.mode.as_ref().copied().map_err(text),
            link: self.link.clone(),
        }
    }
}

impl StoredMeta {
    fn meta(&self) -> EntryMeta {
        let error = |e: &String| io::Error::other(e.clone());
        EntryMeta {
            kind: self.kind,
            header_size: self.header_size.clone().map_err(|e| error(&e)),
            size: self.size,
            xattrs: self.xattrs.clone().map_err(|e| error(&e)),
            mode: self.mode.clone().map_err(|e| error(&e)),
            link: self.link.clone(),
        }
    }
}

/// Writes every byte to both files (a recorded file and its store copy).
struct Tee<'a>(&'a mut File, &'a mut File);

impl io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// The PAX xattr keys an entry carries (never restored, only reported).
fn xattr_keys(entry: &mut Entry<'_>) -> io::Result<Vec<String>> {
    let mut keys = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = String::from_utf8_lossy(ext.key_bytes());
            for prefix in ["SCHILY.xattr.", "LIBARCHIVE.xattr."] {
                if let Some(k) = key.strip_prefix(prefix) {
                    keys.push(k.to_string());
                }
            }
        }
    }
    Ok(keys)
}

/// Splits an entry name into checked components; `./` and empty components are dropped.
fn normalise(raw: &[u8], limits: &Limits) -> Result<Vec<String>, Rule> {
    if raw.is_empty() {
        return Err(Rule::Empty);
    }
    if raw.contains(&0) {
        return Err(Rule::Nul);
    }
    let name = std::str::from_utf8(raw).map_err(|_| Rule::NonUtf8)?;
    if name.len() > limits.max_path_bytes {
        return Err(Rule::PathTooLong {
            len: name.len(),
            max: limits.max_path_bytes,
        });
    }
    if name.starts_with('/') {
        return Err(Rule::Absolute);
    }
    let mut comps = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Rule::DotDot),
            c if c.len() > NAME_MAX => return Err(Rule::ComponentTooLong),
            c => comps.push(c.to_string()),
        }
    }
    if comps.len() > limits.max_path_depth {
        return Err(Rule::TooDeep {
            depth: comps.len(),
            max: limits.max_path_depth,
        });
    }
    Ok(comps)
}

/// Symlink targets may point anywhere (they are only ever followed in-root), but must be
/// creatable.
fn check_symlink_target(target: Option<&[u8]>, limits: &Limits) -> Result<Vec<u8>, Rule> {
    let target = target.unwrap_or_default();
    if target.is_empty() {
        return Err(Rule::SymlinkTarget { why: "is empty" });
    }
    if target.contains(&0) {
        return Err(Rule::SymlinkTarget {
            why: "contains a NUL byte",
        });
    }
    if target.len() > limits.max_path_bytes {
        return Err(Rule::SymlinkTarget {
            why: "is longer than the path limit",
        });
    }
    Ok(target.to_vec())
}

/// An entry name for messages: as is if UTF-8 (control characters escaped), else byte-escaped.
fn escape_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.escape_debug().to_string(),
        Err(_) => raw.escape_ascii().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// In-root resolution.

/// How `walk` treats symlinks and missing directories.
#[derive(Clone, Copy)]
enum Walk {
    /// Extraction: follow only relative symlinks that stay inside the root; an absolute target or
    /// one that climbs above the root is an error (a real layer never writes through one).
    Extract { create: bool },
    /// Reading: chroot semantics (absolute targets restart at the root, `..` stops there), and
    /// the final component is followed too.
    Chroot,
}

/// Result of a walk: a directory (fd and its physical in-root path), or the final non-directory
/// (its parent fd, physical parent path, name and stat).
enum Resolved {
    Dir(OwnedFd, Vec<String>),
    Leaf(OwnedFd, Vec<String>, String, libc::stat),
    Missing,
}

/// Resolves `comps` below `root` one component at a time with `O_NOFOLLOW` opens, expanding
/// symlinks by hand so nothing is ever resolved against the host root.
fn walk(root: &OwnedFd, comps: &[String], mode: Walk) -> Result<Resolved, Rule> {
    let mut queue: VecDeque<String> = comps.iter().cloned().collect();
    let mut canon: Vec<String> = Vec::new();
    let mut cur = dup_dir(root)?;
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            if canon.pop().is_none() {
                // Only reachable through a symlink target (names never contain "..").
                match mode {
                    Walk::Extract { .. } => {
                        return Err(Rule::LeavesRoot {
                            link: "(a symlink in the path)".into(),
                            target: "..".into(),
                        });
                    }
                    Walk::Chroot => continue,
                }
            }
            cur = reopen(root, &canon)?;
            continue;
        }
        let st = match fstatat(&cur, &c) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match mode {
                Walk::Extract { create: true } => {
                    mkdirat(&cur, &c, 0o755)?;
                    fstatat(&cur, &c).map_err(|source| Rule::Io {
                        op: "create directory",
                        source,
                    })?
                }
                _ => return Ok(Resolved::Missing),
            },
            Err(source) => return Err(Rule::Io { op: "stat", source }),
        };
        if is_type(&st, libc::S_IFDIR) {
            cur = open_subdir(&cur, &c)?;
            canon.push(c);
        } else if is_type(&st, libc::S_IFLNK) {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Rule::TooManySymlinks);
            }
            let target = readlinkat(&cur, &c)?;
            let link = {
                let mut l = canon.clone();
                l.push(c.clone());
                l.join("/")
            };
            let target_str = String::from_utf8_lossy(&target).into_owned();
            if target.starts_with(b"/") {
                match mode {
                    Walk::Extract { .. } => {
                        return Err(Rule::LeavesRoot {
                            link,
                            target: target_str,
                        });
                    }
                    Walk::Chroot => {
                        canon.clear();
                        cur = dup_dir(root)?;
                    }
                }
            }
            if let Walk::Extract { .. } = mode {
                // Lexically check that the target stays in the root from where the link sits.
                let mut depth = canon.len() as i64;
                for t in target_str.split('/') {
                    match t {
                        "" | "." => {}
                        ".." => depth -= 1,
                        _ => depth += 1,
                    }
                    if depth < 0 {
                        return Err(Rule::LeavesRoot {
                            link,
                            target: target_str,
                        });
                    }
                }
            }
            for t in target_str.rsplit('/') {
                queue.push_front(t.to_string());
            }
        } else if queue.is_empty() && matches!(mode, Walk::Chroot) {
            return Ok(Resolved::Leaf(cur, canon, c, st));
        } else {
            let mut l = canon.clone();
            l.push(c);
            return Err(Rule::NotADirectory {
                component: l.join("/"),
            });
        }
    }
    Ok(Resolved::Dir(cur, canon))
}

/// Removes every child of `dir` (at layer path `dir_path`) that this layer did not create,
/// recursing into directories this layer merged into.
fn prune_lower(dir: &OwnedFd, dir_path: &str, touched: &HashSet<String>) -> Result<(), Rule> {
    for child in list_dir(dir)? {
        let name = String::from_utf8_lossy(&child).into_owned();
        let path = if dir_path.is_empty() {
            name.clone()
        } else {
            format!("{dir_path}/{name}")
        };
        if !touched.contains(&path) {
            remove_at(dir, &name)?;
        } else if let Ok(st) = fstatat(dir, &name)
            && is_type(&st, libc::S_IFDIR)
        {
            let sub = open_subdir(dir, &name)?;
            prune_lower(&sub, &path, touched)?;
        }
    }
    Ok(())
}

/// Creates directory `name` in `dir` or, if one is there, merges into it (mode updated via the
/// directory's own fd); anything else in the way is removed first.
fn make_dir(dir: &OwnedFd, name: &str, mode: u32) -> Result<(), Rule> {
    match fstatat(dir, name) {
        Ok(st) if is_type(&st, libc::S_IFDIR) => {}
        Ok(_) => {
            remove_at(dir, name)?;
            mkdirat(dir, name, 0o700)?;
        }
        Err(_) => mkdirat(dir, name, 0o700)?,
    }
    let fd = open_subdir(dir, name)?;
    fchmod(&fd, mode)
}

/// Removes whatever is at `name` (any type), as the OCI "remove then create" rule says.
fn remove_existing(dir: &OwnedFd, name: &str) -> Result<(), Rule> {
    match fstatat(dir, name) {
        Ok(_) => remove_at(dir, name),
        Err(_) => Ok(()),
    }
}

/// Recursively removes `name` in `dir` without following any symlink.
fn remove_at(dir: &OwnedFd, name: &str) -> Result<(), Rule> {
    let st = fstatat(dir, name).map_err(|source| Rule::Io { op: "stat", source })?;
    let c = cstr(name)?;
    let mut flags = 0;
    if is_type(&st, libc::S_IFDIR) {
        let sub = open_subdir(dir, name)?;
        for child in list_dir(&sub)? {
            remove_at(&sub, &String::from_utf8_lossy(&child))?;
        }
        flags = libc::AT_REMOVEDIR;
    }
    // SAFETY: valid fd and NUL-terminated name; unlinkat never follows the final component.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } != 0 {
        return Err(Rule::Io {
            op: "remove an existing path",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading back.

/// The host path of `path` inside `root`, following symlinks with chroot semantics (at most 40);
/// the path must exist.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, ReadError> {
    let (resolved, _) = resolve_read(root, path)?;
    Ok(resolved)
}

/// Reads a regular file out of a rootfs: symlinks are followed in-root only, anything but a
/// regular file is refused, and files over `max_bytes` are refused rather than truncated.
pub fn read_in_root(root: &Path, path: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let fail = |why| ReadError {
        root: root.to_path_buf(),
        path: path.to_string(),
        why,
    };
    let (_, resolved) = resolve_read(root, path)?;
    let (parent, name, st) = match resolved {
        Resolved::Leaf(parent, _, name, st) => (parent, name, st),
        Resolved::Dir(..) => return Err(fail(ReadProblem::NotRegular { kind: "directory" })),
        Resolved::Missing => return Err(fail(ReadProblem::NotFound)),
    };
    if !is_type(&st, libc::S_IFREG) {
        return Err(fail(ReadProblem::NotRegular {
            kind: kind_name(&st),
        }));
    }
    let fd = openat(
        &parent,
        &name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
    .map_err(|e| fail(ReadProblem::Io(e)))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| fail(ReadProblem::Io(e)))?;
    if !meta.file_type().is_file() {
        return Err(fail(ReadProblem::NotRegular {
            kind: "special file",
        }));
    }
    if meta.len() > max_bytes {
        return Err(fail(ReadProblem::TooLarge { max: max_bytes }));
    }
    let mut out = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| fail(ReadProblem::Io(e)))?;
    if out.len() as u64 > max_bytes {
        return Err(fail(ReadProblem::TooLarge { max: max_bytes }));
    }
    Ok(out)
}

fn resolve_read(root: &Path, path: &str) -> Result<(PathBuf, Resolved), ReadError> {
    let fail = |why| ReadError {
        root: root.to_path_buf(),
        path: path.to_string(),
        why,
    };
    if path.contains('\0') {
        return Err(fail(ReadProblem::Nul));
    }
    let root_fd = open_dir_path(root).map_err(|e| fail(ReadProblem::Io(e)))?;
    let comps: Vec<String> = path.split('/').map(str::to_string).collect();
    let resolved = walk(&root_fd, &comps, Walk::Chroot).map_err(|rule| {
        fail(match rule {
            Rule::TooManySymlinks => ReadProblem::TooManySymlinks,
            Rule::NotADirectory { component } => ReadProblem::NotADirectory { component },
            Rule::Io { source, .. } => ReadProblem::Io(source),
            other => ReadProblem::Io(io::Error::other(other.to_string())),
        })
    })?;
    let host = match &resolved {
        Resolved::Dir(_, canon) => canon.iter().fold(root.to_path_buf(), |p, c| p.join(c)),
        Resolved::Leaf(_, canon, name, _) => canon
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(name),
        Resolved::Missing => return Err(fail(ReadProblem::NotFound)),
    };
    Ok((host, resolved))
}

// ---------------------------------------------------------------------------------------------
// Thin, checked wrappers over the fd-relative syscalls.

fn cstr(name: &str) -> Result<CString, Rule> {
    CString::new(name).map_err(|_| Rule::Nul)
}

fn is_type(st: &libc::stat, ty: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == ty
}

fn kind_name(st: &libc::stat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "FIFO",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        _ => "special file",
    }
}

fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: NUL-terminated path; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    own(fd)
}

fn own(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat(dir: &OwnedFd, name: &str, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid dir fd and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    own(fd)
}

/// Opens a child directory without following a symlink in its place.
fn open_subdir(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Rule> {
    openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(|source| Rule::Io {
        op: "open directory",
        source,
    })
}

fn dup_dir(dir: &OwnedFd) -> Result<OwnedFd, Rule> {
    open_subdir(dir, ".")
}

/// Re-opens the physical directory `canon` from the root (every component is a real directory).
fn reopen(root: &OwnedFd, canon: &[String]) -> Result<OwnedFd, Rule> {
    let mut cur = dup_dir(root)?;
    for c in canon {
        cur = open_subdir(&cur, c)?;
    }
    Ok(cur)
}

fn fstatat(dir: &OwnedFd, name: &str) -> io::Result<libc::stat> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, NUL-terminated name, `st` is written on success.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

fn mkdirat(dir: &OwnedFd, name: &str, mode: u32) -> Result<(), Rule> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name; mkdirat never follows a final symlink.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(Rule::Io {
            op: "create directory",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn symlinkat(target: &[u8], dir: &OwnedFd, name: &str) -> Result<(), Rule> {
    let t = CString::new(target).map_err(|_| Rule::SymlinkTarget {
        why: "contains a NUL byte",
    })?;
    let c = cstr(name)?;
    // SAFETY: NUL-terminated strings and a valid fd.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) } != 0 {
        return Err(Rule::Io {
            op: "create symlink",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn readlinkat(dir: &OwnedFd, name: &str) -> Result<Vec<u8>, Rule> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for its full length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Rule::Io {
            op: "read symlink",
            source: io::Error::last_os_error(),
        });
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn fchmod(fd: &impl AsRawFd, mode: u32) -> Result<(), Rule> {
    // SAFETY: valid fd; fchmod acts on the open inode, never on a path.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } != 0 {
        return Err(Rule::Io {
            op: "set mode",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Names in a directory (without `.` and `..`).
fn list_dir(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Rule> {
    let io_err = |source| Rule::Io {
        op: "list directory",
        source,
    };
    // A fresh open description so the directory stream has its own offset.
    let fd = dup_dir(dir)?;
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is a valid directory fd; on success the DIR owns it, so forget our OwnedFd.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        return Err(io_err(io::Error::last_os_error()));
    }
    std::mem::forget(fd);
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; reset it to tell end-of-stream from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a valid open DIR stream.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(io_err(e))
            };
        }
        // SAFETY: readdir returned a valid dirent with a NUL-terminated d_name.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: `dirp` is valid and closed exactly once (this also closes the fd).
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}
