//! The release archives: for every built target, `dist/archives/<bin>-<version>-<target>.tar.gz`
//! holding the binary and the crate's license and README files, and `dist/archives/SHA256SUMS`
//! in the format `sha256sum -c` reads. The bytes are the same on every run from the same commit:
//! entries sorted, every header field fixed (mtime from the release's epoch, uid/gid 0, no owner
//! names, fixed modes) and a gzip header without a name or time, as the image layers are.
//!
//! A matrix release (`release --split` per platform, then `release --merge`) makes the same
//! files: each split job writes its platform's archives and lists them (name, target, digest,
//! size) in its fragment; the merge takes the archives found next to the fragments (the
//! workflow downloads both into one directory), checks each against its fragment, and writes
//! them with one combined `SHA256SUMS` into its own `dist/archives` (`gather`).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The checksum file beside the archives.
pub const SUMS: &str = "SHA256SUMS";

/// How an archive being made is named in `dist/archives` until it is put in place.
const TEMP_PREFIX: &str = ".tmp-shipit-";

/// The gzip level of the archives: the default of gzip and of Go's and Rust's gzip writers, as
/// for the image layers. Level 9 made the example's binaries 0.1–0.3% smaller for 1.4–2 times
/// the CPU (`gzip -9` against `gzip -6`), spent while the last images are verified.
const LEVEL: u32 = 6;

/// What an archive's bytes depend on besides its members, epoch and [`LEVEL`] (all part of the
/// key under which an archive is found unchanged): change it whenever the bytes for given inputs
/// change otherwise (the tar layout, the deflate implementation).
const FORMAT: &str = "shipit-archive-2 zlib-rs-0.6";

/// A README or license file is at most this large.
const MAX_DOC_BYTES: u64 = 16 * 1024 * 1024;

/// One archive, as `release.json` and a split job's fragment list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    /// The file name in `dist/archives`.
    pub name: String,
    /// The Rust target the binary was built for.
    pub target: String,
    /// The OCI platform and libc variant of that target.
    pub platform: String,
    pub variant: String,
    /// `sha256:<hex>` of the `.tar.gz`.
    pub digest: String,
    pub size: u64,
}

/// What `archives` wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Archives {
    pub dir: PathBuf,
    pub archives: Vec<Archive>,
}

/// A file inside an archive: its name there, its mode, and where its bytes come from.
struct Member {
    name: String,
    mode: u32,
    src: PathBuf,
    /// How many bytes it may have (the documents are bounded; the binary is what was built).
    limit: u64,
}

/// `dist/archives`.
pub fn dir(plan: &Plan) -> PathBuf {
    plan.out_dir.join("archives")
}

/// The directory every archive's entries live under: `<bin>-<version>-<target>`.
fn stem(plan: &Plan, target: &str) -> String {
    format!("{}-{}-{target}", plan.project.bin, plan.version)
}

/// The crate's license and README files next to its Cargo.toml (`LICENSE*`, `COPYING*`,
/// `README*`) and the `license-file` key, each a regular file inside the project, sorted by
/// the name they get in the archive.
pub fn doc_files(cfg: &Config, plan: &Plan) -> Result<Vec<(String, PathBuf)>> {
    let pkg_dir = plan
        .project
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(&pkg_dir).map_err(|e| Error::io(&pkg_dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(&pkg_dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        let upper = name.to_ascii_uppercase();
        if !["LICENSE", "LICENCE", "COPYING", "README"]
            .iter()
            .any(|p| upper.starts_with(p))
        {
            continue;
        }
        // Only regular files (through links): a directory named LICENSES is not one.
        if std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()) {
            found.push((name, e.path()));
        }
    }
    if let Some(lf) = &plan.project.meta.license_file
        && let Some(name) = lf.file_name().map(|n| n.to_string_lossy().to_string())
        && !found.iter().any(|(n, _)| *n == name)
    {
        found.push((name, lf.clone()));
    }
    let root = std::fs::canonicalize(&cfg.root).map_err(|e| Error::io(&cfg.root, e))?;
    for (_, path) in &found {
        let real = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        if !real.starts_with(&root) {
            return Err(Error::config(format!(
                "{}: resolves to {}, outside the project {}; a release archive holds only the project's own files",
                path.display(),
                real.display(),
                root.display()
            )));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes the archive of every planned (built) target and `SHA256SUMS`; archives of earlier
/// runs that this run did not make are removed, so `dist/archives/*` is this release. Up to
/// `jobs` archives are made side by side; none starts once the run is cancelled or one failed.
pub fn run(
    cfg: &Config,
    plan: &Plan,
    jobs: usize,
    cancel: &crate::exec::Cancel,
    ui: &Ui,
) -> Result<Archives> {
    prepare(cfg, plan, jobs, cancel)?.commit(ui)
}

/// The archives made and not yet in place: each compressed into a temporary file beside its
/// name in `dist/archives` (or found there unchanged). [`Ready::commit`] puts them in place;
/// dropped instead, they are removed and `dist/archives` is as it was. The pipeline makes them
/// while the images are verified, and puts them in place only after every image passed.
pub struct Ready {
    out: PathBuf,
    made: crate::cache::Cache,
    done: Vec<OneArchive>,
}

/// Compresses the archive of every planned (built) target (up to `jobs` side by side; none
/// starts once the run is cancelled or one failed) into a temporary file in `dist/archives`,
/// for [`Ready::commit`]. Every target's binary is checked first, so a missing one fails before
/// anything is written.
pub fn prepare(
    cfg: &Config,
    plan: &Plan,
    jobs: usize,
    cancel: &crate::exec::Cancel,
) -> Result<Ready> {
    let out = dir(plan);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    // What a killed run left half-made (this run holds the output dir's lock: no other run is
    // writing here).
    if let Ok(entries) = std::fs::read_dir(&out) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let docs = doc_files(cfg, plan)?;
    let epoch = plan.source_date_epoch.max(0) as u64;
    let made = crate::cache::Cache::open(&plan.out_dir, "archives");
    // One archive per target, in plan order.
    let mut todo: Vec<&crate::plan::PlatformPlan> = Vec::new();
    for p in plan.platforms().map(|(_, p)| p) {
        if todo.iter().any(|t| t.target == p.target) {
            continue;
        }
        if !p.binary.is_file() {
            return Err(Error::stage(format!(
                "archives: {} ({}): no binary at {}: run `shipit build` first",
                p.platform,
                p.libc,
                p.binary.display()
            )));
        }
        todo.push(p);
    }
    let done = super::publish::bounded(&todo, jobs, cancel, |p| {
        archive_one(plan, p, &docs, epoch, &out, &made, cancel)
    })?;
    Ok(Ready { out, made, done })
}

impl Ready {
    /// Puts every archive in place (a rename each), remembers what was written, writes
    /// `SHA256SUMS` and removes the archives of earlier runs that this run did not make.
    pub fn commit(self, ui: &Ui) -> Result<Archives> {
        let Ready {
            out,
            mut made,
            done,
        } = self;
        let mut archives = Vec::new();
        for (archive, written) in done {
            match written {
                Some(w) => {
                    let path = out.join(&archive.name);
                    w.file
                        .persist(&path)
                        .map_err(|e| Error::io(&path, e.error))?;
                    made.put(&w.key, &w.made);
                    ui.ok(format!("archive {} {} bytes", archive.name, archive.size));
                }
                None => ui.ok(format!(
                    "archive {} {} bytes (unchanged)",
                    archive.name, archive.size
                )),
            }
            archives.push(archive);
        }
        made.save();
        finish(out, archives)
    }
}

/// One target's archive, and (when it was made now rather than found unchanged) its file, not
/// yet in place, and what to remember of it under its inputs key.
type OneArchive = (Archive, Option<Written>);

/// An archive compressed into a temporary file beside its name.
struct Written {
    file: tempfile::NamedTempFile,
    key: String,
    made: Made,
}

/// The archive of one target.
fn archive_one(
    plan: &Plan,
    p: &crate::plan::PlatformPlan,
    docs: &[(String, PathBuf)],
    epoch: u64,
    out: &Path,
    made: &crate::cache::Cache,
    cancel: &crate::exec::Cancel,
) -> Result<OneArchive> {
    let stem = stem(plan, &p.target);
    let mut members = vec![Member {
        name: format!("{stem}/{}", plan.project.bin),
        mode: 0o755,
        src: p.binary.clone(),
        limit: u64::MAX,
    }];
    members.extend(docs.iter().map(|(name, src)| Member {
        name: format!("{stem}/{name}"),
        mode: 0o644,
        src: src.clone(),
        limit: MAX_DOC_BYTES,
    }));
    let name = format!("{stem}.tar.gz");
    let path = out.join(&name);
    let failed = |e: std::io::Error| Error::stage(format!("archives: {}: {e}", path.display()));
    // An archive of the same members (bytes, names, modes) and epoch that is still there with
    // the bytes it was written with is not compressed again (a no-op release).
    let key = inputs_key(&stem, &members, epoch).map_err(failed)?;
    let kept = made
        .get::<Made>(&key)
        .filter(|m| file_sha256(&path).is_ok_and(|d| d == (m.digest.clone(), m.size)));
    let (digest, size, written) =
        match kept {
            Some(m) => (m.digest, m.size, None),
            None => {
                let (file, digest, size) = write_archive(out, &stem, members, epoch, cancel)
                    .map_err(|e| match crate::exec::cancelled_in(&e) {
                        Some(c) => Error::from(c),
                        None => failed(e),
                    })?;
                let made = Made {
                    digest: digest.clone(),
                    size,
                };
                (digest, size, Some(Written { file, key, made }))
            }
        };
    let archive = Archive {
        name,
        target: p.target.clone(),
        platform: p.platform.to_string(),
        variant: p.libc.to_string(),
        digest: format!("sha256:{digest}"),
        size,
    };
    Ok((archive, written))
}

/// What an archive was written as, remembered in `dist/cache` under [`inputs_key`].
#[derive(Serialize, Deserialize)]
struct Made {
    digest: String,
    size: u64,
}

/// The identity of an archive's inputs: the format and gzip level, the top directory, the epoch,
/// and each member's name, mode and bytes.
fn inputs_key(stem: &str, members: &[Member], epoch: u64) -> std::io::Result<String> {
    let mut h = Sha256::new();
    h.update(format!("{FORMAT} gzip-l{LEVEL}\n{stem}\n{epoch}\n"));
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for m in sorted {
        let bytes = read_member(&m.src, m.limit)?;
        h.update(format!("{}\n{:o}\n{}\n", m.name, m.mode, bytes.len()));
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

/// The SHA-256 (hex) and size of a file shipit wrote (a regular file, never through a FIFO or
/// device someone put in its place).
fn file_sha256(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = crate::config::files::open_regular(path)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Writes `SHA256SUMS` for `archives` (sorted by name) into `out`, and removes the archives an
/// earlier run left there that are not among them, so `dist/archives/*` is this release.
fn finish(out: PathBuf, mut archives: Vec<Archive>) -> Result<Archives> {
    archives.sort_by(|a, b| a.name.cmp(&b.name));
    let sums = sums_text(&archives);
    super::package::write_atomically(&out.join(SUMS), sums.as_bytes())?;
    // What an earlier run left (another version or target) is not part of this release.
    if let Ok(entries) = std::fs::read_dir(&out) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tar.gz") && !archives.iter().any(|a| a.name == name) {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    Ok(Archives { dir: out, archives })
}

/// The merge's archives: each `(directory, archive)` is an archive a fragment in that directory
/// lists. Either every listed archive is there, each with the name this plan gives its target
/// and the fragment's digest and size, and they are copied into `dist/archives` with one
/// `SHA256SUMS` (`Some`); or none is there (the jobs did not upload them), and nothing is
/// written (`None`). Some but not all is an error, as is an archive that differs from its
/// fragment; either way before any tag moves.
pub fn gather(plan: &Plan, listed: &[(PathBuf, Archive)], ui: &Ui) -> Result<Option<Archives>> {
    if listed.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for (_, a) in listed {
        let want = format!("{}.tar.gz", stem(plan, &a.target));
        if a.name != want {
            problems.push(format!(
                "{}: the fragment's archive for {} should be {want}",
                a.name, a.target
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::stage(format!(
            "archives: {}; no tag was moved",
            problems.join("; ")
        )));
    }
    let (present, missing): (Vec<_>, Vec<_>) = listed
        .iter()
        .partition(|(dir, a)| dir.join(&a.name).is_file());
    if present.is_empty() {
        ui.info(format!(
            "archives: none of the {} archives the fragments list is next to them; dist/archives is not written (upload each job's dist/archives/*.tar.gz beside its fragment)",
            listed.len()
        ));
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(Error::stage(format!(
            "archives: {} of the fragments' archives are next to them, but not {}; no tag was moved",
            present.len(),
            missing
                .iter()
                .map(|(dir, a)| dir.join(&a.name).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let out = dir(plan);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut archives = Vec::new();
    for (d, a) in listed {
        let src = d.join(&a.name);
        let bytes = read_member(&src, a.size)
            .map_err(|e| Error::stage(format!("archives: {e}; no tag was moved")))?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if digest != a.digest || bytes.len() as u64 != a.size {
            return Err(Error::stage(format!(
                "archives: {} is {digest}, {} bytes; its fragment says {}, {} bytes; no tag was moved",
                src.display(),
                bytes.len(),
                a.digest,
                a.size
            )));
        }
        super::package::write_atomically(&out.join(&a.name), &bytes)?;
        ui.ok(format!("archive {} {} bytes", a.name, a.size));
        archives.push(a.clone());
    }
    finish(out, archives).map(Some)
}

/// `SHA256SUMS`: `<hex>  <name>` per archive, sorted by name (text mode, as `sha256sum` writes).
pub fn sums_text(archives: &[Archive]) -> String {
    archives
        .iter()
        .map(|a| {
            format!(
                "{}  {}\n",
                a.digest.strip_prefix("sha256:").unwrap_or(&a.digest),
                a.name
            )
        })
        .collect()
}

/// Writes one deterministic `.tar.gz` into a temporary file in `dir` and returns it (to be
/// renamed into place), with its SHA-256 (hex) and size.
fn write_archive(
    dir: &Path,
    stem: &str,
    mut members: Vec<Member>,
    epoch: u64,
    cancel: &crate::exec::Cancel,
) -> std::io::Result<(tempfile::NamedTempFile, String, u64)> {
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    let hashing = HashingFile {
        file: tmp.as_file().try_clone()?,
        hash: Sha256::new(),
        size: 0,
    };
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(hashing, flate2::Compression::new(LEVEL));
    let mut tar = tar::Builder::new(gz);
    let header = |size: u64, mode: u32, kind: tar::EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(epoch);
        h
    };
    let mut h = header(0, 0o755, tar::EntryType::Directory);
    tar.append_data(&mut h, format!("{stem}/"), std::io::empty())?;
    for m in &members {
        let bytes = read_member(&m.src, m.limit)?;
        let mut h = header(bytes.len() as u64, m.mode, tar::EntryType::Regular);
        // Compression stops within a block of a cancellation (a failed verification, a signal).
        let reader = crate::exec::Interruptible::new(bytes.as_slice(), cancel);
        tar.append_data(&mut h, &m.name, reader)?;
    }
    let gz = tar.into_inner()?;
    let mut hashing = gz.finish()?;
    hashing.flush()?;
    super::package::publishable(tmp.as_file())?;
    let (digest, size) = (hex::encode(hashing.hash.finalize()), hashing.size);
    Ok((tmp, digest, size))
}

/// A member's bytes: a regular file (through links) of at most `limit` bytes.
fn read_member(src: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = crate::config::files::open_regular(src)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", src.display())))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "{}: larger than {limit} bytes",
            src.display()
        )));
    }
    Ok(bytes)
}

/// A file writer that hashes and counts what goes through it.
struct HashingFile {
    file: std::fs::File,
    hash: Sha256,
    size: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_archive` into `path`'s directory, renamed to `path`: its digest and size.
    fn write_to(path: &Path, stem: &str, members: Vec<Member>, epoch: u64) -> (String, u64) {
        let (file, digest, size) = write_archive(
            path.parent().unwrap(),
            stem,
            members,
            epoch,
            &crate::exec::Cancel::new(),
        )
        .unwrap();
        file.persist(path).unwrap();
        (digest, size)
    }

    #[test]
    fn the_inputs_key_follows_bytes_names_modes_and_epoch_and_the_file_digest_is_what_was_written()
    {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("app");
        std::fs::write(&bin, b"\x7fELF one").unwrap();
        let member = |name: &str, mode: u32| Member {
            name: name.to_string(),
            mode,
            src: bin.clone(),
            limit: u64::MAX,
        };
        let key = |m: Vec<Member>, epoch| inputs_key("app-1", &m, epoch).unwrap();
        let first = key(vec![member("app-1/app", 0o755)], 1);
        assert_eq!(first, key(vec![member("app-1/app", 0o755)], 1));
        assert_ne!(first, key(vec![member("app-1/app", 0o644)], 1));
        assert_ne!(first, key(vec![member("app-1/other", 0o755)], 1));
        assert_ne!(first, key(vec![member("app-1/app", 0o755)], 2));
        std::fs::write(&bin, b"\x7fELF two").unwrap();
        assert_ne!(first, key(vec![member("app-1/app", 0o755)], 1));
        let path = d.path().join("app-1.tar.gz");
        let written = write_to(&path, "app-1", vec![member("app-1/app", 0o755)], 1);
        assert_eq!(file_sha256(&path).unwrap(), written);
        std::fs::write(&path, b"tampered").unwrap();
        assert_ne!(file_sha256(&path).unwrap(), written);
    }

    #[test]
    fn the_same_members_make_the_same_bytes_with_fixed_headers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("app"), b"\x7fELF binary").unwrap();
        std::fs::write(d.path().join("LICENSE"), b"MIT").unwrap();
        let members = || {
            vec![
                Member {
                    name: "app-1.0.0-x/LICENSE".into(),
                    mode: 0o644,
                    src: d.path().join("LICENSE"),
                    limit: MAX_DOC_BYTES,
                },
                Member {
                    name: "app-1.0.0-x/app".into(),
                    mode: 0o755,
                    src: d.path().join("app"),
                    limit: u64::MAX,
                },
            ]
        };
        let (a, b) = (d.path().join("a.tar.gz"), d.path().join("b.tar.gz"));
        let da = write_to(&a, "app-1.0.0-x", members(), 1_700_000_000);
        let db = write_to(&b, "app-1.0.0-x", members(), 1_700_000_000);
        assert_eq!(da, db);
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), bytes);
        // Readable by everyone, as a release file must be (a temporary file starts 0600).
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(da.1, bytes.len() as u64);
        assert_eq!(da.0, hex::encode(Sha256::digest(&bytes)));
        // gzip: no mtime, no name (FLG 0), OS 255.
        assert_eq!(&bytes[3..8], &[0, 0, 0, 0, 0]);
        assert_eq!(bytes[9], 255);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let got: Vec<(String, u32, u64, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app-1.0.0-x/".to_string(), 0o755, 0, 0, 1_700_000_000),
                (
                    "app-1.0.0-x/LICENSE".to_string(),
                    0o644,
                    0,
                    0,
                    1_700_000_000
                ),
                ("app-1.0.0-x/app".to_string(), 0o755, 0, 0, 1_700_000_000),
            ]
        );
    }

    #[test]
    fn sums_are_in_sha256sum_format() {
        let a = Archive {
            name: "app-1.0.0-x86_64-unknown-linux-musl.tar.gz".into(),
            target: "x86_64-unknown-linux-musl".into(),
            platform: "linux/amd64".into(),
            variant: "musl".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 1,
        };
        assert_eq!(
            sums_text(&[a]),
            format!(
                "{}  app-1.0.0-x86_64-unknown-linux-musl.tar.gz\n",
                "ab".repeat(32)
            )
        );
    }
}
