//! The gnu targets' build sysroots, as a stage step before compiling: for each target the plan
//! gives one (`plan::SysrootsPlan`: every gnu target built on this machine when
//! `build.packages` is set), `libc6-dev` plus `build.packages` are resolved against the same
//! suite and `pipeline.lock` as the variant's `deb:` base (its sysroot rows), fetched (verified,
//! cached) and unpacked by `deb::sysroot` under `<target dir>/shipit/sysroot/`. An unchanged lock
//! finds the assembled directory and touches no network. `--locked` refuses a lock without the
//! sysroot rows, naming the packages.
//!
//! The sysroot's linked libraries decide the glibc floor (`GLIBC_2.34` for bookworm's libssl3):
//! `shipit plan` shows it once the lock and an assembled sysroot say it ([`annotate`]), and a
//! `build.glibc` pinned lower is a config error at that key ([`check_floor`]): a binary linked
//! against those libraries cannot run on an older glibc, so shipit refuses to promise one.

use crate::config::Backend;
use crate::config::yaml;
use crate::config::{ConfigError, Diagnostic};
use crate::deb::sysroot::{self as engine, Manifest};
use crate::deb::{self, Cache, Http, LockMode, Mirror, Request, Resolution};
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::plan::{GlibcFloor, Plan, PlatformPlan, SysrootTarget, SysrootsPlan};
use crate::platform::Libc;
use crate::syslibs::BuildEnv;
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The targets of the plan that get a sysroot, by (suite, Debian architecture).
fn requests(sp: &SysrootsPlan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in sp.targets.iter().filter(|t| !t.arch.is_empty()) {
        let arches = out.entry(t.suite.clone()).or_default();
        if !arches.contains(&t.arch) {
            arches.push(t.arch.clone());
        }
    }
    out
}

/// The floor an assembled sysroot's manifest records.
fn floor_of(m: &Manifest) -> Option<GlibcFloor> {
    m.glibc_floor().map(|l| GlibcFloor {
        version: l.glibc.clone(),
        library: l.file_name().to_string(),
        package: l.package.clone(),
        package_version: l.package_version.clone(),
        suite: m.suite.clone(),
    })
}

/// `shipit plan`: fills in each target's sysroot and glibc floor from `pipeline.lock` and what
/// is already assembled, without any network.
pub fn annotate(plan: &mut Plan) {
    let Some(sp) = plan.sysroots.as_mut() else {
        return;
    };
    let lock = match deb::Lock::read(&sp.lock) {
        Ok(Some(l)) => l.sysroot_view(),
        Ok(None) => {
            for t in sp.targets.iter_mut().filter(|t| !t.arch.is_empty()) {
                t.status = "resolved and assembled at build time (no pipeline.lock yet)".into();
            }
            return;
        }
        Err(e) => {
            for t in sp.targets.iter_mut().filter(|t| !t.arch.is_empty()) {
                t.status = format!("pipeline.lock is unreadable: {e}");
            }
            return;
        }
    };
    for t in sp.targets.iter_mut().filter(|t| !t.arch.is_empty()) {
        match deb::resolve_locked(&lock, &Request::new(&t.suite, &t.arch, &sp.packages)) {
            Err(e) => {
                t.status = format!("resolved at build time (pipeline.lock does not cover it: {e})")
            }
            Ok(r) => {
                let dir = sp.dir.join(engine::dir_name(&r));
                match Manifest::read(&dir).filter(|m| m.key == engine::key(&r)) {
                    Some(m) => {
                        t.status = format!(
                            "{} packages from pipeline.lock, assembled in {}",
                            r.packages.len(),
                            dir.display()
                        );
                        t.glibc_floor = floor_of(&m);
                        t.sysroot = Some(dir);
                    }
                    None => {
                        t.status = format!(
                            "{} packages from pipeline.lock, assembled at build time (the glibc floor is known then)",
                            r.packages.len()
                        )
                    }
                }
            }
        }
    }
}

/// The config error for a `build.glibc` below what the linked libraries need, at the key.
pub fn check_floor(sp: &SysrootsPlan, targets: &[SysrootTarget]) -> Result<()> {
    let Some(pin) = sp.glibc_pin.as_deref() else {
        return Ok(());
    };
    let Some(pinned) = crate::verify::elf::GlibcVersion::parse(pin) else {
        return Ok(());
    };
    let worst = targets
        .iter()
        .filter_map(|t| t.glibc_floor.as_ref().map(|f| (t, f)))
        .filter_map(|(t, f)| crate::verify::elf::GlibcVersion::parse(&f.version).map(|v| (v, t, f)))
        .filter(|(v, _, _)| *v > pinned)
        .max_by_key(|(v, _, _)| *v);
    let Some((_, t, f)) = worst else {
        return Ok(());
    };
    let message = format!(
        "build.glibc is {pin}, but the build sysroot of {} ({}) links {} from {} {}, which needs GLIBC_{}: the binary could not run on glibc {pin}",
        t.platform, t.libc, f.library, f.package, f.package_version, f.version
    );
    let hint = Some(format!(
        "set build.glibc to \"{}\" (or higher), or remove the pin and shipit checks that floor",
        f.version
    ));
    let text = std::fs::read_to_string(&sp.config_file).unwrap_or_default();
    let pos = yaml::parse(&text).ok().and_then(|(root, _)| {
        let key = |n: &yaml::Node, name: &str| match &n.kind {
            yaml::Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, v)| (k.pos, v.clone())),
            _ => None,
        };
        let (_, build) = key(&root, "build")?;
        key(&build, "glibc").map(|(p, _)| p)
    });
    let (line, col) = pos.map(|p| (p.line, p.col)).unwrap_or((0, 0));
    Err(Error::from(ConfigError {
        file: sp.config_file.clone(),
        source_text: crate::config::redact::mask_text(&text),
        diagnostics: vec![Diagnostic {
            line,
            col,
            message,
            hint,
        }],
    }))
}

/// The sysroot packages of every suite, as `mode` says: from the lock when it covers them (no
/// network), else resolved from the archive and written to the lock's sysroot rows; under
/// `--locked` a missing row is an error naming the packages.
fn resolve(
    sp: &SysrootsPlan,
    mode: LockMode,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<BTreeMap<(String, String), Resolution>> {
    let reqs = requests(sp);
    if reqs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut lock = deb::Lock::read(&sp.lock)?.unwrap_or_default();
    let mut view = lock.sysroot_view();
    let before = view.clone();
    if mode == LockMode::Locked {
        let mut missing = Vec::new();
        for (suite, arches) in &reqs {
            for arch in arches {
                if let Err(e) = deb::resolve_locked(&view, &Request::new(suite, arch, &sp.packages))
                {
                    missing.push(format!("{suite}/{arch}: {e}"));
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::config(format!(
                "{} has no build sysroot entries for {} (libc6-dev and build.packages), and --locked forbids resolving them; run `shipit lock` (or drop --locked):\n  {}",
                sp.lock.display(),
                sp.packages.join(", "),
                missing.join("\n  ")
            )));
        }
    }
    let http = Http::new(cancel);
    let mirror = Mirror::from_env_or_apt()?;
    let cache = Cache::default_location()?;
    // The sysroot rows hold exactly what is unpacked: entries no longer reached go.
    let out = deb::resolve_pruned(&http, &mirror, &cache, &mut view, &reqs, &sp.packages, mode)?;
    if view.suites != before.suites {
        if mode == LockMode::Locked {
            return Err(Error::config(format!(
                "{}'s build sysroot entries would change, but --locked forbids it; run `shipit lock`",
                sp.lock.display()
            )));
        }
        let existed = sp.lock.exists();
        let changes = super::deb_base::lock_changes(&before, &view);
        lock.set_sysroots(view);
        lock.write(&sp.lock)?;
        ui.ok(format!(
            "{} {} (build sysroot entries: {} changed)",
            if existed { "updated" } else { "wrote" },
            sp.lock.display(),
            changes.len()
        ));
        for c in changes {
            ui.verbose(format!("  {c}"));
        }
    }
    Ok(out)
}

/// `shipit lock`: the sysroot rows of the lock (resolved as `mode` says), building nothing.
pub fn run_lock(plan: &Plan, mode: LockMode, cancel: &Cancel, ui: &Ui) -> Result<()> {
    let Some(sp) = &plan.sysroots else {
        return Ok(());
    };
    for ((suite, arch), r) in resolve(sp, mode, cancel, ui)? {
        ui.info(format!(
            "{suite}/{arch} build sysroot: {} packages",
            r.packages.len()
        ));
    }
    Ok(())
}

/// The prepared sysroots of a build: each target's plan with `sysroot` and `glibc_floor` known.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub targets: Vec<SysrootTarget>,
    /// `build.glibc` was not pinned.
    pub unpinned: bool,
}

impl Prepared {
    /// The build command of `p`: the plan's, except that cargo-zigbuild without a `build.glibc`
    /// pin targets the sysroot's glibc floor (`--target T.2.34`). zig links glibc from its own
    /// stubs of the version it targets, and its default is older than what the sysroot's
    /// libraries need (lld refuses `dlopen@GLIBC_2.34` in libcrypto.so otherwise).
    pub fn command(&self, p: &PlatformPlan) -> crate::exec::Cmd {
        let mut cmd = p.build.clone();
        if !self.unpinned || p.backend != Backend::Zigbuild || p.libc != Libc::Gnu {
            return cmd;
        }
        let Some(floor) = self
            .targets
            .iter()
            .find(|t| t.platform == p.platform && t.libc == p.libc)
            .and_then(|t| t.glibc_floor.as_ref())
            .and_then(GlibcFloor::parts)
        else {
            return cmd;
        };
        if let Some(i) = cmd.args.iter().position(|a| a == "--target")
            && cmd.args.get(i + 1) == Some(&p.target)
        {
            cmd.args[i + 1] = format!("{}.{}.{}", p.target, floor.0, floor.1);
        }
        cmd
    }

    /// The assembled sysroot of one (platform, libc).
    pub fn dir(&self, platform: &str, libc: Libc) -> Option<&PathBuf> {
        self.targets
            .iter()
            .find(|t| t.platform == platform && t.libc == libc)
            .and_then(|t| t.sysroot.as_ref())
    }
}

/// Before compiling: every planned sysroot locked, fetched and assembled (or found assembled),
/// the glibc floor of each said and checked against `build.glibc`.
pub fn prepare(plan: &Plan, mode: LockMode, cancel: &Cancel, ui: &Ui) -> Result<Prepared> {
    let Some(sp) = &plan.sysroots else {
        return Ok(Prepared::default());
    };
    let resolutions = resolve(sp, mode, cancel, ui)?;
    let cache = Cache::default_location()?;
    // One sysroot per (suite, arch), assembled side by side.
    let todo: Vec<&Resolution> = resolutions.values().collect();
    let made: Vec<Result<(PathBuf, Manifest)>> = std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .iter()
            .map(|r| {
                let cache = &cache;
                s.spawn(move || assemble(sp, r, cache, cancel, ui))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::stage("a sysroot thread panicked")))
            })
            .collect()
    });
    let mut by_key = BTreeMap::new();
    for (r, m) in todo.iter().zip(made) {
        by_key.insert((r.suite.clone(), r.arch.clone()), m?);
    }
    let mut targets = sp.targets.clone();
    for t in targets.iter_mut() {
        let Some((dir, m)) = by_key.get(&(t.suite.clone(), t.arch.clone())) else {
            continue;
        };
        t.sysroot = Some(dir.clone());
        t.glibc_floor = floor_of(m);
        t.status = format!("{} packages in {}", m.packages.len(), dir.display());
        ui.info(format!(
            "  {} ({}) sysroot {}-{}: {}",
            t.platform,
            t.libc,
            t.suite,
            t.arch,
            t.glibc_floor
                .as_ref()
                .map(GlibcFloor::describe)
                .unwrap_or_else(|| "no linked library needs more than glibc itself".into())
        ));
    }
    check_floor(sp, &targets)?;
    let unpinned = sp.glibc_pin.is_none();
    if unpinned {
        for t in &targets {
            if let Some(f) = &t.glibc_floor
                && plan.platforms().any(|(_, p)| {
                    p.platform == t.platform && p.libc == t.libc && p.backend == Backend::Zigbuild
                })
            {
                ui.info(format!(
                    "  {} ({}): build.glibc is not pinned, so cargo-zigbuild targets glibc {}, the floor of the sysroot's libraries",
                    t.platform, t.libc, f.version
                ));
            }
        }
    }
    Ok(Prepared { targets, unpinned })
}

/// One sysroot: found assembled (no network), or fetched and unpacked.
fn assemble(
    sp: &SysrootsPlan,
    r: &Resolution,
    cache: &Cache,
    cancel: &Cancel,
    ui: &Ui,
) -> Result<(PathBuf, Manifest)> {
    let dir = sp.dir.join(engine::dir_name(r));
    let ctx =
        |e: deb::DebError| Error::from(e).context(format!("build sysroot {} {}", r.suite, r.arch));
    if let Some(m) = Manifest::read(&dir).filter(|m| m.key == engine::key(r)) {
        ui.verbose(format!(
            "build sysroot {}-{}: {} (reused)",
            r.suite,
            r.arch,
            dir.display()
        ));
        return Ok((dir, m));
    }
    let debs = match deb::fetch::cached(r, cache).map_err(ctx)? {
        Some(local) => local,
        None => {
            let http = Http::new(cancel);
            let mirror = Mirror::from_env_or_apt()?;
            let debs = deb::fetch(&http, &mirror, r, cache, 8, &|_| {}).map_err(ctx)?;
            ui.info(format!(
                "build sysroot {}-{}: {} .debs from {}",
                r.suite,
                r.arch,
                debs.len(),
                mirror.url
            ));
            debs
        }
    };
    let m = engine::assemble_into(&debs, r, &sp.build_packages, &dir).map_err(ctx)?;
    ui.ok(format!(
        "build sysroot {}-{} ({} packages) assembled in {}",
        r.suite,
        r.arch,
        m.packages.len(),
        dir.display()
    ));
    Ok((dir, m))
}

/// The build variables of every target with a sysroot (`syslibs::sysroot::env`), added to
/// `env`.
pub fn add_env(plan: &Plan, prepared: &Prepared, env: &mut BuildEnv) {
    for (_, p) in plan.platforms() {
        if let Some(dir) = prepared.dir(p.platform, p.libc) {
            env.entry((p.platform.to_string(), p.libc))
                .or_default()
                .extend(crate::syslibs::sysroot::env(
                    dir, &p.target, p.spec, p.backend,
                ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(pin: Option<&str>, file: PathBuf) -> SysrootsPlan {
        SysrootsPlan {
            packages: engine::request(&["libssl-dev".into()]),
            build_packages: vec!["libssl-dev".into()],
            lock: "pipeline.lock".into(),
            dir: "/t/shipit/sysroot".into(),
            glibc_pin: pin.map(str::to_string),
            config_file: file,
            targets: Vec::new(),
        }
    }

    fn target(floor: Option<&str>) -> SysrootTarget {
        SysrootTarget {
            platform: "linux/arm64",
            libc: Libc::Gnu,
            target: "aarch64-unknown-linux-gnu".into(),
            suite: "bookworm".into(),
            suite_from: "the deb:bookworm base".into(),
            arch: "arm64".into(),
            sysroot: None,
            glibc_floor: floor.map(|v| GlibcFloor {
                version: v.into(),
                library: "libssl.so.3".into(),
                package: "libssl3".into(),
                package_version: "3.0.15-1~deb12u1".into(),
                suite: "bookworm".into(),
            }),
            status: String::new(),
        }
    }

    #[test]
    fn a_pin_below_the_libraries_floor_is_a_config_error_at_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pipeline.yaml");
        std::fs::write(
            &file,
            "version: 1\nbuild:\n  backend: auto\n  glibc: \"2.31\"\n  packages: [libssl-dev]\n",
        )
        .unwrap();
        let e = check_floor(&sp(Some("2.31"), file.clone()), &[target(Some("2.34"))]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let c = e.rendered_config().expect("a located config error");
        assert_eq!((c.diagnostics[0].line, c.diagnostics[0].col), (4, 3));
        let msg = &c.diagnostics[0].message;
        assert!(
            msg.contains("libssl.so.3") && msg.contains("GLIBC_2.34") && msg.contains("libssl3"),
            "{msg}"
        );
        for ok in [Some("2.34"), Some("2.36"), None] {
            check_floor(&sp(ok, file.clone()), &[target(Some("2.34"))]).unwrap();
        }
        check_floor(&sp(Some("2.17"), file), &[target(None)]).unwrap();
    }

    #[test]
    fn unpinned_zigbuild_targets_the_floor_and_a_pin_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = crate::config::parse_str(
            "version: 1\nbuild:\n  backend: zigbuild\n  packages: [libssl-dev]\nplatforms: [linux/arm64]\nvariants:\n  gnu: { base: \"deb:bookworm\" }\nimage:\n  repository: localhost/x\n",
            &tmp.path().join("pipeline.yaml"),
            tmp.path(),
        )
        .unwrap();
        let plan = crate::plan::make(
            &cfg,
            &crate::plan::Facts {
                package: "x".into(),
                package_version: semver::Version::new(0, 1, 0),
                bins: vec!["x".into()],
                manifest_path: tmp.path().join("Cargo.toml"),
                target_dir: tmp.path().join("target"),
                git: Default::default(),
                source_date_epoch: None,
                tools: Default::default(),
                deb_lock: None,
                meta: Default::default(),
            },
            &crate::plan::Options::default(),
            crate::tools::build_command,
        )
        .unwrap();
        let (_, p) = plan.platforms().next().unwrap();
        let mut prepared = Prepared {
            targets: vec![target(Some("2.34"))],
            unpinned: true,
        };
        let args = |c: crate::exec::Cmd| c.args.join(" ");
        assert!(
            args(prepared.command(p)).contains("--target aarch64-unknown-linux-gnu.2.34 "),
            "{}",
            args(prepared.command(p))
        );
        prepared.unpinned = false;
        assert_eq!(prepared.command(p).args, p.build.args);
        prepared.unpinned = true;
        prepared.targets = vec![target(None)];
        assert_eq!(prepared.command(p).args, p.build.args);
    }

    #[test]
    fn the_plan_asks_for_what_the_engine_resolves() {
        // plan/mod.rs spells the request itself (it may not depend on the deb engine).
        let s = sp(None, PathBuf::new());
        assert_eq!(s.packages, ["libc6-dev", "libssl-dev"]);
        assert_eq!(engine::SYSROOT_PACKAGES, ["libc6-dev"]);
    }
}
