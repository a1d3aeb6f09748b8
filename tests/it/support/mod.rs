//! Shared fixtures for the integration tests.

pub mod fixture;
pub mod proxy;
pub mod registry;

use std::path::Path;
use std::process::{Command, Output};

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

/// `shipit ARGS` in `dir` with the fixed `SOURCE_DATE_EPOCH` and `envs`, output captured.
pub fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = shipit(dir);
    c.args(args).env("SOURCE_DATE_EPOCH", fixture::EPOCH);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// A finished command for a failure message: its exit code, stdout and stderr.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `o`, after asserting it succeeded (the failure shows `text(o)`).
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}
