//! `shipit release` / `shipit publish` against a real docker-registry on 127.0.0.1: what lands
//! in the registry (read back with skopeo, pulled back byte-identical, verified by shipit), the
//! order that never exposes a partial index (no tag unless every platform verified; tags only
//! after every blob and manifest), idempotent reruns, faults (`fault_*`, through the fault proxy
//! or a stalling proxy defined here), credentials that leak nowhere, and dry runs.

use crate::support::fixture::{
    EPOCH, copy_tree, example, example_pipeline, example_variant, run_ok,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{TestRegistry, free_port};
use crate::support::{shipit, text};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MUSL_TAGS: [&str; 4] = ["0.3.1-musl", "0.3-musl", "0-musl", "latest-musl"];
const GNU_TAGS: [&str; 4] = ["0.3.1", "0.3", "0", "latest"];
/// Keeps most tests small: two musl platforms.
const MUSL2: [&str; 6] = [
    "--variant",
    "musl",
    "--platform",
    "linux/amd64",
    "--platform",
    "linux/arm64",
];

/// The example's pipeline publishing to `REGISTRY/hello-server`, with extra `publish:` keys and
/// optionally its `verify.checks` replaced.
fn pipeline(registry: &str, publish_extra: &str, checks: Option<&str>) -> String {
    let mut p = example_pipeline()
        .replace(
            "repository: localhost/hello-server",
            &format!("repository: {registry}/hello-server"),
        )
        .replace(
            "publish:\n  to: oci:dist/oci",
            &format!("publish:\n  to: registry\n{publish_extra}"),
        );
    assert!(p.contains(&format!("{registry}/hello-server")) && p.contains("to: registry"));
    if let Some(checks) = checks {
        let start = p
            .find("  checks:\n")
            .expect("checks in the example pipeline");
        let end = p.find("publish:").expect("publish in the example pipeline");
        p.replace_range(start..end, checks);
    }
    // These tests count the image's own requests and blobs; attachments (on by default) have
    // their own tests in attach_referrers.rs.
    p.push_str("\nattest: { sbom: false, provenance: false, verification: false }\n");
    p
}

/// Like `fixture::example_copy`, but copying only the project (manifest, sources) and dist/bin:
/// the shared example also holds other tests' `dist-<name>` dirs, which come and go while
/// tests run in parallel.
fn example_copy(pipeline: Option<&str>) -> tempfile::TempDir {
    let src = example();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "Cargo.lock", "pipeline.lock"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    copy_tree(&src.join("src"), &tmp.path().join("src"));
    std::os::unix::fs::symlink(src.join("base"), tmp.path().join("base")).unwrap();
    copy_tree(&src.join("dist/bin"), &tmp.path().join("dist/bin"));
    std::fs::write(
        tmp.path().join("pipeline.yaml"),
        pipeline
            .map(str::to_string)
            .unwrap_or_else(example_pipeline),
    )
    .unwrap();
    tmp
}

/// A copy of the built example with `pipeline`, packaged for `args` (fixed SOURCE_DATE_EPOCH).
fn packaged(pipeline: &str, args: &[&str]) -> tempfile::TempDir {
    let dir = example_copy(Some(pipeline));
    run_ok(
        shipit(dir.path())
            .args(["package", "-q"])
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    dir
}

/// `shipit publish ARGS` in `dir`, output captured.
fn publish(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = shipit(dir);
    c.arg("publish").args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run shipit publish")
}

/// The staged index of `libc` in `out/oci`: (digest, bytes).
fn staged_index(out: &Path, libc: &str) -> (String, Vec<u8>) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("oci/index.json")).unwrap()).unwrap();
    let want = format!("staging-{libc}");
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == want.as_str())
        .unwrap_or_else(|| panic!("{want} not in {}", out.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(out.join("oci/blobs/sha256").join(&d[7..])).unwrap();
    (d, bytes)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// One raw HTTP/1.1 request to a plain-http registry: (status, headers lowercased).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<(String, String)>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// The digest a tag points at on a plain-http registry, or None (404).
fn head_tag(addr: SocketAddr, tag: &str) -> Option<String> {
    let (status, headers) = http(addr, "HEAD", &format!("/v2/hello-server/manifests/{tag}"));
    match status {
        404 => None,
        200 => headers
            .into_iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v),
        s => panic!("HEAD {tag}: {s}"),
    }
}

fn has_manifest(addr: SocketAddr, digest: &str) -> bool {
    http(
        addr,
        "HEAD",
        &format!("/v2/hello-server/manifests/{digest}"),
    )
    .0 == 200
}

fn has_blob(addr: SocketAddr, digest: &str) -> bool {
    http(addr, "HEAD", &format!("/v2/hello-server/blobs/{digest}")).0 == 200
}

/// Every blob and manifest an index references, as a layout in `out/oci` holds them.
fn children(out: &Path, index: &[u8]) -> (Vec<String>, Vec<String>) {
    let idx: serde_json::Value = serde_json::from_slice(index).unwrap();
    let (mut manifests, mut blobs) = (Vec::new(), Vec::new());
    for m in idx["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap().to_string();
        let man = json(&out.join("oci/blobs/sha256").join(&d[7..]));
        blobs.push(man["config"]["digest"].as_str().unwrap().to_string());
        for l in man["layers"].as_array().unwrap() {
            blobs.push(l["digest"].as_str().unwrap().to_string());
        }
        manifests.push(d);
    }
    (manifests, blobs)
}

fn platforms_of(index: &[u8]) -> Vec<String> {
    let idx: serde_json::Value = serde_json::from_slice(index).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str().filter(|v| *v != "v8") {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// Waits (bounded) for a child; kills it and panics on timeout.
fn wait_bounded(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Processes (other than `except`) in session `sid` or carrying `marker` in their environment.
fn strays(sid: u32, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of comm: state ppid pgrp session ...
        let session = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(3))
            .and_then(|s| s.parse::<u32>().ok());
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let marked = environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes());
        if session == Some(sid) || marked {
            found.push(format!("{pid}: {}", stat.trim()));
        }
    }
    found
}

/// Spawns shipit in its own session (so every descendant is findable by session id), with a
/// marker variable, output to files in `logs`.
fn spawn_shipit(dir: &Path, args: &[&str], env: &[(&str, &str)], logs: &Path) -> Child {
    let mut c = shipit(dir);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join("stdout")).unwrap())
        .stderr(std::fs::File::create(logs.join("stderr")).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c.spawn().expect("spawn shipit")
}

// ---------------------------------------------------------------------------------------------
// A proxy that holds one request (the nth matching one) until released.

struct StallProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    stalled: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl StallProxy {
    fn start(upstream: SocketAddr, method: &'static str, path_contains: &str, nth: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let p = StallProxy {
            addr,
            seen: Arc::default(),
            stalled: Arc::default(),
            release: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, stalled, release, stop) = (
            p.seen.clone(),
            p.stalled.clone(),
            p.release.clone(),
            p.stop.clone(),
        );
        let needle = path_contains.to_string();
        let matched = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, stalled, release, needle, matched) = (
                    seen.clone(),
                    stalled.clone(),
                    release.clone(),
                    needle.clone(),
                    matched.clone(),
                );
                std::thread::spawn(move || {
                    let _ = stall_handle(
                        conn, upstream, method, &needle, nth, &matched, &seen, &stalled, &release,
                    );
                });
            }
        });
        p
    }

    fn wait_stalled(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stalled.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "no request was stalled within {within:?}; seen: {:?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self, method: &str, needle: &str) -> usize {
        self.seen()
            .iter()
            .filter(|(m, p)| m == method && p.contains(needle))
            .count()
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

#[allow(clippy::too_many_arguments)]
fn stall_handle(
    client: TcpStream,
    upstream: SocketAddr,
    method: &str,
    needle: &str,
    nth: usize,
    matched: &AtomicUsize,
    seen: &Mutex<Vec<(String, String)>>,
    stalled: &AtomicBool,
    release: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    let mut head = request_line.clone();
    let mut content_length = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = v.trim().parse().unwrap_or(0),
                "connection" => continue,
                _ => {}
            }
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut parts = request_line.split_whitespace();
    let (m, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((m.clone(), path.clone()));
    if m == method && path.contains(needle) && matched.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        stalled.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // An unreachable upstream drops the client connection (as a dead registry would).
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head.as_bytes())?;
    std::io::copy(&mut (&mut reader).take(content_length), &mut up)?;
    let mut client_w = client;
    std::io::copy(&mut up, &mut client_w)?;
    client_w.flush()
}

// ---------------------------------------------------------------------------------------------
// A registry that can be killed and restarted on the same port and storage.

struct RestartableRegistry {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
}

impl RestartableRegistry {
    fn start() -> Self {
        let mut r = RestartableRegistry {
            addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            starts: 0,
        };
        r.restart();
        r
    }

    fn log(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("registry-{n}.log"))
    }

    /// Starts (again) on the same port and storage, with a fresh log file; waits until ready.
    fn restart(&mut self) {
        self.starts += 1;
        let config = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {}\n",
                self.dir.path().join("storage").display(),
                self.addr
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.log(self.starts)).unwrap();
        self.child = Some(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry"),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "registry not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `METHOD path` lines of the current run's access log.
    fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.log(self.starts)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let s = l.find("] \"")? + 3;
                let rest = &l[s..];
                let e = rest.find(" HTTP/")?;
                Some(rest[..e].to_string())
            })
            .collect()
    }
}

impl Drop for RestartableRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------

/// The one full release: both variants, every planned platform, all 8 tags; read back, pulled
/// back byte-identical, verified from the registry; then a rerun that uploads nothing.
#[test]
fn release_pushes_both_variants_and_rerun_uploads_nothing() {
    let reg = TestRegistry::anonymous();
    let host = reg.addr.to_string();
    let flags = example_variant("release-full", &pipeline(&host, "", None));
    let out = PathBuf::from(&flags[3]);
    let dir = example();
    let t = Instant::now();
    let first = shipit(dir).arg("release").args(&flags).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    eprintln!("first release: {:.1}s", t.elapsed().as_secs_f64());

    let planned = [
        (
            "gnu",
            &GNU_TAGS,
            vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
        ),
        (
            "musl",
            &MUSL_TAGS,
            vec!["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"],
        ),
    ];
    for (libc, tags, platforms) in &planned {
        let (digest, bytes) = staged_index(&out, libc);
        assert_eq!(&platforms_of(&bytes), platforms, "{libc} index platforms");
        for tag in tags.iter() {
            assert_eq!(
                reg.skopeo_raw(&format!("hello-server:{tag}")),
                bytes,
                "{libc} tag {tag} is the staged index"
            );
        }
        // Pulled back: the same index digest and byte-identical blobs.
        let copy = tempfile::tempdir().unwrap();
        run_ok(
            Command::new("skopeo")
                .args([
                    "copy",
                    "--all",
                    "--preserve-digests",
                    "-q",
                    "--src-tls-verify=false",
                ])
                .arg(format!("docker://{host}/hello-server:{}", tags[0]))
                .arg(format!("oci:{}:x", copy.path().display())),
        );
        let pulled = json(&copy.path().join("index.json"));
        assert_eq!(pulled["manifests"][0]["digest"], digest.as_str());
        let mut n = 0;
        for e in std::fs::read_dir(copy.path().join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let ours = out.join("oci/blobs/sha256").join(e.file_name());
            assert!(
                std::fs::read(e.path()).unwrap() == std::fs::read(&ours).unwrap(),
                "{libc}: pulled blob {:?} differs from dist/oci",
                e.file_name()
            );
            n += 1;
        }
        let (manifests, blobs) = children(&out, &bytes);
        assert_eq!(
            n,
            1 + manifests.len() + blobs.len(),
            "{libc}: every object pulled"
        );
    }
    let report = json(&out.join("release.json"));
    let moved: Vec<_> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["tags_moved"].as_array().unwrap().clone())
        .collect();
    assert_eq!(moved.len(), 8, "{report}");
    assert!(report["blobs_uploaded"].as_u64().unwrap() > 0);

    let verify = shipit(dir)
        .args(["verify", "-q", &format!("{host}/hello-server:0.3.1")])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));

    // Nothing changed: the rerun uploads no blob, moves no tag and makes the same digests.
    let first_indexes: std::collections::BTreeMap<&str, (String, Vec<u8>)> = planned
        .iter()
        .map(|(libc, _, _)| (*libc, staged_index(&out, libc)))
        .collect();
    let posts = reg.count("POST", "/blobs/uploads/");
    let puts = reg.count("PUT", "/blobs/uploads/");
    let manifest_puts = reg.count("PUT", "/manifests/");
    let t = Instant::now();
    let second = shipit(dir).arg("release").args(&flags).output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    eprintln!(
        "second release (nothing changed): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        reg.count("POST", "/blobs/uploads/"),
        posts,
        "no upload started"
    );
    assert_eq!(
        reg.count("PUT", "/blobs/uploads/"),
        puts,
        "no blob committed"
    );
    assert_eq!(
        reg.count("PUT", "/manifests/"),
        manifest_puts,
        "no manifest or tag PUT"
    );
    let report = json(&out.join("release.json"));
    assert_eq!(report["blobs_uploaded"], 0, "{report}");
    for (libc, _, _) in &planned {
        let (digest, bytes) = staged_index(&out, libc);
        assert_eq!(
            (&digest, &bytes),
            (&first_indexes[*libc].0, &first_indexes[*libc].1),
            "{libc}: the same index across runs"
        );
    }
    for img in report["images"].as_array().unwrap() {
        assert_eq!(img["tags_moved"].as_array().unwrap().len(), 0, "{img}");
        assert_eq!(img["tags_unchanged"].as_array().unwrap().len(), 4, "{img}");
    }
}

/// `release --json ARGS` in the shared example (its target/ is built: no compile), the report.
fn release_json(args: &[String]) -> serde_json::Value {
    let out = shipit(example())
        .args(["release", "--json"])
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// `(index digest, [(platform, manifest digest, cached)])` of the one image of a report.
fn digests(report: &serde_json::Value) -> (String, Vec<(String, String, bool)>) {
    let img = &report["images"][0];
    let platforms = img["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["manifest_digest"].as_str().unwrap().to_string(),
                p["cached"].as_bool().unwrap(),
            )
        })
        .collect();
    (img["index_digest"].as_str().unwrap().to_string(), platforms)
}

/// A second release with nothing changed, to a registry (counted through the proxy): every
/// digest as before, the verification reused, no blob upload started or committed, no manifest
/// PUT and no tag moved, only HEADs. Then a changed base (scratch → the Debian layout) defeats
/// the no-op path: new manifest and index digests, verified again, blobs uploaded, tags moved.
#[test]
fn a_no_op_release_only_heads_and_a_changed_base_repackages_and_pushes_again() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(reg.addr, Vec::new());
    let checks = "  checks:\n    - name: version\n      run: [\"--version\"]\n      stdout: 'hello-server \\d+\\.\\d+\\.\\d+'\n      timeout: 10s\n";
    let scratch = pipeline(&proxy.addr.to_string(), "", Some(checks));
    let mut args = example_variant("noop-registry", &scratch);
    args.extend(["--variant", "musl", "--platform", "linux/amd64"].map(String::from));

    let first = release_json(&args);
    let (index, platforms) = digests(&first);
    assert_eq!(platforms.len(), 1, "{first}");
    assert!(!platforms[0].2, "the first verification ran: {first}");
    assert_eq!(
        first["images"][0]["tags_moved"].as_array().unwrap().len(),
        4
    );

    let before = proxy.seen().len();
    let second = release_json(&args);
    let during: Vec<_> = proxy.seen().split_off(before);
    let (index2, platforms2) = digests(&second);
    assert_eq!(index2, index, "the same index digest");
    assert_eq!(platforms2[0].1, platforms[0].1, "the same manifest digest");
    assert!(platforms2[0].2, "the verification was reused: {second}");
    assert_eq!(second["blobs_uploaded"], 0, "{second}");
    let img = &second["images"][0];
    assert_eq!(img["tags_moved"].as_array().unwrap().len(), 0, "{img}");
    assert_eq!(img["tags_unchanged"].as_array().unwrap().len(), 4, "{img}");
    let sent: Vec<String> = during
        .iter()
        .filter(|s| s.method != "HEAD" && !(s.method == "GET" && s.path == "/v2/"))
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        sent,
        Vec::<String>::new(),
        "a no-op release sends only HEADs"
    );
    assert!(
        during
            .iter()
            .any(|s| s.method == "HEAD" && s.path.contains("/blobs/")),
        "{during:?}"
    );

    // Another base: everything downstream of it is made, verified and pushed again.
    let debian = scratch.replace(
        "musl: { base: scratch,",
        "musl: { base: \"oci:base/bookworm:bookworm-amd64\",",
    );
    assert_ne!(debian, scratch);
    std::fs::write(example().join("pipeline-noop-registry.yaml"), debian).unwrap();
    let before = proxy.seen().len();
    let third = release_json(&args);
    let (index3, platforms3) = digests(&third);
    assert_ne!(index3, index, "a new index for a new base");
    assert_ne!(
        platforms3[0].1, platforms[0].1,
        "a new image for a new base"
    );
    assert!(!platforms3[0].2, "verified again: {third}");
    assert!(third["blobs_uploaded"].as_u64().unwrap() > 0, "{third}");
    assert_eq!(
        third["images"][0]["tags_moved"].as_array().unwrap().len(),
        4,
        "{third}"
    );
    assert!(proxy.count("PUT", "/blobs/uploads/") > 0);
    assert!(proxy.seen().len() > before);
    assert_eq!(
        head_tag(reg.addr, "0.3.1-musl").as_deref(),
        Some(index3.as_str())
    );
}

/// An arm/v7 image holding an arm64 binary fails verification: publish exits 1 and the
/// registry sees no manifest PUT; no tag exists before or after. The blob uploads that start
/// while verification runs are stopped by the failure: here the registry never answers the
/// first one (a trickling proxy, for two minutes), and publish still ends within seconds of
/// the failed check instead of waiting for it.
#[test]
fn failed_verification_pushes_no_tag() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::trickling_first_blob_head(reg.addr, Duration::from_secs(1));
    let dir = example_copy(Some(&pipeline(&proxy.addr.to_string(), "", None)));
    std::fs::copy(
        dir.path().join("dist/bin/gnu/linux-arm64/hello-server"),
        dir.path().join("dist/bin/gnu/linux-arm-v7/hello-server"),
    )
    .unwrap();
    let args = [
        "--variant",
        "gnu",
        "--platform",
        "linux/arm64",
        "--platform",
        "linux/arm/v7",
    ];
    run_ok(
        shipit(dir.path())
            .args(["package", "-q"])
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    for tag in GNU_TAGS {
        assert_eq!(head_tag(reg.addr, tag), None, "{tag} before");
    }
    let t = Instant::now();
    let out = publish(dir.path(), &args, &[]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/arm/v7") && err.contains("no tag moved"),
        "{}",
        text(&out)
    );
    assert!(!err.contains("request deadline"), "{}", text(&out));
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.outcome.starts_with("trickle")),
        "the uploads never started: {:?}",
        proxy.seen()
    );
    // The trickle lasts two minutes (and the request deadline is five): only a stopped upload
    // lets publish end well before that.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for tag in GNU_TAGS {
        assert_eq!(head_tag(reg.addr, tag), None, "{tag} after");
    }
    assert_eq!(proxy.count("PUT", "/manifests/"), 0, "{:?}", proxy.seen());
    assert_eq!(reg.count("PUT", "/manifests/"), 0, "{}", reg.log_text());
    assert!(!dir.path().join("dist/release.json").exists());
}

/// Packages MUSL2 in a copy of the example and publishes it through a fault proxy.
fn publish_through(
    reg: &TestRegistry,
    rules: Vec<Rule>,
) -> (tempfile::TempDir, FaultProxy, Output) {
    let proxy = FaultProxy::start(reg.addr, rules);
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    let out = publish(dir.path(), &[&["-v"][..], &MUSL2].concat(), &[]);
    (dir, proxy, out)
}

fn assert_musl_tags(reg: &TestRegistry, dir: &Path) {
    let (digest, _) = staged_index(&dir.join("dist"), "musl");
    for tag in MUSL_TAGS {
        assert_eq!(
            head_tag(reg.addr, tag).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }
}

#[test]
fn fault_503_on_first_blob_upload_is_retried() {
    let reg = TestRegistry::anonymous();
    let rule = Rule {
        method: "POST",
        path_contains: "/blobs/uploads/".into(),
        nth: 1,
        fault: Fault::Status {
            status: 503,
            retry_after: None,
        },
    };
    let (dir, proxy, out) = publish_through(&reg, vec![rule]);
    assert!(out.status.success(), "{}", text(&out));
    assert_musl_tags(&reg, dir.path());
    // 4 blobs (2 configs, 2 layers): one extra POST for the retried one.
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        5,
        "{:?}",
        proxy.seen()
    );
    assert_eq!(reg.count("POST", "/blobs/uploads/"), 4);
    assert_eq!(
        json(&dir.path().join("dist/release.json"))["blobs_uploaded"],
        4
    );
}

#[test]
fn fault_connection_reset_mid_blob_restarts_it() {
    let reg = TestRegistry::anonymous();
    // The second blob PUT is the amd64 layer (~200 KiB): reset after 64 KiB of it.
    let rule = Rule {
        method: "PUT",
        path_contains: "/blobs/uploads/".into(),
        nth: 2,
        fault: Fault::ResetAfterBody(64 * 1024),
    };
    let (dir, proxy, out) = publish_through(&reg, vec![rule]);
    assert!(out.status.success(), "{}", text(&out));
    assert_musl_tags(&reg, dir.path());
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|s| s.outcome.starts_with("reset")),
        "{seen:?}"
    );
    // The reset blob restarted from a new POST.
    assert_eq!(proxy.count("POST", "/blobs/uploads/"), 5, "{seen:?}");
    assert_eq!(reg.count("PUT", "/blobs/uploads/"), 4);
}

#[test]
fn fault_429_retry_after_is_honoured() {
    let reg = TestRegistry::anonymous();
    let rule = Rule {
        method: "POST",
        path_contains: "/blobs/uploads/".into(),
        nth: 1,
        fault: Fault::Status {
            status: 429,
            retry_after: Some(2),
        },
    };
    let proxy = Arc::new(FaultProxy::start(reg.addr, vec![rule]));
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    // Watch the proxy's log: when did the 429 go out, and when did the next POST arrive?
    let done = AtomicBool::new(false);
    let (t429, tnext) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let (mut t429, mut tnext) = (None, None);
            while !done.load(Ordering::SeqCst) && tnext.is_none() {
                let posts: Vec<_> = proxy
                    .seen()
                    .into_iter()
                    .filter(|x| x.method == "POST")
                    .collect();
                if t429.is_none() && !posts.is_empty() {
                    t429 = Some(Instant::now());
                }
                if posts.len() >= 2 {
                    tnext = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (t429, tnext)
        });
        // One request at a time: the second POST is the retry of the first (with the default
        // pool it may be another blob's upload, sent while the first waits).
        let out = publish(dir.path(), &[&MUSL2[..], &["--jobs", "1"]].concat(), &[]);
        done.store(true, Ordering::SeqCst);
        assert!(out.status.success(), "{}", text(&out));
        watcher.join().unwrap()
    });
    let waited = tnext.unwrap() - t429.unwrap();
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}, before Retry-After: 2"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let posts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|x| x.method == "POST")
        .collect();
    assert_eq!(posts[0].outcome, "status 429", "{posts:?}");
    assert_musl_tags(&reg, dir.path());
}

/// The registry dies while a blob is in flight: exit non-zero, and after a restart on the same
/// storage and port no tag exists (or a tag points at a complete index); a rerun uploads only
/// the blobs that had not been committed.
#[test]
fn fault_registry_killed_mid_push_then_rerun_uploads_only_the_rest() {
    let mut reg = RestartableRegistry::start();
    // Hold the third blob PUT (amd64 config and layer are committed by then: one upload at a
    // time, so that exactly two are; the parallel pool's interrupt has a test of its own).
    let proxy = StallProxy::start(reg.addr, "PUT", "/blobs/uploads/", 3);
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    let logs = tempfile::tempdir().unwrap();
    let mut child = spawn_shipit(
        dir.path(),
        &[&["publish"][..], &MUSL2, &["--jobs", "1"]].concat(),
        &[],
        logs.path(),
    );
    proxy.wait_stalled(Duration::from_secs(60));
    reg.kill();
    proxy.release();
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let err = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("no tag was moved"), "{err}");

    reg.restart();
    let (digest, index) = staged_index(&dir.path().join("dist"), "musl");
    let (manifests, blobs) = children(&dir.path().join("dist"), &index);
    for tag in MUSL_TAGS {
        match head_tag(reg.addr, tag) {
            None => {}
            Some(d) => {
                // Allowed only if the whole index is there.
                assert_eq!(d, digest, "{tag}");
                assert!(manifests.iter().all(|m| has_manifest(reg.addr, m)));
                assert!(blobs.iter().all(|b| has_blob(reg.addr, b)));
            }
        }
    }
    let present = blobs.iter().filter(|b| has_blob(reg.addr, b)).count();
    assert_eq!(present, 2, "the two blobs committed before the kill");

    let out = publish(dir.path(), &MUSL2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for tag in MUSL_TAGS {
        assert_eq!(head_tag(reg.addr, tag).as_deref(), Some(digest.as_str()));
    }
    let report = json(&dir.path().join("dist/release.json"));
    assert_eq!(report["blobs_uploaded"], 2, "{report}");
    assert_eq!(report["blobs_skipped"], 2, "{report}");
    let posts = reg
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/blobs/uploads/"))
        .count();
    assert_eq!(posts, 2, "{:?}", reg.requests());
}

/// A registry that trickles one response header every 2 s (here: its answer to the first blob
/// HEAD) never trips the per-read timeout; the request deadline (3 s through
/// `SHIPIT_REGISTRY_DEADLINE`) fails the publish with an error naming the registry, exit 1, no
/// manifest pushed and no tag moved.
#[test]
fn fault_trickling_registry_fails_publish_at_the_request_deadline_and_moves_no_tag() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::trickling_first_blob_head(reg.addr, Duration::from_secs(2));
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    let t = Instant::now();
    let out = publish(dir.path(), &MUSL2, &[("SHIPIT_REGISTRY_DEADLINE", "3")]);
    let took = t.elapsed();
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("request deadline"), "{err}");
    assert!(err.contains(&proxy.addr.to_string()), "{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.outcome.starts_with("trickle")),
        "{:?}",
        proxy.seen()
    );
    assert_eq!(proxy.count("PUT", "/manifests/"), 0, "{:?}", proxy.seen());
    for tag in MUSL_TAGS {
        assert_eq!(head_tag(reg.addr, tag), None, "{tag}");
    }
    assert!(!dir.path().join("dist/release.json").exists());

    // A deadline that is not a number of seconds is a configuration error, before any request.
    let before = proxy.seen().len();
    let out = publish(dir.path(), &MUSL2, &[("SHIPIT_REGISTRY_DEADLINE", "soon")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("SHIPIT_REGISTRY_DEADLINE"),
        "{}",
        text(&out)
    );
    assert_eq!(proxy.seen().len(), before);
}

/// SIGTERM while a blob upload is held: exit 143 promptly, no manifest or tag PUT, nothing left
/// running; a rerun completes.
#[test]
fn fault_sigterm_mid_push_exits_143_and_moves_no_tag() {
    let reg = TestRegistry::anonymous();
    let proxy = StallProxy::start(reg.addr, "PUT", "/blobs/uploads/", 2);
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    let logs = tempfile::tempdir().unwrap();
    let marker = format!("SHIPIT_TEST_RUN=sigterm-{}", std::process::id());
    let (mk, mv) = marker.split_once('=').unwrap();
    let mut child = spawn_shipit(
        dir.path(),
        &[&["publish"][..], &MUSL2].concat(),
        &[(mk, mv)],
        logs.path(),
    );
    let pid = child.id();
    proxy.wait_stalled(Duration::from_secs(60));
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let took = t.elapsed();
    let err = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM"
    );
    let leftover = strays(pid, &marker);
    assert!(leftover.is_empty(), "left running: {leftover:?}");
    proxy.release();
    assert_eq!(proxy.count("PUT", "/manifests/"), 0, "{:?}", proxy.seen());
    for tag in MUSL_TAGS {
        assert_eq!(head_tag(reg.addr, tag), None, "{tag}");
    }

    let out = publish(dir.path(), &MUSL2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_musl_tags(&reg, dir.path());
}

/// A matrix job (`release --split`) takes `--jobs` for its uploads as `publish` does: with
/// `--jobs 1`, while the first blob PUT is held no other upload starts; without it, the pool
/// starts the image's other blob meanwhile (so the held PUT alone cannot explain one POST).
#[test]
fn split_job_uploads_as_many_blobs_at_once_as_jobs_says() {
    let dir = example();
    for (name, jobs) in [("split-jobs1", Some("1")), ("split-jobs-pool", None)] {
        let reg = TestRegistry::anonymous();
        let proxy = StallProxy::start(reg.addr, "PUT", "/blobs/uploads/", 1);
        let cfg = format!("pipeline-{name}.yaml");
        std::fs::write(dir.join(&cfg), pipeline(&proxy.addr.to_string(), "", None)).unwrap();
        let out = dir.join(format!("dist-{name}"));
        let _ = std::fs::remove_dir_all(&out);
        let logs = tempfile::tempdir().unwrap();
        let mut args = vec![
            "-c",
            &cfg,
            "--out",
            out.to_str().unwrap(),
            "release",
            "--split",
            "--variant",
            "musl",
            "--platform",
            "linux/amd64",
        ];
        args.extend(jobs.iter().flat_map(|j| ["--jobs", *j]));
        let mut child = spawn_shipit(dir, &args, &[("SOURCE_DATE_EPOCH", EPOCH)], logs.path());
        proxy.wait_stalled(Duration::from_secs(120));
        let posts = || proxy.count("POST", "/blobs/uploads/");
        let deadline = Instant::now() + Duration::from_secs(3);
        while posts() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let while_held = posts();
        proxy.release();
        let status = wait_bounded(&mut child, Duration::from_secs(120));
        let err = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
        assert!(status.success(), "{name}: {err}");
        match jobs {
            Some(_) => assert_eq!(while_held, 1, "{name}: {:?}", proxy.seen()),
            None => assert_eq!(while_held, 2, "{name}: {:?}", proxy.seen()),
        }
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(dir.join(&cfg));
    }
}

/// SIGINT while the uploads run in parallel through a proxy that trickles the answer to the
/// first blob PUT forever: the other blobs are uploaded meanwhile (the pool does not wait on the
/// stuck one), and the interrupt ends the run within 2 s with exit 130, no manifest PUT, no tag
/// and no process left; a rerun completes.
#[test]
fn fault_sigint_mid_parallel_push_through_a_trickling_proxy_exits_within_2s_and_moves_no_tag() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(
        reg.addr,
        vec![Rule {
            method: "PUT",
            path_contains: "/blobs/uploads/".into(),
            nth: 1,
            fault: Fault::Trickle(Duration::from_millis(200)),
        }],
    );
    let dir = packaged(&pipeline(&proxy.addr.to_string(), "", None), &MUSL2);
    let logs = tempfile::tempdir().unwrap();
    let marker = format!("SHIPIT_TEST_RUN=sigint-parallel-{}", std::process::id());
    let (mk, mv) = marker.split_once('=').unwrap();
    let mut child = spawn_shipit(
        dir.path(),
        &[&["publish"][..], &MUSL2].concat(),
        &[(mk, mv)],
        logs.path(),
    );
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(90);
    let uploaded_meanwhile = |seen: &[crate::support::proxy::Seen]| {
        let trickling = seen.iter().any(|s| s.outcome.starts_with("trickle"));
        let others = seen
            .iter()
            .filter(|s| {
                s.method == "PUT" && s.path.contains("/blobs/uploads/") && s.outcome == "forwarded"
            })
            .count();
        trickling && others >= 1
    };
    while !uploaded_meanwhile(&proxy.seen()) {
        assert!(
            Instant::now() < deadline,
            "no other blob was uploaded while the first one hung: {:?}\n{}",
            proxy.seen(),
            std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default()
        );
        assert!(child.try_wait().unwrap().is_none(), "publish ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let t = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let took = t.elapsed();
    let err = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after SIGINT"
    );
    let leftover = strays(pid, &marker);
    assert!(leftover.is_empty(), "left running: {leftover:?}");
    assert_eq!(proxy.count("PUT", "/manifests/"), 0, "{:?}", proxy.seen());
    for tag in MUSL_TAGS {
        assert_eq!(head_tag(reg.addr, tag), None, "{tag}");
    }

    let out = publish(dir.path(), &MUSL2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_musl_tags(&reg, dir.path());
}

// ---------------------------------------------------------------------------------------------
// Credentials.

const CANARY: &str = "CANARYpw5e0b19d";

/// Every form of the canary a leak could take.
fn canary_forms(user: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        CANARY.to_string(),
        b64.encode(format!("{user}:{CANARY}")),
        b64.encode(CANARY),
    ]
}

fn assert_no_canary_in(what: &str, bytes: &[u8], forms: &[String]) {
    let s = String::from_utf8_lossy(bytes);
    for f in forms {
        assert!(!s.contains(f.as_str()), "{what} contains the secret ({f})");
    }
}

fn assert_no_canary_under(dir: &Path, forms: &[String]) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            n += assert_no_canary_under(&e.path(), forms);
        } else if ft.is_file() {
            assert_no_canary_in(
                &e.path().display().to_string(),
                &std::fs::read(e.path()).unwrap(),
                forms,
            );
            n += 1;
        }
    }
    n
}

/// A static amd64 musl binary that prints its environment (and answers --version).
fn env_dumper(dest: &Path) {
    let src = dest.with_extension("c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <string.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) { puts("hello-server 0.3.1"); return 0; }
    int bad = 0;
    /* One line: a passing check's report keeps only the first line of stdout. */
    fputs("ENV-BEGIN", stdout);
    for (char **e = environ; *e; e++) {
        printf(" [%s]", *e);
        if (strstr(*e, "CANARY") || strstr(*e, "SHIPIT_") || strstr(*e, "PASSWORD")) bad = 1;
    }
    puts(" ENV-END");
    return bad;
}
"#,
    )
    .unwrap();
    run_ok(
        Command::new("musl-gcc")
            .args(["-static", "-Os", "-o"])
            .arg(dest)
            .arg(&src),
    );
    let _ = std::fs::remove_file(src);
}

const ENV_CHECK: &str = "  checks:\n    - name: guest-env\n      run: [\"--dump-env\"]\n      stdout: '^ENV-BEGIN.* ENV-END'\n      timeout: 10s\n";

/// Bearer auth (token server demanding Basic), password in SHIPIT_REGISTRY_PASSWORD: the push
/// works, and the canary is in no output, no file under dist/, not in shipit's cmdline while a
/// blob is held, and not in the environment of the verified binary.
#[test]
fn bearer_publish_leaks_the_password_nowhere() {
    let reg = TestRegistry::bearer("ci", CANARY);
    let proxy = StallProxy::start(reg.addr, "PUT", "/blobs/uploads/", 1);
    let dir = example_copy(Some(&pipeline(
        &proxy.addr.to_string(),
        "",
        Some(ENV_CHECK),
    )));
    env_dumper(&dir.path().join("dist/bin/musl/linux-amd64/hello-server"));
    let args = ["--variant", "musl", "--platform", "linux/amd64"];
    run_ok(
        shipit(dir.path())
            .args(["package", "-q"])
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH),
    );
    let logs = tempfile::tempdir().unwrap();
    let mut child = spawn_shipit(
        dir.path(),
        &[&["publish", "-v"][..], &args].concat(),
        &[
            ("SHIPIT_REGISTRY_USER", "ci"),
            ("SHIPIT_REGISTRY_PASSWORD", CANARY),
        ],
        logs.path(),
    );
    proxy.wait_stalled(Duration::from_secs(60));
    let forms = canary_forms("ci");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("publish"),
        "sampled the right process"
    );
    assert_no_canary_in("shipit's cmdline", &cmdline, &forms);
    proxy.release();
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let stdout = std::fs::read(logs.path().join("stdout")).unwrap();
    let stderr = std::fs::read(logs.path().join("stderr")).unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    assert_no_canary_in("stdout", &stdout, &forms);
    assert_no_canary_in("stderr", &stderr, &forms);
    assert!(assert_no_canary_under(&dir.path().join("dist"), &forms) > 3);
    assert!(!reg.token_scopes().is_empty(), "Bearer tokens were used");

    // The guest ran with a cleared environment (the check's stdout is in release.json).
    let report = json(&dir.path().join("dist/release.json"));
    let check = report["images"][0]["platforms"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "guest-env")
        .cloned()
        .unwrap_or_else(|| panic!("no guest-env check: {report}"));
    assert_eq!(check["passed"], true, "{check}");
    let detail = check["detail"].as_str().unwrap();
    eprintln!("guest environment: {detail}");
    assert!(
        detail.contains("ENV-BEGIN") && detail.contains("ENV-END"),
        "{detail}"
    );
    assert!(
        detail.contains("[RUST_LOG=info]"),
        "the image's env: {detail}"
    );
    assert!(
        !detail.contains("SHIPIT_") && !detail.contains("PASSWORD"),
        "{detail}"
    );
    let (_, bytes) = staged_index(&dir.path().join("dist"), "musl");
    for tag in MUSL_TAGS {
        assert_eq!(
            reg.skopeo_raw(&format!("hello-server:{tag}")),
            bytes,
            "{tag}"
        );
    }
}

/// Basic auth over TLS with the fixture's CA: --password-stdin works; a wrong password exits 3
/// with a clear message and leaks nothing.
#[test]
fn basic_tls_password_stdin_works_and_wrong_password_exits_3() {
    let reg = TestRegistry::basic_tls("ci", CANARY);
    let ca = reg.ca_file.clone().unwrap();
    let dir = packaged(
        &pipeline(&reg.addr.to_string(), "", None),
        &["--variant", "musl", "--platform", "linux/amd64"],
    );
    let args = [
        "publish",
        "--password-stdin",
        "--variant",
        "musl",
        "--platform",
        "linux/amd64",
    ];
    let mut child = shipit(dir.path())
        .args(args)
        .env("SHIPIT_REGISTRY_USER", "ci")
        .env("SHIPIT_REGISTRY_CA_FILE", &ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{CANARY}").unwrap();
    let ok = child.wait_with_output().unwrap();
    assert!(ok.status.success(), "{}", text(&ok));
    let (_, bytes) = staged_index(&dir.path().join("dist"), "musl");
    for tag in MUSL_TAGS {
        assert_eq!(
            reg.skopeo_raw(&format!("hello-server:{tag}")),
            bytes,
            "{tag}"
        );
    }
    let forms = canary_forms("ci");
    assert_no_canary_in("stdout", &ok.stdout, &forms);
    assert_no_canary_in("stderr", &ok.stderr, &forms);

    let wrong = format!("wrong-{CANARY}");
    let bad = publish(
        dir.path(),
        &args[2..],
        &[
            ("SHIPIT_REGISTRY_USER", "ci"),
            ("SHIPIT_REGISTRY_PASSWORD", &wrong),
            ("SHIPIT_REGISTRY_CA_FILE", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!("authentication to {} failed", reg.addr)),
        "{err}"
    );
    assert_no_canary_in("stdout", &bad.stdout, &forms);
    assert_no_canary_in("stderr", &bad.stderr, &forms);
    assert_no_canary_in("stderr", &bad.stderr, &[wrong]);
    assert_no_canary_under(&dir.path().join("dist"), &forms);
}

/// A non-loopback registry: plain http with credentials is refused before any request (run in
/// an empty network namespace, so nothing could leave anyway), and without `insecure` shipit
/// speaks https, never http.
#[test]
fn non_loopback_http_registry_is_refused_before_any_request() {
    let dir = packaged(
        &pipeline("registry.invalid:5000", "  insecure: true\n", None),
        &["--variant", "musl", "--platform", "linux/amd64"],
    );
    let run = |pipeline_text: &str, creds: bool| {
        std::fs::write(dir.path().join("pipeline.yaml"), pipeline_text).unwrap();
        let mut c = Command::new("unshare");
        c.arg("-n")
            .arg(env!("CARGO_BIN_EXE_shipit"))
            .args(["publish", "--variant", "musl", "--platform", "linux/amd64"])
            .current_dir(dir.path())
            .env_remove("SHIPIT_CONFIG")
            .env("NO_COLOR", "1")
            .env_remove("SHIPIT_REGISTRY_USER")
            .env_remove("SHIPIT_REGISTRY_PASSWORD")
            .env("DOCKER_CONFIG", dir.path().join("no-docker-config"));
        if creds {
            c.env("SHIPIT_REGISTRY_USER", "ci")
                .env("SHIPIT_REGISTRY_PASSWORD", CANARY);
        }
        c.output().unwrap()
    };
    let out = run(
        &pipeline("registry.invalid:5000", "  insecure: true\n", None),
        true,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to send credentials over plain HTTP to non-loopback host registry.invalid:5000"),
        "{err}"
    );
    assert_no_canary_in(
        "output",
        &[out.stdout, out.stderr].concat(),
        &canary_forms("ci"),
    );

    // Without `insecure`: https (it fails to resolve in the empty namespace), never http.
    let out = run(&pipeline("registry.invalid:5000", "", None), false);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("https://registry.invalid:5000/"), "{err}");
    assert!(!err.contains("http://registry.invalid"), "{err}");
}

/// `release --dry-run` lists every upload and tag and does none of them.
#[test]
fn release_dry_run_lists_pushes_and_tags_and_does_nothing() {
    let reg = TestRegistry::anonymous();
    let flags = example_variant("release-dry", &pipeline(&reg.addr.to_string(), "", None));
    let out_dir = PathBuf::from(&flags[3]);
    let log_before = reg.log_text();
    let out = shipit(example())
        .args(["release", "--dry-run"])
        .args(&flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let repo = format!("{}/hello-server", reg.addr);
    for (libc, platforms) in [
        ("gnu", &["linux/amd64", "linux/arm64", "linux/arm/v7"][..]),
        (
            "musl",
            &["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"][..],
        ),
    ] {
        for p in platforms {
            let line = format!("push {p} ({libc}) blobs and manifest by digest to {repo}");
            assert!(stdout.contains(&line), "missing `{line}` in\n{stdout}");
        }
        let line = format!("push {libc} index by digest to {repo}");
        assert!(stdout.contains(&line), "missing `{line}` in\n{stdout}");
    }
    for tag in GNU_TAGS.iter().chain(MUSL_TAGS.iter()) {
        let line = format!("tag {repo}:{tag}\n");
        assert!(stdout.contains(&line), "missing `{line}` in\n{stdout}");
    }
    // Every tag line comes after every push line.
    let last_push = stdout.rfind("\npush ").unwrap();
    let first_tag = stdout.find("\ntag ").unwrap();
    assert!(last_push < first_tag, "{stdout}");
    assert_eq!(reg.log_text(), log_before, "the registry saw a request");
    assert!(!out_dir.exists(), "--dry-run wrote {}", out_dir.display());
}

/// `release --dry-run` and `publish --dry-run` describe the same push in the same words: one
/// renderer, driven by the plan, prints both (each also says which stages it skips and why).
#[test]
fn release_and_publish_dry_runs_print_the_same_push_and_tag_lines() {
    let reg = TestRegistry::anonymous();
    let flags = example_variant("publish-dry", &pipeline(&reg.addr.to_string(), "", None));
    let out_dir = PathBuf::from(&flags[3]);
    let push_and_tag_lines = |command: &str| {
        let out = shipit(example())
            .args([command, "--dry-run"])
            .args(&flags)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with("push ") || l.starts_with("tag "))
            .map(str::to_string)
            .collect();
        (stdout, lines)
    };
    let (release_out, release) = push_and_tag_lines("release");
    let (publish_out, publish) = push_and_tag_lines("publish");
    // 7 platform manifests, 2 indexes and every tag of both variants.
    assert_eq!(
        release.len(),
        7 + 2 + GNU_TAGS.len() + MUSL_TAGS.len(),
        "{release_out}"
    );
    assert_eq!(
        release, publish,
        "release:\n{release_out}\npublish:\n{publish_out}"
    );
    assert!(
        publish_out.contains("# skip build: ") && !publish_out.contains("# build "),
        "{publish_out}"
    );
    assert!(!out_dir.exists(), "--dry-run wrote {}", out_dir.display());
}
