//! Hints for a build that still failed. The diagnosis before compiling (`syslibs::check`) catches
//! what it can see in the dependency graph; what it cannot (a crate it does not know, a library a
//! build script asks for by name, a sysroot that does not match the glibc pin) shows up in cargo's
//! output. These pure functions read a failed build's log with the target's [`TargetLibs`] and
//! recognise the known patterns — pkg-config not set up for cross-compiling, openssl-sys not
//! finding OpenSSL, the linker's `cannot find -lX`, a missing C header, glibc symbols newer than
//! the glibc the build links against — and say in one line which Debian package to add to which
//! key of `pipeline.yaml`. The build stage adds these lines under its error
//! ([`for_failed_build`]).

use super::TargetLibs;
use super::table::{self, KnownSys, MuslWay};
use crate::error::Error;
use crate::platform::Libc;
use regex::Regex;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

/// One recognised failure and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// What the log shows, in a few words (`cannot find -lpq`).
    pub seen: String,
    /// The fix, naming the package and the key (`add libpq-dev to build.packages in
    /// pipeline.yaml`).
    pub fix: String,
}

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hint: {}: {}", self.seen, self.fix)
    }
}

/// `error: failed to run custom build command for `openssl-sys v0.9.118``
static BUILD_SCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"failed to run custom build command for `([A-Za-z0-9_-]+) v").expect("regex")
});
/// GNU ld: `cannot find -lpq`; lld: `unable to find library -lpq`; zig: `unable to find dynamic
/// system library "pq"` (or `static system library`).
static MISSING_LIB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:cannot find -l|unable to find library -l)([A-Za-z0-9_.+-]+)|unable to find (?:dynamic|static) system library "([^"]+)""#,
    )
    .expect("regex")
});
/// gcc: `fatal error: openssl/ssl.h: No such file or directory`; clang/zig: `fatal error:
/// 'openssl/ssl.h' file not found`.
static MISSING_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"fatal error: (?:([A-Za-z0-9_./+-]+\.h): No such file or directory|'([A-Za-z0-9_./+-]+\.h)' file not found)",
    )
    .expect("regex")
});
/// A versioned glibc symbol the link could not resolve: `undefined reference to
/// `dlopen@GLIBC_2.34'`, lld's `undefined reference: dlopen@GLIBC_2.34`, or the loader's
/// `version `GLIBC_2.34' not found`.
static GLIBC_SYMBOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:undefined (?:reference|symbol)[: ].*|version `)GLIBC_(\d+)\.(\d+)")
        .expect("regex")
});

/// The hints for a failed build of one target: `log` is its whole output, `libs` its sys crates
/// as the diagnosis saw them (`None` when there was no diagnosis). At most one hint per pattern
/// and package, in the order of the checks.
pub fn hints(log: &str, libs: Option<&TargetLibs>) -> Vec<Hint> {
    let libc = libs.map(|t| t.libc).unwrap_or(Libc::Gnu);
    let in_build_packages = |deb: &str| {
        libs.is_some_and(|t| {
            t.syslibs.iter().any(|l| {
                matches!(&l.provided_by, Some(super::Provider::DebSysroot { packages }) if packages.iter().any(|p| p == deb))
            })
        })
    };
    let chain_of = |krate: &str| {
        libs.and_then(|t| t.syslibs.iter().find(|l| l.krate == krate))
            .map(|l| l.chain_text())
            .unwrap_or_else(|| krate.to_string())
    };
    let failed_crates: Vec<&str> = BUILD_SCRIPT
        .captures_iter(log)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    let mut out = Vec::new();

    // The build script of a known sys crate could not find its library.
    let pkg_config_cross =
        log.contains("pkg-config has not been configured to support cross-compilation");
    let no_openssl = log.contains("Could not find directory of OpenSSL installation")
        || (log.contains("OpenSSL libdir at")
            && log.contains("does not contain the required files"));
    if pkg_config_cross || no_openssl {
        let mut krates: Vec<&KnownSys> = failed_crates
            .iter()
            .filter_map(|k| table::known(k))
            .collect();
        if krates.is_empty() && no_openssl {
            krates.extend(table::known("openssl-sys"));
        }
        let seen = if no_openssl {
            "openssl-sys could not find OpenSSL".to_string()
        } else {
            "pkg-config is not set up for cross-compiling".to_string()
        };
        for k in krates {
            out.push(Hint {
                seen: format!("{seen} ({})", chain_of(k.krate)),
                fix: library_fix(k, libc, in_build_packages(k.build_deb)),
            });
        }
        if out.is_empty() {
            out.push(Hint {
                seen,
                fix: "add the Debian -dev package of the library that build script looks for to build.packages in pipeline.yaml (shipit then points pkg-config at the target's sysroot)".into(),
            });
        }
    }

    // The linker did not find a library.
    let mut libs_seen = BTreeSet::new();
    for c in MISSING_LIB.captures_iter(log) {
        let Some(name) = c.get(1).or_else(|| c.get(2)).map(|m| m.as_str()) else {
            continue;
        };
        if !libs_seen.insert(name.to_string()) {
            continue;
        }
        let seen = format!("the linker cannot find -l{name}");
        let fix = match (libc, table::dev_package_for_link_name(name)) {
            (Libc::Musl, _) => match table::KNOWN.iter().find(|k| k.links == name) {
                Some(k) => library_fix(k, libc, false),
                None => format!(
                    "musl targets link lib{name}.a statically and Debian builds none for musl: use the crate's feature that compiles it (often `bundled`, `static` or `vendored`)"
                ),
            },
            (Libc::Gnu, Some(deb)) if in_build_packages(deb) => format!(
                "{deb} is in build.packages but the sysroot has no lib{name}.so or lib{name}.a for this architecture: check the package's name for this suite"
            ),
            (Libc::Gnu, Some(deb)) => add_build_package(deb),
            (Libc::Gnu, None) => format!(
                "no lib{name}.so or lib{name}.a for this target: add the Debian -dev package that ships it to build.packages in pipeline.yaml"
            ),
        };
        out.push(Hint { seen, fix });
    }

    // A C compiler did not find a header.
    let mut headers_seen = BTreeSet::new();
    for c in MISSING_HEADER.captures_iter(log) {
        let Some(header) = c.get(1).or_else(|| c.get(2)).map(|m| m.as_str()) else {
            continue;
        };
        let deb = table::dev_package_for_header(header);
        // One hint per package (openssl/ssl.h and openssl/opensslconf.h are both libssl-dev).
        if !headers_seen.insert(deb.unwrap_or(header).to_string()) {
            continue;
        }
        let seen = format!("the C compiler cannot find {header}");
        let fix = match (libc, deb) {
            (Libc::Musl, Some(deb)) => match table::KNOWN.iter().find(|k| k.build_deb == deb) {
                Some(k) => library_fix(k, libc, false),
                None => format!(
                    "{deb} is Debian's and there is no musl build of it: use the crate's feature that compiles the library (often `bundled` or `vendored`)"
                ),
            },
            (Libc::Musl, None) => "use the crate's feature that compiles the library (often `bundled` or `vendored`): Debian has no musl builds".into(),
            (Libc::Gnu, Some(deb)) if in_build_packages(deb) => format!(
                "{deb} is in build.packages but the compiler did not search the sysroot: this backend may not take the sysroot's include dirs"
            ),
            (Libc::Gnu, Some(deb)) => add_build_package(deb),
            (Libc::Gnu, None) => "add the Debian -dev package that ships this header to build.packages in pipeline.yaml".into(),
        };
        out.push(Hint { seen, fix });
    }

    // glibc symbols newer than the glibc the build links against.
    let newest = GLIBC_SYMBOL
        .captures_iter(log)
        .filter_map(|c| {
            Some((
                c.get(1)?.as_str().parse::<u32>().ok()?,
                c.get(2)?.as_str().parse::<u32>().ok()?,
            ))
        })
        .max();
    if let Some((major, minor)) = newest {
        out.push(Hint {
            seen: format!("the linked libraries need GLIBC_{major}.{minor}"),
            fix: format!(
                "the sysroot's libraries are newer than the glibc floor the build links against: set build.glibc to \"{major}.{minor}\" in pipeline.yaml, or take the sysroot from an older Debian suite"
            ),
        });
    }
    if let Some(sym) = log
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("__isoc23_"))
    {
        out.push(Hint {
            seen: format!("undefined reference to {sym}"),
            fix: "objects built against glibc 2.38 or newer (its C23 `__isoc23_*` functions) are linked against an older glibc: the sysroot's Debian suite is newer than build.glibc; set build.glibc to \"2.38\" in pipeline.yaml or use a sysroot from an older suite".into(),
        });
    }
    out
}

/// `add libssl-dev to build.packages in pipeline.yaml`, with the runtime package when known.
fn add_build_package(deb: &str) -> String {
    match table::KNOWN.iter().find(|k| k.build_deb == deb) {
        Some(k) => format!(
            "add {deb} to build.packages in pipeline.yaml (and {} to image.packages, to run it)",
            k.runtime_deb
        ),
        None => format!("add {deb} to build.packages in pipeline.yaml"),
    }
}

/// The fix for a well-known sys crate that did not find its library on this libc.
fn library_fix(k: &KnownSys, libc: Libc, already: bool) -> String {
    match libc {
        Libc::Gnu if already => format!(
            "{} is in build.packages, yet {} did not find {} in the sysroot: the sysroot's environment did not reach this build (backend?)",
            k.build_deb, k.krate, k.links
        ),
        Libc::Gnu => add_build_package(k.build_deb),
        Libc::Musl => match k.musl {
            MuslWay::NeedsFeature(f) => format!(
                "Debian has no musl {}: enable the `{f}` feature of {} (build.features in pipeline.yaml, e.g. rusqlite/{f}, diesel's pq-sys/{f})",
                k.links, k.krate
            ),
            MuslWay::ShipitStatic => format!(
                "shipit builds {} statically for musl targets it knows; for this one enable the `{}` feature of {}",
                k.links,
                k.self_build_features.first().copied().unwrap_or("vendored"),
                k.krate
            ),
            MuslWay::CrateBuilds => format!(
                "{} builds {} itself for musl: enable its `{}` feature",
                k.krate,
                k.links,
                k.self_build_features.first().copied().unwrap_or("static")
            ),
        },
    }
}

/// `error` (a failed build of one target) with the hints its log gives, as lines under it.
pub fn for_failed_build(error: Error, log: &Path, libs: Option<&TargetLibs>) -> Error {
    let Ok(text) = std::fs::read(log) else {
        return error;
    };
    let found = hints(&String::from_utf8_lossy(&text), libs);
    if found.is_empty() {
        return error;
    }
    error.with_detail(
        found
            .iter()
            .map(Hint::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslibs::{Provider, SysLib};

    fn target(libc: Libc, build_packages: &[&str]) -> TargetLibs {
        TargetLibs {
            platform: "linux/arm64".into(),
            libc,
            target: "aarch64-unknown-linux-gnu".into(),
            syslibs: vec![SysLib {
                krate: "openssl-sys".into(),
                version: "0.9.118".into(),
                links: "openssl".into(),
                chain: vec!["tlsapp".into(), "openssl".into(), "openssl-sys".into()],
                features: vec![],
                needs_build: vec!["libssl-dev".into()],
                needs_runtime: vec!["libssl3".into()],
                provided_by: build_packages
                    .contains(&"libssl-dev")
                    .then(|| Provider::DebSysroot {
                        packages: vec!["libssl-dev".into()],
                    }),
                missing: None,
            }],
        }
    }

    /// `cargo build --target aarch64-unknown-linux-gnu` of examples/tls-client with a cross gcc
    /// and no sysroot (the relevant lines).
    const PKG_CONFIG_CROSS: &str = r#"   Compiling openssl-sys v0.9.118
   Compiling libc v0.2.191
warning: openssl-sys@0.9.118: Could not find directory of OpenSSL installation, and this `-sys` crate cannot proceed without this knowledge. If OpenSSL is installed and this crate had trouble finding it,  you can set the `OPENSSL_DIR` environment variable for the compilation process. See stderr section below for further information.
error: failed to run custom build command for `openssl-sys v0.9.118`
note: To improve backtraces for build dependencies, set the CARGO_PROFILE_RELEASE_BUILD_OVERRIDE_DEBUG=true environment variable to enable debug information generation.

Caused by:
  process didn't exit successfully: `/work/fixtures/sysextra/hintlogs/app/../t/release/build/openssl-sys-ee9a9b4412a2c637/build-script-main` (exit status: 101)
  --- stdout
  cargo:rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR


  Could not find openssl via pkg-config:
  pkg-config has not been configured to support cross-compilation.

  Install a sysroot for the target platform and configure it via
  PKG_CONFIG_SYSROOT_DIR and PKG_CONFIG_PATH, or install a
  cross-compiling wrapper for pkg-config and set it via
  PKG_CONFIG environment variable.

  --- stderr


  Could not find directory of OpenSSL installation, and this `-sys` crate cannot
  proceed without this knowledge. If OpenSSL is installed and this crate had
  trouble finding it,  you can set the `OPENSSL_DIR` environment variable for the
  compilation process.

  $HOST = x86_64-unknown-linux-gnu
  $TARGET = aarch64-unknown-linux-gnu
  openssl-sys = 0.9.118


warning: build failed, waiting for other jobs to finish...
"#;

    /// The same with OPENSSL_INCLUDE_DIR set to an empty dir: the cross gcc finds the host's
    /// /usr/include/openssl but not its per-architecture opensslconf.h.
    const HEADER_GCC: &str = r#"   Compiling openssl-sys v0.9.118
warning: openssl-sys@0.9.118: In file included from /usr/include/openssl/opensslv.h:126,
warning: openssl-sys@0.9.118:                  from build/expando.c:1:
warning: openssl-sys@0.9.118: /usr/include/openssl/macros.h:14:10: fatal error: openssl/opensslconf.h: No such file or directory
warning: openssl-sys@0.9.118:    14 | #include <openssl/opensslconf.h>
warning: openssl-sys@0.9.118:       |          ^~~~~~~~~~~~~~~~~~~~~~~
warning: openssl-sys@0.9.118: compilation terminated.
error: failed to run custom build command for `openssl-sys v0.9.118`
  cargo:warning=/usr/include/openssl/macros.h:14:10: fatal error: openssl/opensslconf.h: No such file or directory
  Header expansion error:
  Failed to find OpenSSL development headers.
"#;

    /// `cargo zigbuild --target x86_64-unknown-linux-gnu.2.17` of the example with no include
    /// dirs: zig (clang) words it differently.
    const HEADER_ZIG: &str = r#"warning: openssl-sys@0.9.118: /usr/include/openssl/macros.h:14:10: fatal error: 'openssl/opensslconf.h' file not found
warning: openssl-sys@0.9.118:    14 | #include <openssl/opensslconf.h>
warning: openssl-sys@0.9.118: 1 error generated.
error: failed to run custom build command for `openssl-sys v0.9.118`
"#;

    /// OPENSSL_LIB_DIR set to an empty dir, natively.
    const EMPTY_LIBDIR: &str = r#"error: failed to run custom build command for `openssl-sys v0.9.118`
  thread 'main' (13559) panicked at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/openssl-sys-0.9.118/build/main.rs:542:13:
  OpenSSL libdir at `["/work/fixtures/sysextra/hintlogs/empty/lib"]` does not contain the required files to either statically or dynamically link OpenSSL
"#;

    /// A crate whose build script says `cargo:rustc-link-lib=pq`, for aarch64 gnu with the cross
    /// gcc and with cargo-zigbuild.
    const LPQ_GCC: &str = r#"   Compiling lpq v0.1.0 (/work/fixtures/sysextra/hintlogs/lpq)
error: linking with `aarch64-linux-gnu-gcc` failed: exit status: 1
  |
  = note: some arguments are omitted. use `--verbose` to show all linker arguments
  = note: /usr/lib/gcc-cross/aarch64-linux-gnu/12/../../../../aarch64-linux-gnu/bin/ld: cannot find -lpq: No such file or directory
          collect2: error: ld returned 1 exit status

error: could not compile `lpq` (bin "lpq") due to 1 previous error
"#;
    const LPQ_ZIG: &str = r#"   Compiling lpq v0.1.0 (/work/fixtures/sysextra/hintlogs/lpq)
error: linking with `/root/.cache/cargo-zigbuild/0.24.1/wrappers/b848/zigcc-aarch64-unknown-linux-gnu-6e31.sh` failed: exit status: 1
  = note: error: unable to find dynamic system library "pq" using strategy no_fallback. searched paths:
            /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/aarch64-unknown-linux-gnu/lib/libpq.so

error: could not compile `lpq` (bin "lpq") due to 1 previous error
"#;

    /// The example linked natively with cargo-zigbuild pinned to glibc 2.17 against this
    /// machine's (bookworm's) libssl.
    const GLIBC_PIN: &str = r#"error: linking with `/root/.cache/cargo-zigbuild/0.24.1/wrappers/b848/zigcc-x86_64-unknown-linux-gnu.2.17-b9e2.sh` failed: exit status: 1
  = note: ld.lld: error: undefined reference: stat@GLIBC_2.33
          >>> referenced by /usr/lib/x86_64-linux-gnu/libssl.so (disallowed by --no-allow-shlib-undefined)

          ld.lld: error: undefined reference: dlerror@GLIBC_2.34
          >>> referenced by /usr/lib/x86_64-linux-gnu/libcrypto.so (disallowed by --no-allow-shlib-undefined)

          ld.lld: error: undefined reference: fstat@GLIBC_2.33
          >>> referenced by /usr/lib/x86_64-linux-gnu/libssl.so (disallowed by --no-allow-shlib-undefined)

error: could not compile `tlsapp` (bin "tlsapp") due to 1 previous error
"#;

    fn texts(h: &[Hint]) -> Vec<String> {
        h.iter().map(Hint::to_string).collect()
    }

    #[test]
    fn pkg_config_for_cross_names_libssl_dev_and_the_key() {
        let h = hints(PKG_CONFIG_CROSS, Some(&target(Libc::Gnu, &[])));
        assert_eq!(
            texts(&h),
            [
                "hint: openssl-sys could not find OpenSSL (tlsapp → openssl → openssl-sys): add libssl-dev to build.packages in pipeline.yaml (and libssl3 to image.packages, to run it)"
            ]
        );
        // Without a diagnosis the crate is named by itself.
        let h = hints(PKG_CONFIG_CROSS, None);
        assert!(h[0].seen.contains("(openssl-sys)"), "{h:?}");
        assert!(h[0].fix.starts_with("add libssl-dev to build.packages"));
        // Already in build.packages: the hint says so instead of repeating the key.
        let h = hints(PKG_CONFIG_CROSS, Some(&target(Libc::Gnu, &["libssl-dev"])));
        assert!(
            h[0].fix.contains("libssl-dev is in build.packages"),
            "{h:?}"
        );
        // musl: shipit's static OpenSSL did not cover it; the crate's feature does.
        let h = hints(PKG_CONFIG_CROSS, Some(&target(Libc::Musl, &[])));
        assert!(
            h[0].fix.contains("`vendored` feature of openssl-sys"),
            "{h:?}"
        );
    }

    #[test]
    fn a_missing_header_names_its_package_in_gcc_and_clang_wording() {
        for log in [HEADER_GCC, HEADER_ZIG] {
            let h = hints(log, Some(&target(Libc::Gnu, &[])));
            assert_eq!(h.len(), 1, "{h:?}");
            assert_eq!(
                h[0].to_string(),
                "hint: the C compiler cannot find openssl/opensslconf.h: add libssl-dev to build.packages in pipeline.yaml (and libssl3 to image.packages, to run it)"
            );
        }
        let h = hints(
            "src/db.c:1:10: fatal error: sqlite3.h: No such file or directory\nfoo.c:2:10: fatal error: 'zlib.h' file not found\nx.c:1:10: fatal error: libpq-fe.h: No such file or directory\ny.c:1:10: fatal error: openssl/ssl.h: No such file or directory\n",
            None,
        );
        assert_eq!(
            h.iter().map(|h| h.fix.as_str()).collect::<Vec<_>>(),
            [
                "add libsqlite3-dev to build.packages in pipeline.yaml (and libsqlite3-0 to image.packages, to run it)",
                "add zlib1g-dev to build.packages in pipeline.yaml (and zlib1g to image.packages, to run it)",
                "add libpq-dev to build.packages in pipeline.yaml (and libpq5 to image.packages, to run it)",
                "add libssl-dev to build.packages in pipeline.yaml (and libssl3 to image.packages, to run it)",
            ]
        );
    }

    #[test]
    fn an_empty_openssl_libdir_is_the_missing_openssl() {
        let h = hints(EMPTY_LIBDIR, None);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(
            h[0].fix.starts_with("add libssl-dev to build.packages"),
            "{h:?}"
        );
    }

    #[test]
    fn cannot_find_lx_maps_the_library_to_its_dev_package() {
        for log in [LPQ_GCC, LPQ_ZIG] {
            let h = hints(log, None);
            assert_eq!(
                texts(&h),
                [
                    "hint: the linker cannot find -lpq: add libpq-dev to build.packages in pipeline.yaml (and libpq5 to image.packages, to run it)"
                ]
            );
        }
        for (name, deb) in [
            ("ssl", "libssl-dev"),
            ("crypto", "libssl-dev"),
            ("sqlite3", "libsqlite3-dev"),
            ("z", "zlib1g-dev"),
            ("zstd", "libzstd-dev"),
        ] {
            let h = hints(
                &format!("ld: cannot find -l{name}: No such file or directory"),
                None,
            );
            assert!(
                h[0].fix
                    .starts_with(&format!("add {deb} to build.packages")),
                "{h:?}"
            );
        }
        // lld's wording, and a library shipit cannot map: it says which file is missing.
        let h = hints("ld.lld: error: unable to find library -lfrobnicate", None);
        assert_eq!(
            h[0].fix,
            "no libfrobnicate.so or libfrobnicate.a for this target: add the Debian -dev package that ships it to build.packages in pipeline.yaml"
        );
        // On musl a Debian package is no answer.
        let h = hints(LPQ_GCC, Some(&target(Libc::Musl, &[])));
        assert!(
            h[0].fix.contains("enable the `bundled` feature of pq-sys"),
            "{h:?}"
        );
        // Each library once.
        assert_eq!(hints(&format!("{LPQ_GCC}{LPQ_GCC}"), None).len(), 1);
    }

    #[test]
    fn glibc_symbols_newer_than_the_pin_name_the_version_and_build_glibc() {
        let h = hints(GLIBC_PIN, None);
        assert_eq!(
            texts(&h),
            [
                "hint: the linked libraries need GLIBC_2.34: the sysroot's libraries are newer than the glibc floor the build links against: set build.glibc to \"2.34\" in pipeline.yaml, or take the sysroot from an older Debian suite"
            ]
        );
        // GNU ld's wording.
        let h = hints(
            "/usr/bin/ld: /s/usr/lib/aarch64-linux-gnu/libssl.so: undefined reference to `dlopen@GLIBC_2.34'",
            None,
        );
        assert!(h[0].seen.contains("GLIBC_2.34"), "{h:?}");
        let h = hints(
            "/usr/bin/ld: /s/usr/lib/x86_64-linux-gnu/libfoo.a(a.o): in function `parse':\na.c:(.text+0x1d): undefined reference to `__isoc23_strtol'",
            None,
        );
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].seen, "undefined reference to __isoc23_strtol");
        assert!(h[0].fix.contains("build.glibc"), "{h:?}");
    }

    #[test]
    fn a_log_without_known_patterns_gives_no_hint() {
        assert!(hints("error[E0425]: cannot find value `x` in this scope\n", None).is_empty());
        assert!(hints("", None).is_empty());
    }
}
