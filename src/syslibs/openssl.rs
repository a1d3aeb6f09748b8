//! Static OpenSSL for musl targets. Debian has no musl-built OpenSSL, so for a musl target whose
//! graph contains `openssl-sys` (without `vendored`), shipit builds OpenSSL once for that target
//! from the `openssl-src` crate's sources (fetched by `cargo metadata` of a tiny generated
//! manifest), with the target's C compiler and the device's flags (`tools::openssl`: ARMv6 +
//! VFPv2 for linux/arm/v6, ARMv7-A + VFPv3-D16 for linux/arm/v7), caches it by openssl-src
//! version and target under `~/.cache/shipit/openssl/` (with the recipe it was built from: a
//! build from other flags is made again), and hands the build `OPENSSL_DIR`,
//! `OPENSSL_STATIC=1`, `OPENSSL_LIB_DIR`, `OPENSSL_INCLUDE_DIR` and their target-prefixed forms,
//! so the user's `Cargo.toml` needs no `vendored` feature and the binary stays static. Every
//! command runs through `crate::exec` (cancellable) with its output in `dist/logs/openssl-<target>.log`.

use super::sysroot::{Var, target_prefix};
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::tools::openssl as tool;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every openssl-sys since 0.9.80 builds OpenSSL 3 from openssl-src 300.x.
const OPENSSL_SRC_REQ: &str = "300";

/// The file in a cached build that says how it was made (`tools::openssl::recipe`).
const RECIPE_FILE: &str = "shipit-recipe";

/// How long one step of the OpenSSL build may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// A static OpenSSL installed for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub dir: PathBuf,
    /// The openssl-src version it was built from (`300.6.1+3.6.3`: OpenSSL 3.6.3).
    pub version: String,
    /// Whether this run built it (false: it came from the cache).
    pub built: bool,
    /// The target's C compiler for build scripts, when `cc` would not find one itself.
    pub cc: Option<PathBuf>,
}

/// `~/.cache/shipit/openssl` (`$XDG_CACHE_HOME/shipit/openssl`).
pub fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("shipit/openssl")
}

/// The build's variables for a static OpenSSL installed in `dir`, for `target`; `cc`: the C
/// compiler build scripts use for the target (`CC_<target>`), where shipit provides one.
pub fn env(dir: &Path, target: &str, cc: Option<&Path>) -> Vec<Var> {
    let d = dir.display().to_string();
    let (lib, include) = (format!("{d}/lib"), format!("{d}/include"));
    let prefix = target_prefix(target);
    let mut vars = Vec::new();
    for p in [String::new(), format!("{prefix}_")] {
        vars.extend([
            var(format!("{p}OPENSSL_DIR"), &d),
            var(format!("{p}OPENSSL_STATIC"), "1"),
            var(format!("{p}OPENSSL_LIB_DIR"), &lib),
            var(format!("{p}OPENSSL_INCLUDE_DIR"), &include),
        ]);
    }
    if let Some(cc) = cc {
        vars.push(var(
            format!("CC_{}", target.replace('-', "_")),
            &cc.display().to_string(),
        ));
    }
    vars
}

fn var(name: String, value: &str) -> Var {
    Var {
        name,
        value: value.to_string(),
        append: false,
    }
}

#[derive(Deserialize)]
struct Meta {
    packages: Vec<MetaPackage>,
}

#[derive(Deserialize)]
struct MetaPackage {
    name: String,
    version: String,
    manifest_path: PathBuf,
}

/// Where `cargo metadata` of the generated manifest put openssl-src: (version, OpenSSL source dir).
fn sources(cache: &Path, log: &Path, cancel: &Cancel) -> Result<(String, PathBuf)> {
    let dir = cache.join("src-manifest");
    std::fs::create_dir_all(&dir).map_err(|e| Error::stage(format!("{}: {e}", dir.display())))?;
    let manifest = dir.join("Cargo.toml");
    std::fs::write(&manifest, tool::source_manifest(OPENSSL_SRC_REQ))
        .and_then(|()| std::fs::write(dir.join("lib.rs"), ""))
        .map_err(|e| Error::stage(format!("{}: {e}", manifest.display())))?;
    let cmd = tool::fetch_sources(&manifest);
    let out = crate::exec::capture(&cmd, STEP_TIMEOUT, cancel).map_err(|e| {
        Error::from(e).with_detail(format!(
            "shipit fetches OpenSSL's sources from crates.io (openssl-src); log: {}",
            log.display()
        ))
    })?;
    let meta: Meta = serde_json::from_str(&out)
        .map_err(|e| Error::stage(format!("cargo metadata of openssl-src: {e}")))?;
    let p = meta
        .packages
        .iter()
        .find(|p| p.name == "openssl-src")
        .ok_or_else(|| Error::stage("cargo metadata did not resolve openssl-src"))?;
    let src = p
        .manifest_path
        .parent()
        .map(|d| d.join("openssl"))
        .ok_or_else(|| Error::stage("openssl-src has no source directory"))?;
    Ok((p.version.clone(), src))
}

/// The static OpenSSL for `target`, built now unless the cache has it.
pub fn ensure(target: &str, log: &Path, jobs: usize, cancel: &Cancel) -> Result<Installed> {
    if tool::configure_target(target).is_none() {
        return Err(Error::config(format!(
            "{target}: shipit cannot build OpenSSL for this target; enable openssl's `vendored` feature"
        )));
    }
    let cache = cache_root();
    let (version, src) = sources(&cache, log, cancel)?;
    let dir = cache.join(format!("{version}-{target}"));
    let musl_gcc = target == "x86_64-unknown-linux-musl" && which::which("musl-gcc").is_ok();
    let cc = cc_wrapper(&cache, target, musl_gcc)?;
    let recipe = tool::recipe(target, musl_gcc)
        .ok_or_else(|| Error::config(format!("{target}: no OpenSSL configuration")))?;
    let stamp = |d: &Path| d.join(RECIPE_FILE);
    if dir.join("lib/libssl.a").is_file()
        && dir.join("include/openssl/ssl.h").is_file()
        && std::fs::read_to_string(stamp(&dir)).ok().as_deref() == Some(recipe.as_str())
    {
        return Ok(Installed {
            dir,
            version,
            built: false,
            cc,
        });
    }
    let partial = cache.join(format!("{version}-{target}.partial-{}", std::process::id()));
    let work = cache.join(format!("build-{target}-{}", std::process::id()));
    let result = build(&src, &work, &partial, target, musl_gcc, log, jobs, cancel).and_then(|()| {
        std::fs::write(stamp(&partial), &recipe)
            .map_err(|e| Error::stage(format!("{}: {e}", stamp(&partial).display())))
    });
    std::fs::remove_dir_all(&work).ok();
    if let Err(e) = result {
        std::fs::remove_dir_all(&partial).ok();
        return Err(e);
    }
    // A build from another recipe (older flags) makes way; another shipit may have finished
    // the same build meanwhile: its copy is as good.
    if dir.exists() && std::fs::read_to_string(stamp(&dir)).ok().as_deref() != Some(&recipe) {
        let old = cache.join(format!("{version}-{target}.old-{}", std::process::id()));
        if std::fs::rename(&dir, &old).is_ok() {
            std::fs::remove_dir_all(&old).ok();
        }
    }
    if std::fs::rename(&partial, &dir).is_err() {
        std::fs::remove_dir_all(&partial).ok();
    }
    Ok(Installed {
        dir,
        version,
        built: true,
        cc,
    })
}

/// Writes the target's C compiler wrapper for build scripts (`<cache>/cc/<target>`), if the
/// target needs one.
fn cc_wrapper(cache: &Path, target: &str, musl_gcc: bool) -> Result<Option<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let Some(script) = tool::cc_wrapper_script(target, musl_gcc) else {
        return Ok(None);
    };
    let path = cache.join("cc").join(target);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(script.as_str()) {
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::create_dir_all(cache.join("cc"))
            .and_then(|()| std::fs::write(&tmp, &script))
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::stage(format!("{}: {e}", path.display())))?;
    }
    Ok(Some(path))
}

#[allow(clippy::too_many_arguments)]
fn build(
    src: &Path,
    work: &Path,
    prefix: &Path,
    target: &str,
    musl_gcc: bool,
    log: &Path,
    jobs: usize,
    cancel: &Cancel,
) -> Result<()> {
    copy_tree(src, work).map_err(|e| {
        Error::stage(format!(
            "copying the OpenSSL sources {} to {}: {e}",
            src.display(),
            work.display()
        ))
    })?;
    let configure = tool::configure(work, prefix, target, musl_gcc)
        .ok_or_else(|| Error::config(format!("{target}: no OpenSSL configuration")))?;
    let steps = [
        configure,
        tool::make(work, target, &["depend"], 1),
        tool::make(work, target, &["build_libs"], jobs),
        tool::make(work, target, &["install_dev"], 1),
    ];
    for cmd in &steps {
        crate::exec::run_logged(cmd, log, Some(STEP_TIMEOUT), cancel).map_err(|e| {
            Error::from(e).with_detail(format!("the OpenSSL build's log: {}", log.display()))
        })?;
    }
    Ok(())
}

/// Copies the directory tree `from` to `to` (files, directories and symbolic links).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_gets_plain_and_target_prefixed_variables() {
        let vars = env(Path::new("/c/o"), "x86_64-unknown-linux-musl", None);
        let get = |n: &str| {
            vars.iter()
                .find(|v| v.name == n)
                .map(|v| v.value.as_str())
                .unwrap_or_else(|| panic!("no {n}"))
        };
        assert_eq!(get("OPENSSL_DIR"), "/c/o");
        assert_eq!(get("OPENSSL_STATIC"), "1");
        assert_eq!(get("OPENSSL_LIB_DIR"), "/c/o/lib");
        assert_eq!(get("OPENSSL_INCLUDE_DIR"), "/c/o/include");
        assert_eq!(get("X86_64_UNKNOWN_LINUX_MUSL_OPENSSL_DIR"), "/c/o");
        assert_eq!(get("X86_64_UNKNOWN_LINUX_MUSL_OPENSSL_STATIC"), "1");
        assert!(vars.iter().all(|v| !v.append));
        assert!(vars.iter().all(|v| !v.name.starts_with("CC_")));
        let vars = env(
            Path::new("/c/o"),
            "aarch64-unknown-linux-musl",
            Some(Path::new("/c/cc/aarch64-unknown-linux-musl")),
        );
        assert!(
            vars.iter()
                .any(|v| v.name == "CC_aarch64_unknown_linux_musl"
                    && v.value == "/c/cc/aarch64-unknown-linux-musl")
        );
    }
}
