//! What one run reads once about the project's dependency graph and shares between its stages
//! (`plan`, `doctor`, the build's sys-crate diagnosis, the attach stage's SBOMs): the unfiltered
//! `cargo metadata` of the project and its features, and each target's cfg set. The plan carries
//! an empty [`GraphMemo`] (`ProjectPlan::graph`; making the plan stays pure) and its clones share
//! it; `tools::cargo::graph_for_targets` fills it on first use. A failed read is not remembered.

use super::cfg::Cfgs;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared memo; cloning shares it.
#[derive(Clone, Default)]
pub struct GraphMemo(Arc<Mutex<Memo>>);

/// The memo's contents.
#[derive(Default)]
pub struct Memo {
    /// `(manifest, features)` → the parsed output of `cargo metadata --format-version 1`.
    pub metadata: BTreeMap<(String, Vec<String>), Arc<serde_json::Value>>,
    /// Target triple → its cfg set (`rustc --print cfg --target T`).
    pub cfgs: BTreeMap<String, Arc<Cfgs>>,
}

impl GraphMemo {
    /// The memo, locked: readers of the same graph wait for the first one's `cargo metadata`
    /// instead of running their own.
    pub fn lock(&self) -> MutexGuard<'_, Memo> {
        // A panic while filling it leaves what was filled before: still true.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for GraphMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.lock();
        f.debug_struct("GraphMemo")
            .field("metadata", &m.metadata.len())
            .field("cfgs", &m.cfgs.keys().collect::<Vec<_>>())
            .finish()
    }
}
