//! `shipit publish`: pushes what `dist/oci` holds, in the one order that never exposes a partial
//! release: every blob (HEAD first: a rerun uploads only what is missing), then each platform
//! manifest by digest, then each index by digest — for every image — then (the attach stage)
//! the attestations as referrers, and only then the tags, the exact version tag first and
//! `latest` last: `push_by_digest` and `move_all_tags` are the two halves. An interrupt or a
//! failure before the tags moves no tag; `release.json` says exactly which tags moved.
//!
//! The embedded default target is an OCI layout on disk (`publish.to: oci:dist/oci`): the same
//! order applies, the tags being `org.opencontainers.image.ref.name` entries of its index.json.

use super::package::Packaged;
use crate::config::{Config, PublishTo};
use crate::error::{Context, Error, Result};
use crate::exec::Cancel;
use crate::oci::digest::Digest;
use crate::oci::image::{Descriptor, Manifest};
use crate::oci::layout::{Layout, REF_NAME};
use crate::oci::registry::{BlobOutcome, Reference, RegistryClient, RegistryError};
use crate::ui::Ui;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Published {
    /// `oci:PATH` or `REGISTRY/REPO`.
    pub target: String,
    pub images: Vec<PublishedImage>,
    pub blobs_uploaded: u64,
    pub blobs_skipped: u64,
    pub bytes_uploaded: u64,
    pub requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishedImage {
    pub variant: String,
    pub repository: String,
    pub index_digest: String,
    /// Tags that now point at the index, in the order they were moved.
    pub tags_moved: Vec<String>,
    /// Tags that already pointed at it (nothing to do).
    pub tags_unchanged: Vec<String>,
}

/// What publish would do, for `--dry-run`.
pub fn describe(cfg: &Config, packaged: &Packaged) -> Vec<String> {
    let mut lines = Vec::new();
    let target = target_name(cfg);
    for img in &packaged.images {
        for p in &img.platforms {
            lines.push(format!("push {} manifest {} (+ its config and layers, skipping what {target} has) by digest", p.platform, p.manifest.digest));
        }
        lines.push(format!(
            "push {} index {} by digest",
            img.variant, img.index.digest
        ));
    }
    for img in &packaged.images {
        for t in &img.tags {
            lines.push(format!("tag {target}:{t} -> {}", img.index.digest));
        }
    }
    lines
}

fn target_name(cfg: &Config) -> String {
    match &cfg.publish.to {
        PublishTo::Oci(p) => format!("oci:{}", p.display()),
        PublishTo::Registry => cfg.image.repository.clone(),
    }
}

/// Where publish-by-digest put the content: what the attach and tag stages write to next.
pub struct Pushed {
    /// `oci:PATH` or `REGISTRY/REPO`.
    pub target: String,
    pub to: PushedTo,
    /// The run's cancel token (the tags are moved with it too).
    pub cancel: Cancel,
}

/// The publish target, opened.
pub enum PushedTo {
    /// The OCI layout the images were copied into.
    Layout(Layout),
    /// The registry client (the packaged layout stays the source of blobs).
    Registry(Arc<RegistryClient>),
}

/// Publish by digest: every blob, platform manifest and index, for every image, and no tag
/// (the tag stage moves them, after the attach stage). Each image's index must list only
/// platform images that passed verification in `verified` (read from the layout, not from
/// package.json), or nothing is pushed: the tags later move only onto what was pushed here.
/// `early`: the blob uploads started while verification ran (see [`EarlyUploads`]); what they
/// uploaded is not asked about again.
#[allow(clippy::too_many_arguments)]
pub fn push_by_digest(
    cfg: &Config,
    packaged: &Packaged,
    verified: &super::verify::Report,
    early: Option<EarlyUploads>,
    password_stdin: Option<String>,
    jobs: usize,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Pushed> {
    let checked = (|| {
        cancel.check()?;
        let layout = Layout::open(&packaged.layout)?;
        for img in &packaged.images {
            check_all_verified(&layout, img, verified)?;
        }
        Ok(())
    })();
    if let Err(e) = checked {
        if let Some(early) = early {
            early.stop();
        }
        return Err(e);
    }
    match &cfg.publish.to {
        PublishTo::Oci(path) => copy_to_layout(packaged, path, cancel, ui),
        PublishTo::Registry => {
            let (client, done) = match early {
                Some(early) => match early.finish() {
                    Ok(x) => x,
                    Err(e) => {
                        ui.warn("no tag was moved");
                        return Err(e);
                    }
                },
                None => (
                    registry_client(cfg, password_stdin, cancel, ui.json)?,
                    HashSet::new(),
                ),
            };
            push_to_registry(cfg, client, &done, packaged, jobs, cancel, ui)
        }
    }
}

/// Blob uploads (configs and layers: content no tag or manifest refers to yet) started in the
/// background while verification runs, so that a release does not wait for them after it.
/// Manifests, indexes and tags still go only after every platform image passed; a failed
/// verification stops the uploads at once (the registry is then left holding unreferenced
/// blobs, which it garbage-collects, and no manifest or tag). The uploads have their own
/// cancel token, a child of the run's: a signal stops them as it stops the run.
pub struct EarlyUploads {
    client: Arc<RegistryClient>,
    stop: Cancel,
    worker: std::thread::JoinHandle<Result<HashSet<Digest>>>,
    /// Closed when the worker ends (its sender drops), however it ends.
    ended: std::sync::mpsc::Receiver<()>,
}

/// How long a stopped upload thread is waited for. Socket reads look at the cancel token
/// within a moment, but a write blocked on a registry that stopped reading only ends at the
/// client's I/O timeout: past this bound the thread is left to end on its own (it moves
/// nothing: no manifest or tag is ever sent from it).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl EarlyUploads {
    /// Starts uploading the blobs of `packaged`'s images to the registry of `image.repository`.
    /// None (nothing started) when publishing goes to an OCI layout (a local copy gains nothing
    /// from going early), or when an index lists a platform image that is not in `to_verify`:
    /// that publish is refused later, and must have pushed nothing.
    pub fn start(
        cfg: &Config,
        packaged: &Packaged,
        to_verify: &[Digest],
        password_stdin: &mut Option<String>,
        jobs: usize,
        cancel: &Cancel,
        ui: &Ui,
    ) -> Result<Option<EarlyUploads>> {
        if cfg.publish.to != PublishTo::Registry {
            return Ok(None);
        }
        let layout = Layout::open(&packaged.layout)?;
        for img in &packaged.images {
            if !listed_unless(&layout, img, |d| to_verify.contains(d))?.is_empty() {
                return Ok(None);
            }
        }
        let manifests = platform_manifests(&layout, packaged)?;
        let blobs = blobs_of(manifests.iter().map(|(_, _, m)| m));
        let stop = cancel.child();
        let client = registry_client(cfg, password_stdin.take(), &stop, ui.json)?;
        let (c, ui) = (Arc::clone(&client), ui.clone());
        let (alive, ended) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("early-uploads".into())
            .spawn(move || {
                let _alive = alive;
                push_blobs(&c, &layout, &blobs, jobs, &ui)?;
                Ok(blobs.into_iter().map(|b| b.digest).collect())
            })
            .map_err(|e| Error::stage(format!("publish: cannot start the upload thread: {e}")))?;
        Ok(Some(EarlyUploads {
            client,
            stop,
            worker,
            ended,
        }))
    }

    /// Stops the uploads (verification failed, or the publish was refused) and waits for the
    /// thread, at most [`STOP_WAIT`].
    pub fn stop(self) {
        self.stop.cancel(libc::SIGTERM);
        match self.ended.recv_timeout(STOP_WAIT) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {} // left to end on its own
            _ => {
                self.worker.join().ok();
            }
        }
    }

    /// Waits for the uploads: the client, and the digests now in the registry.
    fn finish(self) -> Result<(Arc<RegistryClient>, HashSet<Digest>)> {
        let done = self
            .worker
            .join()
            .map_err(|_| Error::stage("publish: the upload thread panicked"))??;
        Ok((self.client, done))
    }
}

/// The tags, exact version first and `latest` last, image by image; only once everything was
/// pushed by digest (and attached).
pub fn move_all_tags(pushed: &Pushed, packaged: &Packaged, ui: &Ui) -> Result<Published> {
    match &pushed.to {
        PushedTo::Layout(to) => tag_layout(to, &pushed.target, packaged, &pushed.cancel, ui),
        PushedTo::Registry(client) => tag_registry(client, &pushed.target, packaged, ui),
    }
}

/// Both halves, without attachments: `push_by_digest`, then `move_all_tags`; each index only
/// when every platform image it lists passed verification in `verified` (see `select`).
pub fn run(
    cfg: &Config,
    packaged: &Packaged,
    verified: &super::verify::Report,
    password_stdin: Option<String>,
    jobs: usize,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Published> {
    let pushed = push_by_digest(
        cfg,
        packaged,
        verified,
        None,
        password_stdin,
        jobs,
        cancel,
        ui,
    )?;
    move_all_tags(&pushed, packaged, ui)
}

/// What a (possibly filtered) publish publishes: the packaged images of the plan's variants
/// only, each of which must have every platform image its index lists verified in this run.
/// A `--platform` filter that leaves out a platform of an index refuses the publish (exit 2):
/// a tag moves only onto an index all of whose platform images passed.
pub fn select(
    packaged: &Packaged,
    plan: &crate::plan::Plan,
    verified: &super::verify::Report,
) -> Result<Packaged> {
    let selected = of_plan(packaged, plan);
    let layout = Layout::open(&packaged.layout)?;
    for img in &selected.images {
        check_all_verified(&layout, img, verified)?;
    }
    Ok(selected)
}

/// The packaged images of the plan's variants (what `select` publishes, before it checks that
/// every platform image they list passed verification).
pub fn of_plan(packaged: &Packaged, plan: &crate::plan::Plan) -> Packaged {
    let images: Vec<_> = packaged
        .images
        .iter()
        .filter(|img| plan.images.iter().any(|p| p.variant == img.variant))
        .cloned()
        .collect();
    Packaged {
        images,
        ..packaged.clone()
    }
}

/// Refuses an image whose index (as the layout holds it, not as package.json says) lists a
/// platform image that did not pass verification in this run.
fn check_all_verified(
    layout: &Layout,
    img: &super::package::PackagedImage,
    verified: &super::verify::Report,
) -> Result<()> {
    let unverified = listed_unless(layout, img, |d| {
        verified
            .platforms
            .iter()
            .any(|r| r.passed && r.digest == d.as_str())
    })?;
    if unverified.is_empty() {
        return Ok(());
    }
    Err(Error::config(format!(
        "{} ({}): its index {} also lists {}, which this run did not verify; a tag moves only onto an index whose every platform image passed verification: publish without --platform (or `shipit package` with the same --platform first); nothing was pushed and no tag moved",
        img.repository,
        img.variant,
        img.index.digest.short(),
        unverified.join(", ")
    )))
}

/// The platform images `img`'s index (as the layout holds it, not as package.json says) lists
/// whose digest is not `ok`, for people: `platform (short digest)`.
fn listed_unless(
    layout: &Layout,
    img: &super::package::PackagedImage,
    ok: impl Fn(&Digest) -> bool,
) -> Result<Vec<String>> {
    let bytes = layout.read_blob(&img.index, crate::oci::layout::MAX_JSON_BLOB)?;
    let index =
        crate::oci::index::parse(&bytes).with_context(|| format!("index {}", img.index.digest))?;
    Ok(index
        .manifests
        .iter()
        .filter(|m| !ok(&m.digest))
        .map(|m| match &m.platform {
            Some(p) => format!("{p} ({})", m.digest.short()),
            None => m.digest.to_string(),
        })
        .collect())
}

/// Each platform image of `packaged`, with its manifest's bytes, parsed.
fn platform_manifests<'p>(
    layout: &Layout,
    packaged: &'p Packaged,
) -> Result<Vec<(&'p super::package::PackagedPlatform, Vec<u8>, Manifest)>> {
    let mut out = Vec::new();
    for img in &packaged.images {
        for p in &img.platforms {
            let bytes = layout.read_blob(&p.manifest, 4 << 20)?;
            let manifest = crate::oci::image::parse_manifest(&bytes)?;
            out.push((p, bytes, manifest));
        }
    }
    Ok(out)
}

/// The config and layers of each manifest (a blob several list appears as often).
fn blobs_of<'m>(manifests: impl IntoIterator<Item = &'m Manifest>) -> Vec<Descriptor> {
    manifests
        .into_iter()
        .flat_map(|m| std::iter::once(&m.config).chain(m.layers.iter()))
        .cloned()
        .collect()
}

fn copy_to_layout(packaged: &Packaged, path: &Path, cancel: &Cancel, ui: &Ui) -> Result<Pushed> {
    let target = format!("oci:{}", path.display());
    ui.step(format!("publish to {target}"));
    let from = Layout::open(&packaged.layout)?;
    let same = std::fs::canonicalize(path).ok() == std::fs::canonicalize(&packaged.layout).ok();
    let to = if same {
        from.clone()
    } else {
        // A signal stops the blob copies within a few MiB.
        Layout::create(path)?.with_cancel(cancel)
    };
    if !same {
        for img in &packaged.images {
            cancel.check()?;
            from.copy_image(&to, &img.index)
                .with_context(|| format!("copy {} into {target}", img.variant))?;
        }
    }
    Ok(Pushed {
        target,
        to: PushedTo::Layout(to),
        cancel: cancel.clone(),
    })
}

fn tag_layout(
    to: &Layout,
    target: &str,
    packaged: &Packaged,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Published> {
    let mut out = Published {
        target: target.to_string(),
        ..Published::default()
    };
    // Every image's tags move in one write of index.json: all of them, or none.
    let current = to.entries().context("tag: read index.json")?;
    // As `resolve` reads a tag: its first entry (a tag listed twice is written again, once).
    let points_at = |t: &str, d: &Digest| {
        let mut named = current.iter().filter(|e| e.annotation(REF_NAME) == Some(t));
        matches!((named.next(), named.next()), (Some(e), None) if e.digest == *d)
    };
    let split: Vec<(Vec<String>, Vec<String>)> = packaged
        .images
        .iter()
        .map(|img| {
            let (unchanged, moved) = img
                .tags
                .iter()
                .cloned()
                .partition(|t| points_at(t, &img.index.digest));
            (moved, unchanged)
        })
        .collect();
    let moves: Vec<(&str, &Descriptor)> = packaged
        .images
        .iter()
        .zip(&split)
        .flat_map(|(img, (moved, _))| moved.iter().map(|t| (t.as_str(), &img.index)))
        .collect();
    cancel.check()?;
    to.tag_all(&moves).with_context(|| {
        format!(
            "tag {}",
            moves.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
        )
    })?;
    for (img, (moved, unchanged)) in packaged.images.iter().zip(split) {
        out.images.push(tagged(img, moved, unchanged, ui));
    }
    Ok(out)
}

/// The registry client for `image.repository`, with credentials from `--password-stdin`
/// (user in SHIPIT_REGISTRY_USER), the environment or the docker config. `cancel` stops its
/// requests; under `json` its `::add-mask::` lines go to stderr.
pub fn registry_client(
    cfg: &Config,
    password_stdin: Option<String>,
    cancel: &Cancel,
    json: bool,
) -> Result<Arc<RegistryClient>> {
    let reference = Reference::parse(&cfg.image.repository).context("image.repository")?;
    match password_stdin {
        Some(pw) => {
            let user = std::env::var("SHIPIT_REGISTRY_USER").map_err(|_| {
                Error::env("--password-stdin needs the user name in SHIPIT_REGISTRY_USER")
            })?;
            let creds = crate::oci::registry::credentials::Credentials::Basic {
                username: user,
                password: crate::oci::registry::credentials::Secret::new(pw),
            };
            RegistryClient::new(
                &reference,
                Some(creds),
                super::pull::client_options(&reference, cfg.publish.insecure, json)?,
                cancel,
            )
            .map(Arc::new)
            .map_err(Error::from)
        }
        None => super::pull::client(&reference, cfg.publish.insecure, cancel, json).map(Arc::new),
    }
}

/// Runs one registry call, after checking the run (`cancel`, the client's token) is not
/// cancelled. The client itself stops within a moment of a signal (its socket reads look at the
/// cancel token, see `oci::registry::transport`), so a stalled registry cannot hold an
/// interrupted run; nothing after the call (in particular no tag) is sent.
pub fn interruptible<T>(
    cancel: &Cancel,
    f: impl FnOnce() -> std::result::Result<T, RegistryError>,
) -> Result<T> {
    cancel.check()?;
    Ok(f()?)
}

/// How many blob uploads (or HEADs, or manifest PUTs) run at once when `--jobs` does not say:
/// uploads wait on the network, not on the CPU, so this is not the build's core count.
pub const UPLOAD_JOBS: usize = 4;

/// How many registry requests run at once: `--jobs` (`jobs`) when given, else [`UPLOAD_JOBS`].
pub fn upload_jobs(jobs: Option<usize>) -> usize {
    jobs.filter(|j| *j > 0).unwrap_or(UPLOAD_JOBS)
}

/// Pushes one platform image: its config and layers (HEAD first, `jobs` at a time), then its
/// manifest by digest.
pub fn push_platform(
    client: &Arc<RegistryClient>,
    layout: &Layout,
    manifest_desc: &crate::oci::image::Descriptor,
    platform: &str,
    jobs: usize,
    ui: &Ui,
) -> Result<()> {
    client.cancel().check()?;
    let bytes = layout.read_blob(manifest_desc, 4 << 20)?;
    let manifest = crate::oci::image::parse_manifest(&bytes)?;
    let blobs = blobs_of([&manifest]);
    push_blobs(client, layout, &blobs, jobs, ui)?;
    push_manifest_once(
        client,
        manifest_desc.digest.as_str(),
        &manifest_desc.media_type,
        &bytes,
        &manifest_desc.digest,
    )?;
    ui.verbose(format!(
        "  manifest {platform} {}",
        manifest_desc.digest.short()
    ));
    Ok(())
}

/// Pushes blobs (each HEAD first: only what the registry lacks is uploaded), each digest once,
/// `jobs` at a time. The first failure starts no further blob; an interrupt stops the ones in
/// flight within a moment (the client's socket reads look at the run's cancel token).
pub fn push_blobs(
    client: &Arc<RegistryClient>,
    layout: &Layout,
    blobs: &[crate::oci::image::Descriptor],
    jobs: usize,
    ui: &Ui,
) -> Result<()> {
    let mut unique: Vec<&crate::oci::image::Descriptor> = Vec::with_capacity(blobs.len());
    for b in blobs {
        if !unique.iter().any(|u| u.digest == b.digest) {
            unique.push(b);
        }
    }
    bounded(&unique, jobs, client.cancel(), |blob| {
        let (c, digest, size, path) = (
            client.clone(),
            blob.digest.clone(),
            blob.size,
            layout.blob_path(&blob.digest),
        );
        let outcome = interruptible(client.cancel(), move || {
            c.push_blob(&digest, size, &path, None)
        })?;
        ui.verbose(format!(
            "  blob {} {} bytes: {}",
            blob.digest.short(),
            blob.size,
            match outcome {
                BlobOutcome::Existed => "already there",
                BlobOutcome::Mounted => "mounted",
                BlobOutcome::Uploaded => "uploaded",
            }
        ));
        Ok(())
    })
    .map(drop)
}

/// Runs `work` on every item, at most `jobs` at a time, and returns the results in item order.
/// The first failure (or the run's cancellation) starts no further item; the items already
/// running finish (or stop at the cancel token), and that first failure is the result.
pub fn bounded<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    cancel: &Cancel,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    cancel.check()?;
    let workers = jobs.max(1).min(items.len());
    if workers <= 1 {
        return items
            .iter()
            .map(|item| {
                cancel.check()?;
                work(item)
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) || cancel.is_cancelled() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { return };
                    match work(item) {
                        Ok(r) => {
                            if let Ok(mut all) = results.lock() {
                                all[i] = Some(r);
                            }
                        }
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            if let Ok(mut first) = first_error.lock() {
                                first.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    cancel.check()?;
    results
        .into_inner()
        .map_err(|_| Error::stage("publish: a worker panicked"))?
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::stage("publish: a worker stopped before its item")))
        .collect()
}

fn push_to_registry(
    cfg: &Config,
    client: Arc<RegistryClient>,
    uploaded: &HashSet<Digest>,
    packaged: &Packaged,
    jobs: usize,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Pushed> {
    let target = cfg.image.repository.clone();
    ui.step(format!("publish to {target}"));
    let layout = Layout::open(&packaged.layout)?;
    // Blobs, then manifests by digest, then indexes by digest: every image, before any tag.
    if let Err(e) = push_content(&client, &layout, packaged, uploaded, jobs, ui) {
        ui.warn("no tag was moved");
        return Err(e);
    }
    Ok(Pushed {
        target,
        cancel: cancel.clone(),
        to: PushedTo::Registry(client),
    })
}

fn tag_registry(
    client: &Arc<RegistryClient>,
    target: &str,
    packaged: &Packaged,
    ui: &Ui,
) -> Result<Published> {
    let layout = Layout::open(&packaged.layout).map_err(|e| Error::stage(format!("{e}")))?;
    // Tags, exact version first and `latest` last, image by image.
    let mut out = Published {
        target: target.to_string(),
        ..Published::default()
    };
    for img in &packaged.images {
        let bytes = layout.read_blob(&img.index, 4 << 20)?;
        let (moved, unchanged) = move_tags(client, &img.index, &bytes, &img.tags, &out, ui)?;
        out.images.push(tagged(img, moved, unchanged, ui));
    }
    let stats = client.stats();
    out.blobs_uploaded = stats.blobs_uploaded;
    out.blobs_skipped = stats.blobs_skipped;
    out.bytes_uploaded = stats.bytes_uploaded;
    out.requests = stats.requests;
    ui.info(format!(
        "  {} blobs uploaded ({} bytes), {} already there, {} requests",
        stats.blobs_uploaded, stats.bytes_uploaded, stats.blobs_skipped, stats.requests
    ));
    Ok(out)
}

/// Points each tag at the index (already pushed by digest), in order; a tag that already points
/// there is left alone. Returns (moved, unchanged). On a failure or an interrupt, says which tags
/// moved before it.
pub fn move_tags(
    client: &Arc<RegistryClient>,
    index: &crate::oci::image::Descriptor,
    bytes: &[u8],
    tags: &[String],
    done: &Published,
    ui: &Ui,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut moved = Vec::new();
    let mut unchanged = Vec::new();
    for t in tags {
        if let Err(e) = client.cancel().check() {
            report_partial(ui, done, &moved);
            return Err(e.into());
        }
        let (c, tag) = (client.clone(), t.clone());
        match interruptible(client.cancel(), move || c.head_manifest(&tag)) {
            Ok(Some((d, _, _))) if d == index.digest => {
                unchanged.push(t.clone());
                continue;
            }
            Err(e) if e.interrupted_by().is_some() => {
                report_partial(ui, done, &moved);
                return Err(e);
            }
            _ => {}
        }
        let (c, tag, mt, body) = (
            client.clone(),
            t.clone(),
            index.media_type.clone(),
            bytes.to_vec(),
        );
        match interruptible(client.cancel(), move || c.push_manifest(&tag, &mt, &body)) {
            Ok(d) if d == index.digest => moved.push(t.clone()),
            Ok(d) => {
                report_partial(ui, done, &moved);
                return Err(Error::stage(format!(
                    "tag {t}: the registry answered digest {d}, expected {}",
                    index.digest
                )));
            }
            Err(e) => {
                report_partial(ui, done, &moved);
                return Err(e);
            }
        }
    }
    Ok((moved, unchanged))
}

/// Every blob, platform manifest and index, by digest, skipping what the registry has, `jobs`
/// requests at a time and children first: every blob of every image (each digest once: a layer
/// shared by platforms or variants is sent once), then every platform manifest, then every
/// index. A failure at one level starts nothing of the next.
/// Pushes every image's blobs (but those in `uploaded`, already pushed in this run), then its
/// platform manifests, then its index.
fn push_content(
    client: &Arc<RegistryClient>,
    layout: &Layout,
    packaged: &Packaged,
    uploaded: &HashSet<Digest>,
    jobs: usize,
    ui: &Ui,
) -> Result<()> {
    client.cancel().check()?;
    let manifests = platform_manifests(layout, packaged)?;
    let blobs: Vec<_> = blobs_of(manifests.iter().map(|(_, _, m)| m))
        .into_iter()
        .filter(|b| !uploaded.contains(&b.digest))
        .collect();
    push_blobs(client, layout, &blobs, jobs, ui)?;
    bounded(&manifests, jobs, client.cancel(), |(p, bytes, _)| {
        push_manifest_once(
            client,
            p.manifest.digest.as_str(),
            &p.manifest.media_type,
            bytes,
            &p.manifest.digest,
        )?;
        ui.verbose(format!(
            "  manifest {} {}",
            p.platform,
            p.manifest.digest.short()
        ));
        Ok(())
    })?;
    let indexes: Vec<_> = packaged.images.iter().map(|img| &img.index).collect();
    bounded(&indexes, jobs, client.cancel(), |index| {
        let bytes = layout.read_blob(index, 4 << 20)?;
        push_manifest_once(
            client,
            index.digest.as_str(),
            &index.media_type,
            &bytes,
            &index.digest,
        )
    })?;
    Ok(())
}

/// Records (and reports) an image whose tags now point at its index.
fn tagged(
    img: &super::package::PackagedImage,
    moved: Vec<String>,
    unchanged: Vec<String>,
    ui: &Ui,
) -> PublishedImage {
    ui.ok(format!(
        "{} ({}) {} tags: {}",
        img.repository,
        img.variant,
        img.index.digest.short(),
        img.tags.join(", ")
    ));
    PublishedImage {
        variant: img.variant.to_string(),
        repository: img.repository.clone(),
        index_digest: img.index.digest.to_string(),
        tags_moved: moved,
        tags_unchanged: unchanged,
    }
}

fn report_partial(ui: &Ui, done: &Published, moved_now: &[String]) {
    let mut moved: Vec<String> = done
        .images
        .iter()
        .flat_map(|i| i.tags_moved.iter().cloned())
        .collect();
    moved.extend(moved_now.iter().cloned());
    if moved.is_empty() {
        ui.warn("no tag was moved");
    } else {
        ui.warn(format!(
            "tags moved before the failure (each points at a complete, verified index): {}",
            moved.join(", ")
        ));
    }
}

/// PUT a manifest by digest unless the registry already has it.
pub fn push_manifest_once(
    client: &Arc<RegistryClient>,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    digest: &crate::oci::digest::Digest,
) -> Result<()> {
    let (c, r) = (client.clone(), reference.to_string());
    match interruptible(client.cancel(), move || c.head_manifest(&r)) {
        Ok(Some((d, _, _))) if &d == digest => return Ok(()),
        Err(e) if e.interrupted_by().is_some() => return Err(e),
        _ => {}
    }
    let (c, r, mt, body) = (
        client.clone(),
        reference.to_string(),
        media_type.to_string(),
        bytes.to_vec(),
    );
    let got = interruptible(client.cancel(), move || c.push_manifest(&r, &mt, &body))?;
    if &got != digest {
        return Err(Error::stage(format!(
            "manifest {digest}: the registry answered digest {got}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn bounded_keeps_item_order_and_at_most_jobs_at_once() {
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<u32> = (0..20).collect();
        let out = bounded(&items, 4, &Cancel::new(), |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(i * 2)
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} at once");
    }

    #[test]
    fn bounded_first_failure_starts_no_further_item() {
        let started = AtomicUsize::new(0);
        let items: Vec<u32> = (0..100).collect();
        let e = bounded(&items, 3, &Cancel::new(), |i| {
            started.fetch_add(1, Ordering::SeqCst);
            if *i == 5 {
                return Err(Error::stage("blob 5 failed"));
            }
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("blob 5 failed"), "{e}");
        let n = started.load(Ordering::SeqCst);
        assert!(n < 12, "{n} items started after the failure");
    }

    #[test]
    fn bounded_stops_on_the_cancel_token() {
        let cancel = Cancel::new();
        let started = AtomicUsize::new(0);
        let items: Vec<u32> = (0..100).collect();
        let r = bounded(&items, 4, &cancel, |i| {
            started.fetch_add(1, Ordering::SeqCst);
            if *i == 2 {
                cancel.cancel(libc::SIGINT);
            }
            Ok(())
        });
        assert!(r.is_err());
        assert!(started.load(Ordering::SeqCst) < 10);
        let none: Vec<u32> = Vec::new();
        assert!(
            bounded(&none, 4, &Cancel::new(), |_| Ok(()))
                .unwrap()
                .is_empty()
        );
    }
}
