//! What shipit knows about C libraries, as data: the well-known `-sys` crates (the `links` value,
//! the pkg-config module, the Debian packages to build and to run, the features that make the
//! crate build the library itself, and how a musl target gets it), and which Debian package ships
//! a shared library (`libssl.so.3` → `libssl3`), for the hints of the build and of verification.

/// How a musl target (Debian has no musl-built C libraries) gets a well-known library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuslWay {
    /// shipit builds it statically for the target and points the build at it (OpenSSL).
    ShipitStatic,
    /// The crate builds it itself (its build script compiles bundled sources when it must).
    CrateBuilds,
    /// Only the crate's own feature gives musl the library: the user must enable it.
    NeedsFeature(&'static str),
}

/// One well-known `-sys` crate.
#[derive(Debug, Clone, Copy)]
pub struct KnownSys {
    pub krate: &'static str,
    /// Its `links` key.
    pub links: &'static str,
    /// The pkg-config module its build script asks for.
    pub pkg_config: &'static str,
    /// The Debian package with headers and the `.so` link, for the build (`libssl-dev`).
    pub build_deb: &'static str,
    /// The Debian package with the shared library, for the image (`libssl3`).
    pub runtime_deb: &'static str,
    /// Features with which the crate compiles the library itself and links it statically.
    pub self_build_features: &'static [&'static str],
    /// Whether, on gnu, the crate falls back to its bundled sources when the system library is
    /// not found (so a missing `-dev` package is not an error).
    pub gnu_fallback: bool,
    pub musl: MuslWay,
}

pub const KNOWN: &[KnownSys] = &[
    KnownSys {
        krate: "openssl-sys",
        links: "openssl",
        pkg_config: "openssl",
        build_deb: "libssl-dev",
        runtime_deb: "libssl3",
        self_build_features: &["vendored"],
        gnu_fallback: false,
        musl: MuslWay::ShipitStatic,
    },
    KnownSys {
        krate: "libsqlite3-sys",
        links: "sqlite3",
        pkg_config: "sqlite3",
        build_deb: "libsqlite3-dev",
        runtime_deb: "libsqlite3-0",
        self_build_features: &[
            "bundled",
            "bundled-sqlcipher",
            "bundled-sqlcipher-vendored-openssl",
            "bundled-windows",
        ],
        gnu_fallback: false,
        musl: MuslWay::NeedsFeature("bundled"),
    },
    KnownSys {
        krate: "pq-sys",
        links: "pq",
        pkg_config: "libpq",
        build_deb: "libpq-dev",
        runtime_deb: "libpq5",
        self_build_features: &["bundled"],
        gnu_fallback: false,
        musl: MuslWay::NeedsFeature("bundled"),
    },
    KnownSys {
        krate: "libz-sys",
        links: "z",
        pkg_config: "zlib",
        build_deb: "zlib1g-dev",
        runtime_deb: "zlib1g",
        self_build_features: &["static", "zlib-ng"],
        gnu_fallback: true,
        musl: MuslWay::CrateBuilds,
    },
];

/// The well-known crate of this name, if it is one.
pub fn known(krate: &str) -> Option<&'static KnownSys> {
    KNOWN.iter().find(|k| k.krate == krate)
}

/// Shared libraries (DT_NEEDED names) and the Debian package that ships each.
const LIBRARY_PACKAGES: &[(&str, &str)] = &[
    ("libssl.so.3", "libssl3"),
    ("libcrypto.so.3", "libssl3"),
    ("libssl.so.1.1", "libssl1.1"),
    ("libcrypto.so.1.1", "libssl1.1"),
    ("libsqlite3.so.0", "libsqlite3-0"),
    ("libpq.so.5", "libpq5"),
    ("libz.so.1", "zlib1g"),
    ("libstdc++.so.6", "libstdc++6"),
    ("libgcc_s.so.1", "libgcc-s1"),
    ("libc.so.6", "libc6"),
    ("libm.so.6", "libc6"),
    ("libdl.so.2", "libc6"),
    ("libpthread.so.0", "libc6"),
    ("librt.so.1", "libc6"),
    ("libzstd.so.1", "libzstd1"),
    ("liblzma.so.5", "liblzma5"),
    ("libbz2.so.1.0", "libbz2-1.0"),
    ("libcurl.so.4", "libcurl4"),
    ("libsystemd.so.0", "libsystemd0"),
    ("libudev.so.1", "libudev1"),
    ("libdbus-1.so.3", "libdbus-1-3"),
    ("libgmp.so.10", "libgmp10"),
    ("libffi.so.8", "libffi8"),
    ("libseccomp.so.2", "libseccomp2"),
    ("libcap.so.2", "libcap2"),
];

/// The Debian package that ships the shared library `soname` (`libssl.so.3` → `libssl3`).
pub fn debian_package_for_library(soname: &str) -> Option<&'static str> {
    LIBRARY_PACKAGES
        .iter()
        .find(|(lib, _)| *lib == soname)
        .map(|(_, pkg)| *pkg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_map_to_the_debian_package_that_ships_them() {
        assert_eq!(debian_package_for_library("libssl.so.3"), Some("libssl3"));
        assert_eq!(
            debian_package_for_library("libcrypto.so.3"),
            Some("libssl3")
        );
        assert_eq!(
            debian_package_for_library("libsqlite3.so.0"),
            Some("libsqlite3-0")
        );
        assert_eq!(debian_package_for_library("libpq.so.5"), Some("libpq5"));
        assert_eq!(debian_package_for_library("libz.so.1"), Some("zlib1g"));
        assert_eq!(
            debian_package_for_library("libstdc++.so.6"),
            Some("libstdc++6")
        );
        assert_eq!(
            debian_package_for_library("libgcc_s.so.1"),
            Some("libgcc-s1")
        );
        assert_eq!(debian_package_for_library("libfoo.so.9"), None);
    }

    #[test]
    fn the_well_known_crates_are_listed_once_each() {
        for k in KNOWN {
            assert_eq!(KNOWN.iter().filter(|x| x.krate == k.krate).count(), 1);
            assert_eq!(known(k.krate).map(|x| x.links), Some(k.links));
        }
        assert!(known("ring").is_none());
    }
}
