//! The `release.yml` workflow that `shipit ci github [--matrix]` writes: one job triggered by
//! version tags, or one job per platform plus a merge job. The jobs that build restore caches
//! first (actions/cache): cargo's registry keyed by Cargo.lock, `target/shipit/<triple>` per
//! target keyed by Cargo.lock and the target, and shipit's Debian package cache. The single job
//! attaches the release archives to the tag's GitHub release (`upload-archives`). In the matrix,
//! each platform job uploads its fragment and its archives as two artifacts
//! (`shipit-fragment-<slug>`, `shipit-archives-<slug>`); the merge job downloads both into one
//! directory (`release --merge` takes the archives next to the fragments and writes one
//! `SHA256SUMS`) and, on a tag, attaches them to the tag's GitHub release: that job alone has
//! `contents: write`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The action the generated workflows use to install shipit (owner is a placeholder until the
/// repository has its public home).
pub const SHIPIT_ACTION: &str = "shipit-dev/shipit@v1";

/// Where `shipit release` writes its machine-readable report, relative to the workspace.
pub const RELEASE_JSON: &str = "dist/release.json";

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
    /// Also run `actions/attest-build-provenance` on the pushed index digests (the action's
    /// `attest-build-provenance` input; the workflow gets `id-token` and `attestations` write).
    pub attest_build_provenance: bool,
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        WorkflowOptions {
            matrix: false,
            platforms: Vec::new(),
            arm64_runner: None,
            registry_host: None,
            config_path: "pipeline.yaml".into(),
            attest_build_provenance: false,
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

/// Where shipit keeps the Debian packages it downloads, on a runner.
pub const DEBS_CACHE: &str = "~/.cache/shipit/debs";

/// One actions/cache step (6 spaces of indentation: a step of a job).
fn cache_step(name: &str, paths: &[String], key: &str, restore: &str) -> String {
    let mut y = format!(
        "      - name: {}\n        uses: actions/cache@v4\n        with:\n          path: |\n",
        yq(name)
    );
    for p in paths {
        y.push_str(&format!("            {p}\n"));
    }
    y.push_str(&format!(
        "          key: {key}\n          restore-keys: |\n            {restore}\n"
    ));
    y
}

/// The cache steps of a job: cargo's registry, the Debian package cache, and one step per
/// `(name, paths)` of build directories under `target/shipit/`.
fn cache_steps(builds: &[(String, Vec<String>)], config_path: &str) -> String {
    const LOCK: &str = "${{ hashFiles('**/Cargo.lock') }}";
    const OS: &str = "${{ runner.os }}-${{ runner.arch }}";
    let mut y = cache_step(
        "Cache cargo's registry (keyed by Cargo.lock)",
        &[
            "~/.cargo/registry/index/".into(),
            "~/.cargo/registry/cache/".into(),
            "~/.cargo/git/db/".into(),
        ],
        &format!("cargo-registry-{OS}-{LOCK}"),
        &format!("cargo-registry-{OS}-"),
    );
    // The pipeline says which packages a release needs; an older set is a fine start.
    let pipeline = format!("${{{{ hashFiles({}) }}}}", yq(config_path));
    y.push_str(&cache_step(
        "Cache the Debian packages shipit downloads",
        &[DEBS_CACHE.into()],
        &format!("shipit-debs-{OS}-{pipeline}"),
        &format!("shipit-debs-{OS}-"),
    ));
    for (name, paths) in builds {
        y.push_str(&cache_step(
            &format!("Cache the build of {name} (keyed by Cargo.lock and the target)"),
            paths,
            &format!("shipit-target-{OS}-{name}-{LOCK}"),
            &format!("shipit-target-{OS}-{name}-"),
        ));
    }
    y
}

/// Per platform (OCI name), its slug and the directories of its targets under
/// `target/shipit/`: both libc variants (actions/cache skips the one not built).
fn platform_builds(platforms: &[String]) -> Vec<(String, Vec<String>)> {
    use crate::platform::{Libc, Platform};
    platforms
        .iter()
        .map(|p| {
            let paths = match Platform::parse(p) {
                Some(spec) => Libc::ALL
                    .iter()
                    .map(|l| format!("target/shipit/{}", spec.target(*l)))
                    .collect(),
                None => vec!["target/shipit/*".to_string()],
            };
            (platform_slug(p), paths)
        })
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
  {contents}
  packages: write   # push to {host} with GITHUB_TOKEN{attest_permissions}

env:
  SHIPIT_CONFIG: {config_q}

jobs:
",
        matrix = if opts.matrix { " --matrix" } else { "" },
        config = opts.config_path.replace(['\r', '\n'], " "),
        config_q = yq(&opts.config_path),
        host = host.replace(['\r', '\n'], " "),
        // The single job attaches the release archives to the tag's GitHub release; in the
        // matrix, only the merge job does (its own permissions), the platform jobs read.
        contents = if opts.matrix {
            "contents: read"
        } else {
            "contents: write   # gh release upload: the archives and SHA256SUMS on the tag's release"
        },
        attest_permissions = if opts.attest_build_provenance {
            "
  id-token: write       # actions/attest-build-provenance: a Sigstore certificate for this run
  attestations: write   # actions/attest-build-provenance: store the attestation"
        } else {
            ""
        },
    );
    if !opts.matrix {
        let _ = write!(
            y,
            "  release:
    runs-on: ubuntu-latest
    timeout-minutes: 90
    steps:
      - uses: actions/checkout@v4
{caches}      - name: Release (build, package, verify, publish)
        id: shipit
        uses: {action}
        with:
          config: {config_q}
          push: 'true'
          registry: {host_q}
          upload-archives: 'true'{attest_input}
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
            attest_input = if opts.attest_build_provenance {
                "\n          attest-build-provenance: 'true'"
            } else {
                ""
            },
            caches = cache_steps(&platform_builds(&opts.platforms), &opts.config_path),
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
{caches}      - name: Install shipit
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
      - name: Upload the archives
        uses: actions/upload-artifact@v4
        with:
          name: shipit-archives-${{{{ matrix.slug }}}}
          path: dist/archives/*.tar.gz
          if-no-files-found: ignore   # none with `archives: false` in the pipeline
          retention-days: 1

  merge:
    needs: platform
    runs-on: ubuntu-latest
    timeout-minutes: 30
    # This job alone attaches files to the tag's GitHub release.
    permissions:
      contents: write   # gh release upload: the archives and SHA256SUMS on the tag's release
      packages: write   # push the indexes and move the tags on {host}{attest_permissions}
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
      - name: Download every platform's archives, next to the fragments
        uses: actions/download-artifact@v4
        with:
          pattern: shipit-archives-*
          path: fragments
          merge-multiple: true
      - name: Assemble the index, check it lists every planned platform, move the tags
        # Also checks each archive against its fragment and writes them with one SHA256SUMS
        # into dist/archives (the bytes a one-shot release writes).
        run: shipit release --merge fragments/*.json
        env:{creds}
      - name: Attach the release archives to the GitHub release of the tag
        if: startsWith(github.ref, 'refs/tags/')
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          GH_REPO: ${{{{ github.repository }}}}
          TAG: ${{{{ github.ref_name }}}}
        run: |
          set -euo pipefail
          shopt -s nullglob
          files=(dist/archives/*.tar.gz)
          if [[ ${{#files[@]}} -eq 0 ]]; then
            echo '::notice title=shipit::no release archives in dist/archives (archives: false in the pipeline?); nothing attached'
            exit 0
          fi
          if ! gh release view \"$TAG\" >/dev/null 2>&1; then
            gh release create \"$TAG\" --verify-tag --title \"$TAG\" --notes \"\"
          fi
          gh release upload \"$TAG\" \"${{files[@]}}\" dist/archives/SHA256SUMS --clobber
{attest_steps}      - name: Keep the release report
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
        host = host.replace(['\r', '\n'], " "),
        attest_permissions = if opts.attest_build_provenance {
            "
      id-token: write       # actions/attest-build-provenance: a Sigstore certificate for this run
      attestations: write   # actions/attest-build-provenance: store the attestation"
        } else {
            ""
        },
        attest_steps = if opts.attest_build_provenance {
            MERGE_ATTEST_STEPS
        } else {
            ""
        },
        // A platform job builds only its own targets: all of target/shipit, under its slug.
        caches = cache_steps(
            &[(
                "${{ matrix.slug }}".to_string(),
                vec!["target/shipit/*".to_string()]
            )],
            &opts.config_path
        ),
    );
    y
}

/// The merge job's steps for `actions/attest-build-provenance`: each image's index digest from
/// the release report (at most two images: gnu and musl), then one attestation each.
const MERGE_ATTEST_STEPS: &str = "      - name: Pushed digests, for GitHub's build provenance
        id: digests
        run: |
          python3 - <<'PY' >>\"$GITHUB_OUTPUT\"
          import json
          report = json.load(open(\"dist/release.json\"))
          for n, image in enumerate(report[\"images\"][:2], start=1):
              print(f\"name{n}={image['repository']}\")
              print(f\"digest{n}={image['index_digest']}\")
          PY
      - name: GitHub build provenance of the first image
        if: steps.digests.outputs.digest1 != ''
        uses: actions/attest-build-provenance@v2
        with:
          subject-name: ${{ steps.digests.outputs.name1 }}
          subject-digest: ${{ steps.digests.outputs.digest1 }}
          push-to-registry: true
      - name: GitHub build provenance of the second image
        if: steps.digests.outputs.digest2 != ''
        uses: actions/attest-build-provenance@v2
        with:
          subject-name: ${{ steps.digests.outputs.name2 }}
          subject-digest: ${{ steps.digests.outputs.digest2 }}
          push-to-registry: true
";

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
            attest_build_provenance: false,
        };
        let y = generate_workflow(&opts);
        assert!(y.contains("SHIPIT_CONFIG: 'deploy/it''s.yaml'"), "{y}");
        assert!(y.contains("- platform: 'linux/arm64'\n            runs-on: 'ubuntu-24.04-arm'"));
        assert!(y.contains("- platform: 'linux/arm/v7'\n            runs-on: 'ubuntu-latest'\n            slug: 'linux-arm-v7'"));
        assert!(y.contains("fail-fast: true"));
        assert!(y.contains("needs: platform"));
        assert!(!y.contains("--password"));
        // Each platform job caches its build under its slug, plus cargo's registry and the debs.
        assert!(y.contains("key: shipit-target-${{ runner.os }}-${{ runner.arch }}-${{ matrix.slug }}-${{ hashFiles('**/Cargo.lock') }}"), "{y}");
        assert!(y.contains("key: shipit-debs-${{ runner.os }}-${{ runner.arch }}-${{ hashFiles('deploy/it''s.yaml') }}"), "{y}");
        let single = generate_workflow(&WorkflowOptions::default());
        assert!(single.contains(&format!("uses: {SHIPIT_ACTION}")));
        assert!(!single.contains("matrix"));
        assert!(single.contains("~/.cargo/registry/index/"));
        assert!(single.contains(DEBS_CACHE));
    }

    #[test]
    fn the_single_job_caches_each_target() {
        let y = generate_workflow(&WorkflowOptions {
            platforms: vec!["linux/amd64".into(), "linux/arm/v7".into()],
            ..WorkflowOptions::default()
        });
        assert!(y.contains("            target/shipit/x86_64-unknown-linux-gnu\n            target/shipit/x86_64-unknown-linux-musl\n          key: shipit-target-${{ runner.os }}-${{ runner.arch }}-linux-amd64-${{ hashFiles('**/Cargo.lock') }}\n"), "{y}");
        assert!(
            y.contains("target/shipit/armv7-unknown-linux-musleabihf"),
            "{y}"
        );
        assert_eq!(y.matches("uses: actions/cache@v4").count(), 4);
        // The caches are restored before shipit runs.
        assert!(y.find("actions/cache").unwrap() < y.find(SHIPIT_ACTION).unwrap());
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
