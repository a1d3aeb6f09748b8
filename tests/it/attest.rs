//! Attestations checked by tools nobody here wrote: the SBOMs of a real project (every kind of
//! dependency: normal, build, dev, proc-macro, another OS's, a crates.io crate with a checksum)
//! validate with cyclonedx-python-lib (CycloneDX 1.6 strict schema) and spdx-tools
//! (`pyspdxtools`); its crate list equals what `syft` reads from a binary built with
//! `cargo auditable`, and its build-only crates equal the ones cargo-auditable marks `build`;
//! the Debian packages parsed from a real dpkg status equal `dpkg-query`'s list; DSSE bundles
//! verify with Python `cryptography` (its own PAE), and shipit verifies what Python signed.
//! Missing tools fail with a pointer to scripts/setup.sh; nothing is skipped.

use crate::support::fixture::{repo, run_ok};
use shipit::attest::bundle::{self, BUNDLE_MEDIA_TYPE};
use shipit::attest::dsse::{self, Envelope};
use shipit::attest::key::{PublicKey, SigningKey};
use shipit::attest::sbom::{self, DEFAULT_DISTRO, Sbom};
use shipit::attest::{Subject, provenance, verification};
use shipit::oci::digest::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: u64 = 1_700_000_000;
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn fixtures() -> PathBuf {
    repo().join("tests/it/fixtures/attest")
}

fn need(tool: &str) -> PathBuf {
    which::which(tool).unwrap_or_else(|_| {
        panic!("{tool} is not installed (not on PATH): run scripts/setup.sh to install it")
    })
}

/// The python that has the checkers: scripts/setup.sh installs them into `python3`, or into
/// its venv when that python is externally managed.
fn python3() -> PathBuf {
    let venv = Path::new("/opt/shipit-venv/bin/python");
    let has_checkers = |py: &Path| {
        Command::new(py)
            .args(["-c", "import spdx_tools, cryptography, cyclonedx"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if venv.exists() && has_checkers(venv) {
        return venv.to_path_buf();
    }
    let py = need("python3");
    assert!(
        has_checkers(&py),
        "python3 lacks cyclonedx-python-lib, spdx-tools or cryptography: run scripts/setup.sh"
    );
    py
}

/// `python3 fixtures/attest/SCRIPT args…`, which must succeed; returns stdout.
fn python(script: &str, args: &[&Path]) -> String {
    run_ok(
        Command::new(python3())
            .arg(fixtures().join(script))
            .args(args),
    )
}

/// The same, expected to fail; returns stderr.
fn python_fails(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python3())
        .arg(fixtures().join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{script} accepted what it must refuse: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn project_manifest() -> PathBuf {
    fixtures().join("project/Cargo.toml")
}

fn project_sbom(debs: Vec<sbom::DebPackage>) -> Sbom {
    let cargo = sbom::cargo_graph(
        &project_manifest(),
        TARGET,
        &[],
        "sbom-app",
        &shipit::exec::Cancel::new(),
    )
    .unwrap();
    Sbom {
        image_name: "registry.example/acme/sbom-app".into(),
        platform: "linux/amd64".into(),
        target: TARGET.into(),
        variant: "gnu".into(),
        features: vec![],
        cargo,
        debs,
        distro: DEFAULT_DISTRO.into(),
        created: EPOCH,
        tool_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Every target shipit plans (both libcs of every platform), plus two that cut a graph very
/// differently (Windows and wasm: windows-sys, wasm-bindgen, js-sys edges).
fn graph_targets() -> Vec<&'static str> {
    let mut t: Vec<&str> = shipit::platform::PLATFORMS
        .iter()
        .flat_map(|p| [p.gnu_target, p.musl_target])
        .collect();
    t.extend(["x86_64-pc-windows-msvc", "wasm32-unknown-unknown"]);
    t
}

/// `cargo metadata --filter-platform T` itself, parsed.
fn filter_platform_call(manifest: &Path, target: &str) -> serde_json::Value {
    let out = run_ok(Command::new("cargo").args([
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        target,
        "--manifest-path",
        manifest.to_str().unwrap(),
    ]));
    serde_json::from_str(&out).unwrap()
}

/// The run's one unfiltered `cargo metadata`, cut per target by shipit's cfg evaluation
/// (`tools::cargo::graph_for_targets`), equals what `cargo metadata --filter-platform T` prints
/// — every package, every node with its deps, dep kinds and resolved features — for the
/// example, the TLS example, the SBOM project (a `cfg(windows)` dependency) and shipit's own
/// graph (windows-sys, wasm-bindgen, getrandom, rustix, ring-style cfg expressions), for every
/// planned target; and so the SBOM's crate list is the same either way. A second read of the
/// same project is answered from the memo the plan carries.
#[test]
fn one_graph_read_equals_filter_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let mut projects: Vec<(PathBuf, &str)> = Vec::new();
    for (dir, package) in [("hello-server", "hello-server"), ("tls-client", "tlsapp")] {
        // A copy: cargo metadata may touch the lock file.
        crate::support::fixture::copy_tree(
            &repo().join("examples").join(dir),
            &tmp.path().join(dir),
        );
        projects.push((tmp.path().join(dir).join("Cargo.toml"), package));
    }
    projects.push((project_manifest(), "sbom-app"));
    projects.push((repo().join("Cargo.toml"), "shipit"));
    let targets = graph_targets();
    for (manifest, package) in &projects {
        let project = shipit::plan::ProjectPlan {
            root: manifest.parent().unwrap().to_path_buf(),
            manifest: manifest.clone(),
            package: package.to_string(),
            bin: package.to_string(),
            profile: "release".into(),
            features: vec![],
            meta: Default::default(),
            source: None,
            graph: Default::default(),
        };
        let cancel = shipit::exec::Cancel::new();
        let cut = shipit::tools::cargo::graph_for_targets(&project, &targets, &cancel).unwrap();
        let mut differs_somewhere = false;
        for t in &targets {
            let want = filter_platform_call(manifest, t);
            let got = &cut[*t];
            let ids = |v: &serde_json::Value, k: &str| -> BTreeSet<String> {
                let list = if k == "packages" {
                    &v["packages"]
                } else {
                    &v["resolve"]["nodes"]
                };
                list.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(
                ids(got, "packages"),
                ids(&want, "packages"),
                "{package} on {t}: packages"
            );
            assert_eq!(
                ids(got, "nodes"),
                ids(&want, "nodes"),
                "{package} on {t}: nodes"
            );
            let nodes = |v: &serde_json::Value| -> BTreeMap<String, serde_json::Value> {
                v["resolve"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| (n["id"].as_str().unwrap().to_string(), n.clone()))
                    .collect()
            };
            let (g, w) = (nodes(got), nodes(&want));
            for (id, n) in &w {
                assert_eq!(
                    g[id]["features"], n["features"],
                    "{package} on {t}: features of {id}"
                );
                assert_eq!(&g[id], n, "{package} on {t}: node {id}");
            }
            assert_eq!(
                sbom::from_metadata(got, package).unwrap(),
                sbom::from_metadata(&want, package).unwrap(),
                "{package} on {t}: SBOM graph"
            );
            differs_somewhere |=
                ids(got, "nodes").len() != ids(&project_all(&project), "nodes").len();
            if *package == "sbom-app" {
                let g = sbom::from_metadata(got, package).unwrap();
                let has_winonly = g.crates.iter().any(|c| c.name == "winonly");
                assert_eq!(
                    has_winonly,
                    t.contains("windows"),
                    "sbom-app on {t}: winonly"
                );
            }
        }
        if *package == "shipit" {
            assert!(
                differs_somewhere,
                "shipit: some target should drop another OS's crates"
            );
        }
        // The memo answers again without running cargo: the same values.
        let again =
            shipit::tools::cargo::graph_for_targets(&project, &targets[..2], &cancel).unwrap();
        assert_eq!(again[targets[0]], cut[targets[0]]);
    }
}

/// The unfiltered graph the memo of `project` holds.
fn project_all(project: &shipit::plan::ProjectPlan) -> serde_json::Value {
    let memo = project.graph.lock();
    (**memo.metadata.values().next().unwrap()).clone()
}

/// The host's dpkg database (this is a Debian machine): real data written by dpkg itself.
fn host_debs() -> Vec<sbom::DebPackage> {
    let text = std::fs::read_to_string("/var/lib/dpkg/status")
        .expect("/var/lib/dpkg/status: these tests run on Debian (see README)");
    sbom::parse_dpkg_status(&text)
}

#[test]
fn sbom_walks_the_target_graph() {
    let s = project_sbom(vec![]);
    let crates: BTreeMap<&str, &sbom::Crate> = s
        .cargo
        .crates
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    assert_eq!(
        crates.keys().copied().collect::<Vec<_>>(),
        ["gen", "greet-macro", "lib-a", "libc"],
        "no dev-dependency (devonly), no cfg(windows) crate (winonly)"
    );
    assert!(crates["gen"].build_only && crates["greet-macro"].build_only);
    assert!(!crates["lib-a"].build_only && !crates["libc"].build_only);
    assert_eq!(
        crates["lib-a"].license.as_deref(),
        Some("MIT OR Apache-2.0")
    );
    let lock = std::fs::read_to_string(fixtures().join("project/Cargo.lock")).unwrap();
    let libc = crates["libc"];
    assert!(
        lock.contains(&format!(
            "checksum = \"{}\"",
            libc.checksum.as_deref().unwrap()
        )),
        "libc's checksum comes from Cargo.lock"
    );
    assert_eq!(crates["lib-a"].checksum, None, "path crates have none");
}

#[test]
fn sbom_documents_validate_with_cyclonedx_and_spdx_tools() {
    let dir = tempfile::tempdir().unwrap();
    let debs = host_debs();
    assert!(!debs.is_empty());
    let s = project_sbom(debs.clone());
    let cdx = dir.path().join("sbom.cdx.json");
    let spdx = dir.path().join("sbom.spdx.json");
    let cdx_bytes = sbom::cyclonedx::render(&s);
    std::fs::write(&cdx, &cdx_bytes).unwrap();
    std::fs::write(&spdx, sbom::spdx::render(&s)).unwrap();
    python("validate_cyclonedx.py", &[&cdx]);
    run_ok(Command::new(need("pyspdxtools")).arg("-i").arg(&spdx));
    // The same inputs give the same bytes (serial number and namespace included).
    let again = project_sbom(debs);
    assert!(cdx_bytes == sbom::cyclonedx::render(&again));
    assert!(std::fs::read(&spdx).unwrap() == sbom::spdx::render(&again));

    // The validators do refuse: a CycloneDX document with a wrong bomFormat, an SPDX one
    // without creation info.
    let mut bad: serde_json::Value = serde_json::from_slice(&cdx_bytes).unwrap();
    bad["bomFormat"] = "CycloneDx".into();
    std::fs::write(&cdx, serde_json::to_vec(&bad).unwrap()).unwrap();
    python_fails("validate_cyclonedx.py", &[&cdx]);
    std::fs::write(&spdx, r#"{"spdxVersion": "SPDX-2.3"}"#).unwrap();
    assert!(
        !Command::new("pyspdxtools")
            .arg("-i")
            .arg(&spdx)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn dpkg_status_parse_matches_dpkg_query() {
    // dpkg-query reads the same database; an apt run in between changes both, so compare again
    // (at most three times) rather than fail on a concurrent install.
    let read_both = || {
        let ours: BTreeSet<String> = host_debs()
            .iter()
            .map(|d| format!("{} {} {}", d.name, d.version, d.architecture))
            .collect();
        let theirs: BTreeSet<String> = run_ok(Command::new(need("dpkg-query")).args([
            "-W",
            "-f",
            "${db:Status-Abbrev}|${Package} ${Version} ${Architecture}\\n",
        ]))
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter(|(status, _)| status.as_bytes().get(1) == Some(&b'i'))
        .map(|(_, p)| p.to_string())
        .collect();
        (ours, theirs)
    };
    let (mut ours, mut theirs) = read_both();
    for _ in 0..2 {
        if ours == theirs {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        (ours, theirs) = read_both();
    }
    assert!(theirs.len() > 10);
    assert_eq!(ours, theirs);
}

/// Builds `package` of `manifest` with `cargo auditable` (debug, for [`TARGET`]) and returns
/// the binary.
fn auditable_binary(manifest: &Path, package: &str) -> PathBuf {
    need("cargo-auditable");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("attest-{package}"));
    run_ok(
        Command::new("cargo")
            .args(["auditable", "build", "--locked", "--target", TARGET])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(&target_dir),
    );
    target_dir.join(TARGET).join("debug").join(package)
}

/// `name@version` of the crates syft finds in `bin` (from its cargo-auditable data).
fn syft_crates(bin: &Path) -> BTreeSet<String> {
    let out = run_ok(
        Command::new(need("syft"))
            .args(["scan", "-q", "-o", "json"])
            .arg(format!("file:{}", bin.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "rust-crate")
        .map(|a| {
            format!(
                "{}@{} {}",
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap(),
                a["purl"].as_str().unwrap()
            )
        })
        .collect()
}

/// `name@version purl` of the crates of `graph` linked into the binary.
fn runtime_crates(graph: &sbom::CargoGraph) -> BTreeSet<String> {
    std::iter::once(&graph.root)
        .chain(graph.crates.iter().filter(|c| !c.build_only))
        .map(|c| format!("{}@{} {}", c.name, c.version, c.purl()))
        .collect()
}

#[test]
fn example_sbom_matches_syft() {
    let manifest = repo().join("examples/hello-server/Cargo.toml");
    let graph = sbom::cargo_graph(
        &manifest,
        TARGET,
        &[],
        "hello-server",
        &shipit::exec::Cancel::new(),
    )
    .unwrap();
    let bin = auditable_binary(&manifest, "hello-server");
    assert_eq!(runtime_crates(&graph), syft_crates(&bin));
    assert!(graph.crates.iter().any(|c| c.name == "libc"));
}

#[test]
fn sbom_crates_match_syft_and_cargo_auditable() {
    let bin = auditable_binary(&project_manifest(), "sbom-app");
    let s = project_sbom(vec![]);
    assert_eq!(
        runtime_crates(&s.cargo),
        syft_crates(&bin),
        "runtime crates: shipit vs syft"
    );
    let ours_runtime: BTreeSet<String> = std::iter::once(&s.cargo.root)
        .chain(s.cargo.crates.iter().filter(|c| !c.build_only))
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect();
    let ours_build: BTreeSet<String> = s
        .cargo
        .crates
        .iter()
        .filter(|c| c.build_only)
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect();

    // cargo-auditable's own record: kind build for build scripts' deps and proc-macros.
    let mut audit_runtime = BTreeSet::new();
    let mut audit_build = BTreeSet::new();
    for line in python("audit_data.py", &[&bin]).lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let entry = format!("{}@{}", parts[0], parts[1]);
        match parts[2] {
            "build" => audit_build.insert(entry),
            _ => audit_runtime.insert(entry),
        };
    }
    assert_eq!(ours_runtime, audit_runtime);
    assert_eq!(ours_build, audit_build);
}

fn test_key() -> SigningKey {
    SigningKey::load(&fixtures().join("test-key.pem"), None).unwrap()
}

fn subject() -> Subject {
    Subject {
        name: "registry.example/acme/sbom-app".into(),
        digest: Digest::of(b"a platform manifest"),
    }
}

#[test]
fn bundles_verify_with_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let public = fixtures().join("test-key.pub.pem");
    // The encrypted copy of the same key signs as well.
    let encrypted = SigningKey::load(
        &fixtures().join("test-key-encrypted.pem"),
        Some("correct-horse"),
    )
    .unwrap();
    let input = verification::VerificationInput {
        subject: subject(),
        platform: "linux/arm64".into(),
        variant: "gnu".into(),
        emulator: Some(verification::Emulator {
            binary: "qemu-aarch64-static".into(),
            cpu: "cortex-a53".into(),
        }),
        glibc_floor: Some("2.31".into()),
        glibc_required: Some("2.17".into()),
        checks: vec![verification::CheckRecord {
            name: "version".into(),
            kind: "run".into(),
            result: "passed".into(),
            duration_ms: 120,
            detail: None,
        }],
        verifier_version: env!("CARGO_PKG_VERSION").into(),
        verified_on: EPOCH,
    };
    let prov = provenance::ProvenanceInput {
        subjects: vec![subject()],
        config_digest: Digest::of(b"pipeline.yaml"),
        platforms: vec!["linux/arm64".into()],
        variant: "gnu".into(),
        features: vec![],
        profile: "release".into(),
        internal: BTreeMap::new(),
        source: Some(provenance::Resource::git(
            "git+https://example.com/acme/app",
            "0123abc",
        )),
        base_images: vec![],
        toolchain: vec![provenance::Resource::tool("rustc", "1.91.0", None)],
        builder_id: "https://shipit.dev/local".into(),
        builder_version: BTreeMap::new(),
        invocation_id: "test".into(),
        started_on: EPOCH,
        finished_on: EPOCH + 5,
    };
    for (name, statement, key) in [
        ("verification", verification::statement(&input), &test_key()),
        ("provenance", provenance::statement(&prov), &encrypted),
    ] {
        let sealed = bundle::seal(&statement, Some(key));
        assert_eq!(sealed.media_type, BUNDLE_MEDIA_TYPE);
        let path = dir.path().join(format!("{name}.sigstore.json"));
        std::fs::write(&path, &sealed.bytes).unwrap();
        let out = python("verify_dsse.py", &[&path, &public]);
        assert_eq!(
            out.trim(),
            format!("{} {}", statement.predicate_type, subject().digest.hex())
        );

        // A changed payload (another subject digest) no longer verifies.
        let mut v: serde_json::Value = serde_json::from_slice(&sealed.bytes).unwrap();
        let b64 = |s: &str| -> Vec<u8> {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).unwrap()
        };
        let payload = String::from_utf8(b64(v["dsseEnvelope"]["payload"].as_str().unwrap()))
            .unwrap()
            .replace(subject().digest.hex(), Digest::of(b"evil").hex());
        v["dsseEnvelope"]["payload"] = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(payload)
                .into()
        };
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(python_fails("verify_dsse.py", &[&path, &public]).contains("bad signature"));
    }
}

#[test]
fn shipit_verifies_what_python_signed() {
    let dir = tempfile::tempdir().unwrap();
    let statement = verification::statement(&verification::VerificationInput {
        subject: subject(),
        platform: "linux/amd64".into(),
        variant: "musl".into(),
        emulator: None,
        glibc_floor: None,
        glibc_required: None,
        checks: vec![],
        verifier_version: "0".into(),
        verified_on: EPOCH,
    });
    let payload = dir.path().join("statement.json");
    std::fs::write(&payload, &statement.bytes).unwrap();
    let out = python(
        "sign_dsse.py",
        &[&fixtures().join("test-key.pem"), &payload],
    );
    let envelope: Envelope = serde_json::from_str(&out).unwrap();
    let public = PublicKey::load(&fixtures().join("test-key.pub.pem")).unwrap();
    assert_eq!(dsse::verify(&envelope, &public).unwrap(), statement.bytes);
    let mut tampered = envelope;
    tampered.payload_type = "application/json".into();
    assert!(dsse::verify(&tampered, &public).is_err());
}
