//! Debian packages as image input: a client for the Debian archive and a rootfs assembler, the
//! engine behind `deb:SUITE` bases, `image.packages` and the gnu targets' build sysroots
//! ([`sysroot`]: `libc6-dev` plus `build.packages`, unpacked into a directory). Nothing here
//! runs a package's maintainer scripts; the effects a minimal image needs are done in Rust and
//! listed in [`rootfs`].
//!
//! The flow, one file per concern:
//!
//! 1. [`mirror`]: where the archive is (`SHIPIT_DEBIAN_MIRROR`, else the machine's apt source,
//!    `Mirror::from_env_or_apt()`) and bounded, cancellable HTTP downloads (`Http::new(cancel)`).
//! 2. [`release`]: `Archive::open(&http, &mirror, suite)` downloads `dists/SUITE/InRelease`,
//!    verifies its OpenPGP signature with `gpgv` against the Debian archive keyring
//!    (`tools::gpgv`), and keeps the signed `SHA256:` list. `release.index(&http, &cache, arch)`
//!    downloads `main/binary-ARCH/Packages.xz` (by hash), checks size and SHA256 against that list
//!    before decompressing, and parses it ([`packages`]).
//! 3. [`mod@resolve`]: `resolve(&index, &Request::new(suite, arch, &pkgs))` closes `libc6`,
//!    `libgcc-s1` and the requested packages (`name` or `name=version`) under
//!    `Depends`/`Pre-Depends` (alternatives, version relations with dpkg's order in [`version`],
//!    `Provides`, `:any`), deterministically; `resolve_each` does several architectures and names
//!    an architecture without a build; `resolve_locked(&lock, &request)` needs no index at all.
//! 4. [`mod@fetch`]: `fetch(&http, &mirror, &resolution, &cache, jobs, &progress)` makes the `.deb`s
//!    local, in parallel, through the content-addressed [`fetch::Cache`]
//!    (`~/.cache/shipit/debs/sha256/<hex>`), checking size and SHA256; cached files are re-hashed.
//! 5. [`debfile`] reads a `.deb` (ar + control/data tar, xz/zstd/gz) as hostile input, and
//!    `assemble(&debs, &RootfsOptions { arch, epoch, user })` unions the packages into a
//!    [`Rootfs`]: layer entries (for `oci::layer`) with merged `/usr`, the dpkg database,
//!    `/etc/passwd`/`group`, the CA bundle and hash links from [`cacerts`].
//! 6. [`lock`]: `pipeline.lock` (`Lock::{read, parse, render, write, merge}`), per suite →
//!    architecture → package: version, filename, SHA256, size and the resolved dependency edges.
//!
//! How a release uses it (one suite, the platforms of a `deb:SUITE` variant):
//!
//! ```text
//! let arches: Vec<&str> = platforms.iter().map(|p| deb::debian_arch(p)).collect()?; // arm/v6: error
//! let mut lock = Lock::read(&dir.join("pipeline.lock"))?.unwrap_or_default();
//! let (resolutions, changed) = deb::resolve_with_lock(&http, &mirror, &cache, &mut lock,
//!     suite, &arches, &cfg.image.packages, LockMode::Use /* Locked for --locked, Update for lock --update */)?;
//! if changed { lock.write(&lock_path)? }          // under --locked resolve_with_lock already failed
//! for r in &resolutions {
//!     let debs = deb::fetch(&http, &mirror, r, &cache, jobs, &|p| bar.set(p.bytes_done))?;
//!     let rootfs = deb::assemble(&debs, &RootfsOptions { arch: r.arch.clone(), epoch, user })?;
//!     // rootfs.entries → the base layer (layout.write_layer(&rootfs.entries, epoch)); the base
//!     // already has /etc/passwd, so the app layer adds only the binary.
//! }
//! ```
//! `shipit plan` can show `resolve_locked(&lock, &request)`'s packages and versions without any
//! network; `--dry-run` downloads nothing.
//!
//! Errors are one [`DebError`]; `From<DebError> for crate::error::Error` maps it onto the exit
//! codes (bad signature or checksum 1, unknown package, suite or lock entry 2, unreachable mirror
//! or missing keyring 3).

pub mod cacerts;
pub mod debfile;
mod error;
pub mod fetch;
pub mod lock;
pub mod mirror;
pub mod names;
pub mod packages;
pub mod release;
pub mod resolve;
pub mod rootfs;
mod sha;
pub mod sysroot;
pub mod version;

pub use error::DebError;
pub use fetch::{Cache, LocalDeb, Progress, fetch};
pub use lock::Lock;
pub use lock::resolve_locked;
pub use mirror::{Http, Mirror};
pub use release::{Archive, Release};
pub use resolve::{Pkg, Request, Resolution, resolve, resolve_each};
pub use rootfs::{Rootfs, RootfsOptions, assemble};

use crate::platform::Platform;
use std::collections::BTreeMap;

pub use packages::{BASE_PACKAGES, SUITES};

/// The archive component shipit reads.
pub use packages::COMPONENT;

/// Debian's name for a platform's architecture: linux/amd64 → amd64, linux/arm64 → arm64,
/// linux/arm/v7 → armhf. linux/arm/v6 has none: Debian's armhf is built for ARMv7.
pub fn debian_arch(p: &Platform) -> Result<&'static str, DebError> {
    match names::no_debian_arch(p) {
        None => Ok(p.debian_arch),
        Some(why) => Err(DebError::NoDebianArch {
            platform: p.name.to_string(),
            why,
        }),
    }
}

/// How a run treats `pipeline.lock` (cargo's `--locked` and `update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Use the lock where it covers the request; resolve from the archive (and record it) where
    /// it does not.
    Use,
    /// The lock must cover the request: anything missing is [`DebError::NotLocked`].
    Locked,
    /// Resolve from the archive and replace the lock's entries for these architectures.
    Update,
}

/// The packages of one suite for several architectures, as the lock and `mode` say: with a lock
/// that covers the request no index is downloaded (no network at all when the `.deb`s are
/// cached); otherwise the suite's `InRelease` is verified, the indexes downloaded and checked, and
/// the result merged into `lock`. Returns the resolutions (in `arches` order) and whether the lock
/// changed (the caller writes it, or fails under `--locked`).
#[allow(clippy::too_many_arguments)]
pub fn resolve_with_lock(
    http: &Http,
    mirror: &Mirror,
    cache: &Cache,
    lock: &mut Lock,
    suite: &str,
    arches: &[&str],
    packages: &[impl AsRef<str>],
    mode: LockMode,
) -> Result<(Vec<Resolution>, bool), DebError> {
    if mode != LockMode::Update {
        let locked: Result<Vec<Resolution>, DebError> = arches
            .iter()
            .map(|a| resolve_locked(lock, &Request::new(suite, a, packages)))
            .collect();
        match locked {
            Ok(rs) => return Ok((rs, false)),
            Err(e @ DebError::NotLocked { .. }) if mode == LockMode::Locked => return Err(e),
            Err(DebError::NotLocked { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let release = Archive::open(http, mirror, suite)?;
    // One index per architecture, downloaded and parsed side by side.
    let indexes = std::thread::scope(|s| {
        let jobs: Vec<_> = arches
            .iter()
            .map(|a| s.spawn(|| release.index(http, cache, a)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("index threads do not panic"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let rs = resolve_each(&indexes.iter().collect::<Vec<_>>(), suite, packages)?;
    let before = lock.clone();
    for r in &rs {
        if mode == LockMode::Update
            && let Some(a) = lock.suites.get_mut(suite)
        {
            a.remove(&r.arch);
        }
        lock.merge(r);
    }
    let changed = lock.suites != before.suites;
    Ok((rs, changed))
}

/// [`resolve_with_lock`] for every suite of `requests` (suite → architectures), keyed by
/// (suite, architecture); each locked (suite, architecture) is then pruned to exactly what its
/// resolution reaches, so the lock holds what is installed and nothing a removed package once
/// pulled in. The caller compares the lock before and after (and writes it, or fails under
/// `--locked`).
pub fn resolve_pruned(
    http: &Http,
    mirror: &Mirror,
    cache: &Cache,
    lock: &mut Lock,
    requests: &BTreeMap<String, Vec<String>>,
    packages: &[impl AsRef<str>],
    mode: LockMode,
) -> Result<BTreeMap<(String, String), Resolution>, DebError> {
    let mut out = BTreeMap::new();
    for (suite, arches) in requests {
        let arch_refs: Vec<&str> = arches.iter().map(String::as_str).collect();
        let (rs, _) =
            resolve_with_lock(http, mirror, cache, lock, suite, &arch_refs, packages, mode)?;
        for r in rs {
            if let Some(entries) = lock.suites.get_mut(suite).and_then(|a| a.get_mut(&r.arch)) {
                entries.retain(|name, _| r.get(name).is_some());
            }
            out.insert((suite.clone(), r.arch.clone()), r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::PLATFORMS;

    #[test]
    fn platforms_map_to_debian_architectures_and_armv6_says_why_not() {
        let arch = |name: &str| debian_arch(PLATFORMS.iter().find(|p| p.name == name).unwrap());
        assert_eq!(arch("linux/amd64").unwrap(), "amd64");
        assert_eq!(arch("linux/arm64").unwrap(), "arm64");
        assert_eq!(arch("linux/arm/v7").unwrap(), "armhf");
        let e = arch("linux/arm/v6").unwrap_err();
        assert!(e.to_string().contains("ARMv7"), "{e}");
        assert_eq!(e.kind(), crate::error::Kind::Config);
    }
}
