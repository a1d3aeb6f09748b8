//! C libraries end to end with the TLS example (examples/tls-client, the `openssl` crate without
//! `vendored`): a missing `-dev` package is an error naming the crate chain before any compiler
//! runs; a gnu image without libssl3 (a Debian base layout, or `deb:bookworm` without it in
//! image.packages) fails verification naming `libssl.so.3` and `libssl3` and no tag moves;
//! without a CA bundle the CA check fails; with both, gnu (this machine's libssl-dev, natively)
//! and musl (OpenSSL built statically by shipit, for x86_64 and aarch64, and for linux/arm/v7 and
//! linux/arm/v6 with -Zbuild-std, checked on QEMU's cortex-a7 and arm1176) pass and `--self-test`
//! finds the roots under QEMU; a build that still fails ends its error with a hint naming the
//! package and the key. One shared fixture: the example built once for
//! linux/amd64 gnu and linux/amd64 + linux/arm64 musl (shipit's static OpenSSL is cached in
//! ~/.cache/shipit/openssl, so only the first run on a machine pays for it).

use crate::support::fixture::{EPOCH, copy_tree, debian_base, repo, run_ok};
use crate::support::shipit;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The TLS example with its two Debian bases (`base/bare`: libc6, libgcc-s1; `base/ssl`: and
/// libssl3) and a CA bundle file, built once for every platform of pipeline-oci.yaml.
fn tls_example() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::var_os("SHIPIT_FIXTURE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixture"));
        std::fs::create_dir_all(&root).unwrap();
        let lock = std::fs::File::create(root.join(".lock-tls")).unwrap();
        // SAFETY: flock on an open file; released when `lock` is dropped at the end.
        assert_eq!(
            unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
            0
        );
        let dir = root.join("tls-client");
        copy_tree(&repo().join("examples/tls-client"), &dir);
        std::fs::copy(
            "/etc/ssl/certs/ca-certificates.crt",
            dir.join("ca-certificates.crt"),
        )
        .expect("this machine's CA bundle (apt-get install ca-certificates)");
        debian_base(
            &dir.join("base/bare"),
            "bookworm",
            "amd64",
            "libc6,libgcc-s1",
        );
        debian_base(
            &dir.join("base/ssl"),
            "bookworm",
            "amd64",
            "libc6,libgcc-s1,libssl3",
        );
        run_ok(
            shipit(&dir)
                .args(["-c", "pipeline-oci.yaml", "build", "-q"])
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        drop(lock);
        dir
    })
}

/// pipeline-oci.yaml with the gnu base and the image files changed, written as
/// `pipeline-<name>.yaml`; returns the flags selecting it and its own output dir.
fn variant(name: &str, gnu_base: &str, ca_bundle: bool) -> (Vec<String>, PathBuf) {
    let dir = tls_example();
    let mut p = std::fs::read_to_string(dir.join("pipeline-oci.yaml"))
        .unwrap()
        .replace("oci:base/bookworm", gnu_base);
    if !ca_bundle {
        let start = p.find("  files:\n").unwrap();
        let end = start + p[start..].find("verify:").unwrap();
        p.replace_range(start..end, "");
    }
    std::fs::write(dir.join(format!("pipeline-{name}.yaml")), p).unwrap();
    let out = dir.join(format!("dist-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    let flags = vec![
        "-c".into(),
        format!("pipeline-{name}.yaml"),
        "--out".into(),
        out.display().to_string(),
    ];
    (flags, out)
}

/// `shipit release --no-push` with these flags: (exit code, stdout + stderr, release.json).
fn release(flags: &[String], more: &[&str]) -> (i32, String, Option<Value>, PathBuf) {
    let out = PathBuf::from(&flags[3]);
    let o = shipit(tls_example())
        .args(flags)
        .args(["release", "--no-push"])
        .args(more)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report = std::fs::read(out.join("release.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    (o.status.code().unwrap_or(-1), text, report, out)
}

fn assert_only_staging(out: &Path) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("oci/index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert!(!refs.is_empty(), "no refs at all");
    assert!(
        refs.iter().all(|r| r.starts_with("staging-")),
        "a release tag moved: {refs:?}"
    );
}

/// A fresh copy of the example's sources (no target dir) with `pipeline.yaml` replaced.
fn fresh_copy(pipeline: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/tls-client"), tmp.path());
    std::fs::write(tmp.path().join("pipeline.yaml"), pipeline).unwrap();
    tmp
}

#[test]
fn missing_libssl_dev_is_an_error_naming_the_chain_before_any_compiler_runs() {
    let p = "version: 1\nproject: { manifest: Cargo.toml }\nplatforms: [linux/arm64]\n\
             variants:\n  gnu: { base: scratch }\nimage: { repository: localhost/tlsapp }\n";
    let dir = fresh_copy(p);
    let o = shipit(dir.path()).args(["build"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("linux/arm64 (gnu): tlsapp → openssl → openssl-sys needs libssl-dev to build: add `build.packages: [libssl-dev]`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was compiled"), "{stderr}");
    assert!(
        !dir.path().join("target").exists(),
        "a target dir was created"
    );
    assert!(!dir.path().join("dist/bin").exists());

    // `plan --json` says the same per platform, and exits 2.
    let o = shipit(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ssl = &plan["syslibs"][0]["syslibs"][0];
    assert_eq!(plan["syslibs"][0]["platform"], "linux/arm64");
    assert_eq!(ssl["crate"], "openssl-sys");
    assert_eq!(
        ssl["chain"],
        serde_json::json!(["tlsapp", "openssl", "openssl-sys"])
    );
    assert_eq!(ssl["needs_build"], serde_json::json!(["libssl-dev"]));
    assert_eq!(ssl["needs_runtime"], serde_json::json!(["libssl3"]));
    assert_eq!(ssl["missing"], "build.packages: [libssl-dev]");
    assert!(!dir.path().join("target").exists());

    // musl needs nothing from the user: shipit builds OpenSSL and says so.
    std::fs::write(
        dir.path().join("musl.yaml"),
        p.replace("gnu: { base: scratch }", "musl: { base: scratch }"),
    )
    .unwrap();
    let o = shipit(dir.path())
        .args(["-c", "musl.yaml", "plan"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "openssl-sys (tlsapp → openssl → openssl-sys): static openssl built by shipit"
        ),
        "{stdout}"
    );
}

#[test]
fn gnu_image_without_libssl3_fails_naming_the_library_and_its_package_and_no_tag_moves() {
    let (flags, out) = variant("nolibssl", "oci:base/bare", true);
    let (code, text, report, _) = release(&flags, &["--variant", "gnu"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("libssl.so.3"), "{text}");
    assert!(text.contains("add libssl3 to image.packages"), "{text}");
    // No tag moved: release.json (if written) lists none, and the layout holds staging refs only.
    if let Some(report) = report {
        for image in report["images"].as_array().unwrap() {
            assert_eq!(image["tags_moved"], serde_json::json!([]), "{report}");
        }
    }
    assert_only_staging(&out);
}

#[test]
fn gnu_image_without_a_ca_bundle_fails_the_ca_check() {
    let (flags, out) = variant("noca", "oci:base/ssl", false);
    let (code, text, _, _) = release(&flags, &["--variant", "gnu"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("ca-roots"), "{text}");
    assert!(text.contains("it links libssl.so.3"), "{text}");
    assert!(
        text.contains("add ca-certificates to image.packages"),
        "{text}"
    );
    assert_only_staging(&out);
}

#[test]
fn gnu_and_static_musl_images_with_libssl3_and_a_bundle_pass_and_find_the_roots() {
    let (flags, out) = variant("ok", "oci:base/ssl", true);
    let (code, text, report, _) = release(&flags, &[]);
    assert_eq!(code, 0, "{text}");
    let report = report.expect("release.json");
    let mut seen = Vec::new();
    for image in report["images"].as_array().unwrap() {
        for p in image["platforms"].as_array().unwrap() {
            let checks = p["checks"].as_array().unwrap();
            let find = |n: &str| checks.iter().find(|c| c["name"] == n).cloned();
            let st = find("self-test").unwrap_or_else(|| panic!("{p}"));
            assert_eq!(st["passed"], true, "{st}");
            let ca = find("ca-roots").unwrap_or_else(|| panic!("no ca-roots check: {p}"));
            assert_eq!(ca["passed"], true, "{ca}");
            seen.push(format!(
                "{} {}",
                image["variant"].as_str().unwrap(),
                p["platform"].as_str().unwrap()
            ));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["gnu linux/amd64", "musl linux/amd64", "musl linux/arm64"]
    );
    // The musl binaries are static: OpenSSL is inside.
    let build: Value =
        serde_json::from_slice(&std::fs::read(out.join("build.json")).unwrap()).unwrap();
    for b in build["built"].as_array().unwrap() {
        let (libc, elf) = (b["libc"].as_str().unwrap(), &b["elf"]);
        if libc == "musl" {
            assert!(elf["interpreter"].is_null(), "{b}");
            assert_eq!(elf["needed"], serde_json::json!([]), "{b}");
        } else {
            assert!(
                elf["needed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n == "libssl.so.3"),
                "{b}"
            );
        }
    }
}

#[test]
fn a_build_that_still_fails_shows_the_log_its_last_lines_and_a_hint_naming_the_package() {
    // A crate whose build script links libpq by name: no `links` key, so the diagnosis has
    // nothing to say and the linker is the first to notice.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    crate::support::write(
        &d.join("Cargo.toml"),
        "[package]\nname = \"pqapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    crate::support::write(
        &d.join("build.rs"),
        "fn main() { println!(\"cargo:rustc-link-lib=pq\"); }\n",
    );
    crate::support::write(
        &d.join("src/main.rs"),
        "unsafe extern \"C\" { fn PQlibVersion() -> i32; }\nfn main() { println!(\"{}\", unsafe { PQlibVersion() }); }\n",
    );
    crate::support::write(
        &d.join("pipeline.yaml"),
        "version: 1\nproject: { manifest: Cargo.toml }\nplatforms: [linux/arm64]\n\
         variants:\n  gnu: { base: scratch }\nimage: { repository: localhost/pqapp }\n",
    );
    let o = shipit(d).args(["build"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // The target, the log, the last lines, and the hint as the last line.
    assert!(
        stderr.contains("build of linux/arm64 (gnu) failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--target aarch64-unknown-linux-gnu"),
        "{stderr}"
    );
    let log = d.join("dist/logs/build-gnu-linux-arm64.log");
    assert!(
        stderr.contains(&format!("(full log: {})", log.display())),
        "{stderr}"
    );
    assert!(stderr.contains("last lines of output:"), "{stderr}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("pq"));
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some(
            "hint: the linker cannot find -lpq: add libpq-dev to build.packages in pipeline.yaml (and libpq5 to image.packages, to run it)"
        ),
        "{stderr}"
    );
}

#[test]
fn arm_musl_images_link_shipits_static_openssl_and_pass_on_the_strict_cpus() {
    // linux/arm/v7 and linux/arm/v6 musl: no rust-std here, so -Zbuild-std with zig; shipit's
    // OpenSSL for each is built with the device's own flags (ARMv6 + VFPv2 for arm1176), and
    // the ELF check would refuse ARMv7 code in the v6 image.
    let dir = tls_example();
    let p = std::fs::read_to_string(dir.join("pipeline-oci.yaml"))
        .unwrap()
        .replace(
            "platforms: [linux/amd64, linux/arm64]",
            "platforms: [linux/arm/v7, linux/arm/v6]",
        )
        .replace(
            "  gnu:  { base: \"oci:base/bookworm\", platforms: [linux/amd64] }\n",
            "",
        );
    assert!(
        p.contains("[linux/arm/v7, linux/arm/v6]") && !p.contains("gnu:"),
        "{p}"
    );
    std::fs::write(dir.join("pipeline-arm.yaml"), &p).unwrap();
    let out = dir.join("dist-arm");
    let _ = std::fs::remove_dir_all(&out);
    let flags: Vec<String> = vec![
        "-c".into(),
        "pipeline-arm.yaml".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    let (code, text, report, _) = release(&flags, &[]);
    assert_eq!(code, 0, "{text}");
    let report = report.expect("release.json");
    // The ELF check saw each device's own code (no ARMv7 in the v6 binary, no VFPv3-D32 or
    // NEON in the v7 one), and the checks passed.
    let elf_expect = [
        (
            "linux/arm/v6",
            "ARMv6 (Tag_CPU_arch v6, Thumb-1, VFPv2), static",
        ),
        (
            "linux/arm/v7",
            "ARMv7 (Tag_CPU_arch v7, Thumb-2, VFPv3-D16), static",
        ),
    ];
    let mut seen = Vec::new();
    for image in report["images"].as_array().unwrap() {
        for p in image["platforms"].as_array().unwrap() {
            let checks = p["checks"].as_array().unwrap();
            for name in ["self-test", "ca-roots", "elf"] {
                let c = checks
                    .iter()
                    .find(|c| c["name"] == name)
                    .unwrap_or_else(|| panic!("no {name} check: {p}"));
                assert_eq!(c["passed"], true, "{c}");
            }
            let platform = p["platform"].as_str().unwrap();
            let elf = checks.iter().find(|c| c["name"] == "elf").unwrap();
            let (_, want) = elf_expect.iter().find(|(pl, _)| *pl == platform).unwrap();
            assert!(elf["detail"].as_str().unwrap().ends_with(want), "{elf}");
            seen.push(platform.to_string());
        }
    }
    seen.sort();
    assert_eq!(seen, ["linux/arm/v6", "linux/arm/v7"]);
    // Their QEMU runs used the strict CPUs: the plan's.
    let o = shipit(dir)
        .args(["-c", "pipeline-arm.yaml", "plan", "--json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cpus: Vec<String> = plan["images"][0]["platforms"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan}"))
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["platform"].as_str().unwrap(),
                p["cpu"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(cpus, ["linux/arm/v7 cortex-a7", "linux/arm/v6 arm1176"]);
    let build: Value =
        serde_json::from_slice(&std::fs::read(out.join("build.json")).unwrap()).unwrap();
    for b in build["built"].as_array().unwrap() {
        let elf = &b["elf"];
        assert!(elf["interpreter"].is_null(), "{b}");
        assert_eq!(elf["needed"], serde_json::json!([]), "{b}");
    }
}

/// The example's gnu image on `deb:bookworm` with `image.packages: [packages]` (none when
/// empty) and no image.files, as `<name>/pipeline.yaml` (its own directory: its own pipeline.lock); returns
/// the flags selecting it and its own output dir.
fn deb_variant(name: &str, packages: &str) -> (Vec<String>, PathBuf) {
    let dir = tls_example();
    let mut p = std::fs::read_to_string(dir.join("pipeline-oci.yaml"))
        .unwrap()
        .replace("oci:base/bookworm", "deb:bookworm")
        .replace(
            "manifest: Cargo.toml",
            &format!("manifest: {}", dir.join("Cargo.toml").display()),
        );
    let start = p.find("  files:\n").unwrap();
    let end = start + p[start..].find("verify:").unwrap();
    let list = if packages.is_empty() {
        String::new()
    } else {
        format!("  packages: [{packages}]\n")
    };
    p.replace_range(start..end, &list);
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("pipeline.yaml"), p).unwrap();
    let out = dir.join(format!("dist-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    let flags = vec![
        "-c".into(),
        format!("{name}/pipeline.yaml"),
        "--out".into(),
        out.display().to_string(),
    ];
    (flags, out)
}

#[test]
fn deb_bookworm_without_libssl3_in_image_packages_fails_naming_it_and_no_tag_moves() {
    // Not even ca-certificates: it depends on openssl, which brings libssl3 along.
    let (flags, out) = deb_variant("deb-nolibssl", "");
    let (code, text, report, _) = release(&flags, &["--variant", "gnu"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("libssl.so.3"), "{text}");
    assert!(text.contains("add libssl3 to image.packages"), "{text}");
    if let Some(report) = report {
        for image in report["images"].as_array().unwrap() {
            assert_eq!(image["tags_moved"], serde_json::json!([]), "{report}");
        }
    }
    assert_only_staging(&out);
}

#[test]
fn deb_bookworm_without_ca_certificates_in_image_packages_fails_the_ca_check() {
    let (flags, out) = deb_variant("deb-noca", "libssl3");
    let (code, text, _, _) = release(&flags, &["--variant", "gnu"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("ca-roots"), "{text}");
    assert!(
        text.contains("add ca-certificates to image.packages"),
        "{text}"
    );
    assert_only_staging(&out);
}
