//! `deb:SUITE` bases at package time (and `shipit lock`): the lock is read, used or refreshed
//! (`LockMode`), written beside `pipeline.yaml` when it changed, the `.deb`s of each platform's
//! Debian architecture fetched (cached, in parallel, with progress) and assembled into a
//! rootfs with the image user, and that rootfs becomes a one-layer base image in a small OCI
//! layout under `~/.cache/shipit/deb-bases/<key>`. The packagers then read it like any
//! `oci:PATH:TAG` base. The key is the SHA256 of what decides the layer's bytes (the locked
//! packages of that architecture, the user, the epoch, the compression settings), so a second
//! package assembles nothing, and the same lock gives the same digests on any machine.

use super::image_rules::image_user;
use crate::config::{Base, Config};
use crate::deb::{self, Cache, Http, Lock, LockMode, Mirror, Resolution, RootfsOptions};
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::oci::digest::Digest;
use crate::oci::image::{self, ImageSpec};
use crate::oci::layer::EntryKind;
use crate::oci::layout::Layout;
use crate::plan::{ImagePlan, Plan, PlatformPlan};
use crate::platform::Libc;
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tag of the base image inside a cached base layout.
const TAG: &str = "base";

/// Bumped when the assembly changes the bytes for the same inputs (it is part of the key, with
/// the layer compression's `pgzip::SETTINGS`).
const ASSEMBLY_VERSION: u32 = 1;

/// What `package.json` records of a platform's `deb:` base.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DebBaseRecord {
    pub suite: String,
    pub arch: String,
    /// Every installed package, sorted by name.
    pub packages: Vec<DebPackageRecord>,
    /// `sha256:` of `pipeline.lock` as used.
    pub lock_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DebPackageRecord {
    pub name: String,
    pub version: String,
}

/// The prepared bases of a run: (variant, platform) → the base layout and its record.
#[derive(Debug, Clone, Default)]
pub struct DebBases {
    bases: BTreeMap<(Libc, &'static str), (PathBuf, DebBaseRecord)>,
}

impl DebBases {
    /// The cached base layout (`oci:PATH:TAG`) of a platform, when its base is `deb:`.
    pub fn layout(&self, img: &ImagePlan, p: &PlatformPlan) -> Option<(PathBuf, Option<String>)> {
        self.bases
            .get(&(img.variant, p.platform))
            .map(|(path, _)| (path.clone(), Some(TAG.to_string())))
    }

    /// What package.json records of a platform's base.
    pub fn record(&self, img: &ImagePlan, p: &PlatformPlan) -> Option<DebBaseRecord> {
        self.bases
            .get(&(img.variant, p.platform))
            .map(|(_, r)| r.clone())
    }

    /// The base layout of a platform whose base is `deb:` (an error if `prepare` skipped it).
    pub fn require(&self, img: &ImagePlan, p: &PlatformPlan) -> Result<(PathBuf, Option<String>)> {
        self.layout(img, p).ok_or_else(|| {
            Error::stage(format!(
                "{} ({}): the {} base was not prepared",
                p.platform, img.variant, img.base
            ))
        })
    }
}

/// The resolutions of a run, by (suite, Debian architecture).
pub type Resolutions = BTreeMap<(String, String), Resolution>;

/// `pipeline.lock` of a config.
pub fn lock_path(cfg: &Config) -> PathBuf {
    cfg.root.join("pipeline.lock")
}

/// One suite's request: its Debian architectures (plan order, once each).
fn requests(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for img in &plan.images {
        let Some(d) = &img.deb else { continue };
        let arches = out.entry(d.suite.clone()).or_default();
        for p in &img.platforms {
            if let Some(pd) = &p.deb
                && !arches.contains(&pd.arch)
            {
                arches.push(pd.arch.clone());
            }
        }
    }
    out
}

/// Resolves every `deb:` suite of the plan as `mode` says and writes `pipeline.lock` when it
/// changed (under `LockMode::Locked` a change is an error naming the packages). Returns the
/// resolutions by (suite, arch) and the lock as it now is.
pub fn lock(
    cfg: &Config,
    plan: &Plan,
    mode: LockMode,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<(Resolutions, Lock)> {
    let path = lock_path(cfg);
    let mut lock = Lock::read(&path)?.unwrap_or_default();
    let existed = path.exists();
    let reqs = requests(plan);
    if reqs.is_empty() {
        return Ok((BTreeMap::new(), lock));
    }
    let http = Http::new(cancel);
    let mirror = Mirror::from_env_or_apt()?;
    let cache = Cache::default_location()?;
    let before = lock.clone();
    // The lock holds exactly what is installed: entries no longer reached go.
    let out = deb::resolve_pruned(
        &http,
        &mirror,
        &cache,
        &mut lock,
        &reqs,
        &cfg.image.packages,
        mode,
    )?;
    if lock.suites != before.suites || !existed {
        if mode == LockMode::Locked {
            return Err(Error::config(format!(
                "{} would change ({}), but --locked forbids it; run `shipit lock` (or drop --locked)",
                path.display(),
                lock_changes(&before, &lock).join(", ")
            )));
        }
        lock.write(&path)?;
        ui.ok(format!(
            "{} {}",
            if existed { "updated" } else { "wrote" },
            path.display()
        ));
    }
    Ok((out, lock))
}

/// `shipit lock [--update]`: resolves every `deb:` base of the plan and writes the lock,
/// building nothing.
pub fn run_lock(cfg: &Config, plan: &Plan, mode: LockMode, cancel: &Cancel, ui: &Ui) -> Result<()> {
    if !plan.images.iter().any(|i| i.deb.is_some()) {
        return Err(Error::config(
            "no variant of this pipeline has a deb:SUITE base: there is nothing to lock",
        ));
    }
    let path = lock_path(cfg);
    let before = Lock::read(&path)?.unwrap_or_default();
    let (resolutions, after) = lock(cfg, plan, mode, cancel, ui)?;
    for ((suite, arch), r) in &resolutions {
        ui.info(format!("{suite}/{arch}: {} packages", r.packages.len()));
    }
    if after.suites == before.suites && path.exists() {
        ui.ok(format!("{} is up to date", path.display()));
    } else {
        for c in lock_changes(&before, &after) {
            ui.info(format!("  {c}"));
        }
    }
    Ok(())
}

/// What differs between two locks, per package: `+name version (suite/arch)`, `-name …`,
/// `name old → new`.
pub fn lock_changes(before: &Lock, after: &Lock) -> Vec<String> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let mut keys: Vec<(&String, &String)> = Vec::new();
    for l in [before, after] {
        for (s, arches) in &l.suites {
            for a in arches.keys() {
                if !keys.contains(&(s, a)) {
                    keys.push((s, a));
                }
            }
        }
    }
    keys.sort();
    for (s, a) in keys {
        let b = before.entries(s, a).unwrap_or(&empty);
        let n = after.entries(s, a).unwrap_or(&empty);
        for (name, e) in n {
            match b.get(name) {
                None => out.push(format!("+{name} {} ({s}/{a})", e.version)),
                Some(old) if old != e => {
                    out.push(format!("{name} {} → {} ({s}/{a})", old.version, e.version))
                }
                Some(_) => {}
            }
        }
        for (name, e) in b {
            if !n.contains_key(name) {
                out.push(format!("-{name} {} ({s}/{a})", e.version));
            }
        }
    }
    if out.is_empty() {
        out.push("the file would be created".into());
    }
    out
}

/// Prepares the base of every platform whose base is `deb:`: lock, fetch, assemble (unless the
/// assembled base is cached), and returns where each base layout is.
pub fn prepare(
    cfg: &Config,
    plan: &Plan,
    mode: LockMode,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<DebBases> {
    let mut bases = DebBases::default();
    if !plan
        .images
        .iter()
        .any(|i| matches!(i.base_ref, Base::Deb { .. }))
    {
        return Ok(bases);
    }
    let (resolutions, lock) = lock(cfg, plan, mode, cancel, ui)?;
    let lock_digest = Digest::of(lock.render().as_bytes()).to_string();
    let cache = Cache::default_location()?;
    let epoch = plan.source_date_epoch.max(0) as u64;
    let user = image_user(&cfg.image.user);
    // One base per (suite, arch): variants on the same suite share it.
    let mut todo: Vec<(&str, &ImagePlan, &PlatformPlan, &Resolution)> = Vec::new();
    for img in &plan.images {
        let Some(d) = &img.deb else { continue };
        for p in &img.platforms {
            let Some(pd) = &p.deb else { continue };
            let r = resolutions
                .get(&(d.suite.clone(), pd.arch.clone()))
                .ok_or_else(|| {
                    Error::stage(format!("{}: no resolution for {}", p.platform, pd.arch))
                })?;
            todo.push((d.suite.as_str(), img, p, r));
        }
    }
    let made: Vec<Result<PathBuf>> = std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .iter()
            .map(|(_, _, p, r)| {
                let (cache, user) = (&cache, &user);
                s.spawn(move || base_layout(cache, p, r, user.clone(), epoch, cancel, ui))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::stage("a deb base thread panicked")))
            })
            .collect()
    });
    for ((suite, img, p, r), made) in todo.into_iter().zip(made) {
        let dir = made?;
        let mut packages: Vec<DebPackageRecord> = r
            .packages
            .iter()
            .map(|p| DebPackageRecord {
                name: p.name.clone(),
                version: p.version.clone(),
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        bases.bases.insert(
            (img.variant, p.platform),
            (
                dir,
                DebBaseRecord {
                    suite: suite.to_string(),
                    arch: r.arch.clone(),
                    packages,
                    lock_digest: lock_digest.clone(),
                },
            ),
        );
    }
    Ok(bases)
}

/// The cache key of an assembled base: everything that decides its bytes.
fn base_key(
    r: &Resolution,
    p: &PlatformPlan,
    user: Option<&deb::rootfs::ImageUser>,
    epoch: u64,
) -> String {
    let mut text = format!(
        "shipit deb base v{ASSEMBLY_VERSION}\ncompression {}\nsuite {}\narch {}\nplatform {}\nepoch {epoch}\n",
        crate::oci::pgzip::SETTINGS,
        r.suite,
        r.arch,
        p.platform
    );
    if let Some(u) = user {
        text.push_str(&format!("user {}:{}:{}\n", u.name, u.uid, u.gid));
    }
    let mut pkgs: Vec<&deb::Pkg> = r.packages.iter().collect();
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    for p in pkgs {
        text.push_str(&format!("{} {} {}\n", p.name, p.version, p.sha256));
    }
    Digest::of(text.as_bytes()).hex().to_string()
}

/// The cached base layout of one platform, assembling it first when it is not there.
fn base_layout(
    cache: &Cache,
    p: &PlatformPlan,
    r: &Resolution,
    user: Option<deb::rootfs::ImageUser>,
    epoch: u64,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<PathBuf> {
    let key = base_key(r, p, user.as_ref(), epoch);
    let dir = cache.root.join("deb-bases").join(&key);
    if let Ok(l) = Layout::open(&dir)
        && l.resolve(TAG).is_ok()
    {
        ui.verbose(format!(
            "{}: deb:{} base {} from the cache",
            p.platform,
            r.suite,
            &key[..12]
        ));
        return Ok(dir);
    }
    let debs = fetch(cache, p, r, cancel, ui)?;
    let rootfs = deb::assemble(
        &debs,
        &RootfsOptions {
            arch: r.arch.clone(),
            epoch,
            user,
        },
    )
    .map_err(|e| in_base(e, p, r))?;
    let parent = cache.root.join("deb-bases");
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::env(format!("{}: {e}", parent.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&parent)
        .map_err(|e| Error::env(format!("{}: {e}", parent.display())))?;
    let layout = Layout::create(tmp.path()).map_err(|e| Error::stage(e.to_string()))?;
    let (_, digests) = layout
        .write_layer(&rootfs.entries, epoch)
        .map_err(|e| Error::stage(format!("{} deb:{} layer: {e}", p.platform, r.suite)))?;
    // The attestations' SBOM lists the packages from this layer's dpkg status: known here, so
    // never read back out of the layer.
    if let Some(status) = rootfs.entries.iter().find_map(|e| match &e.kind {
        EntryKind::File(bytes) if e.path == "var/lib/dpkg/status" => {
            std::str::from_utf8(bytes).ok()
        }
        _ => None,
    }) && let Err(e) =
        remember_dpkg_status(&cache.root.join("dpkg-status"), &digests.digest, status)
    {
        ui.verbose(format!(
            "  dpkg status of the {} base not remembered: {}",
            p.platform,
            e.message()
        ));
    }
    let spec = base_spec(super::image_rules::oci_platform(p), epoch);
    let built = image::build(None, &[digests], &spec)
        .map_err(|e| Error::stage(format!("{} deb:{} image: {e}", p.platform, r.suite)))?;
    layout
        .write_image(&built)
        .and_then(|()| layout.tag(TAG, &built.descriptor))
        .map_err(|e| Error::stage(e.to_string()))?;
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another run put the same base there first: its bytes are the same.
        if !dir.join("index.json").exists() {
            return Err(Error::env(format!("{}: {e}", dir.display())));
        }
    }
    ui.ok(format!(
        "{}: deb:{} base ({} packages) assembled",
        p.platform,
        r.suite,
        r.packages.len()
    ));
    Ok(dir)
}

/// The `.deb`s of a resolution, from the cache or the mirror, with a progress bar on a
/// terminal.
fn fetch(
    cache: &Cache,
    p: &PlatformPlan,
    r: &Resolution,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<Vec<deb::LocalDeb>> {
    if let Some(local) = deb::fetch::cached(r, cache)? {
        return Ok(local);
    }
    let http = Http::new(cancel);
    let mirror = Mirror::from_env_or_apt()?;
    let bar = ui.bars.then(|| {
        let b = indicatif::ProgressBar::new(r.packages.iter().map(|p| p.size).sum());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:<14} [{bar:30}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_prefix(r.arch.clone());
        b
    });
    let progress = |g: &deb::Progress| {
        if let Some(b) = &bar {
            b.set_position(g.bytes_done);
            b.set_message(format!("{}/{} .debs", g.files_done, g.files_total));
        }
    };
    let debs = deb::fetch(&http, &mirror, r, cache, 8, &progress).map_err(|e| in_base(e, p, r));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let debs = debs?;
    ui.info(format!(
        "{}: {} .debs for {} from {}",
        p.platform,
        debs.len(),
        r.arch,
        mirror.url
    ));
    Ok(debs)
}

/// A Debian error, prefixed with the platform and suite it happened for.
fn in_base(e: deb::DebError, p: &PlatformPlan, r: &Resolution) -> Error {
    Error::from(e).context(format!("{} deb:{} base", p.platform, r.suite))
}

/// The image config of an assembled Debian base: its one layer, Debian's default `PATH`, and
/// nothing else (the image's own user, entrypoint and labels come with the platform image).
pub fn base_spec(platform: image::Platform, epoch: u64) -> ImageSpec {
    ImageSpec {
        platform,
        user: None,
        entrypoint: None,
        cmd: None,
        env: vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )],
        exposed_ports: Vec::new(),
        working_dir: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        epoch,
    }
}

/// Where what each layer holds of the dpkg database is remembered, under the layer's digest:
/// the user's cache (`$XDG_CACHE_HOME/shipit/dpkg-status`, else `~/.cache`), since a layer's
/// bytes and so its answer are the same in every project and output dir; `dist/cache` when
/// there is no home.
pub fn dpkg_status_cache(plan: &Plan) -> PathBuf {
    crate::deb::fetch::Cache::default_location()
        .map(|c| c.root.join("dpkg-status"))
        .unwrap_or_else(|_| plan.out_dir.join("cache/dpkg-status"))
}

/// Remembers the dpkg status file of a layer shipit made (an assembled `deb:` base), so that no
/// release reads that layer again to find it.
pub fn remember_dpkg_status(dir: &Path, layer: &Digest, status: &str) -> Result<()> {
    remember(dir, &dir.join(layer.hex()), &format!("status\n{status}"))
}

/// Writes a dpkg-status cache entry (a temp file renamed into place: concurrent writers write
/// the same).
pub fn remember(dir: &Path, path: &Path, text: &str) -> Result<()> {
    let err = |e: std::io::Error| Error::stage(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
