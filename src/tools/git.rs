//! git: the revision, the tag at HEAD and the commit time (the default SOURCE_DATE_EPOCH).

use crate::exec::{Cancel, Cmd, capture};
use crate::plan::GitFacts;
use std::path::Path;

pub fn facts(dir: &Path, cancel: &Cancel) -> GitFacts {
    let run = |args: &[&str]| {
        capture(
            &Cmd::new("git", "read git facts")
                .args(args.iter().copied())
                .cwd(dir),
            super::PROBE_TIMEOUT,
            cancel,
        )
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    };
    if which::which("git").is_err() {
        return GitFacts::default();
    }
    GitFacts {
        sha: run(&["rev-parse", "HEAD"]),
        exact_tag: run(&["describe", "--tags", "--exact-match"]),
        commit_time: run(&["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok()),
    }
}
