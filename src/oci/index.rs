//! Image indexes: the multi-arch entry point that lists one manifest per platform, in the order
//! the plan gives. Written as OCI (`application/vnd.oci.image.index.v1+json`) in canonical JSON;
//! read as OCI or as a Docker manifest list.

use crate::oci::digest::Digest;
use crate::oci::image::Descriptor;
use crate::oci::json::canonical;
use crate::oci::media;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The OCI `platform` object lives with the image (its config carries the same fields); indexes
/// list one per manifest.
pub use crate::oci::image::Platform;

/// An image index (OCI) or manifest list (Docker), as read or written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields shipit does not model (`artifactType`, `subject`), kept as read.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

/// An index as written: its exact bytes and the descriptor that points at them.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltIndex {
    pub index: Index,
    pub bytes: Vec<u8>,
    pub descriptor: Descriptor,
}

/// Why an index could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("image index: {0}")]
    Invalid(String),
    #[error("image index is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
}

/// Builds an OCI index listing `entries` in the given order, each manifest descriptor given its
/// platform. Two entries for the same platform are refused (a runtime could pick either).
pub fn build(
    entries: &[(Descriptor, Platform)],
    annotations: &BTreeMap<String, String>,
) -> Result<BuiltIndex, IndexError> {
    if entries.is_empty() {
        return Err(IndexError::Invalid(
            "no platform images to list; build at least one".into(),
        ));
    }
    let mut manifests = Vec::with_capacity(entries.len());
    for (i, (desc, platform)) in entries.iter().enumerate() {
        if let Some((_, earlier)) = entries[..i].iter().find(|(_, p)| p.matches(platform)) {
            return Err(IndexError::Invalid(format!(
                "platform {platform} is listed twice (also as {earlier}); list each platform once"
            )));
        }
        if desc.media_type != media::OCI_MANIFEST && desc.media_type != media::DOCKER_MANIFEST {
            return Err(IndexError::Invalid(format!(
                "entry {} for {platform} has media type {:?}, expected an image manifest",
                desc.digest, desc.media_type
            )));
        }
        let mut d = desc.clone();
        d.platform = Some(platform.clone());
        manifests.push(d);
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        manifests,
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        extra: BTreeMap::new(),
    };
    let bytes = canonical(&index)?;
    let descriptor = Descriptor::new(media::OCI_INDEX, Digest::of(&bytes), bytes.len() as u64);
    Ok(BuiltIndex {
        index,
        bytes,
        descriptor,
    })
}

/// Parses an OCI image index or a Docker manifest list.
pub fn parse(bytes: &[u8]) -> Result<Index, IndexError> {
    let index: Index = serde_json::from_slice(bytes)?;
    if index.schema_version != 2 {
        return Err(IndexError::Invalid(format!(
            "schemaVersion {} is not supported (expected 2)",
            index.schema_version
        )));
    }
    match index.media_type.as_deref() {
        None | Some(media::OCI_INDEX) | Some(media::DOCKER_MANIFEST_LIST) => Ok(index),
        Some(other) => Err(IndexError::Invalid(format!(
            "media type {other:?} is not an image index or manifest list"
        ))),
    }
}

/// True for the media types of an index or manifest list.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_desc(n: u8) -> Descriptor {
        Descriptor::new(media::OCI_MANIFEST, Digest::of(&[n]), 100 + u64::from(n))
    }

    #[test]
    fn builds_in_plan_order_canonically() {
        let entries = vec![
            (manifest_desc(1), Platform::new("linux", "amd64", None)),
            (
                manifest_desc(2),
                Platform::new("linux", "arm64", Some("v8")),
            ),
            (manifest_desc(3), Platform::new("linux", "arm", Some("v6"))),
        ];
        let mut ann = BTreeMap::new();
        ann.insert("org.opencontainers.image.version".into(), "1.2.3".into());
        let a = build(&entries, &ann).unwrap();
        let b = build(&entries, &ann).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.descriptor.digest, Digest::of(&a.bytes));
        let text = String::from_utf8(a.bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"annotations":{"org.opencontainers.image.version":"1.2.3"},"manifests":[{"digest":"#), "{text}");
        assert!(text.contains(r#""platform":{"architecture":"arm","os":"linux","variant":"v6"}"#));
        assert!(
            text.ends_with(
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
            ),
            "{text}"
        );
        let archs: Vec<&str> = a
            .index
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().unwrap().architecture.as_str())
            .collect();
        assert_eq!(archs, ["amd64", "arm64", "arm"]);
        assert_eq!(parse(&a.bytes).unwrap(), a.index);
    }

    #[test]
    fn refuses_duplicate_platforms_and_empty_lists() {
        let dup = vec![
            (manifest_desc(1), Platform::new("linux", "arm64", None)),
            (
                manifest_desc(2),
                Platform::new("linux", "arm64", Some("v8")),
            ),
        ];
        let err = build(&dup, &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
        assert!(build(&[], &BTreeMap::new()).is_err());
    }

    #[test]
    fn parses_a_docker_manifest_list_keeping_unknown_fields() {
        let list = r#"{
          "schemaVersion": 2,
          "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
          "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 529,
             "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "platform": {"architecture": "arm", "os": "linux", "variant": "v5", "os.features": ["x"]}}
          ]
        }"#;
        let idx = parse(list.as_bytes()).unwrap();
        let p = idx.manifests[0].platform.as_ref().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v5");
        assert!(p.extra.contains_key("os.features"));
        assert!(parse(br#"{"schemaVersion":1,"manifests":[]}"#).is_err());
        assert!(parse(br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:../x","size":1,"mediaType":"a"}]}"#).is_err());
    }

    #[test]
    fn variant_rules() {
        let p = |s| Platform::parse(s).unwrap();
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert!(!p("linux/arm").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm64").matches(&p("linux/amd64")));
        assert!(p("linux/amd64").matches(&p("linux/amd64")));
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("linux//v7").is_none());
    }
}
