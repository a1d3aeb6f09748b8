//! GitHub Actions: the conventions shipit follows when `GITHUB_ACTIONS=true` (workflow commands
//! and step files, `commands.rs`), the release step summary (`summary.rs`), and the workflow that
//! `shipit ci github [--matrix]` writes (`workflow.rs`).

pub mod commands;
pub mod summary;
pub mod workflow;

pub use commands::*;
pub use summary::*;
pub use workflow::*;
