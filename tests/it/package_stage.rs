//! The package stage read back by other tools: the same inputs give byte-identical layouts (and
//! SOURCE_DATE_EPOCH changes them); skopeo reads the indexes and copies them without a change;
//! umoci unpacks every platform image into a rootfs whose binary runs under QEMU with the strict
//! CPU; the image configs say what the pipeline asked for; `--json` lists digests and sizes;
//! `image.files` is one layer that every platform and variant shares: stored once, uploaded
//! once, unpacked once by verify.

use crate::build_stage::{FixtureLock, fixture_lock};
use crate::support::fixture::{EPOCH, example, example_copy, run_ok};
use crate::support::shipit;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// (libc, slug, os, architecture, variant, qemu, strict cpu): what every image must be.
type Image = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);
const IMAGES: &[Image] = &[
    (
        "gnu",
        "linux-amd64",
        "linux",
        "amd64",
        None,
        "qemu-x86_64-static",
        None,
    ),
    (
        "gnu",
        "linux-arm64",
        "linux",
        "arm64",
        Some("v8"),
        "qemu-aarch64-static",
        Some("cortex-a53"),
    ),
    (
        "gnu",
        "linux-arm-v7",
        "linux",
        "arm",
        Some("v7"),
        "qemu-arm-static",
        Some("cortex-a7"),
    ),
    (
        "musl",
        "linux-amd64",
        "linux",
        "amd64",
        None,
        "qemu-x86_64-static",
        None,
    ),
    (
        "musl",
        "linux-arm64",
        "linux",
        "arm64",
        Some("v8"),
        "qemu-aarch64-static",
        Some("cortex-a53"),
    ),
    (
        "musl",
        "linux-arm-v7",
        "linux",
        "arm",
        Some("v7"),
        "qemu-arm-static",
        Some("cortex-a7"),
    ),
    (
        "musl",
        "linux-arm-v6",
        "linux",
        "arm",
        Some("v6"),
        "qemu-arm-static",
        Some("arm1176"),
    ),
];

/// A copy of the built example (sources, base, dist/bin), taken under the fixture lock.
fn copy() -> tempfile::TempDir {
    example();
    let _lock: FixtureLock = fixture_lock();
    example_copy(None)
}

/// `shipit package --json` in `dir` with this SOURCE_DATE_EPOCH; the printed document.
fn package(dir: &Path, epoch: &str) -> Value {
    let out = run_ok(
        shipit(dir)
            .args(["package", "--json"])
            .env("SOURCE_DATE_EPOCH", epoch),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json printed non-JSON ({e}):\n{out}"))
}

/// Every file under `root`, by relative path, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn index_digests(doc: &Value) -> Vec<String> {
    doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"]["digest"].as_str().unwrap().to_string())
        .collect()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

#[test]
fn packaging_twice_is_byte_identical_and_source_date_epoch_changes_it() {
    let a = copy();
    let b = copy();
    // The second copy's binaries get other mtimes: they must not leak into the images.
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
    for f in files(&b.path().join("dist/bin")).keys() {
        let path = b.path().join("dist/bin").join(f);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let da = package(a.path(), EPOCH);
    let db = package(b.path(), EPOCH);
    let (fa, fb) = (
        files(&a.path().join("dist/oci")),
        files(&b.path().join("dist/oci")),
    );
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the two layouts hold different files"
    );
    for (path, bytes) in &fa {
        assert!(
            bytes == &fb[path],
            "{} differs between the two packagings",
            path.display()
        );
    }
    assert!(fa.len() > 20, "suspiciously few files: {}", fa.len());
    assert_eq!(index_digests(&da), index_digests(&db));
    assert_eq!(index_digests(&da).len(), 2);

    // Another SOURCE_DATE_EPOCH: other timestamps, so other digests for every index.
    let later = (EPOCH.parse::<u64>().unwrap() + 86_400).to_string();
    let dc = package(b.path(), &later);
    for (x, y) in index_digests(&da).iter().zip(index_digests(&dc)) {
        assert_ne!(x, &y, "SOURCE_DATE_EPOCH did not change the index");
    }
    let layout = b.path().join("dist/oci");
    let manifest = json_blob(
        &layout,
        dc["images"][1]["platforms"][0]["manifest"]["digest"]
            .as_str()
            .unwrap(),
    );
    let config = json_blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["created"], "2023-11-15T22:13:20Z");
}

/// `(os, architecture, variant)` of an index's entries.
fn platforms_of(index: &Value) -> Vec<(String, String, Option<String>)> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            (
                p["os"].as_str().unwrap().to_string(),
                p["architecture"].as_str().unwrap().to_string(),
                p["variant"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn skopeo_reads_the_indexes_and_copies_them_unchanged() {
    let tmp = copy();
    let doc = package(tmp.path(), EPOCH);
    let layout = tmp.path().join("dist/oci");
    for (n, libc) in ["gnu", "musl"].iter().enumerate() {
        let raw = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:staging-{libc}", layout.display()),
        ]));
        let index: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let want: Vec<(String, String, Option<String>)> = IMAGES
            .iter()
            .filter(|i| i.0 == *libc)
            .map(|i| (i.2.into(), i.3.into(), i.4.map(str::to_string)))
            .collect();
        assert_eq!(platforms_of(&index), want, "{libc} index platforms");
        // The same as shipit's platform table.
        for (os, arch, variant) in platforms_of(&index) {
            assert!(shipit::platform::PLATFORMS.iter().any(|p| p.os == os
                && p.architecture == arch
                && p.variant.map(str::to_string) == variant));
        }
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()))
        );
        assert_eq!(
            doc["images"][n]["index"]["digest"],
            digest.as_str(),
            "skopeo read another index"
        );
    }

    // skopeo copy --all to another layout: the same index digest and the same blobs, byte for byte.
    let other = tempfile::tempdir().unwrap();
    let dest = other.path().join("copy");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "-q",
        &format!("oci:{}:staging-musl", layout.display()),
        &format!("oci:{}:x", dest.display()),
    ]));
    let copied: Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    let entry = &copied["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "x"
    );
    assert_eq!(
        entry["digest"], doc["images"][1]["index"]["digest"],
        "skopeo changed the index"
    );
    // The blobs reachable from staging-musl in shipit's layout…
    let mut reachable = BTreeSet::new();
    let index_digest = doc["images"][1]["index"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for m in json_blob(&layout, &index_digest)["manifests"]
        .as_array()
        .unwrap()
    {
        let md = m["digest"].as_str().unwrap();
        let manifest = json_blob(&layout, md);
        reachable.insert(md.to_string());
        reachable.insert(manifest["config"]["digest"].as_str().unwrap().to_string());
        for l in manifest["layers"].as_array().unwrap() {
            reachable.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    reachable.insert(index_digest);
    // …are exactly the blobs of the copy.
    let have: BTreeSet<String> = files(&dest.join("blobs/sha256"))
        .keys()
        .map(|p| format!("sha256:{}", p.display()))
        .collect();
    assert_eq!(have, reachable, "skopeo's copy holds other blobs");
    for d in &have {
        assert!(
            blob(&layout, d) == blob(&dest, d),
            "{d} differs after skopeo copy"
        );
    }
}

#[test]
fn umoci_unpacks_every_platform_and_its_binary_runs_under_the_strict_cpu() {
    let tmp = copy();
    package(tmp.path(), EPOCH);
    let layout = tmp.path().join("dist/oci");
    for (libc, slug, _, _, _, qemu, cpu) in IMAGES {
        let bundle = tmp.path().join(format!("bundle-{libc}-{slug}"));
        run_ok(Command::new("umoci").args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:staging-{libc}-{slug}", layout.display()),
            bundle.to_str().unwrap(),
        ]));
        let rootfs = bundle.join("rootfs");
        let bin = rootfs.join("usr/local/bin/hello-server");
        assert!(
            bin.is_file(),
            "{libc} {slug}: no binary in the unpacked image"
        );
        // The runtime config umoci derived from the image config.
        let runtime: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(runtime["process"]["user"]["uid"], 10001, "{libc} {slug}");
        assert_eq!(runtime["process"]["user"]["gid"], 10001, "{libc} {slug}");
        assert_eq!(runtime["process"]["args"][0], "/usr/local/bin/hello-server");
        assert!(
            runtime["process"]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "RUST_LOG=info"),
            "{libc} {slug}: {:#}",
            runtime["process"]["env"]
        );

        let mut c = Command::new(qemu);
        if let Some(cpu) = cpu {
            c.args(["-cpu", cpu]);
        }
        if *libc == "gnu" {
            // The image's own Debian layers provide the loader and libc.
            c.arg("-L").arg(&rootfs);
        }
        let out = c.arg(&bin).arg("--version").output().unwrap();
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == "hello-server 0.3.1",
            "{libc} {slug} under {qemu} -cpu {cpu:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );

        if *libc == "gnu" {
            assert!(rootfs.join("lib").exists() || rootfs.join("usr/lib").exists());
        } else {
            // Scratch images get a passwd with the image user.
            let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))
                .unwrap_or_else(|e| panic!("{libc} {slug}: no /etc/passwd: {e}"));
            assert!(
                passwd.lines().any(|l| l.split(':').nth(2) == Some("10001")
                    && l.split(':').nth(3) == Some("10001")),
                "{libc} {slug}: no 10001 user in\n{passwd}"
            );
            let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
            assert!(
                group.lines().any(|l| l.split(':').nth(2) == Some("10001")),
                "{group}"
            );
        }
    }
}

#[test]
fn image_configs_carry_user_entrypoint_ports_env_and_labels() {
    let tmp = copy();
    package(tmp.path(), EPOCH);
    let layout = tmp.path().join("dist/oci");
    for (libc, slug, os, arch, variant, _, _) in IMAGES {
        let raw = run_ok(Command::new("skopeo").args([
            "inspect",
            "--config",
            &format!("oci:{}:staging-{libc}-{slug}", layout.display()),
        ]));
        let config: Value = serde_json::from_str(&raw).unwrap();
        let what = format!("{libc} {slug}");
        assert_eq!(config["os"], *os, "{what}");
        assert_eq!(config["architecture"], *arch, "{what}");
        assert_eq!(config["variant"].as_str(), *variant, "{what}");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z", "{what}");
        let c = &config["config"];
        assert_eq!(c["User"], "10001:10001", "{what}");
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/local/bin/hello-server"]),
            "{what}"
        );
        assert!(
            c["ExposedPorts"].get("8080/tcp").is_some(),
            "{what}: {:#}",
            c["ExposedPorts"]
        );
        let env: Vec<&str> = c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(env.contains(&"RUST_LOG=info"), "{what}: {env:?}");
        assert!(
            env.iter().any(|e| e.starts_with("PATH=")),
            "{what}: {env:?}"
        );
        let labels = &c["Labels"];
        assert_eq!(
            labels["org.opencontainers.image.version"], "0.3.1",
            "{what}"
        );
        assert_eq!(
            labels["org.opencontainers.image.title"], "hello-server",
            "{what}"
        );
        assert_eq!(
            labels["org.opencontainers.image.created"], "2023-11-14T22:13:20Z",
            "{what}"
        );
        // The gnu images sit on the Debian base: more than the one layer shipit adds.
        let layers = config["rootfs"]["diff_ids"].as_array().unwrap().len();
        if *libc == "gnu" {
            assert!(layers > 1, "{what}: the base layers are missing");
        } else {
            assert_eq!(layers, 1, "{what}: scratch images have one layer");
        }
    }
}

#[test]
fn package_json_lists_every_image_digest_and_size() {
    let tmp = copy();
    let doc = package(tmp.path(), EPOCH);
    let layout = tmp.path().join("dist/oci");
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("dist/package.json")).unwrap())
            .unwrap();
    assert_eq!(doc, recorded, "--json and dist/package.json disagree");
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let mut seen = Vec::new();
    for img in images {
        let index = &img["index"];
        let digest = index["digest"].as_str().unwrap();
        let bytes = blob(&layout, digest);
        assert_eq!(
            index["size"],
            bytes.len(),
            "index size of {}",
            img["variant"]
        );
        let platforms = img["platforms"].as_array().unwrap();
        for p in platforms {
            let md = p["manifest"]["digest"].as_str().unwrap();
            let mbytes = blob(&layout, md);
            assert_eq!(p["manifest"]["size"], mbytes.len(), "{p:#}");
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&mbytes));
            assert_eq!(md, format!("sha256:{hash}"));
            let manifest: Value = serde_json::from_slice(&mbytes).unwrap();
            let mut size = manifest["config"]["size"].as_u64().unwrap();
            for l in manifest["layers"].as_array().unwrap() {
                let lb = blob(&layout, l["digest"].as_str().unwrap());
                assert_eq!(l["size"], lb.len());
                size += lb.len() as u64;
            }
            assert_eq!(p["compressed_size"], size, "{p:#}");
            seen.push(format!(
                "{}-{}",
                img["variant"].as_str().unwrap(),
                p["staging_ref"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(seen.len(), IMAGES.len(), "{seen:?}");
}

/// The digest of the largest layer of the single image `doc` describes, and the layout.
fn payload_layer(dir: &Path, doc: &Value) -> (String, String) {
    let layout = dir.join("dist/oci");
    let manifest = json_blob(
        &layout,
        doc["images"][0]["platforms"][0]["manifest"]["digest"]
            .as_str()
            .unwrap(),
    );
    let layers = manifest["layers"].as_array().unwrap();
    let (n, layer) = layers
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| l["size"].as_u64().unwrap())
        .unwrap();
    let diff_id =
        json_blob(&layout, manifest["config"]["digest"].as_str().unwrap())["rootfs"]["diff_ids"][n]
            .as_str()
            .unwrap()
            .to_string();
    (layer["digest"].as_str().unwrap().to_string(), diff_id)
}

#[test]
fn a_large_payload_layer_is_valid_gzip_and_compressed_once_until_its_blob_is_altered() {
    // Several 128 KiB compression chunks: half text, half pseudo-random bytes.
    let pipeline = crate::support::fixture::example_pipeline().replacen(
        "image:\n",
        "image:\n  files: [{ src: payload.bin, dest: /srv/payload.bin, mode: \"0644\" }]\n",
        1,
    );
    let tmp = {
        example();
        let _lock: FixtureLock = fixture_lock();
        example_copy(Some(&pipeline))
    };
    let dir = tmp.path();
    let mut payload: Vec<u8> = (0..60_000)
        .flat_map(|i| format!("line {i}: shipit layer payload\n").into_bytes())
        .collect();
    let mut x: u32 = 12345;
    payload.extend((0..1_500_000).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    std::fs::write(dir.join("payload.bin"), &payload).unwrap();
    let one = ["--platform", "linux/amd64", "--variant", "musl"];
    let pack = || {
        let out = run_ok(
            shipit(dir)
                .args(["package", "--json"])
                .args(one)
                .env("SOURCE_DATE_EPOCH", EPOCH),
        );
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let first = pack();
    let (digest, diff_id) = payload_layer(dir, &first);
    let layout = dir.join("dist/oci");
    let blob_path = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());

    // A valid gzip (Debian's gzip and tar read it) that holds the payload.
    run_ok(Command::new("gzip").arg("-t").arg(&blob_path));
    let unpacked = Command::new("tar")
        .arg("-xzOf")
        .arg(&blob_path)
        .arg("srv/payload.bin")
        .output()
        .unwrap();
    assert!(unpacked.status.success());
    assert!(
        unpacked.stdout == payload,
        "the layer does not hold the payload"
    );

    // The cache records diff_id → this blob.
    let records: Vec<PathBuf> = std::fs::read_dir(dir.join("dist/cache/layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(diff_id.strip_prefix("sha256:").unwrap())
        })
        .collect();
    assert_eq!(records.len(), 1, "no cache record for {diff_id}");
    let record: Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert_eq!(record["digest"], digest.as_str());

    // Again: the same digests.
    let second = pack();
    assert_eq!(index_digests(&first), index_digests(&second));

    // The blob altered in the layout: it is not reused; the layer is made again, the same bytes.
    std::fs::write(&blob_path, b"not the layer").unwrap();
    let third = pack();
    assert_eq!(index_digests(&first), index_digests(&third));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&std::fs::read(&blob_path).unwrap())),
        digest,
        "the altered blob is still in the layout"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    shipit::oci::digest::Digest::of(bytes).hex().to_string()
}

/// Two platforms × two variants (musl on scratch, gnu on the Debian base) with the same
/// `image.files`: the files layer comes right before each image's own layer (the binary, and on
/// scratch passwd + group) and is the same blob in all four images; the layout stores it once, a
/// push to a real registry uploads it once (the other images' HEADs find it), umoci and skopeo
/// read every image, and verification unpacks it once (the report's `layers` counters: read
/// once, replayed three times).
#[test]
fn image_files_are_one_layer_shared_by_every_platform_and_variant_stored_uploaded_and_unpacked_once()
 {
    let reg = crate::support::registry::TestRegistry::anonymous();
    let host = reg.host_port();
    let pipeline = crate::support::fixture::example_pipeline()
        .replacen(
            "image:\n",
            "image:\n  files: [{ src: payload.bin, dest: /srv/payload.bin, mode: \"0644\" }]\n",
            1,
        )
        .replace(
            "repository: localhost/hello-server",
            &format!("repository: {host}/hello-server"),
        )
        .replace("publish:\n  to: oci:dist/oci", "publish:\n  to: registry\n")
        + "\nattest: { sbom: false, provenance: false, verification: false }\n";
    let tmp = {
        example();
        let _lock: FixtureLock = fixture_lock();
        example_copy(Some(&pipeline))
    };
    let dir = tmp.path();
    let payload: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("{i:08x} shared payload\n").into_bytes())
        .collect();
    std::fs::write(dir.join("payload.bin"), &payload).unwrap();
    let four = ["--platform", "linux/amd64", "--platform", "linux/arm64"];
    let out = run_ok(
        shipit(dir)
            .args(["package", "--json"])
            .args(four)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    let layout = dir.join("dist/oci");
    // (libc, slug, staging ref, config + layer digests)
    let mut images = Vec::new();
    for img in doc["images"].as_array().unwrap() {
        for p in img["platforms"].as_array().unwrap() {
            let manifest = json_blob(&layout, p["manifest"]["digest"].as_str().unwrap());
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect();
            images.push((
                img["variant"].as_str().unwrap().to_string(),
                p["platform"].as_str().unwrap().replace('/', "-"),
                p["staging_ref"].as_str().unwrap().to_string(),
                manifest["config"]["digest"].as_str().unwrap().to_string(),
                layers,
            ));
        }
    }
    assert_eq!(images.len(), 4, "{doc:#}");
    let files_layer = |layers: &[String]| layers[layers.len() - 2].clone();
    let shared = files_layer(&images[0].4);
    for (libc, slug, _, _, layers) in &images {
        assert_eq!(files_layer(layers), shared, "{libc} {slug}: {layers:?}");
        if libc == "musl" {
            assert_eq!(
                layers.len(),
                2,
                "{slug}: the files layer, then the binary's"
            );
        }
    }
    let own: BTreeSet<&String> = images.iter().map(|i| i.4.last().unwrap()).collect();
    assert_eq!(own.len(), 4, "each image has its own last layer");
    // The shared layer holds the file (and its directory), nothing platform- or base-specific.
    let shared_blob = layout.join("blobs/sha256").join(&shared[7..]);
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(&shared_blob));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["srv/", "srv/payload.bin"],
        "{listing}"
    );
    let unpacked = Command::new("tar")
        .arg("-xzOf")
        .arg(&shared_blob)
        .arg("srv/payload.bin")
        .output()
        .unwrap();
    assert!(
        unpacked.stdout == payload,
        "the shared layer lost the payload"
    );
    // Stored once: one blob file is named by its digest.
    let stored = files(&layout.join("blobs/sha256"))
        .keys()
        .filter(|p| p.to_str() == Some(&shared[7..]))
        .count();
    assert_eq!(stored, 1);

    // umoci reads each image: the payload, the platform's binary and a user for each.
    for (libc, slug, staging, _, _) in &images {
        let bundle = dir.join(format!("bundle-{libc}-{slug}"));
        run_ok(Command::new("umoci").args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{staging}", layout.display()),
            bundle.to_str().unwrap(),
        ]));
        let rootfs = bundle.join("rootfs");
        assert!(std::fs::read(rootfs.join("srv/payload.bin")).unwrap() == payload);
        assert!(
            std::fs::read(rootfs.join("usr/local/bin/hello-server")).unwrap()
                == std::fs::read(dir.join(format!("dist/bin/{libc}/{slug}/hello-server"))).unwrap(),
            "{libc} {slug}: another binary"
        );
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains(":10001:10001:"), "{libc} {slug}: {passwd}");
    }

    // Verification unpacks the shared layer once and replays it into the three other images.
    let out = shipit(dir)
        .args(["verify", "--json", "-v"])
        .args(four)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["layers"],
        serde_json::json!({"shared": 1, "unpacked": 1, "reused": 3}),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("(1 shared, unpacked once for this run)")
            .count(),
        3,
        "{stderr}"
    );

    // Published: every blob is uploaded once, the shared one included (one upload committed
    // with its digest); skopeo reads both indexes back and each image lists the shared layer.
    let out = shipit(dir)
        .args(["publish", "-q"])
        .args(four)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commits = |digest: &str| {
        reg.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
            .filter(|r| r.path.contains(&digest[7..]))
            .count()
    };
    assert_eq!(commits(&shared), 1, "{}", reg.log_text());
    let distinct: BTreeSet<&String> = images
        .iter()
        .flat_map(|i| std::iter::once(&i.3).chain(i.4.iter()))
        .collect();
    for d in &distinct {
        assert_eq!(commits(d), 1, "{d}: {}", reg.log_text());
    }
    let release: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dist/release.json")).unwrap()).unwrap();
    assert_eq!(release["blobs_uploaded"], distinct.len(), "{release}");
    for tag in ["0.3.1", "0.3.1-musl"] {
        let index: Value =
            serde_json::from_slice(&reg.skopeo_raw(&format!("hello-server:{tag}"))).unwrap();
        for m in index["manifests"].as_array().unwrap() {
            let digest = m["digest"].as_str().unwrap();
            let manifest: Value =
                serde_json::from_slice(&reg.skopeo_raw(&format!("hello-server@{digest}"))).unwrap();
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(
                layers[layers.len() - 2]["digest"],
                shared.as_str(),
                "{tag}: {manifest}"
            );
        }
    }
}
