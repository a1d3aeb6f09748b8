//! DSSE (Dead Simple Signing Envelope): the signature covers the pre-authentication encoding
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, never the JSON around it, so an
//! envelope can be re-serialised without breaking its signature. shipit signs with ECDSA P-256
//! / SHA-256 (DER signatures, base64 in the envelope) and sets `keyid` to the key hint.

use super::key::{PublicKey, SigningKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope, as JSON (`payload` and `sig` are standard base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    pub sig: String,
}

/// Why an envelope did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("the envelope's {0} is not valid base64")]
    Base64(&'static str),
    #[error("the envelope has no signature")]
    Unsigned,
    #[error("no signature of the envelope verifies with the key {hint}")]
    BadSignature { hint: String },
}

/// The pre-authentication encoding DSSE signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` with `key` into a one-signature envelope.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let b64 = base64::engine::general_purpose::STANDARD;
    Envelope {
        payload: b64.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature {
            keyid: key.public_key().hint().to_string(),
            sig: b64.encode(key.sign_der(&pae(payload_type, payload))),
        }],
    }
}

/// Checks that some signature of `envelope` verifies with `key` and returns the payload bytes.
pub fn verify(envelope: &Envelope, key: &PublicKey) -> Result<Vec<u8>, DsseError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&envelope.payload)
        .map_err(|_| DsseError::Base64("payload"))?;
    if envelope.signatures.is_empty() {
        return Err(DsseError::Unsigned);
    }
    let message = pae(&envelope.payload_type, &payload);
    for s in &envelope.signatures {
        let sig = b64.decode(&s.sig).map_err(|_| DsseError::Base64("sig"))?;
        if key.verify_der(&message, &sig) {
            return Ok(payload);
        }
    }
    Err(DsseError::BadSignature {
        hint: key.hint().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::key::tests::test_key;

    #[test]
    fn pae_bytes() {
        // The DSSE protocol's own example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn tampered_payload_fails() {
        let key = test_key();
        let env = sign(IN_TOTO_PAYLOAD_TYPE, br#"{"a":1}"#, &key);
        assert_eq!(
            verify(&env, key.public_key()).unwrap(),
            br#"{"a":1}"#.to_vec()
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut tampered = env.clone();
        tampered.payload = b64.encode(br#"{"a":2}"#);
        assert!(matches!(
            verify(&tampered, key.public_key()),
            Err(DsseError::BadSignature { .. })
        ));
        let mut retyped = env.clone();
        retyped.payload_type = "application/json".into();
        assert!(verify(&retyped, key.public_key()).is_err());
        let mut unsigned = env;
        unsigned.signatures.clear();
        assert_eq!(
            verify(&unsigned, key.public_key()),
            Err(DsseError::Unsigned)
        );
    }
}
