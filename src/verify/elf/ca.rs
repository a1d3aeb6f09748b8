//! Whether a binary will look for the system's CA roots at run time: it links libssl or libcrypto
//! (DT_NEEDED), or it carries the paths that `openssl-probe` (used by native-tls, and by
//! rustls-native-certs) or OpenSSL's own defaults look at — found as strings in the bytes, since
//! symbols may be stripped. `CA_FILES`/`CA_DIRS` are the places openssl-probe checks, which
//! verification looks for in the image.

/// Strings only code that looks for system CA roots carries (openssl-probe's candidate paths,
/// OpenSSL's environment variables for its default roots).
const MARKERS: &[(&str, &str)] = &[
    ("certs/ca-certificates.crt", "openssl-probe's CA paths"),
    (
        "/etc/pki/ca-trust/extracted/pem",
        "openssl-probe's CA paths",
    ),
    ("/etc/ssl/certs/ca-certificates.crt", "a CA bundle path"),
    ("SSL_CERT_FILE", "OpenSSL's CA lookup (SSL_CERT_FILE)"),
];

/// The directories openssl-probe looks in, in its order.
pub const CA_DIRS: &[&str] = &[
    "/var/ssl",
    "/usr/share/ssl",
    "/usr/local/ssl",
    "/usr/local/openssl",
    "/usr/local/etc/openssl",
    "/usr/local/share",
    "/usr/lib/ssl",
    "/usr/ssl",
    "/etc/openssl",
    "/etc/pki/ca-trust/extracted/pem",
    "/etc/pki/tls",
    "/etc/ssl",
    "/etc/certs",
    "/opt/etc/ssl",
];

/// The bundle files openssl-probe looks for in each of `CA_DIRS`.
pub const CA_FILES: &[&str] = &[
    "cert.pem",
    "certs.pem",
    "ca-bundle.pem",
    "cacert.pem",
    "ca-certificates.crt",
    "certs/ca-certificates.crt",
    "certs/ca-root-nss.crt",
    "certs/ca-bundle.crt",
    "CARootCertificates.pem",
    "tls-ca-bundle.pem",
];

/// Why this binary will look for system CA roots, or `None` when nothing says it will.
/// `needed` is the binary's DT_NEEDED list.
pub fn looks_for_ca_roots(bytes: &[u8], needed: &[String]) -> Option<String> {
    if let Some(lib) = needed
        .iter()
        .find(|l| l.starts_with("libssl.so") || l.starts_with("libcrypto.so"))
    {
        return Some(format!("it links {lib}"));
    }
    MARKERS
        .iter()
        .find(|(m, _)| contains(bytes, m.as_bytes()))
        .map(|(m, why)| format!("it carries {why} (\"{m}\")"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libssl_or_probe_paths_mean_ca_roots_are_looked_for() {
        assert_eq!(looks_for_ca_roots(b"\0hello\0", &[]), None);
        let probe = b"\0/etc/ssl\0certs/ca-certificates.crt\0";
        assert!(looks_for_ca_roots(probe, &[]).is_some_and(|w| w.contains("openssl-probe")),);
        let needed = ["libc.so.6".to_string(), "libssl.so.3".to_string()];
        assert_eq!(
            looks_for_ca_roots(b"", &needed).as_deref(),
            Some("it links libssl.so.3")
        );
    }
}
