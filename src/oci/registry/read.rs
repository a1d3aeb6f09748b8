//! Reading from the registry: whether a blob exists, a manifest's HEAD and GET (size-limited,
//! digest-checked), the referrers API, and a blob streamed to a file while its digest is
//! checked.

use super::auth;
use super::client::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, RegistryClient};
use super::error::{RegistryError, redact_url};
use super::reference;
use super::transport::{Payload, Req, header, into_ureq, is_transient_io};
use crate::oci::digest::{Digest, HashingWriter};
use std::io::{self, Read};
use std::path::Path;

impl RegistryClient {
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

    pub(super) fn head_blob(
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

    /// GET `/v2/<name>/referrers/<digest>` (the OCI 1.1 referrers API): the referrers index,
    /// or `None` when the registry does not serve the API (404; docker-registry 2.8, GHCR),
    /// and then the `sha256-<hex>` fallback tag is where referrers are listed.
    pub fn get_referrers(&self, subject: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        let what = format!("list referrers of {}", subject.short());
        let scopes = auth::pull_scopes(&self.repository);
        self.retry(&what, |_| {
            let resp = self.send(Req {
                method: "GET",
                target: self.target(&format!("/v2/{}/referrers/{subject}", self.repository)),
                headers: vec![("Accept", "application/vnd.oci.image.index.v1+json".into())],
                payload: Payload::Empty,
                scopes: &scopes,
                what: &what,
            })?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let resp = self.expect(resp, &[200], &what)?;
            let media_type = header(&resp, "content-type").unwrap_or_default();
            let bytes = resp
                .into_body()
                .with_config()
                .limit(MAX_MANIFEST_SIZE)
                .read_to_vec()
                .map_err(|e| self.net_error(&what, &self.target("/v2/"), e))?;
            // A registry without the API may answer 200 with something else (an HTML page).
            if !media_type.starts_with("application/vnd.oci.image.index.v1+json") {
                return Ok(None);
            }
            Ok(Some(bytes))
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

    pub(super) fn check_manifest_ref(&self, r: &str) -> Result<(), RegistryError> {
        if r.starts_with("sha256:") {
            Digest::parse(r)
                .map(drop)
                .map_err(|e| RegistryError::Policy(e.to_string()))
        } else {
            reference::validate_tag(r).map_err(RegistryError::Policy)
        }
    }
}
