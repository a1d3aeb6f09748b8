//! shipit: turn one Rust project into a verified multi-arch container release.
//!
//! The pipeline reads like the module list: `config` (load, validate, defaults) → `plan`
//! (pure: every detail decided before anything runs) → `tools` (one file per external tool,
//! commands as data) → `exec` (the one place processes run) → `stage` (build, package,
//! verify, publish) → `report`.

pub mod cache;
pub mod ci;
pub mod cli;
pub mod config;
pub mod deb;
pub mod error;
pub mod exec;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod report;
pub mod stage;
pub mod tools;
pub mod ui;
pub mod verify;
