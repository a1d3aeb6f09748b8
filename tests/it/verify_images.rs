//! `shipit verify` against every failure users meet in production, each a REAL image made in the
//! test (packaged by shipit from a real binary, assembled from a hand-written layer, or built by
//! buildah/skopeo), never a mock: wrong architecture, ARMv7 code on ARMv6 (statically and by
//! SIGILL under `-cpu arm1176`), glibc on scratch, a missing libssl, a too-new glibc on bullseye,
//! a server that never answers /health, one that ignores SIGTERM, a program that hangs (killed,
//! no process left behind), a root user, and malicious layers (refused, nothing outside touched),
//! a config whose rootfs contradicts its layers, a binary with an impossible ELF header.
//! Every failure must exit 1, name the check and the cause, and leave only staging refs. And the
//! verification cache: a rerun of the same bytes with the same checks runs no guest.

use crate::support::fixture::{
    EPOCH, built, debian_base, example, example_copy, example_pipeline, example_variant, repo,
    run_ok,
};
use crate::support::shipit;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A shared lock on the shared fixture, held while a test reads it: other test processes (other
/// worktrees share `SHIPIT_FIXTURE_DIR`) rebuild and repackage it under the exclusive lock when
/// they start, and would otherwise delete `dist/` under a reader. Initialises the fixture first,
/// so this process never asks for the exclusive lock while holding the shared one.
struct FixtureRead(#[allow(dead_code)] std::fs::File); // held for its lock

fn read_fixture() -> FixtureRead {
    let root = example().parent().unwrap();
    let f = std::fs::File::create(root.join(".lock")).unwrap();
    // SAFETY: flock on an open file; released when the FixtureRead is dropped.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_SH) };
    assert_eq!(rc, 0, "flock {:?}", root.join(".lock"));
    FixtureRead(f)
}

/// The `misbehave` fixture (tests/fixtures/misbehave), built once per run: static x86-64 musl.
fn misbehave() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("misbehave-target");
        run_ok(
            Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "--target",
                    "x86_64-unknown-linux-musl",
                ])
                .arg("--manifest-path")
                .arg(repo().join("tests/fixtures/misbehave/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir),
        );
        target_dir.join("x86_64-unknown-linux-musl/release/misbehave")
    })
}

/// A pipeline for the example project with one variant and the given image and verify sections.
fn pipeline(variant: &str, platforms: &str, image_extra: &str, checks: &str) -> String {
    format!(
        "version: 1
project:
  manifest: Cargo.toml
  version: cargo
build:
  glibc: \"2.36\"
platforms: [{platforms}]
variants:
  {variant}
image:
  repository: localhost/verify-test
{image_extra}
verify:
  cpu: strict
  checks:
{checks}
"
    )
}

const USER: &str = "  user: \"10001:10001\"\n  entrypoint: [\"/usr/local/bin/hello-server\"]";

const VERSION_CHECK: &str = "    - name: version
      run: [\"--version\"]
      stdout: 'hello-server \\d+\\.\\d+\\.\\d+'
      timeout: 10s";

const SERVE_CHECK: &str = "    - name: serves
      serve: { port: 8080, path: /health, status: 200, timeout: 10s }
      stop: { signal: SIGTERM, within: 5s }";

/// Copies `bin` over `dist/bin/<libc>/<slug>/hello-server` of a project copy.
fn replace_binary(dir: &Path, libc: &str, slug: &str, bin: &Path) {
    let dest = dir
        .join("dist/bin")
        .join(libc)
        .join(slug)
        .join("hello-server");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&dest);
    std::fs::copy(bin, &dest).unwrap_or_else(|e| panic!("copy {bin:?} -> {dest:?}: {e}"));
}

/// `shipit package` (must succeed) and then `shipit verify --json`, both with `args`.
fn package_and_verify(dir: &Path, args: &[&str]) -> Output {
    run_ok(
        shipit(dir)
            .arg("package")
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    verify(dir, args, &[])
}

/// `shipit verify --json ARGS` in `dir`, with extra environment.
fn verify(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = shipit(dir);
    c.args(["verify", "--json"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let out = c.output().unwrap();
    eprintln!(
        "shipit verify {args:?}: {} in {:.2}s\n{}",
        out.status,
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON report's checks, by platform: `(platform, name) -> (passed, detail + fix)`.
fn checks(out: &Output) -> BTreeMap<(String, String), (bool, String)> {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report on stdout ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let mut m = BTreeMap::new();
    for p in report["platforms"].as_array().unwrap() {
        for c in p["checks"].as_array().unwrap() {
            let text = format!(
                "{}\nfix: {}",
                c["detail"].as_str().unwrap_or(""),
                c["fix"].as_str().unwrap_or("")
            );
            m.insert(
                (
                    p["platform"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                ),
                (c["passed"].as_bool().unwrap(), text),
            );
        }
    }
    m
}

/// Asserts exit 1, that check `name` on `platform` failed with every needle in its text, that the
/// final error names it, and returns the check's text.
fn assert_failed(out: &Output, platform: &str, name: &str, needles: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must exit 1; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = checks(out);
    let (passed, text) = all
        .get(&(platform.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no check `{name}` on {platform} in {all:#?}"));
    assert!(!passed, "check `{name}` passed; all checks: {all:#?}");
    for n in needles {
        assert!(
            text.contains(n),
            "check `{name}` on {platform} does not say {n:?}:\n{text}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(
        last.contains("verification failed") && last.contains(name),
        "the final error must name the failed check `{name}`: {last:?}"
    );
    text.clone()
}

/// Every ref in `dist/oci` is a staging ref: no release tag appeared.
fn assert_only_staging(dir: &Path) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dist/oci/index.json")).unwrap()).unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert!(!refs.is_empty(), "dist/oci has no refs at all");
    assert!(
        refs.iter().all(|r| r.starts_with("staging-")),
        "a release tag appeared in dist/oci: {refs:?}"
    );
}

/// PIDs whose environment holds `marker` (as root we can read every /proc/PID/environ).
fn processes_with(marker: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    found
}

/// A unique marker for this test process and call.
fn marker(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "SHIPIT_TEST_{what}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// The (ref name -> manifest digest) map of a layout's index.json.
fn refs(layout: &Path) -> BTreeMap<String, String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            Some((
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()?
                    .to_string(),
                m["digest"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

fn layer_digests(layout: &Path, manifest_digest: &str) -> Vec<String> {
    blob(layout, manifest_digest)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The example passes

/// Every platform image of the example passes: 7 images, version and serve checks under QEMU's
/// strict CPUs; the gnu ones carry the Debian base's layers first, the musl ones are one layer on
/// scratch.
#[test]
fn example_images_pass_on_every_platform() {
    let _fixture = read_fixture();
    let dir = example();
    let out = verify(dir, &[], &[]);
    assert!(out.status.success(), "the example must verify");
    let all = checks(&out);
    let platforms: std::collections::BTreeSet<&str> = all.keys().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        platforms.into_iter().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64"]
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = report["platforms"].as_array().unwrap();
    assert_eq!(images.len(), 7, "3 gnu + 4 musl platform images");
    for p in images {
        assert_eq!(p["passed"], true, "{p:#}");
        let names: Vec<&str> = p["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for want in ["unpack", "platform", "user", "elf", "version", "serves"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }

    let oci = dir.join("dist/oci");
    let r = refs(&oci);
    let base = dir.join("base/bookworm");
    let base_refs = refs(&base);
    for (slug, base_tag) in [
        ("linux-amd64", "bookworm-amd64"),
        ("linux-arm64", "bookworm-arm64"),
        ("linux-arm-v7", "bookworm-armhf"),
    ] {
        let gnu = layer_digests(&oci, &r[&format!("staging-gnu-{slug}")]);
        let debian = layer_digests(&base, &base_refs[base_tag]);
        assert_eq!(gnu.len(), debian.len() + 1, "{slug}: base layers + 1");
        assert_eq!(
            gnu[..debian.len()],
            debian[..],
            "{slug}: on the Debian base"
        );
    }
    for slug in ["linux-amd64", "linux-arm64", "linux-arm-v7", "linux-arm-v6"] {
        let musl = layer_digests(&oci, &r[&format!("staging-musl-{slug}")]);
        assert_eq!(musl.len(), 1, "{slug}: musl on scratch is one layer");
    }
}

// ---------------------------------------------------------------------------------------------
// Wrong binaries, each packaged by shipit

/// An arm64 binary packaged as the amd64 image: the ELF machine check names both architectures.
#[test]
fn arm64_binary_in_amd64_image_fails() {
    let _fixture = read_fixture();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64",
        USER,
        VERSION_CHECK,
    );
    let dir = example_copy(Some(&p));
    replace_binary(
        dir.path(),
        "musl",
        "linux-amd64",
        &built("musl", "linux-arm64"),
    );
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/amd64", "--variant", "musl"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "elf",
        &["AArch64", "linux/amd64", "x86_64-unknown-linux-musl"],
    );
    assert_only_staging(dir.path());
}

/// An ARMv7 binary packaged as the arm/v6 image: caught statically (ARM attributes) AND by running
/// it under `qemu-arm -cpu arm1176`, which dies with SIGILL (the shell's exit 132), explained.
#[test]
fn armv7_binary_in_armv6_image_fails_statically_and_by_sigill() {
    let _fixture = read_fixture();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/arm/v6",
        USER,
        &format!("{VERSION_CHECK}\n{SERVE_CHECK}"),
    );
    let dir = example_copy(Some(&p));
    replace_binary(
        dir.path(),
        "musl",
        "linux-arm-v6",
        &built("musl", "linux-arm-v7"),
    );
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/arm/v6", "--variant", "musl"],
    );
    assert_failed(
        &out,
        "linux/arm/v6",
        "elf",
        &["ARMv7", "linux/arm/v6 needs ARMv6", "SIGILL"],
    );
    let run = assert_failed(
        &out,
        "linux/arm/v6",
        "version",
        &["-cpu arm1176", "SIGILL", "illegal instruction on arm1176"],
    );
    assert!(
        run.contains("Illegal instruction"),
        "qemu's own words: {run}"
    );
    assert_failed(&out, "linux/arm/v6", "serves", &["SIGILL"]);
    assert_only_staging(dir.path());
}

/// A glibc binary on scratch (the musl variant): no loader in the image, said statically, and the
/// run fails too.
#[test]
fn glibc_binary_on_scratch_fails() {
    let _fixture = read_fixture();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64",
        USER,
        VERSION_CHECK,
    );
    let dir = example_copy(Some(&p));
    replace_binary(
        dir.path(),
        "musl",
        "linux-amd64",
        &built("gnu", "linux-amd64"),
    );
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/amd64", "--variant", "musl"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "elf",
        &["glibc", "ld-linux-x86-64.so.2"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "interpreter",
        &["/lib64/ld-linux-x86-64.so.2", "does not have", "glibc"],
    );
    assert_failed(&out, "linux/amd64", "version", &["loader"]);
    assert_only_staging(dir.path());
}

/// A glibc program that needs libssl.so.3, on the Debian bookworm base without libssl3: the
/// library check names it, and running it fails with the loader's own message.
#[test]
fn missing_libssl_on_debian_base_fails() {
    let _fixture = read_fixture();
    let p = pipeline(
        "gnu: { base: \"deb:bookworm\" }",
        "linux/amd64",
        USER,
        "    - name: version
      run: [\"--version\"]
      timeout: 10s",
    );
    let dir = example_copy(Some(&p));
    let c = dir.path().join("csrc");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("ssl.c"),
        "int SSL_library_init(void) { return 1; }\n",
    )
    .unwrap();
    std::fs::write(
        c.join("main.c"),
        "#include <stdio.h>\nint SSL_library_init(void);\n\
         int main(void) { puts(\"hello-server 0.0.1\"); return SSL_library_init() == 1 ? 0 : 1; }\n",
    )
    .unwrap();
    run_ok(Command::new("cc").current_dir(&c).args([
        "-shared",
        "-fPIC",
        "-Wl,-soname,libssl.so.3",
        "-o",
        "libssl.so.3",
        "ssl.c",
    ]));
    run_ok(Command::new("cc").current_dir(&c).args([
        "-o",
        "prog",
        "main.c",
        "-L.",
        "-l:libssl.so.3",
    ]));
    replace_binary(dir.path(), "gnu", "linux-amd64", &c.join("prog"));
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/amd64", "--variant", "gnu"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "libraries",
        &["libssl.so.3", "does not have", "add it to the base"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "version",
        &[
            "libssl.so.3: cannot open shared object file",
            "the base image lacks libssl.so.3",
        ],
    );
    assert_only_staging(dir.path());
}

/// The example compiled natively for aarch64-unknown-linux-gnu on this bookworm machine (needs
/// GLIBC_2.34) on a bullseye arm64 base (glibc 2.31): the glibc check names both versions, and the
/// run under QEMU fails with "version `GLIBC_2.34' not found".
#[test]
fn binary_needing_newer_glibc_than_bullseye_fails() {
    let _fixture = read_fixture();
    let p = pipeline(
        "gnu: { base: \"oci:base/bullseye\" }",
        "linux/arm64",
        USER,
        VERSION_CHECK,
    );
    let dir = example_copy(Some(&p));
    // The copy's `base` is a symlink to the shared fixture's: give this copy its own `base`.
    let shared_base = std::fs::read_link(dir.path().join("base")).unwrap();
    std::fs::remove_file(dir.path().join("base")).unwrap();
    std::fs::create_dir(dir.path().join("base")).unwrap();
    std::os::unix::fs::symlink(
        shared_base.join("bookworm"),
        dir.path().join("base/bookworm"),
    )
    .unwrap();
    debian_base(
        &dir.path().join("base/bullseye"),
        "bullseye",
        "arm64",
        "libc6,libgcc-s1",
    );

    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("glibc-new-target");
    run_ok(
        Command::new(env!("CARGO"))
            .current_dir(example())
            .args([
                "build",
                "--release",
                "--target",
                "aarch64-unknown-linux-gnu",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            ),
    );
    let bin = target_dir.join("aarch64-unknown-linux-gnu/release/hello-server");
    replace_binary(dir.path(), "gnu", "linux-arm64", &bin);
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/arm64", "--variant", "gnu"],
    );
    assert_failed(
        &out,
        "linux/arm64",
        "glibc",
        &[
            "GLIBC_2.34",
            "the image's glibc provides at most GLIBC_2.30",
            "cargo-zigbuild",
        ],
    );
    assert_failed(
        &out,
        "linux/arm64",
        "version",
        &["GLIBC_2.34' not found", "newer glibc"],
    );
    assert_only_staging(dir.path());
}

/// An image whose user is root fails the user check, naming uid 0 and the fix.
#[test]
fn root_user_fails() {
    let _fixture = read_fixture();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64",
        "  user: \"0:0\"\n  entrypoint: [\"/usr/local/bin/hello-server\"]",
        VERSION_CHECK,
    );
    let dir = example_copy(Some(&p));
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/amd64", "--variant", "musl"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "user",
        &["0:0 (uid 0)", "non-root", "verify.allow_root"],
    );
    // Everything else about the image is fine.
    let all = checks(&out);
    assert!(all[&("linux/amd64".into(), "version".into())].0);
    assert_only_staging(dir.path());
}

// ---------------------------------------------------------------------------------------------
// Misbehaving programs (tests/fixtures/misbehave, static amd64 on scratch)

/// A project copy whose musl amd64 binary is `misbehave`, run as `misbehave MODE`.
fn misbehaving(mode: &str, env: &str, checks: &str) -> tempfile::TempDir {
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64",
        &format!(
            "  user: \"10001:10001\"\n  entrypoint: [\"/usr/local/bin/hello-server\", \"{mode}\"]\n  env: {{ {env} }}"
        ),
        checks,
    );
    let dir = example_copy(Some(&p));
    replace_binary(dir.path(), "musl", "linux-amd64", misbehave());
    dir
}

const ARGS: [&str; 4] = ["--platform", "linux/amd64", "--variant", "musl"];

/// A server that accepts on its port but never answers GET /health: the serve check fails after
/// its 2 s timeout, saying what was asked and that nothing came back.
#[test]
fn server_whose_health_never_answers_fails() {
    let _fixture = read_fixture();
    let dir = misbehaving(
        "serve-no-health",
        "RUST_LOG: info",
        "    - name: serves
      serve: { port: 8080, path: /health, status: 200, timeout: 2s }
      stop: { signal: SIGTERM, within: 2s }",
    );
    let start = Instant::now();
    let out = package_and_verify(dir.path(), &ARGS);
    assert_failed(
        &out,
        "linux/amd64",
        "serves",
        &["GET /health got no answer within", "route"],
    );
    assert!(
        start.elapsed().as_secs() < 20,
        "bounded by the check's timeout"
    );
    assert_only_staging(dir.path());
}

/// A server that answers but ignores SIGTERM: the stop check fails after `within: 2s`, the process
/// group is killed, and the fix says to handle SIGTERM.
#[test]
fn server_ignoring_sigterm_fails() {
    let _fixture = read_fixture();
    let m = marker("SIGTERM");
    let dir = misbehaving(
        "ignore-sigterm",
        &format!("MARKER: {m}"),
        "    - name: serves
      serve: { port: 8080, path: /health, status: 200, timeout: 5s }
      stop: { signal: SIGTERM, within: 2s }",
    );
    let out = package_and_verify(dir.path(), &ARGS);
    assert_failed(
        &out,
        "linux/amd64",
        "serves",
        &[
            "did not exit within 2s of SIGTERM",
            "process group was killed",
            "handle SIGTERM",
        ],
    );
    assert_eq!(processes_with(&m), [], "the server survived verification");
    assert_only_staging(dir.path());
}

/// A program that hangs (and whose child hangs too, both ignoring SIGTERM): the run check is
/// killed at its 2 s timeout, and afterwards no process carrying the image's marker env var is
/// left anywhere on the machine.
#[test]
fn hanging_program_is_killed_with_no_process_left() {
    let _fixture = read_fixture();
    // The scan itself works: a process with the marker is found while it runs.
    let probe = marker("PROBE");
    let mut child = Command::new("sleep")
        .arg("30")
        .env("PROBE", &probe)
        .spawn()
        .unwrap();
    // `spawn` returns once the child exists, possibly before it has exec'd `sleep` (until then
    // /proc shows the parent's environment): look until it shows, for a few seconds at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = processes_with(&probe);
    while seen.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        seen = processes_with(&probe);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen.len(), 1, "the /proc scan must find a marked process");

    let m = marker("HANG");
    let dir = misbehaving(
        "hang",
        &format!("MARKER: {m}"),
        "    - name: exits
      run: []
      timeout: 2s",
    );
    let start = Instant::now();
    let out = package_and_verify(dir.path(), &ARGS);
    let took = start.elapsed();
    let text = assert_failed(
        &out,
        "linux/amd64",
        "exits",
        &["no exit within 2s", "process group was killed", "hangs"],
    );
    assert!(
        text.contains("misbehave: hanging"),
        "shows the last output: {text}"
    );
    eprintln!("hang check: whole package+verify took {took:?}");
    assert!(
        took.as_secs() < 20,
        "killed at the timeout, not later: {took:?}"
    );
    assert_eq!(processes_with(&m), [], "processes left behind");
    assert_only_staging(dir.path());
}

/// Two serve images verified at once, both on port P, while this test itself holds 0.0.0.0:P on
/// the host: each check runs in its own network namespace, so nothing collides.
#[test]
fn parallel_serve_checks_do_not_collide_on_ports() {
    let _fixture = read_fixture();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64, linux/arm64",
        &format!("{USER}\n  env: {{ PORT: \"{port}\" }}"),
        &format!(
            "    - name: serves
      serve: {{ port: {port}, path: /health, status: 200, timeout: 10s }}
      stop: {{ signal: SIGTERM, within: 5s }}"
        ),
    );
    let dir = example_copy(Some(&p));
    let out = package_and_verify(dir.path(), &["--variant", "musl", "--jobs", "2"]);
    assert!(out.status.success(), "both must pass");
    let all = checks(&out);
    for platform in ["linux/amd64", "linux/arm64"] {
        let (passed, text) = &all[&(platform.to_string(), "serves".to_string())];
        assert!(passed, "{platform}: {text}");
    }
    drop(held);
}

// ---------------------------------------------------------------------------------------------
// Malicious layers, assembled into a real image with shipit's own OCI code

/// One raw tar entry; names are written byte for byte (no validation), like an attacker would.
enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDevice(&'a str),
    Fifo(&'a str),
}

fn raw_layer(entries: &[Raw]) -> Vec<u8> {
    let mut tar = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, &str) = match e {
            Raw::File(n, d) => (n, d, tar::EntryType::Regular, ""),
            Raw::Symlink(n, t) => (n, b"", tar::EntryType::Symlink, t),
            Raw::Hardlink(n, t) => (n, b"", tar::EntryType::Link, t),
            Raw::CharDevice(n) => (n, b"", tar::EntryType::Char, ""),
            Raw::Fifo(n) => (n, b"", tar::EntryType::Fifo, ""),
        };
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        if matches!(e, Raw::CharDevice(_)) {
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        }
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    tar
}

/// Writes an amd64 image: a good layer with `misbehave` as the entrypoint, then `bad` (raw), tagged
/// `tag` in the layout at `dir`. Returns the bad layer's short digest.
fn malicious_image(dir: &Path, tag: &str, bad: &[Raw]) -> String {
    use shipit::oci::digest::Digest;
    use shipit::oci::image::{ImageSpec, build};
    use shipit::oci::index::Platform;
    use shipit::oci::layer::{Entry, LayerDigests};
    use shipit::oci::layout::Layout;

    let layout = Layout::create(dir).unwrap();
    let (_, good) = layout
        .write_layer(
            &[
                Entry::dir("usr", 0o755),
                Entry::dir("usr/local", 0o755),
                Entry::dir("usr/local/bin", 0o755),
                Entry::host_file("usr/local/bin/misbehave", misbehave(), 0o755),
            ],
            1_700_000_000,
        )
        .unwrap();
    let tar = raw_layer(bad);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let desc = layout
        .write_blob(shipit::oci::media::OCI_LAYER_GZIP, &gz)
        .unwrap();
    let bad = LayerDigests {
        digest: desc.digest.clone(),
        diff_id: Digest::of(&tar),
        size: desc.size,
    };
    let spec = ImageSpec {
        platform: Platform::new("linux", "amd64", None),
        user: Some("10001:10001".into()),
        entrypoint: Some(vec!["/usr/local/bin/misbehave".into()]),
        epoch: 1_700_000_000,
        ..ImageSpec::default()
    };
    let img = build(None, &[good, bad], &spec).unwrap();
    layout.write_image(&img).unwrap();
    layout.tag(tag, &img.descriptor).unwrap();
    desc.digest.short().to_string()
}

/// Paths, modes, sizes, mtimes, link counts and contents of a tree.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, u64, Vec<u8>)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = std::fs::symlink_metadata(&d).unwrap();
        let content = if md.is_file() {
            std::fs::read(&d).unwrap()
        } else {
            Vec::new()
        };
        m.insert(
            d.clone(),
            (md.mode(), md.len(), md.mtime(), md.nlink(), content),
        );
        if md.is_dir() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    m
}

/// Malicious layers end to end: `../` escape, a symlink out of the root then a write through it,
/// hardlinks to /etc/shadow and to a file outside the root. Each is refused with exit 1 and a
/// message naming the layer, the entry and the rule; the sentinel tree next to the layout, the
/// host's /etc/shadow and shipit's temp dir are unchanged. A device node and a FIFO are
/// neutralised (never created) and the image otherwise verifies.
#[test]
fn malicious_layers_are_refused_and_touch_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir_all(sentinel.join("sub")).unwrap();
    std::fs::write(sentinel.join("secret"), "keep me\n").unwrap();
    std::fs::write(sentinel.join("sub/file"), "keep me too\n").unwrap();
    // shipit's temp dirs go here, so an escape of `../../../x` from its rootfs lands in `tmp`.
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let sentinel_rel = "../../../sentinel";

    let cases: Vec<(&str, Vec<Raw>, &str, &[&str])> = vec![
        (
            "dotdot",
            vec![Raw::File("../../../escape", b"pwned\n")],
            "../../../escape",
            &["climbs out of the image root"],
        ),
        (
            "symlink-escape",
            vec![
                Raw::Symlink("lnk", sentinel_rel),
                Raw::File("lnk/pwned", b"pwned\n"),
            ],
            "lnk",
            &["outside the image root"],
        ),
        (
            "hardlink-shadow",
            vec![
                Raw::Hardlink("h", "/etc/shadow"),
                Raw::File("h", b"root::0:0:99999:7:::\n"),
            ],
            "h",
            &["hardlink target \"/etc/shadow\""],
        ),
        (
            "hardlink-outside",
            vec![
                Raw::Hardlink("h2", "../../../sentinel/secret"),
                Raw::File("h2", b"pwned\n"),
            ],
            "h2",
            &["hardlink target \"../../../sentinel/secret\""],
        ),
    ];
    let mut bad_layers = Vec::new();
    for (tag, entries, _, _) in &cases {
        bad_layers.push(malicious_image(&layout, tag, entries));
    }
    let dev_layer = malicious_image(
        &layout,
        "devices",
        &[
            Raw::CharDevice("dev/sda"),
            Raw::Fifo("run/fifo"),
            Raw::File("etc/motd", b"hi\n"),
        ],
    );

    let before = snapshot(&sentinel);
    let shadow_before = snapshot(Path::new("/etc/shadow"));
    for ((tag, _, entry, rule), layer) in cases.iter().zip(&bad_layers) {
        let spec = format!("oci:{}:{tag}", layout.display());
        let out = verify(tmp.path(), &[&spec], &[("TMPDIR", &work)]);
        let text = assert_failed(&out, "linux/amd64", "unpack", &[]);
        let first = text.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("layer {layer}: entry \"{entry}")),
            "{tag}: must name layer {layer} and entry {entry:?}: {first}"
        );
        for r in *rule {
            assert!(
                first.contains(r),
                "{tag}: must name the rule {r:?}: {first}"
            );
        }
        assert_eq!(
            snapshot(&sentinel),
            before,
            "{tag}: the sentinel tree changed"
        );
        assert_eq!(
            snapshot(Path::new("/etc/shadow")),
            shadow_before,
            "{tag}: /etc/shadow changed"
        );
        assert!(!tmp.path().join("escape").exists(), "{tag}: escaped");
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().collect();
        assert!(left.is_empty(), "{tag}: temp root not removed: {left:?}");
    }

    // Devices and FIFOs are neutralised, reported, and the image is otherwise fine.
    let spec = format!("oci:{}:devices", layout.display());
    let out = verify(
        tmp.path(),
        &[
            &spec,
            "-v",
            "--run=--version",
            "--expect-stdout",
            "misbehave 1",
        ],
        &[("TMPDIR", &work)],
    );
    assert!(
        out.status.success(),
        "a neutralised device node is not a failure"
    );
    let all = checks(&out);
    let (passed, text) = &all[&("linux/amd64".to_string(), "unpack".to_string())];
    assert!(passed);
    for n in [
        format!("layer {dev_layer}: entry \"dev/sda\": character device skipped"),
        format!("layer {dev_layer}: entry \"run/fifo\": FIFO skipped"),
    ] {
        assert!(text.contains(&n), "unpack must report {n:?}: {text}");
    }
    assert_eq!(snapshot(&sentinel), before);
    assert!(std::fs::read_dir(&work).unwrap().next().is_none());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "unpacking into {} (TMPDIR is set)",
            work.display()
        )),
        "{stderr}"
    );

    // Without TMPDIR, a tmpfs at /dev/shm (this machine has one, as most do) takes the rootfs:
    // small files are created and deleted there many times faster than on ext4.
    let shm_is_tmpfs = Command::new("stat")
        .args(["-f", "-c", "%T", "/dev/shm"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs");
    let mut c = shipit(tmp.path());
    c.args(["verify", "--json", &spec, "-v", "--run=--version"])
        .args(["--expect-stdout", "misbehave 1"])
        .env_remove("TMPDIR");
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    if shm_is_tmpfs {
        assert!(
            stderr.contains("unpacking into /dev/shm (tmpfs;"),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("unpacking into "), "{stderr}");
    }
    // A layer refused on tmpfs is tried once more on disk (the tmpfs never decides an
    // outcome), and refused there too, with the same rule.
    let (tag, _, entry, _) = &cases[0];
    let bad = format!("oci:{}:{tag}", layout.display());
    let mut c = shipit(tmp.path());
    c.args(["verify", "--json", &bad, "-v"])
        .env_remove("TMPDIR");
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    if shm_is_tmpfs {
        assert!(
            stderr.contains("unpacking on tmpfs failed")
                && stderr.contains("unpacking again under"),
            "{stderr}"
        );
    }
    let text = assert_failed(&out, "linux/amd64", "unpack", &[]);
    assert!(text.contains(&format!("entry \"{entry}")), "{text}");
    assert_eq!(snapshot(&sentinel), before);
    assert!(!tmp.path().join("escape").exists());
}

// ---------------------------------------------------------------------------------------------
// Images made by other tools

/// An image built by buildah (vfs storage, from scratch, the misbehave binary copied in, user
/// 10001:10001) and committed to an OCI layout verifies: static checks and a run check pass.
#[test]
fn buildah_image_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("storage");
    let runroot = tmp.path().join("run");
    let buildah = || {
        let mut c = Command::new("buildah");
        c.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot);
        c
    };
    let name = format!("verify-test-{}", std::process::id());
    let ctr = run_ok(buildah().args(["from", "--name", &name, "scratch"]))
        .trim()
        .to_string();
    run_ok(
        buildah()
            .args(["copy", "--chmod", "0755", &ctr])
            .arg(misbehave())
            .arg("/usr/local/bin/misbehave"),
    );
    run_ok(buildah().args([
        "config",
        "--entrypoint",
        r#"["/usr/local/bin/misbehave"]"#,
        "--user",
        "10001:10001",
        "--arch",
        "amd64",
        "--os",
        "linux",
        &ctr,
    ]));
    let layout = tmp.path().join("oci");
    run_ok(
        buildah()
            .args(["commit", "--format", "oci", &ctr])
            .arg(format!("oci:{}:built", layout.display())),
    );
    let _ = buildah().args(["rm", &ctr]).output();

    let spec = format!("oci:{}:built", layout.display());
    let out = verify(
        tmp.path(),
        &[
            &spec,
            "--run=--version",
            "--expect-stdout",
            "misbehave 1\\.0\\.0",
        ],
        &[],
    );
    assert!(out.status.success(), "a buildah image must verify");
    let all = checks(&out);
    for c in ["unpack", "platform", "user", "elf", "run"] {
        let (passed, text) = &all[&("linux/amd64".to_string(), c.to_string())];
        assert!(passed, "{c}: {text}");
    }
    let _ = std::fs::remove_dir_all(&root); // vfs layers can be read-only for tempdir's cleanup
}

/// `skopeo copy --all` of the example's staging-musl index (4 platforms) into another layout
/// verifies with the pipeline's version and serve checks.
#[test]
fn skopeo_copied_index_passes() {
    let _fixture = read_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("copy");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        &format!("oci:{}:staging-musl", example().join("dist/oci").display()),
        &format!("oci:{}:copied", dest.display()),
    ]));
    let out = verify(example(), &[&format!("oci:{}:copied", dest.display())], &[]);
    assert!(out.status.success(), "the skopeo copy must verify");
    let all = checks(&out);
    for platform in ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"] {
        for c in ["version", "serves"] {
            let (passed, text) = &all[&(platform.to_string(), c.to_string())];
            assert!(passed, "{platform} {c}: {text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Smoke

/// `shipit smoke --platform linux/arm64` on the already-built example: build (a cargo no-op),
/// package and verify one platform, publishing nothing.
#[test]
fn smoke_arm64_on_built_example() {
    let _fixture = read_fixture();
    let flags = example_variant("smoke", &example_pipeline());
    let start = Instant::now();
    let out = shipit(example())
        .args(&flags)
        .args(["smoke", "--platform", "linux/arm64"])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("shipit smoke --platform linux/arm64: {took:?}\n{stderr}");
    assert!(out.status.success(), "smoke failed:\n{stderr}");
    assert!(stderr.contains("ok linux/arm64"), "{stderr}");
    let out_dir = PathBuf::from(&flags[3]);
    let r = refs(&out_dir.join("oci"));
    assert!(
        r.keys().all(|k| k.starts_with("staging-")),
        "smoke must tag nothing: {r:?}"
    );
    assert!(
        !out_dir.join("release.json").exists(),
        "smoke publishes nothing"
    );
}

/// An index with a buildx-style attestation entry (`unknown/unknown`): verification skips it
/// and verifies the real platforms (reliab.md I31).
#[test]
fn attestation_entries_in_an_index_are_skipped() {
    use shipit::oci::index::{self, Platform};
    use shipit::oci::layout::Layout;
    let _fixture = read_fixture();
    let src = Layout::open(&crate::support::fixture::example().join("dist/oci")).unwrap();
    let staged = src.resolve("staging-musl").unwrap();
    let idx = index::parse(&src.read_blob(&staged, 1 << 20).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dst = Layout::create(&tmp.path().join("oci")).unwrap();
    src.copy_image(&dst, &staged).unwrap();
    let mut entries: Vec<_> = idx
        .manifests
        .iter()
        .map(|m| {
            let p = m.platform.clone().unwrap();
            let mut d = m.clone();
            d.platform = None;
            (d, p)
        })
        .collect();
    // The attestation "image": any manifest will do, under the platform buildx gives them.
    let mut att = entries[0].0.clone();
    att.annotations = Some(BTreeMap::from([(
        "vnd.docker.reference.type".to_string(),
        "attestation-manifest".to_string(),
    )]));
    entries.push((att, Platform::new("unknown", "unknown", None)));
    let built = index::build(&entries, &BTreeMap::new()).unwrap();
    dst.write_index(&built).unwrap();
    dst.tag("with-attestation", &built.descriptor).unwrap();
    let out = shipit(tmp.path())
        .args([
            "verify",
            "--json",
            &format!("oci:{}:with-attestation", tmp.path().join("oci").display()),
        ])
        .args(["--run", "--version", "--expect-stdout", "hello-server"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let platforms: Vec<&str> = report["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
    );
}

// ---------------------------------------------------------------------------------------------
// Parallel verification under load

/// Eight distinct amd64 images (one index) verified at once, natively, 25 times over: each
/// verification unpacks its binary and executes it while its siblings unpack and fork, the
/// setting in which a sibling's child briefly holds a copy of a just-written binary's fd and
/// `execve` answers ETXTBSY ("Text file busy"). Every run must pass, and none may mention it.
/// (25 rounds: a round takes well under a second.)
#[test]
fn parallel_native_verifications_never_see_text_file_busy() {
    use shipit::oci::layout::Layout;
    let tmp = tempfile::tempdir().unwrap();
    let layout_dir = tmp.path().join("layout");
    let mut manifests = Vec::new();
    for n in 0..8 {
        let content = format!("image {n}\n");
        malicious_image(
            &layout_dir,
            &format!("img{n}"),
            &[Raw::File("etc/which", content.as_bytes())],
        );
        let desc = Layout::open(&layout_dir)
            .unwrap()
            .resolve(&format!("img{n}"))
            .unwrap();
        let mut v = serde_json::to_value(&desc).unwrap();
        v["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
        if let Some(a) = v.as_object_mut() {
            a.remove("annotations");
        }
        manifests.push(v);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": shipit::oci::media::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let layout = Layout::open(&layout_dir).unwrap();
    let desc = layout
        .write_blob(shipit::oci::media::OCI_INDEX, &index)
        .unwrap();
    layout.tag("all", &desc).unwrap();
    let spec = format!("oci:{}:all", layout_dir.display());
    let start = Instant::now();
    const ROUNDS: usize = 25;
    for round in 1..=ROUNDS {
        let out = verify(tmp.path(), &[&spec, "--run=--version", "--jobs", "8"], &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "round {round}: {text}");
        assert!(
            !text.contains("Text file busy") && !text.contains("os error 26"),
            "round {round}: {text}"
        );
        let passed = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.trim_start().starts_with("ok linux/amd64"))
            .count();
        assert_eq!(passed, 8, "round {round}: {text}");
    }
    eprintln!(
        "{ROUNDS} rounds of 8 parallel verifications in {:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// The verification cache (dist/cache/verified.json)

/// `shipit publish --json -v ARGS` in `dir` with `path` first on PATH (when given).
fn publish(dir: &Path, path: Option<&Path>) -> Output {
    let mut c = shipit(dir);
    c.args(["publish", "--json", "-v"]);
    if let Some(p) = path {
        c.env(
            "PATH",
            format!("{}:{}", p.display(), std::env::var("PATH").unwrap()),
        );
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "publish failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The release report's checks: `(platform, check name) -> cached`.
fn cached_checks(out: &Output) -> BTreeMap<(String, String), bool> {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report on stdout ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let mut m = BTreeMap::new();
    for img in report["images"].as_array().unwrap() {
        for p in img["platforms"].as_array().unwrap() {
            for c in p["checks"].as_array().unwrap() {
                assert_eq!(c["passed"], true, "{c}");
                m.insert(
                    (
                        p["platform"].as_str().unwrap().to_string(),
                        c["name"].as_str().unwrap().to_string(),
                    ),
                    c["cached"].as_bool().unwrap_or(false),
                );
            }
        }
    }
    m
}

/// The guest commands `-v` printed (`  $ … # check `NAME` on PLATFORM`).
fn guest_commands(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("  $ ") && l.contains("# check `"))
        .map(str::to_string)
        .collect()
}

/// A second `publish` of the same bytes with the same checks reuses the first verification: it
/// says so (human and JSON output) and runs no guest at all. Evidence at the exec level: `-v`
/// prints every guest command before it runs (native amd64 and QEMU alike), and for the second
/// run wrapper scripts first on PATH stand in for `qemu-*-static`: one that ran would log its
/// call (qemu `-L` mode) or, copied into a scratch rootfs without a shell (chroot mode), fail the
/// check and so the publish. A changed check (another stdout pattern) defeats the cache.
#[test]
fn rerun_with_same_bytes_and_checks_is_cached_and_runs_no_guest() {
    let _fixture = read_fixture();
    let platforms = "linux/amd64, linux/arm64, linux/arm/v7";
    let with_checks = |checks: &str| {
        pipeline("musl: { base: scratch }", platforms, USER, checks)
            + "publish:\n  to: oci:dist/oci\n"
    };
    let tmp = example_copy(Some(&with_checks(VERSION_CHECK)));
    let dir = tmp.path();
    let package = || {
        run_ok(
            shipit(dir)
                .args(["package", "-q"])
                .env("SOURCE_DATE_EPOCH", EPOCH),
        )
    };
    package();
    let expected: Vec<(String, String)> = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        .iter()
        .map(|p| (p.to_string(), "version".to_string()))
        .collect();

    // First run: verified for real, every guest command shown.
    let first = publish(dir, None);
    let checks = cached_checks(&first);
    for key in &expected {
        assert_eq!(checks.get(key), Some(&false), "{key:?} in {checks:?}");
    }
    let ran = guest_commands(&first);
    assert_eq!(ran.len(), 3, "one version check per platform: {ran:#?}");
    assert!(
        ran.iter().any(|c| c.contains("qemu-aarch64-static")),
        "{ran:#?}"
    );
    assert!(
        ran.iter().any(|c| c.contains("qemu-arm-static")),
        "{ran:#?}"
    );
    assert!(dir.join("dist/cache/verified.json").is_file());

    // Second run, same bytes and checks, with logging QEMU wrappers first on PATH.
    let wrappers = tempfile::tempdir().unwrap();
    let log = wrappers.path().join("qemu-calls.log");
    for qemu in [
        "qemu-aarch64-static",
        "qemu-arm-static",
        "qemu-x86_64-static",
    ] {
        let real = which::which(qemu).unwrap_or_else(|e| panic!("{qemu}: {e}"));
        let script = wrappers.path().join(qemu);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"{qemu} $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let second = publish(dir, Some(wrappers.path()));
    let checks = cached_checks(&second);
    for key in &expected {
        assert_eq!(checks.get(key), Some(&true), "{key:?} in {checks:?}");
    }
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        stderr.matches("ok (cached: verified before").count(),
        3,
        "each platform reported as cached:\n{stderr}"
    );
    assert_eq!(guest_commands(&second), Vec::<String>::new(), "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(calls, "", "QEMU ran although the verification was cached");

    // A different stdout pattern: same bytes, other checks, so everything runs again.
    std::fs::write(
        dir.join("pipeline.yaml"),
        with_checks(&VERSION_CHECK.replace(r"\d+\.\d+\.\d+", r"\d+\.\d+")),
    )
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap(),
        with_checks(VERSION_CHECK)
    );
    package();
    let third = publish(dir, None);
    let checks = cached_checks(&third);
    for key in &expected {
        assert_eq!(checks.get(key), Some(&false), "{key:?} in {checks:?}");
    }
    assert_eq!(
        guest_commands(&third).len(),
        3,
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}

/// `shipit release --json -v ARGS` in the shared example (built: no compile), its output.
fn release(args: &[String]) -> Output {
    let out = shipit(example())
        .args(["release", "--json", "-v"])
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "release failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The release's no-op path for verification: a second `release` of the same bytes with the
/// same checks reuses the verification (no guest runs) and keeps every digest; a changed check
/// (another stdout pattern) runs the guest again on the same bytes.
#[test]
fn a_no_op_release_reuses_the_verification_and_a_changed_check_verifies_again() {
    let _fixture = read_fixture();
    let with_pattern = |pattern: &str| {
        let p = example_pipeline();
        let start = p
            .find("  checks:\n")
            .expect("checks in the example pipeline");
        let end = p.find("publish:").expect("publish in the example pipeline");
        let mut p = p;
        p.replace_range(
            start..end,
            &format!(
                "  checks:\n{}\n",
                VERSION_CHECK.replace(r"\d+\.\d+\.\d+", pattern)
            ),
        );
        p
    };
    let mut args = example_variant("noop-verify", &with_pattern(r"\d+\.\d+\.\d+"));
    args.extend(["--variant", "musl", "--platform", "linux/arm64"].map(String::from));
    let digest = |out: &Output| {
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["images"][0]["platforms"][0]["manifest_digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let key = ("linux/arm64".to_string(), "version".to_string());

    let first = release(&args);
    assert_eq!(cached_checks(&first).get(&key), Some(&false));
    assert_eq!(guest_commands(&first).len(), 1);

    let second = release(&args);
    assert_eq!(cached_checks(&second).get(&key), Some(&true));
    assert_eq!(
        guest_commands(&second),
        Vec::<String>::new(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(digest(&second), digest(&first), "the same image");

    std::fs::write(
        example().join("pipeline-noop-verify.yaml"),
        with_pattern(r"\d+\.\d+"),
    )
    .unwrap();
    let third = release(&args);
    assert_eq!(cached_checks(&third).get(&key), Some(&false));
    assert_eq!(
        guest_commands(&third).len(),
        1,
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(
        digest(&third),
        digest(&first),
        "the same bytes, checked again"
    );
}

// ---------------------------------------------------------------------------------------------
// Image configs that contradict their manifest

/// An image config whose `rootfs` does not describe the manifest's layers: `diff_ids` empty, one
/// entry too many, or `type` other than `layers` (umoci panics on these). Each is a real layout
/// written with shipit's own oci code, then its config blob edited and re-hashed (and the
/// manifest with it). Verification refuses each in the `image` check, exit 1, naming the field;
/// the untouched image passes.
#[test]
fn config_rootfs_that_does_not_match_the_layers_fails() {
    use shipit::oci::image::{ImageSpec, build};
    use shipit::oci::index::Platform;
    use shipit::oci::layer::Entry;
    use shipit::oci::layout::Layout;

    let _fixture = read_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layout = Layout::create(&dir).unwrap();
    let (_, layer) = layout
        .write_layer(
            &[
                Entry::dir("usr", 0o755),
                Entry::dir("usr/local", 0o755),
                Entry::dir("usr/local/bin", 0o755),
                Entry::host_file(
                    "usr/local/bin/hello-server",
                    built("musl", "linux-amd64"),
                    0o755,
                ),
            ],
            1_700_000_000,
        )
        .unwrap();
    let spec = ImageSpec {
        platform: Platform::new("linux", "amd64", None),
        user: Some("10001:10001".into()),
        entrypoint: Some(vec!["/usr/local/bin/hello-server".into()]),
        epoch: 1_700_000_000,
        ..ImageSpec::default()
    };
    let img = build(None, &[layer], &spec).unwrap();
    layout.write_image(&img).unwrap();
    layout.tag("good", &img.descriptor).unwrap();

    let tamper = |tag: &str, edit: &dyn Fn(&mut Value)| {
        let mut config: Value = serde_json::from_slice(&img.config_bytes).unwrap();
        edit(&mut config);
        let config_desc = layout
            .write_blob(
                &img.config.media_type,
                &serde_json::to_vec(&config).unwrap(),
            )
            .unwrap();
        let mut manifest: Value = serde_json::from_slice(&img.manifest_bytes).unwrap();
        manifest["config"]["digest"] = config_desc.digest.to_string().into();
        manifest["config"]["size"] = config_desc.size.into();
        let mut desc = layout
            .write_blob(
                &img.descriptor.media_type,
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        desc.platform = img.descriptor.platform.clone();
        layout.tag(tag, &desc).unwrap();
    };
    tamper("empty-diff-ids", &|c| {
        c["rootfs"]["diff_ids"] = serde_json::json!([])
    });
    tamper("extra-diff-id", &|c| {
        let first = c["rootfs"]["diff_ids"][0].clone();
        c["rootfs"]["diff_ids"].as_array_mut().unwrap().push(first);
    });
    tamper("bogus-type", &|c| c["rootfs"]["type"] = "bogus".into());

    let image = |tag: &str| format!("oci:{}:{tag}", dir.display());
    let good = verify(
        tmp.path(),
        &[
            &image("good"),
            "--run=--version",
            "--expect-stdout",
            "hello-server",
        ],
        &[],
    );
    assert!(good.status.success(), "the untouched image passes");
    for (tag, needle) in [
        (
            "empty-diff-ids",
            "rootfs.diff_ids lists 0 layer digests but the manifest has 1 layer",
        ),
        (
            "extra-diff-id",
            "rootfs.diff_ids lists 2 layer digests but the manifest has 1 layer",
        ),
        ("bogus-type", "rootfs.type is \"bogus\", not \"layers\""),
    ] {
        let out = verify(
            tmp.path(),
            &[
                &image(tag),
                "--run=--version",
                "--expect-stdout",
                "hello-server",
            ],
            &[],
        );
        assert_failed(&out, "?", "image", &[needle, "rebuild the image"]);
    }
}

/// The example's real binary with `e_phnum` patched to 0xffff (PN_XNUM without the extended
/// count): the ELF check calls it not a valid ELF file and names it, and no run check follows to
/// blame a missing loader (issue 11, item 17).
#[test]
fn binary_with_impossible_phnum_is_not_a_valid_elf() {
    let _fixture = read_fixture();
    let p = pipeline(
        "musl: { base: scratch }",
        "linux/amd64",
        USER,
        VERSION_CHECK,
    );
    let dir = example_copy(Some(&p));
    let mut bytes = std::fs::read(built("musl", "linux-amd64")).unwrap();
    assert_eq!(&bytes[..5], b"\x7fELF\x02", "an ELF64 binary");
    bytes[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // e_phnum
    let patched = dir.path().join("patched");
    std::fs::write(&patched, &bytes).unwrap();
    replace_binary(dir.path(), "musl", "linux-amd64", &patched);
    let out = package_and_verify(
        dir.path(),
        &["--platform", "linux/amd64", "--variant", "musl"],
    );
    assert_failed(
        &out,
        "linux/amd64",
        "elf",
        &[
            "/usr/local/bin/hello-server: not a valid ELF file",
            "e_phnum is 0xffff",
        ],
    );
    let all = checks(&out);
    assert!(
        !all.contains_key(&("linux/amd64".to_string(), "version".to_string())),
        "nothing runs a binary that is not a valid ELF: {all:#?}"
    );
    assert_only_staging(dir.path());
}
