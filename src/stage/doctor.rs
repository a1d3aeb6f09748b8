//! `shipit doctor [--fix]`: report the tools the plan needs, install what can be installed.

use crate::config::Packager;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::tools::doctor::{self, Probing, Status};
use crate::ui::Ui;

pub fn run(s: &Session, fix: bool, ui: &Ui) -> Result<()> {
    let (cfg, plan, g) = (&s.config, &s.plan, &s.opts);
    let docker_packager = cfg.package == Packager::Docker;
    let mut findings = doctor::check(plan, true, docker_packager, Probing::Fresh, &g.cancel);
    if fix {
        let cmds = doctor::fix_commands(&findings);
        if cmds.is_empty() {
            ui.info("doctor: nothing to install");
        }
        let root = unsafe { libc::geteuid() } == 0;
        for cmd in &cmds {
            if cmd.program == "apt-get" && !root {
                ui.warn(format!("not root: run `sudo {}` yourself", cmd.display()));
                continue;
            }
            ui.step(&cmd.purpose);
            ui.info(format!("  $ {}", cmd.display()));
            if g.dry_run {
                continue;
            }
            let log = g.out.join("logs/doctor.log");
            match crate::exec::run_logged(
                cmd,
                &log,
                Some(std::time::Duration::from_secs(1800)),
                &g.cancel,
            ) {
                Ok(_) => {}
                // A rust-std that rustup does not serve is fine: -Zbuild-std covers it.
                Err(e)
                    if cmd.program == "rustup"
                        && cmd.args.first().is_some_and(|a| a == "target") =>
                {
                    ui.warn(format!(
                        "{e}; shipit will build std with -Zbuild-std instead"
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        findings = doctor::check(plan, true, docker_packager, Probing::Fresh, &g.cancel);
    }
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        );
    } else {
        for f in &findings {
            let status = match (f.status, f.required) {
                (Status::Ok, _) => "ok      ",
                (Status::Missing, true) => "MISSING ",
                (Status::Missing, false) => "optional",
                (Status::TooOld, _) => "TOO OLD ",
            };
            let version = match (&f.version, &f.minimum) {
                (Some(v), Some(m)) => format!("{v} (>= {m})"),
                (Some(v), None) => v.clone(),
                (None, Some(m)) => format!("(needs >= {m})"),
                (None, None) => String::new(),
            };
            println!(
                "{status}  {:<28} {:<22} for {}",
                f.tool,
                version,
                f.needed_for.join("; ")
            );
            if f.status != Status::Ok {
                println!("          install: {}", f.install.command());
            }
        }
    }
    // C libraries per target: what the crate graph links and what provides it.
    let build_packages = plan
        .sysroots
        .as_ref()
        .map(|s| s.build_packages.clone())
        .unwrap_or_default();
    let libs = match crate::syslibs::check(plan, &build_packages, &g.cancel) {
        Ok(libs) => libs,
        Err(e) => {
            ui.warn(format!("C libraries not diagnosed: {}", e.message()));
            Vec::new()
        }
    };
    if !g.json {
        for line in crate::syslibs::render(&libs) {
            println!("{line}");
        }
        // The gnu targets' build sysroots, as pipeline.lock and what is assembled say.
        if plan.sysroots.is_some() {
            let mut annotated = plan.clone();
            super::sysroots::annotate(&mut annotated);
            for line in annotated.sysroots.iter().flat_map(|s| s.render()) {
                println!("{line}");
            }
        }
    }
    let blocking = doctor::blocking(&findings);
    if blocking.is_empty() {
        ui.ok("every tool the plan needs is here");
        crate::syslibs::require_provided(&libs)
    } else {
        Err(Error::env(format!(
            "{} required tool{} missing or too old: {}; run `shipit doctor --fix` (or the install commands above)",
            blocking.len(),
            if blocking.len() == 1 { " is" } else { "s are" },
            blocking
                .iter()
                .map(|f| f.tool.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
