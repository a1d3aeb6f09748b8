//! The pure names of the Debian engine — suites, the base packages, package-name syntax, which
//! platforms have a Debian architecture — with no dependency on the rest of `deb` (or on
//! `crate::error`), so the config schema can check them without a module cycle.

use crate::platform::Platform;

/// The archive component shipit reads.
pub const COMPONENT: &str = "main";

/// The packages every `deb:SUITE` base holds: what a dynamically linked Rust binary needs.
pub const BASE_PACKAGES: [&str; 2] = ["libc6", "libgcc-s1"];

/// The suites shipit accepts in `deb:SUITE`.
pub const SUITES: [&str; 3] = ["bullseye", "bookworm", "trixie"];

/// Debian policy's package name: lowercase letters, digits, `+ - .`, at least two characters,
/// starting with a letter or digit.
pub fn valid_name(n: &str) -> bool {
    n.len() >= 2
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

/// Why a platform has no Debian architecture (`None`: it has one, `Platform::debian_arch`).
pub fn no_debian_arch(p: &Platform) -> Option<&'static str> {
    match p.name {
        "linux/amd64" | "linux/arm64" | "linux/arm/v7" | "linux/riscv64" => None,
        "linux/arm/v6" => Some(
            "Debian's armhf is built for ARMv7 (Raspbian, not Debian, targets ARMv6); use a \
             musl variant or another base for linux/arm/v6",
        ),
        _ => Some("Debian has no port for it"),
    }
}
