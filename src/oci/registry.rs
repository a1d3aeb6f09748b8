//! A small blocking registry client (OCI distribution spec v2) over ureq 3: ping and auth
//! (Basic, Bearer tokens with push and mount scopes), HEAD-before-upload, cross-repository
//! mount, monolithic or chunked blob uploads, manifest PUT/HEAD/GET and streamed blob GET, every
//! digest checked, retries with backoff on transient failures, and a cancellation flag.
//!
//! Transport policy is decided before the first request: https unless the caller asks for plain
//! http *and* the host is loopback or explicitly insecure; credentials never go over http to a
//! non-loopback host, and `Authorization` is only ever sent to the registry's own host (not to a
//! redirect target or an upload `Location` elsewhere). Errors carry URLs stripped of userinfo and
//! of query parameters other than `digest`, `mount`, `from`, `scope`, `service`.

pub mod auth;
pub mod credentials;
pub mod reference;

pub use credentials::{CredentialError, Credentials, Secret};
pub use reference::{Reference, ReferenceError};

use crate::oci::digest::{Digest, HashingWriter};
use auth::Challenge;
use base64::Engine as _;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ureq::http;

/// Largest manifest or index shipit reads (the distribution reference limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// The `Accept` header for manifests: OCI and Docker, index and image.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

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
    /// Once set, no new request starts and the running call returns [`RegistryError::Cancelled`].
    pub cancel: Arc<AtomicBool>,
    /// Print `::add-mask::<token>` for every derived bearer token (default: `GITHUB_ACTIONS=true`).
    pub mask_tokens: bool,
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
            cancel: Arc::new(AtomicBool::new(false)),
            mask_tokens: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        }
    }
}

/// Error classes, for exit codes and for deciding what to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wrong or missing credentials, or no permission.
    Auth,
    /// Refused by policy or bad configuration (plain http, bad CA file, bad credentials file).
    Config,
    /// Connection refused/reset, timeouts, DNS, TLS.
    Network,
    /// The registry answered something unexpected or an error status.
    Protocol,
    /// The blob, manifest or repository does not exist.
    NotFound,
    /// The cancellation flag was set.
    Cancelled,
    /// Content did not hash to the expected digest.
    DigestMismatch,
    /// A local file could not be read or written.
    Io,
}

/// Everything that can go wrong talking to a registry. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "authentication to {host} failed: check SHIPIT_REGISTRY_USER/SHIPIT_REGISTRY_PASSWORD or docker login ({detail})"
    )]
    Auth { host: String, detail: String },
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("{what}: {url}: {detail}")]
    Network {
        what: String,
        url: String,
        detail: String,
        retryable: bool,
    },
    #[error("{what}: {url} answered {status}{codes}")]
    Status {
        what: String,
        url: String,
        status: u16,
        codes: String,
        retry_after: Option<Duration>,
    },
    #[error("{what}: not found ({url} answered 404{codes})")]
    NotFound {
        what: String,
        url: String,
        codes: String,
    },
    #[error("{what}: {detail}")]
    Protocol { what: String, detail: String },
    #[error("cancelled before {what}")]
    Cancelled { what: String },
    #[error("{what}: digest mismatch: expected {expected}, got {got}")]
    DigestMismatch {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{what}: {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        attempts: u32,
        last: Box<RegistryError>,
    },
}

impl RegistryError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Auth { .. } => ErrorKind::Auth,
            RegistryError::Policy(_) | RegistryError::Credentials(_) => ErrorKind::Config,
            RegistryError::Network { .. } => ErrorKind::Network,
            RegistryError::Status {
                status: 401 | 403, ..
            } => ErrorKind::Auth,
            RegistryError::Status { .. } | RegistryError::Protocol { .. } => ErrorKind::Protocol,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::Cancelled { .. } => ErrorKind::Cancelled,
            RegistryError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            RegistryError::Io { .. } => ErrorKind::Io,
            RegistryError::GaveUp { last, .. } => last.kind(),
        }
    }

    /// Whether trying again may help (408/429/5xx, resets, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Network { retryable, .. } => *retryable,
            RegistryError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// The registry error codes (`MANIFEST_BLOB_UNKNOWN`, …) in this error, as text.
    pub fn registry_codes(&self) -> &str {
        match self {
            RegistryError::Status { codes, .. } | RegistryError::NotFound { codes, .. } => codes,
            RegistryError::GaveUp { last, .. } => last.registry_codes(),
            _ => "",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
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

/// How requests to the registry authenticate, learnt from the `/v2/` ping.
#[derive(Clone, Debug)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A URL split into the parts the policy looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
        let uri: http::Uri = s.parse().ok()?;
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let authority = uri.authority()?.as_str();
        if authority.contains('@') {
            return None;
        }
        Some(Target {
            https,
            authority: authority.to_ascii_lowercase(),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        })
    }

    fn host(&self) -> &str {
        reference::host_of(&self.authority)
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path_and_query)
    }

    /// Appends `k=v` to the query.
    fn with_query(&self, kv: &str) -> Target {
        let sep = if self.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        Target {
            path_and_query: format!("{}{sep}{kv}", self.path_and_query),
            ..self.clone()
        }
    }
}

/// A request body.
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// One request, as data.
struct Req<'a> {
    method: &'static str,
    target: Target,
    headers: Vec<(&'static str, String)>,
    payload: Payload<'a>,
    scopes: &'a [String],
    what: &'a str,
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
}

impl RegistryClient {
    /// Makes a client for `reference`'s registry and repository (its tag/digest are ignored).
    /// Refuses plain http to a non-loopback host unless `opts.insecure`, before any request.
    pub fn new(
        reference: &Reference,
        credentials: Option<Credentials>,
        opts: ClientOptions,
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
        let agent = |use_ca: bool, direct: bool| {
            let mut tls = ureq::tls::TlsConfig::builder();
            if let (true, Some(certs)) = (use_ca, &ca) {
                tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs.clone())));
            }
            let proxy = if direct {
                None
            } else {
                ureq::Proxy::try_from_env()
            };
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(format!("shipit/{}", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_per_read(Some(opts.io_timeout))
                .timeout_per_write(Some(opts.io_timeout))
                .proxy(proxy)
                .tls_config(tls.build())
                .build()
                .new_agent()
        };
        let agents = [
            [agent(false, false), agent(false, true)],
            [agent(true, false), agent(true, true)],
        ];
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

    /// Whether the repository has this blob (HEAD).
    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let scopes = auth::push_scopes(&self.repository, None);
        let what = format!("check blob {}", digest.short());
        self.retry(&what, |_| self.head_blob(digest, &scopes, &what))
    }

    fn head_blob(
        &self,
        digest: &Digest,
        scopes: &[String],
        what: &str,
    ) -> Result<bool, RegistryError> {
        let resp = self.send(Req {
            method: "HEAD",
            target: self.target(&format!("/v2/{}/blobs/{digest}", self.repository)),
            headers: vec![],
            payload: Payload::Empty,
            scopes,
            what,
        })?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => self.expect(resp, &[200], what).map(|_| true),
        }
    }

    /// Pushes the blob in `path` (which must be `size` bytes hashing to `digest`): skipped if the
    /// registry has it, mounted from `mount_from` (a repository of the same registry) if given and
    /// the registry agrees, else uploaded (one PUT, or PATCH chunks above the threshold). A retry
    /// restarts from a fresh upload session.
    pub fn push_blob(
        &self,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: Option<&str>,
    ) -> Result<BlobOutcome, RegistryError> {
        let what = format!("push blob {}", digest.short());
        let actual = std::fs::metadata(path)
            .map_err(|source| RegistryError::Io {
                what: what.clone(),
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if actual != size {
            return Err(RegistryError::Protocol {
                what,
                detail: format!(
                    "{} is {actual} bytes but the descriptor says {size}: rebuild the image",
                    path.display()
                ),
            });
        }
        let scopes = auth::push_scopes(&self.repository, None);
        if self.retry(&what, |_| self.head_blob(digest, &scopes, &what))? {
            self.counters.blobs_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(BlobOutcome::Existed);
        }
        let mut session = None;
        if let Some(from) = mount_from.filter(|f| *f != self.repository) {
            reference::validate_repository(from).map_err(RegistryError::Policy)?;
            match self.try_mount(digest, from, &what) {
                Ok(None) => {
                    self.counters.blobs_mounted.fetch_add(1, Ordering::Relaxed);
                    return Ok(BlobOutcome::Mounted);
                }
                Ok(Some(location)) => session = Some(location),
                Err(e @ RegistryError::Cancelled { .. }) => return Err(e),
                // Any other failure: a plain upload still works (ggcr, containerd do the same).
                Err(_) => {}
            }
        }
        self.retry(&what, |_| {
            self.upload(digest, size, path, session.take(), &scopes, &what)
        })?;
        self.counters.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_uploaded
            .fetch_add(size, Ordering::Relaxed);
        Ok(BlobOutcome::Uploaded)
    }

    /// POST `?mount=&from=`: `Ok(None)` when mounted (201), `Ok(Some(location))` when the
    /// registry opened an ordinary upload session instead (202).
    fn try_mount(
        &self,
        digest: &Digest,
        from: &str,
        what: &str,
    ) -> Result<Option<Target>, RegistryError> {
        let scopes = auth::push_scopes(&self.repository, Some(from));
        let target = self.target(&format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            self.repository,
            auth::form_encode(from)
        ));
        let resp = self.send(Req {
            method: "POST",
            target: target.clone(),
            headers: vec![("Content-Length", "0".into())],
            payload: Payload::Empty,
            scopes: &scopes,
            what,
        })?;
        match resp.status().as_u16() {
            201 => Ok(None),
            202 => Ok(Some(self.location(&target, &resp, what)?)),
            _ => self.expect(resp, &[201, 202], what).map(|_| None),
        }
    }

    /// One upload attempt: POST (unless a session is given), then PUT or PATCH…+PUT.
    fn upload(
        &self,
        digest: &Digest,
        size: u64,
        path: &Path,
        session: Option<Target>,
        scopes: &[String],
        what: &str,
    ) -> Result<(), RegistryError> {
        let mut location = match session {
            Some(l) => l,
            None => {
                let target = self.target(&format!("/v2/{}/blobs/uploads/", self.repository));
                let resp = self.send(Req {
                    method: "POST",
                    target: target.clone(),
                    headers: vec![("Content-Length", "0".into())],
                    payload: Payload::Empty,
                    scopes,
                    what,
                })?;
                let resp = self.expect(resp, &[202], what)?;
                self.location(&target, &resp, what)?
            }
        };
        let mut final_payload = Payload::File {
            path,
            offset: 0,
            len: size,
        };
        if size > self.opts.chunked_threshold {
            let chunk = self.opts.chunk_size.max(1);
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let resp = self.send(Req {
                    method: "PATCH",
                    target: location.clone(),
                    headers: vec![
                        ("Content-Type", "application/octet-stream".into()),
                        ("Content-Range", format!("{offset}-{}", offset + len - 1)),
                        ("Content-Length", len.to_string()),
                    ],
                    payload: Payload::File { path, offset, len },
                    scopes,
                    what,
                })?;
                let resp = self.expect(resp, &[202], what)?;
                location = self.location(&location, &resp, what)?;
                offset += len;
            }
            final_payload = Payload::Empty;
        }
        let len = match final_payload {
            Payload::File { len, .. } => len,
            _ => 0,
        };
        let resp = self.send(Req {
            method: "PUT",
            target: location.with_query(&format!("digest={digest}")),
            headers: vec![
                ("Content-Type", "application/octet-stream".into()),
                ("Content-Length", len.to_string()),
            ],
            payload: final_payload,
            scopes,
            what,
        })?;
        let resp = self.expect(resp, &[201], what)?;
        check_digest_header(&resp, digest, what)
    }

    /// PUTs a manifest or index under `tag_or_digest` and returns its digest, checked against
    /// the registry's `Docker-Content-Digest`.
    pub fn push_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let what = format!("push manifest {}:{tag_or_digest}", self.repository);
        self.check_manifest_ref(tag_or_digest)?;
        if tag_or_digest.starts_with("sha256:") && tag_or_digest != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: tag_or_digest.to_string(),
                got: digest.to_string(),
            });
        }
        let scopes = auth::push_scopes(&self.repository, None);
        self.retry(&what, |_| {
            let resp = self.send(Req {
                method: "PUT",
                target: self.target(&format!(
                    "/v2/{}/manifests/{tag_or_digest}",
                    self.repository
                )),
                headers: vec![
                    ("Content-Type", media_type.to_string()),
                    ("Content-Length", bytes.len().to_string()),
                ],
                payload: Payload::Bytes(bytes),
                scopes: &scopes,
                what: &what,
            })?;
            let resp = self.expect(resp, &[201], &what)?;
            check_digest_header(&resp, &digest, &what)
        })?;
        Ok(digest)
    }

    /// HEADs a manifest: `(digest, media type, size)`, or `None` if absent.
    pub fn head_manifest(
        &self,
        tag_or_digest: &str,
    ) -> Result<Option<(Digest, String, u64)>, RegistryError> {
        self.check_manifest_ref(tag_or_digest)?;
        let what = format!("check manifest {}:{tag_or_digest}", self.repository);
        let scopes = auth::push_scopes(&self.repository, None);
        self.retry(&what, |_| {
            let resp = self.send(Req {
                method: "HEAD",
                target: self.target(&format!(
                    "/v2/{}/manifests/{tag_or_digest}",
                    self.repository
                )),
                headers: vec![("Accept", MANIFEST_ACCEPT.into())],
                payload: Payload::Empty,
                scopes: &scopes,
                what: &what,
            })?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let resp = self.expect(resp, &[200], &what)?;
            let digest = header(&resp, "docker-content-digest")
                .and_then(|d| Digest::parse(&d).ok())
                .ok_or_else(|| RegistryError::Protocol {
                    what: what.clone(),
                    detail: "no valid Docker-Content-Digest header in the answer".into(),
                })?;
            let media_type = header(&resp, "content-type").unwrap_or_default();
            let size = header(&resp, "content-length")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Ok(Some((digest, media_type, size)))
        })
    }

    /// GETs a manifest: `(bytes, media type, digest)`. Fetched by digest, the bytes must hash
    /// to it; a `Docker-Content-Digest` in the answer must match too.
    pub fn get_manifest(
        &self,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, String, Digest), RegistryError> {
        self.check_manifest_ref(tag_or_digest)?;
        let what = format!("get manifest {}:{tag_or_digest}", self.repository);
        let scopes = auth::pull_scopes(&self.repository);
        self.retry(&what, |_| {
            let resp = self.send(Req {
                method: "GET",
                target: self.target(&format!(
                    "/v2/{}/manifests/{tag_or_digest}",
                    self.repository
                )),
                headers: vec![("Accept", MANIFEST_ACCEPT.into())],
                payload: Payload::Empty,
                scopes: &scopes,
                what: &what,
            })?;
            let resp = self.expect(resp, &[200], &what)?;
            let media_type = header(&resp, "content-type").unwrap_or_default();
            let claimed = header(&resp, "docker-content-digest");
            let bytes = resp
                .into_body()
                .with_config()
                .limit(MAX_MANIFEST_SIZE)
                .read_to_vec()
                .map_err(|e| self.net_error(&what, &self.target("/v2/"), e))?;
            let digest = Digest::of(&bytes);
            let expected = if tag_or_digest.starts_with("sha256:") {
                Some(tag_or_digest.to_string())
            } else {
                claimed
            };
            if let Some(expected) = expected.filter(|e| e != digest.as_str()) {
                return Err(RegistryError::DigestMismatch {
                    what: what.clone(),
                    expected,
                    got: digest.to_string(),
                });
            }
            Ok((bytes, media_type, digest))
        })
    }

    /// Streams a blob into `dest` (written to a temporary file beside it, renamed when the size
    /// and digest check out). Fails without leaving `dest` if the blob exceeds `max_size`.
    pub fn get_blob(
        &self,
        digest: &Digest,
        dest: &Path,
        max_size: u64,
    ) -> Result<u64, RegistryError> {
        let what = format!("get blob {}", digest.short());
        let scopes = auth::pull_scopes(&self.repository);
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io_err = |source| RegistryError::Io {
            what: what.clone(),
            path: dest.to_path_buf(),
            source,
        };
        self.retry(&what, |_| {
            let target = self.target(&format!("/v2/{}/blobs/{digest}", self.repository));
            let resp = self.send(Req {
                method: "GET",
                target: target.clone(),
                headers: vec![],
                payload: Payload::Empty,
                scopes: &scopes,
                what: &what,
            })?;
            let resp = self.expect(resp, &[200], &what)?;
            let announced = header(&resp, "content-length").and_then(|s| s.parse::<u64>().ok());
            if let Some(len) = announced.filter(|len| *len > max_size) {
                return Err(RegistryError::Protocol {
                    what: what.clone(),
                    detail: format!(
                        "the registry announces {len} bytes, more than the limit of {max_size}"
                    ),
                });
            }
            let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
            let mut writer = HashingWriter::new(io::BufWriter::new(tmp));
            let mut reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
            let copied = io::copy(&mut (&mut reader).take(max_size + 1), &mut writer);
            if let Err(e) = copied {
                return Err(match e.kind() {
                    io::ErrorKind::Other if e.get_ref().is_some_and(|i| i.is::<ureq::Error>()) => {
                        self.net_error(&what, &target, into_ureq(e))
                    }
                    _ if is_transient_io(e.kind()) => RegistryError::Network {
                        what: what.clone(),
                        url: redact_url(&target.url()),
                        detail: e.to_string(),
                        retryable: true,
                    },
                    _ => io_err(e),
                });
            }
            let (got, len, buf) = writer.finish_into();
            if len > max_size {
                return Err(RegistryError::Protocol {
                    what: what.clone(),
                    detail: format!("the blob is larger than the limit of {max_size} bytes"),
                });
            }
            if &got != digest {
                return Err(RegistryError::DigestMismatch {
                    what: what.clone(),
                    expected: digest.to_string(),
                    got: got.to_string(),
                });
            }
            let tmp = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
            tmp.persist(dest).map_err(|e| io_err(e.error))?;
            Ok(len)
        })
    }

    // ---- plumbing ----

    fn check_manifest_ref(&self, r: &str) -> Result<(), RegistryError> {
        if r.starts_with("sha256:") {
            Digest::parse(r)
                .map(drop)
                .map_err(|e| RegistryError::Policy(e.to_string()))
        } else {
            reference::validate_tag(r).map_err(RegistryError::Policy)
        }
    }

    fn target(&self, path_and_query: &str) -> Target {
        Target {
            https: self.https,
            authority: self.registry.clone(),
            path_and_query: path_and_query.to_string(),
        }
    }

    fn is_registry_host(&self, t: &Target) -> bool {
        t.authority == self.registry && t.https == self.https
    }

    /// Runs `op` until it succeeds, fails for good, or attempts run out.
    fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut(u32) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let max = self.opts.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < max => {
                    let delay = match e.retry_after() {
                        Some(d) => d.min(self.opts.retry_after_cap),
                        None => backoff(self.opts.retry_base_delay, attempt),
                    };
                    self.sleep(delay, what)?;
                    attempt += 1;
                }
                Err(e) if e.is_retryable() && attempt > 1 => {
                    return Err(RegistryError::GaveUp {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps, waking early (with `Cancelled`) when the cancellation flag is set.
    fn sleep(&self, d: Duration, what: &str) -> Result<(), RegistryError> {
        let end = std::time::Instant::now() + d;
        loop {
            self.check_cancel(what)?;
            let now = std::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }

    fn check_cancel(&self, what: &str) -> Result<(), RegistryError> {
        if self.opts.cancel.load(Ordering::SeqCst) {
            Err(RegistryError::Cancelled {
                what: what.to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// The auth mode, pinging `/v2/` the first time.
    fn auth_mode(&self, what: &str) -> Result<AuthMode, RegistryError> {
        if let Some(m) = self.lock_mode().clone() {
            return Ok(m);
        }
        let target = self.target("/v2/");
        let resp = self.raw_with(&target, "GET", &[], &Payload::Empty, true, what)?;
        let mode = match resp.status().as_u16() {
            200..=299 => AuthMode::Anonymous,
            401 => {
                let challenge =
                    header(&resp, "www-authenticate").and_then(|h| auth::parse_challenge(&h));
                match challenge {
                    Some(Challenge::Basic { .. }) => AuthMode::Basic,
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        AuthMode::Bearer { realm, service }
                    }
                    None => {
                        return Err(RegistryError::Protocol {
                            what: what.to_string(),
                            detail: format!(
                                "{} answered 401 without a Basic or Bearer WWW-Authenticate challenge",
                                redact_url(&target.url())
                            ),
                        });
                    }
                }
            }
            _ => return self.expect(resp, &[200], what).map(|_| AuthMode::Anonymous),
        };
        *self.lock_mode() = Some(mode.clone());
        Ok(mode)
    }

    fn lock_mode(&self) -> std::sync::MutexGuard<'_, Option<AuthMode>> {
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Authorization` value for the registry host, if any.
    fn authorization(
        &self,
        mode: &AuthMode,
        scopes: &[String],
        what: &str,
    ) -> Result<Option<String>, RegistryError> {
        match (mode, &self.credentials) {
            (AuthMode::Anonymous, _) | (AuthMode::Basic, None) => Ok(None),
            (AuthMode::Basic, Some(Credentials::Basic { username, password })) => {
                if !self.https && !reference::is_loopback_host(reference::host_of(&self.registry)) {
                    return Err(self.http_creds_refused(&self.registry));
                }
                Ok(Some(basic_header(username, password)))
            }
            (AuthMode::Basic, Some(Credentials::IdentityToken(_))) => Err(RegistryError::Auth {
                host: self.registry.clone(),
                detail: "the registry wants a user name and password, but only an identity token is configured".into(),
            }),
            (AuthMode::Bearer { realm, service }, _) => {
                let key = scopes.join(" ");
                if let Some(t) = self.lock_tokens().get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(realm, service.as_deref(), scopes, what)?;
                self.lock_tokens().insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn http_creds_refused(&self, authority: &str) -> RegistryError {
        RegistryError::Policy(format!(
            "refusing to send credentials over plain HTTP to non-loopback host {authority}: use https"
        ))
    }

    /// Exchanges the credentials (or nothing) for a bearer token at the realm.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        what: &str,
    ) -> Result<String, RegistryError> {
        let realm_t = Target::parse(realm).ok_or_else(|| RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "the token realm {:?} is not an http(s) URL",
                redact_url(realm)
            ),
        })?;
        let realm_loopback = reference::is_loopback_host(realm_t.host());
        if !realm_t.https && !realm_loopback && self.credentials.is_some() {
            return Err(self.http_creds_refused(&realm_t.authority));
        }
        if self.https && !realm_t.https && !realm_loopback {
            return Err(RegistryError::Policy(format!(
                "the https registry {} sends tokens from a plain-http realm {}: refused",
                self.registry,
                redact_url(realm)
            )));
        }
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", auth::form_encode(s)));
        }
        let (method, body, mut headers): (
            &'static str,
            Option<String>,
            Vec<(&'static str, String)>,
        ) = match &self.credentials {
            Some(Credentials::IdentityToken(tok)) => {
                let mut form = vec![
                    "grant_type=refresh_token".to_string(),
                    "client_id=shipit".to_string(),
                    format!("refresh_token={}", auth::form_encode(tok.expose())),
                    format!("scope={}", auth::form_encode(&scopes.join(" "))),
                ];
                form.append(&mut query);
                (
                    "POST",
                    Some(form.join("&")),
                    vec![("Content-Type", "application/x-www-form-urlencoded".into())],
                )
            }
            Some(Credentials::Basic { username, password }) => {
                query.extend(
                    scopes
                        .iter()
                        .map(|s| format!("scope={}", auth::form_encode(s))),
                );
                (
                    "GET",
                    None,
                    vec![("Authorization", basic_header(username, password))],
                )
            }
            None => {
                query.extend(
                    scopes
                        .iter()
                        .map(|s| format!("scope={}", auth::form_encode(s))),
                );
                ("GET", None, vec![])
            }
        };
        let mut target = realm_t.clone();
        for q in &query {
            target = target.with_query(q);
        }
        let payload = match &body {
            Some(b) => {
                headers.push(("Content-Length", b.len().to_string()));
                Payload::Bytes(b.as_bytes())
            }
            None => Payload::Empty,
        };
        let use_ca = target.authority == self.registry;
        let resp = self.raw_with(&target, method, &headers, &payload, use_ca, what)?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(RegistryError::Auth {
                    host: self.registry.clone(),
                    detail: format!(
                        "the token server {} answered {}",
                        redact_url(&realm_t.url()),
                        resp.status().as_u16()
                    ),
                });
            }
            _ => return self.expect(resp, &[200], what).map(|_| String::new()),
        }
        let parsed: auth::TokenResponse = resp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RegistryError::Protocol {
                what: what.to_string(),
                detail: format!(
                    "the token server {} did not answer with token JSON",
                    redact_url(&realm_t.url())
                ),
            })?;
        let token = parsed.into_token().ok_or_else(|| RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "the token server {} answered without a token",
                redact_url(&realm_t.url())
            ),
        })?;
        if self.opts.mask_tokens {
            let mut out = io::stdout().lock();
            for line in token.lines().filter(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "::add-mask::{line}");
            }
            let _ = out.flush();
        }
        Ok(token)
    }

    /// Sends a request to the registry with auth, one re-auth on 401, and redirects followed
    /// (GET/HEAD only) without credentials to other hosts.
    fn send(&self, req: Req<'_>) -> Result<http::Response<ureq::Body>, RegistryError> {
        self.check_cancel(req.what)?;
        let mode = self.auth_mode(req.what)?;
        let mut reauthed = false;
        let mut target = req.target.clone();
        let mut redirects = 0;
        loop {
            let on_registry = self.is_registry_host(&target);
            let mut headers = req.headers.clone();
            let mut auth_header = None;
            if on_registry {
                auth_header = self.authorization(&mode, req.scopes, req.what)?;
                if let Some(a) = &auth_header {
                    headers.push(("Authorization", a.clone()));
                }
            }
            let resp = self.raw_with(
                &target,
                req.method,
                &headers,
                &req.payload,
                on_registry,
                req.what,
            )?;
            let status = resp.status().as_u16();
            if status == 401 && on_registry {
                if let (AuthMode::Bearer { .. }, false) = (&mode, reauthed) {
                    // An expired token: forget it and fetch a fresh one, once.
                    self.lock_tokens().remove(&req.scopes.join(" "));
                    reauthed = true;
                    continue;
                }
                let detail = match (&self.credentials, &auth_header) {
                    (None, _) => {
                        "no credentials configured and the registry requires them".to_string()
                    }
                    _ => format!("{} answered 401", redact_url(&target.url())),
                };
                return Err(RegistryError::Auth {
                    host: self.registry.clone(),
                    detail,
                });
            }
            let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if is_redirect && matches!(req.method, "GET" | "HEAD") {
                redirects += 1;
                if redirects > 5 {
                    return Err(RegistryError::Protocol {
                        what: req.what.to_string(),
                        detail: format!(
                            "more than 5 redirects from {}",
                            redact_url(&req.target.url())
                        ),
                    });
                }
                target = self.location(&target, &resp, req.what)?;
                continue;
            }
            return Ok(resp);
        }
    }

    /// One HTTP exchange, no auth logic. `use_ca`: trust the configured CA (registry host only).
    fn raw_with(
        &self,
        target: &Target,
        method: &'static str,
        headers: &[(&'static str, String)],
        payload: &Payload<'_>,
        use_ca: bool,
        what: &str,
    ) -> Result<http::Response<ureq::Body>, RegistryError> {
        self.check_cancel(what)?;
        let direct = reference::is_loopback_host(target.host());
        let agent = &self.agents[usize::from(use_ca)][usize::from(direct)];
        let url = target.url();
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let io_err = |path: &Path, source| RegistryError::Io {
            what: what.to_string(),
            path: path.to_path_buf(),
            source,
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match payload {
            Payload::Empty => {
                let request = builder
                    .body(())
                    .map_err(|e| self.build_error(what, target, e))?;
                agent.run(request)
            }
            Payload::Bytes(b) => {
                let request = builder
                    .body(*b)
                    .map_err(|e| self.build_error(what, target, e))?;
                agent.run(request)
            }
            Payload::File { path, offset, len } => {
                let mut file = File::open(path).map_err(|e| io_err(path, e))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(|e| io_err(path, e))?;
                let mut limited = file.take(*len);
                let request = builder
                    .body(ureq::SendBody::from_reader(&mut limited))
                    .map_err(|e| self.build_error(what, target, e))?;
                agent.run(request)
            }
        };
        result.map_err(|e| self.net_error(what, target, e))
    }

    fn build_error(&self, what: &str, target: &Target, e: http::Error) -> RegistryError {
        RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "cannot build a request for {}: {e}",
                redact_url(&target.url())
            ),
        }
    }

    fn net_error(&self, what: &str, target: &Target, e: ureq::Error) -> RegistryError {
        let url = redact_url(&target.url());
        let (detail, retryable) = match &e {
            ureq::Error::Io(io) => (io.to_string(), is_transient_io(io.kind())),
            ureq::Error::Timeout(t) => (format!("timed out ({t})"), true),
            ureq::Error::HostNotFound => ("host not found (DNS)".to_string(), false),
            ureq::Error::ConnectionFailed => ("connection failed".to_string(), true),
            ureq::Error::Protocol(p) => (format!("HTTP protocol error: {p}"), true),
            ureq::Error::Tls(t) => (format!("TLS error: {t}"), false),
            ureq::Error::BadUri(_) => ("malformed URL".to_string(), false),
            other => (other.to_string(), false),
        };
        let lower = detail.to_ascii_lowercase();
        let detail = if (lower.contains("certificate") || lower.contains("tls"))
            && !detail.contains("ca_file")
        {
            format!("{detail}; if the registry uses a private CA, give its certificate as ca_file")
        } else {
            detail
        };
        RegistryError::Network {
            what: what.to_string(),
            url,
            detail,
            retryable,
        }
    }

    /// Passes the response through if its status is one of `ok`; else turns it into an error
    /// carrying the registry's error codes.
    fn expect(
        &self,
        resp: http::Response<ureq::Body>,
        ok: &[u16],
        what: &str,
    ) -> Result<http::Response<ureq::Body>, RegistryError> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let retry_after = header(&resp, "retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let codes = describe_errors(&body);
        if status == 404 {
            return Err(RegistryError::NotFound {
                what: what.to_string(),
                url: self.registry.clone(),
                codes,
            });
        }
        Err(RegistryError::Status {
            what: what.to_string(),
            url: self.registry.clone(),
            status,
            codes,
            retry_after,
        })
    }

    /// The `Location` of `resp`, resolved against `base`, checked against the policy.
    fn location(
        &self,
        base: &Target,
        resp: &http::Response<ureq::Body>,
        what: &str,
    ) -> Result<Target, RegistryError> {
        let loc = header(resp, "location").ok_or_else(|| RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "{} answered {} without a Location header",
                redact_url(&base.url()),
                resp.status().as_u16()
            ),
        })?;
        let next = if loc.starts_with('/') {
            Target {
                path_and_query: loc.clone(),
                ..base.clone()
            }
        } else {
            Target::parse(&loc).ok_or_else(|| RegistryError::Protocol {
                what: what.to_string(),
                detail: format!("unusable Location {:?}", redact_url(&loc)),
            })?
        };
        if base.https && !next.https {
            return Err(RegistryError::Policy(format!(
                "{what}: refusing to follow {} from https to plain http",
                redact_url(&next.url())
            )));
        }
        let next_loopback = reference::is_loopback_host(next.host());
        if !next.https && !next_loopback && !self.opts.insecure {
            return Err(RegistryError::Policy(format!(
                "{what}: refusing plain HTTP to non-loopback host {}",
                next.authority
            )));
        }
        if next.host() != reference::host_of(&self.registry)
            && reference::is_internal_ip_literal(next.host())
        {
            return Err(RegistryError::Policy(format!(
                "{what}: the registry sent us to {}, an internal address on another host: refused",
                next.authority
            )));
        }
        Ok(next)
    }
}

/// Reads the PEM certificates of a CA file.
fn load_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, RegistryError> {
    let pem = std::fs::read(path).map_err(|e| {
        RegistryError::Policy(format!("cannot read the CA file {}: {e}", path.display()))
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(RegistryError::Policy(format!(
            "the CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn basic_header(user: &str, password: &Secret) -> String {
    let raw = format!("{user}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn header(resp: &http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn check_digest_header(
    resp: &http::Response<ureq::Body>,
    digest: &Digest,
    what: &str,
) -> Result<(), RegistryError> {
    match header(resp, "docker-content-digest") {
        Some(got) if got != digest.as_str() => Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: digest.to_string(),
            got: got.chars().take(100).collect(),
        }),
        _ => Ok(()),
    }
}

fn is_transient_io(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset
            | ConnectionRefused
            | ConnectionAborted
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | WouldBlock
            | NotConnected
            | Interrupted
    )
}

fn into_ureq(e: io::Error) -> ureq::Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<ureq::Error>() {
            Ok(u) => *u,
            Err(other) => ureq::Error::Io(io::Error::other(other)),
        },
        None => ureq::Error::ConnectionFailed,
    }
}

/// `base * 2^(attempt-1)`, ±20% jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(16));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = (h.finish() % 401) as f64 / 1000.0 - 0.2; // -0.2 ..= +0.2
    exp.mul_f64(1.0 + jitter)
}

/// ` (CODE: message; CODE2: …)` from a distribution error body, or a short excerpt.
fn describe_errors(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: serde_json::Value,
    }
    if let Ok(parsed) = serde_json::from_str::<Errors>(body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| {
                let mut s = format!("{}: {}", e.code, e.message);
                if let Some(d) = e.detail.as_str() {
                    s.push_str(&format!(" ({})", d.chars().take(120).collect::<String>()));
                }
                if e.code == "MANIFEST_BLOB_UNKNOWN" {
                    s.push_str(" - push every referenced blob and child manifest before the manifest or index that lists it");
                }
                s
            })
            .collect();
        if !parts.is_empty() {
            return format!(" ({})", parts.join("; "));
        }
    }
    let excerpt: String = body.trim().chars().take(200).collect();
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(" ({excerpt:?})")
    }
}

/// A URL fit for an error message: no userinfo, and only `digest`, `mount`, `from`, `scope`,
/// `service` kept in the query (others become `name=<redacted>`).
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (url, None),
    };
    let without_userinfo = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{scheme}://{auth}{path}")
        }
        None => before_query.to_string(),
    };
    let Some(query) = query else {
        return without_userinfo;
    };
    let kept: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let key = kv.split('=').next().unwrap_or("");
            if matches!(key, "digest" | "mount" | "from" | "scope" | "service") {
                kv.to_string()
            } else {
                format!("{key}=<redacted>")
            }
        })
        .collect();
    format!("{without_userinfo}?{}", kept.join("&"))
}

#[cfg(test)]
mod tests {
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
        let e = RegistryClient::new(&r, None, opts.clone()).err().unwrap();
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
        let e = RegistryClient::new(&r, Some(creds), insecure)
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
