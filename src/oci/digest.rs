//! Content digests: the only form shipit accepts is `sha256:` + 64 lowercase hex digits.
//!
//! A digest is validated before it is ever used in a URL or a file path (CVE-2024-3727 class),
//! so `Digest` can only be made by hashing bytes or by parsing a string that passes the grammar.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A validated `sha256:<64 hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {shown:?}: {why} (expected sha256: followed by 64 lowercase hex digits)")]
pub struct DigestError {
    shown: String,
    why: &'static str,
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let err = |why| DigestError {
            shown: s.chars().take(80).collect(),
            why,
        };
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(err("no algorithm prefix"));
        };
        if algo != "sha256" {
            return Err(err("only sha256 is supported"));
        }
        if hex.len() != 64 {
            return Err(err("wrong length"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("not lowercase hex"));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest of everything a reader yields, and its length.
    pub fn of_reader(mut r: impl Read) -> io::Result<(Digest, u64)> {
        let mut w = HashingWriter::new(io::sink());
        io::copy(&mut r, &mut w)?;
        Ok(w.finish())
    }

    /// `sha256:…` as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, safe to use as a file name (validated: 64 hex digits).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The algorithm part (always `sha256`).
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// A short form for humans: `sha256:0123456789ab`.
    pub fn short(&self) -> &str {
        &self.0[..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The digest and byte count of everything written.
    pub fn finish(self) -> (Digest, u64) {
        let d = Digest(format!("sha256:{}", hex::encode(self.hasher.finalize())));
        (d, self.len)
    }

    /// Like `finish`, and gives back the inner writer.
    pub fn finish_into(self) -> (Digest, u64, W) {
        let d = Digest(format!("sha256:{}", hex::encode(self.hasher.finalize())));
        (d, self.len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The digest and byte count of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        let d = Digest(format!("sha256:{}", hex::encode(self.hasher.finalize())));
        (d, self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_validates() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
    }

    #[test]
    fn refuses_bad_digests() {
        for bad in [
            "sha256:../../x",
            "sha512:abcd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hashing_writer_matches() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let (d, n, inner) = w.finish_into();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(n, 5);
        assert_eq!(inner, b"hello");
    }
}
