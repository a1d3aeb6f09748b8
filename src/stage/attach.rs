//! The attach stage, between publish-by-digest and the tags: for every platform image that
//! passed verification, its SBOMs (CycloneDX 1.6 and SPDX 2.3), its SLSA provenance and its
//! verification attestation; for every index, a provenance statement whose subject is the index
//! and which lists its platform manifests. Each one is an in-toto statement sealed the same way
//! (one scheme for all): a Sigstore bundle signed with `SHIPIT_SIGNING_KEY` when it is set, else
//! the bare statement. Each becomes an OCI 1.1 referrer of exactly the digest verified
//! (`subject`), never an entry of the image index:
//!
//! - in an OCI layout, the artifact manifest and its blobs are written into it and listed in
//!   `index.json` untagged, with `artifactType`;
//! - in a registry, the `{}` config, the layer and the artifact manifest are pushed by digest;
//!   if the registry answers with `OCI-Subject` or serves `/referrers/`, that is all; else the
//!   `sha256-<hex>` fallback tag is updated read-modify-write, re-read, and merged again until
//!   our entry is listed (bounded), so concurrent writers lose nothing.
//!
//! A failure here fails the release before any tag moves. `attest:` turns kinds off.
//!
//! Split releases attach the same set: a `--split` job makes and seals its platforms'
//! statements ([`SplitAttest`]) and carries them in its fragment ([`Carried`]); `--merge` checks
//! them, makes each index's provenance and attaches everything ([`merge`]) after the indexes and
//! before the tags.

use super::package::{Packaged, PackagedImage, PackagedPlatform};
use super::publish::{Pushed, PushedTo, interruptible};
use super::verify;
use crate::attest::bundle::{self, Sealed};
use crate::attest::key::SigningKey;
use crate::attest::provenance::{self, ProvenanceInput, Resource};
use crate::attest::referrer::{self, ReferrerManifest};
use crate::attest::sbom::{self, Sbom};
use crate::attest::verification::{self, CheckRecord, Emulator, VerificationInput};
use crate::attest::{Statement, Subject};
use crate::config::{CheckKind, Config};
use crate::error::{Error, Result};
use crate::oci::digest::{Digest, HashingReader};
use crate::oci::image::Descriptor;
use crate::oci::index::Index;
use crate::oci::layout::Layout;
use crate::oci::registry::{ErrorKind, RegistryClient};
use crate::plan::{Plan, PlatformPlan};
use crate::session::Session;
use crate::ui::Ui;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The in-toto predicate type of a CycloneDX SBOM statement.
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";
/// The in-toto predicate type of an SPDX SBOM statement.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// How often the fallback tag is re-read and merged before giving up.
const FALLBACK_ATTEMPTS: u32 = 8;

/// What the attach stage attached.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Attached {
    pub attachments: Vec<Attachment>,
}

/// One attached statement, for `release.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// The digest of the platform manifest or index it is about (its `subject`).
    pub subject: String,
    /// `manifest` or `index`.
    pub subject_kind: String,
    /// The platform (`linux/arm64`) of a platform manifest's attachment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub variant: String,
    /// The referrer's `artifactType` (the bundle or bare statement media type).
    pub artifact_type: String,
    pub predicate_type: String,
    /// The artifact manifest's digest.
    pub manifest_digest: String,
    pub signed: bool,
    /// Where it is listed.
    pub listed_by: ListedBy,
}

/// Where a referrer is listed, so that OCI tools find it from its subject.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ListedBy {
    /// An untagged entry of the OCI layout's `index.json`.
    Layout,
    /// By the registry itself (`OCI-Subject`, `/referrers/`).
    ReferrersApi,
    /// In the subject's `sha256-<hex>` fallback index.
    FallbackTag,
}

/// What the attach stage would do, for `--dry-run`.
pub fn describe(cfg: &Config, plan: &Plan) -> Vec<String> {
    let a = cfg.attest;
    if !a.any() {
        return vec!["# attach nothing (attest: every statement is off)".to_string()];
    }
    let mut kinds = Vec::new();
    if a.sbom {
        kinds.push("CycloneDX and SPDX SBOMs");
    }
    if a.provenance {
        kinds.push("SLSA provenance");
    }
    if a.verification {
        kinds.push("verification attestation");
    }
    let sealed = if std::env::var_os(crate::attest::key::KEY_ENV).is_some_and(|v| !v.is_empty()) {
        "signed with SHIPIT_SIGNING_KEY"
    } else {
        "unsigned (no SHIPIT_SIGNING_KEY)"
    };
    let mut out = Vec::new();
    for img in &plan.images {
        for p in &img.platforms {
            out.push(format!(
                "# attach to {} ({}) manifest: {}, {sealed}",
                p.platform,
                img.variant,
                kinds.join(", ")
            ));
        }
        if a.provenance {
            out.push(format!(
                "# attach to {} index: SLSA provenance, {sealed}",
                img.variant
            ));
        }
    }
    out
}

/// A sealed statement to attach, and to what.
struct Planned {
    subject: Descriptor,
    subject_kind: &'static str,
    platform: Option<String>,
    variant: String,
    sealed: Sealed,
}

/// Gathers the SBOMs' inputs and the toolchain's versions on a thread of its own, so that
/// `cargo metadata`, `rustc --print cfg` and the version probes overlap verification (yielding
/// the CPU to it, which decides when the run ends); `run` takes the result.
pub fn prefetch(s: &Session, packaged: &Packaged) -> Option<Prefetched> {
    if !s.config.attest.any() {
        return None;
    }
    let (s, packaged) = (s.clone(), packaged.clone());
    Some(Prefetched(std::thread::spawn(move || {
        crate::exec::priority::yield_to_the_run();
        let layout = Layout::open(&packaged.layout).map_err(|e| Error::stage(format!("{e}")))?;
        gather_slow(&s, &packaged, &layout)
    })))
}

/// What [`prefetch`] is gathering.
pub struct Prefetched(std::thread::JoinHandle<Result<(SbomInputs, Toolchain)>>);

/// The SBOM inputs (when `attest.sbom`) and the toolchain (when `attest.provenance`), side by
/// side: the slow part of the inputs (processes, layer reads).
fn gather_slow(
    s: &Session,
    packaged: &Packaged,
    layout: &Layout,
) -> Result<(SbomInputs, Toolchain)> {
    let a = s.config.attest;
    let (sbom, tools) = std::thread::scope(|sc| {
        let tools = sc.spawn(|| {
            if a.provenance {
                Toolchain::probe(&s.plan, &s.opts.cancel)
            } else {
                Toolchain::default()
            }
        });
        let sbom = if a.sbom {
            sbom_inputs(s, packaged, layout)
        } else {
            Ok(SbomInputs {
                graphs: HashMap::new(),
                debs: HashMap::new(),
            })
        };
        (sbom, tools.join())
    });
    let tools = tools.map_err(|_| Error::stage("attach: the toolchain probe panicked"))?;
    Ok((sbom?, tools))
}

/// Makes, seals and attaches every statement `attest:` asks for (with the SBOM inputs of
/// [`prefetch`], when it ran).
pub fn run(
    s: &Session,
    packaged: &Packaged,
    verified: &verify::Report,
    pushed: &Pushed,
    prefetched: Option<Prefetched>,
    ui: &Ui,
) -> Result<Attached> {
    let a = s.config.attest;
    if !a.any() {
        ui.info("attest: every statement is off; nothing attached");
        return Ok(Attached::default());
    }
    let key = SigningKey::from_env()?;
    ui.step(format!(
        "attach to {} ({})",
        pushed.target,
        if key.is_some() { "signed" } else { "unsigned" }
    ));
    let prefetched = prefetched.map(|p| {
        p.0.join()
            .unwrap_or_else(|_| Err(Error::stage("attach: the prefetch thread panicked")))
    });
    let inputs = Inputs::gather(s, packaged, prefetched)?;
    let mut planned = Vec::new();
    for img in &packaged.images {
        for p in &img.platforms {
            for statement in inputs.platform(img, p, verified)? {
                planned.push(Planned {
                    subject: p.manifest.clone(),
                    subject_kind: "manifest",
                    platform: Some(p.platform.clone()),
                    variant: img.variant.to_string(),
                    sealed: bundle::seal(&statement, key.as_ref()),
                });
            }
        }
        if a.provenance {
            let resolved = inputs.resolved(img, img.platforms.iter());
            let statement = inputs.index(img, resolved);
            planned.push(Planned {
                subject: img.index.clone(),
                subject_kind: "index",
                platform: None,
                variant: img.variant.to_string(),
                sealed: bundle::seal(&statement, key.as_ref()),
            });
        }
    }
    attach_planned(s, planned, &pushed.to, &pushed.target, &inputs.layout, ui)
}

/// Attaches each planned referrer to `to`: its blobs written into the target layout and all
/// listed in its `index.json` with one write at the end; or its blobs written into `source`
/// (the layout pushes read from), pushed, and listed by the registry's referrers API or the
/// fallback tag (merged once for all at the end).
fn attach_planned(
    s: &Session,
    planned: Vec<Planned>,
    to: &PushedTo,
    target: &str,
    source: &Layout,
    ui: &Ui,
) -> Result<Attached> {
    let created = s.plan.source_date_epoch.max(0) as u64;
    let mut out = Attached::default();
    // Subject → the entries its fallback tag must list (registries without the referrers API).
    let mut fallback: Vec<(Digest, Vec<Descriptor>)> = Vec::new();
    // Referrers of a layout target, listed in its index.json in one write at the end.
    let mut listed = Vec::new();
    let referrers: Vec<ReferrerManifest> = planned
        .iter()
        .map(|p| referrer::for_sealed(&p.subject, &p.sealed, created))
        .collect();
    // Every referrer's blobs in one durable batch (pushes read them from the source layout),
    // before any is listed or pushed.
    s.opts.cancel.check()?;
    write_blobs(
        match to {
            PushedTo::Layout(to) => to,
            PushedTo::Registry(_) => source,
        },
        &referrers,
    )?;
    // Each referrer is pushed on its own (up to `--jobs`, else 4, at once: they are separate
    // manifests); the fallback tags, which several referrers of one subject share, are merged
    // once for all after.
    s.opts.cancel.check()?;
    let listed_by: Vec<ListedBy> = match to {
        PushedTo::Layout(_) => vec![ListedBy::Layout; referrers.len()],
        PushedTo::Registry(client) => {
            let pairs: Vec<(&Planned, &ReferrerManifest)> =
                planned.iter().zip(referrers.iter()).collect();
            let jobs = super::publish::upload_jobs(s.opts.jobs);
            // Their blobs first, each digest once (referrers share configs): pushed side by
            // side, two referrers would both find a shared blob missing and both upload it.
            let blobs: Vec<Descriptor> = referrers
                .iter()
                .flat_map(|r| [r.config.0.clone(), r.layer.0.clone()])
                .collect();
            super::publish::push_blobs(client, source, &blobs, jobs, ui)?;
            super::publish::bounded(&pairs, jobs, client.cancel(), |(p, r)| {
                push(client, source, &p.subject.digest, r)
            })?
        }
    };
    for ((p, r), listed_by) in planned.into_iter().zip(referrers).zip(listed_by) {
        match listed_by {
            ListedBy::Layout => listed.push(r.descriptor.clone()),
            ListedBy::FallbackTag => {
                match fallback.iter_mut().find(|(d, _)| *d == p.subject.digest) {
                    Some((_, entries)) => entries.push(r.descriptor.clone()),
                    None => fallback.push((p.subject.digest.clone(), vec![r.descriptor.clone()])),
                }
            }
            ListedBy::ReferrersApi => {}
        }
        ui.verbose(format!(
            "  {} {} → {} ({listed_by:?})",
            p.platform.as_deref().unwrap_or(&p.variant),
            p.sealed.predicate_type,
            r.descriptor.digest.short()
        ));
        out.attachments.push(record(&p, &p.sealed, &r, listed_by));
    }
    if let PushedTo::Layout(to) = to {
        to.add_referrers(&listed)
            .map_err(|e| Error::stage(format!("attach to {target}: {e}")))?;
    }
    if let PushedTo::Registry(client) = to {
        merge_fallback(client, &fallback)?;
    }
    let signed = out.attachments.iter().filter(|a| a.signed).count();
    ui.ok(format!(
        "attached {} statements ({signed} signed) as OCI referrers",
        out.attachments.len()
    ));
    Ok(out)
}

/// A sealed per-platform statement carried from a `--split` job to `--merge` in the fragment:
/// made and signed where the platform was built and verified, attached by the merge.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Carried {
    pub predicate_type: String,
    /// The referrer's `artifactType`: a Sigstore bundle or a bare in-toto statement.
    pub media_type: String,
    pub signed: bool,
    /// The sealed bytes, base64 (byte-exact: a bundle's signature covers its payload).
    pub bytes: String,
}

/// What a `--split` job attests about its platforms, gathered once for the job (`None` when
/// `attest:` turns everything off).
pub struct SplitAttest<'s> {
    inputs: Inputs<'s>,
    key: Option<SigningKey>,
}

impl<'s> SplitAttest<'s> {
    pub fn prepare(s: &'s Session, packaged: &Packaged) -> Result<Option<SplitAttest<'s>>> {
        if !s.config.attest.any() {
            return Ok(None);
        }
        Ok(Some(SplitAttest {
            key: SigningKey::from_env()?,
            inputs: Inputs::gather(s, packaged, None)?,
        }))
    }

    /// The sealed statements of one platform image that passed verification in this job.
    pub fn carry(
        &self,
        img: &PackagedImage,
        p: &PackagedPlatform,
        verified: &verify::Report,
    ) -> Result<Vec<Carried>> {
        use base64::Engine as _;
        Ok(self
            .inputs
            .platform(img, p, verified)?
            .iter()
            .map(|st| {
                let sealed = bundle::seal(st, self.key.as_ref());
                Carried {
                    predicate_type: sealed.predicate_type,
                    media_type: sealed.media_type.to_string(),
                    signed: sealed.signed,
                    bytes: base64::engine::general_purpose::STANDARD.encode(&sealed.bytes),
                }
            })
            .collect())
    }
}

/// One platform image of a merge: its manifest (in the registry) and what its job carried.
pub struct MergedPlatform<'f> {
    pub platform: String,
    pub target: String,
    pub manifest: Descriptor,
    pub carried: &'f [Carried],
}

/// `--merge`'s attach step, after the indexes are pushed and before any tag moves: each
/// platform's carried statements (checked: each names exactly its manifest as subject, and with
/// `SHIPIT_SIGNING_KEY` set, each is signed and verifies against its public key), then each index's
/// provenance, made here (its resolved dependencies are the union of its platforms'), all
/// attached as referrers in the registry as a one-shot release attaches them.
pub fn merge(
    s: &Session,
    client: &Arc<RegistryClient>,
    images: &[(crate::platform::Libc, Descriptor, Vec<MergedPlatform<'_>>)],
    ui: &Ui,
) -> Result<Attached> {
    use base64::Engine as _;
    let a = s.config.attest;
    if !a.any() {
        ui.info("attest: every statement is off; nothing attached");
        return Ok(Attached::default());
    }
    let key = SigningKey::from_env()?;
    let public = key.as_ref().map(|k| k.public_key());
    let target = client.repository().to_string();
    ui.step(format!(
        "attach to {target} ({})",
        if key.is_some() { "signed" } else { "unsigned" }
    ));
    let scratch =
        tempfile::tempdir().map_err(|e| Error::env(format!("a temporary directory: {e}")))?;
    let source = Layout::create(scratch.path()).map_err(|e| Error::stage(format!("{e}")))?;
    let config_digest = config_digest(s)?;
    let mut planned = Vec::new();
    for (variant, index, platforms) in images {
        let planned_img = s
            .plan
            .images
            .iter()
            .find(|i| i.variant == *variant)
            .ok_or_else(|| Error::stage(format!("attach: no planned {variant} image")))?;
        let mut resolved = Resolved::default();
        for p in platforms {
            if p.carried.is_empty() {
                return Err(Error::stage(format!(
                    "{} ({variant}): its fragment carries no attestations (its job ran with every `attest:` statement off, or an older shipit); no tag was moved",
                    p.platform
                )));
            }
            for c in p.carried {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&c.bytes)
                    .map_err(|e| {
                        Error::stage(format!(
                            "{} ({variant}): a carried statement is not base64: {e}",
                            p.platform
                        ))
                    })?;
                let media_type = match c.media_type.as_str() {
                    bundle::BUNDLE_MEDIA_TYPE => bundle::BUNDLE_MEDIA_TYPE,
                    bundle::STATEMENT_MEDIA_TYPE => bundle::STATEMENT_MEDIA_TYPE,
                    other => {
                        return Err(Error::stage(format!(
                            "{} ({variant}): a carried statement of type {other:?}; no tag was moved",
                            p.platform
                        )));
                    }
                };
                if public.is_some() && !c.signed {
                    return Err(Error::stage(format!(
                        "{} ({variant}): its job's {} statement is unsigned but SHIPIT_SIGNING_KEY is set here: give the split jobs the key too; no tag was moved",
                        p.platform, c.predicate_type
                    )));
                }
                let check_key = public.filter(|_| c.signed);
                let opened = bundle::open(media_type, &bytes, check_key).map_err(|e| {
                    Error::stage(format!(
                        "{} ({variant}): its job's {} statement: {e}; no tag was moved",
                        p.platform, c.predicate_type
                    ))
                })?;
                let statement: serde_json::Value = serde_json::from_slice(&opened.statement)
                    .map_err(|e| Error::stage(format!("attach: {e}")))?;
                let subjects = statement["subject"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let names_it = subjects.len() == 1
                    && subjects[0]["digest"]["sha256"] == p.manifest.digest.hex();
                if !names_it || opened.predicate_type != c.predicate_type {
                    return Err(Error::stage(format!(
                        "{} ({variant}): its job's {} statement is not about {}; no tag was moved",
                        p.platform, c.predicate_type, p.manifest.digest
                    )));
                }
                if opened.predicate_type == provenance::PREDICATE_TYPE {
                    resolved.add_from(&statement);
                }
                planned.push(Planned {
                    subject: p.manifest.clone(),
                    subject_kind: "manifest",
                    platform: Some(p.platform.clone()),
                    variant: variant.to_string(),
                    sealed: Sealed {
                        media_type,
                        bytes,
                        predicate_type: opened.predicate_type,
                        signed: c.signed,
                    },
                });
            }
        }
        if a.provenance {
            let img = PackagedImage {
                variant: *variant,
                repository: planned_img.repository.clone(),
                tags: planned_img.tags.clone(),
                staging_ref: String::new(),
                index: index.clone(),
                platforms: platforms
                    .iter()
                    .map(|p| PackagedPlatform {
                        platform: p.platform.clone(),
                        target: p.target.clone(),
                        staging_ref: String::new(),
                        manifest: p.manifest.clone(),
                        compressed_size: 0,
                        deb_base: None,
                        base: None,
                    })
                    .collect(),
            };
            let statement = index_statement(s, &img, &config_digest, resolved);
            planned.push(Planned {
                subject: index.clone(),
                subject_kind: "index",
                platform: None,
                variant: variant.to_string(),
                sealed: bundle::seal(&statement, key.as_ref()),
            });
        }
    }
    attach_planned(
        s,
        planned,
        &PushedTo::Registry(client.clone()),
        &target,
        &source,
        ui,
    )
}

fn record(p: &Planned, sealed: &Sealed, r: &ReferrerManifest, listed_by: ListedBy) -> Attachment {
    Attachment {
        subject: p.subject.digest.to_string(),
        subject_kind: p.subject_kind.to_string(),
        platform: p.platform.clone(),
        variant: p.variant.clone(),
        artifact_type: sealed.media_type.to_string(),
        predicate_type: sealed.predicate_type.clone(),
        manifest_digest: r.descriptor.digest.to_string(),
        signed: sealed.signed,
        listed_by,
    }
}

/// Writes the config, layer and manifest blobs of every referrer in one durable batch
/// (`Layout::write_blobs`).
fn write_blobs(layout: &Layout, rs: &[ReferrerManifest]) -> Result<()> {
    let blobs: Vec<(&str, &[u8])> = rs
        .iter()
        .flat_map(|r| {
            [
                (r.config.0.media_type.as_str(), r.config.1.as_slice()),
                (r.layer.0.media_type.as_str(), r.layer.1.as_slice()),
                (r.descriptor.media_type.as_str(), r.bytes.as_slice()),
            ]
        })
        .collect();
    layout
        .write_blobs(&blobs)
        .map_err(|e| Error::stage(format!("attach: {e}")))?;
    Ok(())
}

/// Pushes one referrer and makes sure it is listed: by the registry itself (`OCI-Subject` or
/// the referrers API), else in the fallback tag.
fn push(
    client: &Arc<RegistryClient>,
    source: &Layout,
    subject: &Digest,
    r: &ReferrerManifest,
) -> Result<ListedBy> {
    let (c, paths) = (
        client.clone(),
        [
            (
                r.config.0.digest.clone(),
                r.config.0.size,
                source.blob_path(&r.config.0.digest),
            ),
            (
                r.layer.0.digest.clone(),
                r.layer.0.size,
                source.blob_path(&r.layer.0.digest),
            ),
        ],
    );
    let (mt, bytes, subj) = (
        r.descriptor.media_type.clone(),
        r.bytes.clone(),
        subject.clone(),
    );
    // A rerun of the same release makes the same bytes: nothing to push again.
    let (c2, digest) = (client.clone(), r.descriptor.digest.clone());
    let there = interruptible(client.cancel(), move || c2.head_manifest(digest.as_str()))?
        .is_some_and(|(d, _, _)| d == r.descriptor.digest);
    let indexed = !there
        && interruptible(client.cancel(), move || {
            let blobs: Vec<_> = paths.iter().map(|(d, s, p)| (d, *s, p.as_path())).collect();
            c.push_referrer(&blobs, &mt, &bytes, &subj)
        })?;
    if indexed {
        return Ok(ListedBy::ReferrersApi);
    }
    let (c, subj) = (client.clone(), subject.clone());
    if interruptible(client.cancel(), move || c.get_referrers(&subj))?.is_some() {
        return Ok(ListedBy::ReferrersApi);
    }
    Ok(ListedBy::FallbackTag)
}

/// The referrers tag schema, for each `(subject, entries)`: GET `sha256-<hex>` → merge our
/// entries → PUT if changed; then, after a pause, GET each again and check every entry of ours
/// is listed. A concurrent writer's PUT made from an older read is seen there, and that subject
/// is merged again (at most [`FALLBACK_ATTEMPTS`] rounds). The registry has no conditional PUT,
/// so the re-read after a pause is the check; a subject's entries go in one batch, so a
/// writer's window between its GET and its PUT is one request.
pub fn merge_fallback(
    client: &Arc<RegistryClient>,
    subjects: &[(Digest, Vec<Descriptor>)],
) -> Result<()> {
    let mut pending: Vec<&(Digest, Vec<Descriptor>)> = subjects.iter().collect();
    for attempt in 1..=FALLBACK_ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        for (subject, entries) in &pending {
            let tag = referrer::fallback_tag(subject);
            let mut index = read_fallback(client, &tag)?;
            let mut changed = false;
            let mut bytes = Vec::new();
            for e in entries {
                let merged = referrer::merge_into_index(index.as_ref(), e);
                changed |= merged.changed;
                bytes = merged.bytes;
                index = Some(merged.index);
            }
            if changed {
                let c = client.clone();
                interruptible(client.cancel(), move || {
                    c.push_manifest(&tag, crate::oci::media::OCI_INDEX, &bytes)
                        .map(drop)
                })?;
            }
        }
        // Let a concurrent writer's PUT (made from a read older than ours) land before we
        // look; the pause grows and is staggered, so two writers do not keep colliding.
        client.cancel().check()?;
        std::thread::sleep(settle(attempt));
        let mut still = Vec::new();
        for item in pending {
            let after = read_fallback(client, &referrer::fallback_tag(&item.0))?;
            let listed = |e: &Descriptor| {
                after
                    .as_ref()
                    .is_some_and(|i| i.manifests.iter().any(|d| d.digest == e.digest))
            };
            if !item.1.iter().all(listed) {
                still.push(item);
            }
        }
        pending = still;
    }
    match pending.first() {
        None => Ok(()),
        Some((subject, _)) => Err(Error::stage(format!(
            "attach: the fallback tag {} kept losing referrers after {FALLBACK_ATTEMPTS} merges (another writer?); no tag was moved",
            referrer::fallback_tag(subject)
        ))),
    }
}

/// How long to wait before re-reading the fallback tag: 100 ms and more each attempt, plus up
/// to 50 ms of jitter from the clock.
fn settle(attempt: u32) -> std::time::Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 50_000_000);
    std::time::Duration::from_millis(100 * u64::from(attempt))
        + std::time::Duration::from_nanos(u64::from(jitter))
}

/// The fallback tag's index, or `None` when the tag does not exist.
fn read_fallback(client: &Arc<RegistryClient>, tag: &str) -> Result<Option<Index>> {
    let (c, t) = (client.clone(), tag.to_string());
    let got = interruptible(client.cancel(), move || match c.get_manifest(&t) {
        Ok((bytes, _, _)) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })?;
    got.map(|bytes| {
        crate::oci::index::parse(&bytes)
            .map_err(|e| Error::stage(format!("the fallback tag {tag} is not an index: {e}")))
    })
    .transpose()
}

/// What every statement of a release (or a split job) is made from, gathered once: the packaged
/// layout, the SBOM inputs, the pipeline config's digest and the toolchain's versions.
struct Inputs<'s> {
    s: &'s Session,
    layout: Layout,
    sbom: SbomInputs,
    config_digest: Digest,
    tools: Toolchain,
}

impl<'s> Inputs<'s> {
    fn gather(
        s: &'s Session,
        packaged: &Packaged,
        prefetched: Option<Result<(SbomInputs, Toolchain)>>,
    ) -> Result<Inputs<'s>> {
        let layout = Layout::open(&packaged.layout).map_err(|e| Error::stage(format!("{e}")))?;
        let (sbom, tools) = match prefetched {
            Some(p) => p?,
            None => gather_slow(s, packaged, &layout)?,
        };
        Ok(Inputs {
            s,
            sbom,
            tools,
            config_digest: config_digest(s)?,
            layout,
        })
    }

    /// The statements about one platform image `attest:` asks for (CycloneDX, SPDX,
    /// provenance, verification); it must have passed verification in this run.
    fn platform(
        &self,
        img: &PackagedImage,
        p: &PackagedPlatform,
        verified: &verify::Report,
    ) -> Result<Vec<Statement>> {
        let (s, a, plan) = (self.s, self.s.config.attest, &self.s.plan);
        let created = plan.source_date_epoch.max(0) as u64;
        let report = verified
            .platforms
            .iter()
            .find(|r| r.digest == p.manifest.digest.as_str() && r.passed)
            .ok_or_else(|| {
                Error::stage(format!(
                    "attach: {} ({}) {} did not pass verification in this run; nothing is attested and no tag moved",
                    p.platform, img.variant, p.manifest.digest
                ))
            })?;
        let pp = plan_platform(plan, img, p);
        let subject = Subject {
            name: img.repository.clone(),
            digest: p.manifest.digest.clone(),
        };
        let mut out = Vec::new();
        if a.sbom {
            let graph =
                self.sbom.graphs.get(&p.target).cloned().ok_or_else(|| {
                    Error::stage(format!("attach: no crate graph for {}", p.target))
                })?;
            let debs = self
                .sbom
                .debs
                .get(&p.manifest.digest)
                .cloned()
                .unwrap_or_default();
            let doc = Sbom {
                image_name: img.repository.clone(),
                platform: p.platform.clone(),
                target: p.target.clone(),
                variant: img.variant.to_string(),
                features: plan.project.features.clone(),
                cargo: graph,
                debs,
                distro: sbom::DEFAULT_DISTRO.to_string(),
                created,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            for (predicate, bytes) in [
                (CYCLONEDX_PREDICATE, sbom::cyclonedx::render(&doc)),
                (SPDX_PREDICATE, sbom::spdx::render(&doc)),
            ] {
                let document: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::stage(format!("attach: SBOM: {e}")))?;
                out.push(crate::attest::statement(
                    std::slice::from_ref(&subject),
                    predicate,
                    document,
                ));
            }
        }
        if a.provenance {
            out.push(provenance::statement(&provenance_input(
                s,
                img,
                vec![subject.clone()],
                vec![p.platform.clone()],
                platform_internal(pp),
                &self.config_digest,
                self.resolved(img, std::iter::once(p)),
            )));
        }
        if a.verification {
            out.push(verification::statement(&verification_input(
                s, img, p, pp, report, &subject, created,
            )));
        }
        Ok(out)
    }

    /// The base images and tools that made `platforms` of `img`.
    fn resolved<'p>(
        &self,
        img: &PackagedImage,
        platforms: impl Iterator<Item = &'p PackagedPlatform>,
    ) -> Resolved {
        let plan = &self.s.plan;
        let platforms: Vec<&PackagedPlatform> = platforms.collect();
        Resolved {
            bases: platforms
                .iter()
                .filter_map(|p| base_resource(plan, &self.layout, img, p))
                .collect(),
            toolchain: self
                .tools
                .for_platforms(platforms.iter().filter_map(|p| plan_platform(plan, img, p))),
        }
    }

    /// The provenance statement of `img`'s index.
    fn index(&self, img: &PackagedImage, resolved: Resolved) -> Statement {
        index_statement(self.s, img, &self.config_digest, resolved)
    }
}

/// sha256 of the pipeline config file as read.
fn config_digest(s: &Session) -> Result<Digest> {
    Ok(Digest::of(&std::fs::read(&s.config.file).map_err(|e| {
        Error::stage(format!("{}: {e}", s.config.file.display()))
    })?))
}

/// An index's own provenance statement: its subject is the index, and it lists the platform
/// manifests it was assembled from.
fn index_statement(
    s: &Session,
    img: &PackagedImage,
    config_digest: &Digest,
    resolved: Resolved,
) -> Statement {
    let internal = BTreeMap::from([(
        "manifests".to_string(),
        json!(
            img.platforms
                .iter()
                .map(|p| json!({"platform": p.platform, "digest": p.manifest.digest.as_str()}))
                .collect::<Vec<_>>()
        ),
    )]);
    provenance::statement(&provenance_input(
        s,
        img,
        vec![Subject {
            name: img.repository.clone(),
            digest: img.index.digest.clone(),
        }],
        img.platforms.iter().map(|p| p.platform.clone()).collect(),
        internal,
        config_digest,
        resolved,
    ))
}

fn plan_platform<'p>(
    plan: &'p Plan,
    img: &PackagedImage,
    p: &PackagedPlatform,
) -> Option<&'p PlatformPlan> {
    plan.images
        .iter()
        .filter(|i| i.variant == img.variant)
        .flat_map(|i| i.platforms.iter())
        .find(|pp| pp.platform == p.platform)
}

fn platform_internal(pp: Option<&PlatformPlan>) -> BTreeMap<String, serde_json::Value> {
    let Some(pp) = pp else {
        return BTreeMap::new();
    };
    BTreeMap::from([
        ("target".to_string(), json!(pp.target)),
        ("backend".to_string(), json!(format!("{:?}", pp.backend))),
        ("linker".to_string(), json!(pp.linker)),
        ("buildStd".to_string(), json!(pp.build_std)),
    ])
}

/// What a provenance statement lists as resolved dependencies besides the source.
#[derive(Default)]
struct Resolved {
    /// The base image of each platform ([`base_resource`]).
    bases: Vec<Resource>,
    /// The tools that built them ([`Toolchain::for_platforms`]).
    toolchain: Vec<Resource>,
}

impl Resolved {
    /// Adds the bases and tools a platform's provenance statement lists (a merge's index
    /// provenance lists what its platforms' jobs resolved), each once.
    fn add_from(&mut self, statement: &serde_json::Value) {
        let deps = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
        for d in deps.as_array().into_iter().flatten() {
            let Ok(r) = serde_json::from_value::<Resource>(d.clone()) else {
                continue;
            };
            let name = r.name.clone().unwrap_or_default();
            let list = if name.starts_with("base ") {
                &mut self.bases
            } else if r.digest.contains_key("gitCommit") && r.name.is_none() {
                continue; // the source: every statement lists it itself
            } else {
                &mut self.toolchain
            };
            if !list.contains(&r) {
                list.push(r);
            }
        }
    }
}

/// The provenance of `subjects` of one image variant.
fn provenance_input(
    s: &Session,
    img: &PackagedImage,
    subjects: Vec<Subject>,
    platforms: Vec<String>,
    mut internal: BTreeMap<String, serde_json::Value>,
    config_digest: &Digest,
    resolved: Resolved,
) -> ProvenanceInput {
    let plan = &s.plan;
    if let Some(g) = s.config.build.glibc {
        internal.insert("glibcFloor".into(), json!(format!("{}.{}", g.0, g.1)));
    }
    let github = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let source = plan.revision.as_ref().map(|rev| {
        let uri = match (github("GITHUB_SERVER_URL"), github("GITHUB_REPOSITORY")) {
            (Some(server), Some(repo)) => format!("git+{server}/{repo}"),
            _ => format!("git+file://{}", plan.project.root.display()),
        };
        Resource::git(&uri, rev)
    });
    let (builder_id, invocation_id) = match (
        github("GITHUB_SERVER_URL"),
        github("GITHUB_REPOSITORY"),
        github("GITHUB_RUN_ID"),
    ) {
        (Some(server), Some(repo), Some(run)) => (
            format!("{server}/{repo}/actions/runs/{run}"),
            format!(
                "{run}/{}",
                github("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into())
            ),
        ),
        _ => (
            "https://shipit.dev/local".to_string(),
            format!("{}@{}", plan.version, plan.identity),
        ),
    };
    let epoch = plan.source_date_epoch.max(0) as u64;
    ProvenanceInput {
        subjects,
        config_digest: config_digest.clone(),
        platforms,
        variant: img.variant.to_string(),
        features: plan.project.features.clone(),
        profile: plan.project.profile.clone(),
        internal,
        source,
        base_images: resolved.bases,
        toolchain: resolved.toolchain,
        builder_id,
        builder_version: BTreeMap::from([(
            "shipit".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]),
        invocation_id,
        // The source date, not the wall clock: the same release attests to the same bytes, so
        // a rerun attaches nothing new.
        started_on: epoch,
        finished_on: epoch,
    }
}

/// `verify::PlatformReport` as the verification attestation's input.
fn verification_input(
    s: &Session,
    img: &PackagedImage,
    p: &PackagedPlatform,
    pp: Option<&PlatformPlan>,
    report: &verify::PlatformReport,
    subject: &Subject,
    created: u64,
) -> VerificationInput {
    let kind = |name: &str| match s
        .config
        .verify
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| &c.kind)
    {
        Some(CheckKind::Run { .. }) => "run",
        Some(_) => "serve",
        None => "static",
    };
    VerificationInput {
        subject: subject.clone(),
        platform: p.platform.clone(),
        variant: img.variant.to_string(),
        emulator: pp.filter(|pp| !pp.native).map(|pp| Emulator {
            binary: pp.spec.qemu_static(),
            cpu: pp.cpu.clone().unwrap_or_else(|| "max".into()),
        }),
        glibc_floor: s.config.build.glibc.map(|g| format!("{}.{}", g.0, g.1)),
        glibc_required: report.glibc_required.clone(),
        checks: report
            .checks
            .iter()
            .map(|c| CheckRecord {
                name: c.name.clone(),
                kind: kind(&c.name).to_string(),
                result: if c.passed { "passed" } else { "failed" }.to_string(),
                duration_ms: (c.seconds * 1000.0).round() as u64,
                detail: c.detail.clone(),
            })
            .collect(),
        verifier_version: env!("CARGO_PKG_VERSION").to_string(),
        verified_on: created,
    }
}

/// What the SBOMs are made of, gathered side by side: the crate graph of each distinct target
/// (cut from the run's one `cargo metadata`) and the Debian packages of each platform image
/// on a base that is not scratch (its dpkg status, read from its layers).
pub struct SbomInputs {
    graphs: HashMap<String, sbom::CargoGraph>,
    debs: HashMap<Digest, Vec<sbom::DebPackage>>,
}

fn sbom_inputs(s: &Session, packaged: &Packaged, layout: &Layout) -> Result<SbomInputs> {
    let mut targets: Vec<&str> = packaged
        .images
        .iter()
        .flat_map(|i| i.platforms.iter().map(|p| p.target.as_str()))
        .collect();
    targets.sort();
    targets.dedup();
    let on_a_base: Vec<&Descriptor> = packaged
        .images
        .iter()
        .filter(|img| {
            s.plan
                .images
                .iter()
                .any(|i| i.variant == img.variant && i.base != "scratch")
        })
        .flat_map(|img| img.platforms.iter().map(|p| &p.manifest))
        .collect();
    let project = &s.plan.project;
    let cache = super::deb_base::dpkg_status_cache(&s.plan);
    let cache = &cache;
    let plan = &s.plan;
    type Debs = Vec<(Digest, Result<Vec<sbom::DebPackage>>)>;
    let (graphs, debs): (std::result::Result<_, String>, Debs) = std::thread::scope(|scope| {
        let dpkg: Vec<_> = on_a_base
            .iter()
            .map(|m| scope.spawn(move || (m.digest.clone(), dpkg_packages(layout, m, cache))))
            .collect();
        // One `cargo metadata` for every target (or none: the run read it already).
        let graphs = crate::tools::cargo::graph_for_targets(project, &targets, &s.opts.cancel);
        (
            graphs,
            dpkg.into_iter()
                .map(|h| h.join().expect("a dpkg status thread panicked"))
                .collect(),
        )
    });
    let graphs = graphs.map_err(|e| Error::stage(format!("attach: SBOM: {e}")))?;
    let mut out = SbomInputs {
        graphs: HashMap::new(),
        debs: HashMap::new(),
    };
    for (t, metadata) in graphs {
        let g = sbom::from_metadata(&metadata, &plan.project.package)
            .map_err(|e| Error::stage(format!("attach: SBOM for {t}: {e}")))?;
        out.graphs.insert(t, g);
    }
    for (d, r) in debs {
        out.debs.insert(d, r?);
    }
    Ok(out)
}

/// The Debian packages of an image: the dpkg status file of its topmost layer that has one.
/// What each layer holds is remembered in `cache` ([`dpkg_status_cache`]: a layer is addressed
/// by its digest, so the base's big layers are read once, not every release).
fn dpkg_packages(
    layout: &Layout,
    manifest: &Descriptor,
    cache: &Path,
) -> Result<Vec<sbom::DebPackage>> {
    let err = |e: String| Error::stage(format!("attach: {e}"));
    let bytes = layout
        .read_blob(manifest, 4 << 20)
        .map_err(|e| err(e.to_string()))?;
    let m = crate::oci::image::parse_manifest(&bytes).map_err(|e| err(e.to_string()))?;
    for layer in m.layers.iter().rev() {
        let cached = cache.join(layer.digest.hex());
        let status = match std::fs::read_to_string(&cached) {
            Ok(text) => text.strip_prefix("status\n").map(str::to_string),
            Err(_) => {
                let status = layer_dpkg_status(layout, layer)?;
                let text = match &status {
                    Some(t) => format!("status\n{t}"),
                    None => "absent\n".to_string(),
                };
                super::deb_base::remember(cache, &cached, &text)?;
                status
            }
        };
        if let Some(text) = status {
            return Ok(sbom::parse_dpkg_status(&text));
        }
    }
    Ok(Vec::new())
}

/// The `var/lib/dpkg/status` of one layer, if it has one. The blob is read once, through its
/// digest check: the answer is remembered under that digest for every project of this user, so a
/// blob that is not what its digest names is an error, whatever it holds.
fn layer_dpkg_status(layout: &Layout, layer: &Descriptor) -> Result<Option<String>> {
    let err = |e: String| Error::stage(format!("attach: layer {}: {e}", layer.digest.short()));
    let blob = layout
        .open_blob(layer, layer.size)
        .map_err(|e| err(e.to_string()))?;
    let mut hashing = HashingReader::new(blob.file.take(layer.size.saturating_add(1)));
    let found = {
        let reader: Box<dyn Read + '_> = if layer.media_type.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(&mut hashing))
        } else {
            Box::new(&mut hashing)
        };
        dpkg_status_in(reader).map_err(|e| err(e.to_string()))
    };
    // The rest of the blob, for its digest.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| err(e.to_string()))?;
    let (digest, size) = hashing.finish();
    if digest != layer.digest || size != layer.size {
        return Err(err(format!(
            "{} is {digest}, {size} bytes, not the {} bytes its digest names",
            layout.blob_path(&layer.digest).display(),
            layer.size
        )));
    }
    found
}

/// The `var/lib/dpkg/status` entry of a tar stream, if it has one.
fn dpkg_status_in(reader: impl Read) -> std::io::Result<Option<String>> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let is_status = entry
            .path()
            .is_ok_and(|p| p.strip_prefix("./").unwrap_or(&p) == Path::new("var/lib/dpkg/status"));
        if !is_status {
            continue;
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(64 << 20)
            .read_to_string(&mut text)
            .map_err(|e| std::io::Error::other(format!("var/lib/dpkg/status: {e}")))?;
        return Ok(Some(text));
    }
    Ok(None)
}

/// The base image of one platform image, as a resolved dependency: `base linux/arm64`, the base
/// as the pipeline names it, and the manifest digest of that platform's base image. The digest is
/// what the package stage recorded in the manifest's `org.opencontainers.image.base.digest`
/// annotation; without it (an older package), an `oci:` base's digest is read from its layout
/// (the same platform selection the package stage made). `None` for scratch.
fn base_resource(
    plan: &Plan,
    layout: &Layout,
    img: &PackagedImage,
    p: &PackagedPlatform,
) -> Option<Resource> {
    let planned = plan.images.iter().find(|i| i.variant == img.variant)?;
    if matches!(planned.base_ref, crate::config::Base::Scratch) {
        return None;
    }
    let annotations = layout
        .read_blob(&p.manifest, 4 << 20)
        .ok()
        .and_then(|b| crate::oci::image::parse_manifest(&b).ok())
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    // What the package stage recorded (every non-scratch base, `deb:` ones included), else the
    // manifest's standard annotation (registry and `oci:` bases), else the base layout itself.
    let recorded = p
        .base
        .as_ref()
        .and_then(|b| Digest::parse(&b.digest).ok())
        .or_else(|| {
            annotations
                .get("org.opencontainers.image.base.digest")
                .and_then(|d| Digest::parse(d).ok())
        });
    let digest = recorded.or_else(|| match &planned.base_ref {
        crate::config::Base::Oci { path, tag } => {
            let pp = plan_platform(plan, img, p)?;
            Layout::open(path)
                .ok()?
                .select_platform(tag.as_deref(), &super::image_rules::oci_platform(pp))
                .ok()
                .map(|sel| sel.descriptor.digest)
        }
        _ => None,
    });
    let name = annotations
        .get("org.opencontainers.image.base.name")
        .cloned()
        .unwrap_or_else(|| planned.base.clone());
    Some(Resource {
        name: Some(format!("base {}", p.platform)),
        uri: Some(name),
        digest: digest
            .map(|d| BTreeMap::from([("sha256".to_string(), d.hex().to_string())]))
            .unwrap_or_default(),
        ..Resource::default()
    })
}

/// The plan's linker of a platform when it is a gcc program (`aarch64-linux-gnu-gcc`), whose
/// version `-dumpfullversion` prints; the other linkers are zig (probed as zig) or named by
/// description (`rust-lld`, `zig cc (cargo-zigbuild)`, `cross's container toolchain`).
fn gcc_linker(p: &PlatformPlan) -> Option<&str> {
    p.linker
        .as_deref()
        .filter(|l| !l.contains(char::is_whitespace) && l.ends_with("gcc"))
}

/// The versions of the tools a release builds with, probed side by side once per attach:
/// rustc (`rustc -vV`, with its commit), cargo (`cargo -V`), zig (`zig version`) when a platform
/// builds with cargo-zigbuild, and each cross gcc (`LINKER -dumpfullversion`) the plan uses.
#[derive(Default)]
pub struct Toolchain {
    rustc: Option<Resource>,
    cargo: Option<Resource>,
    zig: Option<Resource>,
    linkers: BTreeMap<String, Resource>,
}

impl Toolchain {
    fn probe(plan: &Plan, cancel: &crate::exec::Cancel) -> Toolchain {
        use crate::exec::Cmd;
        let platforms: Vec<&PlatformPlan> = plan.platforms().map(|(_, p)| p).collect();
        let zig = platforms
            .iter()
            .any(|p| p.backend == crate::config::Backend::Zigbuild);
        let mut linkers: Vec<&str> = platforms.iter().filter_map(|p| gcc_linker(p)).collect();
        linkers.sort_unstable();
        linkers.dedup();
        let run =
            |cmd: Cmd| crate::exec::capture(&cmd, std::time::Duration::from_secs(30), cancel).ok();
        let first_version = |out: &str| {
            out.split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_string)
        };
        std::thread::scope(|sc| {
            let rustc = sc.spawn(|| {
                let out = run(Cmd::new("rustc", "read the Rust toolchain version").args(["-vV"]))?;
                let field = |k: &str| {
                    out.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(|v| v.trim().to_string())
                };
                let commit = field("commit-hash:").filter(|c| c != "unknown");
                Some(Resource::tool(
                    "rustc",
                    &field("release:")?,
                    commit.as_deref(),
                ))
            });
            let cargo = sc.spawn(|| {
                let out = run(Cmd::new("cargo", "read cargo's version").args(["-V"]))?;
                Some(Resource::tool("cargo", &first_version(&out)?, None))
            });
            let zig = sc.spawn(move || {
                if !zig {
                    return None;
                }
                let out = run(Cmd::new("zig", "read zig's version").args(["version"]))?;
                Some(Resource::tool("zig", &first_version(&out)?, None))
            });
            let linkers: Vec<_> = linkers
                .iter()
                .map(|l| {
                    sc.spawn(move || {
                        let out =
                            run(Cmd::new(*l, "read the linker's version")
                                .args(["-dumpfullversion"]))?;
                        Some((l.to_string(), Resource::tool(l, out.trim(), None)))
                    })
                })
                .collect();
            Toolchain {
                rustc: rustc.join().ok().flatten(),
                cargo: cargo.join().ok().flatten(),
                zig: zig.join().ok().flatten(),
                linkers: linkers
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect(),
            }
        })
    }

    /// What built `platforms`: rustc and cargo, zig if one of them used cargo-zigbuild, and
    /// their linkers.
    fn for_platforms<'p>(
        &self,
        platforms: impl Iterator<Item = &'p PlatformPlan>,
    ) -> Vec<Resource> {
        let platforms: Vec<&PlatformPlan> = platforms.collect();
        let mut out: Vec<Resource> = self
            .rustc
            .iter()
            .chain(self.cargo.iter())
            .cloned()
            .collect();
        if platforms
            .iter()
            .any(|p| p.backend == crate::config::Backend::Zigbuild)
        {
            out.extend(self.zig.iter().cloned());
        }
        let mut linkers: Vec<&str> = platforms.iter().filter_map(|p| gcc_linker(p)).collect();
        linkers.sort_unstable();
        linkers.dedup();
        out.extend(linkers.iter().filter_map(|l| self.linkers.get(*l).cloned()));
        out
    }
}
