//! `shipit verify IMAGE --key PUB.pem`, and the list of attachments `shipit verify IMAGE`
//! reports: finds the referrers of the image's index and of each platform manifest (the
//! registry's referrers API, else the `sha256-<hex>` fallback tag; in an OCI layout, the
//! untagged `index.json` entries whose manifest's `subject` is that digest), opens every
//! attached statement with `attest::bundle::open`, and with a key requires each platform
//! manifest to carry a signed SBOM, provenance and verification attestation, and each index a
//! signed statement, every one about exactly that digest. A bad or missing signature is exit 1
//! naming the digest.

use crate::attest::bundle::{self, BUNDLE_MEDIA_TYPE, STATEMENT_MEDIA_TYPE};
use crate::attest::key::PublicKey;
use crate::attest::{provenance, referrer, verification};
use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::image::{self, Descriptor};
use crate::oci::index::{self, Index};
use crate::oci::layout::{self, Layout};
use crate::oci::registry::{ErrorKind, Reference, RegistryClient};
use crate::session::RunOptions;
use crate::ui::Ui;
use serde::Serialize;
use std::path::Path;

const MAX_JSON: u64 = 4 << 20;
/// The largest attachment read (an SBOM of a big base can be a few MiB).
const MAX_ATTACHMENT: u64 = 64 << 20;

/// What is attached to one image, and (with a key) whether it verified.
#[derive(Debug, Clone, Serialize)]
pub struct AttestReport {
    pub image: String,
    /// True when a key was given and every check passed; false without a key.
    pub verified: bool,
    pub subjects: Vec<SubjectReport>,
    /// What is wrong (with a key): each names a digest.
    pub problems: Vec<String>,
}

/// One index or platform manifest and its referrers.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    pub digest: String,
    /// `index` or `manifest`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub attachments: Vec<AttachmentReport>,
}

/// One referrer.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentReport {
    pub manifest_digest: String,
    pub artifact_type: String,
    /// The in-toto predicate type, when the attachment is a statement that could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    pub signed: bool,
    /// With a key: whether the signature verified against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the image and its referrers are read from.
enum Source {
    Layout(Layout),
    Registry(Box<RegistryClient>, tempfile::TempDir),
}

impl Source {
    fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        match self {
            Source::Layout(l) => l
                .read_blob(desc, MAX_JSON)
                .map_err(|e| Error::stage(format!("{e}"))),
            Source::Registry(c, _) => c
                .get_manifest(desc.digest.as_str())
                .map(|(b, _, _)| b)
                .map_err(Error::from),
        }
    }

    fn blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_ATTACHMENT {
            return Err(Error::stage(format!(
                "attachment {} is {} bytes, more than shipit reads",
                desc.digest, desc.size
            )));
        }
        match self {
            Source::Layout(l) => l
                .read_blob(desc, MAX_ATTACHMENT)
                .map_err(|e| Error::stage(format!("{e}"))),
            Source::Registry(c, tmp) => {
                let path = tmp.path().join(desc.digest.hex());
                c.get_blob(&desc.digest, &path, desc.size)
                    .map_err(Error::from)?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| Error::stage(format!("{}: {e}", path.display())))?;
                Ok(bytes)
            }
        }
    }

    /// The referrers of `subject`.
    fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        match self {
            Source::Layout(l) => {
                let mut out = Vec::new();
                for d in l.entries().map_err(|e| Error::stage(format!("{e}")))? {
                    if referrer::artifact_type(&d.extra).is_none()
                        || d.annotation(layout::REF_NAME).is_some()
                    {
                        continue;
                    }
                    let bytes = self.manifest(&d)?;
                    let m = parse_artifact(&bytes)
                        .map_err(|e| Error::stage(format!("{}: {e}", d.digest)))?;
                    if subject_of(&m) == Some(subject.as_str()) {
                        out.push(d);
                    }
                }
                Ok(out)
            }
            Source::Registry(c, _) => {
                let listed = match c.get_referrers(subject).map_err(Error::from)? {
                    Some(bytes) => Some(bytes),
                    None => match c.get_manifest(&referrer::fallback_tag(subject)) {
                        Ok((bytes, _, _)) => Some(bytes),
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(Error::from(e)),
                    },
                };
                match listed {
                    None => Ok(Vec::new()),
                    Some(bytes) => Ok(index::parse(&bytes)
                        .map_err(|e| {
                            Error::stage(format!("the referrers of {subject}: not an index: {e}"))
                        })?
                        .manifests),
                }
            }
        }
    }
}

/// An artifact manifest (its config is the empty `{}`, which `image::parse_manifest` refuses).
fn parse_artifact(bytes: &[u8]) -> std::result::Result<image::Manifest, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn subject_of(m: &image::Manifest) -> Option<&str> {
    m.extra
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(|d| d.as_str())
}

/// Opens `spec` (`oci:DIR[:TAG]` or a registry reference): the source and the top descriptor.
fn open(spec: &str, insecure: bool, opts: &RunOptions) -> Result<(Source, Descriptor)> {
    if spec.starts_with("oci:") {
        let r = layout::parse_oci_ref(spec).map_err(|e| Error::config(format!("{e}")))?;
        let l = Layout::open(&r.path).map_err(|e| Error::config(format!("{spec}: {e}")))?;
        let desc = match &r.tag {
            Some(tag) => l
                .resolve(tag)
                .map_err(|e| Error::config(format!("{spec}: {e}")))?,
            None => {
                // The layout's only image (its referrers are listed beside it).
                let entries = l
                    .entries()
                    .map_err(|e| Error::config(format!("{spec}: {e}")))?;
                let images: Vec<Descriptor> = entries
                    .into_iter()
                    .filter(|d| referrer::artifact_type(&d.extra).is_none())
                    .collect();
                match <[Descriptor; 1]>::try_from(images) {
                    Ok([one]) => one,
                    Err(_) => {
                        return Err(Error::config(format!(
                            "{spec}: the layout holds several images: name one as oci:PATH:TAG"
                        )));
                    }
                }
            }
        };
        return Ok((Source::Layout(l), desc));
    }
    let reference = Reference::parse(spec).map_err(|e| Error::config(format!("{spec}: {e}")))?;
    let client = super::pull::client(&reference, insecure, &opts.cancel, opts.json)?;
    let (bytes, media_type, digest) = client
        .get_manifest(&reference.tag_or_digest())
        .map_err(Error::from)?;
    let desc = Descriptor::new(&media_type, digest, bytes.len() as u64);
    let tmp = tempfile::tempdir().map_err(|e| Error::stage(format!("temp dir: {e}")))?;
    Ok((Source::Registry(Box::new(client), tmp), desc))
}

/// Every attachment of `spec`'s index and platform manifests; with `key`, every signature and
/// the required statements checked.
pub fn check(
    spec: &str,
    key: Option<&PublicKey>,
    insecure: bool,
    opts: &RunOptions,
) -> Result<AttestReport> {
    let (source, top) = open(spec, insecure, opts)?;
    let mut subjects: Vec<(Descriptor, &'static str, Option<String>)> = Vec::new();
    if index::is_index_media_type(&top.media_type) {
        let bytes = source.manifest(&top)?;
        let idx: Index = index::parse(&bytes).map_err(|e| Error::stage(format!("{spec}: {e}")))?;
        subjects.push((top.clone(), "index", None));
        for m in idx.manifests {
            if m.platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
            {
                continue;
            }
            let platform = m.platform.as_ref().map(|p| p.to_string());
            subjects.push((m, "manifest", platform));
        }
    } else {
        subjects.push((top.clone(), "manifest", None));
    }
    let mut report = AttestReport {
        image: spec.to_string(),
        verified: false,
        subjects: Vec::new(),
        problems: Vec::new(),
    };
    for (desc, kind, platform) in subjects {
        opts.cancel.check()?;
        let mut attachments = Vec::new();
        for r in source.referrers(&desc.digest)? {
            attachments.push(open_one(&source, &desc.digest, &r, key));
        }
        if let Some(key) = key {
            require(
                &mut report.problems,
                &desc,
                kind,
                platform.as_deref(),
                &attachments,
                key,
            );
        }
        report.subjects.push(SubjectReport {
            digest: desc.digest.to_string(),
            kind: kind.to_string(),
            platform,
            attachments,
        });
    }
    report.verified = key.is_some() && report.problems.is_empty();
    Ok(report)
}

/// Reads one referrer and opens its statement (checking the signature with `key`), and that the
/// statement is about `subject`.
fn open_one(
    source: &Source,
    subject: &Digest,
    r: &Descriptor,
    key: Option<&PublicKey>,
) -> AttachmentReport {
    let artifact_type = referrer::artifact_type(&r.extra).unwrap_or("").to_string();
    let mut out = AttachmentReport {
        manifest_digest: r.digest.to_string(),
        artifact_type: artifact_type.clone(),
        predicate_type: r
            .annotation(referrer::PREDICATE_ANNOTATION)
            .map(str::to_string),
        signed: artifact_type == BUNDLE_MEDIA_TYPE,
        signature_ok: None,
        error: None,
    };
    if artifact_type != BUNDLE_MEDIA_TYPE && artifact_type != STATEMENT_MEDIA_TYPE {
        // Somebody else's attachment (a cosign signature, a raw SBOM): listed, not judged.
        return out;
    }
    let result = (|| -> std::result::Result<bundle::Opened, String> {
        let bytes = source.manifest(r).map_err(|e| e.message())?;
        let m = parse_artifact(&bytes).map_err(|e| e.to_string())?;
        if subject_of(&m) != Some(subject.as_str()) {
            return Err(format!("its subject is not {subject}"));
        }
        let [layer] = m.layers.as_slice() else {
            return Err(format!("{} layers, expected one", m.layers.len()));
        };
        let body = source.blob(layer).map_err(|e| e.message())?;
        let opened = bundle::open(&layer.media_type, &body, key).map_err(|e| e.to_string())?;
        let statement: serde_json::Value =
            serde_json::from_slice(&opened.statement).map_err(|e| e.to_string())?;
        let about = statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["digest"]["sha256"] == subject.hex());
        if !about {
            return Err(format!("the statement's subject is not {subject}"));
        }
        Ok(opened)
    })();
    match result {
        Ok(opened) => {
            out.predicate_type = Some(opened.predicate_type);
            out.signature_ok = key.map(|_| opened.verified);
        }
        Err(e) => {
            out.signature_ok = key.map(|_| false);
            out.error = Some(e);
        }
    }
    out
}

/// With a key: every statement attached to `desc` verified, and the required ones present.
fn require(
    problems: &mut Vec<String>,
    desc: &Descriptor,
    kind: &str,
    platform: Option<&str>,
    attachments: &[AttachmentReport],
    key: &PublicKey,
) {
    let what = match platform {
        Some(p) => format!("{kind} {} ({p})", desc.digest),
        None => format!("{kind} {}", desc.digest),
    };
    for a in attachments {
        if a.artifact_type != BUNDLE_MEDIA_TYPE && a.artifact_type != STATEMENT_MEDIA_TYPE {
            continue;
        }
        if a.signature_ok != Some(true) {
            problems.push(format!(
                "{what}: attachment {} ({}) does not verify with key {}: {}",
                a.manifest_digest,
                a.predicate_type.as_deref().unwrap_or("?"),
                key.hint(),
                a.error.as_deref().unwrap_or("bad signature")
            ));
        }
    }
    let has = |predicates: &[&str]| {
        attachments.iter().any(|a| {
            a.signature_ok == Some(true)
                && a.predicate_type
                    .as_deref()
                    .is_some_and(|p| predicates.contains(&p))
        })
    };
    let required: &[(&str, &[&str])] = if kind == "index" {
        &[("signed statement", &[provenance::PREDICATE_TYPE])]
    } else {
        &[
            (
                "SBOM",
                &[
                    super::attach::CYCLONEDX_PREDICATE,
                    super::attach::SPDX_PREDICATE,
                ],
            ),
            ("provenance", &[provenance::PREDICATE_TYPE]),
            ("verification attestation", &[verification::PREDICATE_TYPE]),
        ]
    };
    for (name, predicates) in required {
        if !has(predicates) {
            problems.push(format!("{what}: no {name} signed by key {}", key.hint()));
        }
    }
}

/// Runs `verify IMAGE --key` (or the listing without a key), prints the report, and turns a
/// problem into exit 1.
pub fn run(
    spec: &str,
    key_path: Option<&Path>,
    insecure: bool,
    opts: &RunOptions,
    ui: &Ui,
) -> Result<()> {
    let json = opts.json;
    let key = key_path.map(PublicKey::load).transpose()?;
    let report = check(spec, key.as_ref(), insecure, opts)?;
    print(&report, json);
    if key.is_none() {
        return Ok(());
    }
    if report.problems.is_empty() {
        ui.ok(format!("{spec}: every attestation verified"));
        return Ok(());
    }
    Err(Error::stage(format!(
        "{spec}: {} attestation problem(s): {}",
        report.problems.len(),
        report.problems.join("; ")
    )))
}

/// The report on stdout: JSON, or a line per attachment.
pub fn print(report: &AttestReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    println!("attachments of {}", report.image);
    for s in &report.subjects {
        println!(
            "{} {}{}: {} attached",
            s.kind,
            s.digest,
            s.platform
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            s.attachments.len()
        );
        for a in &s.attachments {
            let state = match (a.signature_ok, a.signed) {
                (Some(true), _) => "signature ok",
                (Some(false), _) => "BAD",
                (None, true) => "signed",
                (None, false) => "unsigned",
            };
            println!(
                "  {} {} {} ({state})",
                a.manifest_digest,
                a.predicate_type.as_deref().unwrap_or("-"),
                a.artifact_type
            );
        }
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
}
