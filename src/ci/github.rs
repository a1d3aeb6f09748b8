//! GitHub Actions: the workflow-command conventions shipit follows when `GITHUB_ACTIONS=true`
//! (log groups, `::error` annotations, `::add-mask::`, `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`),
//! the release step summary rendered as Markdown, and the `release.yml` workflow that
//! `shipit ci github [--matrix]` writes.
//!
//! Everything that produces text is a pure function returning complete lines (each ending in
//! `\n`, ready for `print!`); the few I/O helpers take the file path explicitly (`*_to`) and have a
//! thin wrapper that reads the path from the environment. Escaping follows the runner's
//! workflow-command rules: in data `%`, `\r`, `\n`; in properties also `:` and `,`.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The action the generated workflows use to install shipit (owner is a placeholder until the
/// repository has its public home).
pub const SHIPIT_ACTION: &str = "shipit-dev/shipit@v1";

/// Where `shipit release` writes its machine-readable report, relative to the workspace.
pub const RELEASE_JSON: &str = "dist/release.json";

/// True when running as a GitHub Actions step (`GITHUB_ACTIONS=true`).
pub fn is_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escapes the data (message) part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (`file=`, `title=` ...) of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::NAME`: starts a collapsible group in the log.
pub fn group(name: &str) -> String {
    format!("::group::{}\n", escape_data(name))
}

/// `::endgroup::`: ends the current group.
pub fn endgroup() -> String {
    "::endgroup::\n".to_string()
}

/// An error annotation on a file position (line and column are 1-based; 0 leaves them out).
pub fn error_annotation(file: &str, line: usize, col: usize, msg: &str) -> String {
    let mut props = format!("file={}", escape_property(file));
    if line > 0 {
        let _ = write!(props, ",line={line}");
        if col > 0 {
            let _ = write!(props, ",col={col}");
        }
    }
    format!("::error {props}::{}\n", escape_data(msg))
}

/// An error annotation without a position.
pub fn error(msg: &str) -> String {
    format!("::error::{}\n", escape_data(msg))
}

/// A warning annotation without a position.
pub fn warning(msg: &str) -> String {
    format!("::warning::{}\n", escape_data(msg))
}

/// `::add-mask::` lines for a secret: one per line of a multi-line value (the runner masks only
/// single lines), blank lines skipped. Print them before anything could print the value; with
/// `set -x` in a shell the value would be echoed anyway (actions/runner#475).
pub fn add_mask(value: &str) -> String {
    value
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("::add-mask::{}\n", escape_data(l)))
        .collect()
}

/// A `$GITHUB_OUTPUT` entry: `name=value` for one line, the `name<<DELIM` heredoc form for a
/// multi-line value. `delimiter` must not occur in the value (`write_output_to` picks a random one).
pub fn output_entry(name: &str, value: &str, delimiter: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "GitHub output name {name:?} is invalid: use letters, digits, `_` and `-` only"
        ));
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    if value.contains(delimiter) || delimiter.is_empty() || delimiter.contains(['\n', '\r']) {
        return Err(format!(
            "GitHub output {name}: the heredoc delimiter {delimiter:?} is unusable for this value"
        ));
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

/// A random heredoc delimiter in the form the official toolkit uses (`ghadelimiter_<hex>`).
pub fn random_delimiter() -> String {
    let mut bytes = [0u8; 16];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_urandom {
        // No /dev/urandom: time and pid still make a collision with real output implausible.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes = seed.to_le_bytes();
    }
    format!("ghadelimiter_{}", hex::encode(bytes))
}

/// Appends `name` = `value` to the output file at `path` (the heredoc form for multi-line values).
pub fn write_output_to(path: &Path, name: &str, value: &str) -> Result<(), String> {
    let mut delimiter = random_delimiter();
    while value.contains(&delimiter) {
        delimiter = random_delimiter();
    }
    let entry = output_entry(name, value, &delimiter)?;
    append(path, &entry)
}

/// Appends an output to `$GITHUB_OUTPUT`. Returns `Ok(false)` when the variable is unset or
/// empty (not in Actions, nothing written).
pub fn write_output(name: &str, value: &str) -> Result<bool, String> {
    match env_path("GITHUB_OUTPUT") {
        Some(p) => write_output_to(&p, name, value).map(|()| true),
        None => Ok(false),
    }
}

/// Appends Markdown to the step summary file at `path` (a final newline is ensured).
pub fn append_step_summary_to(path: &Path, markdown: &str) -> Result<(), String> {
    let mut text = markdown.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    append(path, &text)
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY`. Returns `Ok(false)` when the variable is unset.
pub fn append_step_summary(markdown: &str) -> Result<bool, String> {
    match env_path("GITHUB_STEP_SUMMARY") {
        Some(p) => append_step_summary_to(&p, markdown).map(|()| true),
        None => Ok(false),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            format!(
                "cannot append to {}: {e} (the GitHub Actions runner provides this file; is the step's environment intact?)",
                path.display()
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The release summary.

/// What a release did, as the step summary shows it (filled by the release stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    pub version: String,
    pub images: Vec<ImageSummary>,
}

/// One multi-arch image (one libc variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub variant: String,
    pub repository: String,
    /// `sha256:<hex>` of the index.
    pub index_digest: String,
    /// Tags moved to the index, in the order they moved (empty: none moved).
    pub tags_moved: Vec<String>,
    pub platforms: Vec<PlatformSummary>,
}

/// One platform image of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformSummary {
    /// OCI platform, e.g. `linux/arm/v7`.
    pub platform: String,
    /// `sha256:<hex>` of the platform manifest.
    pub digest: String,
    /// Compressed size in bytes (config + layers + manifest).
    pub size: u64,
    pub checks: Vec<CheckSummary>,
    /// Wall time spent on this platform (build to verified), in seconds.
    pub seconds: f64,
}

/// One verification check and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub name: String,
    pub passed: bool,
    pub seconds: f64,
}

/// The step summary: a heading, then per image its index digest, the tags moved, and a table
/// with one row per platform (digest, compressed size, checks, time).
pub fn summary_markdown(release: &ReleaseSummary) -> String {
    let mut md = format!("## shipit release {}\n", cell(&release.version));
    if release.images.is_empty() {
        md.push_str("\nNo image was released.\n");
    }
    for img in &release.images {
        let _ = writeln!(
            md,
            "\n### `{}` ({})\n",
            cell(&img.repository),
            cell(&img.variant)
        );
        let tags = if img.tags_moved.is_empty() {
            "none (nothing was tagged)".to_string()
        } else {
            img.tags_moved
                .iter()
                .map(|t| format!("`{}`", cell(t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "Index `{}` · tags moved: {tags}\n",
            short_digest(&img.index_digest)
        );
        md.push_str("| platform | digest | compressed size | checks | time |\n");
        md.push_str("|---|---|--:|---|--:|\n");
        for p in &img.platforms {
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {} | {} |",
                cell(&p.platform),
                short_digest(&p.digest),
                human_size(p.size),
                checks_cell(&p.checks),
                human_seconds(p.seconds)
            );
        }
    }
    md
}

/// `sha256:` and the first 12 hex digits (what `docker images` shows), or the text as given.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => cell(d),
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn human_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let total = s.round() as u64;
        format!("{} min {:02} s", total / 60, total % 60)
    }
}

fn checks_cell(checks: &[CheckSummary]) -> String {
    if checks.is_empty() {
        return "none".into();
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| cell(&c.name))
        .collect();
    if failed.is_empty() {
        format!("{passed} passed")
    } else {
        format!(
            "{passed} passed, **{} failed** ({})",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// Makes text safe inside a Markdown table cell or code span: no line breaks, no `|`, no backtick.
fn cell(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
        .replace('|', "\\|")
        .replace('`', "'")
}

// ---------------------------------------------------------------------------------------------
// The release workflow.

/// What `shipit ci github [--matrix]` generates.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowOptions {
    /// One job per platform and a merge job (else one job does everything).
    pub matrix: bool,
    /// OCI platforms, e.g. `linux/arm64` (the plan's; used for the matrix).
    pub platforms: Vec<String>,
    /// A runner label for arm64 jobs (e.g. `ubuntu-24.04-arm`); default: every job on ubuntu-latest.
    pub arm64_runner: Option<String>,
    /// The registry host the credentials are for (default `ghcr.io`).
    pub registry_host: Option<String>,
    /// The pipeline file, relative to the repository root.
    pub config_path: String,
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        WorkflowOptions {
            matrix: false,
            platforms: Vec::new(),
            arm64_runner: None,
            registry_host: None,
            config_path: "pipeline.yaml".into(),
        }
    }
}

/// Quotes a value as a YAML single-quoted scalar (no expression can hide in it unquoted).
fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''").replace(['\r', '\n'], " "))
}

/// The runner label a platform's matrix job uses.
fn runner_for(platform: &str, arm64_runner: Option<&str>) -> String {
    match arm64_runner {
        Some(r) if platform.starts_with("linux/arm64") => r.to_string(),
        _ => "ubuntu-latest".to_string(),
    }
}

/// A platform as an artifact-name fragment: `linux/arm/v7` → `linux-arm-v7`.
fn platform_slug(p: &str) -> String {
    p.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The contents of `.github/workflows/release.yml`.
pub fn generate_workflow(opts: &WorkflowOptions) -> String {
    let host = opts.registry_host.as_deref().unwrap_or("ghcr.io");
    // Credentials: only on the steps that push, through the environment, never argv.
    let creds = format!(
        "
          # Credentials for {}: GITHUB_TOKEN with `packages: write`.
          SHIPIT_REGISTRY_USER: ${{{{ github.actor }}}}
          SHIPIT_REGISTRY_PASSWORD: ${{{{ secrets.GITHUB_TOKEN }}}}",
        host.replace(['\r', '\n'], " ")
    );
    let mut y = String::new();
    let _ = write!(
        y,
        "# Written by `shipit ci github{matrix}`: releases the image(s) of {config} when a v* tag is
# pushed (or by hand). Every platform image is built, packaged and run under QEMU before any
# tag moves. Credentials reach shipit through the environment only, never the command line.
name: release

on:
  push:
    tags: ['v*']
  workflow_dispatch:

# Two releases of the same ref never race; a newer run waits for the older one to finish.
concurrency:
  group: shipit-release-${{{{ github.ref }}}}
  cancel-in-progress: false

permissions:
  contents: read
  packages: write   # push to {host} with GITHUB_TOKEN

env:
  SHIPIT_CONFIG: {config_q}

jobs:
",
        matrix = if opts.matrix { " --matrix" } else { "" },
        config = opts.config_path.replace(['\r', '\n'], " "),
        config_q = yq(&opts.config_path),
        host = host.replace(['\r', '\n'], " "),
    );
    if !opts.matrix {
        let _ = write!(
            y,
            "  release:
    runs-on: ubuntu-latest
    timeout-minutes: 90
    steps:
      - uses: actions/checkout@v4
      - name: Release (build, package, verify, publish)
        id: shipit
        uses: {action}
        with:
          config: {config_q}
          push: 'true'
          registry: {host_q}
        env:{creds}
      - name: Keep the release report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: release-json
          path: {release_json}
          if-no-files-found: ignore
",
            action = SHIPIT_ACTION,
            config_q = yq(&opts.config_path),
            host_q = yq(host),
            release_json = RELEASE_JSON,
            creds = creds,
        );
        return y;
    }

    let _ = write!(
        y,
        "  platform:
    name: ${{{{ matrix.platform }}}}
    runs-on: ${{{{ matrix.runs-on }}}}
    timeout-minutes: 90
    strategy:
      # One failed platform cancels the others, and the merge job never runs: no tag moves.
      fail-fast: true
      matrix:
        include:
"
    );
    for p in &opts.platforms {
        let _ = write!(
            y,
            "          - platform: {}\n            runs-on: {}\n            slug: {}\n",
            yq(p),
            yq(&runner_for(p, opts.arm64_runner.as_deref())),
            yq(&platform_slug(p)),
        );
    }
    let _ = write!(
        y,
        "    steps:
      - uses: actions/checkout@v4
      - name: Install shipit
        uses: {action}
        with:
          config: {config_q}
          platforms: ${{{{ matrix.platform }}}}
          install-only: 'true'
      - name: Build, package, verify and push ${{{{ matrix.platform }}}} by digest
        run: shipit release --split --platform \"$PLATFORM\"
        env:
          PLATFORM: ${{{{ matrix.platform }}}}{creds}
      - name: Upload the fragment
        uses: actions/upload-artifact@v4
        with:
          name: shipit-fragment-${{{{ matrix.slug }}}}
          path: dist/fragments/*.json
          if-no-files-found: error
          retention-days: 1

  merge:
    needs: platform
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - name: Install shipit
        uses: {action}
        with:
          config: {config_q}
          install-only: 'true'
      - name: Download every fragment
        uses: actions/download-artifact@v4
        with:
          pattern: shipit-fragment-*
          path: fragments
          merge-multiple: true
      - name: Assemble the index, check it lists every planned platform, move the tags
        run: shipit release --merge fragments/*.json
        env:{creds}
      - name: Keep the release report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: release-json
          path: {release_json}
          if-no-files-found: ignore
",
        action = SHIPIT_ACTION,
        config_q = yq(&opts.config_path),
        release_json = RELEASE_JSON,
        creds = creds,
    );
    y
}

/// Writes `release.yml` into `dir` (normally `.github/workflows`, created if missing). An existing
/// file is kept unless `force`.
pub fn write_workflow(dir: &Path, opts: &WorkflowOptions, force: bool) -> Result<PathBuf, String> {
    let path = dir.join("release.yml");
    if path.exists() && !force {
        return Err(format!(
            "{} already exists; shipit keeps it. Use --force to overwrite it.",
            path.display()
        ));
    }
    if opts.matrix && opts.platforms.is_empty() {
        return Err(
            "a --matrix workflow needs at least one platform; list them under `platforms:` in the pipeline"
                .into(),
        );
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(&path, generate_workflow(opts))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_property_escaping() {
        assert_eq!(escape_data("50% a\r\nb:c,d"), "50%25 a%0D%0Ab:c,d");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // `%` first, so an escape sequence in the input survives literally.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn annotations() {
        assert_eq!(
            error_annotation("dir,1/pipe:line.yaml", 3, 7, "bad\nvalue 100%"),
            "::error file=dir%2C1/pipe%3Aline.yaml,line=3,col=7::bad%0Avalue 100%25\n"
        );
        assert_eq!(
            error_annotation("p.yaml", 0, 0, "m"),
            "::error file=p.yaml::m\n"
        );
        assert_eq!(
            error_annotation("p.yaml", 2, 0, "m"),
            "::error file=p.yaml,line=2::m\n"
        );
        assert_eq!(error("x:y"), "::error::x:y\n");
        assert_eq!(warning("w"), "::warning::w\n");
        assert_eq!(group("build a\nb"), "::group::build a%0Ab\n");
        assert_eq!(endgroup(), "::endgroup::\n");
    }

    #[test]
    fn masks_every_line_of_a_multiline_secret() {
        assert_eq!(add_mask("s3cr%t"), "::add-mask::s3cr%25t\n");
        assert_eq!(
            add_mask("line1\r\nline2\n\n  \nline3\n"),
            "::add-mask::line1\n::add-mask::line2\n::add-mask::line3\n"
        );
        assert_eq!(add_mask(""), "");
    }

    #[test]
    fn output_single_and_heredoc() {
        assert_eq!(
            output_entry("digest", "sha256:ab", "D").unwrap(),
            "digest=sha256:ab\n"
        );
        assert_eq!(
            output_entry("tags", "a:1\na:latest", "ghadelimiter_x").unwrap(),
            "tags<<ghadelimiter_x\na:1\na:latest\nghadelimiter_x\n"
        );
        assert!(output_entry("tags", "a\nDELIM\n", "DELIM").is_err());
        for bad in ["", "a=b", "a b", "a\nb", "x<<y"] {
            assert!(output_entry(bad, "v", "D").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn output_file_is_parsed_back_as_the_runner_does() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out");
        write_output_to(&f, "digest", "sha256:00").unwrap();
        write_output_to(&f, "tags", "r:1.0.0\nr:latest").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let parsed = parse_output_file(&text);
        assert_eq!(
            parsed,
            vec![
                ("digest".to_string(), "sha256:00".to_string()),
                ("tags".to_string(), "r:1.0.0\nr:latest".to_string())
            ]
        );
        // Random delimiters: two writes of the same multi-line value differ.
        write_output_to(&f, "tags", "a\nb").unwrap();
        let text2 = std::fs::read_to_string(&f).unwrap();
        let delims: Vec<&str> = text2
            .lines()
            .filter_map(|l| l.split_once("<<").map(|(_, d)| d))
            .collect();
        assert_eq!(delims.len(), 2);
        assert_ne!(delims[0], delims[1]);
        assert!(delims[0].starts_with("ghadelimiter_") && delims[0].len() == 13 + 32);
    }

    /// The runner's file-command parser (actions/runner `SetOutputFileCommand`), for the test.
    fn parse_output_file(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            if let Some((name, delim)) = line.split_once("<<") {
                let mut val = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    val.push(l);
                }
                out.push((name.to_string(), val.join("\n")));
            } else if let Some((name, v)) = line.split_once('=') {
                out.push((name.to_string(), v.to_string()));
            }
        }
        out
    }

    #[test]
    fn step_summary_appends_with_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("summary.md");
        append_step_summary_to(&f, "# a").unwrap();
        append_step_summary_to(&f, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "# a\nb\n");
        let err = append_step_summary_to(&dir.path().join("no/such/dir/f"), "x").unwrap_err();
        assert!(err.contains("no/such/dir/f"), "{err}");
    }

    #[test]
    fn sizes_and_digests() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest(""), "");
        assert_eq!(human_seconds(75.4), "1 min 15 s");
        assert_eq!(human_seconds(0.44), "0.4 s");
    }

    fn sample() -> ReleaseSummary {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        ReleaseSummary {
            version: "1.4.0".into(),
            images: vec![
                ImageSummary {
                    variant: "gnu".into(),
                    repository: "ghcr.io/acme/hello-server".into(),
                    index_digest: d('a'),
                    tags_moved: vec!["1.4.0".into(), "1.4".into(), "1".into(), "latest".into()],
                    platforms: vec![
                        PlatformSummary {
                            platform: "linux/amd64".into(),
                            digest: d('1'),
                            size: 3_407_872,
                            checks: vec![
                                CheckSummary {
                                    name: "version".into(),
                                    passed: true,
                                    seconds: 0.21,
                                },
                                CheckSummary {
                                    name: "serves".into(),
                                    passed: true,
                                    seconds: 1.4,
                                },
                            ],
                            seconds: 41.0,
                        },
                        PlatformSummary {
                            platform: "linux/arm/v7".into(),
                            digest: d('2'),
                            size: 3_100_000,
                            checks: vec![CheckSummary {
                                name: "version".into(),
                                passed: true,
                                seconds: 0.9,
                            }],
                            seconds: 95.5,
                        },
                    ],
                },
                ImageSummary {
                    variant: "musl".into(),
                    repository: "ghcr.io/acme/hello-server".into(),
                    index_digest: d('b'),
                    tags_moved: vec![],
                    platforms: vec![PlatformSummary {
                        platform: "linux/arm/v6".into(),
                        digest: d('3'),
                        size: 900,
                        checks: vec![
                            CheckSummary {
                                name: "version".into(),
                                passed: true,
                                seconds: 0.3,
                            },
                            CheckSummary {
                                name: "a|b".into(),
                                passed: false,
                                seconds: 20.0,
                            },
                        ],
                        seconds: 12.0,
                    }],
                },
            ],
        }
    }

    #[test]
    fn summary_markdown_snapshot() {
        insta::assert_snapshot!(summary_markdown(&sample()));
    }

    #[test]
    fn summary_round_trips_through_json() {
        let s = sample();
        let json = serde_json::to_string(&s).unwrap();
        let back: ReleaseSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn workflow_quotes_values_and_places_runners() {
        let opts = WorkflowOptions {
            matrix: true,
            platforms: vec![
                "linux/amd64".into(),
                "linux/arm64".into(),
                "linux/arm/v7".into(),
            ],
            arm64_runner: Some("ubuntu-24.04-arm".into()),
            registry_host: None,
            config_path: "deploy/it's.yaml".into(),
        };
        let y = generate_workflow(&opts);
        assert!(y.contains("SHIPIT_CONFIG: 'deploy/it''s.yaml'"), "{y}");
        assert!(y.contains("- platform: 'linux/arm64'\n            runs-on: 'ubuntu-24.04-arm'"));
        assert!(y.contains("- platform: 'linux/arm/v7'\n            runs-on: 'ubuntu-latest'\n            slug: 'linux-arm-v7'"));
        assert!(y.contains("fail-fast: true"));
        assert!(y.contains("needs: platform"));
        assert!(!y.contains("--password"));
        let single = generate_workflow(&WorkflowOptions::default());
        assert!(single.contains(&format!("uses: {SHIPIT_ACTION}")));
        assert!(!single.contains("matrix"));
    }

    #[test]
    fn write_workflow_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let wf = dir.path().join(".github/workflows");
        let opts = WorkflowOptions::default();
        let p = write_workflow(&wf, &opts, false).unwrap();
        assert_eq!(p, wf.join("release.yml"));
        std::fs::write(&p, "mine\n").unwrap();
        let err = write_workflow(&wf, &opts, false).unwrap_err();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "mine\n");
        write_workflow(&wf, &opts, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            generate_workflow(&opts)
        );
        let empty_matrix = WorkflowOptions {
            matrix: true,
            ..WorkflowOptions::default()
        };
        assert!(write_workflow(dir.path(), &empty_matrix, true).is_err());
    }
}
