//! Writing to the registry: a blob pushed HEAD-first (skipped if present, mounted from another
//! repository if allowed, else uploaded in one PUT or PATCH chunks), and a manifest or index
//! PUT with its digest checked against the registry's answer; an OCI 1.1 referrer (its blobs,
//! then the artifact manifest by digest, noting whether the registry indexes it itself).

use super::auth;
use super::client::{BlobOutcome, RegistryClient};
use super::error::RegistryError;
use super::reference;
use super::transport::{Payload, Req, Target, check_digest_header, header};
use crate::oci::digest::Digest;
use std::path::Path;
use std::sync::atomic::Ordering;

impl RegistryClient {
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
    pub(super) fn try_mount(
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
    pub(super) fn upload(
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
        self.put_manifest(tag_or_digest, media_type, bytes)
            .map(|(digest, _)| digest)
    }

    /// Pushes an OCI 1.1 referrer (an artifact manifest with a `subject`): its blobs (the empty
    /// `{}` config and the layer, each `(digest, size, path)`, HEAD first), then the manifest
    /// by digest. Returns true when the registry answered with an `OCI-Subject` header naming
    /// `subject`: it indexes referrers itself (the referrers API), so no fallback tag is needed.
    pub fn push_referrer(
        &self,
        blobs: &[(&Digest, u64, &Path)],
        manifest_media_type: &str,
        manifest: &[u8],
        subject: &Digest,
    ) -> Result<bool, RegistryError> {
        for (digest, size, path) in blobs {
            self.push_blob(digest, *size, path, None)?;
        }
        let digest = Digest::of(manifest);
        let (_, oci_subject) = self.put_manifest(digest.as_str(), manifest_media_type, manifest)?;
        Ok(oci_subject.as_deref() == Some(subject.as_str()))
    }

    /// PUT of a manifest: its digest (checked) and the `OCI-Subject` header, if any.
    fn put_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Digest, Option<String>), RegistryError> {
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
            check_digest_header(&resp, &digest, &what)?;
            Ok(header(&resp, "oci-subject"))
        })
        .map(|subject| (digest, subject))
    }
}
