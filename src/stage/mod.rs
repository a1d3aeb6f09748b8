//! The stages, in pipeline order: doctor (tools) → build (per target, parallel) → package (per
//! platform image, then one index per variant) → verify (per platform image, parallel) →
//! publish (blobs, manifests, index, then tags).

pub mod build;
pub mod build_fresh;
pub mod doctor;
pub mod init;
pub mod package;
pub mod package_docker;
pub mod publish;
pub mod pull;
pub mod release;
pub mod split;
pub mod verify;
pub mod verify_cmd;
