//! Building OpenSSL from the `openssl-src` crate's sources for a musl target, as commands (data):
//! the tiny manifest whose `cargo metadata` fetches the sources, `perl ./Configure` with the
//! arguments `openssl-src`'s build script uses for that target (static, no engines, no async on
//! musl), and `make`. The C compiler is the target's own: `musl-gcc` for x86_64 when installed,
//! otherwise `zig cc -target <arch>-linux-musl…` as cargo-zigbuild calls it.

use crate::exec::Cmd;
use std::path::Path;

/// The `Cargo.toml` of a package that depends on `openssl-src` (`req` as openssl-sys asks it).
pub fn source_manifest(req: &str) -> String {
    format!(
        "[package]\nname = \"shipit-openssl-src\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[lib]\npath = \"lib.rs\"\n\n[dependencies]\nopenssl-src = \"{req}\"\n"
    )
}

/// `cargo metadata` of that manifest: resolves and downloads `openssl-src` into the registry.
pub fn fetch_sources(manifest: &Path) -> Cmd {
    Cmd::new("cargo", "fetch the openssl-src sources").args([
        "metadata",
        "--format-version",
        "1",
        "--manifest-path",
        &manifest.display().to_string(),
    ])
}

/// OpenSSL's name for the target (`./Configure <os>`), as `openssl-src` maps it.
pub fn configure_target(target: &str) -> Option<&'static str> {
    Some(match target {
        "x86_64-unknown-linux-musl" => "linux-x86_64",
        "aarch64-unknown-linux-musl" => "linux-aarch64",
        "armv7-unknown-linux-musleabihf" | "arm-unknown-linux-musleabihf" => "linux-armv4",
        "riscv64gc-unknown-linux-musl" => "linux64-riscv64",
        _ => return None,
    })
}

/// The C compiler, archiver and ranlib for `target`: (`CC`, `AR`, `RANLIB`).
pub fn compiler(target: &str, musl_gcc: bool) -> Option<(String, String, String)> {
    let zig = |t: &str| {
        Some((
            format!("zig cc -target {t}"),
            "zig ar".to_string(),
            "zig ranlib".to_string(),
        ))
    };
    match target {
        "x86_64-unknown-linux-musl" if musl_gcc => {
            Some(("musl-gcc".into(), "ar".into(), "ranlib".into()))
        }
        "x86_64-unknown-linux-musl" => zig("x86_64-linux-musl"),
        "aarch64-unknown-linux-musl" => zig("aarch64-linux-musl"),
        // linux/arm/v7 as Rust's armv7 musl target: ARMv7-A, Thumb-2, VFPv3-D16, no NEON (gcc's
        // `-march=armv7-a -mfpu=vfpv3-d16`; without `-d32` LLVM's vfp3d16 still says VFPv3).
        "armv7-unknown-linux-musleabihf" => {
            zig("arm-linux-musleabihf -mcpu=generic+v7a+vfp3d16-neon-d32")
        }
        // linux/arm/v6, the Pi Zero/1's ARM1176JZF-S: ARMv6, Thumb-1, VFPv2 (gcc's
        // `-march=armv6 -mfpu=vfp -mfloat-abi=hard`), so no ARMv7 code reaches the v6 image.
        "arm-unknown-linux-musleabihf" => zig("arm-linux-musleabihf -mcpu=arm1176jzf_s"),
        "riscv64gc-unknown-linux-musl" => zig("riscv64-linux-musl"),
        _ => None,
    }
}

/// A C compiler for `target` as one program, for the `cc` crate in build scripts (`openssl-sys`
/// preprocesses OpenSSL's headers with the target's compiler): `zig cc -target …` without the
/// `--target=<rust triple>` that `cc` adds for clang-like compilers, which zig does not take.
/// `None` where `cc` finds a compiler itself (x86_64 musl: `musl-gcc`).
pub fn cc_wrapper_script(target: &str, musl_gcc: bool) -> Option<String> {
    let (cc, _, _) = compiler(target, musl_gcc)?;
    if !cc.starts_with("zig ") {
        return None;
    }
    Some(format!(
        "#!/bin/sh\n# written by shipit: {target}'s C compiler for build scripts\nfor a do shift; case $a in --target=*) ;; *) set -- \"$@\" \"$a\" ;; esac; done\nexec {cc} \"$@\"\n"
    ))
}

/// `perl ./Configure` in the copied source tree `src`, installing into `prefix`.
pub fn configure(src: &Path, prefix: &Path, target: &str, musl_gcc: bool) -> Option<Cmd> {
    let os = configure_target(target)?;
    let (cc, ar, ranlib) = compiler(target, musl_gcc)?;
    Some(
        Cmd::new("perl", format!("configure OpenSSL for {target}"))
            .arg("./Configure")
            .arg(format!("--prefix={}", prefix.display()))
            .args([
                // Where the library looks for its config and certificates at run time (the
                // default openssl-src uses); openssl-probe finds the CA roots anyway.
                "--openssldir=/usr/local/ssl",
                "no-shared",
                "no-module",
                "no-tests",
                "no-comp",
                "no-zlib",
                "no-zlib-dynamic",
                "--libdir=lib",
                "no-legacy",
                "no-ssl3",
                "no-md2",
                "no-rc5",
                "no-weak-ssl-ciphers",
                "no-camellia",
                "no-idea",
                "no-seed",
                "no-engine",
                "no-async",
                os,
                "-DOPENSSL_NO_SECURE_MEMORY",
                "-O2",
                "-fPIC",
            ])
            .env("CC", cc)
            .env("AR", ar)
            .env("RANLIB", ranlib)
            .cwd(src),
    )
}

/// What a cached build was made with: the configure command with placeholder paths (its
/// compiler, flags and options). A cached OpenSSL whose recipe differs is built again.
pub fn recipe(target: &str, musl_gcc: bool) -> Option<String> {
    configure(Path::new("SRC"), Path::new("PREFIX"), target, musl_gcc).map(|c| c.display() + "\n")
}

/// `make TARGETS` in the configured tree.
pub fn make(src: &Path, target: &str, what: &[&str], jobs: usize) -> Cmd {
    Cmd::new(
        "make",
        format!("build OpenSSL for {target}: make {}", what.join(" ")),
    )
    .arg(format!("-j{}", jobs.max(1)))
    .args(what.iter().copied())
    .cwd(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_follows_openssl_src_for_musl() {
        let c = configure(
            Path::new("/b/src"),
            Path::new("/c/x"),
            "aarch64-unknown-linux-musl",
            true,
        )
        .unwrap();
        assert_eq!(c.program, "perl");
        assert_eq!(c.args[0], "./Configure");
        assert_eq!(c.args[1], "--prefix=/c/x");
        for a in ["no-shared", "no-engine", "no-async", "linux-aarch64"] {
            assert!(c.args.iter().any(|x| x == a), "{a} in {:?}", c.args);
        }
        assert_eq!(c.env["CC"], "zig cc -target aarch64-linux-musl");
        assert_eq!(c.cwd.as_deref(), Some(Path::new("/b/src")));
        let x = configure(
            Path::new("/b"),
            Path::new("/c"),
            "x86_64-unknown-linux-musl",
            true,
        )
        .unwrap();
        assert_eq!(x.env["CC"], "musl-gcc");
        let x = configure(
            Path::new("/b"),
            Path::new("/c"),
            "x86_64-unknown-linux-musl",
            false,
        )
        .unwrap();
        assert_eq!(x.env["CC"], "zig cc -target x86_64-linux-musl");
        assert!(
            configure(
                Path::new("/b"),
                Path::new("/c"),
                "x86_64-unknown-linux-gnu",
                true
            )
            .is_none()
        );
        let w = cc_wrapper_script("aarch64-unknown-linux-musl", true).unwrap();
        assert!(
            w.contains("exec zig cc -target aarch64-linux-musl \"$@\""),
            "{w}"
        );
        assert!(w.contains("--target=*) ;;"), "{w}");
        assert_eq!(cc_wrapper_script("x86_64-unknown-linux-musl", true), None);
        assert!(source_manifest("^300.2").contains("openssl-src = \"^300.2\""));
    }

    #[test]
    fn arm_musl_targets_get_their_devices_own_flags() {
        for (target, cc) in [
            (
                "armv7-unknown-linux-musleabihf",
                "zig cc -target arm-linux-musleabihf -mcpu=generic+v7a+vfp3d16-neon-d32",
            ),
            (
                "arm-unknown-linux-musleabihf",
                "zig cc -target arm-linux-musleabihf -mcpu=arm1176jzf_s",
            ),
        ] {
            let c = configure(Path::new("/b"), Path::new("/c"), target, true).unwrap();
            assert_eq!(c.env["CC"], cc);
            assert!(c.args.iter().any(|a| a == "linux-armv4"), "{:?}", c.args);
            let w = cc_wrapper_script(target, true).unwrap();
            assert!(w.contains(&format!("exec {cc} \"$@\"")), "{w}");
        }
    }

    #[test]
    fn the_recipe_is_the_configure_command_with_placeholder_paths() {
        let r = recipe("aarch64-unknown-linux-musl", false).unwrap();
        assert_eq!(
            r,
            "cd SRC && AR='zig ar' CC='zig cc -target aarch64-linux-musl' RANLIB='zig ranlib' perl ./Configure '--prefix=PREFIX' '--openssldir=/usr/local/ssl' no-shared no-module no-tests no-comp no-zlib no-zlib-dynamic '--libdir=lib' no-legacy no-ssl3 no-md2 no-rc5 no-weak-ssl-ciphers no-camellia no-idea no-seed no-engine no-async linux-aarch64 -DOPENSSL_NO_SECURE_MEMORY -O2 -fPIC\n"
        );
        assert_ne!(
            recipe("armv7-unknown-linux-musleabihf", false),
            recipe("arm-unknown-linux-musleabihf", false)
        );
        assert_eq!(recipe("x86_64-unknown-linux-gnu", false), None);
    }
}
