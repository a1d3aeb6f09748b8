//! Image references (`HOST[:PORT]/REPO[:TAG|@DIGEST]`) parsed and checked against the OCI
//! distribution grammar before any of their parts reach a URL, plus the loopback test that the
//! transport policy (plain http, proxies, credentials) is built on.

use crate::oci::digest::Digest;
use regex::Regex;
use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

/// Docker Hub's API host: `docker.io/x` and `index.docker.io/x` mean this registry.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

static REPO_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$",
    )
    .expect("static regex")
});
static TAG_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("static regex"));
static HOST_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
        .expect("static regex")
});

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {shown:?}: {why}")]
pub struct ReferenceError {
    shown: String,
    why: String,
}

fn refuse(s: &str, why: impl Into<String>) -> ReferenceError {
    ReferenceError {
        shown: s.chars().take(200).collect(),
        why: why.into(),
    }
}

/// A parsed, validated image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]` as used in URLs (`docker.io` normalised to [`DOCKER_HUB`]).
    pub registry: String,
    /// Repository path, lowercase (`library/` added for official Docker Hub images).
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The digest, if one was given (`@sha256:…`).
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses `HOST[:PORT]/REPO[:TAG][@DIGEST]`. A first component without `.` or `:` that is
    /// not `localhost` is a Docker Hub repository, as with `docker pull`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(refuse(s, "empty"));
        }
        if s.split('/').next().is_some_and(|first| first.contains('@')) {
            // Possibly `user:password@host`: never echo it.
            return Err(refuse(
                "<redacted>",
                "credentials do not belong in a reference; use SHIPIT_REGISTRY_USER/SHIPIT_REGISTRY_PASSWORD or docker login",
            ));
        }
        if s.contains("://") {
            let shown = if s.contains('@') { "<redacted>" } else { s };
            return Err(refuse(shown, "give HOST[:PORT]/REPO without a scheme"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|e| refuse(s, e.to_string()))?),
            ),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path)
            }
            _ => (DOCKER_HUB.to_string(), rest),
        };
        if !HOST_RE.is_match(&registry) {
            return Err(refuse(
                s,
                format!("registry host {registry:?} is not a valid host[:port]"),
            ));
        }
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match path[last_slash..].rfind(':') {
            Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
            None => (path, None),
        };
        let registry = match registry.as_str() {
            "docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        validate_repository(&repository).map_err(|why| refuse(s, why))?;
        if let Some(t) = tag {
            validate_tag(t).map_err(|why| refuse(s, why))?;
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The host without the port (brackets removed from IPv6 literals).
    pub fn host(&self) -> &str {
        host_of(&self.registry)
    }

    /// True when the registry is on this machine (127.0.0.0/8, ::1, localhost).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.host())
    }

    /// The digest if given, else the tag, else `latest`: what a manifest URL ends with.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

/// Checks a repository path against the distribution grammar (lowercase components).
pub fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.len() > 255 {
        return Err("repository longer than 255 characters".into());
    }
    if !REPO_RE.is_match(repo) {
        return Err(format!(
            "repository {repo:?} must be lowercase components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'"
        ));
    }
    Ok(())
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if TAG_RE.is_match(tag) {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
        ))
    }
}

/// `host[:port]` → host, without IPv6 brackets.
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// True for `localhost`, `*.localhost`, 127.0.0.0/8 and ::1 (the host part only, no port).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// True when `host` is an IP literal that must never receive a blob upload moved off the
/// registry's own host: loopback, private, link-local, unspecified (SSRF guard).
pub fn is_internal_ip_literal(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        Ok(IpAddr::V6(v6)) => {
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| {
                    v4.is_loopback() || v4.is_private() || v4.is_link_local()
                })
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_tags_digests() {
        let r = Reference::parse("127.0.0.1:5000/shipit/hello:v1.2.3").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "shipit/hello");
        assert_eq!(r.tag.as_deref(), Some("v1.2.3"));
        assert!(r.is_loopback());
        assert_eq!(r.host(), "127.0.0.1");

        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("ghcr.io/org/app@{d}")).unwrap();
        assert_eq!(r.digest.as_ref(), Some(&d));
        assert_eq!(r.tag, None);
        assert!(!r.is_loopback());
        assert_eq!(r.tag_or_digest(), d.to_string());

        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag_or_digest(), "latest");

        let r = Reference::parse("[::1]:5000/a/b:t").unwrap();
        assert_eq!(r.host(), "::1");
        assert!(r.is_loopback());
    }

    #[test]
    fn normalises_docker_hub() {
        for s in [
            "alpine",
            "docker.io/alpine",
            "index.docker.io/library/alpine",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.registry, DOCKER_HUB, "{s}");
            assert_eq!(r.repository, "library/alpine", "{s}");
        }
        let r = Reference::parse("docker.io/user/app:1").unwrap();
        assert_eq!(r.repository, "user/app");
    }

    #[test]
    fn refuses_bad_references() {
        let long_tag = "t".repeat(129);
        for bad in [
            "",
            "ghcr.io/Org/App",
            "ghcr.io/org/app:v1:2",
            &format!("ghcr.io/org/app:{long_tag}"),
            "ghcr.io/org/app:.x",
            "ghcr.io/org/app@sha256:xyz",
            "ghcr.io/org/app@sha256:../../x",
            "https://ghcr.io/org/app",
            "user:pw@ghcr.io/org/app",
            "ghcr.io/org//app",
            "ghcr.io/org/app/",
            "ghcr.io/-org/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loopback_and_internal_hosts() {
        for h in [
            "127.0.0.1",
            "127.5.6.7",
            "::1",
            "[::1]",
            "localhost",
            "a.localhost",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "registry.invalid", "ghcr.io", "128.0.0.1"] {
            assert!(!is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "127.0.0.2",
            "0.0.0.0",
            "fd00::1",
        ] {
            assert!(is_internal_ip_literal(h), "{h}");
        }
        for h in ["8.8.8.8", "example.com", "2001:db8::1"] {
            assert!(!is_internal_ip_literal(h), "{h}");
        }
        assert_eq!(host_of("a.b:5000"), "a.b");
        assert_eq!(host_of("[::1]:5000"), "::1");
    }
}
