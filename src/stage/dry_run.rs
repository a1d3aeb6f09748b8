//! `--dry-run`: what a command would do, described from the Plan alone, stage by stage in the
//! pipeline's one order. `release`, `publish`, `release --split`, `smoke` and `package` print
//! through here, so the same push is described in the same words whichever command would do it.

use super::{Mode, Stage, Step};
use crate::config::{Config, PublishTo};
use crate::plan::Plan;

/// Where publish pushes: `oci:PATH` or the image repository.
pub fn target(cfg: &Config) -> String {
    match &cfg.publish.to {
        PublishTo::Oci(p) => format!("oci:{}", p.display()),
        PublishTo::Registry => cfg.image.repository.clone(),
    }
}

/// Prints the dry run of `steps` (as `mode` runs them) on stdout.
pub fn print(cfg: &Config, plan: &Plan, mode: Mode, steps: &[Step]) {
    println!(
        "# shipit {} {} (dry run: nothing is built, written or pushed)",
        mode.command(),
        plan.version
    );
    for step in steps {
        if let Some(why) = step.skip {
            println!("# skip {}: {why}", step.stage.name());
            continue;
        }
        if step.stage == Stage::Build {
            // The build commands, exactly as `shipit build --dry-run` prints them.
            super::build::print_dry_run(plan);
            continue;
        }
        for line in lines(cfg, plan, mode, step.stage) {
            println!("{line}");
        }
    }
}

/// The lines describing one stage (the build stage is `build::print_dry_run`).
pub fn lines(cfg: &Config, plan: &Plan, mode: Mode, stage: Stage) -> Vec<String> {
    let mut out = Vec::new();
    let target = target(cfg);
    match stage {
        Stage::Doctor => out.push("# doctor: check every tool the plan needs".to_string()),
        Stage::Build => {}
        Stage::Package => {
            for (img, p) in plan.platforms() {
                out.push(format!(
                    "# package {} ({}) on {} into {}",
                    p.platform,
                    img.variant,
                    img.base,
                    plan.out_dir.join("oci").display()
                ));
                if let (Some(d), Some(pd)) = (&img.deb, &p.deb) {
                    out.push(format!(
                        "#   deb:{} {}: {} ({})",
                        d.suite,
                        pd.arch,
                        match &pd.locked {
                            Some(pkgs) => pkgs
                                .iter()
                                .map(|x| format!("{} {}", x.name, x.version))
                                .collect::<Vec<_>>()
                                .join(", "),
                            None => d.packages.join(", "),
                        },
                        pd.describe_source()
                    ));
                }
            }
        }
        Stage::Verify => {
            for (img, p) in plan.platforms() {
                out.push(format!(
                    "# verify {} ({}) under {} -cpu {}",
                    p.platform,
                    img.variant,
                    p.qemu.as_deref().unwrap_or("the host (native)"),
                    p.cpu.as_deref().unwrap_or("max")
                ));
            }
        }
        Stage::Publish => {
            // Every blob, manifest and index by digest; the tags are the tag stage's.
            for img in &plan.images {
                for p in &img.platforms {
                    out.push(format!(
                        "push {} ({}) blobs and manifest by digest to {target}",
                        p.platform, img.variant
                    ));
                    if mode == Mode::Split {
                        out.push(format!(
                            "# write {}",
                            super::split::fragment_path(&plan.out_dir, img.variant, p.spec.slug())
                                .display()
                        ));
                    }
                }
                if mode != Mode::Split {
                    out.push(format!("push {} index by digest to {target}", img.variant));
                }
            }
        }
        Stage::Archives => {
            let mut targets: Vec<&str> = Vec::new();
            for (_, p) in plan.platforms() {
                if !targets.contains(&p.target.as_str()) {
                    targets.push(&p.target);
                }
            }
            let dir = super::archives::dir(plan);
            for t in targets {
                out.push(format!(
                    "# archive {}",
                    dir.join(format!("{}-{}-{t}.tar.gz", plan.project.bin, plan.version))
                        .display()
                ));
            }
            out.push(format!(
                "# checksums {}",
                dir.join(super::archives::SUMS).display()
            ));
        }
        Stage::Attach => out.extend(super::attach::describe(cfg, plan)),
        Stage::Tag => {
            for img in &plan.images {
                for t in &img.tags {
                    out.push(format!("tag {target}:{t}"));
                }
            }
        }
        Stage::Report => out.push(format!(
            "# report {}",
            plan.out_dir.join("release.json").display()
        )),
    }
    out
}
