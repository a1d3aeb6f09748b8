//! Where the Debian archive is, and how shipit downloads from it. The mirror is
//! `SHIPIT_DEBIAN_MIRROR` when set, else the first apt source of this machine that serves the
//! main archive (deb822 `/etc/apt/sources.list.d/*.sources`, then one-line
//! `/etc/apt/sources.list`; `-security` and `-updates`-only sources are skipped), else
//! `http://deb.debian.org/debian`. Plain http is fine: every byte is checked against the signed
//! `InRelease` before use.
//!
//! Downloads are bounded (a server sending more than the expected size is an error), stop when
//! the cancel flag is set, and stream into a caller's writer so the bytes can be hashed on the way.

use super::error::DebError;
use super::packages::parse_stanzas;
use crate::exec::Cancel;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// The environment variable that overrides the apt source.
pub const MIRROR_ENV: &str = "SHIPIT_DEBIAN_MIRROR";

/// Used when neither the environment nor apt names a mirror.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A Debian archive root (the directory holding `dists/` and `pool/`), without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url: String,
}

impl Mirror {
    /// A mirror from a URL (http or https).
    pub fn new(url: &str) -> Result<Mirror, DebError> {
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(DebError::format(
                format!("Debian mirror {url:?}"),
                "expected an http:// or https:// URL",
            ));
        }
        Ok(Mirror {
            url: url.to_string(),
        })
    }

    /// `SHIPIT_DEBIAN_MIRROR`, else the machine's apt source, else deb.debian.org.
    pub fn from_env_or_apt() -> Result<Mirror, DebError> {
        if let Ok(url) = std::env::var(MIRROR_ENV)
            && !url.trim().is_empty()
        {
            return Mirror::new(&url);
        }
        Ok(Mirror::from_apt(Path::new("/etc/apt"))?
            .unwrap_or_else(|| Mirror::new(DEFAULT_MIRROR).expect("default mirror is valid")))
    }

    /// The first main-archive source under an apt configuration directory, if any.
    pub fn from_apt(etc_apt: &Path) -> Result<Option<Mirror>, DebError> {
        let mut sources: Vec<_> = std::fs::read_dir(etc_apt.join("sources.list.d"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sources"))
                    .collect()
            })
            .unwrap_or_default();
        sources.sort();
        for path in sources {
            let text = std::fs::read_to_string(&path).map_err(DebError::io(&path))?;
            if let Some(url) = main_archive_in_deb822(&text, &path.display().to_string())? {
                return Mirror::new(&url).map(Some);
            }
        }
        let list = etc_apt.join("sources.list");
        if let Ok(text) = std::fs::read_to_string(&list)
            && let Some(url) = main_archive_in_one_line(&text)
        {
            return Mirror::new(&url).map(Some);
        }
        Ok(None)
    }

    /// The URL of a path below the mirror.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}/{}", self.url, path.trim_start_matches('/'))
    }
}

/// A suite that only carries updates on top of the main archive.
fn is_overlay_suite(s: &str) -> bool {
    s.ends_with("-security") || s.ends_with("-updates") || s.ends_with("-backports")
}

fn serves_main_archive(uri: &str, suites: &[&str]) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://"))
        && !uri.trim_end_matches('/').ends_with("-security")
        && suites.iter().any(|s| !is_overlay_suite(s))
}

/// The first `URIs` of a `Types: deb` stanza whose suites include a main-archive suite.
pub fn main_archive_in_deb822(text: &str, what: &str) -> Result<Option<String>, DebError> {
    for s in parse_stanzas(text, what)? {
        let enabled = s.get("Enabled").is_none_or(|v| v != "no");
        let types = s.get("Types").unwrap_or("");
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let suites: Vec<&str> = s.get("Suites").unwrap_or("").split_whitespace().collect();
        for uri in s.get("URIs").unwrap_or("").split_whitespace() {
            if serves_main_archive(uri, &suites) {
                return Ok(Some(uri.to_string()));
            }
        }
    }
    Ok(None)
}

/// The first `deb URI SUITE ...` line whose suite is a main-archive suite.
pub fn main_archive_in_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest[..]
            && serves_main_archive(uri, &[suite])
        {
            return Some(uri.to_string());
        }
    }
    None
}

/// An HTTP client for the archive: timeouts, proxy from the environment, a cancel flag.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    cancel: Cancel,
}

impl Http {
    /// A client that stops (with [`DebError::Cancelled`]) once the run is cancelled.
    pub fn new(cancel: &Cancel) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .user_agent(format!("shipit/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .proxy(ureq::Proxy::try_from_env())
            .build()
            .new_agent();
        Http {
            agent,
            cancel: cancel.clone(),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The run's cancel token (for the child processes the archive client starts).
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    fn cancelled(&self) -> DebError {
        DebError::Cancelled(self.cancel.signal().unwrap_or(libc::SIGINT))
    }

    /// Downloads `url` into `out`, at most `limit` bytes (more is an error), calling `progress`
    /// with each chunk's length. Returns the number of bytes written.
    pub fn get_into(
        &self,
        url: &str,
        limit: u64,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, DebError> {
        if self.is_cancelled() {
            return Err(self.cancelled());
        }
        let resp = self.agent.get(url).call().map_err(|e| net_error(url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(DebError::Http {
                url: url.to_string(),
                status,
            });
        }
        if let Some(len) = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit
        {
            return Err(too_big(url, limit));
        }
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            if self.is_cancelled() {
                return Err(self.cancelled());
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DebError::Unreachable {
                        url: url.to_string(),
                        why: format!("reading the body: {e}"),
                    });
                }
            };
            total += n as u64;
            if total > limit {
                return Err(too_big(url, limit));
            }
            out.write_all(&buf[..n]).map_err(|e| DebError::Io {
                path: url.into(),
                source: e,
            })?;
            progress(n as u64);
        }
        Ok(total)
    }

    /// Downloads a small file (at most `limit` bytes) into memory.
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, DebError> {
        let mut out = Vec::new();
        self.get_into(url, limit, &mut out, &mut |_| {})?;
        Ok(out)
    }
}

fn too_big(url: &str, limit: u64) -> DebError {
    DebError::Integrity {
        what: url.rsplit('/').next().unwrap_or(url).to_string(),
        url: url.to_string(),
        why: format!("the server sent more than the expected {limit} bytes"),
    }
}

fn net_error(url: &str, e: ureq::Error) -> DebError {
    let why = match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found (DNS)".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        other => other.to_string(),
    };
    DebError::Unreachable {
        url: url.to_string(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_sources_give_the_main_archive_not_security() {
        let text = "\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
        assert_eq!(
            main_archive_in_deb822(text, "x.sources")
                .unwrap()
                .as_deref(),
            Some("http://deb.debian.org/debian")
        );
    }

    #[test]
    fn one_line_sources_skip_options_and_overlays() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib
";
        assert_eq!(
            main_archive_in_one_line(text).as_deref(),
            Some("http://mirror.example/debian/")
        );
        assert_eq!(
            Mirror::new("http://mirror.example/debian/").unwrap().url,
            "http://mirror.example/debian"
        );
        assert!(Mirror::new("ftp://x").is_err());
    }

    #[test]
    fn a_cancelled_client_downloads_nothing() {
        let cancel = Cancel::new();
        cancel.cancel(libc::SIGINT);
        let http = Http::new(&cancel);
        let e = http.get_bytes("http://127.0.0.1:9/never", 10).unwrap_err();
        assert!(matches!(e, DebError::Cancelled(_)), "{e}");
        assert_eq!(e.kind(), crate::error::Kind::Interrupted(libc::SIGINT));
    }

    #[test]
    fn this_machines_apt_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://a.example/debian\nSuites: trixie\n",
        )
        .unwrap();
        let m = Mirror::from_apt(dir.path()).unwrap().unwrap();
        assert_eq!(
            m.url_of("/dists/trixie/InRelease"),
            "http://a.example/debian/dists/trixie/InRelease"
        );
    }
}
