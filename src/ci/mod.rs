//! CI integration: GitHub Actions step conventions and workflow generation.

pub mod github;
