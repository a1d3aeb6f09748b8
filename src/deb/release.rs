//! The trust root of a suite: `dists/SUITE/InRelease`, verified with `gpgv` against the Debian
//! archive keyring, whose signed `SHA256:` list then vouches for every index shipit reads. An
//! index is downloaded compressed (`Packages.xz`, else `.gz`), checked for size and SHA256 against
//! that list before it is decompressed, and its decompressed text checked again when the list
//! names the uncompressed file too. Nothing unverified reaches the cache.

use super::error::DebError;
use super::fetch::Cache;
use super::mirror::{Http, Mirror};
use super::packages::{COMPONENT, Index, parse_stanzas};
use crate::exec::capture;
use crate::tools::gpgv;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The largest InRelease shipit reads (bookworm's is ~150 kB).
const MAX_INRELEASE: u64 = 16 << 20;
/// The largest decompressed Packages index (bookworm amd64: ~50 MB).
const MAX_INDEX: u64 = 1 << 30;
/// How long gpgv may take.
const GPGV_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens a suite on a mirror.
pub struct Archive;

/// A suite's verified release file.
#[derive(Debug, Clone)]
pub struct Release {
    pub mirror: Mirror,
    /// As requested (`bookworm`).
    pub suite: String,
    pub codename: String,
    pub date: String,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Whether indexes may be fetched by hash (`Acquire-By-Hash: yes`).
    pub by_hash: bool,
    /// Path below `dists/SUITE/` → (size, SHA256 hex), from the signed `SHA256:` field.
    pub files: BTreeMap<String, (u64, String)>,
}

impl Archive {
    /// Downloads and verifies `dists/SUITE/InRelease` with the Debian archive keyring in
    /// `/usr/share/keyrings`.
    pub fn open(http: &Http, mirror: &Mirror, suite: &str) -> Result<Release, DebError> {
        Archive::open_with_keyrings(http, mirror, suite, Path::new(gpgv::KEYRING_DIR))
    }

    /// The same with the keyrings of another directory.
    pub fn open_with_keyrings(
        http: &Http,
        mirror: &Mirror,
        suite: &str,
        keyring_dir: &Path,
    ) -> Result<Release, DebError> {
        if suite.is_empty()
            || !suite
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(DebError::format(
                format!("Debian suite {suite:?}"),
                "expected a codename such as bookworm",
            ));
        }
        let keyrings = gpgv::archive_keyrings(keyring_dir);
        if keyrings.is_empty() {
            return Err(DebError::NoKeyring {
                tried: vec![keyring_dir.join("debian-archive-keyring.gpg")],
            });
        }
        let url = mirror.url_of(&format!("dists/{suite}/InRelease"));
        let signed = match http.get_bytes(&url, MAX_INRELEASE) {
            Err(DebError::Http { status: 404, url }) => {
                return Err(DebError::UnknownSuite {
                    suite: suite.to_string(),
                    url,
                });
            }
            r => r?,
        };
        let text = verify(&keyrings, &signed, &url, http.cancel())?;
        Release::parse(&text, mirror, suite, &url)
    }
}

/// Runs gpgv on the signed bytes in a private temp dir; returns the signed text only.
fn verify(
    keyrings: &[std::path::PathBuf],
    signed: &[u8],
    url: &str,
    cancel: &crate::exec::Cancel,
) -> Result<String, DebError> {
    let dir = tempfile::tempdir().map_err(DebError::io(std::env::temp_dir()))?;
    let input = dir.path().join("InRelease");
    let output = dir.path().join("Release");
    std::fs::write(&input, signed).map_err(DebError::io(&input))?;
    let cmd = gpgv::verify_clearsigned(keyrings, &input, &output);
    let bad = |detail: String| DebError::BadSignature {
        what: "InRelease".to_string(),
        url: url.to_string(),
        detail,
    };
    match capture(&cmd, GPGV_TIMEOUT, cancel) {
        Ok(status) if gpgv::status_is_good(&status) => {}
        Ok(status) => return Err(bad(status)),
        Err(crate::exec::ExecError::Failed { tail, .. }) => return Err(bad(tail)),
        Err(e) => return Err(e.into()),
    }
    let text = std::fs::read(&output).map_err(DebError::io(&output))?;
    String::from_utf8(text).map_err(|_| bad("the signed text is not UTF-8".into()))
}

impl Release {
    /// Reads the fields of a verified release text.
    pub fn parse(text: &str, mirror: &Mirror, suite: &str, url: &str) -> Result<Release, DebError> {
        let stanzas = parse_stanzas(text, url)?;
        let s = stanzas
            .first()
            .ok_or_else(|| DebError::format(url, "an empty release file"))?;
        let codename = s.get("Codename").unwrap_or("").to_string();
        if codename != suite && s.get("Suite") != Some(suite) {
            return Err(DebError::Integrity {
                what: "InRelease".into(),
                url: url.into(),
                why: format!(
                    "it is signed for suite {:?} (codename {codename:?}), not {suite:?}",
                    s.get("Suite").unwrap_or("")
                ),
            });
        }
        if let Some(until) = s.get("Valid-Until") {
            let t = parse_date(until)
                .ok_or_else(|| DebError::format(url, format!("bad Valid-Until {until:?}")))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if now > t {
                return Err(DebError::Integrity {
                    what: "InRelease".into(),
                    url: url.into(),
                    why: format!(
                        "it expired on {until} (Valid-Until): the mirror serves a stale or replayed release"
                    ),
                });
            }
        }
        let mut files = BTreeMap::new();
        for line in s.get("SHA256").unwrap_or("").lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let [sha, size, path] = w[..] else {
                continue;
            };
            let size: u64 = size
                .parse()
                .map_err(|_| DebError::format(url, format!("bad size in SHA256 line {line:?}")))?;
            if !super::sha::is_sha256_hex(sha) {
                return Err(DebError::format(url, format!("bad SHA256 line {line:?}")));
            }
            files.insert(path.to_string(), (size, sha.to_string()));
        }
        if files.is_empty() {
            return Err(DebError::format(url, "no SHA256 file list"));
        }
        let words = |f: &str| {
            s.get(f)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        Ok(Release {
            mirror: mirror.clone(),
            suite: suite.to_string(),
            codename,
            date: s.get("Date").unwrap_or("").to_string(),
            architectures: words("Architectures"),
            components: words("Components"),
            by_hash: s.get("Acquire-By-Hash") == Some("yes"),
            files,
        })
    }

    /// Downloads (or takes from the cache), checks and parses `main/binary-ARCH/Packages`.
    pub fn index(&self, http: &Http, cache: &Cache, arch: &str) -> Result<Index, DebError> {
        if !self.architectures.iter().any(|a| a == arch) {
            return Err(DebError::NoPort {
                suite: self.suite.clone(),
                arch: arch.to_string(),
                ports: self
                    .architectures
                    .iter()
                    .filter(|a| *a != "all")
                    .cloned()
                    .collect(),
            });
        }
        let base = format!("{COMPONENT}/binary-{arch}/Packages");
        let (name, compression) = [(".xz", Compression::Xz), (".gz", Compression::Gz)]
            .into_iter()
            .map(|(ext, c)| (format!("{base}{ext}"), c))
            .find(|(n, _)| self.files.contains_key(n))
            .ok_or_else(|| {
                DebError::format(
                    format!("{} InRelease", self.suite),
                    format!("it lists no {base}.xz or {base}.gz"),
                )
            })?;
        let (size, sha) = &self.files[&name];
        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        // By hash when the archive offers it (no race with a mirror update), else by name; a
        // mirror without by-hash directories falls back to the name.
        let by_name = self.mirror.url_of(&format!("dists/{}/{name}", self.suite));
        let mut url = by_name.clone();
        if self.by_hash {
            url = self
                .mirror
                .url_of(&format!("dists/{}/{dir}/by-hash/SHA256/{sha}", self.suite));
        }
        let file =
            match cache.get_or_download(http, "indexes", &url, &name, *size, sha, &mut |_| {}) {
                Err(DebError::Http { status: 404, .. }) if url != by_name => {
                    url = by_name;
                    cache.get_or_download(http, "indexes", &url, &name, *size, sha, &mut |_| {})?
                }
                r => r?,
            };
        let what = format!("{} {name}", self.suite);
        let f = std::fs::File::open(&file).map_err(DebError::io(&file))?;
        let mut text = Vec::new();
        decompress(compression, f)
            .take(MAX_INDEX + 1)
            .read_to_end(&mut text)
            .map_err(|e| DebError::format(&what, format!("cannot decompress: {e}")))?;
        if text.len() as u64 > MAX_INDEX {
            return Err(DebError::format(&what, "decompresses to more than 1 GiB"));
        }
        if let Some((usize_, usha)) = self.files.get(&base)
            && (text.len() as u64 != *usize_ || &super::sha::sha256_hex(&text) != usha)
        {
            return Err(DebError::Integrity {
                what: what.clone(),
                url,
                why: "its decompressed text does not match the signed size and SHA256".into(),
            });
        }
        let text = String::from_utf8(text)
            .map_err(|_| DebError::format(&what, "the index is not UTF-8"))?;
        Index::parse(&text, &self.suite, arch, &what)
    }
}

/// Seconds since the epoch of a release date (`Sat, 11 Jul 2026 10:16:37 UTC`, RFC 2822 with
/// `UTC`, `GMT`, `Z` or a numeric offset).
pub fn parse_date(s: &str) -> Option<i64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let w = if w.first().is_some_and(|d| d.ends_with(',')) {
        &w[1..]
    } else {
        &w[..]
    };
    let [day, mon, year, time, zone] = w else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == mon)? as i64
        + 1;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    let offset = match *zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let v: i64 = z[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gz,
    Xz,
    Zstd,
}

/// A reader that decompresses `r`.
pub fn decompress<'a, R: Read + 'a>(c: Compression, r: R) -> Box<dyn Read + 'a> {
    let r = std::io::BufReader::new(r);
    match c {
        Compression::None => Box::new(r),
        Compression::Gz => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(r, true)),
        Compression::Zstd => Box::new(ZstdFrames::new(r)),
    }
}

/// Decodes every zstd frame of a stream, one after the other.
struct ZstdFrames<R: std::io::BufRead> {
    inner: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    done: bool,
}

impl<R: std::io::BufRead> ZstdFrames<R> {
    fn new(r: R) -> Self {
        ZstdFrames {
            inner: None,
            done: false,
        }
        .start(r)
    }

    fn start(mut self, r: R) -> Self {
        match ruzstd::decoding::StreamingDecoder::new(r) {
            Ok(d) => self.inner = Some(d),
            Err(_) => self.done = true,
        }
        self
    }
}

impl<R: std::io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.done {
                return Ok(0);
            }
            let Some(d) = self.inner.as_mut() else {
                return Err(std::io::Error::other("not a zstd stream"));
            };
            let n = d.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow.
            let d = self.inner.take().expect("checked above");
            let mut r = d.into_inner();
            if r.fill_buf()?.is_empty() {
                self.done = true;
                return Ok(0);
            }
            match ruzstd::decoding::StreamingDecoder::new(r) {
                Ok(d) => self.inner = Some(d),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_text_gives_the_sha256_list() {
        let text = "\
Origin: Debian
Suite: oldstable
Codename: bookworm
Date: Sat, 11 Jul 2026 10:16:37 UTC
Acquire-By-Hash: yes
Architectures: all amd64 arm64 armhf
Components: main contrib
MD5Sum:
 b838d31986207780a596ce3e8010f90f  8790396 main/binary-amd64/Packages.xz
SHA256:
 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages
 9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz
";
        let m = Mirror::new("http://deb.example/debian").unwrap();
        let r = Release::parse(text, &m, "bookworm", "u").unwrap();
        assert!(r.by_hash);
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.files["main/binary-amd64/Packages.xz"].0, 8790396);
        assert_eq!(r.architectures, ["all", "amd64", "arm64", "armhf"]);
        let e = Release::parse(text, &m, "trixie", "u").unwrap_err();
        assert!(e.to_string().contains("not \"trixie\""), "{e}");
    }

    #[test]
    fn release_dates_parse_and_expired_releases_are_refused() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 11 Jul 2026 10:16:37 UTC"),
            Some(1_783_764_997)
        );
        assert_eq!(
            parse_date("Tue, 29 Feb 2000 12:00:00 +0100"),
            Some(951_822_000)
        );
        assert_eq!(parse_date("11 Jul 2026"), None);
        let m = Mirror::new("http://deb.example/debian").unwrap();
        let text = "Codename: bookworm-security\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nSHA256:\n 9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5 1 main/x\n";
        let e = Release::parse(text, &m, "bookworm-security", "u").unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let fresh = text.replace("2000", "2999");
        assert!(Release::parse(&fresh, &m, "bookworm-security", "u").is_ok());
    }

    #[test]
    fn zstd_streams_of_several_frames_decode() {
        let mut data = Vec::new();
        for part in [b"hello ".as_slice(), b"world"] {
            let c = ruzstd::encoding::compress_to_vec(
                part,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            data.extend(c);
        }
        let mut out = String::new();
        decompress(Compression::Zstd, data.as_slice())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }
}
