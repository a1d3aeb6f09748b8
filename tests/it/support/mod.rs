//! Shared fixtures for the integration tests.

pub mod fixture;
pub mod proxy;
pub mod registry;

use std::path::Path;
use std::process::Command;

/// The shipit binary under test, run in `dir` with a clean, predictable environment.
pub fn shipit(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shipit"));
    c.current_dir(dir)
        .env_remove("SHIPIT_CONFIG")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("SHIPIT_SIGNING_KEY")
        .env("NO_COLOR", "1");
    c
}

/// Writes a file, creating its parent directories.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
