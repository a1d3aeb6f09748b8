//! A small blocking registry client (OCI distribution spec v2) over ureq 3: ping and auth
//! (Basic, Bearer tokens with push and mount scopes), HEAD-before-upload, cross-repository
//! mount, monolithic or chunked blob uploads, manifest PUT/HEAD/GET and streamed blob GET, every
//! digest checked, retries with backoff on transient failures, an overall deadline per request,
//! and the run's cancel token.
//!
//! Transport policy is decided before the first request: https unless the caller asks for plain
//! http *and* the host is loopback or explicitly insecure; credentials never go over http to a
//! non-loopback host, and `Authorization` is only ever sent to the registry's own host (not to a
//! redirect target or an upload `Location` elsewhere). Errors carry URLs stripped of userinfo and
//! of query parameters other than `digest`, `mount`, `from`, `scope`, `service`.
//!
//! The seams: `transport` (one HTTP exchange: policy, agents, deadline, cancellable socket
//! reads, redirects' `Location`), `authn` (answering Basic and Bearer challenges, token fetch),
//! `retry` (attempts and backoff), `read` and `write` (the registry operations), `error`
//! (error classes and URL redaction); `auth` parses challenges, `credentials` finds credentials,
//! `reference` parses image references.

pub mod auth;
mod authn;
mod client;
pub mod credentials;
mod error;
mod read;
pub mod reference;
mod retry;
mod transport;
mod write;

pub use client::{
    BlobOutcome, ClientOptions, DEFAULT_REQUEST_DEADLINE, MAX_MANIFEST_SIZE, MaskSink,
    RegistryClient, RegistryStats,
};
pub use credentials::{CredentialError, Credentials, Secret};
pub use error::{ErrorKind, RegistryError, redact_url};
pub use reference::{Reference, ReferenceError};

#[cfg(test)]
mod tests {
    use super::error::describe_errors;
    use super::retry::backoff;
    use super::transport::Target;
    use super::*;
    use crate::exec::Cancel;
    use std::time::Duration;

    #[test]
    fn redacts_urls() {
        assert_eq!(
            redact_url(
                "https://u:CANARY@reg.example/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:ab&X-Amz-Signature=s"
            ),
            "https://reg.example/v2/a/blobs/uploads/x?_state=<redacted>&digest=sha256:ab&X-Amz-Signature=<redacted>"
        );
        assert_eq!(redact_url("http://h:1/v2/"), "http://h:1/v2/");
    }

    #[test]
    fn refuses_plain_http_to_remote_hosts_before_any_request() {
        let r = Reference::parse("registry.invalid:5000/a/b:t").unwrap();
        let opts = ClientOptions {
            plain_http: true,
            ..ClientOptions::default()
        };
        let e = RegistryClient::new(&r, None, opts.clone(), &Cancel::new())
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.to_string()
                .contains("refusing plain HTTP to non-loopback host registry.invalid:5000"),
            "{e}"
        );
        let creds = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("CANARY"),
        };
        let insecure = ClientOptions {
            insecure: true,
            ..opts
        };
        let e = RegistryClient::new(&r, Some(creds), insecure, &Cancel::new())
            .err()
            .unwrap();
        assert!(e.to_string().contains("credentials over plain HTTP"), "{e}");
        assert!(!e.to_string().contains("CANARY"));
    }

    #[test]
    fn classifies_errors() {
        let s = |status| RegistryError::Status {
            what: "x".into(),
            url: "u".into(),
            status,
            codes: String::new(),
            retry_after: None,
        };
        for st in [408, 429, 500, 502, 503, 504] {
            assert!(s(st).is_retryable(), "{st}");
        }
        for st in [400, 401, 403, 405, 416] {
            assert!(!s(st).is_retryable(), "{st}");
        }
        assert_eq!(s(401).kind(), ErrorKind::Auth);
        assert_eq!(s(400).kind(), ErrorKind::Protocol);
        assert!(describe_errors(r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#).contains("MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:ab)"));
    }

    #[test]
    fn backoff_grows_with_jitter() {
        let b = Duration::from_millis(100);
        for attempt in 1..5 {
            let d = backoff(b, attempt);
            let nominal = 100.0 * f64::from(1u32 << (attempt - 1));
            let ms = d.as_secs_f64() * 1000.0;
            assert!(
                ms >= nominal * 0.79 && ms <= nominal * 1.21,
                "{attempt}: {ms}"
            );
        }
    }

    #[test]
    fn targets_and_locations() {
        let t = Target::parse("https://Reg.Example:5000/v2/a/blobs/uploads/u?_state=x").unwrap();
        assert_eq!(t.authority, "reg.example:5000");
        assert_eq!(t.host(), "reg.example");
        assert_eq!(
            t.with_query("digest=sha256:a").path_and_query,
            "/v2/a/blobs/uploads/u?_state=x&digest=sha256:a"
        );
        assert!(Target::parse("https://u:p@h/").is_none());
        assert!(Target::parse("ftp://h/").is_none());
    }
}
