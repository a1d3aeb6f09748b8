//! cargo: `cargo build --target T` with the linker given through `CARGO_TARGET_<T>_LINKER`
//! (nothing is written into the user's `.cargo/config.toml`), and `cargo metadata` for facts.

use super::{BuildSpec, common_cargo_args, target_env};
use crate::exec::Cmd;
use serde::Deserialize;
use std::path::{Path, PathBuf};

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

/// `cargo metadata` with the dependency graph resolved for one target and the plan's features:
/// what the sys-crate diagnosis reads (`syslibs`). It may update the lock file and download
/// crate manifests, as `cargo build` would.
pub fn metadata_for_target(manifest: &Path, target: &str, features: &[String]) -> Cmd {
    let mut cmd = Cmd::new("cargo", format!("read the dependency graph for {target}")).args([
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        target,
        "--manifest-path",
        &manifest.display().to_string(),
    ]);
    if !features.is_empty() {
        cmd = cmd.args(["--features", &features.join(",")]);
    }
    cmd
}

/// The part of `cargo metadata --format-version 1` shipit reads.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    target_directory: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    license_file: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    homepage: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// Package facts: name, version, binaries, manifest path, target directory, descriptive keys.
pub type Facts = (
    String,
    semver::Version,
    Vec<String>,
    PathBuf,
    PathBuf,
    crate::plan::CrateMeta,
);

/// Reads the package facts the planner needs from `cargo metadata`.
pub fn facts(
    manifest: &Path,
    package: Option<&str>,
    cancel: &crate::exec::Cancel,
) -> Result<Facts, String> {
    let out = crate::exec::capture(
        &metadata(manifest),
        std::time::Duration::from_secs(120),
        cancel,
    )
    .map_err(|e| match e.tail() {
        Some(t) => format!("{e}\n{t}"),
        None => e.to_string(),
    })?;
    parse_facts(&out, manifest, package)
}

/// The facts of `package` (default: the only member, or the manifest's own package) in the output
/// of `cargo metadata`.
fn parse_facts(out: &str, manifest: &Path, package: Option<&str>) -> Result<Facts, String> {
    let meta: Metadata = serde_json::from_str(out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    let packages: Vec<&Package> = meta
        .packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id))
        .collect();
    let manifest_abs = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let chosen: &Package = match package {
        Some(name) => packages.iter().find(|p| p.name == name).ok_or_else(|| {
            format!(
                "project.package: no package `{name}` in {} (it has: {})",
                manifest.display(),
                packages
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => match packages.as_slice() {
            [one] => one,
            many => many
                .iter()
                .find(|p| p.manifest_path == manifest_abs)
                .ok_or_else(|| {
                    format!(
                        "{} is a workspace of {} packages: say which one with project.package",
                        manifest.display(),
                        many.len()
                    )
                })?,
        },
    };
    let version =
        semver::Version::parse(&chosen.version).map_err(|e| format!("package version: {e}"))?;
    let bins = chosen
        .targets
        .iter()
        .filter(|t| t.kind.iter().any(|k| k == "bin"))
        .map(|t| t.name.clone())
        .collect();
    let (name, manifest_path, target_dir) = (
        chosen.name.clone(),
        chosen.manifest_path.clone(),
        meta.target_directory,
    );
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let crate_meta = crate::plan::CrateMeta {
        repository: nonempty(&chosen.repository),
        license: nonempty(&chosen.license),
        // cargo metadata gives `license-file` relative to the package's manifest.
        license_file: nonempty(&chosen.license_file)
            .map(|f| manifest_path.parent().unwrap_or(Path::new(".")).join(f)),
        description: nonempty(&chosen.description),
        homepage: nonempty(&chosen.homepage),
    };
    Ok((name, version, bins, manifest_path, target_dir, crate_meta))
}

/// A workspace member as `shipit init` needs it: its name, version and binary targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub version: semver::Version,
    pub bins: Vec<String>,
}

/// Every member of the workspace (or the one package) of `manifest`, in `cargo metadata` order.
pub fn members(manifest: &Path, cancel: &crate::exec::Cancel) -> Result<Vec<Member>, String> {
    let out = crate::exec::capture(
        &metadata(manifest),
        std::time::Duration::from_secs(120),
        cancel,
    )
    .map_err(|e| match e.tail() {
        Some(t) => format!("{e}\n{t}"),
        None => e.to_string(),
    })?;
    parse_members(&out)
}

fn parse_members(out: &str) -> Result<Vec<Member>, String> {
    let meta: Metadata = serde_json::from_str(out)
        .map_err(|e| format!("cargo metadata printed something unexpected: {e}"))?;
    meta.packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id))
        .map(|p| {
            Ok(Member {
                name: p.name.clone(),
                version: semver::Version::parse(&p.version)
                    .map_err(|e| format!("package `{}` version: {e}", p.name))?,
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.kind.iter().any(|k| k == "bin"))
                    .map(|t| t.name.clone())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"{"packages":[
        {"id":"a 0.1.0","name":"a","version":"0.1.0","manifest_path":"/w/a/Cargo.toml",
         "targets":[{"name":"a","kind":["bin"]},{"name":"a","kind":["lib"]}],"extra":1},
        {"id":"b 2.0.0-rc.1","name":"b","version":"2.0.0-rc.1","manifest_path":"/w/b/Cargo.toml",
         "targets":[{"name":"b1","kind":["bin"]},{"name":"b2","kind":["bin"]}]},
        {"id":"dep 1.0.0","name":"dep","version":"1.0.0","manifest_path":"/r/dep/Cargo.toml","targets":[]}],
      "workspace_members":["a 0.1.0","b 2.0.0-rc.1"],"target_directory":"/w/target","version":1}"#;

    #[test]
    fn reads_the_named_member_or_the_manifests_own_package() {
        let (name, version, bins, manifest, target, _) =
            parse_facts(TWO, Path::new("/w/Cargo.toml"), Some("b")).unwrap();
        assert_eq!(name, "b");
        assert_eq!(version, semver::Version::parse("2.0.0-rc.1").unwrap());
        assert_eq!(bins, ["b1", "b2"]);
        assert_eq!(manifest, Path::new("/w/b/Cargo.toml"));
        assert_eq!(target, Path::new("/w/target"));
        let own = parse_facts(TWO, Path::new("/w/a/Cargo.toml"), None).unwrap();
        assert_eq!((own.0.as_str(), own.2), ("a", vec!["a".to_string()]));
    }

    #[test]
    fn lists_the_members_with_their_binaries() {
        let m = parse_members(TWO).unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.name.as_str(), m.bins.clone()))
                .collect::<Vec<_>>(),
            [
                ("a", vec!["a".to_string()]),
                ("b", vec!["b1".to_string(), "b2".to_string()])
            ]
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let e = parse_facts(TWO, Path::new("/w/Cargo.toml"), Some("dep")).unwrap_err();
        assert!(
            e.contains("no package `dep`") && e.contains("it has: a, b"),
            "{e}"
        );
        let e = parse_facts(TWO, Path::new("/w/Cargo.toml"), None).unwrap_err();
        assert!(e.contains("a workspace of 2 packages"), "{e}");
        let e = parse_facts("{}", Path::new("/w/Cargo.toml"), None).unwrap_err();
        assert!(e.contains("unexpected"), "{e}");
    }
}
