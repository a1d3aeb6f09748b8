//! The compressed-layer cache: a layer whose uncompressed content was compressed before with the
//! same settings is not compressed again. The key is the layer's `diff_id` (sha256 of the tar,
//! computed by streaming the tar into the hash alone, which costs a fraction of compressing it)
//! plus `pgzip::SETTINGS`; the value is the compressed blob's digest and size, one small JSON file
//! per key under the cache directory (`dist/cache/layers/`), written atomically, so packaging
//! threads never race on a shared file.
//!
//! A hit is used only when the blob is in the layout and still hashes to the recorded digest and
//! size (the blob is re-read, never trusted by name); anything else (no entry, an unreadable one,
//! a missing or altered blob) compresses again, and the layer's bytes are then exactly what the
//! cache would have given, since the compression is deterministic. Nothing is ever buffered: the
//! tar streams into the hash, the blob streams through the re-check.

use crate::oci::digest::Digest;
use crate::oci::image::Descriptor;
use crate::oci::layer::{self, Entry, LayerDigests};
use crate::oci::layout::{Layout, LayoutError};
use crate::oci::media;
use crate::oci::pgzip;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A layer in the layout, and whether its blob came from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub descriptor: Descriptor,
    pub digests: LayerDigests,
    /// True when no compression ran: the cached blob was re-checked and used.
    pub reused: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    diff_id: Digest,
    settings: String,
    digest: Digest,
    size: u64,
}

/// Writes a layer into `layout`, reusing the compressed blob recorded under `cache_dir` for the
/// same content and settings when the layout still holds it intact.
pub fn write_layer(
    layout: &Layout,
    entries: &[Entry],
    epoch: u64,
    cache_dir: &Path,
) -> Result<Written, LayoutError> {
    let (diff_id, _) = layer::diff_id(entries, epoch, layout.cancel())?;
    let path = record_path(cache_dir, &diff_id);
    if let Some(digests) = cached(layout, &path, &diff_id) {
        return Ok(Written {
            descriptor: Descriptor::new(
                media::OCI_LAYER_GZIP,
                digests.digest.clone(),
                digests.size,
            ),
            digests,
            reused: true,
        });
    }
    let (descriptor, digests) = layout.write_layer(entries, epoch)?;
    // A host file that changed between the two passes gives another diff_id: record only what
    // was really compressed.
    if digests.diff_id == diff_id {
        record(
            &path,
            &Record {
                diff_id,
                settings: pgzip::SETTINGS.to_string(),
                digest: digests.digest.clone(),
                size: digests.size,
            },
        );
    }
    Ok(Written {
        descriptor,
        digests,
        reused: false,
    })
}

fn record_path(cache_dir: &Path, diff_id: &Digest) -> PathBuf {
    cache_dir.join(format!("{}-{}.json", diff_id.hex(), pgzip::SETTINGS))
}

/// The cached layer for `diff_id`, if its record is sound and the blob re-hashes to it.
fn cached(layout: &Layout, path: &Path, diff_id: &Digest) -> Option<LayerDigests> {
    // Records and blobs go through the safe open: regular files only, never a FIFO, bounded.
    let text = crate::oci::fsafe::read_file(path, 64 << 10).ok()?;
    let r: Record = serde_json::from_slice(&text).ok()?;
    if &r.diff_id != diff_id || r.settings != pgzip::SETTINGS || !layout.has_blob(&r.digest) {
        return None;
    }
    let blob = layout.blob_path(&r.digest);
    let file = crate::oci::fsafe::open_file(&blob, r.size).ok()?.file;
    let (digest, size) = Digest::of_reader(std::io::BufReader::with_capacity(
        1 << 16,
        crate::exec::Interruptible::new(file, layout.cancel()),
    ))
    .ok()?;
    if digest != r.digest || size != r.size {
        // A blob whose bytes are not its name is worthless; removing it lets the layer written
        // next take its place (the layout keeps an existing blob file as it is).
        std::fs::remove_file(&blob).ok();
        return None;
    }
    Some(LayerDigests {
        digest,
        diff_id: r.diff_id,
        size,
    })
}

/// Writes a record atomically; a failure only loses the cache entry (the next run compresses).
fn record(path: &Path, r: &Record) {
    let Some(dir) = path.parent() else { return };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-shipit-")
            .tempfile_in(dir)?;
        tmp.write_all(&serde_json::to_vec(r).map_err(std::io::Error::other)?)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(content: &[u8]) -> Vec<Entry> {
        vec![Entry::file("srv/data.bin", content.to_vec(), 0o644)]
    }

    #[test]
    fn the_same_content_is_compressed_once_and_a_tampered_blob_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("oci")).unwrap();
        let cache = dir.path().join("cache/layers");
        let content: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();

        let first = write_layer(&layout, &entries(&content), 7, &cache).unwrap();
        assert!(!first.reused);
        let second = write_layer(&layout, &entries(&content), 7, &cache).unwrap();
        assert!(second.reused, "the second write compressed again");
        assert_eq!(
            (&second.descriptor, &second.digests),
            (&first.descriptor, &first.digests)
        );
        // What the cache gives is what compressing gives.
        let plain = Layout::create(&dir.path().join("plain")).unwrap();
        let (desc, digests) = plain.write_layer(&entries(&content), 7).unwrap();
        assert_eq!(
            (desc, digests),
            (first.descriptor.clone(), first.digests.clone())
        );

        // Other content, or another epoch, is another key.
        let mut other = content.clone();
        other[12345] ^= 1;
        assert!(
            !write_layer(&layout, &entries(&other), 7, &cache)
                .unwrap()
                .reused
        );
        assert!(
            !write_layer(&layout, &entries(&content), 8, &cache)
                .unwrap()
                .reused
        );

        // A blob altered in the layout is detected, compressed again, and repaired.
        let blob = layout.blob_path(&first.digests.digest);
        std::fs::remove_file(&blob).unwrap();
        std::fs::write(&blob, b"junk").unwrap();
        let again = write_layer(&layout, &entries(&content), 7, &cache).unwrap();
        assert!(!again.reused, "a tampered blob was reused");
        assert_eq!(again.digests, first.digests);
        assert_eq!(
            Digest::of(&std::fs::read(&blob).unwrap()),
            first.digests.digest
        );
        assert!(
            write_layer(&layout, &entries(&content), 7, &cache)
                .unwrap()
                .reused
        );

        // A missing blob: compressed again.
        std::fs::remove_file(&blob).unwrap();
        let again = write_layer(&layout, &entries(&content), 7, &cache).unwrap();
        assert!(!again.reused);
        assert_eq!(
            Digest::of(&std::fs::read(&blob).unwrap()),
            first.digests.digest
        );
        assert!(
            write_layer(&layout, &entries(&content), 7, &cache)
                .unwrap()
                .reused
        );
    }
}
