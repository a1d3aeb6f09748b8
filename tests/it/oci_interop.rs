//! OCI interop: real tools read what shipit's OCI writer wrote. Two single-platform images (a
//! static amd64 program built with musl-gcc, a static arm64 one built with aarch64-linux-gnu-gcc)
//! and their index go into a layout; skopeo inspects and copies it, umoci unpacks it, and the
//! unpacked programs run (arm64 under qemu-aarch64-static). A base image made by umoci (whose
//! index.json entries carry no platform) is selected, copied and built upon. Missing tools fail
//! the test with a pointer to scripts/setup.sh; nothing is skipped. The standard annotations of
//! a packaged release are read back by skopeo, umoci and buildah.

use shipit::oci::digest::Digest;
use shipit::oci::image::{self, BuiltImage, ImageSpec};
use shipit::oci::index::{self, BuiltIndex, Platform};
use shipit::oci::layer::Entry;
use shipit::oci::layout::Layout;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: u64 = 1_700_000_000;
const GREETING: &str = "hello from shipit";

fn need(tool: &str) -> PathBuf {
    which::which(tool).unwrap_or_else(|_| {
        panic!("{tool} is not installed (not on PATH): run scripts/setup.sh to install it")
    })
}

/// Runs a command, panicking with its stderr if it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Static hello programs for amd64 and arm64, compiled into `dir`.
fn hello_binaries(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("hello.c");
    fs::write(
        &src,
        format!("#include <stdio.h>\nint main(void) {{ puts(\"{GREETING}\"); return 0; }}\n"),
    )
    .unwrap();
    let amd = dir.join("hello-amd64");
    let arm = dir.join("hello-arm64");
    run(Command::new(need("musl-gcc"))
        .args(["-static", "-O2", "-o"])
        .arg(&amd)
        .arg(&src));
    run(Command::new(need("aarch64-linux-gnu-gcc"))
        .args(["-static", "-O2", "-o"])
        .arg(&arm)
        .arg(&src));
    (amd, arm)
}

fn spec(platform: &str) -> ImageSpec {
    ImageSpec {
        platform: Platform::parse(platform).unwrap(),
        user: Some("10001:10001".into()),
        entrypoint: Some(vec!["/usr/local/bin/hello".into()]),
        env: vec![("RUST_LOG".into(), "info".into())],
        exposed_ports: vec!["8080".into()],
        epoch: EPOCH,
        ..ImageSpec::default()
    }
}

/// One platform image from a host binary, written into `layout`.
fn platform_image(layout: &Layout, binary: &Path, platform: &str) -> BuiltImage {
    let (_, digests) = layout
        .write_layer(
            &[Entry::host_file("usr/local/bin/hello", binary, 0o755)],
            EPOCH,
        )
        .unwrap();
    let img = image::build(None, &[digests], &spec(platform)).unwrap();
    layout.write_image(&img).unwrap();
    img
}

/// The release layout: tags `1.0.0` (index), `1.0.0-amd64`, `1.0.0-arm64`.
fn write_release(dir: &Path, amd: &Path, arm: &Path) -> (BuiltIndex, BuiltImage, BuiltImage) {
    let layout = Layout::create(dir).unwrap();
    let a = platform_image(&layout, amd, "linux/amd64");
    let b = platform_image(&layout, arm, "linux/arm64");
    let idx = index::build(
        &[
            (
                a.descriptor.clone(),
                Platform::parse("linux/amd64").unwrap(),
            ),
            (
                b.descriptor.clone(),
                Platform::parse("linux/arm64").unwrap(),
            ),
        ],
        &BTreeMap::new(),
    )
    .unwrap();
    layout.write_index(&idx).unwrap();
    layout.tag("1.0.0", &idx.descriptor).unwrap();
    layout.tag("1.0.0-amd64", &a.descriptor).unwrap();
    layout.tag("1.0.0-arm64", &b.descriptor).unwrap();
    (idx, a, b)
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Every file under `dir` (relative path, bytes), sorted.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Unpacks `image` (`DIR:TAG`) with umoci and returns the bundle directory.
fn umoci_unpack(image: &str, bundle: &Path) {
    let mut cmd = Command::new(need("umoci"));
    cmd.arg("unpack");
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--rootless");
    }
    run(cmd.arg("--image").arg(image).arg(bundle));
}

#[test]
fn skopeo_reads_the_index_and_copies_it_digest_for_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (amd, arm) = hello_binaries(tmp.path());
    let dir = tmp.path().join("oci");
    let (idx, _, _) = write_release(&dir, &amd, &arm);

    let raw = run(Command::new(need("skopeo"))
        .args(["inspect", "--raw"])
        .arg(oci(&dir, "1.0.0")));
    assert_eq!(
        raw.as_bytes(),
        idx.bytes.as_slice(),
        "skopeo sees exactly the bytes written"
    );
    let parsed = index::parse(raw.as_bytes()).unwrap();
    let platforms: Vec<String> = parsed
        .manifests
        .iter()
        .map(|m| m.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // skopeo's own view of one platform: architecture and os from the config.
    let inspect = run(Command::new(need("skopeo"))
        .args(["inspect", "--override-arch", "arm64"])
        .arg(oci(&dir, "1.0.0")));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Architecture"], "arm64", "{inspect}");
    assert_eq!(v["Os"], "linux");

    let dir2 = tmp.path().join("copy");
    run(Command::new(need("skopeo"))
        .args(["copy", "--all", "--preserve-digests"])
        .arg(oci(&dir, "1.0.0"))
        .arg(oci(&dir2, "1.0.0")));
    let copy = Layout::open(&dir2).unwrap();
    assert_eq!(copy.resolve("1.0.0").unwrap().digest, idx.descriptor.digest);
    let blobs = |d: &Path| {
        let mut v: Vec<(PathBuf, Vec<u8>)> = all_files(&d.join("blobs"));
        v.retain(|(p, _)| !p.to_string_lossy().contains(".tmp"));
        v
    };
    assert_eq!(blobs(&dir2), blobs(&dir), "the same blobs, byte for byte");
}

#[test]
fn umoci_unpacks_rootfs_whose_programs_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (amd, arm) = hello_binaries(tmp.path());
    let dir = tmp.path().join("oci");
    write_release(&dir, &amd, &arm);

    let bundle = tmp.path().join("bundle-amd64");
    umoci_unpack(&format!("{}:1.0.0-amd64", dir.display()), &bundle);
    let bin = bundle.join("rootfs/usr/local/bin/hello");
    assert_eq!(run(&mut Command::new(&bin)).trim(), GREETING);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["user"]["uid"], 10001, "{config}");
    assert_eq!(config["process"]["args"][0], "/usr/local/bin/hello");
    assert!(
        config["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "RUST_LOG=info")
    );

    let bundle = tmp.path().join("bundle-arm64");
    umoci_unpack(&format!("{}:1.0.0-arm64", dir.display()), &bundle);
    let bin = bundle.join("rootfs/usr/local/bin/hello");
    assert_eq!(
        run(Command::new(need("qemu-aarch64-static")).arg(&bin)).trim(),
        GREETING
    );
    // The binary in the rootfs is the arm64 one, byte for byte.
    assert_eq!(fs::read(&bin).unwrap(), fs::read(&arm).unwrap());
}

#[test]
fn same_inputs_give_identical_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let (amd, arm) = hello_binaries(tmp.path());
    let (idx1, ..) = write_release(&tmp.path().join("one"), &amd, &arm);
    // Touch the inputs between the runs: their mtimes must not matter.
    for f in [&amd, &arm] {
        let file = fs::File::options().append(true).open(f).unwrap();
        file.set_modified(std::time::SystemTime::now()).unwrap();
    }
    let (idx2, ..) = write_release(&tmp.path().join("two"), &amd, &arm);
    assert_eq!(idx1.descriptor.digest, idx2.descriptor.digest);
    let one = all_files(&tmp.path().join("one"));
    let two = all_files(&tmp.path().join("two"));
    assert_eq!(
        one.iter().map(|f| &f.0).collect::<Vec<_>>(),
        two.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(one == two, "the two layouts differ in some file's bytes");
    // The writers' lock (`.shipit-index.lock`, held while index.json is rewritten) stays in the
    // layout, empty; everything else is the image.
    let (locks, content): (Vec<_>, Vec<_>) = one
        .iter()
        .partition(|(p, _)| p.to_str().is_some_and(|p| p.starts_with(".shipit")));
    assert!(
        locks.iter().all(|(_, bytes)| bytes.is_empty()),
        "lock files keep no content: {locks:?}"
    );
    assert_eq!(
        content.len(),
        2 + 7,
        "oci-layout, index.json, 2 layers, 2 configs, 2 manifests, 1 index"
    );
}

#[test]
fn base_image_made_by_umoci_is_selected_copied_and_built_upon() {
    let tmp = tempfile::tempdir().unwrap();
    let (amd, _) = hello_binaries(tmp.path());
    let umoci = need("umoci");

    // A base made by umoci: its index.json entry has no platform field.
    let base_dir = tmp.path().join("base");
    let base_ref = format!("{}:base", base_dir.display());
    run(Command::new(&umoci)
        .args(["init", "--layout"])
        .arg(&base_dir));
    run(Command::new(&umoci).args(["new", "--image", &base_ref]));
    let file = tmp.path().join("os-release");
    fs::write(&file, "ID=shipit-test-base\n").unwrap();
    run(Command::new(&umoci)
        .args(["insert", "--image", &base_ref])
        .arg(&file)
        .arg("/etc/os-release"));
    run(Command::new(&umoci).args([
        "config",
        "--image",
        &base_ref,
        "--config.env",
        "PATH=/usr/bin:/bin",
        "--config.env",
        "RUST_LOG=debug",
    ]));
    let base_layout = Layout::open(&base_dir).unwrap();
    assert!(base_layout.resolve("base").unwrap().platform.is_none());

    // Select it by platform, copy it into our layout, and put our layer on top.
    let selected = base_layout
        .select_platform(Some("base"), &Platform::parse("linux/amd64").unwrap())
        .unwrap();
    let dist = Layout::create(&tmp.path().join("dist")).unwrap();
    base_layout.copy_image(&dist, &selected.descriptor).unwrap();
    let base = selected.into_base().unwrap();
    assert_eq!(base.layers().len(), 1);
    let (_, ours) = dist
        .write_layer(
            &[Entry::host_file("usr/local/bin/hello", &amd, 0o755)],
            EPOCH,
        )
        .unwrap();
    let img = image::build(Some(&base), &[ours], &spec("linux/amd64")).unwrap();
    dist.write_image(&img).unwrap();
    dist.tag("app", &img.descriptor).unwrap();

    let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap();
    assert_eq!(
        cfg["config"]["Env"],
        serde_json::json!(["PATH=/usr/bin:/bin", "RUST_LOG=info"]),
        "base order kept, our value wins"
    );
    assert_eq!(image::config_diff_ids(&cfg).unwrap().len(), 2);

    let bundle = tmp.path().join("bundle");
    umoci_unpack(&format!("{}:app", dist.root().display()), &bundle);
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/os-release")).unwrap(),
        "ID=shipit-test-base\n"
    );
    assert_eq!(
        run(&mut Command::new(bundle.join("rootfs/usr/local/bin/hello"))).trim(),
        GREETING
    );
    // The result is self-contained: every blob it names is in dist.
    for l in &img.manifest.layers {
        assert!(dist.has_blob(&l.digest), "{} missing", l.digest);
    }
    assert_eq!(Digest::of(&img.manifest_bytes), img.descriptor.digest);
}

// ---------------------------------------------------------------------------------------------
// The standard annotations of a release, as skopeo, umoci and buildah read them (issue 16
// item 1).

/// The example's gnu images on an `oci:` base, with Cargo's descriptive keys and
/// `image.annotations` in all three scopes; packaged (no build: the copy has dist/bin).
fn annotated_example() -> tempfile::TempDir {
    let pipeline = crate::support::fixture::example_pipeline()
        .replace("base: \"deb:bookworm\"", "base: \"oci:base/bookworm\"")
        .replace(
            "  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n",
            "  annotations:\n    org.opencontainers.image.vendor: Acme\n    \"index:org.opencontainers.image.description\": the multi-arch release\n    \"manifest:com.example.build\": \"42\"\n",
        );
    assert!(pipeline.contains("oci:base/bookworm"), "{pipeline}");
    let dir = crate::support::fixture::example_copy(Some(&pipeline));
    let manifest = dir.path().join("Cargo.toml");
    let cargo = fs::read_to_string(&manifest).unwrap().replace(
        "license = \"MIT OR Apache-2.0\"",
        "license = \"MIT/Apache-2.0\"\nrepository = \"https://example.com/acme/hello-server\"\nhomepage = \"https://hello.example.com\"",
    );
    fs::write(&manifest, cargo).unwrap();
    // A git repository, so the revision is known (an https remote with credentials: the Cargo
    // `repository` key wins over it).
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_DATE", "@1600000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1600000000 +0000"))
    };
    git(&["init", "-q"]);
    git(&["add", "Cargo.toml", "src"]);
    git(&["commit", "-q", "-m", "example"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://user:secret@example.org/acme/other.git",
    ]);
    dir
}

fn package_gnu(dir: &Path) -> String {
    let out = crate::support::shipit(dir)
        .args(["package", "-q", "--variant", "gnu", "--json"])
        .env("SOURCE_DATE_EPOCH", crate::support::fixture::EPOCH)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packaged: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("dist/package.json")).unwrap()).unwrap();
    packaged["images"][0]["index"]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn skopeo_umoci_and_buildah_read_the_standard_annotations_and_labels() {
    let dir = annotated_example();
    let index_digest = package_gnu(dir.path());
    let revision = run(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir.path()))
    .trim()
    .to_string();
    let layout = dir.path().join("dist/oci");
    let p = "org.opencontainers.image.";

    let raw = run(Command::new(need("skopeo"))
        .args(["inspect", "--raw"])
        .arg(oci(&layout, "staging-gnu")));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let a = &index["annotations"];
    let want_common = [
        ("source", "https://example.com/acme/hello-server"),
        ("created", "2023-11-14T22:13:20Z"),
        ("version", "0.3.1"),
        ("licenses", "MIT OR Apache-2.0"),
        ("title", "hello-server"),
        ("url", "https://hello.example.com"),
        ("vendor", "Acme"),
        ("base.name", "oci:base/bookworm"),
    ];
    assert_eq!(a[format!("{p}revision")], revision.as_str(), "{raw}");
    assert!(!raw.contains("secret"), "{raw}");
    for (k, v) in want_common {
        assert_eq!(a[format!("{p}{k}")], v, "index {k}: {raw}");
    }
    assert_eq!(
        a[format!("{p}description")],
        "the multi-arch release",
        "index: {raw}"
    );
    assert!(
        a["com.example.build"].is_null(),
        "manifest-only key on the index: {raw}"
    );
    assert!(a[format!("{p}base.digest")].is_null(), "{raw}");

    // Each platform manifest: the same, its own base digest, the manifest-scoped key, the
    // crate's description; and the config's labels carry exactly the manifest's annotations.
    let base = Layout::open(&dir.path().join("base/bookworm")).unwrap();
    let packaged: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("dist/package.json")).unwrap()).unwrap();
    let platforms = packaged["images"][0]["platforms"].as_array().unwrap();
    // linux/amd64's manifest digest and annotations, for buildah below.
    let mut amd64 = None;
    assert_eq!(
        platforms.len(),
        index["manifests"].as_array().unwrap().len()
    );
    for pl in platforms {
        let platform = Platform::parse(pl["platform"].as_str().unwrap()).unwrap();
        let staging = pl["staging_ref"].as_str().unwrap();
        let raw = run(Command::new(need("skopeo"))
            .args(["inspect", "--raw"])
            .arg(oci(&layout, staging)));
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let ma = manifest["annotations"].as_object().unwrap();
        for (k, v) in want_common {
            assert_eq!(ma[&format!("{p}{k}")], v, "{platform} {k}: {raw}");
        }
        assert_eq!(ma["com.example.build"], "42");
        assert_eq!(
            ma[&format!("{p}description")],
            "A small HTTP service: the example and test fixture for shipit."
        );
        let want_base = base
            .select_platform(None, &platform)
            .unwrap()
            .descriptor
            .digest;
        assert_eq!(
            ma[&format!("{p}base.digest")],
            want_base.as_str(),
            "{platform}"
        );
        // package.json's plain field (what release.json reports per platform).
        assert_eq!(pl["base"]["name"], "oci:base/bookworm");
        assert_eq!(pl["base"]["digest"], want_base.as_str());
        assert_eq!(ma[&format!("{p}revision")], revision.as_str());

        let config = run(Command::new(need("skopeo"))
            .args(["inspect", "--config"])
            .arg(oci(&layout, staging)));
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        let labels = config["config"]["Labels"].as_object().unwrap();
        for (k, v) in ma {
            assert_eq!(&labels[k], v, "{platform}: label {k} out of step");
        }
        if pl["platform"] == "linux/amd64" {
            amd64 = Some((pl["manifest"]["digest"].clone(), ma.clone()));
        }
    }

    // buildah (containers/image and containers/storage, as podman reads images): pulled from the
    // layout into a throwaway store, its inspect shows the manifest's annotations and the
    // config's labels.
    let (amd64_digest, amd64_annotations) = amd64.expect("a linux/amd64 image");
    let store = tempfile::tempdir().unwrap();
    let buildah = |args: &[&str]| {
        run(Command::new(need("buildah"))
            .arg("--root")
            .arg(store.path().join("root"))
            .arg("--runroot")
            .arg(store.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args))
    };
    // buildah names a pulled image after the layout's path, which must then be lowercase: pull
    // through a lowercase symbolic link to the layout (removed on drop).
    struct Link(PathBuf);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let link =
        Link(std::env::temp_dir().join(format!("shipit-buildah-{}-{nanos}", std::process::id())));
    std::os::unix::fs::symlink(&layout, &link.0).unwrap();
    let id = buildah(&["pull", "-q", &oci(&link.0, "staging-gnu-linux-amd64")]);
    let inspect = buildah(&["inspect", "--type", "image", id.trim()]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["FromImageDigest"], amd64_digest, "{inspect:#}");
    let shown = inspect["ImageAnnotations"].as_object().unwrap();
    assert_eq!(shown, &amd64_annotations, "buildah's ImageAnnotations");
    let labels = inspect["OCIv1"]["config"]["Labels"].as_object().unwrap();
    for (k, v) in &amd64_annotations {
        assert_eq!(&labels[k], v, "buildah: label {k}");
    }
    for k in ["source", "revision", "version", "licenses", "base.digest"] {
        assert!(
            labels.contains_key(&format!("{p}{k}")),
            "buildah: no {p}{k} label"
        );
    }

    // umoci's bundle config carries the annotations of the manifest it unpacked.
    let bundle = dir.path().join("bundle");
    umoci_unpack(
        &format!("{}:staging-gnu-linux-amd64", layout.display()),
        &bundle,
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["annotations"][format!("{p}vendor")], "Acme", "{cfg}");
    assert_eq!(
        cfg["annotations"][format!("{p}licenses")],
        "MIT OR Apache-2.0"
    );

    // The same inputs, the same digests.
    fs::remove_dir_all(&layout).unwrap();
    assert_eq!(package_gnu(dir.path()), index_digest);
}
