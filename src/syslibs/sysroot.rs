//! The build environment a Debian sysroot implies, as a pure function of the sysroot's path and
//! the target: pkg-config for cross (`PKG_CONFIG_SYSROOT_DIR`, `PKG_CONFIG_LIBDIR` = the sysroot's
//! `usr/lib/<multiarch>/pkgconfig:usr/share/pkgconfig`, `PKG_CONFIG_ALLOW_CROSS=1`), the variables
//! `openssl-sys` reads (`OPENSSL_LIB_DIR`, `OPENSSL_INCLUDE_DIR`, plain and target-prefixed), the C
//! include dirs for `cc` (`CFLAGS_<target>`, with `-idirafter` so the compiler's own libc headers
//! come first), and the linker's library paths for rustc (`CARGO_TARGET_<T>_RUSTFLAGS`): with a
//! cross gcc also `--sysroot` and `-rpath-link`, with cargo-zigbuild `-L native=` only (zig links
//! against its own glibc stubs). The sysroot itself is assembled by `deb` (libc6-dev plus
//! `build.packages`).

use crate::config::Backend;
use crate::platform::Platform;
use std::path::Path;

/// One variable for the build; `append` ones are added to a value the command already has
/// (separated by a space), the others replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub value: String,
    pub append: bool,
}

impl Var {
    fn set(name: impl Into<String>, value: impl Into<String>) -> Var {
        Var {
            name: name.into(),
            value: value.into(),
            append: false,
        }
    }
    fn append(name: impl Into<String>, value: impl Into<String>) -> Var {
        Var {
            name: name.into(),
            value: value.into(),
            append: true,
        }
    }
}

/// `X86_64_UNKNOWN_LINUX_MUSL`: a target as the prefix of `openssl-sys`'s per-target variables.
pub fn target_prefix(target: &str) -> String {
    target.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// The environment of a build of `target` (for `platform`, by `backend`) against `sysroot`.
pub fn env(sysroot: &Path, target: &str, platform: &Platform, backend: Backend) -> Vec<Var> {
    // `/` (the host's own files, for a native build) gives `/usr/lib/…`, not `//usr/lib/…`.
    let s = sysroot
        .display()
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let root = if s.is_empty() {
        "/".to_string()
    } else {
        s.clone()
    };
    let ma = platform.gcc_triple;
    let lib = format!("{s}/usr/lib/{ma}");
    let include = format!("{s}/usr/include");
    let prefix = target_prefix(target);
    let mut vars = vec![
        Var::set("PKG_CONFIG_SYSROOT_DIR", &root),
        Var::set(
            "PKG_CONFIG_LIBDIR",
            format!("{lib}/pkgconfig:{s}/usr/share/pkgconfig"),
        ),
        Var::set("PKG_CONFIG_ALLOW_CROSS", "1"),
        Var::set("OPENSSL_LIB_DIR", &lib),
        Var::set("OPENSSL_INCLUDE_DIR", &include),
        Var::set(format!("{prefix}_OPENSSL_LIB_DIR"), &lib),
        Var::set(format!("{prefix}_OPENSSL_INCLUDE_DIR"), &include),
        Var::append(
            format!("CFLAGS_{}", target.replace('-', "_")),
            format!("-idirafter {include}/{ma} -idirafter {include}"),
        ),
    ];
    let rustflags = crate::tools::target_env(target, "RUSTFLAGS");
    let search = format!("-L native={lib} -L native={s}/lib/{ma}");
    let link = match backend {
        Backend::Zigbuild => search,
        _ => format!(
            "-C link-arg=--sysroot={root} {search} -C link-arg=-Wl,-rpath-link,{lib} -C link-arg=-Wl,-rpath-link,{s}/lib/{ma}"
        ),
    };
    vars.push(Var::append(rustflags, link));
    vars
}

/// `vars` added to a command's environment (appending where a variable says so).
pub fn apply(mut cmd: crate::exec::Cmd, vars: &[Var]) -> crate::exec::Cmd {
    for v in vars {
        let value = match (v.append, cmd.env.get(&v.name)) {
            (true, Some(old)) if !old.is_empty() => format!("{old} {}", v.value),
            _ => v.value.clone(),
        };
        cmd = cmd.env(&v.name, value);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    fn get<'a>(vars: &'a [Var], name: &str) -> &'a str {
        vars.iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
            .unwrap_or_else(|| panic!("no {name} in {vars:?}"))
    }

    #[test]
    fn arm64_with_cargo_and_a_cross_gcc() {
        let p = Platform::parse("linux/arm64").unwrap();
        let t = "aarch64-unknown-linux-gnu";
        let vars = env(Path::new("/s"), t, p, Backend::Cargo);
        assert_eq!(get(&vars, "PKG_CONFIG_SYSROOT_DIR"), "/s");
        assert_eq!(
            get(&vars, "PKG_CONFIG_LIBDIR"),
            "/s/usr/lib/aarch64-linux-gnu/pkgconfig:/s/usr/share/pkgconfig"
        );
        assert_eq!(get(&vars, "PKG_CONFIG_ALLOW_CROSS"), "1");
        assert_eq!(
            get(&vars, "OPENSSL_LIB_DIR"),
            "/s/usr/lib/aarch64-linux-gnu"
        );
        assert_eq!(get(&vars, "OPENSSL_INCLUDE_DIR"), "/s/usr/include");
        assert_eq!(
            get(&vars, "AARCH64_UNKNOWN_LINUX_GNU_OPENSSL_LIB_DIR"),
            "/s/usr/lib/aarch64-linux-gnu"
        );
        assert_eq!(
            get(&vars, "CFLAGS_aarch64_unknown_linux_gnu"),
            "-idirafter /s/usr/include/aarch64-linux-gnu -idirafter /s/usr/include"
        );
        assert_eq!(
            get(&vars, "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS"),
            "-C link-arg=--sysroot=/s -L native=/s/usr/lib/aarch64-linux-gnu -L native=/s/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath-link,/s/usr/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath-link,/s/lib/aarch64-linux-gnu"
        );
    }

    #[test]
    fn the_hosts_own_files_are_the_sysroot_slash() {
        let p = Platform::parse("linux/amd64").unwrap();
        let vars = env(
            Path::new("/"),
            "x86_64-unknown-linux-gnu",
            p,
            Backend::Zigbuild,
        );
        assert_eq!(get(&vars, "PKG_CONFIG_SYSROOT_DIR"), "/");
        assert_eq!(get(&vars, "OPENSSL_LIB_DIR"), "/usr/lib/x86_64-linux-gnu");
        assert_eq!(
            get(&vars, "CFLAGS_x86_64_unknown_linux_gnu"),
            "-idirafter /usr/include/x86_64-linux-gnu -idirafter /usr/include"
        );
    }

    #[test]
    fn armv7_with_zigbuild_gets_library_paths_only_and_keeps_earlier_flags() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        let t = "armv7-unknown-linux-gnueabihf";
        let vars = env(Path::new("/c/sr"), t, p, Backend::Zigbuild);
        let flags = "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS";
        assert_eq!(
            get(&vars, flags),
            "-L native=/c/sr/usr/lib/arm-linux-gnueabihf -L native=/c/sr/lib/arm-linux-gnueabihf"
        );
        assert_eq!(
            get(&vars, "PKG_CONFIG_LIBDIR"),
            "/c/sr/usr/lib/arm-linux-gnueabihf/pkgconfig:/c/sr/usr/share/pkgconfig"
        );
        let cmd = crate::exec::Cmd::new("cargo", "t").env(flags, "-C target-cpu=cortex-a7");
        let cmd = apply(cmd, &vars);
        assert_eq!(
            cmd.env[flags],
            "-C target-cpu=cortex-a7 -L native=/c/sr/usr/lib/arm-linux-gnueabihf -L native=/c/sr/lib/arm-linux-gnueabihf"
        );
        assert_eq!(cmd.env["PKG_CONFIG_ALLOW_CROSS"], "1");
    }
}
