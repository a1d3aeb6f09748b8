//! A small on-disk map from content-derived keys to JSON facts, under `dist/cache/`. Only facts
//! that follow from content addressed by digest are stored (a layer's digest → whether it holds
//! /etc/passwd; a manifest digest + the exact verification settings → a passed report), so a
//! cached answer is the answer recomputing would give. A missing or unreadable cache is empty.
//! [`Inputs`] digests what a planning read (`cargo metadata`, `rustc --print cfg`) depends on,
//! for the caches `tools::cargo` keeps under the project's `target/shipit/`.

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

    /// Empties the cache when it holds more than `n` entries (what is wanted again is soon
    /// back), so that a cache keyed by many projects stays small.
    pub fn cap(&mut self, n: usize) {
        if self.entries.len() > n {
            self.entries.clear();
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

/// What a planning read depends on, written down line by line and digested: a cached answer is
/// reused only while the digest of its inputs is the same (see `tools::cargo`'s metadata cache
/// and cfg cache). Files count by their contents, directories by their sorted entry names, and
/// program binaries by their identity (size, mtime, inode) so that no large file is hashed.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    text: String,
}

impl Inputs {
    pub fn new(what: &str) -> Inputs {
        Inputs {
            text: format!("{what}\n"),
        }
    }

    /// Any line (an argument list, a path).
    pub fn line(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self.text.push('\n');
        self
    }

    /// A file by its contents (`-` when it is not a readable regular file).
    pub fn file(&mut self, path: &Path) -> &mut Self {
        let sum = std::fs::read(path)
            .map(|b| crate::oci::digest::Digest::of(&b).to_string())
            .unwrap_or_else(|_| "-".into());
        self.line(&format!("f {} {sum}", path.display()))
    }

    /// A file by its identity: size, mtime (ns) and inode, of the path and of what it resolves to.
    pub fn file_id(&mut self, path: &Path) -> &mut Self {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let (a, b) = (file_id(path), file_id(&real));
        self.line(&format!("i {} {a} {} {b}", path.display(), real.display()))
    }

    /// A directory by the sorted names of its entries (`-` when it is not one).
    pub fn dir(&mut self, path: &Path) -> &mut Self {
        let names = match std::fs::read_dir(path) {
            Ok(d) => {
                let mut n: Vec<String> = d
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                n.sort();
                n.join("/")
            }
            Err(_) => "-".into(),
        };
        self.line(&format!("d {} {names}", path.display()))
    }

    /// Every environment variable whose name starts with one of `prefixes` (sorted), and the
    /// ones named in `exact`.
    pub fn env(&mut self, prefixes: &[&str], exact: &[&str]) -> &mut Self {
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                (prefixes.iter().any(|p| k.starts_with(p)) || exact.contains(&k.as_str()))
                    .then(|| (k, format!("{v:?}")))
            })
            .collect();
        vars.sort();
        for (k, v) in vars {
            self.line(&format!("e {k}={v}"));
        }
        self
    }

    /// The text so far (for tests and for recording).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The digest of the inputs.
    pub fn digest(&self) -> String {
        crate::oci::digest::Digest::of(self.text.as_bytes()).to_string()
    }
}

/// Size, mtime (ns) and inode of a file, or `-` when it is not there.
pub fn file_id(f: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(f) {
        Ok(m) => format!("{} {}.{} {}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()),
        Err(_) => "-".into(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never a torn one. Not synced: a cache.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-shipit-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_change_with_contents_entries_and_existence() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("Cargo.toml");
        let digest = || {
            let mut i = Inputs::new("t");
            i.file(&f).dir(dir.path()).file_id(&f);
            i.digest()
        };
        let missing = digest();
        std::fs::write(&f, "a").unwrap();
        let a = digest();
        assert_ne!(a, missing);
        assert_eq!(digest(), a, "the same inputs, the same digest");
        std::fs::write(&f, "b").unwrap();
        let b = digest();
        assert_ne!(b, a);
        std::fs::write(dir.path().join("new.rs"), "").unwrap();
        assert_ne!(digest(), b, "a new directory entry");
    }

    #[test]
    fn a_cache_over_its_cap_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cache::open(dir.path(), "t");
        for i in 0..3 {
            c.put(&i.to_string(), &i);
        }
        c.cap(3);
        assert_eq!(c.get::<i32>("2"), Some(2));
        c.cap(2);
        assert_eq!(c.get::<i32>("2"), None);
    }
}
