//! rustup: which targets have their rust-std installed, and whether rust-src is there (for
//! `-Zbuild-std` on targets whose rust-std cannot be installed).

use crate::exec::Cmd;
use std::collections::BTreeSet;

/// Installed targets and whether `rust-src` is installed; None without rustup.
pub fn installed(cancel: &crate::exec::Cancel) -> Option<(BTreeSet<String>, bool)> {
    which::which("rustup").ok()?;
    let targets = crate::exec::capture(
        &Cmd::new("rustup", "list installed targets").args(["target", "list", "--installed"]),
        super::PROBE_TIMEOUT,
        cancel,
    )
    .ok()?;
    let components = crate::exec::capture(
        &Cmd::new("rustup", "list installed components").args(["component", "list", "--installed"]),
        super::PROBE_TIMEOUT,
        cancel,
    )
    .unwrap_or_default();
    Some((
        targets
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        components.lines().any(|l| l.starts_with("rust-src")),
    ))
}

pub fn add_target(target: &str) -> Cmd {
    Cmd::new("rustup", format!("install rust-std for {target}")).args(["target", "add", target])
}

pub fn add_component(name: &str) -> Cmd {
    Cmd::new("rustup", format!("install {name}")).args(["component", "add", name])
}
