//! The planning caches through the CLI: `shipit plan` in a built project reads `cargo metadata`
//! once and then from `target/shipit/`, and reads it afresh after a changed `Cargo.toml`,
//! `Cargo.lock` or `.cargo/config.toml`; git facts follow a new commit.

use crate::support::{shipit, write};
use std::path::Path;

const PIPELINE: &str = r#"version: 1
project:
  version: cargo
platforms: [linux/amd64, linux/arm64]
variants:
  musl: { base: scratch }
image:
  repository: localhost/app
  tags: ["{version}", latest]
"#;

/// A built project (its `target/` exists) and a `cargo` first on `PATH` that logs each run.
fn project(dir: &Path) {
    write(
        &dir.join("p/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"1.2.3\"\nedition = \"2021\"\n[workspace]\n",
    );
    write(&dir.join("p/src/main.rs"), "fn main() {}\n");
    write(&dir.join("p/pipeline.yaml"), PIPELINE);
    std::fs::create_dir_all(dir.join("p/target")).unwrap();
    let real = which("cargo");
    write(
        &dir.join("bin/cargo"),
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
            dir.join("runs").display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("bin/cargo"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

fn which(program: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `shipit plan --json` in the project; the plan and how many `cargo metadata` runs so far.
fn plan(dir: &Path) -> (serde_json::Value, usize) {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = shipit(&dir.join("p"))
        .args(["plan", "--json"])
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("metadata"))
        .count();
    (serde_json::from_slice(&out.stdout).unwrap(), runs)
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn a_changed_input_defeats_the_metadata_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir);
    // The first plan writes Cargo.lock (the graph read), so its reads are stored by the second.
    plan(dir);
    let (v, warm) = plan(dir);
    assert_eq!(v["version"], "1.2.3");
    let (v2, runs) = plan(dir);
    assert_eq!(
        runs, warm,
        "an unchanged project reads cargo metadata from the cache"
    );
    assert_eq!(v2, v);
    assert!(dir.join("p/target/shipit").is_dir());

    // Cargo.toml: a new version and a new feature.
    write(
        &dir.join("p/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"1.2.4\"\nedition = \"2021\"\n[workspace]\n\n[features]\nx = []\n",
    );
    let (v, runs) = plan(dir);
    assert_eq!(v["version"], "1.2.4");
    assert!(runs > warm, "a changed Cargo.toml is read again");
    let (_, warm) = plan(dir);
    assert_eq!(plan(dir).1, warm);

    // Cargo.lock.
    let lock = std::fs::read_to_string(dir.join("p/Cargo.lock")).unwrap();
    write(&dir.join("p/Cargo.lock"), &format!("{lock}\n"));
    let runs = plan(dir).1;
    assert!(runs > warm, "a changed Cargo.lock is read again");
    // (cargo rewrote it as it writes locks: that run's read is stored by the next one.)
    let runs = plan(dir).1;
    assert_eq!(plan(dir).1, runs);

    // .cargo/config.toml.
    write(&dir.join("p/.cargo/config.toml"), "[net]\noffline = true\n");
    let warm = plan(dir).1;
    assert!(warm > runs, "a new .cargo/config.toml is read again");
    assert_eq!(plan(dir).1, warm);

    // A new git commit: the revision the plan labels images with follows it.
    git(&dir.join("p"), &["init", "-q"]);
    git(&dir.join("p"), &["add", "Cargo.toml", "src"]);
    git(&dir.join("p"), &["commit", "-qm", "one"]);
    let (one, _) = plan(dir);
    assert_eq!(plan(dir).0, one);
    write(&dir.join("p/src/main.rs"), "fn main() { println!(); }\n");
    git(&dir.join("p"), &["commit", "-qam", "two"]);
    let (two, _) = plan(dir);
    let head = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir.join("p"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(two["revision"], head.trim(), "{two}");
    assert_ne!(one["revision"], two["revision"]);
}
