//! Every bad-config case: exit 2, `pipeline.yaml:LINE:COL`, a hint, all errors at once, and
//! nothing written to disk. The rendered messages are snapshots.

use crate::support::{shipit, write};
use std::path::Path;
use std::process::Command;

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
            "attest_unknown_key",
            format!("{g}attest:\n  sboms: false\n"),
            "pipeline.yaml:11:3",
            "did you mean `sbom`?",
        ),
        (
            "attest_not_a_bool",
            format!("{g}attest: {{ provenance: \"no\" }}\n"),
            "pipeline.yaml:10:",
            "attest.provenance",
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
            g.replace("latest]", "\"{branchname}\"]"),
            "pipeline.yaml:9:23",
            "unknown placeholder `{branchname}`",
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
        // Checked at config time, not after the build (issue 11, items 10 and 16).
        (
            "duration_too_large_is_no_panic",
            format!("{g}{}", check_timeout("99999999999999999999s")),
            "pipeline.yaml:13:16",
            "is not a duration between 1ms and 24h",
        ),
        (
            "duration_below_1ms",
            format!("{g}{}", check_timeout("0.5ms")),
            "pipeline.yaml:13:16",
            "is not a duration between 1ms and 24h",
        ),
        (
            "duration_above_24h",
            format!("{g}{}", check_timeout("25h")),
            "pipeline.yaml:13:16",
            "is not a duration between 1ms and 24h",
        ),
        (
            "env_name_with_equals",
            format!("{g}  env: {{ \"A=B\": x }}\n"),
            "pipeline.yaml:10:10",
            "`A=B` is not a variable name",
        ),
        (
            "env_name_empty",
            format!("{g}  env: {{ \"\": x }}\n"),
            "pipeline.yaml:10:10",
            "`` is not a variable name",
        ),
        (
            "files_dest_root",
            format!("{g}  files: [{{ src: Cargo.toml, dest: / }}]\n"),
            "pipeline.yaml:10:36",
            "is the image's root directory",
        ),
        (
            "files_dest_twice",
            format!(
                "{g}  files: [{{ src: Cargo.toml, dest: /etc/a }}, {{ src: Cargo.toml, dest: /etc//a/ }}]\n"
            ),
            "pipeline.yaml:10:71",
            "is the destination of an earlier entry too",
        ),
        (
            "files_dest_is_the_entrypoint",
            format!("{g}  entrypoint: [\"/app\"]\n  files: [{{ src: Cargo.toml, dest: /app }}]\n"),
            "pipeline.yaml:11:36",
            "is the entrypoint",
        ),
        (
            "files_src_is_a_directory",
            format!("{g}  files: [{{ src: src, dest: /x }}]\n"),
            "pipeline.yaml:10:18",
            "it is a directory, not a regular file",
        ),
        (
            "files_src_missing",
            format!("{g}  files: [{{ src: nope.toml, dest: /x }}]\n"),
            "pipeline.yaml:10:18",
            "cannot read `nope.toml`",
        ),
        (
            "base_oci_without_path",
            g.replace("base: scratch", "base: \"oci:\""),
            "pipeline.yaml:6:17",
            "names no directory",
        ),
        (
            "base_registry_reference_invalid",
            g.replace("base: scratch", "base: \"localhost:5000/UPPER:1\""),
            "pipeline.yaml:6:17",
            "invalid image reference",
        ),
        (
            "tag_longer_than_128",
            g.replace("latest]", "LONG_TAG]")
                .replace("LONG_TAG", LONG_TAG),
            "pipeline.yaml:9:23",
            "can make a tag of 129 characters; a tag is at most 128",
        ),
        (
            "tag_template_too_long_at_worst_case",
            g.replace("latest]", "\"{sha}-{version}-{major}.{minor}.{patch}\"]"),
            "pipeline.yaml:9:23",
            "can make a tag of 190 characters",
        ),
        (
            "tag_too_long_with_suffix",
            g.replace("latest]", "\"LONG_TAG\"]")
                .replace("LONG_TAG", &LONG_TAG[..120])
                .replace("base: scratch", "base: scratch, tag_suffix: -musl-x-y"),
            "pipeline.yaml:9:23",
            "can make a tag of 129 characters",
        ),
        (
            "uid_above_u32",
            format!("{g}  user: \"4294967296:1\"\n"),
            "pipeline.yaml:10:9",
            "is not `UID[:GID]`",
        ),
        (
            "gid_above_u32",
            format!("{g}  user: \"1:99999999999\"\n"),
            "pipeline.yaml:10:9",
            "is not `UID[:GID]`",
        ),
        (
            "workdir_relative",
            format!("{g}  workdir: app\n"),
            "pipeline.yaml:10:12",
            "is not an absolute path",
        ),
    ]
}

/// 129 tag characters: one more than a registry accepts.
const LONG_TAG: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A `verify:` section with one check whose timeout is `t` (line 13, column 16 after GOOD).
fn check_timeout(t: &str) -> String {
    format!("verify:\n  checks:\n    - run: [\"--version\"]\n      timeout: {t}\n")
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
                "  {} {} backend={} build_std={} qemu={} native={} cpu={}",
                p["platform"].as_str().unwrap(),
                p["target"].as_str().unwrap(),
                p["backend"].as_str().unwrap(),
                p["build_std"],
                p["qemu"].as_str().unwrap_or("null"),
                p["native"],
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

/// Runs `shipit ARGS` in a project made by `setup`; returns (exit code, stderr), after checking
/// that nothing was written. A 20 s timeout turns a hang into a failure.
fn run_in(setup: impl Fn(&Path), args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), GOOD);
    setup(dir.path());
    let before = listing(dir.path());
    let mut child = shipit(dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("shipit {args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(before, listing(dir.path()), "a config error wrote files");
    (status.code().unwrap_or(-1), stderr)
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

#[test]
fn a_pipeline_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let (code, stderr) = run_in(
        |d| mkfifo(&d.join("fifo.yaml")),
        &["-c", "fifo.yaml", "plan"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .contains("fifo.yaml: error: the pipeline is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );
    let (code, stderr) = run_in(|_| {}, &["-c", "/dev/zero", "plan"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a character device, not a regular file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing was built, written or pushed"),
        "{stderr}"
    );
    let (code, stderr) = run_in(|_| {}, &["-c", "src", "plan"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a directory, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn a_pipeline_over_1_mib_is_refused() {
    let (code, stderr) = run_in(
        |d| {
            let mut text = GOOD.to_string();
            text.push_str(&"# padding\n".repeat(110_000));
            write(&d.join("big.yaml"), &text);
        },
        &["-c", "big.yaml", "plan"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("a pipeline is at most 1 MiB"), "{stderr}");
}

#[test]
fn a_manifest_that_is_a_fifo_is_refused_before_cargo_reads_it() {
    let pipeline = GOOD.replace(
        "  version: cargo",
        "  version: cargo\n  manifest: pipe/Cargo.toml",
    );
    let (code, stderr) = run_in(
        |d| {
            std::fs::create_dir(d.join("pipe")).unwrap();
            mkfifo(&d.join("pipe/Cargo.toml"));
            write(&d.join("pipeline.yaml"), &pipeline);
        },
        &["plan"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("pipeline.yaml:4:13: error: project.manifest:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );
}

#[test]
fn image_files_may_not_leave_the_project_or_be_special_files() {
    let pipeline = format!(
        "{GOOD}  files: [{{ src: shadow, dest: /etc/x }}, {{ src: conf/pipe, dest: /y }}, {{ src: {outside}, dest: /z }}]\n",
        outside = "/etc/hostname"
    );
    for cmd in ["plan", "package"] {
        let (code, stderr) = run_in(
            |d| {
                std::os::unix::fs::symlink("/etc/shadow", d.join("shadow")).unwrap();
                std::fs::create_dir(d.join("conf")).unwrap();
                mkfifo(&d.join("conf/pipe"));
                write(&d.join("pipeline.yaml"), &pipeline);
            },
            &[cmd],
        );
        assert_eq!(code, 2, "{cmd}: {stderr}");
        for want in [
            "pipeline.yaml:10:18: error: image.files.src: `shadow` resolves to /etc/shadow, outside the project directory",
            "pipeline.yaml:10:49: error: image.files.src: `conf/pipe`: it is a FIFO (named pipe), not a regular file",
            "pipeline.yaml:10:79: error: image.files.src: `/etc/hostname` resolves to /etc/hostname, outside the project directory",
            "3 problems in pipeline.yaml; nothing was built, written or pushed",
        ] {
            assert!(
                stderr.contains(want),
                "{cmd}: missing {want:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn an_in_project_symlink_to_a_project_file_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    project(
        dir.path(),
        &format!("{GOOD}  files: [{{ src: link, dest: /etc/app.toml }}]\n"),
    );
    write(&dir.path().join("conf/app.toml"), "x = 1\n");
    std::os::unix::fs::symlink("conf/app.toml", dir.path().join("link")).unwrap();
    let out = shipit(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A value that must appear nowhere in shipit's output.
const CANARY: &str = "c4n4ry-s3cr3t-v4lue";

#[test]
fn no_secret_from_the_pipeline_reaches_any_output() {
    let g = GOOD;
    // (pipeline, the masked excerpt line its error shows, if the secret's line is shown)
    let pipelines = [
        // The refused `password:` key, its line in the excerpt.
        (
            format!("{g}publish:\n  to: registry\n  password: {CANARY}\n"),
            Some("   12 |   password: ********\n"),
        ),
        // A secret-looking env value on a line with an error of its own (flow style).
        (
            format!("{g}  env: {{ API_TOKEN: {CANARY}, \"A=B\": x }}\n"),
            Some("   10 |   env: { API_TOKEN: ********, \"A=B\": x }\n"),
        ),
        // A secret nested under a secret-looking key, in a block scalar, under an unknown key.
        (
            format!("{g}credentials:\n  Auth: |\n    {CANARY}\n  user: me\n"),
            None,
        ),
        // Invalid YAML on the secret's own line.
        (format!("{g}publish:\n  password: \"{CANARY}\n"), None),
        // A quoted secret key with a comment after the value.
        (
            format!("{g}publish:\n  \"Registry_Secret\": {CANARY}  # remove me\n"),
            Some("   11 |   \"Registry_Secret\": ********\n"),
        ),
    ];
    for (text, excerpt) in &pipelines {
        let dir = tempfile::tempdir().unwrap();
        project(dir.path(), text);
        for (args, github) in [
            (&["plan"][..], false),
            (&["plan", "--json"][..], false),
            (&["plan"][..], true),
            (&["plan", "--json"][..], true),
        ] {
            let mut cmd = shipit(dir.path());
            cmd.args(args);
            if github {
                cmd.env("GITHUB_ACTIONS", "true");
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{text}\n{stderr}");
            assert!(
                !stdout.contains(CANARY) && !stderr.contains(CANARY),
                "the secret leaked ({args:?}, GITHUB_ACTIONS={github}) for\n{text}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            if let (Some(line), false) = (excerpt, github) {
                assert!(stderr.contains(line), "wanted {line:?} in\n{stderr}");
            }
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=shipit",
            "-c",
            "user.email=shipit@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `shipit plan --json` with the GitHub ref variables in `env` (all others removed).
fn plan_json_with_ref(dir: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = shipit(dir);
    cmd.args(["plan", "--json"]);
    for k in [
        "GITHUB_REF",
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "GITHUB_REF_TYPE",
        "GITHUB_EVENT_NAME",
        "GITHUB_EVENT_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tags_from_git_refs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(
        d,
        &GOOD.replace(
            "tags: [\"{version}\", latest]",
            "tags: [\"{version}\", latest, \"pr-{pr}\", \"{branch}\", \"sha-{sha}\", \"{sha_long}\", edge]",
        ),
    );
    git(d, &["init", "-q"]);
    git(d, &["checkout", "-q", "-b", "feature/Foo_bar"]);
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "init"]);
    let sha = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(d)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    // A pull request: the branch from git (no GITHUB_HEAD_REF), sanitised; no edge.
    let v = plan_json_with_ref(d, &[("GITHUB_REF", "refs/pull/42/merge")]);
    let image = &v["images"][0];
    assert_eq!(
        image["tags"],
        serde_json::json!([
            "1.2.3",
            "latest",
            "pr-42",
            "feature-foo_bar",
            format!("sha-{}", &sha[..7]),
            sha,
        ])
    );
    assert_eq!(image["dropped_tags"][0]["template"], "edge");
    assert!(
        image["dropped_tags"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pull request")
    );

    // A push to the default branch (from the event payload): edge moves, {pr} has no value.
    let event = d.join("event.json");
    std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
    let v = plan_json_with_ref(
        d,
        &[
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ],
    );
    let image = &v["images"][0];
    assert_eq!(image["tags"][2], "main");
    assert_eq!(image["tags"].as_array().unwrap().last().unwrap(), "edge");
    assert_eq!(
        image["dropped_tags"],
        serde_json::json!([{"template": "pr-{pr}", "reason": "not a pull request"}])
    );

    // The human plan says which templates made no tag.
    let out = shipit(d)
        .arg("plan")
        .env_remove("GITHUB_REF")
        .env_remove("GITHUB_EVENT_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no tag from `pr-{pr}`: not a pull request"),
        "{stdout}"
    );
}

/// A copy of tests/fixtures/workspace (a library crate and one binary crate).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::support::fixture::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workspace"),
        dir.path(),
    );
    dir
}

fn run_ok(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = shipit(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shipit {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn init_in_a_workspace_picks_the_binary_crate_and_it_builds() {
    let dir = workspace();
    let d = dir.path();
    run_ok(d, &["init"]);
    let pipeline = std::fs::read_to_string(d.join("pipeline.yaml")).unwrap();
    assert!(
        pipeline.contains("  package: hello\n") && pipeline.contains("  bin: hello\n"),
        "{pipeline}"
    );
    let plan = run_ok(d, &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(v["project"]["package"], "hello");
    assert_eq!(v["project"]["bin"], "hello");
    assert_eq!(v["version"], "0.2.0");
    run_ok(
        d,
        &["build", "--platform", "linux/amd64", "--variant", "musl"],
    );
    let bin = d.join("dist/bin/musl/linux-amd64/hello");
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello 0.2.0\n");
}

#[test]
fn init_in_a_workspace_of_two_binaries_lists_both_and_takes_flags() {
    let dir = workspace();
    let d = dir.path();
    write(
        &d.join("Cargo.toml"),
        &std::fs::read_to_string(d.join("Cargo.toml"))
            .unwrap()
            .replace(r#"["greet", "hello"]"#, r#"["greet", "hello", "tool"]"#),
    );
    write(
        &d.join("tool/Cargo.toml"),
        "[package]\nname = \"tool\"\nversion = \"3.0.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"tool-cli\"\npath = \"src/main.rs\"\n",
    );
    write(&d.join("tool/src/main.rs"), "fn main() {}\n");
    let out = shipit(d).arg("init").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hello (hello), tool (tool-cli)") && stderr.contains("--package"),
        "{stderr}"
    );
    assert!(!d.join("pipeline.yaml").exists() && !d.join("docker").exists());

    run_ok(d, &["init", "--bin", "tool-cli"]);
    let pipeline = std::fs::read_to_string(d.join("pipeline.yaml")).unwrap();
    assert!(
        pipeline.contains("  package: tool\n") && pipeline.contains("  bin: tool-cli\n"),
        "{pipeline}"
    );
    run_ok(d, &["init", "--force", "--package", "hello"]);
    let plan = run_ok(d, &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(
        (v["project"]["package"].as_str(), v["version"].as_str()),
        (Some("hello"), Some("0.2.0"))
    );
    let bad = shipit(d)
        .args(["init", "--force", "--package", "greet"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`greet` has no binary"));
}
