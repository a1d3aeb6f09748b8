//! The `verify` command: where the images come from, which checks apply, and how the report is
//! shown; also the settings and items the pipeline's verify stage uses. The verification itself
//! is `stage::verify`.

use super::verify::{self as v, Item, Settings};
use crate::config::{Check, CheckKind, Config, CpuMode};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::session::{RunOptions, Session, load_config};
use crate::ui::Ui;
use crate::verify::checks::Policy;
use std::time::Duration;

/// What `shipit verify` was asked, as plain values.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// `oci:DIR[:TAG]` or `REGISTRY/REPO[:TAG|@DIGEST]`; `None`: what `package` made.
    pub image: Option<String>,
    /// A run check: the entrypoint with these arguments (shell-quoted).
    pub run: Option<String>,
    /// With `run`: a regex its stdout must match.
    pub expect_stdout: Option<String>,
    pub allow_root: bool,
    pub insecure: bool,
    /// An SPKI PEM public key: check IMAGE's attestations against it instead of running it.
    pub key: Option<std::path::PathBuf>,
}

/// Settings from the pipeline (if any) and the command line.
pub fn settings(
    cfg: Option<&Config>,
    args: Option<&VerifyOptions>,
    opts: &RunOptions,
) -> Result<Settings> {
    let mut checks: Vec<Check> = cfg.map(|c| c.verify.checks.clone()).unwrap_or_default();
    if let Some(run) = args.and_then(|a| a.run.as_deref()) {
        let argv = shlex::split(run)
            .ok_or_else(|| Error::config(format!("--run {run:?}: unbalanced quotes")))?;
        if let Some(re) = args.and_then(|a| a.expect_stdout.as_deref()) {
            regex::Regex::new(re).map_err(|e| Error::config(format!("--expect-stdout: {e}")))?;
        }
        checks = vec![Check {
            name: "run".into(),
            kind: CheckKind::Run {
                args: argv,
                stdout: args.and_then(|a| a.expect_stdout.clone()),
                stderr: None,
                exit: 0,
                timeout: Duration::from_secs(30),
            },
        }];
    }
    Ok(Settings {
        checks,
        policy: Policy {
            glibc_floor: cfg.and_then(|c| c.build.glibc),
            allow_root: args.is_some_and(|a| a.allow_root)
                || cfg.is_some_and(|c| c.verify.allow_root),
            max_size: cfg.and_then(|c| c.verify.max_size),
        },
        cpu: cfg.map(|c| c.verify.cpu).unwrap_or(CpuMode::Strict),
        jobs: opts.jobs(),
        cache: None,
        cancel: opts.cancel.clone(),
        earlier: super::verify::none_earlier(),
    })
}

/// The platform images `package` made (dist/package.json), filtered like the plan.
pub fn packaged_items(plan: &Plan) -> Result<Vec<Item>> {
    let packaged = super::package::load_for(plan)?;
    let mut items = Vec::new();
    for img in &packaged.images {
        let Some(planned) = plan.images.iter().find(|i| i.variant == img.variant) else {
            continue;
        };
        for p in &img.platforms {
            if !planned.platforms.iter().any(|pp| pp.platform == p.platform) {
                continue;
            }
            items.push(Item {
                image: img.repository.clone(),
                variant: Some(img.variant),
                layout: packaged.layout.clone(),
                manifest: p.manifest.clone(),
                index_platform: p.manifest.platform.clone(),
            });
        }
    }
    if items.is_empty() {
        return Err(Error::stage(
            "dist/package.json lists none of the planned platforms: run `shipit package` first",
        ));
    }
    Ok(items)
}

pub fn run(g: &RunOptions, args: &VerifyOptions, ui: &Ui) -> Result<()> {
    if let (Some(key), Some(image)) = (&args.key, &args.image) {
        let insecure = args.insecure || publish_insecure(g, ui)?;
        return super::verify_attest::run(image, Some(key), insecure, g, ui);
    }
    let (cfg, items) = match &args.image {
        None => {
            let s = Session::load(g.clone(), ui)?;
            let items = packaged_items(&s.plan)?;
            (Some(s.config), items)
        }
        Some(image) => {
            // The pipeline's checks apply when there is one; flags override.
            let cfg = if g.config.exists() {
                Some(load_config(g, ui)?)
            } else {
                None
            };
            let items = if image.starts_with("oci:") {
                v::items_from_oci(image)?
            } else {
                let insecure = args.insecure || cfg.as_ref().is_some_and(|c| c.publish.insecure);
                super::pull::pull(image, &g.out.join("pulled"), insecure, &g.cancel, ui)?
            };
            let items = filter(items, &g.platforms)?;
            (cfg, items)
        }
    };
    let settings = settings(cfg.as_ref(), Some(args), g)?;
    if settings.checks.is_empty() {
        ui.warn("no run or serve checks: only static checks (add verify.checks to the pipeline, or --run ARGS)");
    }
    if g.dry_run {
        for i in &items {
            println!(
                "# verify {} {} ({})",
                v::shown(&i.image, i.variant),
                i.index_platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                i.manifest.digest
            );
        }
        return Ok(());
    }
    let report = v::run(&items, &settings, ui)?;
    let Some(image) = &args.image else {
        return finish(report, g.json);
    };
    // What is attached to the image (signatures unchecked: `--key` checks them).
    let insecure = args.insecure || cfg.as_ref().is_some_and(|c| c.publish.insecure);
    let attached = match super::verify_attest::check(image, None, insecure, g) {
        Ok(a) => Some(a),
        Err(e) => {
            ui.verbose(format!(
                "could not list what is attached to {image}: {}",
                e.message()
            ));
            None
        }
    };
    if g.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        value["attachments"] = serde_json::to_value(&attached).unwrap_or_default();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if let Some(a) = &attached {
        super::verify_attest::print(a, false);
    }
    match v::failure(&report) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `publish.insecure` of the pipeline, when there is one.
fn publish_insecure(g: &RunOptions, ui: &Ui) -> Result<bool> {
    if !g.config.exists() {
        return Ok(false);
    }
    Ok(load_config(g, ui)?.publish.insecure)
}

fn filter(items: Vec<Item>, platforms: &[String]) -> Result<Vec<Item>> {
    if platforms.is_empty() {
        return Ok(items);
    }
    let wanted: Vec<_> = platforms
        .iter()
        .map(|p| {
            crate::platform::Platform::parse(p)
                .ok_or_else(|| Error::config(format!("--platform {p}: unknown platform")))
        })
        .collect::<Result<_>>()?;
    Ok(items
        .into_iter()
        .filter(|i| {
            i.index_platform
                .as_ref()
                .and_then(|p| {
                    crate::platform::Platform::from_oci(
                        &p.os,
                        &p.architecture,
                        p.variant.as_deref(),
                    )
                })
                .is_none_or(|p| wanted.contains(&p))
        })
        .collect())
}

/// Prints the report and turns failures into exit 1.
pub fn finish(report: v::Report, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    match v::failure(&report) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
