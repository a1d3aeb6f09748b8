//! A small on-disk map from content-derived keys to JSON facts, under `dist/cache/`. Only facts
//! that follow from content addressed by digest are stored (a layer's digest → whether it holds
//! /etc/passwd; a manifest digest + the exact verification settings → a passed report), so a
//! cached answer is the answer recomputing would give. A missing or unreadable cache is empty.

use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Cache {
    path: PathBuf,
    entries: BTreeMap<String, serde_json::Value>,
    dirty: bool,
}

impl Cache {
    /// Opens `<out>/cache/<name>.json`.
    pub fn open(out: &Path, name: &str) -> Cache {
        let path = out.join("cache").join(format!("{name}.json"));
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache {
            path,
            entries,
            dirty: false,
        }
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.entries
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) {
        if let Ok(v) = serde_json::to_value(value) {
            self.entries.insert(key.to_string(), v);
            self.dirty = true;
        }
    }

    /// Writes the file (atomically) if anything changed; a failure only loses the cache.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let Some(dir) = self.path.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmp = self
            .path
            .with_extension(format!("{}.{seq}.tmp", std::process::id()));
        if let Ok(text) = serde_json::to_vec(&self.entries)
            && std::fs::write(&tmp, text).is_ok()
            && std::fs::rename(&tmp, &self.path).is_ok()
        {
            self.dirty = false;
        }
    }
}
