//! Human and machine output of results: the plan table, the build summary, `release.json`.

use crate::plan::Plan;
use crate::syslibs::TargetLibs;
use crate::ui::Ui;

/// `shipit plan`: a table on stdout, or the JSON document with `--json`; `syslibs` (the C
/// libraries per target, `None` when the graph could not be read) under `"syslibs"`.
pub fn print_plan(plan: &Plan, syslibs: Option<&[TargetLibs]>, ui: &Ui) {
    if ui.json {
        let mut doc = plan.to_json();
        if let (Some(libs), Some(obj)) = (syslibs, doc.as_object_mut()) {
            obj.insert(
                "syslibs".into(),
                serde_json::to_value(libs).unwrap_or_default(),
            );
        }
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    println!(
        "{} {} (revision {}, SOURCE_DATE_EPOCH {})",
        plan.project.package,
        plan.version,
        plan.revision
            .as_deref()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("none"),
        plan.source_date_epoch
    );
    println!(
        "binary {} · publish to {}",
        plan.project.bin, plan.publish_to
    );
    for image in &plan.images {
        println!();
        println!(
            "image {} ({}) on {}  tags: {}",
            image.repository,
            image.variant,
            image.base,
            image.tags.join(", ")
        );
        for d in &image.dropped_tags {
            println!("  no tag from `{}`: {}", d.template, d.reason);
        }
        let rows: Vec<[String; 6]> = image
            .platforms
            .iter()
            .map(|p| {
                [
                    p.platform.to_string(),
                    p.target.clone(),
                    format!(
                        "{}{}",
                        p.backend.name(),
                        if p.build_std { " +build-std" } else { "" }
                    ),
                    match (p.backend, &p.linker) {
                        (crate::config::Backend::Zigbuild, _) => "zig cc (cargo-zigbuild)".into(),
                        (crate::config::Backend::Cross, _) => "cross's container toolchain".into(),
                        (_, Some(l)) => l.clone(),
                        (_, None) => "default".into(),
                    },
                    p.qemu.clone().unwrap_or_else(|| "native".into()),
                    p.cpu.clone().unwrap_or_else(|| "max".into()),
                ]
            })
            .collect();
        let head = ["platform", "target", "backend", "linker", "qemu", "cpu"];
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("  {}", line(&head.map(String::from)));
        for (r, p) in rows.iter().zip(&image.platforms) {
            println!("  {}", line(r));
            println!("      why: {}", p.backend_reason);
            if !p.missing.is_empty() {
                println!(
                    "      missing here: {} (run `shipit doctor --fix`)",
                    p.missing.join(", ")
                );
            }
            if let (Some(d), Some(img)) = (&p.deb, &image.deb) {
                match &d.locked {
                    Some(pkgs) => println!(
                        "      base deb:{} {} from {}: {}",
                        img.suite,
                        d.arch,
                        d.describe_source(),
                        pkgs.iter()
                            .map(|p| format!("{} {}", p.name, p.version))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => println!(
                        "      base deb:{} {}: {} + {}, {}",
                        img.suite,
                        d.arch,
                        crate::deb::names::BASE_PACKAGES.join(", "),
                        if img.packages.is_empty() {
                            "no image.packages".to_string()
                        } else {
                            img.packages.join(", ")
                        },
                        d.describe_source()
                    ),
                }
            }
        }
    }
    let lines = syslibs.map(crate::syslibs::render).unwrap_or_default();
    if !lines.is_empty() {
        println!();
        println!("C libraries (crates with a `links` key):");
        for l in lines {
            println!("  {l}");
        }
    }
}
