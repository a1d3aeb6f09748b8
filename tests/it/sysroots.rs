//! Build sysroots end to end (issue 13): the TLS example (`build.packages: [libssl-dev]`,
//! `image.packages: [ca-certificates, libssl3]`) released for linux/amd64, linux/arm64 and
//! linux/arm/v7 gnu on deb:bookworm, each linked against a bookworm sysroot of its architecture,
//! plus musl on linux/amd64, every image run under QEMU with the strict CPU and its `--self-test`
//! (OpenSSL loads, CA roots found); a second release with the mirror unreachable reuses the
//! sysroots; `--locked` without the sysroot rows fails naming them; `plan` shows the glibc floor
//! 2.34 from the linked libraries and refuses a lower `build.glibc` at the key. The SQLite example
//! (`rusqlite` without `bundled`) released for gnu amd64 and arm64 prints `sqlite_version()`, and
//! without `libsqlite3-0` in the image its verification names `libsqlite3.so.0` and the package.

use crate::support::fixture::{copy_tree, repo};
use crate::support::{ok, run, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An unreachable mirror: a run that needs the network fails with it.
const NO_NETWORK: (&str, &str) = ("SHIPIT_DEBIAN_MIRROR", "http://127.0.0.1:9");

/// A copy of `examples/<name>` under the fixture dir, made once per run under a file lock (the
/// project, its target dir with the sysroots, its pipeline.lock).
fn example_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("SHIPIT_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixture"));
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join(format!("sysroots-{name}"));
    copy_tree(&repo().join("examples").join(name), &dir);
    dir
}

/// Holds the fixture's flock while alive.
struct FixtureLock(#[allow(dead_code)] std::fs::File);

fn lock_fixture(dir: &Path) -> FixtureLock {
    let f = std::fs::File::create(dir.with_extension("lock")).unwrap();
    // SAFETY: flock on an open file; released when the file is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) },
        0
    );
    FixtureLock(f)
}

/// The TLS example's pipeline for this module: gnu on deb:bookworm for the three architectures
/// and musl (static, on deb:bookworm for the CA bundle) for linux/amd64 only (its static OpenSSL
/// for the other targets is the syslibs module's concern).
fn tls_pipeline() -> String {
    let p = std::fs::read_to_string(repo().join("examples/tls-client/pipeline.yaml")).unwrap();
    assert!(p.contains("packages: [libssl-dev]"), "{p}");
    assert!(p.contains("packages: [ca-certificates, libssl3]"), "{p}");
    let musl = "  musl: { base: \"deb:bookworm\", tag_suffix: \"-musl\" }\n";
    assert!(p.contains(musl), "{p}");
    p.replace(
        musl,
        "  musl: { base: \"deb:bookworm\", tag_suffix: \"-musl\", platforms: [linux/amd64] }\n",
    )
}

/// The TLS example released once (gnu amd64, arm64, arm/v7 on deb:bookworm with bookworm
/// sysroots; musl amd64): (its dir, the release's stderr, release.json).
fn tls_released() -> &'static (PathBuf, String, Value) {
    static DONE: OnceLock<(PathBuf, String, Value)> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = example_dir("tls-client");
        let _lock = lock_fixture(&dir);
        std::fs::write(dir.join("pipeline-sysroots.yaml"), tls_pipeline()).unwrap();
        let o = ok(run(
            &dir,
            &[
                "-c",
                "pipeline-sysroots.yaml",
                "--out",
                "dist-sysroots",
                "release",
                "--no-push",
            ],
            &[],
        ));
        let report: Value =
            serde_json::from_slice(&std::fs::read(dir.join("dist-sysroots/release.json")).unwrap())
                .unwrap();
        (dir, String::from_utf8_lossy(&o.stderr).into_owned(), report)
    })
}

/// (variant platform, check) → passed, for every check of a release report.
fn checks(report: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for image in report["images"].as_array().unwrap() {
        for p in image["platforms"].as_array().unwrap() {
            for c in p["checks"].as_array().unwrap() {
                out.push((
                    format!(
                        "{} {}",
                        image["variant"].as_str().unwrap(),
                        p["platform"].as_str().unwrap()
                    ),
                    c["name"].as_str().unwrap().to_string(),
                    c["passed"].as_bool().unwrap_or(false),
                ));
            }
        }
    }
    out
}

/// The `[[deb]]` rows of a lock that are sysroot rows: (arch, name).
fn sysroot_rows(lock: &str) -> Vec<(String, String)> {
    lock.split("[[deb]]")
        .filter(|r| r.contains("\nsysroot = true\n"))
        .map(|r| {
            let f = |k: &str| {
                r.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                    .unwrap()
                    .trim_end_matches('"')
                    .to_string()
            };
            (f("arch"), f("name"))
        })
        .collect()
}

#[test]
fn three_gnu_architectures_link_bookworm_sysroots_and_pass_the_self_test_under_qemu() {
    let (dir, stderr, report) = tls_released();
    let checks = checks(report);
    for target in [
        "gnu linux/amd64",
        "gnu linux/arm64",
        "gnu linux/arm/v7",
        "musl linux/amd64",
    ] {
        for name in ["self-test", "ca-roots"] {
            assert!(
                checks
                    .iter()
                    .any(|(t, n, passed)| t == target && n == name && *passed),
                "{target}: no passing {name} check in {checks:?}"
            );
        }
    }
    // The ARM images ran under QEMU with the strict CPU (the plan's `cpu` per platform).
    let o = ok(run(
        dir,
        &["-c", "pipeline-sysroots.yaml", "plan", "--json"],
        &[NO_NETWORK],
    ));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in plan["images"][0]["platforms"].as_array().unwrap() {
        if p["platform"] != "linux/amd64" {
            assert!(
                p["cpu"].as_str().is_some_and(|c| c.starts_with("cortex-")),
                "{p:#}"
            );
        }
    }
    // Each gnu build linked its own architecture's sysroot (the plan names it), and the lock
    // holds its rows.
    let rows = sysroot_rows(&std::fs::read_to_string(dir.join("pipeline.lock")).unwrap());
    let sysroots = plan["sysroots"]["targets"].as_array().unwrap();
    for (arch, multiarch) in [
        ("amd64", "x86_64-linux-gnu"),
        ("arm64", "aarch64-linux-gnu"),
        ("armhf", "arm-linux-gnueabihf"),
    ] {
        let t = sysroots
            .iter()
            .find(|t| t["arch"] == arch)
            .unwrap_or_else(|| panic!("{arch}: {sysroots:?}"));
        let root = PathBuf::from(t["sysroot"].as_str().unwrap_or_else(|| panic!("{t:#}")));
        assert!(root.starts_with(dir.join("target/shipit/sysroot")), "{t:#}");
        let lib = root.join(format!("usr/lib/{multiarch}"));
        assert!(lib.join("libssl.so").exists(), "{}", lib.display());
        assert!(lib.join("pkgconfig/openssl.pc").exists());
        assert!(root.join("usr/include/openssl/ssl.h").exists());
        // The freshness stamp records the command the binary was built with.
        let target = t["target"].as_str().unwrap();
        let stamp = std::fs::read_to_string(dir.join(format!(
            "target/shipit/{target}/{target}/release/tlsapp.shipit-fresh.json"
        )))
        .unwrap();
        assert!(
            stamp.contains(&format!("PKG_CONFIG_SYSROOT_DIR={}", root.display())),
            "{arch}: the build did not use {}:\n{stamp}",
            root.display()
        );
        for name in ["libc6-dev", "libssl-dev", "libssl3"] {
            assert!(
                rows.contains(&(arch.to_string(), name.to_string())),
                "{arch} {name}: {rows:?}"
            );
        }
    }
    assert!(stderr.contains("glibc floor 2.34"), "{stderr}");
}

#[test]
fn a_second_release_reuses_the_sysroots_without_network() {
    let (dir, _, _) = tls_released();
    let _lock = lock_fixture(dir);
    let o = ok(run(
        dir,
        &[
            "-c",
            "pipeline-sysroots.yaml",
            "--out",
            "dist-sysroots-again",
            "release",
            "--no-push",
            "--locked",
        ],
        &[NO_NETWORK],
    ));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains(".debs from"), "{stderr}");
    assert!(!stderr.contains("assembled in"), "{stderr}");
    for p in [
        "linux/amd64 (gnu)",
        "linux/arm64 (gnu)",
        "linux/arm/v7 (gnu)",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(p) && l.contains("fresh: no toolchain started")),
            "{p} rebuilt:\n{stderr}"
        );
    }
}

#[test]
fn locked_without_the_sysroot_rows_fails_naming_them_before_compiling() {
    let (dir, _, _) = tls_released();
    let lock = std::fs::read_to_string(dir.join("pipeline.lock")).unwrap();
    // The same lock without its sysroot rows, beside a fresh copy of the sources.
    let kept: Vec<&str> = lock
        .split("[[deb]]")
        .filter(|r| !r.contains("\nsysroot = true\n"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/tls-client"), tmp.path());
    std::fs::write(tmp.path().join("pipeline.yaml"), tls_pipeline()).unwrap();
    std::fs::write(tmp.path().join("pipeline.lock"), kept.join("[[deb]]")).unwrap();
    let o = run(
        tmp.path(),
        &["build", "--locked", "--variant", "gnu"],
        &[NO_NETWORK],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    for want in [
        "--locked",
        "libc6-dev",
        "libssl-dev",
        "bookworm/amd64",
        "bookworm/arm64",
        "bookworm/armhf",
        "shipit lock",
    ] {
        assert!(stderr.contains(want), "{want}: {}", text(&o));
    }
    assert!(!stderr.contains("Compiling"), "{}", text(&o));
    assert!(!tmp.path().join("target/shipit/sysroot").exists());
}

#[test]
fn plan_shows_the_glibc_floor_and_refuses_a_lower_pin_at_the_key() {
    let (dir, _, _) = tls_released();
    let o = ok(run(
        dir,
        &["-c", "pipeline-sysroots.yaml", "plan"],
        &[NO_NETWORK],
    ));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for arch in ["amd64", "arm64", "armhf"] {
        assert!(stdout.contains(&format!("bookworm {arch}")), "{stdout}");
    }
    assert!(
        stdout.contains("glibc floor 2.34 — libssl3 ")
            && stdout.contains("from bookworm needs GLIBC_2.34"),
        "{stdout}"
    );
    let o = ok(run(
        dir,
        &["-c", "pipeline-sysroots.yaml", "plan", "--json"],
        &[NO_NETWORK],
    ));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let targets = plan["sysroots"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "{plan:#}");
    for t in targets {
        assert_eq!(t["glibc_floor"]["version"], "2.34", "{t:#}");
        assert_eq!(t["glibc_floor"]["package"], "libssl3", "{t:#}");
        assert_eq!(t["suite"], "bookworm");
    }
    // build.glibc below what libssl3 needs: exit 2 at the key, naming the library.
    let low = tls_pipeline().replace("glibc: \"2.34\"", "glibc: \"2.31\"");
    assert_ne!(low, tls_pipeline());
    let line = low
        .lines()
        .position(|l| l.contains("glibc: \"2.31\""))
        .unwrap()
        + 1;
    std::fs::write(dir.join("pipeline-lowpin.yaml"), &low).unwrap();
    let o = run(dir, &["-c", "pipeline-lowpin.yaml", "plan"], &[NO_NETWORK]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("pipeline-lowpin.yaml:{line}:3")),
        "{}",
        text(&o)
    );
    for want in ["GLIBC_2.34", "libssl3", ".so.3", "2.31"] {
        assert!(stderr.contains(want), "{want}: {}", text(&o));
    }
}

/// The SQLite example released for gnu amd64 and arm64 (once): (its dir, release.json).
fn sqlite_released() -> &'static (PathBuf, Value) {
    static DONE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = example_dir("sqlite-app");
        let _lock = lock_fixture(&dir);
        ok(run(&dir, &["release", "--no-push"], &[]));
        let report: Value =
            serde_json::from_slice(&std::fs::read(dir.join("dist/release.json")).unwrap()).unwrap();
        (dir, report)
    })
}

#[test]
fn sqlite_without_bundled_links_debians_libsqlite3_and_its_self_test_passes() {
    let (dir, report) = sqlite_released();
    let checks = checks(report);
    for target in ["gnu linux/amd64", "gnu linux/arm64"] {
        assert!(
            checks
                .iter()
                .any(|(t, n, passed)| t == target && n == "self-test" && *passed),
            "{target}: {checks:?}"
        );
    }
    let rows = sysroot_rows(&std::fs::read_to_string(dir.join("pipeline.lock")).unwrap());
    for arch in ["amd64", "arm64"] {
        assert!(rows.contains(&(arch.to_string(), "libsqlite3-dev".to_string())));
    }
    let o = ok(run(dir, &["plan"], &[NO_NETWORK]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("— libsqlite3-0 "), "{stdout}");
}

#[test]
fn sqlite_image_without_libsqlite3_0_fails_naming_the_library_and_its_package() {
    let (dir, _) = sqlite_released();
    let p = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    let without = p.replace("packages: [libsqlite3-0]", "packages: []");
    assert_ne!(p, without);
    std::fs::write(dir.join("pipeline-nolib.yaml"), without).unwrap();
    // This run prunes libsqlite3-0 from the shared pipeline.lock: put it back afterwards.
    let _lock = lock_fixture(dir);
    let lock = std::fs::read(dir.join("pipeline.lock")).unwrap();
    let o = run(
        dir,
        &[
            "-c",
            "pipeline-nolib.yaml",
            "--out",
            "dist-nolib",
            "release",
            "--no-push",
        ],
        &[],
    );
    std::fs::write(dir.join("pipeline.lock"), lock).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("libsqlite3.so.0") && all.contains("libsqlite3-0"),
        "{all}"
    );
    assert!(all.contains("no tag moved"), "{all}");
}
