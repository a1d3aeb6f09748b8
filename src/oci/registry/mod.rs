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
pub mod credentials;
mod error;
mod read;
pub mod reference;
mod retry;
mod transport;
mod write;

pub use credentials::{CredentialError, Credentials, Secret};
pub use error::{ErrorKind, RegistryError, redact_url};
pub use reference::{Reference, ReferenceError};

use crate::exec::Cancel;
use authn::AuthMode;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use transport::{Payload, Req, load_ca};

/// Largest manifest or index shipit reads (the distribution reference limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// The `Accept` header for manifests: OCI and Docker, index and image.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The default overall deadline of one registry request (see [`ClientOptions::request_deadline`]).
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(300);

/// How a client talks to one registry. `Default` is the production setting.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Talk plain http instead of https. Allowed only for loopback hosts or with `insecure`.
    pub plain_http: bool,
    /// Allow plain http to a non-loopback host (credentials are still never sent over it).
    pub insecure: bool,
    /// Extra CA certificates (PEM) trusted for the registry's host, e.g. a self-signed registry.
    pub ca_file: Option<PathBuf>,
    /// TCP connect timeout for every request.
    pub connect_timeout: Duration,
    /// Timeout for each read or write on the socket.
    pub io_timeout: Duration,
    /// Attempts per operation (1 = no retry).
    pub max_attempts: u32,
    /// First backoff delay; doubled each retry, with ±20% jitter.
    pub retry_base_delay: Duration,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    /// Blobs larger than this are uploaded in PATCH chunks; others in one PUT.
    pub chunked_threshold: u64,
    /// PATCH chunk size.
    pub chunk_size: u64,
    /// Overall deadline of one request, from connecting to the end of the response body: a
    /// registry that trickles its answer fails after this long instead of stalling the run.
    pub request_deadline: Duration,
    /// Print `::add-mask::<token>` for every derived bearer token (default: `GITHUB_ACTIONS=true`).
    pub mask_tokens: bool,
    /// Where those `::add-mask::` lines go: stdout, or stderr when stdout holds a JSON document
    /// (`--json`; the runner reads workflow commands from both).
    pub mask_sink: MaskSink,
}

/// The stream a client writes its `::add-mask::` workflow commands to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskSink {
    #[default]
    Stdout,
    Stderr,
}

impl MaskSink {
    /// Writes `::add-mask::` lines for `secret` (escaped, one per line of it).
    pub(crate) fn add_mask(self, secret: &str) {
        use std::io::Write;
        let lines = crate::ci::github::add_mask(secret);
        if lines.is_empty() {
            return;
        }
        let _ = match self {
            MaskSink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(lines.as_bytes()).and_then(|_| out.flush())
            }
            MaskSink::Stderr => std::io::stderr().lock().write_all(lines.as_bytes()),
        };
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(500),
            retry_after_cap: Duration::from_secs(60),
            chunked_threshold: 32 << 20,
            chunk_size: 4 << 20,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            mask_tokens: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            mask_sink: MaskSink::Stdout,
        }
    }
}

/// What `push_blob` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry already had it (HEAD 200): nothing sent.
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Counters for the run report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// HTTP requests sent (pings, token fetches and retries included).
    pub requests: u64,
    pub blobs_uploaded: u64,
    pub blobs_skipped: u64,
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    blobs_uploaded: AtomicU64,
    blobs_skipped: AtomicU64,
    blobs_mounted: AtomicU64,
    bytes_uploaded: AtomicU64,
}

/// A client for one repository of one registry. Cheap to share across threads (`&self`).
pub struct RegistryClient {
    registry: String,
    repository: String,
    https: bool,
    credentials: Option<Credentials>,
    opts: ClientOptions,
    /// Indexed by `[use_ca][direct]`: CA roots only for the registry host; no proxy for loopback.
    agents: [[ureq::Agent; 2]; 2],
    mode: Mutex<Option<AuthMode>>,
    tokens: Mutex<HashMap<String, String>>,
    counters: Counters,
    /// The run's cancel token: no request starts once it is set, and a blocked socket read
    /// gives up within [`transport::CANCEL_LOOK`].
    cancel: Cancel,
}

impl RegistryClient {
    /// Makes a client for `reference`'s registry and repository (its tag/digest are ignored).
    /// Refuses plain http to a non-loopback host unless `opts.insecure`, before any request.
    pub fn new(
        reference: &Reference,
        credentials: Option<Credentials>,
        opts: ClientOptions,
        cancel: &Cancel,
    ) -> Result<RegistryClient, RegistryError> {
        let loopback = reference.is_loopback();
        if opts.plain_http && !loopback && !opts.insecure {
            return Err(RegistryError::Policy(format!(
                "refusing plain HTTP to non-loopback host {}: use https, or mark the registry insecure if you accept that anyone on the network can read and change what is pushed",
                reference.registry
            )));
        }
        if opts.plain_http && !loopback && credentials.is_some() {
            return Err(RegistryError::Policy(format!(
                "refusing to send credentials over plain HTTP to non-loopback host {}: use https",
                reference.registry
            )));
        }
        let ca = match &opts.ca_file {
            Some(path) => Some(load_ca(path)?),
            None => None,
        };
        let agents = transport::agents(&opts, ca.as_deref(), cancel);
        Ok(RegistryClient {
            registry: reference.registry.to_ascii_lowercase(),
            repository: reference.repository.clone(),
            https: !opts.plain_http,
            credentials,
            opts,
            agents,
            mode: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            cancel: cancel.clone(),
        })
    }

    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository this client pushes to and pulls from.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// A snapshot of the counters.
    /// The run's cancel token this client stops on.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    pub fn stats(&self) -> RegistryStats {
        let c = &self.counters;
        RegistryStats {
            requests: c.requests.load(Ordering::Relaxed),
            blobs_uploaded: c.blobs_uploaded.load(Ordering::Relaxed),
            blobs_skipped: c.blobs_skipped.load(Ordering::Relaxed),
            blobs_mounted: c.blobs_mounted.load(Ordering::Relaxed),
            bytes_uploaded: c.bytes_uploaded.load(Ordering::Relaxed),
        }
    }

    /// Checks that the registry answers and that the credentials work (GET `/v2/`).
    pub fn ping(&self) -> Result<(), RegistryError> {
        let scopes = auth::push_scopes(&self.repository, None);
        self.retry("ping", |_| {
            let resp = self.send(Req {
                method: "GET",
                target: self.target("/v2/"),
                headers: vec![],
                payload: Payload::Empty,
                scopes: &scopes,
                what: "ping",
            })?;
            self.expect(resp, &[200], "ping").map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::error::describe_errors;
    use super::retry::backoff;
    use super::transport::Target;
    use super::*;

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
