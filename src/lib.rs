//! shipit: turn one Rust project into a verified multi-arch container release.
//!
//! The pipeline reads like the module list: `config` (load, validate, defaults) → `plan`
//! (pure: every detail decided before anything runs) → `tools` (one file per external tool,
//! commands as data) → `exec` (the one place processes run) → `oci` → `verify` → `session`
//! (config + facts + plan + run options) → `stage` (build, package, verify, publish, in the one
//! order of `stage::RELEASE`) → `report` → `cli` (arguments only). No module below `cli`
//! imports it, and the file-level module graph has no cycle (`tests/it/architecture.rs`).

pub mod attest;
pub mod cache;
pub mod ci;
pub mod cli;
pub mod config;
pub mod deb;
pub mod error;
pub mod exec;
pub mod lock;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod report;
pub mod session;
pub mod stage;
pub mod syslibs;
pub mod tools;
pub mod ui;
pub mod verify;
