//! Supply-chain attestations for what shipit built and verified: per-platform SBOMs (CycloneDX
//! 1.6 and SPDX 2.3, from the crates really compiled for that target and the base's dpkg
//! packages), SLSA v1 provenance, a verification attestation of our own, DSSE signing with an
//! ECDSA P-256 key, Sigstore bundles, and the OCI 1.1 referrer manifests that attach them to an
//! image. Everything here is data in, bytes out (canonical JSON, deterministic for the same
//! inputs); the stages decide when to make and where to push them.
//!
//! The flow for one platform image: [`sbom::cargo_graph`] (runs `cargo metadata`) →
//! [`sbom::cyclonedx::render`] / [`sbom::spdx::render`]; [`provenance::statement`] and
//! [`verification::statement`] make in-toto statements; [`bundle::seal`] signs one (or leaves
//! it unsigned without a key); [`referrer::artifact_manifest`] wraps the result for the
//! referrers API, and [`referrer::merge_into_index`] maintains the `sha256-<hex>` fallback tag.

pub mod bundle;
pub mod dsse;
pub mod key;
pub mod provenance;
pub mod referrer;
pub mod sbom;
pub mod verification;

use crate::oci::digest::Digest;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// `_type` of every statement shipit writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// What a statement is about: an image manifest or index, by digest. `name` is the image
/// repository (`ghcr.io/acme/hello-server`), as buildx and cosign name OCI subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub digest: Digest,
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.name)?;
        let mut digest = std::collections::BTreeMap::new();
        digest.insert("sha256", self.digest.hex());
        m.serialize_entry("digest", &digest)?;
        m.end()
    }
}

/// An in-toto Statement v1 as canonical JSON bytes, with its predicate type (for the
/// `dev.shipit.predicateType` annotation of the referrer manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub predicate_type: String,
    pub bytes: Vec<u8>,
}

/// Makes an in-toto Statement v1 about `subjects` with `predicate`.
pub fn statement(
    subjects: &[Subject],
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Statement {
    let value = serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    Statement {
        predicate_type: predicate_type.to_string(),
        bytes: canonical_bytes(&value),
    }
}

/// Canonical JSON of a `serde_json::Value`: keys sorted at every level, compact, and strings
/// escaped as RFC 8259 requires. Not the OLPC form of `oci::json::canonical`: that writes control
/// characters raw inside strings (a check's multi-line detail), which strict parsers — serde_json,
/// Python's `json`, Go's `encoding/json` — refuse, so the statement would not be readable.
pub(crate) fn canonical_bytes(value: &serde_json::Value) -> Vec<u8> {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(value)).expect("a serde_json::Value always serialises")
}

/// RFC 3339 UTC seconds for an epoch (SOURCE_DATE_EPOCH or a clock reading).
pub(crate) fn timestamp(epoch: u64) -> String {
    crate::oci::image::rfc3339(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_shape() {
        let s = statement(
            &[Subject {
                name: "r/app".into(),
                digest: Digest::of(b"x"),
            }],
            "https://example.com/p",
            serde_json::json!({"k": 1}),
        );
        let v: serde_json::Value = serde_json::from_slice(&s.bytes).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["subject"][0]["name"], "r/app");
        assert_eq!(v["subject"][0]["digest"]["sha256"], Digest::of(b"x").hex());
        assert_eq!(v["predicateType"], "https://example.com/p");
    }

    /// A check's detail with a newline and a tab: the statement is still JSON a strict parser
    /// reads, with sorted keys.
    #[test]
    fn control_characters_are_escaped() {
        let s = statement(
            &[],
            "p",
            serde_json::json!({"z": 1, "detail": "HTTP/1.1 200 OK\r\n\tbody\u{1}"}),
        );
        let v: serde_json::Value = serde_json::from_slice(&s.bytes).unwrap();
        assert_eq!(v["predicate"]["detail"], "HTTP/1.1 200 OK\r\n\tbody\u{1}");
        let text = String::from_utf8(s.bytes).unwrap();
        assert!(text.contains(r#"\r\n\tbody\u0001"#), "{text}");
        assert!(text.starts_with(r#"{"_type":"#), "{text}");
        assert!(text.find(r#""detail""#) < text.find(r#""z""#), "{text}");
    }
}
