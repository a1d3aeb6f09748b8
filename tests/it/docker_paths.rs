//! The docker paths against a real dockerd (20.10, BuildKit, vfs storage): the `docker` build
//! backend, the `docker` packager (scratch and `oci:` bases) and the `cross` backend. Each test
//! starts the private test daemon with `scripts/start-dockerd.sh` and makes the local builder image
//! with `scripts/docker-fixtures.sh` (both idempotent), copies examples/hello-server into a
//! temporary directory and runs the shipit binary there. Nothing is pulled from any hub: the
//! builder image is docker/builder.Dockerfile on an mmdebstrap rootfs plus this machine's Rust
//! toolchain, and the crates are vendored into the copy, since the test daemon has no bridge
//! network (`SHIPIT_DOCKER_NETWORK=none`, `CROSS_CONTAINER_OPTS=--network none`). The Dockerfiles
//! of `docker/` are built here too: `builder.Dockerfile` (through the script, under a throwaway
//! name) and `Dockerfile`, shipit's own image, whose `shipit --version` then runs.

use crate::support::shipit;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const DOCKER_HOST: &str = "unix:///run/shipit-docker.sock";

/// Starts dockerd and builds the fixtures once per test run; panics with their output if either
/// script fails, saying what is missing.
fn docker_ready() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        for script in ["scripts/start-dockerd.sh", "scripts/docker-fixtures.sh"] {
            let out = Command::new("bash")
                .arg(Path::new(REPO).join(script))
                .env("DOCKER_HOST", DOCKER_HOST)
                .output()
                .map_err(|e| format!("{script}: cannot run bash: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{script} failed ({}); the docker-path tests need it:\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn need(tool: &str) -> PathBuf {
    which::which(tool).unwrap_or_else(|_| {
        panic!("`{tool}` is not installed; the docker-path tests need it (scripts/setup.sh)")
    })
}

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" || name == "dist" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// A copy of examples/hello-server with `edit` applied to its pipeline.yaml.
fn project(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(REPO).join("examples/hello-server"), dir.path());
    let pipeline = dir.path().join("pipeline.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the pipeline edit changed nothing");
    std::fs::write(&pipeline, edited).unwrap();
    dir
}

/// Vendors the crates into the project (`vendor/` + `.cargo/config.toml`): the build containers
/// have no network.
fn vendor(dir: &Path) {
    let out = Command::new(need("cargo"))
        .args(["vendor", "--locked", "--offline", "vendor"])
        .current_dir(dir)
        .output()
        .unwrap();
    let config = ok(
        out,
        "cargo vendor (the crates must be in ~/.cargo/registry)",
    );
    crate::support::write(&dir.join(".cargo/config.toml"), &config);
}

fn run_shipit(dir: &Path, args: &[&str]) -> String {
    let out = shipit(dir)
        .args(args)
        .args(["--out", "dist"])
        .env("DOCKER_HOST", DOCKER_HOST)
        .env("SHIPIT_DOCKER_NETWORK", "none")
        .env("CROSS_CONTAINER_OPTS", "--network none")
        .output()
        .unwrap();
    ok(out, &format!("shipit {}", args.join(" ")))
}

fn qemu_version(binary: &Path, extra: &[&str]) -> String {
    let out = Command::new(need("qemu-aarch64-static"))
        .args(["-cpu", "cortex-a53"])
        .args(extra)
        .arg(binary)
        .arg("--version")
        .output()
        .unwrap();
    ok(out, &format!("qemu-aarch64-static {}", binary.display()))
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("dist/logs").join(name))
        .unwrap_or_else(|e| panic!("log {name}: {e}"))
}

#[test]
fn docker_backend_cross_compiles_arm64_musl_in_buildkit() {
    docker_ready();
    let p = project(|t| t.replace("backend: auto", "backend: docker"));
    let dir = p.path();
    let fixtures = Path::new(REPO).join("tests/it/fixtures/docker");
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    std::fs::copy(fixtures.join("Dockerfile"), dir.join("docker/Dockerfile")).unwrap();
    std::fs::copy(fixtures.join("dockerignore"), dir.join(".dockerignore")).unwrap();
    vendor(dir);

    run_shipit(
        dir,
        &["build", "--platform", "linux/arm64", "--variant", "musl"],
    );

    let build_log = log(dir, "build-musl-linux-arm64.log");
    assert!(
        build_log.contains(
            "build --file docker/Dockerfile --target binary --network none --platform linux/arm64"
        ) && build_log.contains("RUST_TARGET=aarch64-unknown-linux-musl"),
        "the docker backend did not run docker build:\n{build_log}"
    );
    let bin = dir.join("dist/bin/musl/linux-arm64/hello-server");
    assert_eq!(
        qemu_version(&bin, &[]).trim(),
        "hello-server 0.3.1",
        "{}",
        bin.display()
    );
}

fn skopeo_json(dir: &Path, flag: &str, tag: &str) -> Value {
    let out = Command::new(need("skopeo"))
        .args(["inspect", flag])
        .arg(format!("oci:{}:{tag}", dir.join("dist/oci").display()))
        .output()
        .unwrap();
    serde_json::from_str(&ok(out, &format!("skopeo inspect {flag} {tag}"))).unwrap()
}

/// `umoci unpack` of one staging ref; returns the rootfs.
fn unpack(dir: &Path, tag: &str) -> PathBuf {
    let bundle = dir.join(format!("bundle-{tag}"));
    let out = Command::new(need("umoci"))
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", dir.join("dist/oci").display()))
        .arg(&bundle)
        .output()
        .unwrap();
    ok(out, &format!("umoci unpack {tag}"));
    bundle.join("rootfs")
}

#[test]
fn docker_packager_writes_a_two_platform_scratch_index() {
    docker_ready();
    let p = project(|t| t + "package: docker\n");
    let dir = p.path();
    let filter = [
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--variant",
        "musl",
    ];
    run_shipit(dir, &[&["build"], &filter[..]].concat());
    run_shipit(dir, &[&["package"], &filter[..]].concat());
    let pkg_log = std::fs::read_to_string(dir.join("dist/logs/package-docker-musl-linux-arm64.log"))
        .unwrap_or_else(|e| {
            panic!("`package: docker` left no docker packager log ({e}): did stage::package call stage::package_docker::package_platform?")
        });
    assert!(
        pkg_log.contains("build --platform linux/arm64") && pkg_log.contains("save --output"),
        "the docker packager did not build and save with docker:\n{pkg_log}"
    );

    let index = skopeo_json(dir, "--raw", "staging-musl");
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");

    for (slug, arch) in [("linux-amd64", "amd64"), ("linux-arm64", "arm64")] {
        let tag = format!("staging-musl-{slug}");
        let manifest = skopeo_json(dir, "--raw", &tag);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        for l in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{manifest}"
            );
        }
        let config = skopeo_json(dir, "--config", &tag);
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["User"], "10001:10001", "{config}");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/hello-server"])
        );
        assert!(
            config["config"]["ExposedPorts"].get("8080/tcp").is_some(),
            "{config}"
        );
        assert!(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "RUST_LOG=info"),
            "{config}"
        );
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.version"],
            "0.3.1"
        );

        let rootfs = unpack(dir, &tag);
        let inside = rootfs.join("usr/local/bin/hello-server");
        let built = dir.join(format!("dist/bin/musl/{slug}/hello-server"));
        assert_eq!(
            std::fs::read(&inside).unwrap(),
            std::fs::read(&built).unwrap(),
            "the image must carry the binary shipit built"
        );
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains(":10001:10001:"), "{passwd}");
        let version = if arch == "arm64" {
            qemu_version(&inside, &[])
        } else {
            ok(
                Command::new(&inside).arg("--version").output().unwrap(),
                "hello-server --version",
            )
        };
        assert_eq!(version.trim(), "hello-server 0.3.1");
    }
}

#[test]
fn docker_packager_loads_an_oci_base_into_dockerd() {
    docker_ready();
    let p = project(|t| t + "package: docker\n");
    let dir = p.path();
    let out = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/make-base.sh"))
        .args(["--out"])
        .arg(dir.join("base/bookworm"))
        .args(["--arch", "arm64"])
        .output()
        .unwrap();
    ok(out, "scripts/make-base.sh --arch arm64");
    let filter = ["--platform", "linux/arm64", "--variant", "gnu"];
    run_shipit(dir, &[&["build"], &filter[..]].concat());
    run_shipit(dir, &[&["package"], &filter[..]].concat());

    let tag = "staging-gnu-linux-arm64";
    let config = skopeo_json(dir, "--config", tag);
    assert_eq!(config["architecture"], "arm64", "{config}");
    assert_eq!(config["config"]["User"], "10001:10001", "{config}");
    // The base's layers come first, then the layer with the binary.
    let layers = config["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert!(layers >= 2, "expected base + binary layers: {config}");
    let rootfs = unpack(dir, tag);
    assert!(
        rootfs.join("lib/ld-linux-aarch64.so.1").exists(),
        "the Debian base is missing from the image"
    );
    let rootfs_arg = rootfs.display().to_string();
    let version = qemu_version(
        &rootfs.join("usr/local/bin/hello-server"),
        &["-L", &rootfs_arg],
    );
    assert_eq!(version.trim(), "hello-server 0.3.1");
}

#[test]
fn cross_backend_builds_arm64_musl_in_a_local_image() {
    docker_ready();
    need("cross");
    let p = project(|t| t.replace("backend: auto", "backend: cross"));
    let dir = p.path();
    crate::support::write(
        &dir.join("Cross.toml"),
        "[target.aarch64-unknown-linux-musl]\nimage = \"shipit-test/rust:bookworm\"\n",
    );
    vendor(dir);
    run_shipit(
        dir,
        &["build", "--platform", "linux/arm64", "--variant", "musl"],
    );
    let build_log = log(dir, "build-musl-linux-arm64.log");
    assert!(
        build_log.contains("cross build --target aarch64-unknown-linux-musl"),
        "the cross backend did not run cross:\n{build_log}"
    );
    let bin = dir.join("dist/bin/musl/linux-arm64/hello-server");
    assert_eq!(qemu_version(&bin, &[]).trim(), "hello-server 0.3.1");
}

/// `docker` against the test daemon, with the legacy builder (the CLI on PATH may lack buildx;
/// these Dockerfiles need no BuildKit feature).
fn docker(args: &[&str]) -> Output {
    Command::new(need("docker"))
        .args(["-H", DOCKER_HOST])
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap()
}

/// Removes the image when dropped (they are large on vfs storage).
struct Image(&'static str);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", self.0]);
    }
}

#[test]
fn docker_builder_dockerfile_builds_the_test_builder_image() {
    docker_ready();
    // Under another name: the shared shipit-test/rust:bookworm stays as it is.
    let image = Image("shipit-test/rust:dockerfile-check");
    let out = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/docker-fixtures.sh"))
        .env("DOCKER_HOST", DOCKER_HOST)
        .env("SHIPIT_BUILDER_IMAGE", image.0)
        .env("SHIPIT_FIXTURE_REBUILD", "1")
        .output()
        .unwrap();
    let log = ok(
        out,
        "scripts/docker-fixtures.sh (docker/builder.Dockerfile)",
    );
    assert!(
        log.contains("from docker/builder.Dockerfile"),
        "the script did not build the Dockerfile:\n{log}"
    );
    let cargo = ok(
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            image.0,
            "cargo",
            "--version",
        ]),
        "cargo --version in the builder image",
    );
    assert!(cargo.starts_with("cargo "), "{cargo}");
    let env = ok(
        docker(&["image", "inspect", "-f", "{{json .Config.Env}}", image.0]),
        "docker image inspect",
    );
    assert!(
        env.contains("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld"),
        "{env}"
    );
    let lld = ok(
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            image.0,
            "rust-lld",
            "-flavor",
            "gnu",
            "--version",
        ]),
        "rust-lld in the builder image",
    );
    assert!(lld.contains("LLD"), "{lld}");
}

/// The test daemon's vfs storage copies every layer whole: building shipit's image takes about
/// 5 GiB at its peak (the toolchain image twice, the build container, its target dir).
const SHIPIT_IMAGE_NEEDS_GIB: u64 = 6;

#[test]
fn docker_dockerfile_builds_shipit_and_its_image_runs_as_non_root() {
    docker_ready();
    // Fail loudly before filling a shared disk (a full disk fails every build on the machine).
    let df = ok(
        Command::new("df")
            .args(["--output=avail", "-B1G", "/var/lib/shipit-docker"])
            .output()
            .unwrap(),
        "df /var/lib/shipit-docker",
    );
    let free: u64 = df.lines().last().unwrap_or("").trim().parse().unwrap_or(0);
    assert!(
        free >= SHIPIT_IMAGE_NEEDS_GIB,
        "building shipit's image on the test dockerd's vfs storage needs {SHIPIT_IMAGE_NEEDS_GIB} GiB free in /var/lib/shipit-docker; {free} GiB are"
    );
    // A copy of the sources with the crates vendored (the build has no network).
    let ctx = tempfile::tempdir().unwrap();
    let dir = ctx.path();
    for f in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(Path::new(REPO).join(f), dir.join(f)).unwrap();
    }
    for d in ["src", "docker"] {
        copy_dir(&Path::new(REPO).join(d), &dir.join(d));
    }
    // cargo vendor takes every platform's crates; the Windows ones are fetched once if missing.
    let offline = Command::new(need("cargo"))
        .args(["vendor", "--locked", "--offline", "--quiet", "vendor"])
        .current_dir(dir)
        .output()
        .unwrap();
    if !offline.status.success() {
        ok(
            Command::new(need("cargo"))
                .args(["fetch", "--locked"])
                .current_dir(dir)
                .output()
                .unwrap(),
            "cargo fetch --locked (the crates cargo vendor needs)",
        );
    }
    vendor(dir);
    // No debug info: a smaller, faster build (the test checks the Dockerfile, not the profile).
    let config = dir.join(".cargo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[profile.dev]\ndebug = 0\n")).unwrap();
    let image = Image("shipit-test/shipit:dockerfile-check");
    let dockerfile = dir.join("docker/Dockerfile");
    ok(
        docker(&[
            "build",
            "-q",
            "--network",
            "none",
            "-f",
            dockerfile.to_str().unwrap(),
            "--build-arg",
            "RUST_IMAGE=shipit-test/rust:bookworm",
            "--build-arg",
            "BASE=shipit-test/debian:bookworm",
            // The release profile's thin LTO adds minutes and proves nothing more here.
            "--build-arg",
            "PROFILE=dev",
            "-t",
            image.0,
            dir.to_str().unwrap(),
        ]),
        "docker build -f docker/Dockerfile",
    );
    let version = ok(
        docker(&["run", "--rm", "--network", "none", image.0, "--version"]),
        "shipit --version in its image",
    );
    assert_eq!(
        version.trim(),
        format!("shipit {}", env!("CARGO_PKG_VERSION"))
    );
    let id = ok(
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "id",
            image.0,
        ]),
        "id in the shipit image",
    );
    assert!(
        id.starts_with("uid=10001(shipit) gid=10001(shipit)"),
        "{id}"
    );
    ok(
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "grep",
            image.0,
            "-q",
            "BEGIN CERTIFICATE",
            "/etc/ssl/certs/ca-certificates.crt",
        ]),
        "the CA bundle in the shipit image",
    );
}
