//! cargo: `cargo build --target T` with the linker given through `CARGO_TARGET_<T>_LINKER`
//! (nothing is written into the user's `.cargo/config.toml`), and `cargo metadata` for facts.

use super::{BuildSpec, common_cargo_args, target_env};
use crate::exec::Cmd;
use std::path::Path;

pub const MIN: semver::Version = semver::Version::new(1, 75, 0);

pub fn build(s: &BuildSpec) -> Cmd {
    let mut cmd = Cmd::new("cargo", format!("build {} ({})", s.platform.name, s.libc))
        .args(["build", "--target", s.target]);
    cmd = common_cargo_args(s, cmd);
    if let Some(linker) = s.linker {
        cmd = cmd.env(target_env(s.target, "LINKER"), linker);
    }
    cmd
}

/// `cargo metadata` for the package facts (no dependencies resolved, no network).
pub fn metadata(manifest: &Path) -> Cmd {
    Cmd::new("cargo", "read the Cargo manifest").args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
        "--manifest-path",
        &manifest.display().to_string(),
    ])
}

/// Reads the package facts the planner needs from `cargo metadata`.
pub fn facts(
    manifest: &Path,
    package: Option<&str>,
) -> Result<
    (
        String,
        semver::Version,
        Vec<String>,
        std::path::PathBuf,
        std::path::PathBuf,
    ),
    String,
> {
    let out = crate::exec::capture(
        &metadata(manifest),
        std::time::Duration::from_secs(120),
        // TODO(session): take the token from the Session
        &crate::exec::Cancel::current(),
    )
    .map_err(|e| match e.tail() {
        Some(t) => format!("{e}\n{t}"),
        None => e.to_string(),
    })?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    let target_dir = v["target_directory"].as_str().unwrap_or("target").into();
    let members: Vec<&str> = v["workspace_members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
        .unwrap_or_default();
    let packages: Vec<&serde_json::Value> = v["packages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let manifest_abs = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let chosen = match package {
        Some(name) => packages.iter().find(|p| p["name"] == name).ok_or_else(|| {
            format!(
                "project.package: no package `{name}` in {} (it has: {})",
                manifest.display(),
                packages
                    .iter()
                    .filter_map(|p| p["name"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => match packages.as_slice() {
            [one] => one,
            many => many
                .iter()
                .find(|p| {
                    p["manifest_path"].as_str().map(Path::new) == Some(manifest_abs.as_path())
                })
                .ok_or_else(|| {
                    format!(
                        "{} is a workspace of {} packages: say which one with project.package",
                        manifest.display(),
                        many.len()
                    )
                })?,
        },
    };
    let name = chosen["name"].as_str().unwrap_or_default().to_string();
    let version = semver::Version::parse(chosen["version"].as_str().unwrap_or("0.0.0"))
        .map_err(|e| format!("package version: {e}"))?;
    let bins = chosen["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let manifest_path = chosen["manifest_path"].as_str().unwrap_or_default().into();
    Ok((name, version, bins, manifest_path, target_dir))
}
