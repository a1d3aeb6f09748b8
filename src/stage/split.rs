//! Scale past one machine: `shipit release --split --platform P` builds, packages, verifies and
//! pushes one platform by digest (no index, no tag) and writes a small JSON fragment;
//! `shipit release --merge FRAGMENTS...` checks that the fragments come from the same plan,
//! passed, and cover exactly the planned platforms of each variant, that each manifest is in the
//! registry, then pushes the indexes, attaches the statements and moves the tags. A missing or
//! failed fragment moves no tag. The index is the one a single-machine release would have made
//! (same bytes, same digest). Attestations follow the same rule as a one-shot release: each
//! platform's SBOMs, provenance and verification attestation are made and sealed (signed with
//! `SHIPIT_SIGNING_KEY`) by the job that built and verified it, and carried in its fragment; the
//! merge checks them, makes each index's provenance, and attaches all of them as referrers after
//! the indexes and before the tags (blobs → manifests → indexes → referrers → tags). Each job
//! also writes its platform's release archives and lists them in its fragment; the merge takes
//! them from next to the fragments and writes one `SHA256SUMS` (see `archives::gather`).

use super::{image_rules, package, publish, verify};
use crate::config::{Config, PublishTo};
use crate::error::{Context, Error, Result};
use crate::oci::image::Descriptor;
use crate::oci::index;
use crate::platform::Libc;
use crate::session::Session;
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fragment {
    /// Fragment format version.
    pub format: u32,
    /// `Plan::identity` of the release this fragment belongs to.
    pub identity: String,
    pub version: String,
    pub repository: String,
    pub variant: Libc,
    pub platform: String,
    pub target: String,
    pub manifest: Descriptor,
    pub compressed_size: u64,
    pub passed: bool,
    pub checks: Vec<crate::verify::checks::CheckResult>,
    /// The base image and this platform's base manifest digest (none on scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<super::image_rules::BaseImage>,
    /// The platform's sealed statements, for the merge to attach (none when it failed or
    /// `attest:` turns them off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<super::attach::Carried>,
    /// The release archives this job wrote for the platform's target (`dist/archives`); the
    /// merge takes them from next to the fragment (none with `archives: false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<super::archives::Archive>,
}

fn need_registry(cfg: &Config, what: &str) -> Result<()> {
    match cfg.publish.to {
        PublishTo::Registry => Ok(()),
        PublishTo::Oci(_) => Err(Error::config(format!(
            "{what} pushes by digest to a registry shared by the jobs: set `publish.to: registry` in {}",
            cfg.file.display()
        ))),
    }
}

/// `--split` needs the job's platform and a registry the jobs share.
pub fn check_job(s: &Session) -> Result<()> {
    if s.opts.platforms.is_empty() {
        return Err(Error::config(
            "--split needs --platform P: the platform this job builds",
        ));
    }
    need_registry(&s.config, "--split")
}

/// The publish stage of a matrix job: each platform that passed is pushed by digest (no index,
/// no tag), and every platform gets its fragment, passed or not, listing its archives.
pub fn push_and_write_fragments(
    s: &Session,
    packaged: &package::Packaged,
    verified: &verify::Report,
    archives: Option<&super::archives::Archives>,
    password: Option<String>,
    ui: &Ui,
) -> Result<()> {
    let (cfg, plan) = (&s.config, &s.plan);
    let failed = verify::failure(verified);
    let client = if failed.is_none() {
        Some(publish::registry_client(
            cfg,
            password,
            &s.opts.cancel,
            ui.json,
        )?)
    } else {
        None
    };
    let layout = crate::oci::layout::Layout::open(&packaged.layout)?;
    // Statements are made only when every platform of the job passed (then it pushes).
    let attest = match &failed {
        None => super::attach::SplitAttest::prepare(s, packaged)?,
        Some(_) => None,
    };
    for img in &packaged.images {
        // Only this job's platforms: dist/package.json may also list earlier runs' images.
        let planned = |p: &package::PackagedPlatform| {
            plan.platforms()
                .any(|(i, pp)| i.variant == img.variant && pp.platform == p.platform)
        };
        for p in img.platforms.iter().filter(|p| planned(p)) {
            let report = verified
                .platforms
                .iter()
                .find(|r| r.digest == p.manifest.digest.as_str());
            let passed = report.is_some_and(|r| r.passed);
            if let (Some(client), true) = (&client, passed) {
                publish::push_platform(
                    client,
                    &layout,
                    &p.manifest,
                    &p.platform,
                    publish::upload_jobs(s.opts.jobs),
                    ui,
                )?;
            }
            let attachments = match (&attest, passed) {
                (Some(a), true) => a.carry(img, p, verified)?,
                _ => Vec::new(),
            };
            let fragment = Fragment {
                format: 1,
                identity: plan.identity.clone(),
                version: plan.version.to_string(),
                repository: img.repository.clone(),
                variant: img.variant,
                platform: p.platform.clone(),
                target: p.target.clone(),
                manifest: p.manifest.clone(),
                compressed_size: p.compressed_size,
                passed,
                checks: report.map(|r| r.checks.clone()).unwrap_or_default(),
                base: p.base.clone(),
                attachments,
                archives: archives
                    .iter()
                    .flat_map(|a| &a.archives)
                    .filter(|a| a.target == p.target)
                    .cloned()
                    .collect(),
            };
            let spec = crate::platform::Platform::parse(&p.platform)
                .map(|s| s.slug())
                .unwrap_or_default();
            let path = fragment_path(&plan.out_dir, img.variant, spec);
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| Error::stage(e.to_string()))?;
            let text = serde_json::to_string_pretty(&fragment)?;
            std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
            ui.ok(format!(
                "fragment {} ({}) {}: {}",
                p.platform,
                img.variant,
                if passed {
                    "passed, pushed by digest"
                } else {
                    "FAILED verification, not pushed"
                },
                path.display()
            ));
            if ui.github {
                crate::ci::github::write_output("fragment", &path.display().to_string()).ok();
            }
        }
    }
    Ok(())
}

/// Reads the fragment's manifest and its config from the registry: the digest, size and media
/// type must be the fragment's, and the config's os/architecture/variant its platform.
fn check_fragment_image(
    client: &std::sync::Arc<crate::oci::registry::RegistryClient>,
    f: &Fragment,
    scratch: &Path,
) -> Result<()> {
    let want = crate::platform::Platform::parse(&f.platform)
        .map(|p| index::Platform::new(p.os, p.architecture, p.variant))
        .ok_or_else(|| Error::stage(format!("{:?} is not a platform", f.platform)))?;
    let (c, d) = (client.clone(), f.manifest.digest.to_string());
    let (bytes, media_type, digest) =
        publish::interruptible(client.cancel(), move || c.get_manifest(&d)).map_err(|e| {
            if e.interrupted_by().is_some() {
                return e;
            }
            e.context(format!(
                "manifest {} is not readable in {}",
                f.manifest.digest,
                client.repository()
            ))
        })?;
    if digest != f.manifest.digest || bytes.len() as u64 != f.manifest.size {
        return Err(Error::stage(format!(
            "the registry's manifest is {digest}, {} bytes; the fragment says {}, {} bytes",
            bytes.len(),
            f.manifest.digest,
            f.manifest.size
        )));
    }
    let media_type = media_type.split(';').next().unwrap_or_default().trim();
    if media_type != f.manifest.media_type {
        return Err(Error::stage(format!(
            "manifest {} is a {media_type}, the fragment says {}",
            f.manifest.digest, f.manifest.media_type
        )));
    }
    let manifest = crate::oci::image::parse_manifest(&bytes)
        .map_err(|e| Error::stage(format!("manifest {}: {e}", f.manifest.digest)))?;
    let path = scratch.join(manifest.config.digest.hex());
    let (c, d, p) = (client.clone(), manifest.config.digest.clone(), path.clone());
    publish::interruptible(client.cancel(), move || {
        c.get_blob(&d, &p, crate::oci::layout::MAX_JSON_BLOB)
            .map(drop)
    })?;
    let config_bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let config = crate::oci::image::parse_config(&config_bytes)
        .map_err(|e| Error::stage(format!("config {}: {e}", manifest.config.digest)))?;
    let got = crate::oci::image::config_platform(&config)
        .map_err(|e| Error::stage(format!("config {}: {e}", manifest.config.digest)))?;
    if !got.matches(&want) {
        return Err(Error::stage(format!(
            "manifest {} is not an image of {want}: its config says {got}",
            f.manifest.digest.short()
        )));
    }
    Ok(())
}

pub fn fragment_path(out: &Path, libc: Libc, slug: String) -> PathBuf {
    out.join("fragments")
        .join(format!("{}-{slug}.json", libc.name()))
}

/// `--merge`: the final job (see the module comment). Its index bytes are those of
/// `package` (`image_rules`).
pub fn merge(s: &Session, paths: &[PathBuf], password: Option<String>, ui: &Ui) -> Result<()> {
    if !s.opts.platforms.is_empty() {
        return Err(Error::config(
            "--merge takes no --platform: it assembles every planned platform",
        ));
    }
    let started = std::time::Instant::now();
    let (cfg, plan) = (&s.config, &s.plan);
    need_registry(cfg, "--merge")?;
    let mut fragments: BTreeMap<(Libc, String), Fragment> = BTreeMap::new();
    // Where each fragment was read: its archives are looked for next to it.
    let mut dirs: BTreeMap<(Libc, String), PathBuf> = BTreeMap::new();
    for path in paths {
        // Fragments are named on the command line (`--merge`): one that cannot be read or is
        // not a fragment is a usage error (exit 2).
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        let f: Fragment = serde_json::from_str(&text).map_err(|e| {
            Error::config(format!("{}: not a shipit fragment: {e}", path.display()))
        })?;
        if f.identity != plan.identity {
            return Err(Error::stage(format!(
                "{}: this fragment belongs to another release ({} of {}; the plan differs: version, revision, tags or platforms); no tag was moved",
                path.display(),
                f.version,
                f.repository
            )));
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        dirs.insert((f.variant, f.platform.clone()), dir);
        fragments.insert((f.variant, f.platform.clone()), f);
    }
    // Every planned platform must have a fragment that passed.
    let mut problems = Vec::new();
    for (img, p) in plan.platforms() {
        match fragments.get(&(img.variant, p.platform.to_string())) {
            None => problems.push(format!(
                "{} ({}): no fragment (did its job run and upload it?)",
                p.platform, img.variant
            )),
            Some(f) if !f.passed => problems.push(format!(
                "{} ({}): failed verification",
                p.platform, img.variant
            )),
            Some(_) => {}
        }
    }
    for (variant, platform) in fragments.keys() {
        if !plan
            .platforms()
            .any(|(i, p)| i.variant == *variant && p.platform == platform)
        {
            problems.push(format!(
                "{platform} ({variant}): a fragment for a platform the plan does not list"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::stage(format!(
            "cannot merge: no tag was moved\n  {}",
            problems.join("\n  ")
        )));
    }
    let _locks = super::locks::take_out_dir(s, ui)?;
    // The archives, checked against their fragments and summed, before anything is pushed.
    let listed: Vec<(PathBuf, super::archives::Archive)> = fragments
        .iter()
        .flat_map(|(key, f)| f.archives.iter().map(|a| (dirs[key].clone(), a.clone())))
        .collect();
    let archives = super::archives::gather(plan, &listed, ui)?.unwrap_or_default();
    let client = publish::registry_client(cfg, password, &s.opts.cancel, ui.json)?;
    ui.step(format!(
        "merge {} fragments into {}",
        fragments.len(),
        cfg.image.repository
    ));
    // Each manifest must be in the registry, exactly as the fragment says, and be an image of
    // the fragment's platform (its config, read from the registry, says so).
    let scratch =
        tempfile::tempdir().map_err(|e| Error::env(format!("a temporary directory: {e}")))?;
    for f in fragments.values() {
        check_fragment_image(&client, f, scratch.path()).map_err(|e| {
            if e.interrupted_by().is_some() {
                return e;
            }
            e.context(format!("{} ({})", f.platform, f.variant))
                .with_detail("no tag was moved")
        })?;
    }
    // Indexes by digest, all of them, then tags.
    let mut built = Vec::new();
    for img in &plan.images {
        let annotations = image_rules::index_annotations(cfg, plan, img);
        let entries: Vec<(Descriptor, index::Platform)> = img
            .platforms
            .iter()
            .map(|p| {
                let f = &fragments[&(img.variant, p.platform.to_string())];
                let mut d = f.manifest.clone();
                d.platform = None;
                (d, image_rules::oci_platform(p))
            })
            .collect();
        let idx = index::build(&entries, &annotations)
            .with_context(|| format!("index for {}", img.variant))?;
        publish::push_manifest_once(
            &client,
            idx.descriptor.digest.as_str(),
            &idx.descriptor.media_type,
            &idx.bytes,
            &idx.descriptor.digest,
        )?;
        built.push((img, idx));
    }
    // Referrers after the indexes, before any tag: a failed attach moves no tag.
    let merged: Vec<_> = built
        .iter()
        .map(|(img, idx)| {
            let platforms = img
                .platforms
                .iter()
                .map(|p| {
                    let f = &fragments[&(img.variant, p.platform.to_string())];
                    super::attach::MergedPlatform {
                        platform: f.platform.clone(),
                        target: f.target.clone(),
                        manifest: f.manifest.clone(),
                        carried: &f.attachments,
                    }
                })
                .collect();
            (img.variant, idx.descriptor.clone(), platforms)
        })
        .collect();
    let attached = super::attach::merge(s, &client, &merged, ui).inspect_err(|_| {
        ui.warn("no tag was moved");
    })?;
    let mut out = publish::Published {
        target: cfg.image.repository.clone(),
        ..Default::default()
    };
    for (img, idx) in &built {
        let (moved, unchanged) =
            publish::move_tags(&client, &idx.descriptor, &idx.bytes, &img.tags, &out, ui)?;
        ui.ok(format!(
            "{} ({}) {} tags: {}",
            img.repository,
            img.variant,
            idx.descriptor.digest.short(),
            img.tags.join(", ")
        ));
        out.images.push(publish::PublishedImage {
            variant: img.variant.to_string(),
            repository: img.repository.clone(),
            index_digest: idx.descriptor.digest.to_string(),
            tags_moved: moved,
            tags_unchanged: unchanged,
        });
    }
    let report = super::release::ReleaseReport {
        version: plan.version.to_string(),
        revision: plan.revision.clone(),
        published_to: cfg.image.repository.clone(),
        seconds: started.elapsed().as_secs_f64(),
        images: built
            .iter()
            .map(|(img, idx)| {
                let pubd = out.images.iter().find(|p| p.variant == img.variant.name());
                super::release::ImageReport {
                    variant: img.variant.to_string(),
                    repository: img.repository.clone(),
                    index_digest: idx.descriptor.digest.to_string(),
                    tags_moved: pubd.map(|p| p.tags_moved.clone()).unwrap_or_default(),
                    tags_unchanged: pubd.map(|p| p.tags_unchanged.clone()).unwrap_or_default(),
                    platforms: img
                        .platforms
                        .iter()
                        .map(|p| {
                            let f = &fragments[&(img.variant, p.platform.to_string())];
                            super::release::PlatformReport {
                                platform: f.platform.clone(),
                                target: f.target.clone(),
                                manifest_digest: f.manifest.digest.to_string(),
                                compressed_size: f.compressed_size,
                                verify_seconds: f.checks.iter().map(|c| c.seconds).sum(),
                                cached: !f.checks.is_empty() && f.checks.iter().all(|c| c.cached),
                                checks: f.checks.clone(),
                                base: f.base.clone(),
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
        blobs_uploaded: 0,
        blobs_skipped: 0,
        attachments: attached.attachments,
        stages: Vec::new(),
        archives: archives.archives,
    };
    super::release::write_report(plan, &report, s.opts.json, ui)
}
