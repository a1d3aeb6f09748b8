//! The release's ends: the doctor gate before anything is built, and the report after the
//! push (`dist/release.json`, the summary table, GitHub Actions outputs). The stages in between
//! run in the one order of `stage::RELEASE`, walked by `stage::pipeline`.

use super::{package, publish, verify};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::session::Session;
use crate::ui::Ui;
use serde::Serialize;
use std::io::Read;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    pub version: String,
    pub revision: Option<String>,
    pub published_to: String,
    pub seconds: f64,
    pub images: Vec<ImageReport>,
    pub blobs_uploaded: u64,
    pub blobs_skipped: u64,
    /// Every statement attached as an OCI referrer (`attest:`), in push order.
    pub attachments: Vec<super::attach::Attachment>,
    /// The release archives in `dist/archives` (name, target, digest, size), sorted by name;
    /// empty when none were written (`archives: false`, a merge job).
    pub archives: Vec<super::archives::Archive>,
    /// Wall-clock seconds of each stage that ran, in pipeline order (the report's own
    /// writing is not in it): where a release spends its time.
    pub stages: Vec<StageTime>,
}

/// How long one stage of the pipeline took.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub variant: String,
    pub repository: String,
    pub index_digest: String,
    pub tags_moved: Vec<String>,
    pub tags_unchanged: Vec<String>,
    pub platforms: Vec<PlatformReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    pub platform: String,
    pub target: String,
    pub manifest_digest: String,
    pub compressed_size: u64,
    pub verify_seconds: f64,
    /// The verification was reused from an earlier run with identical bytes and checks
    /// (`dist/cache/verified.json`): nothing ran this time.
    pub cached: bool,
    pub checks: Vec<crate::verify::checks::CheckResult>,
    /// The base image: its name as `image.base` gives it and the digest of its manifest for
    /// this platform (`null` on scratch).
    pub base: Option<super::image_rules::BaseImage>,
}

pub fn read_password_stdin(wanted: bool) -> Result<Option<String>> {
    if !wanted {
        return Ok(None);
    }
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        // An unreadable standard input is the machine's (exit 3), like unusable credentials.
        .map_err(|e| Error::env(format!("--password-stdin: {e}")))?;
    let pw = s.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(Error::env("--password-stdin: nothing on standard input"));
    }
    Ok(Some(pw))
}

/// Every tool the plan needs is here (exit 3 before anything is built, when not).
pub fn doctor_gate(s: &Session) -> Result<()> {
    let (cfg, plan, cancel) = (&s.config, &s.plan, &s.opts.cancel);
    // Versions probed by an earlier run of the same tools are not probed again.
    let findings = crate::tools::doctor::check(
        plan,
        true,
        cfg.package == crate::config::Packager::Docker,
        crate::tools::doctor::Probing::Remembered {
            out: &plan.out_dir,
            inventory: &s.facts.tools,
        },
        cancel,
    );
    let blocking = crate::tools::doctor::blocking(&findings);
    if blocking.is_empty() {
        return Ok(());
    }
    Err(Error::env("tools this release needs are missing; nothing was built or pushed (run `shipit doctor --fix`)").with_detail(
        blocking.iter().map(|f| format!("  {}: needed for {} — install: {}", f.tool, f.needed_for.join("; "), f.install.command())).collect::<Vec<_>>().join("\n"),
    ))
}

/// What the release report is made of: everything the stages made, and their timings.
pub struct Outcome<'a> {
    pub packaged: &'a package::Packaged,
    pub verified: &'a verify::Report,
    pub published: &'a publish::Published,
    pub attached: &'a super::attach::Attached,
    pub archives: &'a super::archives::Archives,
    pub stages: Vec<StageTime>,
}

/// The release report of what this run packaged, verified and published.
pub fn finish(s: &Session, made: Outcome<'_>, started: Instant, ui: &Ui) -> Result<()> {
    let Outcome {
        packaged,
        verified,
        published,
        attached,
        archives,
        stages,
    } = made;
    let plan = &s.plan;
    let images = packaged
        .images
        .iter()
        .map(|img| {
            let pubd = published
                .images
                .iter()
                .find(|p| p.variant == img.variant.name());
            ImageReport {
                variant: img.variant.to_string(),
                repository: img.repository.clone(),
                index_digest: img.index.digest.to_string(),
                tags_moved: pubd.map(|p| p.tags_moved.clone()).unwrap_or_default(),
                tags_unchanged: pubd.map(|p| p.tags_unchanged.clone()).unwrap_or_default(),
                platforms: img
                    .platforms
                    .iter()
                    .map(|p| {
                        let v = verified
                            .platforms
                            .iter()
                            .find(|r| r.digest == p.manifest.digest.as_str());
                        PlatformReport {
                            platform: p.platform.clone(),
                            target: p.target.clone(),
                            manifest_digest: p.manifest.digest.to_string(),
                            compressed_size: p.compressed_size,
                            verify_seconds: v.map(|v| v.seconds).unwrap_or(0.0),
                            cached: v.is_some_and(|v| v.cached),
                            checks: v.map(|v| v.checks.clone()).unwrap_or_default(),
                            base: p.base.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let report = ReleaseReport {
        version: plan.version.to_string(),
        revision: plan.revision.clone(),
        published_to: published.target.clone(),
        seconds: started.elapsed().as_secs_f64(),
        images,
        blobs_uploaded: published.blobs_uploaded,
        blobs_skipped: published.blobs_skipped,
        attachments: attached.attachments.clone(),
        stages,
        archives: archives.archives.clone(),
    };
    write_report(plan, &report, s.opts.json, ui)
}

/// Writes `dist/release.json`, prints the summary (or the JSON), and in GitHub Actions the step
/// summary and the `digest`/`tags` outputs.
pub fn write_report(plan: &Plan, report: &ReleaseReport, json: bool, ui: &Ui) -> Result<()> {
    ui.end_groups();
    std::fs::create_dir_all(&plan.out_dir).map_err(|e| Error::io(&plan.out_dir, e))?;
    let path = plan.out_dir.join("release.json");
    let text = serde_json::to_string_pretty(&report)?;
    package::write_atomically(&path, (text.clone() + "\n").as_bytes())?;
    if json {
        println!("{text}");
    } else {
        print_summary(report);
    }
    if ui.github {
        // $GITHUB_OUTPUT is the runner's file: failing to write it is environmental (exit 3).
        github_outputs(report).map_err(|e| Error::env(format!("GitHub Actions outputs: {e}")))?;
    }
    ui.ok(format!(
        "released {} in {:.1}s; report in {}",
        report.version,
        report.seconds,
        path.display()
    ));
    Ok(())
}

pub fn print_summary(r: &ReleaseReport) {
    println!("release {} → {}", r.version, r.published_to);
    for img in &r.images {
        println!();
        println!(
            "{} ({}) index {}",
            img.repository, img.variant, img.index_digest
        );
        let tags: Vec<String> = img
            .tags_moved
            .iter()
            .cloned()
            .chain(
                img.tags_unchanged
                    .iter()
                    .map(|t| format!("{t} (unchanged)")),
            )
            .collect();
        println!("tags: {}", tags.join(", "));
        println!(
            "  {:<14} {:<21} {:>10}  {:<22} {:>7}",
            "platform", "digest", "size", "checks", "time"
        );
        for p in &img.platforms {
            let passed = p.checks.iter().filter(|c| c.passed).count();
            println!(
                "  {:<14} {:<21} {:>10}  {:<22} {:>6.2}s",
                p.platform,
                &p.manifest_digest[..19.min(p.manifest_digest.len())],
                crate::verify::checks::human(p.compressed_size),
                format!("{passed}/{} passed", p.checks.len()),
                p.verify_seconds
            );
        }
    }
    if !r.attachments.is_empty() {
        let signed = r.attachments.iter().filter(|a| a.signed).count();
        println!();
        println!(
            "attached {} statements as OCI referrers ({signed} signed)",
            r.attachments.len()
        );
    }
    if !r.archives.is_empty() {
        println!();
        println!("archives (with SHA256SUMS):");
        for a in &r.archives {
            println!(
                "  {:<56} {:>10}  {}",
                a.name,
                crate::verify::checks::human(a.size),
                &a.digest[..19.min(a.digest.len())]
            );
        }
    }
}

/// In GitHub Actions: `digest` (the first image's index) and `tags` (every `repo:tag`, one per
/// line) in `$GITHUB_OUTPUT`, and the Markdown table in `$GITHUB_STEP_SUMMARY`.
fn github_outputs(report: &ReleaseReport) -> std::result::Result<(), String> {
    use crate::ci::github::{
        self as gh, CheckSummary, ImageSummary, PlatformSummary, ReleaseSummary,
    };
    if let Some(first) = report.images.first() {
        gh::write_output("digest", &first.index_digest)?;
    }
    let tags: Vec<String> = report
        .images
        .iter()
        .flat_map(|i| {
            i.tags_moved
                .iter()
                .chain(i.tags_unchanged.iter())
                .map(move |t| format!("{}:{t}", i.repository))
        })
        .collect();
    gh::write_output("tags", &tags.join("\n"))?;
    let summary = ReleaseSummary {
        version: report.version.clone(),
        images: report
            .images
            .iter()
            .map(|i| ImageSummary {
                variant: i.variant.clone(),
                repository: i.repository.clone(),
                index_digest: i.index_digest.clone(),
                tags_moved: i.tags_moved.clone(),
                platforms: i
                    .platforms
                    .iter()
                    .map(|p| PlatformSummary {
                        platform: p.platform.clone(),
                        digest: p.manifest_digest.clone(),
                        size: p.compressed_size,
                        checks: p
                            .checks
                            .iter()
                            .map(|c| CheckSummary {
                                name: c.name.clone(),
                                passed: c.passed,
                                seconds: c.seconds,
                            })
                            .collect(),
                        seconds: p.verify_seconds,
                    })
                    .collect(),
            })
            .collect(),
    };
    gh::append_step_summary(&gh::summary_markdown(&summary))?;
    Ok(())
}
