//! The registry client against a real docker-registry 2.8 (anonymous http, htpasswd over TLS,
//! Bearer tokens), read back with skopeo; `fault_*` tests put the fault proxy in between.

use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::TestRegistry;
use shipit::exec::Cancel;
use shipit::oci::digest::Digest;
use shipit::oci::json::canonical;
use shipit::oci::media;
use shipit::oci::registry::{
    BlobOutcome, ClientOptions, Credentials, ErrorKind, Reference, RegistryClient, Secret,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CANARY: &str = "CANARY-pw-7d41e2";

/// A small image written by hand: a layer, a config, a manifest and an index.
struct Image {
    _dir: tempfile::TempDir,
    blobs: Vec<(Digest, u64, PathBuf)>,
    manifest: Vec<u8>,
    index: Vec<u8>,
}

fn image(layer_len: usize) -> Image {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic, incompressible-ish bytes.
    let mut x: u32 = 0x9e37_79b9;
    let layer: Vec<u8> = (0..layer_len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let layer_d = Digest::of(&layer);
    let config = canonical(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_d.to_string()]},
    }))
    .unwrap();
    let config_d = Digest::of(&config);
    let manifest = canonical(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_d.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_TAR, "digest": layer_d.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let index = canonical(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": Digest::of(&manifest).to_string(),
            "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let mut blobs = Vec::new();
    for (d, bytes) in [(layer_d, layer), (config_d, config)] {
        let p = dir.path().join(d.hex());
        std::fs::write(&p, &bytes).unwrap();
        blobs.push((d, bytes.len() as u64, p));
    }
    Image {
        _dir: dir,
        blobs,
        manifest,
        index,
    }
}

fn fast_opts(reg: &TestRegistry) -> ClientOptions {
    ClientOptions {
        plain_http: !reg.tls,
        ca_file: reg.ca_file.clone(),
        retry_base_delay: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(10),
        mask_tokens: false,
        ..ClientOptions::default()
    }
}

fn creds(user: &str, pass: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: user.into(),
        password: Secret::new(pass),
    })
}

fn client_at(
    addr: &str,
    repo: &str,
    creds: Option<Credentials>,
    opts: ClientOptions,
) -> RegistryClient {
    client_cancelled_by(addr, repo, creds, opts, &Cancel::new())
}

fn client_cancelled_by(
    addr: &str,
    repo: &str,
    creds: Option<Credentials>,
    opts: ClientOptions,
    cancel: &Cancel,
) -> RegistryClient {
    let r = Reference::parse(&format!("{addr}/{repo}")).unwrap();
    RegistryClient::new(&r, creds, opts, cancel).unwrap()
}

fn client(reg: &TestRegistry, repo: &str, creds: Option<Credentials>) -> RegistryClient {
    client_at(&reg.host_port(), repo, creds, fast_opts(reg))
}

/// Pushes blobs, the manifest by digest, then the index by tag; returns the index digest.
fn push_image(c: &RegistryClient, img: &Image, tag: &str, mount_from: Option<&str>) -> Digest {
    for (d, size, path) in &img.blobs {
        c.push_blob(d, *size, path, mount_from).unwrap();
    }
    let md = Digest::of(&img.manifest);
    assert_eq!(
        c.push_manifest(md.as_str(), media::OCI_MANIFEST, &img.manifest)
            .unwrap(),
        md
    );
    c.push_manifest(tag, media::OCI_INDEX, &img.index).unwrap()
}

fn assert_published(reg: &TestRegistry, repo: &str, tag: &str, img: &Image) {
    assert_eq!(
        reg.skopeo_raw(&format!("{repo}:{tag}")),
        img.index,
        "index by tag"
    );
    let md = Digest::of(&img.manifest);
    assert_eq!(
        reg.skopeo_raw(&format!("{repo}@{md}")),
        img.manifest,
        "manifest by digest"
    );
}

#[test]
fn anonymous_push_reads_back_and_second_push_uploads_nothing() {
    let reg = TestRegistry::anonymous();
    let img = image(64 * 1024);
    let c = client(&reg, "shipit/hello", None);
    let d = push_image(&c, &img, "v1", None);
    assert_eq!(d, Digest::of(&img.index));
    assert_published(&reg, "shipit/hello", "v1", &img);
    let s = c.stats();
    assert_eq!((s.blobs_uploaded, s.blobs_skipped), (2, 0));
    assert_eq!(s.bytes_uploaded, img.blobs.iter().map(|b| b.1).sum::<u64>());
    // Monolithic by default: POST + PUT, no PATCH.
    assert_eq!(reg.count("POST", "/blobs/uploads/"), 2);
    assert_eq!(reg.count("PATCH", "/blobs/uploads/"), 0);

    let c2 = client(&reg, "shipit/hello", None);
    push_image(&c2, &img, "v1", None);
    let s2 = c2.stats();
    assert_eq!((s2.blobs_uploaded, s2.blobs_skipped), (0, 2));
    assert_eq!(
        reg.count("POST", "/blobs/uploads/"),
        2,
        "no new upload session"
    );

    // head/get manifest round trip.
    let (hd, mt, size) = c2.head_manifest("v1").unwrap().unwrap();
    assert_eq!(
        (hd, mt.as_str(), size),
        (d.clone(), media::OCI_INDEX, img.index.len() as u64)
    );
    let (bytes, mt, gd) = c2.get_manifest(d.as_str()).unwrap();
    assert_eq!(
        (bytes, mt.as_str(), gd),
        (img.index.clone(), media::OCI_INDEX, d)
    );
    assert_eq!(c2.head_manifest("absent").unwrap(), None);
}

#[test]
fn chunked_upload_above_threshold() {
    let reg = TestRegistry::anonymous();
    let img = image(100_000);
    let opts = ClientOptions {
        chunked_threshold: 10_000,
        chunk_size: 30_000,
        ..fast_opts(&reg)
    };
    let c = client_at(&reg.host_port(), "shipit/chunked", None, opts);
    push_image(&c, &img, "latest", None);
    // 100 000 bytes in 30 000-byte chunks = 4 PATCHes; the config is under the threshold.
    assert_eq!(
        reg.count("PATCH", "/blobs/uploads/"),
        4,
        "{}",
        reg.log_text()
    );
    assert_published(&reg, "shipit/chunked", "latest", &img);
}

#[test]
fn basic_auth_over_tls_with_ca_file() {
    let reg = TestRegistry::basic_tls("shipit", CANARY);
    let img = image(10_000);
    let c = client(&reg, "shipit/tls", creds("shipit", CANARY));
    push_image(&c, &img, "v1", None);
    assert_published(&reg, "shipit/tls", "v1", &img);

    // Without the CA the self-signed certificate is refused: no silent fallback.
    let opts = ClientOptions {
        ca_file: None,
        max_attempts: 1,
        ..fast_opts(&reg)
    };
    let c = client_at(
        &reg.host_port(),
        "shipit/tls",
        creds("shipit", CANARY),
        opts,
    );
    let e = c.blob_exists(&img.blobs[0].0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains("ca_file"), "{e}");
}

#[test]
fn wrong_password_is_an_auth_error_without_retries_or_leaks() {
    let reg = TestRegistry::basic_tls("shipit", "right-password");
    let img = image(1000);
    let c = client(&reg, "shipit/x", creds("shipit", CANARY));
    let e = c
        .push_blob(&img.blobs[0].0, img.blobs[0].1, &img.blobs[0].2, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "authentication to {} failed: check SHIPIT_REGISTRY_USER/SHIPIT_REGISTRY_PASSWORD or docker login",
            reg.host_port()
        )),
        "{text}"
    );
    for shown in [text, format!("{e:?}")] {
        assert!(!shown.contains(CANARY), "{shown}");
    }
    // One ping, one HEAD: no retries of a 401.
    assert_eq!(c.stats().requests, 2, "{}", reg.log_text());
    assert_eq!(reg.count("HEAD", "/blobs/"), 1);
    assert!(!reg.log_text().contains(CANARY));

    // Bearer: the token server refuses once, nothing is retried.
    let reg = TestRegistry::bearer("shipit", "right-password");
    let c = client(&reg, "shipit/x", creds("shipit", CANARY));
    let e = c.blob_exists(&img.blobs[0].0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!format!("{e} {e:?}").contains(CANARY));
    assert_eq!(reg.token_refusals(), 1);
}

#[test]
fn bearer_push_and_cross_repo_mount_with_source_pull_scope() {
    let reg = TestRegistry::bearer("shipit", CANARY);
    let img = image(20_000);
    let c = client(&reg, "shipit/hello", creds("shipit", CANARY));
    push_image(&c, &img, "v1", None);
    // One token for the whole push, cached.
    assert_eq!(
        reg.token_scopes(),
        vec!["repository:shipit/hello:pull,push"]
    );
    assert_published(&reg, "shipit/hello", "v1", &img);

    let c2 = client(&reg, "shipit/copy", creds("shipit", CANARY));
    push_image(&c2, &img, "v1", Some("shipit/hello"));
    let s = c2.stats();
    assert_eq!(
        (s.blobs_mounted, s.blobs_uploaded),
        (2, 0),
        "{}",
        reg.log_text()
    );
    assert_eq!(reg.count("POST", "mount="), 2);
    assert!(
        reg.token_scopes()
            .contains(&"repository:shipit/copy:pull,push repository:shipit/hello:pull".to_string()),
        "{:?}",
        reg.token_scopes()
    );
    assert_published(&reg, "shipit/copy", "v1", &img);
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_connection() {
    let r = Reference::parse("registry.invalid:5000/shipit/app:v1").unwrap();
    let opts = ClientOptions {
        plain_http: true,
        ..ClientOptions::default()
    };
    let e = RegistryClient::new(&r, None, opts, &Cancel::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string()
            .contains("refusing plain HTTP to non-loopback host registry.invalid:5000"),
        "{e}"
    );
}

#[test]
fn index_with_a_missing_child_is_manifest_blob_unknown() {
    let reg = TestRegistry::anonymous();
    let img = image(1000);
    let c = client(&reg, "shipit/orphan", None);
    let e = c
        .push_manifest("v1", media::OCI_INDEX, &img.index)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");
    assert!(
        e.to_string().contains("before the manifest or index"),
        "{e}"
    );
    assert_eq!(reg.count("PUT", "/manifests/"), 1, "not retried");
    assert_eq!(c.head_manifest("v1").unwrap(), None, "tag not created");
}

#[test]
fn get_blob_verifies_size_and_digest() {
    let reg = TestRegistry::anonymous();
    let img = image(5000);
    let c = client(&reg, "shipit/pull", None);
    push_image(&c, &img, "v1", None);
    let (d, size, _) = &img.blobs[0];
    let out = reg.scratch("pull");
    let dest = out.join("layer");
    assert_eq!(c.get_blob(d, &dest, 1 << 20).unwrap(), *size);
    assert_eq!(Digest::of(&std::fs::read(&dest).unwrap()), *d);

    let small = out.join("small");
    let e = c.get_blob(d, &small, size - 1).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
    assert!(!small.exists());

    // Tamper with the stored bytes (same length): the digest check catches it.
    let data = reg.blob_data_path(d.hex());
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let bad = out.join("bad");
    let e = c.get_blob(d, &bad, 1 << 20).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!bad.exists());
}

fn proxied_client(proxy: &FaultProxy, repo: &str, reg: &TestRegistry) -> RegistryClient {
    client_at(&proxy.addr.to_string(), repo, None, fast_opts(reg))
}

fn put_blob_files(img: &Image) -> Vec<(&Digest, u64, &Path)> {
    img.blobs
        .iter()
        .map(|(d, s, p)| (d, *s, p.as_path()))
        .collect()
}

#[test]
fn fault_503_on_first_upload_then_success() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(
        reg.addr,
        vec![Rule {
            method: "PUT",
            path_contains: "/blobs/uploads/".into(),
            nth: 1,
            fault: Fault::Status {
                status: 503,
                retry_after: None,
            },
        }],
    );
    let img = image(30_000);
    let c = proxied_client(&proxy, "shipit/retry", &reg);
    push_image(&c, &img, "v1", None);
    // The failed blob restarts from POST: 3 POSTs for 2 blobs.
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        3,
        "{:?}",
        proxy.seen()
    );
    assert_eq!(c.stats().blobs_uploaded, 2);
    assert_published(&reg, "shipit/retry", "v1", &img);
}

#[test]
fn fault_429_retry_after_is_honoured() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(
        reg.addr,
        vec![Rule {
            method: "PUT",
            path_contains: "/manifests/".into(),
            nth: 1,
            fault: Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
        }],
    );
    let img = image(1000);
    let c = proxied_client(&proxy, "shipit/slow", &reg);
    for (d, s, p) in put_blob_files(&img) {
        c.push_blob(d, s, p, None).unwrap();
    }
    let t = Instant::now();
    let md = c
        .push_manifest(
            Digest::of(&img.manifest).as_str(),
            media::OCI_MANIFEST,
            &img.manifest,
        )
        .unwrap();
    // Backoff alone would be ~10 ms; Retry-After: 1 makes it wait a second.
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(proxy.count("PUT", "/manifests/"), 2);
    assert_eq!(md, Digest::of(&img.manifest));
}

#[test]
fn fault_connection_reset_mid_blob_restarts_and_completes() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(
        reg.addr,
        vec![Rule {
            method: "PUT",
            path_contains: "/blobs/uploads/".into(),
            nth: 1,
            fault: Fault::ResetAfterBody(64 * 1024),
        }],
    );
    let img = image(1 << 20);
    let c = proxied_client(&proxy, "shipit/reset", &reg);
    let (d, s, p) = put_blob_files(&img)[0];
    assert_eq!(c.push_blob(d, s, p, None).unwrap(), BlobOutcome::Uploaded);
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        2,
        "{:?}",
        proxy.seen()
    );
    assert!(c.blob_exists(d).unwrap());
}

#[test]
fn fault_cancel_during_backoff_stops_without_further_requests() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::start(
        reg.addr,
        vec![Rule {
            method: "POST",
            path_contains: "/blobs/uploads/".into(),
            nth: 1,
            fault: Fault::Status {
                status: 503,
                retry_after: Some(30),
            },
        }],
    );
    let img = image(1000);
    let opts = fast_opts(&reg);
    let cancel = Cancel::new();
    let c = client_cancelled_by(
        &proxy.addr.to_string(),
        "shipit/cancel",
        None,
        opts,
        &cancel,
    );
    let (d, s, p) = put_blob_files(&img)[0];
    let seen_before = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while proxy.count("POST", "/blobs/uploads/") == 0 {
                assert!(Instant::now() < deadline, "no POST reached the proxy");
                std::thread::sleep(Duration::from_millis(5));
            }
            let n = proxy.seen().len();
            cancel.cancel(libc::SIGTERM);
            n
        });
        let t = Instant::now();
        let e = c.push_blob(d, s, p, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "waited out Retry-After"
        );
        waiter.join().unwrap()
    });
    assert_eq!(
        proxy.seen().len(),
        seen_before,
        "a request started after cancel"
    );
    // And a cancelled client starts nothing at all.
    let before = c.stats().requests;
    assert_eq!(c.blob_exists(d).unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(c.stats().requests, before);
}

/// A registry that trickles one header line every 300 ms never trips the per-read timeout; the
/// request deadline ends the call, once (a trickling registry would trickle again), naming the
/// registry.
#[test]
fn fault_trickling_answer_fails_at_the_request_deadline_without_retries() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::trickling_first_blob_head(reg.addr, Duration::from_millis(300));
    let opts = ClientOptions {
        request_deadline: Duration::from_secs(2),
        ..fast_opts(&reg)
    };
    let c = client_at(&proxy.addr.to_string(), "shipit/trickle", None, opts);
    let img = image(100);
    let t = Instant::now();
    let e = c.blob_exists(&img.blobs[0].0).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    let text = e.to_string();
    assert!(text.contains("request deadline"), "{text}");
    assert!(text.contains(&proxy.addr.to_string()), "{text}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(proxy.count("HEAD", "/blobs/"), 1, "{:?}", proxy.seen());
}

/// A cancelled run does not wait out a blocked socket read (a 60 s per-read timeout here): the
/// call returns `Cancelled` within a moment of the cancellation, from the same thread.
#[test]
fn fault_cancel_during_a_stalled_read_returns_at_once() {
    let reg = TestRegistry::anonymous();
    let proxy = FaultProxy::trickling_first_blob_head(reg.addr, Duration::from_secs(30));
    let opts = ClientOptions {
        io_timeout: Duration::from_secs(60),
        ..fast_opts(&reg)
    };
    let cancel = Cancel::new();
    let c = client_cancelled_by(&proxy.addr.to_string(), "shipit/stall", None, opts, &cancel);
    let img = image(100);
    let token = cancel.clone();
    let cancelled_at = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        token.cancel(libc::SIGTERM);
        Instant::now()
    });
    let e = c.blob_exists(&img.blobs[0].0).unwrap_err();
    let returned = Instant::now();
    let cancelled_at = cancelled_at.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert_eq!(e.cancelled_by(), Some(libc::SIGTERM));
    assert!(
        returned.duration_since(cancelled_at) < Duration::from_secs(1),
        "returned {:?} after the cancellation",
        returned.duration_since(cancelled_at)
    );
}

/// Fault-injecting fake registries, for what a real docker-registry cannot be made to do: answer
/// with an upload `Location` on another host (recorded by a second listener), or expire Bearer
/// tokens after a few requests.
mod fake_registry {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    type Headers = Vec<(String, String)>;

    /// Reads one HTTP/1.1 request: (request line, headers lowercased, body).
    fn read_request(s: &mut TcpStream) -> Option<(String, Headers, Vec<u8>)> {
        let mut r = BufReader::new(s.try_clone().ok()?);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line.is_empty() {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some((line.trim_end().to_string(), headers, body))
    }

    fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)]) {
        let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let _ = s.write_all(out.as_bytes());
    }

    type Seen = Arc<Mutex<Vec<(String, Headers)>>>;

    /// The `?digest=` of an upload-completing request line.
    fn upload_digest(line: &str) -> String {
        line.split("digest=")
            .nth(1)
            .and_then(|d| d.split([' ', '&']).next())
            .unwrap_or("")
            .replace("%3A", ":")
    }

    /// The other host: answers every request 201 with the digest from the query.
    fn other_host(bind: &str) -> (u16, Seen) {
        let l = TcpListener::bind(bind).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Seen = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                if let Some((line, headers, _)) = read_request(&mut c) {
                    let digest = upload_digest(&line);
                    s2.lock().unwrap().push((line, headers));
                    respond(&mut c, "201 Created", &[("Docker-Content-Digest", digest)]);
                }
            }
        });
        (port, seen)
    }

    /// The registry: requires Basic auth, has no blob, sends uploads to `location`.
    fn fake_registry(location: String) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let Some((line, headers, _)) = read_request(&mut c) else {
                    continue;
                };
                let authed = headers.iter().any(|(k, _)| k == "authorization");
                if !authed {
                    respond(
                        &mut c,
                        "401 Unauthorized",
                        &[("WWW-Authenticate", "Basic realm=\"fake\"".into())],
                    );
                } else if line.starts_with("GET /v2/ ") {
                    respond(&mut c, "200 OK", &[]);
                } else if line.starts_with("HEAD ") {
                    respond(&mut c, "404 Not Found", &[]);
                } else if line.starts_with("POST ") {
                    respond(&mut c, "202 Accepted", &[("Location", location.clone())]);
                } else {
                    respond(&mut c, "400 Bad Request", &[]);
                }
            }
        });
        port
    }

    fn blob() -> (tempfile::TempDir, Digest, u64, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"a layer that travels to another host".to_vec();
        let d = Digest::of(&bytes);
        let p = dir.path().join("blob");
        std::fs::write(&p, &bytes).unwrap();
        (dir, d, bytes.len() as u64, p)
    }

    fn opts() -> ClientOptions {
        ClientOptions {
            plain_http: true,
            retry_base_delay: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            mask_tokens: false,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn fault_upload_location_on_another_host_gets_no_credentials() {
        let (other_port, seen) = other_host("127.0.0.1:0");
        // Same machine, but another host name: credentials are scoped to 127.0.0.1:<reg>.
        let port = fake_registry(format!("http://localhost:{other_port}/upload/session-1"));
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "CANARY-pw"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        c.push_blob(&d, size, &path, None).unwrap();
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty(), "the upload never reached the other host");
        for (line, headers) in seen.iter() {
            assert!(
                !headers.iter().any(|(k, _)| k == "authorization"),
                "{line} carried credentials to another host: {headers:?}"
            );
        }
    }

    #[test]
    fn fault_upload_location_to_an_internal_ip_of_another_host_is_refused() {
        // 127.0.0.2 is loopback, but not the registry's host: an SSRF-shaped redirect.
        let (other_port, seen) = other_host("127.0.0.2:0");
        let port = fake_registry(format!("http://127.0.0.2:{other_port}/upload/session-1"));
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "CANARY-pw"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        let err = c.push_blob(&d, size, &path, None).unwrap_err();
        assert!(
            seen.lock().unwrap().is_empty(),
            "a request went to the internal address"
        );
        let text = err.to_string();
        assert!(!text.contains("CANARY-pw"), "{text}");
        assert!(
            text.to_lowercase().contains("location") || text.contains("127.0.0.2"),
            "{text}"
        );
    }

    /// Request lines a fake registry saw, and whether each carried `Authorization`.
    type Requests = Arc<Mutex<Vec<(String, bool)>>>;

    /// A registry whose `/v2/` answers 200 to anyone while its repositories want Basic `user:pw`
    /// (401 with a Basic challenge otherwise). Returns (port, requests seen: line and whether
    /// it carried `Authorization`).
    fn repository_basic_registry() -> (u16, Requests) {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:pw")
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Requests = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let Some((line, headers, _)) = read_request(&mut c) else {
                    continue;
                };
                let auth = headers.iter().find(|(k, _)| k == "authorization");
                s2.lock().unwrap().push((line.clone(), auth.is_some()));
                if line.starts_with("GET /v2/ ") {
                    respond(&mut c, "200 OK", &[]);
                } else if auth.is_none_or(|(_, v)| *v != want) {
                    respond(
                        &mut c,
                        "401 Unauthorized",
                        &[("WWW-Authenticate", "Basic realm=\"repo\"".into())],
                    );
                } else if line.starts_with("HEAD ") {
                    respond(&mut c, "404 Not Found", &[]);
                } else if line.starts_with("POST ") {
                    respond(
                        &mut c,
                        "202 Accepted",
                        &[("Location", "/v2/app/blobs/uploads/s1".into())],
                    );
                } else if line.starts_with("PUT ") {
                    let digest = upload_digest(&line);
                    respond(&mut c, "201 Created", &[("Docker-Content-Digest", digest)]);
                } else {
                    respond(&mut c, "400 Bad Request", &[]);
                }
            }
        });
        (port, seen)
    }

    /// `/v2/` is anonymous but the repository answers 401 with a Basic challenge: the challenge
    /// is answered with the credentials (once), and the rest of the push sends them at once.
    #[test]
    fn fault_repository_basic_challenge_after_an_anonymous_ping_is_answered() {
        let (port, seen) = repository_basic_registry();
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "pw"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        assert_eq!(
            c.push_blob(&d, size, &path, None).unwrap(),
            BlobOutcome::Uploaded
        );
        let seen = seen.lock().unwrap().clone();
        let unauthenticated: Vec<_> = seen
            .iter()
            .filter(|(l, a)| !a && !l.starts_with("GET /v2/ "))
            .collect();
        assert_eq!(unauthenticated.len(), 1, "{seen:?}");
        assert!(
            seen.iter().any(|(l, a)| *a && l.starts_with("PUT ")),
            "{seen:?}"
        );
    }

    /// The same registry with a wrong password: one answer to the challenge, then an auth error
    /// (no loop), and the password appears nowhere.
    #[test]
    fn fault_repository_basic_challenge_with_a_wrong_password_is_an_auth_error() {
        let (port, seen) = repository_basic_registry();
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "CANARY-wrong"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        let err = c.push_blob(&d, size, &path, None).unwrap_err();
        assert!(
            matches!(err.kind(), shipit::oci::registry::ErrorKind::Auth),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("CANARY-wrong"));
        let seen = seen.lock().unwrap().clone();
        let heads = seen.iter().filter(|(l, _)| l.starts_with("HEAD ")).count();
        assert_eq!(
            heads, 2,
            "one plain HEAD, one answering the challenge: {seen:?}"
        );
    }

    /// A Bearer registry whose tokens expire after `uses` requests (answering 401 with a new
    /// challenge), and its token server, which wants Basic `user:pw` and counts the tokens it
    /// issues. Returns (registry port, tokens issued).
    fn expiring_bearer_registry(uses: usize) -> (u16, Arc<Mutex<usize>>) {
        bearer_registry(uses, false)
    }

    /// [`expiring_bearer_registry`], whose `/v2/` answers 200 to anyone when `anonymous_ping`.
    fn bearer_registry(uses: usize, anonymous_ping: bool) -> (u16, Arc<Mutex<usize>>) {
        let tl = TcpListener::bind("127.0.0.1:0").unwrap();
        let token_port = tl.local_addr().unwrap().port();
        let issued: Arc<Mutex<usize>> = Arc::default();
        let count = issued.clone();
        std::thread::spawn(move || {
            use base64::Engine as _;
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("user:pw")
            );
            for mut c in tl.incoming().flatten() {
                let Some((_, headers, _)) = read_request(&mut c) else {
                    continue;
                };
                if headers
                    .iter()
                    .any(|(k, v)| k == "authorization" && *v == want)
                {
                    let n = {
                        let mut n = count.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    let body = format!("{{\"token\":\"tok-{n}\"}}");
                    let _ = c.write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                    );
                } else {
                    respond(&mut c, "401 Unauthorized", &[]);
                }
            }
        });
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let issued2 = issued.clone();
        std::thread::spawn(move || {
            let challenge =
                format!("Bearer realm=\"http://127.0.0.1:{token_port}/token\",service=\"fake\"");
            let mut used: std::collections::HashMap<String, usize> = Default::default();
            for mut c in l.incoming().flatten() {
                let Some((line, headers, _)) = read_request(&mut c) else {
                    continue;
                };
                let token = headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .and_then(|(_, v)| v.strip_prefix("Bearer "))
                    .map(str::to_string);
                let latest = format!("tok-{}", *issued2.lock().unwrap());
                let valid = token.as_deref() == Some(latest.as_str()) && {
                    let u = used.entry(latest.clone()).or_default();
                    *u += 1;
                    *u <= uses
                };
                if anonymous_ping && line.starts_with("GET /v2/ ") {
                    respond(&mut c, "200 OK", &[]);
                } else if !valid {
                    respond(
                        &mut c,
                        "401 Unauthorized",
                        &[("WWW-Authenticate", challenge.clone())],
                    );
                } else if line.starts_with("GET /v2/ ") {
                    respond(&mut c, "200 OK", &[]);
                } else if line.starts_with("HEAD ") {
                    respond(&mut c, "404 Not Found", &[]);
                } else if line.starts_with("POST ") {
                    respond(
                        &mut c,
                        "202 Accepted",
                        &[("Location", "/v2/app/blobs/uploads/s1".into())],
                    );
                } else if line.starts_with("PUT ") {
                    let digest = upload_digest(&line);
                    respond(&mut c, "201 Created", &[("Docker-Content-Digest", digest)]);
                } else {
                    respond(&mut c, "400 Bad Request", &[]);
                }
            }
        });
        (port, issued)
    }

    #[test]
    fn fault_expired_bearer_token_is_fetched_again_and_the_push_completes() {
        let (port, issued) = expiring_bearer_registry(2);
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "pw"),
            opts(),
        );
        for content in [b"first blob".as_slice(), b"second blob"] {
            let dir = tempfile::tempdir().unwrap();
            let d = Digest::of(content);
            let p = dir.path().join("b");
            std::fs::write(&p, content).unwrap();
            c.push_blob(&d, content.len() as u64, &p, None).unwrap();
        }
        let n = *issued.lock().unwrap();
        assert!(
            n >= 3,
            "tokens expire every 2 requests, yet only {n} were fetched"
        );
    }

    /// `/v2/` is anonymous but the repository answers 401 with a Bearer challenge: the token is
    /// fetched with the credentials and the push completes.
    #[test]
    fn fault_repository_bearer_challenge_after_an_anonymous_ping_is_answered() {
        let (port, issued) = bearer_registry(100, true);
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "pw"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        assert_eq!(
            c.push_blob(&d, size, &path, None).unwrap(),
            BlobOutcome::Uploaded
        );
        assert!(*issued.lock().unwrap() >= 1);
    }

    #[test]
    fn fault_wrong_password_at_the_token_server_is_an_auth_error() {
        let (port, issued) = expiring_bearer_registry(100);
        let c = client_at(
            &format!("127.0.0.1:{port}"),
            "app",
            creds("user", "CANARY-wrong"),
            opts(),
        );
        let (_dir, d, size, path) = blob();
        let err = c.push_blob(&d, size, &path, None).unwrap_err();
        assert_eq!(*issued.lock().unwrap(), 0);
        assert!(
            matches!(err.kind(), shipit::oci::registry::ErrorKind::Auth),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("CANARY-wrong"));
    }
}
