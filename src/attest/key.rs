//! Signing keys: an ECDSA P-256 private key from `SHIPIT_SIGNING_KEY` (the path of a PKCS#8
//! PEM; an encrypted one takes its password from `SHIPIT_SIGNING_KEY_PASSWORD`), and SPKI PEM
//! public keys for verification. The key material never leaves this module: it is read into
//! zeroizing buffers, the key types zeroize on drop, `Debug` shows only the public key hint, and
//! every error reads "cannot read the signing key at PATH: <reason>" without any content.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey as EcdsaSigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The environment variable naming the private key file.
pub const KEY_ENV: &str = "SHIPIT_SIGNING_KEY";
/// The environment variable holding the password of an encrypted private key.
pub const PASSWORD_ENV: &str = "SHIPIT_SIGNING_KEY_PASSWORD";

/// Why a key could not be used. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("cannot read the signing key at {}: {reason}", path.display())]
    Private { path: PathBuf, reason: String },
    #[error("cannot read the public key at {}: {reason}", path.display())]
    Public { path: PathBuf, reason: String },
}

/// An ECDSA P-256 private key, ready to sign. Zeroized on drop (by the ecdsa crate).
pub struct SigningKey {
    key: EcdsaSigningKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(hint {})", self.public.hint)
    }
}

impl SigningKey {
    /// The key `SHIPIT_SIGNING_KEY` names, or `None` when it is unset or empty (attestations
    /// are then attached unsigned).
    pub fn from_env() -> Result<Option<SigningKey>, KeyError> {
        let Some(path) = std::env::var_os(KEY_ENV).filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let password = std::env::var(PASSWORD_ENV).ok().map(Zeroizing::new);
        SigningKey::load(Path::new(&path), password.as_deref().map(String::as_str)).map(Some)
    }

    /// Reads a PKCS#8 PEM private key (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with
    /// `password`).
    pub fn load(path: &Path, password: Option<&str>) -> Result<SigningKey, KeyError> {
        let err = |reason: String| KeyError::Private {
            path: path.to_path_buf(),
            reason,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(io_reason(&e)))?);
        let key = match pem_label(&text) {
            Some("PRIVATE KEY") => EcdsaSigningKey::from_pkcs8_pem(&text)
                .map_err(|e| err(format!("not a PKCS#8 ECDSA P-256 private key ({e})")))?,
            Some("ENCRYPTED PRIVATE KEY") => {
                let Some(password) = password else {
                    return Err(err(format!(
                        "the key is encrypted and {PASSWORD_ENV} is not set"
                    )));
                };
                EcdsaSigningKey::from_pkcs8_encrypted_pem(&text, password.as_bytes()).map_err(
                    |e| {
                        err(format!(
                            "cannot decrypt it: wrong {PASSWORD_ENV}, or an encryption other than PBES2 (AES-CBC with PBKDF2-SHA256 or scrypt) ({e})"
                        ))
                    },
                )?
            }
            Some("EC PRIVATE KEY") => {
                return Err(err(
                    "it is a SEC1 key; convert it to PKCS#8 with `openssl pkcs8 -topk8 -in KEY -out KEY.p8`".into(),
                ));
            }
            Some(other) => {
                return Err(err(format!(
                    "it holds a PEM {other:?}, expected a PKCS#8 \"PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\""
                )));
            }
            None => return Err(err("it is not a PEM file".into())),
        };
        let public = PublicKey::from_verifying_key(*key.verifying_key());
        Ok(SigningKey { key, public })
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// ECDSA P-256 with SHA-256 over `message`, as an ASN.1 DER signature (RFC 6979: the same
    /// message gives the same signature).
    pub fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        let sig: Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// An ECDSA P-256 public key (SPKI), with its hint.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    hint: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(hint {})", self.hint)
    }
}

impl PublicKey {
    fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        let der = key
            .to_public_key_der()
            .expect("a P-256 public key always encodes as SPKI");
        PublicKey {
            key,
            hint: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der.as_bytes())),
        }
    }

    /// Reads an SPKI PEM public key file (`-----BEGIN PUBLIC KEY-----`).
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let err = |reason: String| KeyError::Public {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(io_reason(&e)))?;
        PublicKey::from_pem(&text).map_err(err)
    }

    /// Parses an SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        match pem_label(text) {
            Some("PUBLIC KEY") => VerifyingKey::from_public_key_pem(text)
                .map(PublicKey::from_verifying_key)
                .map_err(|e| format!("not an ECDSA P-256 public key ({e})")),
            Some(other) => Err(format!(
                "it holds a PEM {other:?}, expected an SPKI \"PUBLIC KEY\" (openssl pkey -in KEY -pubout)"
            )),
            None => Err("it is not a PEM file".into()),
        }
    }

    /// The key hint: standard base64 of the SHA-256 of the SPKI DER encoding. Used as the DSSE
    /// `keyid` and the Sigstore bundle's `publicKey.hint`.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key always encodes as SPKI")
    }

    /// True when `signature` (ASN.1 DER) is a valid ECDSA-SHA256 signature of `message`.
    pub fn verify_der(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature)
            .map(|sig| self.key.verify(message, &sig).is_ok())
            .unwrap_or(false)
    }
}

/// The label of the first PEM block (`PRIVATE KEY`), if the text has one.
fn pem_label(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
}

/// An I/O error's reason without the OS error wrapper noise.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "it is not text (expected a PEM file)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/fixtures/attest")
            .join(name)
    }

    pub(crate) fn test_key() -> SigningKey {
        SigningKey::load(&fixture("test-key.pem"), None).unwrap()
    }

    #[test]
    fn signs_and_verifies() {
        let key = test_key();
        let public = PublicKey::load(&fixture("test-key.pub.pem")).unwrap();
        assert_eq!(key.public_key(), &public);
        let sig = key.sign_der(b"message");
        assert!(public.verify_der(b"message", &sig));
        assert!(!public.verify_der(b"messagf", &sig));
        assert_eq!(sig, key.sign_der(b"message"), "RFC 6979 is deterministic");
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn encrypted_key() {
        let path = fixture("test-key-encrypted.pem");
        let key = SigningKey::load(&path, Some("correct-horse")).unwrap();
        assert_eq!(key.public_key(), test_key().public_key());

        let wrong = SigningKey::load(&path, Some("wrong"))
            .unwrap_err()
            .to_string();
        assert!(
            wrong.starts_with(&format!("cannot read the signing key at {}: cannot decrypt it: wrong SHIPIT_SIGNING_KEY_PASSWORD", path.display())),
            "{wrong}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!wrong.contains(line), "the error shows key material");
        }
        let missing = SigningKey::load(&path, None).unwrap_err().to_string();
        assert!(
            missing.ends_with("the key is encrypted and SHIPIT_SIGNING_KEY_PASSWORD is not set")
        );
    }

    #[test]
    fn unreadable_keys_say_why_without_content() {
        let e = SigningKey::load(Path::new("/nonexistent/key.pem"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the signing key at /nonexistent/key.pem: no such file"
        );
        let e = SigningKey::load(&fixture("test-key.pub.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PEM \"PUBLIC KEY\""), "{e}");
        assert!(!e.contains("MFkw"));
    }

    #[test]
    fn hint_is_base64_sha256_of_spki() {
        let public = PublicKey::load(&fixture("test-key.pub.pem")).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let der = b64
            .decode(
                public
                    .to_pem()
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        assert_eq!(public.hint(), b64.encode(Sha256::digest(&der)));
    }
}
