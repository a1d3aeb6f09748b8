//! Attestations attached as OCI referrers by `shipit publish` (the pipeline's attach stage),
//! read back by tools nobody here wrote: against a real docker-registry 2.8 (no referrers API:
//! the `sha256-<hex>` fallback tag), through the fault proxy playing a registry that serves the
//! referrers API, and into an OCI layout (`index.json` entries with `artifactType`). Every
//! signature is checked by Python `cryptography` and by `shipit verify --key`; a wrong key, an
//! unsigned release and a tampered bundle fail naming the digest; skopeo and umoci still read
//! every index, which has no `unknown/unknown` entry; two writers merging into one fallback tag
//! lose nothing; a failed attach (500 on the referrer manifest PUT) moves no tag.

use crate::support::fixture::{EPOCH, example_copy, example_pipeline, repo, run_ok};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::TestRegistry;
use crate::support::{shipit, text};
use shipit::attest::referrer;
use shipit::oci::digest::Digest;
use shipit::oci::image::Descriptor;
use shipit::oci::layout::Layout;
use shipit::oci::registry::{Reference, RegistryClient};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

const MUSL_TAGS: [&str; 4] = ["0.3.1-musl", "0.3-musl", "0-musl", "latest-musl"];
/// Two musl platforms keep these tests small.
const MUSL2: [&str; 6] = [
    "--variant",
    "musl",
    "--platform",
    "linux/amd64",
    "--platform",
    "linux/arm64",
];
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Per platform: CycloneDX, SPDX, provenance, verification.
const PER_PLATFORM: [&str; 4] = [
    "https://cyclonedx.org/bom",
    "https://spdx.dev/Document",
    "https://slsa.dev/provenance/v1",
    "https://shipit.dev/verification/v1",
];

fn key_dir() -> PathBuf {
    repo().join("tests/it/fixtures/attest")
}

fn private_key() -> PathBuf {
    key_dir().join("test-key.pem")
}

fn public_key() -> PathBuf {
    key_dir().join("test-key.pub.pem")
}

/// Another P-256 public key (openssl), which signed nothing.
fn wrong_public_key(dir: &Path) -> PathBuf {
    let private = dir.join("other.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&private),
    );
    let public = dir.join("other.pub.pem");
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    );
    public
}

/// The python with `cryptography` (scripts/setup.sh installs it, maybe into its venv).
fn python3() -> PathBuf {
    let venv = Path::new("/opt/shipit-venv/bin/python");
    if venv.exists() {
        return venv.to_path_buf();
    }
    which::which("python3").expect("python3: run scripts/setup.sh")
}

/// `verify_dsse.py BUNDLE PUB` (Python `cryptography`, its own PAE): (predicate type, subject hex).
fn python_verifies(bundle: &[u8], public: &Path) -> (String, String) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bundle).unwrap();
    let out = run_ok(
        Command::new(python3())
            .arg(key_dir().join("verify_dsse.py"))
            .arg(tmp.path())
            .arg(public),
    );
    let mut parts = out.split_whitespace();
    (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The example's pipeline publishing to `registry` (`None`: its own `oci:dist/oci`).
fn pipeline(registry: Option<&str>) -> String {
    let p = example_pipeline();
    match registry {
        None => p,
        Some(r) => p
            .replace(
                "repository: localhost/hello-server",
                &format!("repository: {r}/hello-server"),
            )
            .replace("publish:\n  to: oci:dist/oci", "publish:\n  to: registry\n"),
    }
}

/// A copy of the project and its dist/bin with `pipeline`, packaged for two musl platforms.
fn packaged(pipeline: &str) -> tempfile::TempDir {
    let tmp = example_copy(Some(pipeline));
    run_ok(
        shipit(tmp.path())
            .args(["package", "-q"])
            .args(MUSL2)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    tmp
}

/// `shipit publish` of the two musl platforms, signed with the test key when `signed`.
fn publish(dir: &Path, signed: bool) -> Output {
    let mut c = shipit(dir);
    c.arg("publish").args(MUSL2).stdin(Stdio::null());
    if signed {
        c.env("SHIPIT_SIGNING_KEY", private_key());
    }
    c.output().unwrap()
}

fn verify_key(dir: &Path, image: &str, key: &Path) -> Output {
    shipit(dir)
        .args(["verify", image, "--key"])
        .arg(key)
        .output()
        .unwrap()
}

/// release.json's attachments: 4 per platform manifest and 1 per index, all signed, every
/// subject one of the digests packaged (and verified). Returns them.
fn check_release_json(dir: &Path, listed_by: &str, signed: bool) -> Vec<serde_json::Value> {
    let report = json(&dir.join("dist/release.json"));
    let attachments = report["attachments"].as_array().unwrap().clone();
    let image = &report["images"][0];
    let index = image["index_digest"].as_str().unwrap();
    let platforms: Vec<&str> = image["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["manifest_digest"].as_str().unwrap())
        .collect();
    assert_eq!(platforms.len(), 2, "{report}");
    assert_eq!(attachments.len(), 2 * 4 + 1, "{report}");
    for a in &attachments {
        assert_eq!(a["signed"], signed, "{a}");
        assert_eq!(a["listed_by"], listed_by, "{a}");
        assert!(
            a["manifest_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
    for m in &platforms {
        let mut got: Vec<&str> = attachments
            .iter()
            .filter(|a| a["subject"] == *m)
            .map(|a| a["predicate_type"].as_str().unwrap())
            .collect();
        got.sort();
        let mut want = PER_PLATFORM.to_vec();
        want.sort();
        assert_eq!(got, want, "{m}");
    }
    let on_index: Vec<_> = attachments
        .iter()
        .filter(|a| a["subject"] == index)
        .collect();
    assert_eq!(on_index.len(), 1);
    assert_eq!(on_index[0]["subject_kind"], "index");
    attachments
}

fn skopeo_raw(image: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo {image}: {}", text(&out));
    out.stdout
}

fn assert_no_unknown_platform(index: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(index).unwrap();
    for m in v["manifests"].as_array().unwrap() {
        assert_ne!(m["platform"]["os"], "unknown", "{v}");
        assert_ne!(m["platform"]["architecture"], "unknown", "{v}");
        assert!(
            m.get("artifactType").is_none(),
            "an attachment in the image index: {v}"
        );
    }
}

/// docker-registry 2.8 has no referrers API: every statement is listed in the subject's
/// `sha256-<hex>` fallback index; each bundle verifies with Python `cryptography` and names
/// exactly its subject; `shipit verify --key` passes, and fails with another key naming a
/// digest; skopeo reads the index, which has no `unknown/unknown` entry.
#[test]
fn signed_attachments_in_a_registry_without_referrers_api_use_the_fallback_tag() {
    let reg = TestRegistry::anonymous();
    let host = reg.addr.to_string();
    let dir = packaged(&pipeline(Some(&host)));
    let out = publish(dir.path(), true);
    assert!(out.status.success(), "{}", text(&out));
    let attachments = check_release_json(dir.path(), "fallback-tag", true);

    let mut subjects: Vec<&str> = attachments
        .iter()
        .map(|a| a["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 3);
    for subject in subjects {
        let hex = &subject[7..];
        let index = reg.skopeo_raw(&format!("hello-server:sha256-{hex}"));
        let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        let want = attachments
            .iter()
            .filter(|a| a["subject"] == subject)
            .count();
        assert_eq!(entries.len(), want, "{index}");
        for e in entries {
            assert_eq!(e["artifactType"], BUNDLE, "{e}");
            let digest = e["digest"].as_str().unwrap();
            let manifest = reg.skopeo_raw(&format!("hello-server@{digest}"));
            let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
            assert_eq!(manifest["subject"]["digest"], subject, "{manifest}");
            assert_eq!(manifest["artifactType"], BUNDLE);
            let layer = manifest["layers"][0]["digest"].as_str().unwrap();
            let bundle = std::fs::read(reg.blob_data_path(&layer[7..])).unwrap();
            let (predicate, about) = python_verifies(&bundle, &public_key());
            assert_eq!(about, hex, "{predicate}");
            assert_eq!(
                Some(predicate.as_str()),
                e["annotations"]["dev.shipit.predicateType"].as_str()
            );
        }
    }
    let index = reg.skopeo_raw("hello-server:0.3.1-musl");
    assert_no_unknown_platform(&index);

    let image = format!("{host}/hello-server:0.3.1-musl");
    let ok = verify_key(dir.path(), &image, &public_key());
    assert!(ok.status.success(), "{}", text(&ok));
    let tmp = tempfile::tempdir().unwrap();
    let bad = verify_key(dir.path(), &image, &wrong_public_key(tmp.path()));
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("sha256:") && stderr.contains("does not verify"),
        "{stderr}"
    );

    // Without --key, verify lists what is attached (JSON too).
    let listed = shipit(dir.path())
        .args(["verify", "-q", "--json", &image])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let n: usize = v["attachments"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attachments"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 9, "{v}");

    // A rerun attaches the same bytes: no manifest PUT, nothing uploaded.
    let puts = reg.count("PUT", "/manifests/");
    let again = publish(dir.path(), true);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        reg.count("PUT", "/manifests/"),
        puts,
        "the rerun PUT a manifest"
    );
}

/// A registry that serves the referrers API (the fault proxy answering `OCI-Subject` and
/// `/referrers/` in front of docker-registry): no fallback tag is written, and `verify --key`
/// finds every statement through the API.
#[test]
fn a_registry_with_the_referrers_api_gets_no_fallback_tag() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::with_referrers_api(reg.addr, vec![]);
    let host = proxy.addr.to_string();
    let dir = packaged(&pipeline(Some(&host)));
    let out = publish(dir.path(), true);
    assert!(out.status.success(), "{}", text(&out));
    let attachments = check_release_json(dir.path(), "referrers-api", true);
    for a in &attachments {
        let tag = format!("sha256-{}", &a["subject"].as_str().unwrap()[7..]);
        assert_eq!(reg.count("PUT", &format!("/manifests/{tag}")), 0, "{tag}");
    }
    let ok = verify_key(
        dir.path(),
        &format!("{host}/hello-server:0.3.1-musl"),
        &public_key(),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(proxy.count("GET", "/referrers/") >= 3);
}

/// The referrer manifest PUT fails (500 on every attempt): publish exits 1 and no tag moves,
/// although every image manifest and the index were pushed by digest.
#[test]
fn fault_500_on_the_referrer_manifest_put_moves_no_tag() {
    let reg = TestRegistry::anonymous();
    // PUT /manifests/sha256:… 1-2: the platform manifests, 3: the index, 4 on: the referrer
    // manifests (up to 4 pushed at once) and their retries, every one of which fails. (A rule
    // counts the requests no earlier rule took, so 40 rules of nth 4 take requests 4 to 43.)
    let rules = [4; 40]
        .map(|nth| Rule {
            method: "PUT",
            path_contains: "/manifests/sha256:".into(),
            nth,
            fault: Fault::Status {
                status: 500,
                retry_after: None,
            },
        })
        .to_vec();
    let proxy = FaultProxy::start(reg.addr, rules);
    let dir = packaged(&pipeline(Some(&proxy.addr.to_string())));
    let out = publish(dir.path(), true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no tag was moved"),
        "{}",
        text(&out)
    );
    for tag in MUSL_TAGS {
        assert_eq!(
            reg.count("PUT", &format!("/manifests/{tag}")),
            0,
            "{tag} moved"
        );
    }
    // The first referrer to give up (after its 4 attempts) starts no further one: at most the
    // 4 in flight tried, each at most 4 times.
    let puts = proxy.count("PUT", "/manifests/sha256:");
    assert!(
        (3 + 4..=3 + 4 * 4).contains(&puts),
        "{puts}: {:?}",
        proxy.seen()
    );
}

/// Two writers merging into the same fallback tag at once (threads, each with its own client,
/// as two publishers would) lose no referrer.
#[test]
fn two_concurrent_writers_to_one_fallback_tag_lose_nothing() {
    let reg = TestRegistry::anonymous();
    let reference = Reference::parse(&format!("{}/hello-server", reg.addr)).unwrap();
    let client = || {
        let cancel = shipit::exec::Cancel::new();
        Arc::new(
            RegistryClient::new(
                &reference,
                None,
                shipit::stage::pull::client_options(&reference, false, false).unwrap(),
                &cancel,
            )
            .unwrap(),
        )
    };
    let blobs = tempfile::tempdir().unwrap();
    let layout = Layout::create(blobs.path()).unwrap();
    let subject = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        Digest::of(b"the subject"),
        11,
    );
    // 2 writers × 6 referrers, each pushed first (the registry checks an index's children).
    let c = client();
    let mut entries: Vec<Vec<Descriptor>> = vec![Vec::new(), Vec::new()];
    for (w, mine) in entries.iter_mut().enumerate() {
        for i in 0..6 {
            let body = format!("{{\"writer\":{w},\"n\":{i}}}");
            let r = referrer::for_sbom(
                &subject,
                "application/spdx+json",
                body.as_bytes(),
                1_700_000_000,
            );
            layout
                .write_blob(&r.config.0.media_type, &r.config.1)
                .unwrap();
            layout
                .write_blob(&r.layer.0.media_type, &r.layer.1)
                .unwrap();
            let config = layout.blob_path(&r.config.0.digest);
            let layer = layout.blob_path(&r.layer.0.digest);
            c.push_referrer(
                &[
                    (&r.config.0.digest, r.config.0.size, config.as_path()),
                    (&r.layer.0.digest, r.layer.0.size, layer.as_path()),
                ],
                &r.descriptor.media_type,
                &r.bytes,
                &subject.digest,
            )
            .unwrap();
            mine.push(r.descriptor);
        }
    }
    std::thread::scope(|s| {
        for mine in &entries {
            let (client, subject) = (client(), subject.digest.clone());
            s.spawn(move || {
                for batch in mine.chunks(3) {
                    shipit::stage::attach::merge_fallback(
                        &client,
                        &[(subject.clone(), batch.to_vec())],
                    )
                    .unwrap();
                }
            });
        }
    });
    let index = reg.skopeo_raw(&format!("hello-server:sha256-{}", subject.digest.hex()));
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for e in entries.iter().flatten() {
        assert!(
            listed.contains(&e.digest.as_str()),
            "{} lost: {index}",
            e.digest
        );
    }
    assert_eq!(listed.len(), 12, "{index}");
}

/// Into the OCI layout: every statement is an untagged `index.json` entry with `artifactType`,
/// never an entry of the image index; skopeo and umoci read every tag; `verify --key` passes;
/// a bundle re-signed by nobody (payload swapped, the same subject) fails naming its digest; an
/// unsigned release fails `--key`; `attest: { sbom: false, provenance: false }` leaves only the
/// verification attestations.
#[test]
fn layout_referrers_are_index_json_entries_that_tools_read_and_verify_checks() {
    let dir = packaged(&pipeline(None));
    let out = publish(dir.path(), true);
    assert!(out.status.success(), "{}", text(&out));
    let attachments = check_release_json(dir.path(), "layout", true);
    let oci = dir.path().join("dist/oci");
    let index_json = json(&oci.join("index.json"));
    let referrers: Vec<&serde_json::Value> = index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("artifactType").is_some())
        .collect();
    assert_eq!(referrers.len(), attachments.len(), "{index_json}");
    for r in &referrers {
        assert!(
            r["annotations"]["org.opencontainers.image.ref.name"].is_null(),
            "{r}"
        );
    }
    for tag in MUSL_TAGS {
        let raw = skopeo_raw(&format!("oci:{}:{tag}", oci.display()));
        assert_no_unknown_platform(&raw);
    }
    run_ok(Command::new("umoci").args(["ls", "--layout"]).arg(&oci));
    let image = format!("oci:{}:0.3.1-musl", oci.display());
    let ok = verify_key(dir.path(), &image, &public_key());
    assert!(ok.status.success(), "{}", text(&ok));

    // Tamper: a bundle whose payload is another statement about the same subject, its
    // signature left as it was, attached beside the others.
    let layout = Layout::open(&oci).unwrap();
    let first = referrers[0];
    let desc: Descriptor = serde_json::from_value(first.clone()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&desc, 1 << 20).unwrap()).unwrap();
    let layer: Descriptor = serde_json::from_value(manifest["layers"][0].clone()).unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&layer, 1 << 20).unwrap()).unwrap();
    let payload = bundle["dsseEnvelope"]["payload"].as_str().unwrap();
    let mut statement: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).unwrap(),
    )
    .unwrap();
    statement["predicate"]["tampered"] = serde_json::json!(true);
    bundle["dsseEnvelope"]["payload"] = serde_json::json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&statement).unwrap()
    ));
    let subject: Descriptor = serde_json::from_value(manifest["subject"].clone()).unwrap();
    let r = referrer::artifact_manifest(
        &subject,
        BUNDLE,
        BUNDLE,
        &serde_json::to_vec(&bundle).unwrap(),
        &Default::default(),
        1_700_000_000,
    );
    layout
        .write_blob(&r.config.0.media_type, &r.config.1)
        .unwrap();
    layout
        .write_blob(&r.layer.0.media_type, &r.layer.1)
        .unwrap();
    layout
        .write_blob(&r.descriptor.media_type, &r.bytes)
        .unwrap();
    layout.add_referrer(&r.descriptor).unwrap();
    let bad = verify_key(dir.path(), &image, &public_key());
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains(r.descriptor.digest.as_str()), "{stderr}");

    // Unsigned: every statement is there, and --key refuses each.
    let unsigned = packaged(&pipeline(None));
    let out = publish(unsigned.path(), false);
    assert!(out.status.success(), "{}", text(&out));
    check_release_json(unsigned.path(), "layout", false);
    let image = format!(
        "oci:{}:0.3.1-musl",
        unsigned.path().join("dist/oci").display()
    );
    let bad = verify_key(unsigned.path(), &image, &public_key());
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));

    // attest: { sbom: false, provenance: false }: the verification attestations only.
    let off = packaged(&format!(
        "{}\nattest: {{ sbom: false, provenance: false }}\n",
        pipeline(None)
    ));
    let out = publish(off.path(), true);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&off.path().join("dist/release.json"));
    let kinds: Vec<&str> = report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["predicate_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["https://shipit.dev/verification/v1"; 2], "{report}");
}

/// Every statement attached in the OCI layout at `oci`, unsigned: (subject digest, statement).
fn layout_statements(oci: &Path) -> Vec<(String, serde_json::Value)> {
    let layout = Layout::open(oci).unwrap();
    let index_json = json(&oci.join("index.json"));
    index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("artifactType").is_some())
        .map(|m| {
            let desc: Descriptor = serde_json::from_value(m.clone()).unwrap();
            let manifest: serde_json::Value =
                serde_json::from_slice(&layout.read_blob(&desc, 1 << 20).unwrap()).unwrap();
            let layer: Descriptor = serde_json::from_value(manifest["layers"][0].clone()).unwrap();
            let statement: serde_json::Value =
                serde_json::from_slice(&layout.read_blob(&layer, 16 << 20).unwrap()).unwrap();
            (
                manifest["subject"]["digest"].as_str().unwrap().to_string(),
                statement,
            )
        })
        .collect()
}

/// The gnu arm64 image on an `oci:` base, verified under QEMU: its verification attestation
/// records the QEMU CPU (the strict one, cortex-a53), the glibc floor and the highest
/// `GLIBC_x.y` the binary and its libraries need (as `readelf` would find it: a real version),
/// and every check the verify stage ran with its result; its provenance lists the base image by
/// name with the manifest digest of the base's arm64 image, and rustc and cargo with versions.
#[test]
fn verification_and_provenance_record_glibc_cpu_checks_base_digest_and_toolchain() {
    let p = pipeline(None)
        .replace("base: \"deb:bookworm\"", "base: \"oci:base/bookworm\"")
        .replace(
            "  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n",
            "",
        );
    assert!(p.contains("oci:base/bookworm"), "{p}");
    let tmp = example_copy(Some(&p));
    let gnu_arm64 = ["--variant", "gnu", "--platform", "linux/arm64"];
    run_ok(
        shipit(tmp.path())
            .args(["package", "-q"])
            .args(gnu_arm64)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    let out = shipit(tmp.path())
        .arg("publish")
        .args(gnu_arm64)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&tmp.path().join("dist/release.json"));
    let manifest = report["images"][0]["platforms"][0]["manifest_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let statements = layout_statements(&tmp.path().join("dist/oci"));
    let about = |predicate: &str| -> serde_json::Value {
        statements
            .iter()
            .find(|(s, st)| *s == manifest && st["predicateType"] == predicate)
            .unwrap_or_else(|| panic!("no {predicate} about {manifest}"))
            .1["predicate"]
            .clone()
    };

    let v = about("https://shipit.dev/verification/v1");
    assert_eq!(v["platform"], "linux/arm64", "{v}");
    assert_eq!(v["emulator"]["cpu"], "cortex-a53", "{v}");
    assert_eq!(v["emulator"]["binary"], "qemu-aarch64-static", "{v}");
    assert_eq!(v["glibc"]["floor"], "2.31", "{v}");
    let required = v["glibc"]["required"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    let re = regex::Regex::new(r"^2\.\d+$").unwrap();
    assert!(re.is_match(required), "{required}");
    let (major, minor) = required.split_once('.').unwrap();
    assert!(
        (major, minor.parse::<u32>().unwrap()) >= ("2", 17),
        "{required}"
    );
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["result"], "passed", "{c}");
            assert!(c["kind"].is_string() && c["durationMs"].is_u64(), "{c}");
            c["name"].as_str().unwrap()
        })
        .collect();
    for want in [
        "platform",
        "user",
        "elf",
        "interpreter",
        "libraries",
        "glibc",
        "version",
        "serves",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert_eq!(v["result"], "passed");

    let prov = about("https://slsa.dev/provenance/v1");
    let deps = prov["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let base_layout = Layout::open(&tmp.path().join("base/bookworm")).unwrap();
    let want_base = base_layout
        .select_platform(
            None,
            &shipit::oci::index::Platform::new("linux", "arm64", Some("v8")),
        )
        .or_else(|_| {
            base_layout.select_platform(
                None,
                &shipit::oci::index::Platform::new("linux", "arm64", None),
            )
        })
        .unwrap()
        .descriptor
        .digest;
    let base = deps
        .iter()
        .find(|d| d["name"] == "base linux/arm64")
        .unwrap_or_else(|| panic!("{prov}"));
    assert_eq!(base["uri"], "oci:base/bookworm", "{base}");
    assert_eq!(base["digest"]["sha256"], want_base.hex(), "{base}");
    for tool in ["rustc", "cargo"] {
        let t = deps
            .iter()
            .find(|d| d["name"] == tool)
            .unwrap_or_else(|| panic!("no {tool} in {prov}"));
        assert!(
            t["uri"]
                .as_str()
                .unwrap()
                .starts_with(&format!("pkg:generic/{tool}@1.")),
            "{t}"
        );
    }
    // The index's provenance lists the same base.
    let index = report["images"][0]["index_digest"].as_str().unwrap();
    let on_index = statements
        .iter()
        .find(|(s, _)| s == index)
        .map(|(_, st)| st["predicate"]["buildDefinition"]["resolvedDependencies"].clone())
        .unwrap();
    assert!(
        on_index
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["digest"]["sha256"] == want_base.hex()),
        "{on_index}"
    );
}

/// The example's pipeline for two musl platforms only (amd64, arm64), publishing to `registry`
/// under `prefix/hello-server`.
fn musl_two_platforms(registry_prefix: &str) -> String {
    let p = pipeline(Some(registry_prefix))
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
    p
}

/// `shipit -c CFG --out OUT ARGS…` in the shared example, signed with the test key.
fn signed_run(dir: &Path, cfg: &str, out: &Path, args: &[&str]) -> Output {
    shipit(dir)
        .args(["-c", cfg, "--out", out.to_str().unwrap()])
        .args(args)
        .env("SHIPIT_SIGNING_KEY", private_key())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What release.json says was attached, as comparable facts: (subject kind, platform, artifact
/// type, predicate type, signed), sorted; and each attachment's subject is one of the release's
/// platform manifests or its index.
fn attached_facts(out: &Path) -> Vec<(String, String, String, String, bool)> {
    let report = json(&out.join("release.json"));
    let image = &report["images"][0];
    let mut subjects: Vec<&str> = image["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["manifest_digest"].as_str().unwrap())
        .collect();
    subjects.push(image["index_digest"].as_str().unwrap());
    let mut facts: Vec<_> = report["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(subjects.contains(&a["subject"].as_str().unwrap()), "{a}");
            (
                a["subject_kind"].as_str().unwrap().to_string(),
                a["platform"].as_str().unwrap_or("-").to_string(),
                a["artifact_type"].as_str().unwrap().to_string(),
                a["predicate_type"].as_str().unwrap().to_string(),
                a["signed"].as_bool().unwrap(),
            )
        })
        .collect();
    facts.sort();
    facts
}

/// `release --split` of two platforms and `--merge` attach what a one-shot `release` attaches:
/// per platform manifest its CycloneDX, SPDX, provenance and verification statements (made and
/// signed by the job that built and verified it, carried in its fragment), and the index's
/// provenance (made by the merge), all signed, listed in the real registry's fallback tags, and
/// `shipit verify --key` passes on the merged image. A fragment carrying another platform's
/// statements, or unsigned ones when the merge has the key, is refused: exit 1, no tag moved.
#[test]
fn split_and_merge_attach_what_a_one_shot_release_attaches() {
    let reg = TestRegistry::anonymous();
    let host = reg.addr.to_string();
    let dir = crate::support::fixture::example();
    let (one_cfg, split_cfg) = ("pipeline-supply-oneshot.yaml", "pipeline-supply-split.yaml");
    std::fs::write(
        dir.join(one_cfg),
        musl_two_platforms(&format!("{host}/oneshot")),
    )
    .unwrap();
    std::fs::write(
        dir.join(split_cfg),
        musl_two_platforms(&format!("{host}/split")),
    )
    .unwrap();
    let outs: Vec<PathBuf> = ["oneshot", "job0", "job1", "merge"]
        .iter()
        .map(|n| dir.join(format!("dist-supply-{n}")))
        .collect();
    for o in &outs {
        let _ = std::fs::remove_dir_all(o);
    }

    let one = signed_run(dir, one_cfg, &outs[0], &["release"]);
    assert!(one.status.success(), "one-shot: {}", text(&one));

    let mut fragments = Vec::new();
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let o = signed_run(
            dir,
            split_cfg,
            &outs[1 + i],
            &["release", "--split", "--platform", platform],
        );
        assert!(o.status.success(), "split {platform}: {}", text(&o));
        let frag = std::fs::read_dir(outs[1 + i].join("fragments"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let f = json(&frag);
        assert_eq!(f["attachments"].as_array().map(Vec::len), Some(4), "{f}");
        fragments.push(frag);
    }

    // A fragment carrying the other platform's statements: refused, no tag.
    let (mut a, b) = (json(&fragments[0]), json(&fragments[1]));
    a["attachments"] = b["attachments"].clone();
    let bad = tempfile::tempdir().unwrap();
    let fa = bad.path().join("a.json");
    std::fs::write(&fa, a.to_string()).unwrap();
    let o = signed_run(
        dir,
        split_cfg,
        &outs[3],
        &[
            "release",
            "--merge",
            fa.to_str().unwrap(),
            fragments[1].to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not about"),
        "{}",
        text(&o)
    );
    assert_eq!(
        reg.count("PUT", "split/hello-server/manifests/0.3.1-musl"),
        0,
        "a tag moved on a refused merge"
    );

    // A job without the key: its statements are unsigned, and a merge with the key refuses them.
    let unsigned_out = dir.join("dist-supply-job0-unsigned");
    let _ = std::fs::remove_dir_all(&unsigned_out);
    let o = shipit(dir)
        .args(["-c", split_cfg, "--out", unsigned_out.to_str().unwrap()])
        .args(["release", "--split", "--platform", "linux/amd64"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "unsigned split: {}", text(&o));
    let unsigned = std::fs::read_dir(unsigned_out.join("fragments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = signed_run(
        dir,
        split_cfg,
        &outs[3],
        &[
            "release",
            "--merge",
            unsigned.to_str().unwrap(),
            fragments[1].to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is unsigned"),
        "{}",
        text(&o)
    );
    assert_eq!(
        reg.count("PUT", "split/hello-server/manifests/0.3.1-musl"),
        0
    );

    let o = signed_run(
        dir,
        split_cfg,
        &outs[3],
        &[
            "release",
            "--merge",
            fragments[0].to_str().unwrap(),
            fragments[1].to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "merge: {}", text(&o));

    let merged = attached_facts(&outs[3]);
    assert_eq!(merged, attached_facts(&outs[0]), "split+merge vs one-shot");
    assert_eq!(merged.len(), 2 * 4 + 1);
    assert!(merged.iter().all(|f| f.2 == BUNDLE && f.4), "{merged:?}");

    // The registry lists them (docker-registry: the fallback tag of each subject).
    let report = json(&outs[3].join("release.json"));
    for a in report["attachments"].as_array().unwrap() {
        let hex = &a["subject"].as_str().unwrap()[7..];
        let index = reg.skopeo_raw(&format!("split/hello-server:sha256-{hex}"));
        let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        assert!(
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["digest"] == a["manifest_digest"]),
            "{index}"
        );
    }
    let image = format!("{host}/split/hello-server:0.3.1-musl");
    let ok = verify_key(dir, &image, &public_key());
    assert!(ok.status.success(), "{}", text(&ok));
    assert_no_unknown_platform(&reg.skopeo_raw("split/hello-server:0.3.1-musl"));
}
