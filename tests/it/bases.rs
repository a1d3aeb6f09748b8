//! Base images from a registry: pulled over the registry API (only the matching platform), cached
//! by digest, and packaged and verified like local ones.

use crate::support::fixture::{EPOCH, example, example_copy, example_pipeline, run_ok};
use crate::support::registry::TestRegistry;
use crate::support::shipit;
use std::process::Command;

#[test]
fn a_registry_base_is_pulled_cached_and_verified() {
    let reg = TestRegistry::anonymous();
    let layout = example().join("base/bookworm");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:bookworm-arm64", layout.display()),
        &format!("docker://{}/debian:bookworm", reg.host_port()),
    ]));
    // Debian packages need a deb: base: this pipeline's glibc base comes from the registry.
    let pipeline = example_pipeline()
        .replace(
            "base: \"deb:bookworm\"",
            &format!("base: \"{}/debian:bookworm\"", reg.host_port()),
        )
        .replace(
            "  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n",
            "",
        );
    assert!(!pipeline.contains("packages:"), "{pipeline}");
    let project = example_copy(Some(&pipeline));
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = shipit(project.path())
            .args(args)
            .args(["--variant", "gnu", "--platform", "linux/arm64"])
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shipit {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["package"]);
    let blob_gets = reg.count("GET", "/blobs/");
    assert!(
        blob_gets >= 2,
        "the base's config and layer were not pulled"
    );
    run(&["verify"]);
    // Packaging again fetches no blob: the cache is content-addressed.
    run(&["package"]);
    assert_eq!(
        reg.count("GET", "/blobs/"),
        blob_gets,
        "cached base blobs were fetched again"
    );
    // The image's lower layer is the registry base's layer.
    let base_raw = reg.skopeo_raw("debian:bookworm");
    let base: serde_json::Value = serde_json::from_slice(&base_raw).unwrap();
    let base_layer = base["layers"][0]["digest"].as_str().unwrap().to_string();
    let image = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!(
            "oci:{}:staging-gnu-linux-arm64",
            project.path().join("dist/oci").display()
        ),
    ]));
    assert!(image.contains(&base_layer), "{image}");
}
