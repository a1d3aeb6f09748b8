//! The directories a command writes, locked for its whole run (`crate::lock`): the output dir
//! (package.json, release.json, fragments, the verification cache) first, then each OCI layout
//! it writes (`dist/oci` when it packages, the `oci:` publish target when it publishes there).
//! Always in that order, so two runs never wait on each other crosswise.

use super::Mode;
use crate::config::PublishTo;
use crate::error::{Error, Result};
use crate::exec::Cancel;
use crate::lock::{self, DirLock, LockError};
use crate::session::Session;
use crate::ui::Ui;
use std::path::{Path, PathBuf};

/// Locks held until dropped.
#[derive(Debug)]
pub struct Held {
    _locks: Vec<DirLock>,
}

/// Locks what `mode` writes.
pub fn take(s: &Session, mode: Mode, ui: &Ui) -> Result<Held> {
    let out = &s.plan.out_dir;
    let mut dirs: Vec<PathBuf> = vec![out.clone()];
    let packages = matches!(
        mode,
        Mode::Release | Mode::Split | Mode::Smoke | Mode::Package
    );
    if packages {
        dirs.push(out.join("oci"));
    }
    if matches!(mode, Mode::Release | Mode::Publish)
        && let PublishTo::Oci(p) = &s.config.publish.to
    {
        dirs.push(p.clone());
    }
    lock_dirs(&dirs, &s.opts.cancel, ui)
}

/// Locks the output dir alone (`release --merge` writes only release.json there).
pub fn take_out_dir(s: &Session, ui: &Ui) -> Result<Held> {
    lock_dirs(std::slice::from_ref(&s.plan.out_dir), &s.opts.cancel, ui)
}

fn lock_dirs(dirs: &[PathBuf], cancel: &Cancel, ui: &Ui) -> Result<Held> {
    let bound = lock::wait_bound();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut held = Vec::new();
    for d in dirs {
        let key = same_dir(d);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let l =
            lock::acquire(d, lock::RUN_LOCK, bound, cancel, &|m| ui.warn(m)).map_err(lock_error)?;
        held.push(l);
    }
    Ok(Held { _locks: held })
}

/// `dir` as the file system names it (it may not exist yet: its parent then).
fn same_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn lock_error(e: LockError) -> Error {
    match e {
        LockError::Cancelled(c) => Error::interrupted(c.0),
        other => Error::stage(other.to_string()),
    }
}
