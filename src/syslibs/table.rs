//! What shipit knows about C libraries, as data: the well-known `-sys` crates (the `links` value,
//! the pkg-config module, the Debian packages to build and to run, the features that make the
//! crate build the library itself, and how a musl target gets it), which Debian package ships
//! a shared library (`libssl.so.3` → `libssl3`, for verification's hints), and which `-dev`
//! package has a link name or a C header (`-lpq` → `libpq-dev`, `zlib.h` → `zlib1g-dev`, for the
//! hints of a failed build).

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

/// Link names (`-lX`) and the Debian `-dev` package with the `libX.so` link and `libX.a`, for the
/// hints of a failed build (`cannot find -lpq` → `libpq-dev`).
const LINK_PACKAGES: &[(&str, &str)] = &[
    ("ssl", "libssl-dev"),
    ("crypto", "libssl-dev"),
    ("sqlite3", "libsqlite3-dev"),
    ("pq", "libpq-dev"),
    ("z", "zlib1g-dev"),
    ("zstd", "libzstd-dev"),
    ("lzma", "liblzma-dev"),
    ("bz2", "libbz2-dev"),
    ("curl", "libcurl4-openssl-dev"),
    ("systemd", "libsystemd-dev"),
    ("udev", "libudev-dev"),
    ("dbus-1", "libdbus-1-dev"),
    ("gmp", "libgmp-dev"),
    ("ffi", "libffi-dev"),
    ("seccomp", "libseccomp-dev"),
    ("cap", "libcap-dev"),
    ("mysqlclient", "default-libmysqlclient-dev"),
    ("xml2", "libxml2-dev"),
    ("sodium", "libsodium-dev"),
    ("git2", "libgit2-dev"),
    ("ssh2", "libssh2-1-dev"),
    ("usb-1.0", "libusb-1.0-0-dev"),
    ("asound", "libasound2-dev"),
    ("fontconfig", "libfontconfig-dev"),
    ("freetype", "libfreetype-dev"),
    ("expat", "libexpat1-dev"),
    ("uuid", "uuid-dev"),
    ("pcre2-8", "libpcre2-dev"),
];

/// The Debian `-dev` package that lets the linker find `-l<name>`.
pub fn dev_package_for_link_name(name: &str) -> Option<&'static str> {
    LINK_PACKAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, pkg)| *pkg)
}

/// C headers (a file, or a directory of them ending in `/`) and the Debian `-dev` package that
/// ships them.
const HEADER_PACKAGES: &[(&str, &str)] = &[
    ("openssl/", "libssl-dev"),
    ("sqlite3.h", "libsqlite3-dev"),
    ("sqlite3ext.h", "libsqlite3-dev"),
    ("zlib.h", "zlib1g-dev"),
    ("zconf.h", "zlib1g-dev"),
    ("libpq-fe.h", "libpq-dev"),
    ("postgresql/", "libpq-dev"),
    ("pg_config.h", "libpq-dev"),
    ("zstd.h", "libzstd-dev"),
    ("lzma.h", "liblzma-dev"),
    ("bzlib.h", "libbz2-dev"),
    ("curl/", "libcurl4-openssl-dev"),
    ("systemd/", "libsystemd-dev"),
    ("libudev.h", "libudev-dev"),
    ("dbus/", "libdbus-1-dev"),
    ("gmp.h", "libgmp-dev"),
    ("ffi.h", "libffi-dev"),
    ("seccomp.h", "libseccomp-dev"),
    ("sys/capability.h", "libcap-dev"),
    ("mysql.h", "default-libmysqlclient-dev"),
    ("mysql/", "default-libmysqlclient-dev"),
    ("libxml/", "libxml2-dev"),
    ("sodium.h", "libsodium-dev"),
    ("git2.h", "libgit2-dev"),
    ("libssh2.h", "libssh2-1-dev"),
    ("libusb-1.0/", "libusb-1.0-0-dev"),
    ("alsa/", "libasound2-dev"),
    ("fontconfig/", "libfontconfig-dev"),
    ("ft2build.h", "libfreetype-dev"),
    ("expat.h", "libexpat1-dev"),
    ("uuid/", "uuid-dev"),
    ("pcre2.h", "libpcre2-dev"),
];

/// The Debian `-dev` package that ships the C header `header` (`openssl/ssl.h` → `libssl-dev`).
pub fn dev_package_for_header(header: &str) -> Option<&'static str> {
    HEADER_PACKAGES
        .iter()
        .find(|(h, _)| match h.strip_suffix('/') {
            Some(dir) => header.strip_prefix(dir).is_some_and(|r| r.starts_with('/')),
            None => *h == header,
        })
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

    #[test]
    fn link_names_and_headers_map_to_the_dev_package() {
        assert_eq!(dev_package_for_link_name("ssl"), Some("libssl-dev"));
        assert_eq!(dev_package_for_link_name("crypto"), Some("libssl-dev"));
        assert_eq!(dev_package_for_link_name("pq"), Some("libpq-dev"));
        assert_eq!(dev_package_for_link_name("frob"), None);
        assert_eq!(dev_package_for_header("openssl/ssl.h"), Some("libssl-dev"));
        assert_eq!(dev_package_for_header("sqlite3.h"), Some("libsqlite3-dev"));
        assert_eq!(dev_package_for_header("zlib.h"), Some("zlib1g-dev"));
        assert_eq!(dev_package_for_header("libpq-fe.h"), Some("libpq-dev"));
        assert_eq!(
            dev_package_for_header("postgresql/libpq-fe.h"),
            Some("libpq-dev")
        );
        assert_eq!(dev_package_for_header("opensslv.h"), None);
        assert_eq!(dev_package_for_header("openssl.h"), None);
        // The well-known crates' links values and build packages agree with the link table.
        for k in KNOWN.iter().filter(|k| k.krate != "openssl-sys") {
            assert_eq!(
                dev_package_for_link_name(k.links),
                Some(k.build_deb),
                "{}",
                k.krate
            );
        }
    }
}
