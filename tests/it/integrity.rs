//! Release integrity and concurrent writers, against real components: a real docker-registry,
//! real layouts, real signals, real concurrent shipit processes. A filtered publish tags only
//! fully verified indexes; a package of another plan is refused; `release --merge` checks each
//! manifest's config platform in the registry; SIGTERM/SIGINT stop in-process packaging within
//! seconds with nothing half-written; concurrent writers of one dist/ lose nothing.

use crate::support::fixture::{EPOCH, example, example_copy, example_pipeline};
use crate::support::registry::TestRegistry;
use crate::support::{shipit, text};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The example pushing to `repo` on a registry (or, with `None`, to its own layout).
fn pipeline(repo: Option<&str>) -> String {
    let p = example_pipeline();
    match repo {
        None => p,
        Some(r) => p
            .replace(
                "repository: localhost/hello-server",
                &format!("repository: {r}"),
            )
            .replace("publish:\n  to: oci:dist/oci", "publish:\n  to: registry"),
    }
}

/// `shipit ARGS` in `dir` (fixed SOURCE_DATE_EPOCH, no stdin).
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = shipit(dir);
    c.args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn tag_exists(reg: &TestRegistry, repo_tag: &str) -> bool {
    Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{repo_tag}", reg.host_port()),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

/// The `ref.name`s of `layout/index.json`, sorted.
fn refs(layout: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut v: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Temporary files left in a layout's blob directory.
fn temp_blobs(layout: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(layout.join("blobs/sha256")) {
        Err(_) => Vec::new(),
        Ok(d) => d
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
    }
}

const GNU_TAGS: [&str; 4] = ["0.3.1", "0.3", "0", "latest"];
const MUSL_TAGS: [&str; 4] = ["0.3.1-musl", "0.3-musl", "0-musl", "latest-musl"];
const TWO: [&str; 4] = ["--platform", "linux/amd64", "--platform", "linux/arm64"];

/// Issue 11 item 1: `publish --variant musl` verified only musl, then tagged the gnu index too,
/// broken amd64 image included. A filtered publish publishes only the filtered images, and an
/// index only when every platform image it lists passed verification in the run.
#[test]
fn a_filtered_publish_tags_only_fully_verified_indexes_of_the_filter() {
    let reg = TestRegistry::anonymous();
    let repo = format!("{}/filter/hello", reg.host_port());
    let dir = example_copy(Some(&pipeline(Some(&repo))));
    let bin = |slug: &str| dir.path().join(format!("dist/bin/gnu/{slug}/hello-server"));
    // The gnu amd64 image gets the arm64 binary: it cannot pass verification.
    std::fs::copy(bin("linux-arm64"), bin("linux-amd64")).unwrap();
    let out = run(dir.path(), &[&["package", "-q"][..], &TWO].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out));

    let out = run(
        dir.path(),
        &[&["publish", "--variant", "musl"][..], &TWO].concat(),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    for t in MUSL_TAGS {
        assert!(tag_exists(&reg, &format!("filter/hello:{t}")), "{t}");
    }
    for t in GNU_TAGS {
        assert!(
            !tag_exists(&reg, &format!("filter/hello:{t}")),
            "the unverified gnu index was tagged {t}\n{}",
            text(&out)
        );
    }
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dist/release.json")).unwrap())
            .unwrap();
    let variants: Vec<&str> = release["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["musl"]);

    // A platform filter leaves the rest of each index unverified: refused, nothing tagged.
    let out = run(
        dir.path(),
        &["publish", "--variant", "musl", "--platform", "linux/arm64"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("also lists linux/amd64") && err.contains("did not verify"),
        "{err}"
    );
    for t in GNU_TAGS {
        assert!(!tag_exists(&reg, &format!("filter/hello:{t}")), "{t}");
    }
}

/// Issue 11 item 2: `package`, then a new version in Cargo.toml (or another repository), then
/// `publish` said "released 0.4.0" but moved the 0.3.1 tags. It refuses now (exit 2), saying
/// what changed, before verifying or pushing anything.
#[test]
fn publish_refuses_a_package_made_from_another_plan() {
    let reg = TestRegistry::anonymous();
    let repo = format!("{}/stale/hello", reg.host_port());
    let dir = example_copy(Some(&pipeline(Some(&repo))));
    let musl2 = [&["--variant", "musl"][..], &TWO].concat();
    let out = run(dir.path(), &[&["package", "-q"][..], &musl2].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = dir.path().join("Cargo.toml");
    let cargo = std::fs::read_to_string(&manifest).unwrap();
    assert!(cargo.contains("version = \"0.3.1\""));
    std::fs::write(
        &manifest,
        cargo.replace("version = \"0.3.1\"", "version = \"0.4.0\""),
    )
    .unwrap();

    let out = run(dir.path(), &[&["publish"][..], &musl2].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("made from another plan")
            && err.contains("shipit package")
            && err.contains("version: \"0.3.1\" → \"0.4.0\""),
        "{err}"
    );
    assert!(
        !err.contains("verify "),
        "it verified a stale package: {err}"
    );
    for t in MUSL_TAGS.iter().chain(["0.4.0-musl"].iter()) {
        assert!(!tag_exists(&reg, &format!("stale/hello:{t}")), "{t}");
    }
    assert!(!dir.path().join("dist/release.json").exists());

    // Another repository: refused the same way, naming it.
    std::fs::write(&manifest, &cargo).unwrap();
    let other = pipeline(Some(&format!("{}/elsewhere/hello", reg.host_port())));
    std::fs::write(dir.path().join("pipeline.yaml"), other).unwrap();
    let out = run(dir.path(), &[&["publish"][..], &musl2].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repository: ") && err.contains("elsewhere/hello"),
        "{err}"
    );
    assert!(!tag_exists(&reg, "elsewhere/hello:0.3.1-musl"));
}

/// Issue 11 item 3: swapping the `manifest` fields of two fragments made merge tag an index
/// that labels the arm64 image amd64. Merge reads each manifest and its config from the
/// registry and checks the platform against the fragment's.
#[test]
fn merge_checks_each_fragments_manifest_platform_in_the_registry() {
    let reg = TestRegistry::anonymous();
    let repo = format!("{}/swap/hello", reg.host_port());
    let dir = example();
    let name = "integrity-swap";
    let p = pipeline(Some(&repo))
        .replace(
            "platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]",
            "platforms: [linux/amd64, linux/arm64]",
        )
        .replace(
            "  gnu:  { base: \"deb:bookworm\", platforms: [linux/amd64, linux/arm64, linux/arm/v7] }\n",
            "",
        )
        .replace(
            "  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n",
            "",
        );
    assert!(
        !p.contains("gnu:") && !p.contains("packages:"),
        "the example pipeline changed: this test needs a musl-only pipeline\n{p}"
    );
    let cfg = format!("pipeline-{name}.yaml");
    std::fs::write(dir.join(&cfg), p).unwrap();
    let mut fragments = Vec::new();
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let out = dir.join(format!("dist-{name}-job{i}"));
        let _ = std::fs::remove_dir_all(&out);
        let o = run(
            dir,
            &[
                "-c",
                &cfg,
                "--out",
                out.to_str().unwrap(),
                "release",
                "--split",
                "--platform",
                platform,
            ],
            &[],
        );
        assert!(o.status.success(), "split {platform}: {}", text(&o));
        let frag = std::fs::read_dir(out.join("fragments"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fragments.push(frag);
    }
    // Swap the manifests: each fragment now names the other platform's image.
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (mut a, mut b) = (read(&fragments[0]), read(&fragments[1]));
    std::mem::swap(&mut a["manifest"], &mut b["manifest"]);
    let swapped = tempfile::tempdir().unwrap();
    let (fa, fb) = (swapped.path().join("a.json"), swapped.path().join("b.json"));
    std::fs::write(&fa, a.to_string()).unwrap();
    std::fs::write(&fb, b.to_string()).unwrap();
    let merge_out = dir.join(format!("dist-{name}-merge"));
    let _ = std::fs::remove_dir_all(&merge_out);
    let merge = |frags: &[&Path]| {
        let mut args = vec![
            "-c",
            &cfg,
            "--out",
            merge_out.to_str().unwrap(),
            "release",
            "--merge",
        ];
        args.extend(frags.iter().map(|f| f.to_str().unwrap()));
        run(dir, &args, &[])
    };
    let out = merge(&[&fa, &fb]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/amd64 (musl)") && err.contains("config says linux/arm64"),
        "{err}"
    );
    for t in MUSL_TAGS {
        assert!(!tag_exists(&reg, &format!("swap/hello:{t}")), "{t}");
    }
    // The true fragments still merge.
    let out = merge(&[&fragments[0], &fragments[1]]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tag_exists(&reg, "swap/hello:0.3.1-musl"));
}

/// Issue 11 item 10: `package` with a 300 MB file in `image.files` ignored SIGTERM and SIGINT
/// and finished 27 s later with exit 0. It stops within seconds now, exit 143/130, leaving
/// dist/oci/index.json and package.json as they were and no temporary blob.
#[test]
fn package_stops_on_sigterm_and_sigint_within_seconds_leaving_nothing_half_written() {
    let dir = example_copy(Some(&pipeline(None)));
    let one = ["--variant", "musl", "--platform", "linux/amd64"];
    let out = run(dir.path(), &[&["package", "-q"][..], &one].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let layout = dir.path().join("dist/oci");
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    let package_before = std::fs::read(dir.path().join("dist/package.json")).unwrap();
    // 300 MB of random bytes (incompressible: gzip takes many seconds over them).
    let big = dir.path().join("big.bin");
    let ok = Command::new("head")
        .args(["-c", "300000000", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap();
    assert!(ok.success());
    let p = pipeline(None).replace(
        "  tags: [",
        "  files: [{ src: big.bin, dest: /opt/big.bin, mode: \"0644\" }]\n  tags: [",
    );
    std::fs::write(dir.path().join("pipeline.yaml"), p).unwrap();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut child = shipit(dir.path())
            .args([&["package"][..], &one].concat())
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until packaging (in-process work) has started, then give it a second.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "no package step: {seen}"
            );
            seen.push_str(&line);
            if line.contains("package 1 image") {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: kill sends a signal to the child we spawned.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let sent = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "still running 10 s after signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = sent.elapsed();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        assert_eq!(status.code(), Some(code), "{seen}{rest}");
        assert!(took < Duration::from_secs(3), "took {took:?} to stop");
        assert!(rest.contains("interrupted"), "{rest}");
        assert_eq!(
            std::fs::read(layout.join("index.json")).unwrap(),
            index_before
        );
        assert_eq!(
            std::fs::read(dir.path().join("dist/package.json")).unwrap(),
            package_before
        );
        assert_eq!(temp_blobs(&layout), Vec::<PathBuf>::new());
    }
}

/// Issue 11 item 11: `package --variant gnu` and `package --variant musl` at once in one
/// project lost refs from dist/oci/index.json. Writers hold locks now: all 9 refs remain, and
/// package.json lists both variants.
#[test]
fn concurrent_package_runs_of_one_project_lose_no_ref() {
    let dir = example_copy(Some(&pipeline(None)));
    let spawn = |variant: &str| {
        shipit(dir.path())
            .args(["package", "--variant", variant])
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (gnu, musl) = (spawn("gnu"), spawn("musl"));
    let (gnu, musl) = (
        gnu.wait_with_output().unwrap(),
        musl.wait_with_output().unwrap(),
    );
    assert!(gnu.status.success(), "{}", text(&gnu));
    assert!(musl.status.success(), "{}", text(&musl));
    let want = [
        "staging-gnu",
        "staging-gnu-linux-amd64",
        "staging-gnu-linux-arm-v7",
        "staging-gnu-linux-arm64",
        "staging-musl",
        "staging-musl-linux-amd64",
        "staging-musl-linux-arm-v6",
        "staging-musl-linux-arm-v7",
        "staging-musl-linux-arm64",
    ];
    assert_eq!(
        refs(&dir.path().join("dist/oci")),
        want,
        "{}\n{}",
        text(&gnu),
        text(&musl)
    );
    let package: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dist/package.json")).unwrap())
            .unwrap();
    let variants: Vec<&str> = package["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["gnu", "musl"]);
}

/// A writer that finds dist/ locked waits, saying by whom, and gives up at the bound (exit 1)
/// having written nothing.
#[test]
fn a_writer_waits_for_the_lock_then_fails_clearly() {
    let dir = example_copy(Some(&pipeline(None)));
    let dist = dir.path().join("dist");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dist.join(".shipit.lock"))
        .unwrap();
    // SAFETY: flock on a file we opened; released when `lock` drops.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    std::fs::write(dist.join(".shipit.lock"), std::process::id().to_string()).unwrap();
    let out = run(
        dir.path(),
        &["package", "--variant", "musl", "--platform", "linux/amd64"],
        &[("SHIPIT_LOCK_WAIT", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let waiting = format!(
        "waiting for another shipit run on {} (pid {})",
        dist.display(),
        std::process::id()
    );
    assert!(err.contains(&waiting), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!dist.join("oci").exists() && !dist.join("package.json").exists());
    drop(lock);
}
