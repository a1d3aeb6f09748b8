//! `shipit verify [IMAGE]`: proves every platform image runs before anything is tagged. For each
//! platform (in parallel): read the manifest and config, unpack the layers safely into a private
//! temp rootfs, run the static checks, then each `run`/`serve` check under QEMU with the
//! platform's strict CPU, confined to that rootfs. The images come from `dist/package.json`
//! (what `package` made), from `oci:DIR[:TAG]`, or from `REGISTRY/REPO[:TAG|@DIGEST]` (pulled
//! over the registry API into a local layout first). Images built by any tool verify alike. A
//! layer that several of the run's images list is unpacked once and replayed into the others
//! (`unpack::SharedLayers`).

use crate::config::{Check, CpuMode};
use crate::error::{Error, Result};
use crate::oci::digest::Digest;
use crate::oci::image::{self, Descriptor};
use crate::oci::index::{self, Platform as OciPlatform};
use crate::oci::layout::{IndexWalk, Layout, MAX_JSON_BLOB};
use crate::oci::unpack::{self, LayerInput, SharedLayers, SharedStats, UnpackOptions};
use crate::platform::{Libc, Platform};
use crate::ui::Ui;
use crate::verify::checks::{self, CheckResult, Policy, Subject};
use crate::verify::qemu::{Guest, Isolation};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::ops::Not;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One platform image to verify.
#[derive(Debug, Clone)]
pub struct Item {
    /// The plan's repository (`localhost/app`, with `variant` set) or the reference the user
    /// gave.
    pub image: String,
    pub variant: Option<Libc>,
    pub layout: PathBuf,
    pub manifest: Descriptor,
    /// The platform the index entry claims (None: a single image, read from its config).
    pub index_platform: Option<OciPlatform>,
}

/// An image for people: `repository (variant)`, or the reference as given.
pub fn shown(image: &str, variant: Option<Libc>) -> String {
    match variant {
        Some(v) => format!("{image} ({v})"),
        None => image.to_string(),
    }
}

/// Settings for a verification run.
pub struct Settings {
    pub checks: Vec<Check>,
    pub policy: Policy,
    pub cpu: CpuMode,
    pub jobs: usize,
    /// The output dir whose `cache/verified.json` remembers passed verifications, keyed by the
    /// manifest digest, what the pipeline says the image is (variant, index platform) and
    /// everything that decides the outcome (checks, policy, CPU mode, sandbox, shipit version).
    /// Same bytes + same checks = same answer, so `release` and `publish` reuse it and report it
    /// as cached without running anything; `shipit verify` always runs afresh (None).
    pub cache: Option<std::path::PathBuf>,
    /// The run's cancel token: no new platform starts once it is set, and guests are stopped.
    pub cancel: crate::exec::Cancel,
    /// Verifications of this run that passed before the stage, under their cache key (the
    /// pipeline verifies a target's images while later targets still build: `stage::early`),
    /// and the one still running. An item that passed there is not verified again; it is
    /// reported as verified in this run (not cached), and cached like any other pass. The
    /// image still running there is waited for beside the others, and verified here if it
    /// did not pass.
    pub earlier: Box<dyn Earlier>,
}

/// Verifications of this run made before the verify stage, as that stage sees them: the early
/// work (`stage::early`, which implements this) or a plain map of passes.
pub trait Earlier: Send + Sync {
    /// The passes so far, under their cache keys.
    fn passed(&self) -> HashMap<String, PlatformReport>;
    /// Whether the work, still running, is on `image` (`variant`) for `platform`: its pass
    /// comes from [`Earlier::finish`].
    fn holds(&self, image: &str, variant: Option<Libc>, platform: &str) -> bool;
    /// Waits for the work to end and returns every pass it made.
    fn finish(&self) -> HashMap<String, PlatformReport>;
}

/// Passes that are all in: none is still running.
impl Earlier for HashMap<String, PlatformReport> {
    fn passed(&self) -> HashMap<String, PlatformReport> {
        self.clone()
    }

    fn holds(&self, _: &str, _: Option<Libc>, _: &str) -> bool {
        false
    }

    fn finish(&self) -> HashMap<String, PlatformReport> {
        self.clone()
    }
}

/// No verification made before the stage.
pub fn none_earlier() -> Box<dyn Earlier> {
    Box::new(HashMap::new())
}

impl Settings {
    fn fingerprint(&self, isolation: Isolation) -> String {
        let text = format!(
            "{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}",
            self.checks,
            self.cpu,
            self.policy.glibc_floor,
            self.policy.allow_root,
            self.policy.max_size,
            isolation,
            env!("CARGO_PKG_VERSION")
        );
        crate::oci::digest::Digest::of(text.as_bytes()).to_string()
    }

    /// `item`'s cache key under these settings, in this run's sandbox.
    pub(super) fn key(&self, item: &Item) -> String {
        cache_key(item, &self.fingerprint(Isolation::detect(&self.cancel)))
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PlatformReport {
    /// The image repository of the plan, or the reference the user gave.
    pub image: String,
    /// The plan's libc variant of the image (`null` for an image given by reference).
    #[serde(default)]
    pub variant: Option<Libc>,
    pub platform: String,
    pub digest: String,
    pub compressed_size: u64,
    pub passed: bool,
    pub seconds: f64,
    pub isolation: Option<Isolation>,
    pub checks: Vec<CheckResult>,
    /// Reused from an earlier verification of the same bytes with the same settings.
    #[serde(default)]
    pub cached: bool,
    /// Verified in this run while other targets were still building (`stage::early`).
    #[serde(default, skip_serializing_if = "Not::not")]
    pub early: bool,
    /// The highest `GLIBC_x.y` the binary and its libraries need (`checks::glibc_required`),
    /// for the verification attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc_required: Option<String>,
}

impl PlatformReport {
    /// The image for people: `localhost/app (gnu)`, or the reference as given.
    pub fn shown(&self) -> String {
        shown(&self.image, self.variant)
    }

    /// A report read from the cache, shown for `item`: marked cached, each check too.
    fn reused(mut self, item: &Item) -> PlatformReport {
        self.cached = true;
        self.early = false;
        self.image = item.image.clone();
        self.variant = item.variant;
        for c in &mut self.checks {
            c.cached = true;
        }
        self
    }
}

/// Whether `r`, found under `item`'s key, is a pass of `item`'s very bytes.
fn passes(r: &PlatformReport, item: &Item) -> bool {
    r.passed && r.digest == item.manifest.digest.as_str()
}

/// The cache key of an item: the manifest digest (the image's bytes: config and layers are
/// addressed by it), what the pipeline says the image is (its variant and the index entry's
/// platform, which the static checks compare against), and the settings' fingerprint.
fn cache_key(item: &Item, fingerprint: &str) -> String {
    format!(
        "{}|{}|{}|{fingerprint}",
        item.manifest.digest,
        item.variant.map_or("-", |v| v.name()),
        item.index_platform
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.to_string()),
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub passed: bool,
    pub platforms: Vec<PlatformReport>,
    /// Layers several of the verified images share, and how often each was unpacked: once,
    /// then replayed into the other images' rootfs.
    pub layers: SharedStats,
}

const MAX_JSON: u64 = MAX_JSON_BLOB;

/// The platform images under an index or manifest descriptor of a layout: nested indexes are
/// followed within the layout's limits (`MAX_INDEX_DEPTH` levels, `MAX_INDEX_ENTRIES` entries
/// per index, `MAX_PLATFORM_IMAGES` images), each index is read once, and an image listed twice
/// with the same platform is verified once.
pub fn items_from_descriptor(
    layout_dir: &Path,
    image: &str,
    variant: Option<Libc>,
    desc: &Descriptor,
) -> Result<Vec<Item>> {
    let layout = Layout::open(layout_dir)?;
    if !index::is_index_media_type(&desc.media_type) {
        return Ok(vec![Item {
            image: image.to_string(),
            variant,
            layout: layout_dir.to_path_buf(),
            manifest: desc.clone(),
            index_platform: None,
        }]);
    }
    let mut walk = IndexWalk::default();
    let mut out = Vec::new();
    let item = |m: &Descriptor| Item {
        image: image.to_string(),
        variant,
        layout: layout_dir.to_path_buf(),
        index_platform: m.platform.clone(),
        manifest: m.clone(),
    };
    collect(&layout, desc, 1, &mut walk, &mut |m| out.push(item(m)))
        .map_err(|e| Error::stage(format!("{image}: {e}")))?;
    if out.is_empty() {
        return Err(Error::stage(format!(
            "{image}: the index lists no platform image"
        )));
    }
    Ok(out)
}

/// Walks the index `desc` (at `depth`), handing each platform image to `push` once.
fn collect(
    layout: &Layout,
    desc: &Descriptor,
    depth: usize,
    walk: &mut IndexWalk,
    push: &mut dyn FnMut(&Descriptor),
) -> std::result::Result<(), String> {
    let Some(bytes) = walk.enter(layout, desc, depth).map_err(|e| e.to_string())? else {
        return Ok(()); // this index was walked already
    };
    unpack::check_manifest_document(&bytes, &desc.media_type).map_err(|e| e.to_string())?;
    let idx = index::parse(&bytes).map_err(|e| e.to_string())?;
    walk.check_entries(desc, &idx).map_err(|e| e.to_string())?;
    for m in &idx.manifests {
        // Attestation manifests (buildx) carry unknown/unknown: not a platform to run.
        if m.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
        {
            continue;
        }
        if index::is_index_media_type(&m.media_type) {
            collect(layout, m, depth + 1, walk, push)?;
        } else if walk.image(m).map_err(|e| e.to_string())? {
            push(m);
        }
    }
    Ok(())
}

/// `oci:DIR[:TAG]`: the tagged image, or the only image of the layout.
pub fn items_from_oci(spec: &str) -> Result<Vec<Item>> {
    // A layout named on the command line that cannot be read is a usage error (exit 2), not a
    // failed verification: `Error::config` on purpose, where a layout shipit wrote is exit 1.
    let r = crate::oci::layout::parse_oci_ref(spec).map_err(|e| Error::config(format!("{e}")))?;
    let layout = Layout::open(&r.path).map_err(|e| Error::config(format!("{spec}: {e}")))?;
    let desc = match &r.tag {
        Some(t) => layout
            .resolve(t)
            .map_err(|e| Error::config(format!("{spec}: {e}")))?,
        None => {
            let entries = layout
                .entries()
                .map_err(|e| Error::config(format!("{spec}: {e}")))?;
            match entries.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::config(format!("{spec}: the layout holds no image"))),
                many => {
                    let tags: Vec<&str> = many
                        .iter()
                        .filter_map(|d| d.annotation("org.opencontainers.image.ref.name"))
                        .collect();
                    return Err(Error::config(format!(
                        "{spec}: the layout holds {} images: name one as oci:PATH:TAG (tags: {})",
                        many.len(),
                        tags.join(", ")
                    )));
                }
            }
        }
    };
    items_from_descriptor(&r.path, spec, None, &desc)
}

/// Verifies every item; platforms run in parallel.
pub fn run(items: &[Item], settings: &Settings, ui: &Ui) -> Result<Report> {
    let isolation = Isolation::detect(&settings.cancel);
    if isolation == Isolation::Prefix {
        ui.warn(format!("verification sandbox: {}", isolation.describe()));
    }
    ui.step(format!(
        "verify {} platform image{} ({})",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        isolation.describe()
    ));
    let fingerprint = settings.fingerprint(isolation);
    let mut cache = settings
        .cache
        .as_ref()
        .map(|out| crate::cache::Cache::open(out, "verified"));
    let key = |item: &Item| cache_key(item, &fingerprint);
    let results: Mutex<Vec<(usize, PlatformReport)>> = Mutex::new(Vec::new());
    // Take what passed earlier in this run; reuse what passed before with the same bytes and
    // the same checks; wait for what is still being verified early; verify the rest.
    // What the early work holds is read before what it passed: it records a pass before it lets
    // go of the image, so an image is found in one or the other.
    let holds: Vec<bool> = items
        .iter()
        .map(|item| {
            platform_of(item)
                .is_some_and(|p| settings.earlier.holds(&item.image, item.variant, p.name))
        })
        .collect();
    let earlier = settings.earlier.passed();
    let take_early = |i: usize, r: &PlatformReport| {
        let mut r = r.clone();
        r.early = true;
        print_platform(&r, ui);
        results.lock().map(|mut v| v.push((i, r))).ok();
    };
    let mut todo: Vec<usize> = Vec::new();
    let mut held: Vec<usize> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(r) = earlier.get(&key(item))
            && passes(r, item)
        {
            take_early(i, r);
            continue;
        }
        match cache
            .as_ref()
            .and_then(|c| c.get::<PlatformReport>(&key(item)))
        {
            Some(r) if passes(&r, item) => {
                let r = r.reused(item);
                print_platform(&r, ui);
                results.lock().map(|mut v| v.push((i, r))).ok();
            }
            _ if holds[i] => held.push(i),
            _ => todo.push(i),
        }
    }
    // Emulated platforms first: their checks take longest (QEMU), so they start while the
    // native ones wait for a shared layer, not after (longest job first).
    todo.sort_by_key(|&i| emulated(&items[i]).not());
    let jobs = settings.jobs.clamp(1, todo.len().max(1));
    // Each manifest read once, for the room to unpack in and the shared layers (an image that
    // cannot be read here is left to `verify_one`, which reports why).
    let all: Vec<usize> = todo.iter().chain(&held).copied().collect();
    let manifests: Vec<(usize, image::Manifest)> = all
        .iter()
        .filter_map(|&i| read_image(&items[i]).ok().map(|(_, m, _, _)| (i, m)))
        .collect();
    let scratch =
        crate::verify::scratch::parent_for(unpack_estimate(items, &all, &manifests), jobs);
    if !todo.is_empty() {
        ui.verbose(format!("  unpacking into {}", scratch.shown));
    }
    let shared = shared_layers(items, &manifests, &scratch.dir, ui)?;
    let next = AtomicUsize::new(0);
    let verify_here = |i: usize| {
        let r = verify_one(
            &items[i],
            settings,
            isolation,
            shared.as_ref(),
            &scratch,
            ui,
        );
        print_platform(&r, ui);
        results.lock().map(|mut v| v.push((i, r))).ok();
    };
    std::thread::scope(|s| {
        // What the early work still holds: its pass is taken when it comes; what did not pass
        // there is verified here (on this extra thread, after the work ended).
        if !held.is_empty() {
            s.spawn(|| {
                let earlier = settings.earlier.finish();
                for &i in &held {
                    match earlier.get(&key(&items[i])) {
                        Some(r) if passes(r, &items[i]) => take_early(i, r),
                        _ if settings.cancel.is_cancelled() => break,
                        _ => verify_here(i),
                    }
                }
            });
        }
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(&i) = todo.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if settings.cancel.is_cancelled() {
                        break;
                    }
                    verify_here(i);
                }
            });
        }
    });
    settings.cancel.check()?;
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    if let Some(c) = cache.as_mut() {
        for (i, r) in &results {
            if r.passed && !r.cached {
                c.put(&key(&items[*i]), r);
            }
        }
        c.save();
    }
    let platforms: Vec<PlatformReport> = results.into_iter().map(|(_, r)| r).collect();
    let layers = shared.map(|s| s.stats()).unwrap_or_default();
    if layers.shared > 0 {
        ui.verbose(format!(
            "  shared layers: {} listed by several images, {} unpacked, {} reused",
            layers.shared, layers.unpacked, layers.reused
        ));
    }
    Ok(Report {
        passed: platforms.iter().all(|p| p.passed),
        platforms,
        layers,
    })
}

/// Verifies one item ahead of the verify stage (`stage::early`), with `settings` (whose cache
/// is neither read nor written here): its key and report for [`Settings::earlier`] when it
/// passed. A failure is not kept: the verify stage runs that item again.
pub fn ahead(item: &Item, settings: &Settings, ui: &Ui) -> Option<(String, PlatformReport)> {
    let report = run(std::slice::from_ref(item), settings, ui).ok()?;
    let r = report.platforms.into_iter().next()?;
    r.passed.then(|| (settings.key(item), r))
}

/// Whether `out`'s verification cache holds a pass of `item` with `settings`' checks: the verify
/// stage will reuse it, so there is nothing to verify ahead.
pub fn is_cached(item: &Item, settings: &Settings, out: &Path) -> bool {
    crate::cache::Cache::open(out, "verified")
        .get::<PlatformReport>(&settings.key(item))
        .is_some_and(|r| passes(&r, item))
}

/// The item's platform as its index entry claims it, when shipit knows it.
fn platform_of(item: &Item) -> Option<&'static Platform> {
    item.index_platform
        .as_ref()
        .and_then(|p| Platform::from_oci(&p.os, &p.architecture, p.variant.as_deref()))
}

/// Whether the item's platform (as its index entry claims it) runs under QEMU here; false
/// when unknown.
fn emulated(item: &Item) -> bool {
    platform_of(item).is_some_and(|p| !p.is_native())
}

/// What the images to verify (`todo`, of which `manifests` could be read) could take once
/// unpacked, in compressed bytes (the scratch rule multiplies it): their layers, plus a QEMU
/// binary (~13 MB) copied into each emulated one.
fn unpack_estimate(items: &[Item], todo: &[usize], manifests: &[(usize, image::Manifest)]) -> u64 {
    let layers = manifests
        .iter()
        .flat_map(|(_, m)| m.layers.iter().map(|l| l.size))
        .fold(0u64, u64::saturating_add);
    let qemu = todo.iter().filter(|&&i| emulated(&items[i])).count() as u64 * (16 << 20);
    layers.saturating_add(qemu)
}

/// The layers more than one of the images to verify list (the same blob of the same layout),
/// to be unpacked once each; None when they share none.
fn shared_layers(
    items: &[Item],
    manifests: &[(usize, image::Manifest)],
    scratch: &Path,
    ui: &Ui,
) -> Result<Option<Arc<SharedLayers>>> {
    let mut users: HashMap<(PathBuf, Digest), usize> = HashMap::new();
    for (i, manifest) in manifests {
        let i = *i;
        let layers: HashSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
        for d in layers {
            *users
                .entry((items[i].layout.clone(), d.clone()))
                .or_default() += 1;
        }
    }
    let share: HashSet<Digest> = users
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((_, d), _)| d)
        .collect();
    if share.is_empty() {
        return Ok(None);
    }
    ui.verbose(format!(
        "  {} layer{} shared by several images: each unpacked once",
        share.len(),
        if share.len() == 1 { "" } else { "s" }
    ));
    let shared = SharedLayers::new(share, Some(scratch)).map_err(|e| {
        Error::stage(format!(
            "verify: cannot create a private temporary directory for shared layers in {}: {e}; check TMPDIR",
            scratch.display()
        ))
    })?;
    Ok(Some(Arc::new(shared)))
}

fn failed(
    item: &Item,
    platform: &str,
    start: Instant,
    name: &str,
    detail: String,
    fix: &str,
) -> PlatformReport {
    PlatformReport {
        image: item.image.clone(),
        variant: item.variant,
        platform: platform.to_string(),
        digest: item.manifest.digest.to_string(),
        compressed_size: 0,
        passed: false,
        seconds: start.elapsed().as_secs_f64(),
        isolation: None,
        cached: false,
        early: false,
        glibc_required: None,
        checks: vec![CheckResult {
            name: name.into(),
            passed: false,
            seconds: start.elapsed().as_secs_f64(),
            detail: Some(detail),
            fix: Some(fix.into()),
            cached: false,
        }],
    }
}

/// What `read_image` hands on: the layout, the manifest, the config and its `rootfs.diff_ids`
/// (one per layer, checked).
type ImageParts = (Layout, image::Manifest, serde_json::Value, Vec<Digest>);

/// The layout, manifest and config of an item, each checked; on failure (what, what to do).
fn read_image(item: &Item) -> std::result::Result<ImageParts, (String, &'static str)> {
    let layout =
        Layout::open(&item.layout).map_err(|e| (e.to_string(), "check the layout path"))?;
    let bytes = layout.read_blob(&item.manifest, MAX_JSON).map_err(|e| {
        (
            e.to_string(),
            "the manifest blob is missing or corrupt: package again",
        )
    })?;
    unpack::check_manifest_document(&bytes, &item.manifest.media_type)
        .map_err(|e| (e.to_string(), "the manifest is ambiguous or mislabelled"))?;
    let manifest =
        image::parse_manifest(&bytes).map_err(|e| (e.to_string(), "not an image manifest"))?;
    let config = layout
        .read_blob(&manifest.config, MAX_JSON)
        .map_err(|e| e.to_string())
        .and_then(|b| image::parse_config(&b).map_err(|e| e.to_string()))
        .map_err(|e| (e, "the config blob is missing or corrupt"))?;
    let diff_ids = config_rootfs(&config, manifest.layers.len()).map_err(|e| {
        (
            format!("image config {}: {e}", manifest.config.digest),
            "the config does not describe the manifest's layers (runtimes refuse such an image; \
             umoci panics on it): rebuild the image",
        )
    })?;
    Ok((layout, manifest, config, diff_ids))
}

/// The config's `rootfs`, checked against the manifest: `type` must be `layers` and `diff_ids`
/// must list one uncompressed digest per manifest layer, in order, since that is how a runtime
/// pairs each layer with the digest its unpacked tar must have.
fn config_rootfs(
    config: &serde_json::Value,
    layers: usize,
) -> std::result::Result<Vec<Digest>, String> {
    let rootfs = &config["rootfs"];
    match rootfs["type"].as_str() {
        Some("layers") => {}
        Some(other) => return Err(format!("rootfs.type is {other:?}, not \"layers\"")),
        None => return Err("rootfs.type is missing (it must be \"layers\")".into()),
    }
    if rootfs.get("diff_ids").is_none_or(|d| d.is_null()) {
        return Err("rootfs.diff_ids is missing".into());
    }
    let diff_ids = image::config_diff_ids(config).map_err(|e| e.to_string())?;
    if diff_ids.len() != layers {
        return Err(format!(
            "rootfs.diff_ids lists {} layer digest{} but the manifest has {layers} layer{}",
            diff_ids.len(),
            if diff_ids.len() == 1 { "" } else { "s" },
            if layers == 1 { "" } else { "s" },
        ));
    }
    Ok(diff_ids)
}

fn verify_one(
    item: &Item,
    settings: &Settings,
    isolation: Isolation,
    shared: Option<&Arc<SharedLayers>>,
    scratch: &crate::verify::scratch::Scratch,
    ui: &Ui,
) -> PlatformReport {
    let start = Instant::now();
    let claimed = item
        .index_platform
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "?".into());
    let (layout, manifest, config, diff_ids) = match read_image(item) {
        Ok(x) => x,
        Err((detail, fix)) => return failed(item, &claimed, start, "image", detail, fix),
    };
    let cfg_platform = image::config_platform(&config).ok();
    let oci_p = item.index_platform.clone().or(cfg_platform);
    let Some(platform) = oci_p
        .as_ref()
        .and_then(|p| Platform::from_oci(&p.os, &p.architecture, p.variant.as_deref()))
    else {
        return failed(
            item,
            &claimed,
            start,
            "platform",
            format!("platform {claimed} is not one shipit knows"),
            &format!("supported: {}", Platform::known_names().join(", ")),
        );
    };
    let compressed_size =
        manifest.layers.iter().map(|l| l.size).sum::<u64>() + manifest.config.size;
    let mut layers = Vec::new();
    for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
        layers.push(LayerInput {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            blob: layout.blob_path(&l.digest),
            diff_id: Some(diff_id),
        });
    }
    let mut report = PlatformReport {
        image: item.image.clone(),
        variant: item.variant,
        platform: platform.name.to_string(),
        digest: item.manifest.digest.to_string(),
        compressed_size,
        passed: false,
        seconds: 0.0,
        isolation: Some(isolation),
        checks: Vec::new(),
        cached: false,
        early: false,
        glibc_required: None,
    };
    // A private 0700 parent keeps other users out; the rootfs itself becomes 0755 so the image's
    // (non-root) user can traverse it inside the chroot.
    let private_dir = |under: &Path| {
        tempfile::Builder::new()
            .prefix("shipit-verify-")
            .tempdir_in(under)
    };
    let mut parent = match private_dir(&scratch.dir) {
        Ok(d) => d,
        Err(e) => {
            return failed(
                item,
                platform.name,
                start,
                "unpack",
                format!("{}: {e}", scratch.dir.display()),
                "check the temp directory (TMPDIR)",
            );
        }
    };
    let mut opts = UnpackOptions {
        parent: Some(parent.path().to_path_buf()),
        cancel: settings.cancel.clone(),
        shared: shared.cloned(),
        ..UnpackOptions::default()
    };
    if let Some(cap) = scratch.cap {
        opts.limits.max_total_bytes = opts.limits.max_total_bytes.min(cap);
    }
    let t = Instant::now();
    let mut unpacked = unpack::unpack_image(&layers, &opts);
    // On tmpfs, any failure (too big for the room there, out of space, or a refused entry)
    // is tried once more on disk with the usual limits: the tmpfs only ever speeds things up.
    if unpacked.is_err()
        && !settings.cancel.is_cancelled()
        && let Some(disk) = scratch.fallback()
        && let Ok(d) = private_dir(&disk)
    {
        ui.verbose(format!(
            "  {}: unpacking on tmpfs failed ({}); unpacking again under {}",
            platform.name,
            unpacked
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
            disk.display()
        ));
        parent = d;
        opts.parent = Some(parent.path().to_path_buf());
        opts.limits = unpack::Limits::default();
        unpacked = unpack::unpack_image(&layers, &opts);
    }
    let rootfs = match unpacked {
        Ok(r) => r,
        Err(e) => {
            report.checks.push(CheckResult {
                name: "unpack".into(),
                passed: false,
                seconds: t.elapsed().as_secs_f64(),
                detail: Some(e.to_string()),
                fix: Some(
                    "the image's layers break the unpack rules: rebuild it from trusted inputs"
                        .into(),
                ),
                cached: false,
            });
            report.seconds = start.elapsed().as_secs_f64();
            return report;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o755));
    }
    // What was skipped or stripped instead of refused (device nodes, setuid bits...) is shown,
    // so a neutralised entry is never silent.
    let reused = rootfs.report().layers_reused;
    let mut detail = format!(
        "{} layers{}, {} entries",
        layers.len(),
        if reused > 0 {
            format!(" ({reused} shared, unpacked once for this run)")
        } else {
            String::new()
        },
        rootfs.report().entries_written
    );
    for n in &rootfs.report().neutralised {
        detail.push_str(&format!("\n{n}"));
    }
    report.checks.push(CheckResult {
        name: "unpack".into(),
        passed: true,
        seconds: t.elapsed().as_secs_f64(),
        detail: Some(detail),
        fix: None,
        cached: false,
    });
    let subject = Subject {
        platform,
        libc: item.variant,
        root: rootfs.path(),
        config: &config,
        index_platform: item.index_platform.clone(),
        compressed_size,
    };
    let (statics, runnable) = checks::static_checks(&subject, &settings.policy);
    report.checks.extend(statics);
    report.glibc_required = checks::glibc_required(&subject).map(|v| v.to_string());
    // Dynamic checks run even after a static failure (they show how it fails at run time),
    // unless there is nothing runnable for this machine.
    if runnable && let Ok(argv) = checks::entry_argv(&subject) {
        let (uid, gid, _) = checks::image_user(rootfs.path(), &config);
        let guest = Guest {
            root: rootfs.path().to_path_buf(),
            platform,
            cpu: match settings.cpu {
                CpuMode::Strict => platform.strict_cpu.map(str::to_string),
                CpuMode::Max => None,
            },
            native: platform.is_native(),
            isolation,
            uid,
            gid,
            env: checks::image_env(&config),
            workdir: config["config"]["WorkingDir"]
                .as_str()
                .filter(|w| !w.is_empty())
                .unwrap_or("/")
                .to_string(),
            cancel: settings.cancel.clone(),
        };
        if let Err(e) = guest.install_qemu() {
            report.checks.push(CheckResult {
                name: "qemu".into(),
                passed: false,
                seconds: 0.0,
                detail: Some(e),
                fix: Some("run `shipit doctor --fix`".into()),
                cached: false,
            });
        } else {
            for c in &settings.checks {
                ui.verbose(format!(
                    "  $ {}    # check `{}` on {}",
                    checks::check_command(&guest, &argv, c).display(),
                    c.name,
                    platform.name
                ));
                report
                    .checks
                    .push(checks::run_check(&guest, &argv, c, parent.path()));
            }
        }
    }
    drop(rootfs);
    report.passed = report.checks.iter().all(|c| c.passed);
    report.seconds = start.elapsed().as_secs_f64();
    report
}

fn print_platform(r: &PlatformReport, ui: &Ui) {
    if ui.github {
        for c in r.checks.iter().filter(|c| !c.passed) {
            let msg = format!(
                "{} ({}): check `{}` failed: {}{}",
                r.platform,
                r.shown(),
                c.name,
                c.detail.as_deref().unwrap_or(""),
                c.fix
                    .as_deref()
                    .map(|f| format!(" — fix: {f}"))
                    .unwrap_or_default()
            );
            ui.github_error(&msg);
        }
    }
    if ui.quiet {
        return;
    }
    let mark = match (r.passed, r.cached) {
        (true, true) => "ok (cached: verified before with the same bytes and checks)",
        (true, false) => "ok",
        _ => "FAILED",
    };
    eprintln!(
        "  {mark} {} {} ({}, {:.2}s{})",
        r.platform,
        r.shown(),
        &r.digest[..19.min(r.digest.len())],
        r.seconds,
        if r.early {
            ", while other targets built"
        } else {
            ""
        }
    );
    for c in &r.checks {
        if c.passed {
            if ui.verbose {
                eprintln!(
                    "      pass {:<12} {:.3}s  {}",
                    c.name,
                    c.seconds,
                    c.detail.as_deref().unwrap_or("")
                );
            }
        } else {
            eprintln!("      FAIL {:<12} {:.3}s", c.name, c.seconds);
            if let Some(d) = &c.detail {
                for l in d.lines() {
                    eprintln!("           {l}");
                }
            }
            if let Some(f) = &c.fix {
                eprintln!("           fix: {f}");
            }
        }
    }
}

/// The error for a report with failures (exit 1).
pub fn failure(report: &Report) -> Option<Error> {
    let failed: Vec<String> = report
        .platforms
        .iter()
        .filter(|p| !p.passed)
        .map(|p| {
            let names: Vec<&str> = p
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect();
            format!("{} ({}): {}", p.platform, p.shown(), names.join(", "))
        })
        .collect();
    (!failed.is_empty()).then(|| {
        Error::stage(format!(
            "verification failed for {} platform image{}: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join("; ")
        ))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::verify::checks::Policy;

    pub(in crate::stage) fn settings(cpu: CpuMode) -> Settings {
        Settings {
            checks: Vec::new(),
            policy: Policy {
                glibc_floor: None,
                allow_root: false,
                max_size: None,
            },
            cpu,
            jobs: 1,
            cache: None,
            cancel: crate::exec::Cancel::new(),
            earlier: none_earlier(),
        }
    }

    /// An image in a layout that does not exist: verifying it fails at once.
    pub(in crate::stage) fn item(digest_of: &[u8]) -> Item {
        let mut manifest = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            Digest::of(digest_of),
            100,
        );
        manifest.platform = Some(OciPlatform::new("linux", "amd64", None));
        Item {
            image: "localhost/app".into(),
            variant: Some(Libc::Musl),
            layout: PathBuf::from("/nonexistent/shipit-test-layout"),
            index_platform: manifest.platform.clone(),
            manifest,
        }
    }

    /// A passed report of `item`, as the early verification leaves it.
    pub(in crate::stage) fn passed(item: &Item) -> PlatformReport {
        PlatformReport {
            image: item.image.clone(),
            variant: item.variant,
            platform: "linux/amd64".into(),
            digest: item.manifest.digest.to_string(),
            compressed_size: 100,
            passed: true,
            seconds: 0.5,
            isolation: None,
            checks: Vec::new(),
            cached: false,
            early: false,
            glibc_required: None,
        }
    }

    fn early_pass(key: String, r: PlatformReport) -> Box<dyn Earlier> {
        Box::new(HashMap::from([(key, r)]))
    }

    #[test]
    fn an_early_pass_is_taken_only_for_the_same_bytes_and_checks() {
        let ui = Ui::default();
        let it = item(b"image");

        // The same digest, variant, platform and checks: taken as verified in this run.
        let mut s = settings(CpuMode::Strict);
        s.earlier = early_pass(s.key(&it), passed(&it));
        let r = run(std::slice::from_ref(&it), &s, &ui).unwrap();
        assert!(r.passed, "{r:?}");
        assert!(r.platforms[0].early && !r.platforms[0].cached);
        assert_eq!(r.platforms[0].seconds, 0.5);

        // Other checks (another CPU mode): verified afresh, and this image cannot be read.
        let mut other = settings(CpuMode::Max);
        other.earlier = early_pass(s.key(&it), passed(&it));
        let r = run(std::slice::from_ref(&it), &other, &ui).unwrap();
        assert!(!r.passed && !r.platforms[0].early, "{r:?}");

        // Other bytes under the same key: not taken either.
        let mut s = settings(CpuMode::Strict);
        s.earlier = early_pass(s.key(&it), passed(&item(b"other image")));
        let r = run(std::slice::from_ref(&it), &s, &ui).unwrap();
        assert!(!r.passed, "{r:?}");

        // The same bytes said to be another variant, or another platform: not taken.
        let mut s = settings(CpuMode::Strict);
        s.earlier = early_pass(s.key(&it), passed(&it));
        let mut gnu = it.clone();
        gnu.variant = Some(Libc::Gnu);
        let mut arm = it.clone();
        arm.index_platform = Some(OciPlatform::new("linux", "arm64", None));
        for other in [gnu, arm] {
            let r = run(std::slice::from_ref(&other), &s, &ui).unwrap();
            assert!(!r.passed && !r.platforms[0].early, "{r:?}");
        }

        // A failure is never kept for the stage.
        let s = settings(CpuMode::Strict);
        assert!(ahead(&it, &s, &ui).is_none());
    }
}
