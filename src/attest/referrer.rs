//! Attachments as OCI 1.1 referrers, as data: the artifact manifest that points at an image
//! manifest or index through `subject` (config = the empty descriptor `{}`, one layer = the
//! bundle, statement or SBOM, `artifactType` = its media type), and the referrers tag schema
//! for registries without the referrers API: the fallback tag `sha256-<hex>` names an index of
//! the subject's referrers, which the publish stage updates read-modify-write with
//! [`merge_into_index`] (idempotent, sorted, keeps every other writer's entries). Attestations
//! never become entries of the image index itself (no `unknown/unknown` platforms).

use super::bundle::Sealed;
use crate::oci::digest::Digest;
use crate::oci::image::{Descriptor, Manifest};
use crate::oci::index::Index;
use crate::oci::json::canonical;
use crate::oci::media;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The media type of the empty config blob of an artifact manifest.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config blob.
pub const EMPTY_BLOB: &[u8] = b"{}";
/// The annotation naming the in-toto predicate type of an attestation.
pub const PREDICATE_ANNOTATION: &str = "dev.shipit.predicateType";
/// The annotation with the creation time (SOURCE_DATE_EPOCH).
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// An artifact manifest and the blobs it references, ready to push (blobs first).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferrerManifest {
    pub manifest: Manifest,
    /// The manifest's canonical bytes.
    pub bytes: Vec<u8>,
    /// Points at `bytes`, with `artifactType` and the annotations: the entry a referrers index
    /// lists for it.
    pub descriptor: Descriptor,
    /// The empty config (`{}`).
    pub config: (Descriptor, Vec<u8>),
    /// The one layer: the attachment itself.
    pub layer: (Descriptor, Vec<u8>),
}

/// The artifact manifest attaching `layer` (of `layer_media_type`) to `subject`.
/// `subject` is reduced to media type, digest and size.
pub fn artifact_manifest(
    subject: &Descriptor,
    artifact_type: &str,
    layer_media_type: &str,
    layer: &[u8],
    annotations: &BTreeMap<String, String>,
    created: u64,
) -> ReferrerManifest {
    let config = Descriptor::new(
        EMPTY_MEDIA_TYPE,
        Digest::of(EMPTY_BLOB),
        EMPTY_BLOB.len() as u64,
    );
    let layer_desc = Descriptor::new(layer_media_type, Digest::of(layer), layer.len() as u64);
    let mut annotations = annotations.clone();
    annotations.insert(CREATED_ANNOTATION.into(), super::timestamp(created));
    let subject = Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: config.clone(),
        layers: vec![layer_desc.clone()],
        annotations: Some(annotations.clone()),
        extra: BTreeMap::from([
            ("artifactType".to_string(), json!(artifact_type)),
            (
                "subject".to_string(),
                serde_json::to_value(&subject).expect("a descriptor serialises"),
            ),
        ]),
    };
    let bytes = canonical(&manifest).expect("a manifest serialises");
    let mut descriptor =
        Descriptor::new(media::OCI_MANIFEST, Digest::of(&bytes), bytes.len() as u64);
    descriptor.annotations = Some(annotations);
    descriptor
        .extra
        .insert("artifactType".into(), json!(artifact_type));
    ReferrerManifest {
        manifest,
        bytes,
        descriptor,
        config: (config, EMPTY_BLOB.to_vec()),
        layer: (layer_desc, layer.to_vec()),
    }
}

/// The referrer of a sealed statement: `artifactType` = the bundle (or statement) media type,
/// annotated with the predicate type.
pub fn for_sealed(subject: &Descriptor, sealed: &Sealed, created: u64) -> ReferrerManifest {
    let annotations = BTreeMap::from([(
        PREDICATE_ANNOTATION.to_string(),
        sealed.predicate_type.clone(),
    )]);
    artifact_manifest(
        subject,
        sealed.media_type,
        sealed.media_type,
        &sealed.bytes,
        &annotations,
        created,
    )
}

/// The referrer of a bare SBOM document (`application/vnd.cyclonedx+json` or
/// `application/spdx+json`), for scanners that look for those artifact types.
pub fn for_sbom(
    subject: &Descriptor,
    media_type: &str,
    sbom: &[u8],
    created: u64,
) -> ReferrerManifest {
    artifact_manifest(
        subject,
        media_type,
        media_type,
        sbom,
        &BTreeMap::new(),
        created,
    )
}

/// The referrers tag schema's tag for a subject: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// A referrers index after a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedIndex {
    pub index: Index,
    pub bytes: Vec<u8>,
    pub descriptor: Descriptor,
    /// False when `entry` was already listed as is: nothing to write.
    pub changed: bool,
}

/// Adds `entry` (a [`ReferrerManifest::descriptor`]) to the referrers index read from the
/// fallback tag (`None`: the tag does not exist yet). Entries of other writers are kept as read;
/// an entry with the same digest is replaced; the list is sorted by digest, so every writer
/// computes the same bytes for the same set. The caller pushes the result only if the tag still
/// points at what it read, else re-reads and merges again.
pub fn merge_into_index(existing: Option<&Index>, entry: &Descriptor) -> MergedIndex {
    let mut index = existing.cloned().unwrap_or_else(|| Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests: Vec::new(),
        annotations: None,
        extra: BTreeMap::new(),
    });
    let before = index.manifests.clone();
    index.manifests.retain(|d| d.digest != entry.digest);
    index.manifests.push(entry.clone());
    index
        .manifests
        .sort_by(|a, b| a.digest.as_str().cmp(b.digest.as_str()));
    let changed = existing.is_none() || index.manifests != before;
    let bytes = canonical(&index).expect("an index serialises");
    let descriptor = Descriptor::new(media::OCI_INDEX, Digest::of(&bytes), bytes.len() as u64);
    MergedIndex {
        index,
        bytes,
        descriptor,
        changed,
    }
}

/// The `artifactType` of a referrer descriptor or manifest, if it has one.
pub fn artifact_type(extra: &BTreeMap<String, Value>) -> Option<&str> {
    extra.get("artifactType").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::bundle::{self, BUNDLE_MEDIA_TYPE};
    use crate::attest::key::tests::test_key;
    use crate::attest::{Subject, statement};

    fn image() -> Descriptor {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::of(b"image"), 1234);
        d.platform = crate::oci::index::Platform::parse("linux/arm64");
        d
    }

    fn sealed() -> Sealed {
        let s = statement(
            &[Subject {
                name: "r".into(),
                digest: image().digest,
            }],
            "https://slsa.dev/provenance/v1",
            json!({}),
        );
        bundle::seal(&s, Some(&test_key()))
    }

    #[test]
    fn artifact_manifest_shape() {
        let r = for_sealed(&image(), &sealed(), 1_700_000_000);
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(v["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(v["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v["layers"][0]["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(v["subject"]["digest"], image().digest.as_str());
        assert!(v["subject"].get("platform").is_none());
        assert_eq!(v["annotations"][CREATED_ANNOTATION], "2023-11-14T22:13:20Z");
        assert_eq!(
            v["annotations"][PREDICATE_ANNOTATION],
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(r.descriptor.digest, Digest::of(&r.bytes));
        assert_eq!(artifact_type(&r.descriptor.extra), Some(BUNDLE_MEDIA_TYPE));
        assert_eq!(r, for_sealed(&image(), &sealed(), 1_700_000_000));
    }

    #[test]
    fn fallback_tag_name() {
        let d = Digest::of(b"");
        assert_eq!(
            fallback_tag(&d),
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn merge_is_idempotent_sorted_and_keeps_others() {
        let a = for_sealed(&image(), &sealed(), 1).descriptor;
        let b = for_sbom(&image(), "application/spdx+json", b"{}", 1).descriptor;
        let mut foreign = Descriptor::new(media::OCI_MANIFEST, Digest::of(b"cosign"), 9);
        foreign
            .extra
            .insert("artifactType".into(), json!("application/vnd.dev.cosign.x"));
        let first = merge_into_index(None, &foreign);
        assert!(first.changed);
        let second = merge_into_index(Some(&first.index), &a);
        let third = merge_into_index(Some(&second.index), &b);
        assert_eq!(third.index.manifests.len(), 3);
        let digests: Vec<&str> = third
            .index
            .manifests
            .iter()
            .map(|d| d.digest.as_str())
            .collect();
        let mut sorted = digests.clone();
        sorted.sort();
        assert_eq!(digests, sorted);
        let again = merge_into_index(Some(&third.index), &a);
        assert!(!again.changed);
        assert_eq!(again.bytes, third.bytes);
        // the other order gives the same bytes
        let other = merge_into_index(Some(&merge_into_index(Some(&first.index), &b).index), &a);
        assert_eq!(other.bytes, third.bytes);
        assert_eq!(crate::oci::index::parse(&third.bytes).unwrap(), third.index);
    }
}
