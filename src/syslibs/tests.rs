//! Unit tests of the diagnosis over small `cargo metadata` documents.

use super::*;

/// tlsapp → openssl → openssl-sys (links openssl), tlsapp → rusqlite → libsqlite3-sys, and a
/// build-dependency with a `links` key that must not count.
fn graph(openssl_features: &str, sqlite_features: &str) -> String {
    format!(
        r#"{{"packages":[
        {{"id":"tlsapp 0.1.0","name":"tlsapp","version":"0.1.0","links":null}},
        {{"id":"openssl 0.10.82","name":"openssl","version":"0.10.82","links":null}},
        {{"id":"openssl-sys 0.9.118","name":"openssl-sys","version":"0.9.118","links":"openssl"}},
        {{"id":"rusqlite 0.37.0","name":"rusqlite","version":"0.37.0","links":null}},
        {{"id":"libsqlite3-sys 0.35.0","name":"libsqlite3-sys","version":"0.35.0","links":"sqlite3"}},
        {{"id":"ring 0.17.14","name":"ring","version":"0.17.14","links":"ring_core_0_17_14_"}},
        {{"id":"hostonly-sys 1.0.0","name":"hostonly-sys","version":"1.0.0","links":"hostonly"}}],
      "workspace_members":["tlsapp 0.1.0"],
      "resolve":{{"root":"tlsapp 0.1.0","nodes":[
        {{"id":"tlsapp 0.1.0","features":[],"deps":[
           {{"pkg":"openssl 0.10.82","dep_kinds":[{{"kind":null,"target":null}}]}},
           {{"pkg":"rusqlite 0.37.0","dep_kinds":[{{"kind":null,"target":null}}]}},
           {{"pkg":"ring 0.17.14","dep_kinds":[{{"kind":null,"target":null}}]}},
           {{"pkg":"hostonly-sys 1.0.0","dep_kinds":[{{"kind":"build","target":null}}]}}]}},
        {{"id":"openssl 0.10.82","features":["default"],"deps":[
           {{"pkg":"openssl-sys 0.9.118","dep_kinds":[{{"kind":null,"target":null}}]}}]}},
        {{"id":"openssl-sys 0.9.118","features":[{openssl_features}],"deps":[]}},
        {{"id":"rusqlite 0.37.0","features":[],"deps":[
           {{"pkg":"libsqlite3-sys 0.35.0","dep_kinds":[{{"kind":null,"target":null}}]}}]}},
        {{"id":"libsqlite3-sys 0.35.0","features":[{sqlite_features}],"deps":[]}},
        {{"id":"ring 0.17.14","features":[],"deps":[]}},
        {{"id":"hostonly-sys 1.0.0","features":[],"deps":[]}}]}},
      "target_directory":"/w/target","version":1}}"#
    )
}

fn find<'a>(libs: &'a [SysLib], krate: &str) -> &'a SysLib {
    libs.iter()
        .find(|l| l.krate == krate)
        .unwrap_or_else(|| panic!("no {krate} in {libs:?}"))
}

#[test]
fn gnu_without_the_dev_package_names_the_chain_and_the_key() {
    let libs = diagnose(&graph("", ""), "tlsapp", Libc::Gnu, &Provided::default()).unwrap();
    let names: Vec<&str> = libs.iter().map(|l| l.krate.as_str()).collect();
    assert_eq!(names, ["libsqlite3-sys", "openssl-sys", "ring"]);
    let ssl = find(&libs, "openssl-sys");
    assert_eq!(ssl.chain, ["tlsapp", "openssl", "openssl-sys"]);
    assert_eq!(ssl.chain_text(), "tlsapp → openssl → openssl-sys");
    assert_eq!(ssl.needs_build, ["libssl-dev"]);
    assert_eq!(ssl.needs_runtime, ["libssl3"]);
    assert_eq!(ssl.provided_by, None);
    assert_eq!(ssl.missing.as_deref(), Some("build.packages: [libssl-dev]"));
    let sqlite = find(&libs, "libsqlite3-sys");
    assert_eq!(sqlite.chain, ["tlsapp", "rusqlite", "libsqlite3-sys"]);
    assert_eq!(
        sqlite.missing.as_deref(),
        Some("build.packages: [libsqlite3-dev]")
    );
    // Not a crate shipit knows: named by its links value, not an error.
    let ring = find(&libs, "ring");
    assert_eq!(
        ring.provided_by,
        Some(Provider::Unknown {
            links: "ring_core_0_17_14_".into()
        })
    );
    assert!(ring.missing.is_none());

    let tl = [TargetLibs {
        platform: "linux/arm64".into(),
        libc: Libc::Gnu,
        target: "aarch64-unknown-linux-gnu".into(),
        syslibs: libs,
    }];
    let e = require_provided(&tl).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.message().contains(
            "linux/arm64 (gnu): tlsapp → openssl → openssl-sys needs libssl-dev to build: add `build.packages: [libssl-dev]`"
        ),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("nothing was compiled"),
        "{}",
        e.message()
    );
}

#[test]
fn build_packages_or_the_native_hosts_files_provide_it() {
    let sysroot = Provided {
        build_packages: vec!["libssl-dev".into(), "libsqlite3-dev".into()],
        ..Provided::default()
    };
    let libs = diagnose(&graph("", ""), "tlsapp", Libc::Gnu, &sysroot).unwrap();
    assert_eq!(
        find(&libs, "openssl-sys").provided_by,
        Some(Provider::DebSysroot {
            packages: vec!["libssl-dev".into()]
        })
    );
    assert_eq!(
        find(&libs, "libsqlite3-sys").needs_runtime,
        ["libsqlite3-0"]
    );
    assert!(
        require_provided(&[TargetLibs {
            platform: "linux/arm64".into(),
            libc: Libc::Gnu,
            target: "aarch64-unknown-linux-gnu".into(),
            syslibs: libs,
        }])
        .is_ok()
    );

    // The host's modules count only for the host's own target.
    let host = Provided {
        native: true,
        host_modules: ["openssl".to_string()].into(),
        ..Provided::default()
    };
    let libs = diagnose(&graph("", ""), "tlsapp", Libc::Gnu, &host).unwrap();
    assert_eq!(
        find(&libs, "openssl-sys").provided_by,
        Some(Provider::Host {
            module: "openssl".into()
        })
    );
    assert!(find(&libs, "libsqlite3-sys").missing.is_some());
    let cross = Provided {
        native: false,
        ..host
    };
    let libs = diagnose(&graph("", ""), "tlsapp", Libc::Gnu, &cross).unwrap();
    assert!(find(&libs, "openssl-sys").missing.is_some());
}

#[test]
fn features_that_bundle_the_library_need_nothing() {
    let libs = diagnose(
        &graph(r#""vendored""#, r#""bundled""#),
        "tlsapp",
        Libc::Gnu,
        &Provided::default(),
    )
    .unwrap();
    for l in &libs {
        assert!(l.missing.is_none(), "{l:?}");
    }
    assert!(matches!(
        find(&libs, "openssl-sys").provided_by,
        Some(Provider::Bundled { ref how }) if how.contains("`vendored`")
    ));
    assert!(find(&libs, "libsqlite3-sys").needs_build.is_empty());
    assert!(find(&libs, "libsqlite3-sys").needs_runtime.is_empty());
}

#[test]
fn musl_gets_static_openssl_from_shipit_and_sqlite_needs_bundled() {
    let libs = diagnose(&graph("", ""), "tlsapp", Libc::Musl, &Provided::default()).unwrap();
    let ssl = find(&libs, "openssl-sys");
    assert_eq!(
        ssl.provided_by,
        Some(Provider::ShipitStatic {
            library: "openssl".into()
        })
    );
    assert!(ssl.needs_runtime.is_empty() && ssl.needs_build.is_empty());
    assert!(
        ssl.describe().contains("built by shipit"),
        "{}",
        ssl.describe()
    );
    let sqlite = find(&libs, "libsqlite3-sys");
    assert!(
        sqlite
            .missing
            .as_deref()
            .is_some_and(|m| m.contains("`bundled`")),
        "{sqlite:?}"
    );
    let libs = diagnose(
        &graph("", r#""bundled""#),
        "tlsapp",
        Libc::Musl,
        &Provided::default(),
    )
    .unwrap();
    assert!(find(&libs, "libsqlite3-sys").missing.is_none());
}

#[test]
fn libz_falls_back_to_its_bundled_sources_on_gnu() {
    let json = r#"{"packages":[
        {"id":"app 1.0.0","name":"app","version":"1.0.0"},
        {"id":"libz-sys 1.1.22","name":"libz-sys","version":"1.1.22","links":"z"},
        {"id":"pq-sys 0.7.2","name":"pq-sys","version":"0.7.2","links":"pq"}],
      "resolve":{"nodes":[
        {"id":"app 1.0.0","deps":[{"pkg":"libz-sys 1.1.22","dep_kinds":[{"kind":null}]},
                                  {"pkg":"pq-sys 0.7.2","dep_kinds":[{"kind":null}]}]},
        {"id":"libz-sys 1.1.22","features":["libc"]},
        {"id":"pq-sys 0.7.2"}]}}"#;
    let libs = diagnose(json, "app", Libc::Gnu, &Provided::default()).unwrap();
    let z = find(&libs, "libz-sys");
    assert!(z.missing.is_none());
    assert!(matches!(z.provided_by, Some(Provider::Bundled { .. })));
    let pq = find(&libs, "pq-sys");
    assert_eq!(pq.missing.as_deref(), Some("build.packages: [libpq-dev]"));
    assert_eq!(pq.needs_runtime, ["libpq5"]);
    let with = Provided {
        build_packages: vec!["zlib1g-dev".into()],
        ..Provided::default()
    };
    let libs = diagnose(json, "app", Libc::Gnu, &with).unwrap();
    assert_eq!(find(&libs, "libz-sys").needs_runtime, ["zlib1g"]);
}

#[test]
fn bad_metadata_says_what_is_wrong() {
    let e = diagnose("{}", "a", Libc::Gnu, &Provided::default()).unwrap_err();
    assert!(e.contains("unexpected"), "{e}");
    let e = diagnose(
        r#"{"packages":[],"resolve":null}"#,
        "a",
        Libc::Gnu,
        &Provided::default(),
    )
    .unwrap_err();
    assert!(e.contains("--no-deps"), "{e}");
    let e = diagnose(
        r#"{"packages":[],"resolve":{"nodes":[]}}"#,
        "a",
        Libc::Gnu,
        &Provided::default(),
    )
    .unwrap_err();
    assert!(e.contains("`a` is not in the resolved graph"), "{e}");
}

/// app → diesel → pq-sys, app → flate2 → libz-sys, app → rusqlite → libsqlite3-sys, with the
/// features given for each sys crate.
fn common_graph(pq: &str, z: &str, sqlite: &str) -> String {
    format!(
        r#"{{"packages":[
        {{"id":"app 1.0.0","name":"app","version":"1.0.0"}},
        {{"id":"diesel 2.2.0","name":"diesel","version":"2.2.0"}},
        {{"id":"pq-sys 0.7.2","name":"pq-sys","version":"0.7.2","links":"pq"}},
        {{"id":"flate2 1.1.0","name":"flate2","version":"1.1.0"}},
        {{"id":"libz-sys 1.1.22","name":"libz-sys","version":"1.1.22","links":"z"}},
        {{"id":"rusqlite 0.37.0","name":"rusqlite","version":"0.37.0"}},
        {{"id":"libsqlite3-sys 0.35.0","name":"libsqlite3-sys","version":"0.35.0","links":"sqlite3"}}],
      "resolve":{{"nodes":[
        {{"id":"app 1.0.0","deps":[{{"pkg":"diesel 2.2.0","dep_kinds":[{{"kind":null}}]}},
                                   {{"pkg":"flate2 1.1.0","dep_kinds":[{{"kind":null}}]}},
                                   {{"pkg":"rusqlite 0.37.0","dep_kinds":[{{"kind":null}}]}}]}},
        {{"id":"diesel 2.2.0","deps":[{{"pkg":"pq-sys 0.7.2","dep_kinds":[{{"kind":null}}]}}]}},
        {{"id":"flate2 1.1.0","deps":[{{"pkg":"libz-sys 1.1.22","dep_kinds":[{{"kind":null}}]}}]}},
        {{"id":"rusqlite 0.37.0","deps":[{{"pkg":"libsqlite3-sys 0.35.0","dep_kinds":[{{"kind":null}}]}}]}},
        {{"id":"pq-sys 0.7.2","features":[{pq}]}},
        {{"id":"libz-sys 1.1.22","features":[{z}]}},
        {{"id":"libsqlite3-sys 0.35.0","features":[{sqlite}]}}]}}}}"#
    )
}

fn musl_target(syslibs: Vec<SysLib>) -> [TargetLibs; 1] {
    [TargetLibs {
        platform: "linux/arm64".into(),
        libc: Libc::Musl,
        target: "aarch64-unknown-linux-musl".into(),
        syslibs,
    }]
}

#[test]
fn pq_sys_on_musl_is_an_error_naming_the_bundled_feature() {
    let libs = diagnose(
        &common_graph("", "", r#""bundled""#),
        "app",
        Libc::Musl,
        &Provided::default(),
    )
    .unwrap();
    let pq = find(&libs, "pq-sys");
    assert_eq!(pq.chain_text(), "app → diesel → pq-sys");
    assert_eq!(pq.provided_by, None);
    let key = pq.missing.as_deref().unwrap();
    assert!(key.contains("the `bundled` feature of pq-sys"), "{key}");
    assert!(key.contains("Debian has no musl pq"), "{key}");
    // libz-sys builds zlib itself on musl; bundled SQLite needs nothing.
    assert!(matches!(
        find(&libs, "libz-sys").provided_by,
        Some(Provider::Bundled { ref how }) if how.contains("statically for musl")
    ));
    assert!(find(&libs, "libsqlite3-sys").missing.is_none());
    let e = require_provided(&musl_target(libs)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.message()
            .contains("linux/arm64 (musl): app → diesel → pq-sys needs pq to build: add `build.features: the `bundled` feature of pq-sys"),
        "{}",
        e.message()
    );
    // With pq-sys/bundled, musl needs nothing from the user.
    let libs = diagnose(
        &common_graph(r#""bundled""#, "", r#""bundled""#),
        "app",
        Libc::Musl,
        &Provided::default(),
    )
    .unwrap();
    assert!(require_provided(&musl_target(libs)).is_ok());
}

#[test]
fn the_common_sys_crates_on_gnu_name_their_build_and_runtime_packages() {
    let libs = diagnose(
        &common_graph("", "", ""),
        "app",
        Libc::Gnu,
        &Provided::default(),
    )
    .unwrap();
    let pq = find(&libs, "pq-sys");
    assert_eq!(
        (pq.needs_build.as_slice(), pq.needs_runtime.as_slice()),
        (&["libpq-dev".to_string()][..], &["libpq5".to_string()][..])
    );
    assert_eq!(pq.missing.as_deref(), Some("build.packages: [libpq-dev]"));
    let sqlite = find(&libs, "libsqlite3-sys");
    assert_eq!(sqlite.needs_build, ["libsqlite3-dev"]);
    assert_eq!(sqlite.needs_runtime, ["libsqlite3-0"]);
    // libz-sys falls back to its bundled zlib: not an error, and nothing to run.
    let z = find(&libs, "libz-sys");
    assert!(z.missing.is_none() && z.needs_runtime.is_empty(), "{z:?}");
    // Its `static` feature, libsqlite3-sys's `bundled`: compiled in, no Debian package at all.
    let libs = diagnose(
        &common_graph("", r#""static""#, r#""bundled""#),
        "app",
        Libc::Gnu,
        &Provided {
            build_packages: vec!["libpq-dev".into()],
            ..Provided::default()
        },
    )
    .unwrap();
    for krate in ["libz-sys", "libsqlite3-sys"] {
        let l = find(&libs, krate);
        assert!(
            matches!(l.provided_by, Some(Provider::Bundled { .. })),
            "{l:?}"
        );
        assert!(
            l.needs_build.is_empty() && l.needs_runtime.is_empty(),
            "{l:?}"
        );
    }
    assert!(
        find(&libs, "libz-sys")
            .describe()
            .contains("libz-sys's `static` feature compiles z into the binary"),
        "{}",
        find(&libs, "libz-sys").describe()
    );
    assert_eq!(
        find(&libs, "pq-sys").provided_by,
        Some(Provider::DebSysroot {
            packages: vec!["libpq-dev".into()]
        })
    );
}
