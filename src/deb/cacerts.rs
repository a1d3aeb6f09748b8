//! What `update-ca-certificates` does when the `ca-certificates` package is installed, done in
//! Rust because maintainer scripts never run: with Debian's default configuration every
//! certificate under `/usr/share/ca-certificates` is enabled (`/etc/ca-certificates.conf` lists
//! them, sorted), `/etc/ssl/certs/<name>.pem` links to each, the bundle
//! `/etc/ssl/certs/ca-certificates.crt` concatenates them in that order (a missing final newline
//! added), and `openssl rehash` adds `<subject hash>.<n>` links to the `.pem` names.
//!
//! The subject hash is OpenSSL's `X509_NAME_hash` (since 1.0.0): SHA-1 of the *canonical*
//! encoding of the subject name — each RDN's SET re-encoded with string values converted to
//! UTF8String, lower-cased (ASCII), leading/trailing white space dropped and inner runs collapsed
//! to one space, the outer SEQUENCE header left out — its first four bytes read little-endian.

use super::error::DebError;
use crate::oci::layer::Entry;
use sha1::Digest as _;
use std::collections::BTreeMap;
use x509_cert::der::{DecodePem, Encode};

/// Where the package keeps the certificates (relative to the root).
pub const SHARE_DIR: &str = "usr/share/ca-certificates";
/// Where the links and the bundle go.
pub const CERTS_DIR: &str = "etc/ssl/certs";

/// OpenSSL's subject-name hash of a PEM certificate (`openssl x509 -hash -noout`).
pub fn subject_hash_pem(pem: &[u8]) -> Result<u32, String> {
    let cert = x509_cert::Certificate::from_pem(pem).map_err(|e| e.to_string())?;
    subject_hash(cert.tbs_certificate().subject())
}

/// OpenSSL's `X509_NAME_hash` of a name.
pub fn subject_hash(name: &x509_cert::name::Name) -> Result<u32, String> {
    let canon = canonical_name(name)?;
    let md = sha1::Sha1::digest(&canon);
    Ok(u32::from_le_bytes([md[0], md[1], md[2], md[3]]))
}

/// Universal tags of the string types OpenSSL canonicalises (`ASN1_MASK_CANON`).
const UTF8: u8 = 0x0c;
const CANON_TAGS: [u8; 7] = [
    UTF8, 0x13, /* Printable */
    0x14, /* T61 */
    0x16, /* IA5 */
    0x1a, /* Visible */
    0x1c, /* Universal */
    0x1e, /* BMP */
];

fn canonical_name(name: &x509_cert::name::Name) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn() {
        let mut avas: Vec<Vec<u8>> = Vec::new();
        for ava in rdn.iter() {
            let oid = ava.oid.to_der().map_err(|e| e.to_string())?;
            let whole = ava.value.to_der().map_err(|e| e.to_string())?;
            let tag = whole[0];
            let value = if CANON_TAGS.contains(&tag) {
                tlv(UTF8, &canonical_string(tag, ava.value.value())?)
            } else {
                whole
            };
            let mut seq = oid;
            seq.extend(value);
            avas.push(tlv(0x30, &seq));
        }
        // DER orders the members of a SET OF by their encodings.
        avas.sort();
        out.extend(tlv(0x31, &avas.concat()));
    }
    Ok(out)
}

/// The string as UTF-8, lower-cased, trimmed, inner white space collapsed (`asn1_string_canon`).
fn canonical_string(tag: u8, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text: String = match tag {
        UTF8 => String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?,
        0x1e => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16(&units).map_err(|e| e.to_string())?
        }
        0x1c => bytes
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                char::from_u32(u32::from_be_bytes(b)).ok_or("bad UniversalString")
            })
            .collect::<Result<_, _>>()?,
        // One byte per character (OpenSSL reads T61 as Latin-1).
        _ => bytes.iter().map(|&b| b as char).collect(),
    };
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let b = text.as_bytes();
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |e| e + 1);
    let mut out = Vec::with_capacity(end - start);
    let mut i = start;
    while i < end {
        let c = b[i];
        if !c.is_ascii() {
            out.push(c);
            i += 1;
        } else if is_space(c) {
            out.push(b' ');
            while i < end && is_space(b[i]) {
                i += 1;
            }
        } else {
            out.push(c.to_ascii_lowercase());
            i += 1;
        }
    }
    Ok(out)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `update-ca-certificates`' name for a certificate's link: the file name without `.crt`,
/// spaces and commas → `_`, parentheses → `=`, plus `.pem`.
pub fn pem_name(rel: &str) -> String {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let base = base.strip_suffix(".crt").unwrap_or(base);
    let mapped: String = base
        .chars()
        .map(|c| match c {
            ' ' | ',' => '_',
            '(' | ')' => '=',
            c => c,
        })
        .collect();
    format!("{mapped}.pem")
}

/// The files `update-ca-certificates` would make, from the certificates under
/// [`SHARE_DIR`] (keys relative to it, e.g. `mozilla/ISRG_Root_X1.crt`). Certificates OpenSSL
/// could not read get a `.pem` link and a place in the bundle but no hash link, as with
/// `openssl rehash`.
pub fn update_ca_certificates(certs: &BTreeMap<String, Vec<u8>>) -> Result<Vec<Entry>, DebError> {
    let mut conf = String::from(
        "# This file lists certificates that you wish to use or to ignore to be\n\
         # installed in /etc/ssl/certs.\n\
         # Written by shipit with Debian's defaults: every certificate under\n\
         # /usr/share/ca-certificates is enabled.\n",
    );
    let mut bundle = Vec::new();
    let mut entries = Vec::new();
    let mut pems: BTreeMap<String, &[u8]> = BTreeMap::new();
    for (rel, bytes) in certs.iter().filter(|(r, _)| r.ends_with(".crt")) {
        conf.push_str(rel);
        conf.push('\n');
        bundle.extend_from_slice(bytes);
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        let name = pem_name(rel);
        entries.push(Entry::symlink(
            format!("{CERTS_DIR}/{name}"),
            format!("/{SHARE_DIR}/{rel}"),
        ));
        if pems.insert(name.clone(), bytes).is_some() {
            return Err(DebError::format(
                "ca-certificates",
                format!("two certificates map to {CERTS_DIR}/{name}"),
            ));
        }
    }
    // `openssl rehash`: names in sorted order, `.0`, `.1`, … per hash; identical certificates
    // (same DER) get one link.
    let mut by_hash: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, pem) in &pems {
        let Ok(cert) = x509_cert::Certificate::from_pem(pem) else {
            continue;
        };
        let Ok(hash) = subject_hash(cert.tbs_certificate().subject()) else {
            continue;
        };
        let der = cert.to_der().unwrap_or_default();
        let seen = by_hash.entry(hash).or_default();
        if seen.contains(&der) {
            continue;
        }
        entries.push(Entry::symlink(
            format!("{CERTS_DIR}/{hash:08x}.{}", seen.len()),
            name.clone(),
        ));
        seen.push(der);
    }
    entries.push(Entry::file(
        format!("{CERTS_DIR}/ca-certificates.crt"),
        bundle,
        0o644,
    ));
    entries.push(Entry::file("etc/ca-certificates.conf", conf, 0o644));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_canonicalised_as_openssl_does() {
        assert_eq!(
            canonical_string(0x13, b"  Hello   World\tCA ").unwrap(),
            b"hello world ca"
        );
        assert_eq!(
            canonical_string(UTF8, "Ärger AB".as_bytes()).unwrap(),
            "Ärger ab".as_bytes()
        );
        assert_eq!(
            canonical_string(0x1e, &[0, b'A', 0, b' ', 0, b'b']).unwrap(),
            b"a b"
        );
        assert_eq!(canonical_string(0x13, b"   ").unwrap(), b"");
    }

    #[test]
    fn link_names_follow_update_ca_certificates() {
        assert_eq!(
            pem_name("mozilla/Hellenic_Academic_and_Research_Institutions_RootCA_2015.crt"),
            "Hellenic_Academic_and_Research_Institutions_RootCA_2015.pem"
        );
        assert_eq!(pem_name("x/A (B), C.crt"), "A_=B=__C.pem");
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        assert_eq!(tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 1, 44]);
    }

    /// Hashes of real certificates, compared with `openssl x509 -hash -noout` on this machine.
    #[test]
    fn subject_hashes_match_openssl() {
        let dir = std::path::Path::new("/usr/share/ca-certificates/mozilla");
        let openssl = which::which("openssl").expect("openssl is installed by scripts/setup.sh");
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("the ca-certificates package is installed (scripts/setup.sh)")
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert!(names.len() > 100);
        for path in names.iter().step_by(9) {
            let pem = std::fs::read(path).unwrap();
            let ours = subject_hash_pem(&pem).unwrap();
            let out = std::process::Command::new(&openssl)
                .args(["x509", "-hash", "-noout", "-in"])
                .arg(path)
                .output()
                .unwrap();
            let theirs = String::from_utf8(out.stdout).unwrap();
            assert_eq!(format!("{ours:08x}"), theirs.trim(), "{}", path.display());
        }
    }
}
