//! The client's data: options, counters and the `RegistryClient` value itself (with the auth
//! mode it learnt). Its operations live beside it: `transport` (constructor, one exchange),
//! `authn`, `retry`, `read` and `write`.

use super::auth::Challenge;
use super::credentials::Credentials;
use crate::exec::Cancel;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Largest manifest or index shipit reads (the distribution reference limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// The `Accept` header for manifests: OCI and Docker, index and image.
pub(super) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

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
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) blobs_uploaded: AtomicU64,
    pub(super) blobs_skipped: AtomicU64,
    pub(super) blobs_mounted: AtomicU64,
    pub(super) bytes_uploaded: AtomicU64,
}

/// A client for one repository of one registry. Cheap to share across threads (`&self`).
pub struct RegistryClient {
    pub(super) registry: String,
    pub(super) repository: String,
    pub(super) https: bool,
    pub(super) credentials: Option<Credentials>,
    pub(super) opts: ClientOptions,
    /// Indexed by `[use_ca][direct]`: CA roots only for the registry host; no proxy for loopback.
    pub(super) agents: [[ureq::Agent; 2]; 2],
    pub(super) mode: Mutex<Option<AuthMode>>,
    pub(super) tokens: Mutex<HashMap<String, String>>,
    pub(super) counters: Counters,
    /// The run's cancel token: no request starts once it is set, and a blocked socket read
    /// gives up within [`transport::CANCEL_LOOK`].
    pub(super) cancel: Cancel,
}

impl RegistryClient {
    /// The registry's `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository this client pushes to and pulls from.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The run's cancel token this client stops on.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// A snapshot of the counters.
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
}

/// How requests to the registry authenticate, learnt from the `/v2/` ping (or from a later
/// challenge that asks for more).
#[derive(Clone, Debug)]
pub(super) enum AuthMode {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl AuthMode {
    pub(super) fn from_challenge(c: Challenge) -> AuthMode {
        match c {
            Challenge::Basic { .. } => AuthMode::Basic,
            Challenge::Bearer { realm, service, .. } => AuthMode::Bearer { realm, service },
        }
    }

    /// Whether a challenge asks for what this mode already answers (an expired Bearer token
    /// challenges again with the same realm).
    pub(super) fn answers(&self, asked: &AuthMode) -> bool {
        match (self, asked) {
            (AuthMode::Basic, AuthMode::Basic) => true,
            (
                AuthMode::Bearer { realm, service },
                AuthMode::Bearer {
                    realm: r2,
                    service: s2,
                },
            ) => realm == r2 && service == s2,
            _ => false,
        }
    }
}
