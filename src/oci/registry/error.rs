//! What can go wrong talking to a registry: the error classes that decide exit codes and
//! retries, the registry's own error codes from a response body, and URLs redacted for messages.

use super::credentials::CredentialError;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

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
    #[error("{what}: cancelled by {}", crate::exec::signal_name(*signal))]
    Cancelled { what: String, signal: i32 },
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
            RegistryError::Credentials(CredentialError::Cancelled(_)) => ErrorKind::Cancelled,
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

    /// The signal that cancelled the call, if it was cancelled.
    pub fn cancelled_by(&self) -> Option<i32> {
        match self {
            RegistryError::Cancelled { signal, .. }
            | RegistryError::Credentials(CredentialError::Cancelled(signal)) => Some(*signal),
            RegistryError::GaveUp { last, .. } => last.cancelled_by(),
            _ => None,
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

    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// ` (CODE: message; CODE2: …)` from a distribution error body, or a short excerpt.
pub(super) fn describe_errors(body: &str) -> String {
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
