//! Sealing a statement for attachment: with a key, a Sigstore bundle v0.3
//! (`application/vnd.dev.sigstore.bundle.v0.3+json`: `verificationMaterial.publicKey.hint` and a
//! one-signature `dsseEnvelope`, field names as in sigstore/protobuf-specs' Bundle schema);
//! without one, the bare statement (`application/vnd.in-toto+json`). [`open`] is the reverse,
//! for `shipit verify --key`.

use super::Statement;
use super::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::key::{PublicKey, SigningKey};
use base64::Engine as _;
use serde_json::{Value, json};

/// The media type of a Sigstore bundle v0.3 in JSON.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The media type of an unsigned in-toto statement.
pub const STATEMENT_MEDIA_TYPE: &str = IN_TOTO_PAYLOAD_TYPE;

/// A statement ready to attach: a signed bundle or the bare statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// [`BUNDLE_MEDIA_TYPE`] or [`STATEMENT_MEDIA_TYPE`]: the layer's media type and the
    /// referrer's `artifactType`.
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub predicate_type: String,
    pub signed: bool,
}

/// What [`open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The statement's bytes.
    pub statement: Vec<u8>,
    pub predicate_type: String,
    /// True when a signature was checked against the given key.
    pub verified: bool,
}

/// Why an attachment could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("not a Sigstore bundle v0.3 or in-toto statement: {0}")]
    Malformed(String),
    #[error("the bundle is unsigned or has more than one signature (a bundle has exactly one)")]
    SignatureCount,
    #[error("the statement is unsigned ({STATEMENT_MEDIA_TYPE}), a signature was required")]
    Unsigned,
    #[error(transparent)]
    Signature(#[from] dsse::DsseError),
}

/// Signs `statement` into a bundle with `key`, or leaves it bare without one.
pub fn seal(statement: &Statement, key: Option<&SigningKey>) -> Sealed {
    let Some(key) = key else {
        return Sealed {
            media_type: STATEMENT_MEDIA_TYPE,
            bytes: statement.bytes.clone(),
            predicate_type: statement.predicate_type.clone(),
            signed: false,
        };
    };
    let envelope = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &statement.bytes, key);
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key.public_key().hint()},
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope,
    });
    Sealed {
        media_type: BUNDLE_MEDIA_TYPE,
        bytes: super::canonical_bytes(&bundle),
        predicate_type: statement.predicate_type.clone(),
        signed: true,
    }
}

/// Reads an attachment of `media_type`. With `key`, a bundle's signature must verify and a bare
/// statement is refused; without one, the statement is returned unchecked (`verified: false`).
pub fn open(
    media_type: &str,
    bytes: &[u8],
    key: Option<&PublicKey>,
) -> Result<Opened, BundleError> {
    let malformed = |s: &str| BundleError::Malformed(s.to_string());
    let (statement, verified) = match media_type {
        BUNDLE_MEDIA_TYPE => {
            let v: Value =
                serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
            if v["mediaType"] != BUNDLE_MEDIA_TYPE {
                return Err(malformed("mediaType is not the v0.3 bundle type"));
            }
            let envelope: Envelope = serde_json::from_value(v["dsseEnvelope"].clone())
                .map_err(|e| BundleError::Malformed(format!("dsseEnvelope: {e}")))?;
            if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(malformed("the envelope's payloadType is not in-toto"));
            }
            if envelope.signatures.len() != 1 {
                return Err(BundleError::SignatureCount);
            }
            match key {
                Some(k) => (dsse::verify(&envelope, k)?, true),
                None => (
                    base64::engine::general_purpose::STANDARD
                        .decode(&envelope.payload)
                        .map_err(|_| malformed("the payload is not base64"))?,
                    false,
                ),
            }
        }
        STATEMENT_MEDIA_TYPE if key.is_some() => return Err(BundleError::Unsigned),
        STATEMENT_MEDIA_TYPE => (bytes.to_vec(), false),
        other => return Err(BundleError::Malformed(format!("media type {other:?}"))),
    };
    let v: Value = serde_json::from_slice(&statement)
        .map_err(|e| BundleError::Malformed(format!("statement: {e}")))?;
    if v["_type"] != super::STATEMENT_TYPE {
        return Err(malformed(
            "the statement's _type is not in-toto Statement v1",
        ));
    }
    let predicate_type = v["predicateType"]
        .as_str()
        .ok_or_else(|| malformed("the statement has no predicateType"))?
        .to_string();
    Ok(Opened {
        statement,
        predicate_type,
        verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::key::tests::test_key;
    use crate::attest::{Subject, statement};
    use crate::oci::digest::Digest;

    fn sample() -> Statement {
        statement(
            &[Subject {
                name: "r".into(),
                digest: Digest::of(b"m"),
            }],
            "https://shipit.dev/verification/v1",
            json!({}),
        )
    }

    #[test]
    fn bundle_shape_and_round_trip() {
        let key = test_key();
        let sealed = seal(&sample(), Some(&key));
        let v: Value = serde_json::from_slice(&sealed.bytes).unwrap();
        assert_eq!(v["mediaType"], BUNDLE_MEDIA_TYPE);
        let hint = key.public_key().hint();
        assert_eq!(v["verificationMaterial"]["publicKey"]["hint"], hint);
        assert_eq!(v["dsseEnvelope"]["signatures"][0]["keyid"], hint);
        assert_eq!(v["dsseEnvelope"]["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        let opened = open(sealed.media_type, &sealed.bytes, Some(key.public_key())).unwrap();
        assert!(opened.verified);
        assert_eq!(opened.statement, sample().bytes);
        assert_eq!(opened.predicate_type, "https://shipit.dev/verification/v1");
    }

    #[test]
    fn unsigned_and_tampered() {
        let bare = seal(&sample(), None);
        assert_eq!(bare.media_type, STATEMENT_MEDIA_TYPE);
        assert_eq!(bare.bytes, sample().bytes);
        assert!(!open(bare.media_type, &bare.bytes, None).unwrap().verified);
        let key = test_key();
        assert_eq!(
            open(bare.media_type, &bare.bytes, Some(key.public_key())),
            Err(BundleError::Unsigned)
        );
        let sealed = seal(&sample(), Some(&key));
        let mut v: Value = serde_json::from_slice(&sealed.bytes).unwrap();
        let other = statement(
            &[Subject {
                name: "r".into(),
                digest: Digest::of(b"evil"),
            }],
            "https://shipit.dev/verification/v1",
            json!({}),
        );
        v["dsseEnvelope"]["payload"] =
            json!(base64::engine::general_purpose::STANDARD.encode(&other.bytes));
        let tampered = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            open(BUNDLE_MEDIA_TYPE, &tampered, Some(key.public_key())),
            Err(BundleError::Signature(_))
        ));
    }
}
