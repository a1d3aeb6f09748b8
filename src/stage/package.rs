//! `shipit package`: each built binary becomes a single-platform OCI image, and each libc variant
//! one multi-arch index, written daemonless into the OCI layout `dist/oci`. The same inputs give
//! the same digests. An image is its base's layers, then shipit's layers ordered by what they
//! depend on: first the platform-independent layer (`image.files`; left out when empty), the same
//! bytes on every platform and variant and so made, stored and uploaded once; then the
//! platform's own layer (the binary, and `/etc/passwd` + `/etc/group` when the base has none);
//! then config + manifest.
//!
//! Packaging moves no release tag: the layout gets staging refs only (`staging-<libc>` for the
//! index, `staging-<libc>-<os>-<arch>[-<variant>]` per platform); `publish` adds the release tags
//! after every platform passed verification. `dist/package.json` records every digest.

use super::deb_base::DebBases;
use super::image_rules::{
    BaseImage, image_labels, index_annotations, manifest_annotations, oci_platform, passwd_group,
};
use crate::config::{Base, Config};
use crate::error::{Context, Error, Result};
use crate::exec::Cancel;
use crate::oci::image::{self, Descriptor, ImageSpec};
use crate::oci::index;
use crate::oci::layer::{Entry, LayerDigests};
use crate::oci::layout::Layout;
use crate::plan::{ImagePlan, Plan, PlatformPlan};
use crate::platform::Libc;
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What `package` made, as recorded in `dist/package.json` (read by verify and publish).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Packaged {
    pub version: String,
    pub layout: PathBuf,
    pub images: Vec<PackagedImage>,
    /// `Plan::package_digest` of the plan these images were made from; publish and verify
    /// refuse them when the current plan's differs.
    #[serde(default)]
    pub plan_digest: String,
    /// `Plan::package_facts` of that plan (what the refusal says changed).
    #[serde(default)]
    pub plan: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackagedImage {
    pub variant: Libc,
    pub repository: String,
    /// The release tags publish will move (not moved by package).
    pub tags: Vec<String>,
    pub staging_ref: String,
    pub index: Descriptor,
    pub platforms: Vec<PackagedPlatform>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackagedPlatform {
    pub platform: String,
    pub target: String,
    pub staging_ref: String,
    pub manifest: Descriptor,
    /// Layers + config, as a pull downloads them.
    pub compressed_size: u64,
    /// The `deb:SUITE` base: suite, architecture, installed packages and the lock's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deb_base: Option<super::deb_base::DebBaseRecord>,
    /// The base image (name and this platform's manifest digest); none on scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseImage>,
}

/// The staging ref of an image variant's index.
pub fn staging_ref(libc: Libc) -> String {
    format!("staging-{}", libc.name())
}

/// Packages every planned image; `lock` says how `deb:` bases treat `pipeline.lock`.
pub fn run(
    cfg: &Config,
    plan: &Plan,
    lock: crate::deb::LockMode,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Packaged> {
    let bases = super::deb_base::prepare(cfg, plan, lock, cancel, ui)?;
    let layout_dir = plan.out_dir.join("oci");
    // A signal stops the layer writer and blob copies within a few MiB; their temporary blobs
    // are removed and no ref is written.
    let layout = Layout::create(&layout_dir)?.with_cancel(cancel);
    ui.step(format!(
        "package {} image{} into {}",
        plan.images.len(),
        if plan.images.len() == 1 { "" } else { "s" },
        layout_dir.display()
    ));
    let mut images = Vec::new();
    // The platform-independent layer is made once per run, whichever image needs it first.
    let shared = SharedLayers::default();
    for img in &plan.images {
        cancel.check()?;
        images.push(package_image(
            cfg, plan, img, &layout, &bases, &shared, cancel, ui,
        )?);
    }
    cancel.check()?;
    let mut packaged = Packaged {
        version: plan.version.to_string(),
        layout: layout_dir,
        images,
        plan_digest: plan.package_digest.clone(),
        plan: plan.package_facts.clone(),
    };
    // A run for some variants keeps what an earlier run of the same plan made for the others
    // (`package --variant gnu`, then `--variant musl`). The caller holds the dist/ lock.
    if let Ok(earlier) = load(&plan.out_dir)
        && earlier.plan_digest == packaged.plan_digest
        && earlier.layout == packaged.layout
    {
        let kept: Vec<PackagedImage> = earlier
            .images
            .into_iter()
            .filter(|e| !packaged.images.iter().any(|i| i.variant == e.variant))
            .collect();
        packaged.images.extend(kept);
        packaged
            .images
            .sort_by_key(|i| cfg.variants.iter().position(|v| v.libc == i.variant));
    }
    let path = plan.out_dir.join("package.json");
    let text = serde_json::to_string_pretty(&packaged)?;
    write_atomically(&path, (text + "\n").as_bytes())?;
    Ok(packaged)
}

/// Writes `path` through a temporary file in its directory and a rename: a reader sees the old
/// file or the new one, and an interrupted write leaves no half file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: std::io::Error| Error::io(path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-shipit-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    publishable(tmp.as_file()).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Gives a file shipit writes for people and other tools to read (a report, an archive,
/// `SHA256SUMS`) mode 0644: a temporary file is created 0600, which a web server or another
/// user uploading the release could not read.
pub fn publishable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[allow(clippy::too_many_arguments)]
fn package_image(
    cfg: &Config,
    plan: &Plan,
    img: &ImagePlan,
    layout: &Layout,
    bases: &DebBases,
    shared: &SharedLayers,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<PackagedImage> {
    let mut entries = Vec::new();
    let mut platforms = Vec::new();
    // Native images of different platforms are independent: make them side by side (their
    // blobs land atomically, shared base blobs included); staging tags follow in plan order.
    let made: Vec<Result<(Descriptor, u64, Option<BaseImage>)>> = match cfg.package {
        crate::config::Packager::Docker => img
            .platforms
            .iter()
            .map(|p| {
                super::package_docker::package_platform(cfg, plan, img, p, layout, bases, cancel)
            })
            .collect(),
        crate::config::Packager::Native => std::thread::scope(|s| {
            let handles: Vec<_> = img
                .platforms
                .iter()
                .map(|p| {
                    s.spawn(move || {
                        package_platform(cfg, plan, img, p, layout, bases, shared, cancel, ui.json)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::stage("a packaging thread panicked")))
                })
                .collect()
        }),
    };
    for (p, made) in img.platforms.iter().zip(made) {
        let (desc, size, base) = made?;
        let staging = format!("{}-{}", staging_ref(img.variant), p.spec.slug());
        layout.tag(&staging, &desc)?;
        ui.ok(format!(
            "{} ({}) {} {} bytes",
            p.platform,
            img.variant,
            desc.digest.short(),
            size
        ));
        entries.push((desc.clone(), oci_platform(p)));
        platforms.push(PackagedPlatform {
            platform: p.platform.to_string(),
            target: p.target.clone(),
            staging_ref: staging,
            manifest: desc,
            compressed_size: size,
            deb_base: bases.record(img, p),
            base,
        });
    }
    let built = index::build(&entries, &index_annotations(cfg, plan, img))
        .with_context(|| format!("index for {}", img.variant))?;
    layout.write_index(&built)?;
    let staging = staging_ref(img.variant);
    layout.tag(&staging, &built.descriptor)?;
    ui.ok(format!(
        "index {} ({}): {} platform{} → oci:{}:{}",
        img.repository,
        img.variant,
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        layout.root().display(),
        staging
    ));
    Ok(PackagedImage {
        variant: img.variant,
        repository: img.repository.clone(),
        tags: img.tags.clone(),
        staging_ref: staging,
        index: built.descriptor,
        platforms,
    })
}

/// One platform image of `img` into `layout`: its descriptor (platform set), compressed size
/// and base. Also called ahead of the package stage, while other targets build
/// (`stage::early`): the same inputs make the same bytes.
#[allow(clippy::too_many_arguments)]
pub(super) fn package_platform(
    cfg: &Config,
    plan: &Plan,
    img: &ImagePlan,
    p: &PlatformPlan,
    layout: &Layout,
    bases: &DebBases,
    shared: &SharedLayers,
    cancel: &Cancel,
    json: bool,
) -> Result<(Descriptor, u64, Option<BaseImage>)> {
    if !p.binary.exists() {
        return Err(Error::stage(format!(
            "{} ({}): no binary at {}: run `shipit build` first (or `shipit release`)",
            p.platform,
            p.libc,
            p.binary.display()
        )));
    }
    let want = oci_platform(p);
    // A registry base is pulled (its matching platform only) into the user's cache, by digest,
    // and then read like a local layout.
    let local: Option<(std::path::PathBuf, Option<String>)> = match &img.base_ref {
        Base::Scratch => None,
        Base::Oci { path, tag } => Some((path.clone(), tag.clone())),
        Base::Deb { .. } => Some(bases.require(img, p)?),
        Base::Registry(r) => Some(
            super::pull::pull_base(r, &want, cfg.publish.insecure, cancel, json)
                .with_context(|| format!("{} base {}", p.platform, r))?,
        ),
    };
    let (base, base_has_passwd, base_image) = match local {
        None => (None, false, None),
        Some((path, tag)) => {
            // The base is the pipeline's `image.base`: a layout there that cannot be read, or
            // that lacks this platform, is the config's to fix (exit 2), unlike dist/oci.
            let from = Layout::open(&path)
                .map_err(|e| Error::config(format!("{} base {}: {e}", p.platform, img.base)))?;
            let selected = from
                .select_platform(tag.as_deref(), &want)
                .map_err(|e| Error::config(format!("{} base {}: {e}", p.platform, img.base)))?;
            from.copy_image(layout, &selected.descriptor)
                .with_context(|| format!("copy base {}", img.base))?;
            let base_image = BaseImage {
                name: img.base.clone(),
                digest: selected.descriptor.digest.to_string(),
            };
            let has = selected
                .manifest
                .layers
                .iter()
                .any(|l| layer_has_passwd(&plan.out_dir, layout, l));
            (
                Some(
                    selected
                        .into_base()
                        .with_context(|| format!("base {}", img.base))?,
                ),
                has,
                Some(base_image),
            )
        }
    };
    let epoch = plan.source_date_epoch.max(0) as u64;
    let mut binary = vec![Entry::host_file(
        format!("usr/local/bin/{}", plan.project.bin),
        &p.binary,
        0o755,
    )];
    if !base_has_passwd {
        // A few hundred bytes that depend on the base (its own passwd or none): they ride
        // with the binary, so the files layer is the same for every variant too.
        let (passwd, group) = passwd_group(&cfg.image.user);
        binary.push(Entry::file("etc/passwd", passwd, 0o644));
        binary.push(Entry::file("etc/group", group, 0o644));
    }
    let files = platform_independent_entries(cfg);
    // The two layers together must be what one layer could hold: a path listed twice, or a
    // file where the other layer needs a directory, is refused as before the split.
    crate::oci::layer::check_entries(&[files.as_slice(), binary.as_slice()].concat())
        .with_context(|| format!("{} layer", p.platform))?;
    let cache_dir = plan.out_dir.join("cache").join("layers");
    let mut layers = Vec::new();
    if !files.is_empty() {
        layers.push(shared.layer(&files, || {
            // Content compressed before (same diff_id, same settings) is not compressed again.
            crate::oci::layer_cache::write_layer(layout, &files, epoch, &cache_dir)
                .map(|w| w.digests)
                .with_context(|| format!("{} files layer", p.platform))
        })?);
    }
    let written = crate::oci::layer_cache::write_layer(layout, &binary, epoch, &cache_dir)
        .with_context(|| format!("{} layer", p.platform))?;
    layers.push(written.digests);
    let annotations = manifest_annotations(cfg, plan, img, base_image.as_ref());
    let labels = image_labels(cfg, &annotations);
    let mut env = cfg.image.env.clone();
    let base_has_path = base.as_ref().is_some_and(|b| {
        b.config()["config"]["Env"].as_array().is_some_and(|e| {
            e.iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with("PATH=")))
        })
    });
    if !base_has_path && !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    let spec = ImageSpec {
        platform: want,
        user: Some(cfg.image.user.clone()),
        entrypoint: Some(img.entrypoint.clone()),
        cmd: (!cfg.image.cmd.is_empty()).then(|| cfg.image.cmd.clone()),
        env,
        exposed_ports: cfg.image.ports.iter().map(|p| p.to_string()).collect(),
        working_dir: cfg.image.workdir.clone(),
        labels,
        annotations,
        epoch,
    };
    let built = image::build(base.as_ref(), &layers, &spec)
        .with_context(|| format!("{} image", p.platform))?;
    layout.write_image(&built)?;
    let size = built.manifest.layers.iter().map(|l| l.size).sum::<u64>() + built.config.size;
    Ok((built.descriptor, size, base_image))
}

/// What goes into the platform-independent layer, ordered before each platform's own layer:
/// every `image.files` entry. The same entries on every platform and variant give the same layer
/// bytes, so the layer is compressed, stored, uploaded and unpacked once however many images
/// carry it. Empty without `image.files` (no layer is emitted then, and the image is laid out as
/// before). `/etc/passwd` and `/etc/group` are the same on every platform too, but only on bases
/// without them: in this layer they would make it differ between a scratch and a Debian variant,
/// so they stay in the platform's layer (a few hundred bytes per image).
fn platform_independent_entries(cfg: &Config) -> Vec<Entry> {
    cfg.image
        .files
        .iter()
        .map(|f| Entry::host_file(f.dest.trim_start_matches('/'), &f.src, f.mode))
        .collect()
}

/// The platform-independent layers of one `package` run, made once each: packaging threads that
/// need the same entries wait for the first one's layer instead of hashing and compressing the
/// same bytes side by side. A failure is not remembered (the next thread tries, and reports its
/// own error).
#[derive(Default)]
pub(super) struct SharedLayers {
    made: Mutex<HashMap<String, Arc<Mutex<Option<LayerDigests>>>>>,
}

impl SharedLayers {
    /// The layer of `entries`, made by `make` unless an earlier call made it.
    fn layer(
        &self,
        entries: &[Entry],
        make: impl FnOnce() -> Result<LayerDigests>,
    ) -> Result<LayerDigests> {
        let key = format!("{entries:?}");
        let slot = {
            let mut made = self
                .made
                .lock()
                .map_err(|_| Error::stage("a packaging thread panicked"))?;
            Arc::clone(made.entry(key).or_default())
        };
        let mut slot = slot
            .lock()
            .map_err(|_| Error::stage("a packaging thread panicked"))?;
        if let Some(digests) = slot.as_ref() {
            return Ok(digests.clone());
        }
        let digests = make()?;
        *slot = Some(digests.clone());
        Ok(digests)
    }
}

/// Whether a base layer holds `etc/passwd`, remembered per layer digest in `dist/cache`.
fn layer_has_passwd(out: &Path, layout: &Layout, desc: &Descriptor) -> bool {
    let mut cache = crate::cache::Cache::open(out, "layer-facts");
    let key = format!("{} etc/passwd", desc.digest);
    if let Some(known) = cache.get::<bool>(&key) {
        return known;
    }
    let has = layer_has(layout, desc, "etc/passwd");
    cache.put(&key, &has);
    cache.save();
    has
}

/// Whether a layer blob holds `path` (e.g. a base's `etc/passwd`).
fn layer_has(layout: &Layout, desc: &Descriptor, path: &str) -> bool {
    let Ok(file) = layout.open_blob(desc, u64::MAX).map(|b| b.file) else {
        return false;
    };
    let reader: Box<dyn Read> = if desc.media_type.contains("gzip") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else {
        return false;
    };
    for e in entries.flatten() {
        if let Ok(p) = e.path() {
            let p = p.to_string_lossy();
            if p.trim_start_matches("./").trim_start_matches('/') == path {
                return true;
            }
        }
    }
    false
}

/// Reads `dist/package.json` for `plan`: refused (exit 2, saying what changed) when it was made
/// from another plan, so that nothing stale is verified, tagged or reported.
pub fn load_for(plan: &Plan) -> Result<Packaged> {
    let packaged = load(&plan.out_dir)?;
    if packaged.plan_digest == plan.package_digest {
        return Ok(packaged);
    }
    let changes = if packaged.plan.is_null() {
        vec!["(dist/package.json records no plan: made by an older shipit)".to_string()]
    } else {
        crate::plan::facts_diff(&packaged.plan, &plan.package_facts)
    };
    Err(Error::config(format!(
        "{}: made from another plan than the current one; run `shipit package` again (nothing was verified, pushed or tagged)",
        plan.out_dir.join("package.json").display()
    ))
    .with_detail(
        changes
            .iter()
            .map(|c| format!("  changed: {c}"))
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

/// Reads `dist/package.json`.
pub fn load(out_dir: &Path) -> Result<Packaged> {
    let path = out_dir.join("package.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::stage(format!(
            "{}: {e}: run `shipit package` first",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}
