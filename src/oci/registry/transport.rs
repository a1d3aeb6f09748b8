//! One HTTP exchange with the registry, no auth logic: which agent (the private CA only for the
//! registry's host, no proxy for loopback), the request deadline, socket reads that give up
//! when the run is cancelled, the `Location` policy for redirects and uploads, and turning a
//! failed exchange or an unexpected status into a [`RegistryError`].

use super::client::{ClientOptions, Counters, RegistryClient};
use super::credentials::Credentials;
use super::error::describe_errors;
use super::error::{RegistryError, redact_url};
use super::reference::{self, Reference};
use crate::exec::Cancel;
use crate::oci::digest::Digest;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;
use ureq::http;

/// A URL split into the parts the policy looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) https: bool,
    pub(super) authority: String,
    pub(super) path_and_query: String,
}

impl Target {
    pub(super) fn parse(s: &str) -> Option<Target> {
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

    pub(super) fn host(&self) -> &str {
        reference::host_of(&self.authority)
    }

    pub(super) fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path_and_query)
    }

    /// Appends `k=v` to the query.
    pub(super) fn with_query(&self, kv: &str) -> Target {
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
pub(super) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// One request, as data.
pub(super) struct Req<'a> {
    pub(super) method: &'static str,
    pub(super) target: Target,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) payload: Payload<'a>,
    pub(super) scopes: &'a [String],
    pub(super) what: &'a str,
}

impl RegistryClient {
    pub(super) fn target(&self, path_and_query: &str) -> Target {
        Target {
            https: self.https,
            authority: self.registry.clone(),
            path_and_query: path_and_query.to_string(),
        }
    }

    pub(super) fn is_registry_host(&self, t: &Target) -> bool {
        t.authority == self.registry && t.https == self.https
    }

    /// One HTTP exchange, no auth logic. `use_ca`: trust the configured CA (registry host only).
    pub(super) fn raw_with(
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
                let mut file = crate::oci::fsafe::open_file(path, u64::MAX)
                    .map_err(|e| io_err(path, io::Error::other(e.why.to_string())))?
                    .file;
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

    pub(super) fn build_error(&self, what: &str, target: &Target, e: http::Error) -> RegistryError {
        RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "cannot build a request for {}: {e}",
                redact_url(&target.url())
            ),
        }
    }

    pub(super) fn net_error(&self, what: &str, target: &Target, e: ureq::Error) -> RegistryError {
        if let Err(cancelled) = self.check_cancel(what) {
            return cancelled;
        }
        let url = redact_url(&target.url());
        let (detail, retryable) = match &e {
            ureq::Error::Io(io) => (io.to_string(), is_transient_io(io.kind())),
            // The request deadline: a registry that trickles its answer will trickle it again.
            ureq::Error::Timeout(ureq::Timeout::Global) => (
                format!(
                    "no complete answer within {}s (the request deadline; a stalled or trickling registry)",
                    self.opts.request_deadline.as_secs_f64()
                ),
                false,
            ),
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
    pub(super) fn expect(
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
    pub(super) fn location(
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
pub(super) fn load_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, RegistryError> {
    // A regular file only (never a FIFO or device), at most 1 MiB.
    let pem = crate::oci::fsafe::read_following(path, 1 << 20).map_err(|e| {
        RegistryError::Policy(format!(
            "cannot read the CA file {}: {}",
            path.display(),
            e.why
        ))
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

pub(super) fn header(resp: &http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(super) fn check_digest_header(
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

pub(super) fn is_transient_io(kind: io::ErrorKind) -> bool {
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

pub(super) fn into_ureq(e: io::Error) -> ureq::Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<ureq::Error>() {
            Ok(u) => *u,
            Err(other) => ureq::Error::Io(io::Error::other(other)),
        },
        None => ureq::Error::ConnectionFailed,
    }
}

/// How long a blocked socket read waits before it looks at the cancel token again.
pub(super) const CANCEL_LOOK: Duration = Duration::from_millis(200);

/// The four agents of a client, indexed by `[use_ca][direct]`: the CA roots only for the
/// registry's host, no proxy for loopback. Every request has `opts.request_deadline` as its
/// overall limit, and its connection comes through [`CancelConnector`].
pub(super) fn agents(
    opts: &ClientOptions,
    ca: Option<&[ureq::tls::Certificate<'static>]>,
    cancel: &Cancel,
) -> [[ureq::Agent; 2]; 2] {
    let agent = |use_ca: bool, direct: bool| {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let (true, Some(certs)) = (use_ca, ca) {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs.to_vec())));
        }
        let proxy = if direct {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("shipit/{}", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(opts.request_deadline))
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.io_timeout))
            .timeout_per_write(Some(opts.io_timeout))
            .proxy(proxy)
            .tls_config(tls.build())
            .build();
        ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new()
                .chain(CancelConnector(cancel.clone())),
            ureq::unversioned::resolver::DefaultResolver::default(),
        )
    };
    [
        [agent(false, false), agent(false, true)],
        [agent(true, false), agent(true, true)],
    ]
}

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport, time,
};

/// Wraps every connection (TLS or not) of an agent in a [`CancelTransport`].
#[derive(Debug)]
pub(super) struct CancelConnector(Cancel);

impl Connector<Box<dyn Transport>> for CancelConnector {
    type Out = CancelTransport;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<CancelTransport>, ureq::Error> {
        Ok(chained.map(|inner| CancelTransport {
            inner,
            cancel: self.0.clone(),
        }))
    }
}

/// A connection whose reads wait in slices of [`CANCEL_LOOK`], looking at the cancel token
/// between them, so that a registry that stops answering holds a cancelled run for at most
/// that long instead of the whole per-read timeout. The per-read timeout and the request
/// deadline still apply to the wait as a whole. (Writes are not sliced: a write blocks only
/// while the peer's receive window is full, and the per-read timeout bounds the wait for the
/// answer that follows.)
#[derive(Debug)]
pub(super) struct CancelTransport {
    inner: Box<dyn Transport>,
    cancel: Cancel,
}

impl CancelTransport {
    fn cancelled(sig: i32) -> ureq::Error {
        ureq::Error::Io(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("cancelled by {}", crate::exec::signal_name(sig)),
        ))
    }
}

impl Transport for CancelTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if let Err(c) = self.cancel.check() {
            return Err(Self::cancelled(c.0));
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        // The whole wait: the remaining budget capped by the per-read timeout.
        let whole = timeout.for_read();
        let limit = *whole.after;
        let started = std::time::Instant::now();
        loop {
            if let Err(c) = self.cancel.check() {
                return Err(Self::cancelled(c.0));
            }
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(whole.reason));
            }
            let slice = NextTimeout {
                after: time::Duration::Exact(left.min(CANCEL_LOOK)),
                reason: whole.reason,
                per_read: None,
                per_write: timeout.per_write,
            };
            match self.inner.await_input(slice) {
                Err(ureq::Error::Timeout(_)) => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
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
        let agents = agents(&opts, ca.as_deref(), cancel);
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
}
