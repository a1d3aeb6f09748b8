//! The download cache and the parallel `.deb` fetcher. Files are stored content-addressed,
//! `<cache>/<kind>/sha256/<hex>` under `$XDG_CACHE_HOME/shipit` (else `~/.cache/shipit`), written
//! to a temp file beside their final name, checked for size and SHA256, then renamed: a file under
//! its final name always had the right bytes once, and it is hashed again before each use (a
//! changed file is removed and downloaded again). A download that does not match is an error
//! naming the file and the URL, and leaves nothing behind.

use super::error::DebError;
use super::mirror::{Http, Mirror};
use super::resolve::{Pkg, Resolution};
use super::sha::is_sha256_hex;
use sha2::Digest as _;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The content-addressed download cache.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `$XDG_CACHE_HOME/shipit`, else `$HOME/.cache/shipit`.
    pub fn default_location() -> Result<Cache, DebError> {
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".cache"),
                None => {
                    return Err(DebError::format(
                        "download cache",
                        "neither XDG_CACHE_HOME nor HOME is set",
                    ));
                }
            },
        };
        Ok(Cache::new(base.join("shipit")))
    }

    /// Where a file of this kind (`debs`, `indexes`) and SHA256 lives.
    pub fn path(&self, kind: &str, sha256: &str) -> PathBuf {
        self.root.join(kind).join("sha256").join(sha256)
    }

    /// The cached file, if it is there with the right size and SHA256. A file with the wrong
    /// bytes is removed (so the next download replaces it) and reported as absent.
    pub fn verified(
        &self,
        kind: &str,
        sha256: &str,
        size: u64,
    ) -> Result<Option<PathBuf>, DebError> {
        if !is_sha256_hex(sha256) {
            return Err(DebError::format("cache", format!("bad SHA256 {sha256:?}")));
        }
        let path = self.path(kind, sha256);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DebError::io(&path)(e)),
        };
        let (hex, len) = hash_reader(f.take(size + 1)).map_err(DebError::io(&path))?;
        if len == size && hex == sha256 {
            return Ok(Some(path));
        }
        std::fs::remove_file(&path).map_err(DebError::io(&path))?;
        Ok(None)
    }

    /// The cached file, downloading it from `url` first if it is missing or damaged. `what`
    /// names it in errors; `progress` gets each downloaded chunk's length.
    #[allow(clippy::too_many_arguments)]
    pub fn get_or_download(
        &self,
        http: &Http,
        kind: &str,
        url: &str,
        what: &str,
        size: u64,
        sha256: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PathBuf, DebError> {
        if let Some(p) = self.verified(kind, sha256, size)? {
            return Ok(p);
        }
        let dir = self.root.join(kind).join("sha256");
        std::fs::create_dir_all(&dir).map_err(DebError::io(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(&dir)
            .map_err(DebError::io(&dir))?;
        let mut hashing = HashWriter {
            inner: std::io::BufWriter::new(tmp.as_file_mut()),
            hash: sha2::Sha256::new(),
        };
        let got = http.get_into(url, size, &mut hashing, progress)?;
        let hex = hex::encode(hashing.hash.clone().finalize());
        let flushed = hashing.inner.flush();
        drop(hashing);
        flushed.map_err(DebError::io(tmp.path().to_path_buf()))?;
        let mismatch = |why: String| DebError::Integrity {
            what: what.to_string(),
            url: url.to_string(),
            why,
        };
        if got != size {
            return Err(mismatch(format!(
                "the server sent {got} bytes, the signed index says {size}"
            )));
        }
        if hex != sha256 {
            return Err(mismatch(format!(
                "its SHA256 is {hex}, the signed index says {sha256}"
            )));
        }
        let path = self.path(kind, sha256);
        tmp.persist(&path)
            .map_err(|e| DebError::io(&path)(e.error))?;
        Ok(path)
    }
}

struct HashWriter<W: Write> {
    inner: W,
    hash: sha2::Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hash_reader(mut r: impl Read) -> std::io::Result<(String, u64)> {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// A `.deb` on this machine whose bytes were checked against its package's SHA256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDeb {
    pub pkg: Pkg,
    pub path: PathBuf,
}

/// Download progress, reported after every chunk (the caller draws the bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    /// Bytes of files done or downloaded so far (cached files count in full).
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Files that came from the cache.
    pub cached: usize,
}

/// Makes every package of a resolution available locally: from the cache when it is there
/// (re-hashed), else downloaded from `mirror`, at most `jobs` at a time. The result is in the
/// resolution's order.
pub fn fetch(
    http: &Http,
    mirror: &Mirror,
    resolution: &Resolution,
    cache: &Cache,
    jobs: usize,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Vec<LocalDeb>, DebError> {
    let pkgs = &resolution.packages;
    let total: u64 = pkgs.iter().map(|p| p.size).sum();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let cached = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<PathBuf, DebError>>>> =
        Mutex::new((0..pkgs.len()).map(|_| None).collect());
    let report = || {
        progress(&Progress {
            files_done: done.load(Ordering::SeqCst),
            files_total: pkgs.len(),
            bytes_done: bytes.load(Ordering::SeqCst),
            bytes_total: total,
            cached: cached.load(Ordering::SeqCst),
        })
    };
    let work = |p: &Pkg| -> Result<PathBuf, DebError> {
        if let Some(path) = cache.verified("debs", &p.sha256, p.size)? {
            cached.fetch_add(1, Ordering::SeqCst);
            bytes.fetch_add(p.size, Ordering::SeqCst);
            return Ok(path);
        }
        let mut got = 0u64;
        let r = cache.get_or_download(
            http,
            "debs",
            &mirror.url_of(&p.filename),
            &format!("{} {} ({})", p.name, p.version, p.filename),
            p.size,
            &p.sha256,
            &mut |n| {
                got += n;
                bytes.fetch_add(n, Ordering::SeqCst);
                report();
            },
        );
        if r.is_err() {
            bytes.fetch_sub(got, Ordering::SeqCst);
        }
        r.map_err(|e| match e {
            DebError::Http { status: 404, url } => DebError::Gone {
                what: format!("{} {}", p.name, p.version),
                url,
            },
            e => e,
        })
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 16).min(pkgs.len().max(1)) {
            s.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(p) = pkgs.get(i) else { break };
                    let r = work(p);
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    results.lock().expect("no panics while held")[i] = Some(r);
                    report();
                }
            });
        }
    });
    let mut out = Vec::with_capacity(pkgs.len());
    for (p, r) in pkgs
        .iter()
        .zip(results.into_inner().expect("threads joined"))
    {
        match r {
            Some(Ok(path)) => out.push(LocalDeb {
                pkg: p.clone(),
                path,
            }),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    if out.len() != pkgs.len() {
        return Err(DebError::Cancelled(
            http.cancel().signal().unwrap_or(libc::SIGINT),
        ));
    }
    Ok(out)
}

/// The cached `.deb`s of a resolution, without any download; `None` if one is missing.
pub fn cached(resolution: &Resolution, cache: &Cache) -> Result<Option<Vec<LocalDeb>>, DebError> {
    let mut out = Vec::new();
    for p in &resolution.packages {
        match cache.verified("debs", &p.sha256, p.size)? {
            Some(path) => out.push(LocalDeb {
                pkg: p.clone(),
                path,
            }),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}
