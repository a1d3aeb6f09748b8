//! The shared fixture: the example project copied once per test run, built for every platform
#![allow(dead_code)] // each helper is used by some of the test modules
//! and packaged, so that tests share one expensive build. Tests copy what they change.

use super::shipit;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixed SOURCE_DATE_EPOCH for everything the tests package.
pub const EPOCH: &str = "1700000000";

/// Copies a directory tree (files, dirs, symlinks), skipping `target`, `dist` and `base`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for e in entries.flatten() {
        let name = e.file_name();
        // Build outputs (`dist`, and the `dist-*` of tests running in the shared example) and
        // the base are not part of the project's sources.
        if name
            .to_str()
            .is_some_and(|n| n == "target" || n == "base" || n.starts_with("dist"))
        {
            continue;
        }
        let ft = e.file_type().unwrap();
        let dest = to.join(&name);
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_symlink() {
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            // Unchanged files keep their mtime, so cargo's fingerprints stay fresh.
            let same = std::fs::read(&dest).ok() == std::fs::read(e.path()).ok();
            if !same {
                std::fs::copy(e.path(), &dest).unwrap();
            }
        }
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// Makes a Debian base layout with shipit's own Debian engine (`shipit::deb`): one image per
/// Debian architecture of `archs`, tagged `<suite>-<arch>` (e.g. bookworm-arm64), holding the
/// rootfs a `deb:SUITE` base with `image.packages: include` gets for the user 10001:10001 at
/// SOURCE_DATE_EPOCH=EPOCH (so its layer is the one `shipit package` makes for the example),
/// pinned by the example's pipeline.lock where that covers the request. The `.deb`s come from
/// ~/.cache/shipit (or the machine's mirror). Tags already in `out` are replaced.
pub fn debian_base(out: &Path, suite: &str, archs: &str, include: &str) {
    use shipit::deb::{self, Cache, Http, Lock, LockMode, Mirror, RootfsOptions};
    use shipit::oci::image;
    use shipit::oci::layout::Layout;
    let epoch: u64 = EPOCH.parse().unwrap();
    let arches: Vec<&str> = archs.split(',').collect();
    let packages: Vec<&str> = include
        .split(',')
        .filter(|p| !p.is_empty() && !deb::BASE_PACKAGES.contains(p))
        .collect();
    let http = Http::new(&shipit::exec::Cancel::new());
    let mirror = Mirror::from_env_or_apt().expect("a Debian mirror");
    let cache = Cache::default_location().unwrap();
    let mut lock = Lock::read(&repo().join("examples/hello-server/pipeline.lock"))
        .unwrap()
        .unwrap_or_default();
    let (resolutions, _) = deb::resolve_with_lock(
        &http,
        &mirror,
        &cache,
        &mut lock,
        suite,
        &arches,
        &packages,
        LockMode::Use,
    )
    .unwrap_or_else(|e| panic!("deb:{suite} {archs} {include}: {e}"));
    let layout = Layout::create(out).unwrap();
    for r in resolutions {
        let tag = format!("{suite}-{}", r.arch);
        let debs = deb::fetch(&http, &mirror, &r, &cache, 4, &|_| {}).unwrap();
        let rootfs = deb::assemble(
            &debs,
            &RootfsOptions {
                arch: r.arch.clone(),
                epoch,
                user: Some(deb::rootfs::ImageUser {
                    name: "app".into(),
                    uid: 10001,
                    gid: 10001,
                }),
            },
        )
        .unwrap();
        let (_, digests) = layout.write_layer(&rootfs.entries, epoch).unwrap();
        let p = shipit::platform::PLATFORMS
            .iter()
            .find(|p| deb::debian_arch(p).ok() == Some(r.arch.as_str()))
            .unwrap();
        let spec = shipit::stage::deb_base::base_spec(
            shipit::oci::image::Platform::new(p.os, p.architecture, p.variant),
            epoch,
        );
        let built = image::build(None, &[digests], &spec).unwrap();
        layout.write_image(&built).unwrap();
        layout.tag(&tag, &built.descriptor).unwrap();
    }
}

/// Where the shared fixture lives: `SHIPIT_FIXTURE_DIR`, else cargo's temp dir for tests.
fn fixture_root() -> PathBuf {
    std::env::var_os("SHIPIT_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixture"))
}

/// The example, built for every planned platform and packaged into its dist/oci, once per run
/// (and shared between concurrent test processes through a file lock).
pub fn example() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = fixture_root();
        std::fs::create_dir_all(&root).unwrap();
        let lock = std::fs::File::create(root.join(".lock")).unwrap();
        // SAFETY: flock on an open file; released when `lock` is dropped at the end.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
            0
        );
        let dir = root.join("hello-server");
        copy_tree(&repo().join("examples/hello-server"), &dir);
        // The example's gnu images are on deb:bookworm; this layout of the same rootfs is for
        // the tests that need a Debian base as an OCI layout (qemu -L, a registry base).
        debian_base(
            &dir.join("base/bookworm"),
            "bookworm",
            "amd64,arm64,armhf",
            "ca-certificates",
        );
        run_ok(
            shipit(&dir)
                .args(["build", "-q"])
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        run_ok(
            shipit(&dir)
                .args(["package", "-q"])
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        drop(lock);
        dir
    })
}

/// A fresh copy of the built example (sources, base, dist/bin; not dist/oci) in a temp dir,
/// with `pipeline.yaml` replaced when `pipeline` is given.
pub fn example_copy(pipeline: Option<&str>) -> tempfile::TempDir {
    let src = example();
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(src, tmp.path());
    std::os::unix::fs::symlink(src.join("base"), tmp.path().join("base")).unwrap();
    copy_tree(&src.join("dist/bin"), &tmp.path().join("dist/bin"));
    if let Some(p) = pipeline {
        std::fs::write(tmp.path().join("pipeline.yaml"), p).unwrap();
    }
    tmp
}

/// The example's pipeline with `image.repository` and `publish` changed.
pub fn example_pipeline() -> String {
    std::fs::read_to_string(repo().join("examples/hello-server/pipeline.yaml")).unwrap()
}

/// A built binary of the fixture: `dist/bin/<libc>/<slug>/hello-server`.
pub fn built(libc: &str, slug: &str) -> PathBuf {
    example()
        .join("dist/bin")
        .join(libc)
        .join(slug)
        .join("hello-server")
}

/// Writes `pipeline-<name>.yaml` into the shared example (same project root, so its warm target
/// dir makes `shipit release` a cargo no-op) and returns the flags that select it and a private
/// output dir: `-c pipeline-<name>.yaml --out dist-<name>`.
pub fn example_variant(name: &str, pipeline: &str) -> Vec<String> {
    let dir = example();
    std::fs::write(dir.join(format!("pipeline-{name}.yaml")), pipeline).unwrap();
    let out = dir.join(format!("dist-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    vec![
        "-c".into(),
        format!("pipeline-{name}.yaml"),
        "--out".into(),
        out.display().to_string(),
    ]
}

/// A Debian rootfs of the example's base, unpacked with umoci once (for `qemu -L`).
pub fn unpacked_base(tag: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Keyed by the base's digest: an older fixture's rootfs is not reused for a new base.
    let layout = example().join("base/bookworm");
    let key = shipit::oci::layout::Layout::open(&layout)
        .and_then(|l| l.resolve(tag))
        .map(|d| d.digest.to_string().replace(':', "-")[..19].to_string())
        .unwrap();
    let dir = example()
        .parent()
        .unwrap()
        .join(format!("rootfs-{tag}-{key}"));
    if !dir.join("rootfs").exists() {
        let tmp = example()
            .parent()
            .unwrap()
            .join(format!("rootfs-{tag}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        run_ok(Command::new("umoci").args([
            "raw",
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", layout.display()),
            tmp.join("rootfs").to_str().unwrap(),
        ]));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
    }
    dir.join("rootfs")
}
