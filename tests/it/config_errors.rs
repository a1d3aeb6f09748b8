//! Every bad-config case: exit 2, `pipeline.yaml:LINE:COL`, a hint, all errors at once, and
//! nothing written to disk. The rendered messages are snapshots.

use crate::support::{shipit, write};
use std::path::Path;

/// A minimal valid pipeline the cases below break in one place each.
const GOOD: &str = r#"version: 1
project:
  version: cargo
platforms: [linux/amd64, linux/arm64]
variants:
  musl: { base: scratch }
image:
  repository: localhost/app
  tags: ["{version}", latest]
"#;

fn project(dir: &Path, pipeline: &str) {
    write(
        &dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"1.2.3\"\nedition = \"2021\"\n[workspace]\n",
    );
    write(&dir.join("src/main.rs"), "fn main() {}\n");
    write(&dir.join("pipeline.yaml"), pipeline);
}

/// Runs `shipit plan` on the pipeline; returns (exit code, stderr).
fn plan(pipeline: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), pipeline);
    let before = listing(dir.path());
    let out = shipit(dir.path()).arg("plan").output().unwrap();
    assert_eq!(before, listing(dir.path()), "a config error wrote files");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn the_good_pipeline_plans() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), GOOD);
    let out = shipit(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "1.2.3");
    assert_eq!(
        v["images"][0]["tags"],
        serde_json::json!(["1.2.3", "latest"])
    );
}

/// (name, pipeline text, expected `pipeline.yaml:L:C`, expected words in the message)
fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let g = GOOD;
    vec![
        (
            "unknown_key",
            g.replace("platforms:", "platfroms:"),
            "pipeline.yaml:4:1",
            "did you mean `platforms`?",
        ),
        (
            "duplicate_key",
            format!("{g}image:\n  repository: localhost/other\n"),
            "pipeline.yaml:10:1",
            "duplicate key `image`",
        ),
        (
            "yaml11_bool_in_string",
            g.replace(
                "variants:\n  musl: { base: scratch }",
                "variants:\n  musl: { base: scratch, tag_suffix: no }",
            ),
            "pipeline.yaml:6:38",
            "quote it",
        ),
        (
            "unknown_platform_v8",
            g.replace("linux/arm64]", "linux/arm/v8]"),
            "pipeline.yaml:4:26",
            "unknown platform `linux/arm/v8`",
        ),
        (
            "unknown_platform_amd",
            g.replace("[linux/amd64,", "[linux/amd,"),
            "pipeline.yaml:4:13",
            "did you mean `linux/amd64`?",
        ),
        (
            "unknown_libc",
            g.replace("  musl: {", "  uclibc: {"),
            "pipeline.yaml:6:3",
            "unknown libc `uclibc`",
        ),
        (
            "variant_platform_not_listed",
            g.replace(
                "{ base: scratch }",
                "{ base: scratch, platforms: [linux/arm/v7] }",
            ),
            "pipeline.yaml:6:38",
            "not in the top-level `platforms`",
        ),
        (
            "bad_version",
            g.replace("version: cargo", "version: \"1.4\""),
            "pipeline.yaml:3:12",
            "not `cargo`, `git-tag` or a semantic version",
        ),
        (
            "empty_platforms",
            g.replace("[linux/amd64, linux/arm64]", "[]"),
            "pipeline.yaml:4:12",
            "nothing to build",
        ),
        (
            "unknown_placeholder",
            g.replace("latest]", "\"{branch}\"]"),
            "pipeline.yaml:9:23",
            "unknown placeholder `{branch}`",
        ),
        (
            "path_escapes",
            g.replace(
                "  version: cargo",
                "  version: cargo\n  manifest: ../../Cargo.toml",
            ),
            "pipeline.yaml:4:13",
            "escapes the project directory",
        ),
        (
            "password_key",
            format!("{g}publish:\n  to: registry\n  password: hunter2\n"),
            "pipeline.yaml:12:3",
            "secrets never live in the pipeline file",
        ),
        (
            "insecure_yes",
            format!("{g}publish:\n  insecure: yes\n"),
            "pipeline.yaml:11:13",
            "must be true or false",
        ),
        (
            "schema_version",
            g.replace("version: 1\n", "version: 2\n"),
            "pipeline.yaml:1:10",
            "schema version 1 only",
        ),
        (
            "bad_yaml",
            g.replace("linux/arm64]", "linux/arm64"),
            "pipeline.yaml:5:",
            "invalid YAML",
        ),
        (
            "tab_indent",
            g.replace("  version: cargo", "\tversion: cargo"),
            "pipeline.yaml:3:",
            "invalid YAML",
        ),
    ]
}

#[test]
fn every_bad_config_exits_2_with_a_location_and_a_hint() {
    let mut failures = Vec::new();
    for (name, text, loc, words) in cases() {
        let (code, stderr) = plan(&text);
        if code != 2
            || !stderr.contains(loc)
            || !stderr.contains(words)
            || !stderr.contains("nothing was built, written or pushed")
        {
            failures.push(format!(
                "case {name}: exit {code}, wanted {loc} and {words:?}:\n{stderr}"
            ));
        }
        insta::assert_snapshot!(format!("config_error_{name}"), stderr);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    let text = GOOD
        .replace("platforms:", "platfroms:")
        .replace("latest]", "\"{nope}\"]")
        .replace("  musl:", "  musll:");
    let (code, stderr) = plan(&text);
    assert_eq!(code, 2);
    for want in [
        "pipeline.yaml:4:1",
        "pipeline.yaml:6:3",
        "pipeline.yaml:9:",
        "3 problems",
    ] {
        assert!(stderr.contains(want), "missing {want} in:\n{stderr}");
    }
}

#[test]
fn github_actions_gets_annotations() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &GOOD.replace("platforms:", "platfroms:"));
    let out = shipit(dir.path())
        .arg("plan")
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::error file=pipeline.yaml,line=4,col=1::unknown key `platfroms`"),
        "{stdout}"
    );
}

#[test]
fn the_root_pipeline_and_every_readme_example_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    shipit::config::load(&root.join("pipeline.yaml"))
        .unwrap_or_else(|e| panic!("pipeline.yaml:\n{e}"));
    shipit::config::load(&root.join("examples/hello-server/pipeline.yaml"))
        .unwrap_or_else(|e| panic!("example:\n{e}"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut found = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        if !text.starts_with("version: 1") {
            continue; // a workflow example, not a pipeline
        }
        shipit::config::parse_str(text, std::path::Path::new("README.md"), root)
            .unwrap_or_else(|e| panic!("a README example does not parse:\n{e}\n---\n{text}"));
        found += 1;
    }
    assert!(found >= 1, "no yaml example in the README");
}

#[test]
fn init_writes_a_valid_pipeline_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), GOOD);
    std::fs::remove_file(dir.path().join("pipeline.yaml")).unwrap();
    let out = shipit(dir.path()).arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = shipit(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(dir.path().join("docker/Dockerfile").exists());
    let before = std::fs::read(dir.path().join("pipeline.yaml")).unwrap();
    let again = shipit(dir.path()).arg("init").output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        before,
        std::fs::read(dir.path().join("pipeline.yaml")).unwrap()
    );
}

/// `shipit plan --json` on the example: the contract shape, every platform and variant.
#[test]
fn plan_json_of_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-server");
    let out = shipit(&root).args(["plan", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "0.3.1");
    let mut rows = Vec::new();
    for img in v["images"].as_array().unwrap() {
        rows.push(format!(
            "image {} {} tags={} base={}",
            img["variant"].as_str().unwrap(),
            img["repository"].as_str().unwrap(),
            img["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(","),
            img["base"].as_str().unwrap()
        ));
        for p in img["platforms"].as_array().unwrap() {
            rows.push(format!(
                "  {} {} backend={} build_std={} qemu={} cpu={}",
                p["platform"].as_str().unwrap(),
                p["target"].as_str().unwrap(),
                p["backend"].as_str().unwrap(),
                p["build_std"],
                p["qemu"].as_str().unwrap(),
                p["cpu"].as_str().unwrap_or("max"),
            ));
        }
    }
    insta::assert_snapshot!("plan_example", rows.join("\n"));
    // --platform and --variant filter the same plan
    let out = shipit(&root)
        .args(["plan", "--json", "--platform", "linux/arm/v6"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert_eq!(v["images"][0]["variant"], "musl");
    assert_eq!(v["images"][0]["platforms"][0]["cpu"], "arm1176");
    let out = shipit(&root)
        .args(["plan", "--platform", "linux/s390x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
