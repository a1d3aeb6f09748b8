//! git and the CI ref: the revision, the tag at HEAD, the commit time (the default
//! SOURCE_DATE_EPOCH), and for the ref-based tags the branch, the pull request number and the
//! default branch. Under GitHub Actions the ref comes from `GITHUB_REF`, `GITHUB_HEAD_REF`,
//! `GITHUB_REF_NAME` and `GITHUB_EVENT_NAME` (a checkout there is a detached HEAD or a merge
//! commit), and the default branch from the event payload; elsewhere from git itself.

use crate::exec::{Cancel, Cmd, capture};
use crate::plan::GitFacts;
use std::path::Path;

/// The largest event payload read for the default branch (GitHub's are far smaller).
const MAX_EVENT_BYTES: u64 = 16 << 20;

pub fn facts(dir: &Path, cancel: &Cancel) -> GitFacts {
    let env = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
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
    let have_git = which::which("git").is_ok();
    // What git would say, read from the repository's files where that is simple and certain.
    let repo = have_git.then(|| Repo::find(dir)).flatten();
    let not_a_repo = have_git && repo.is_none() && Repo::surely_none(dir);
    let symbolic = |full: &str| -> Option<String> {
        if not_a_repo {
            return None;
        }
        if let Some(Some(answer)) = repo.as_ref().map(|r| r.symbolic_ref_short(full)) {
            return answer;
        }
        have_git
            .then(|| run(&["symbolic-ref", "--short", "-q", full]))
            .flatten()
    };
    let git_branch = || symbolic("HEAD");
    let (branch, pr) = ref_facts(&env, git_branch);
    let default_branch = env("GITHUB_EVENT_PATH")
        .and_then(|p| event_default_branch(Path::new(&p)))
        .or_else(|| {
            symbolic("refs/remotes/origin/HEAD")
                .map(|s| s.strip_prefix("origin/").unwrap_or(&s).to_string())
        });
    let github_url = env("GITHUB_REPOSITORY").map(|r| {
        let server = env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        format!("{}/{r}", server.trim_end_matches('/'))
    });
    if !have_git || not_a_repo {
        return GitFacts {
            branch,
            pr,
            default_branch,
            source_url: github_url,
            ..GitFacts::default()
        };
    }
    // The processes left run side by side: the remote (git applies `url.*.insteadOf` from any
    // config), the commit and its time in one call, the tag only when the repository has one.
    let no_tags = repo.as_ref().is_some_and(Repo::has_no_tags);
    let (remote, head, exact_tag) = std::thread::scope(|s| {
        let remote = s.spawn(|| run(&["remote", "get-url", "origin"]));
        let tag = s.spawn(|| {
            if no_tags {
                None
            } else {
                run(&["describe", "--tags", "--exact-match"])
            }
        });
        let head = run(&["log", "-1", "--no-show-signature", "--format=%H %ct"]);
        (
            remote.join().ok().flatten(),
            head,
            tag.join().ok().flatten(),
        )
    });
    let (sha, commit_time) = match head.as_deref().and_then(|h| h.split_once(' ')) {
        Some((sha, ct)) => (Some(sha.to_string()), ct.trim().parse().ok()),
        None => (None, None),
    };
    GitFacts {
        source_url: remote.and_then(|u| https_url(&u)).or(github_url),
        sha,
        exact_tag,
        commit_time,
        branch,
        pr,
        default_branch,
    }
}

/// A repository found from a directory by reading its files, as git discovers it: the nearest
/// `.git` directory (or `.git` file naming one: a worktree or submodule) up the tree. Used only
/// where the answer is certain (the files reference backend, no `GIT_DIR`-like variables, the
/// directory owned by this user); otherwise git is asked.
struct Repo {
    /// The per-worktree directory (`HEAD`).
    git_dir: std::path::PathBuf,
    /// The shared directory (`refs/`, `packed-refs`, `config`).
    common: std::path::PathBuf,
}

/// Variables that change where git finds the repository.
const GIT_PLACE_VARS: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG_PARAMETERS",
];

impl Repo {
    fn find(dir: &Path) -> Option<Repo> {
        use std::os::unix::fs::MetadataExt;
        if GIT_PLACE_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return None;
        }
        let dir = std::path::absolute(dir).ok()?;
        let top = dir
            .ancestors()
            .find(|d| d.join(".git").exists() || looks_bare(d))?;
        if looks_bare(top) {
            return None;
        }
        let dot = top.join(".git");
        // git refuses a repository another user owns (safe.directory; under sudo, the invoking
        // user's): let git say so.
        if std::env::var_os("SUDO_UID").is_some() {
            return None;
        }
        let uid = euid()?;
        if std::fs::metadata(top).ok()?.uid() != uid {
            return None;
        }
        let git_dir = if dot.is_dir() {
            dot
        } else {
            let text = std::fs::read_to_string(&dot).ok()?;
            let p = text.strip_prefix("gitdir:")?.trim();
            top.join(p)
        };
        if !git_dir.join("HEAD").is_file() {
            return None;
        }
        let common = match std::fs::read_to_string(git_dir.join("commondir")) {
            Ok(c) => git_dir.join(c.trim()),
            Err(_) => git_dir.clone(),
        };
        let config = std::fs::read_to_string(common.join("config")).ok()?;
        // Another reference backend (reftable) or an object format git must read itself.
        if config.to_ascii_lowercase().contains("refstorage") || !common.join("refs").is_dir() {
            return None;
        }
        Some(Repo { git_dir, common })
    }

    /// True when no directory from `dir` up has a `.git` (and no variable points elsewhere):
    /// every git call would fail with "not a git repository".
    fn surely_none(dir: &Path) -> bool {
        if GIT_PLACE_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return false;
        }
        std::path::absolute(dir).is_ok_and(|d| {
            d.ancestors()
                .all(|a| std::fs::symlink_metadata(a.join(".git")).is_err() && !looks_bare(a))
        })
    }

    /// `git symbolic-ref --short -q FULL`: `Some(answer)` when the files say it for certain,
    /// `None` when git must be asked (a name that would shorten ambiguously, a strange file).
    fn symbolic_ref_short(&self, full: &str) -> Option<Option<String>> {
        let place = if full == "HEAD" {
            self.git_dir.join("HEAD")
        } else {
            self.common.join(full)
        };
        // A symbolic link HEAD (git before 1.5): let git read it.
        if std::fs::symlink_metadata(&place).is_ok_and(|m| m.file_type().is_symlink()) {
            return None;
        }
        let text = match std::fs::read_to_string(&place) {
            Ok(t) => t,
            // A symbolic ref is always a loose file: no file, no symbolic ref (unless packed
            // as a plain ref, which is no symbolic ref either).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && full != "HEAD" => {
                return Some(None);
            }
            Err(_) => return None,
        };
        let Some(target) = text.strip_prefix("ref:") else {
            // A detached HEAD (an object name): not a symbolic ref.
            let t = text.trim();
            return (t.len() >= 40 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(None);
        };
        let target = target.trim();
        let short = target
            .strip_prefix("refs/heads/")
            .or_else(|| target.strip_prefix("refs/remotes/"))?;
        // git shortens to the shortest name no other rule resolves to an existing ref.
        let rules = [
            format!("refs/{short}"),
            format!("refs/tags/{short}"),
            format!("refs/heads/{short}"),
            format!("refs/remotes/{short}"),
            format!("refs/remotes/{short}/HEAD"),
        ];
        let packed = std::fs::read_to_string(self.common.join("packed-refs")).unwrap_or_default();
        let clash = rules.iter().filter(|r| r.as_str() != target).any(|r| {
            self.common.join(r).exists()
                || packed
                    .lines()
                    .any(|l| l.split_once(' ').is_some_and(|(_, n)| n.trim() == r))
        });
        (!clash).then(|| Some(short.to_string()))
    }

    /// True when the repository has no tag at all (no loose file under `refs/tags`, no
    /// `refs/tags/` line in `packed-refs`): `git describe --tags --exact-match` would fail.
    fn has_no_tags(&self) -> bool {
        fn empty(dir: &Path) -> bool {
            match std::fs::read_dir(dir) {
                Ok(d) => d
                    .flatten()
                    .all(|e| e.file_type().is_ok_and(|t| t.is_dir()) && empty(&e.path())),
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            }
        }
        let packed = match std::fs::read_to_string(self.common.join("packed-refs")) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(_) => return false,
        };
        empty(&self.common.join("refs/tags")) && !packed.contains(" refs/tags/")
    }
}

/// A directory git would take for a bare repository (`HEAD`, `objects/`, `refs/`).
fn looks_bare(d: &Path) -> bool {
    d.join("HEAD").is_file() && d.join("objects").is_dir() && d.join("refs").is_dir()
}

/// This process's effective user id, read from `/proc/self/status`.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The branch and pull request number from the GitHub variables (`env`), else git's branch
/// (called only when the variables do not say). On a pull request the branch is its head branch;
/// on a tag there is none.
pub fn ref_facts(
    env: &dyn Fn(&str) -> Option<String>,
    git_branch: impl FnOnce() -> Option<String>,
) -> (Option<String>, Option<u64>) {
    let gh_ref = env("GITHUB_REF");
    let number = |r: &str| r.split('/').next()?.parse::<u64>().ok();
    let pr = gh_ref
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/pull/"))
        .and_then(number)
        .or_else(|| {
            // pull_request events name the ref `42/merge` in GITHUB_REF_NAME.
            env("GITHUB_EVENT_NAME")
                .filter(|e| e.starts_with("pull_request"))
                .and(env("GITHUB_REF_NAME"))
                .and_then(|n| number(&n))
        });
    let branch = if pr.is_some() {
        env("GITHUB_HEAD_REF").or_else(git_branch)
    } else if let Some(r) = gh_ref.as_deref() {
        if let Some(b) = r.strip_prefix("refs/heads/") {
            Some(b.to_string())
        } else if r.starts_with("refs/tags/") {
            None
        } else {
            git_branch()
        }
    } else {
        git_branch()
    };
    (branch, pr)
}

/// A git remote as an https URL without credentials: `git@host:owner/repo.git` and
/// `ssh://git@host/owner/repo` become `https://host/owner/repo`, `user:pass@` is dropped, and a
/// trailing `.git` goes. `None` for what is no URL (a local path, `file://`).
pub fn https_url(remote: &str) -> Option<String> {
    let r = remote.trim();
    let (host_path, from_scp) = if let Some(rest) = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .or_else(|| r.strip_prefix("ssh://"))
        .or_else(|| r.strip_prefix("git://"))
        .or_else(|| r.strip_prefix("git+ssh://"))
    {
        (rest.to_string(), false)
    } else if !r.contains("://") && r.contains(':') && !r.starts_with('/') {
        // scp-like: [user@]host:path
        (r.to_string(), true)
    } else {
        return None;
    };
    let (authority, path) = if from_scp {
        host_path.split_once(':')?
    } else {
        host_path.split_once('/')?
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // An ssh port (`host:2222`) is not the web's.
    let host = if from_scp || !r.starts_with("http") {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("https://{host}/{path}"))
}

/// `repository.default_branch` from a GitHub event payload.
fn event_default_branch(path: &Path) -> Option<String> {
    let bytes = crate::config::files::read_regular(path, MAX_EVENT_BYTES).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["repository"]["default_branch"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn git(b: &str) -> impl FnOnce() -> Option<String> + '_ {
        move || Some(b.to_string())
    }

    #[test]
    fn remotes_become_https_urls_without_credentials() {
        for (remote, url) in [
            (
                "https://user:s3cret@github.com/acme/app.git",
                Some("https://github.com/acme/app"),
            ),
            (
                "git@github.com:acme/app.git",
                Some("https://github.com/acme/app"),
            ),
            (
                "ssh://git@gitlab.example:2222/g/sub/app",
                Some("https://gitlab.example/g/sub/app"),
            ),
            (
                "https://x-access-token:ghs_abc@github.com/acme/app",
                Some("https://github.com/acme/app"),
            ),
            ("/srv/git/app.git", None),
            ("file:///srv/git/app.git", None),
        ] {
            assert_eq!(https_url(remote).as_deref(), url, "{remote}");
        }
    }

    #[test]
    fn a_push_to_a_branch() {
        let e = env(&[
            ("GITHUB_REF", "refs/heads/feature/x"),
            ("GITHUB_EVENT_NAME", "push"),
        ]);
        assert_eq!(
            ref_facts(&e, git("other")),
            (Some("feature/x".into()), None)
        );
    }

    #[test]
    fn a_pull_request_names_its_head_branch() {
        let e = env(&[
            ("GITHUB_REF", "refs/pull/42/merge"),
            ("GITHUB_HEAD_REF", "feature/Foo_bar"),
            ("GITHUB_EVENT_NAME", "pull_request"),
        ]);
        assert_eq!(
            ref_facts(&e, git("x")),
            (Some("feature/Foo_bar".into()), Some(42))
        );
        // Without GITHUB_HEAD_REF, git's branch.
        let e = env(&[("GITHUB_REF", "refs/pull/42/merge")]);
        assert_eq!(ref_facts(&e, git("mine")), (Some("mine".into()), Some(42)));
        // Only the event name and the ref name.
        let e = env(&[
            ("GITHUB_EVENT_NAME", "pull_request_target"),
            ("GITHUB_REF_NAME", "7/merge"),
        ]);
        assert_eq!(ref_facts(&e, git("b")), (Some("b".into()), Some(7)));
    }

    #[test]
    fn a_tag_has_no_branch() {
        let e = env(&[("GITHUB_REF", "refs/tags/v1.0.0")]);
        assert_eq!(ref_facts(&e, git("main")), (None, None));
    }

    #[test]
    fn outside_actions_git_says() {
        let e = env(&[]);
        assert_eq!(ref_facts(&e, git("main")), (Some("main".into()), None));
        assert_eq!(ref_facts(&e, || None), (None, None));
    }

    #[test]
    fn the_default_branch_from_the_event_payload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("event.json");
        std::fs::write(&p, r#"{"repository":{"default_branch":"trunk"}}"#).unwrap();
        assert_eq!(event_default_branch(&p).as_deref(), Some("trunk"));
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(event_default_branch(&p), None);
    }

    /// Runs git in `dir` (a test helper: panics on failure).
    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// What git itself says for `symbolic-ref --short -q`.
    fn git_says(dir: &Path, full: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .args(["symbolic-ref", "--short", "-q", full])
            .current_dir(dir)
            .output()
            .unwrap();
        let s = String::from_utf8(out.stdout).unwrap().trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    }

    #[test]
    fn the_files_say_what_git_says() {
        if which::which("git").is_err()
            || GIT_PLACE_VARS.iter().any(|v| std::env::var_os(v).is_some())
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w");
        std::fs::create_dir_all(w.join("sub")).unwrap();
        if !dir.path().ancestors().any(|a| a.join(".git").exists()) {
            assert!(Repo::find(&w).is_none() && Repo::surely_none(&w));
            let f = facts(&w, &Cancel::new());
            assert_eq!((f.sha, f.commit_time, f.exact_tag), (None, None, None));
        }
        git_in(&w, &["init", "-q", "-b", "main"]);
        std::fs::write(w.join("f"), "1").unwrap();
        git_in(&w, &["add", "f"]);
        git_in(&w, &["commit", "-qm", "one"]);
        let cancel = Cancel::new();
        let check = |d: &Path| {
            let repo = Repo::find(d).expect("a repository");
            for full in ["HEAD", "refs/remotes/origin/HEAD"] {
                if let Some(answer) = repo.symbolic_ref_short(full) {
                    assert_eq!(answer, git_says(d, full), "{full} in {}", d.display());
                }
            }
            let f = facts(d, &cancel);
            assert_eq!(
                f.sha.as_deref(),
                Some(git_in(d, &["rev-parse", "HEAD"]).as_str())
            );
            assert_eq!(
                f.commit_time,
                git_in(d, &["log", "-1", "--format=%ct"]).parse().ok()
            );
            f
        };
        let f = check(&w.join("sub"));
        assert_eq!(f.exact_tag, None);
        assert!(Repo::find(&w).unwrap().has_no_tags());
        // A remote with a default branch, a tag, a second commit.
        git_in(
            &w,
            &["remote", "add", "origin", "git@github.com:acme/app.git"],
        );
        git_in(&w, &["update-ref", "refs/remotes/origin/trunk", "HEAD"]);
        git_in(
            &w,
            &[
                "symbolic-ref",
                "refs/remotes/origin/HEAD",
                "refs/remotes/origin/trunk",
            ],
        );
        git_in(&w, &["tag", "v1.0.0"]);
        let f = check(&w);
        assert_eq!(f.exact_tag.as_deref(), Some("v1.0.0"));
        assert_eq!(f.source_url.as_deref(), Some("https://github.com/acme/app"));
        assert!(!Repo::find(&w).unwrap().has_no_tags());
        std::fs::write(w.join("f"), "2").unwrap();
        git_in(&w, &["commit", "-qam", "two"]);
        let f = check(&w);
        assert_eq!(f.exact_tag, None, "the tag is on the first commit");
        // Packed refs, a branch name a tag also has (git shortens it to heads/NAME), a detached
        // HEAD, a linked worktree on its own branch.
        git_in(&w, &["pack-refs", "--all"]);
        check(&w);
        git_in(&w, &["checkout", "-qb", "v1.0.0"]);
        check(&w);
        git_in(&w, &["checkout", "-q", "--detach"]);
        check(&w);
        let wt = dir.path().join("wt");
        git_in(
            &w,
            &["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()],
        );
        let f = check(&wt);
        assert_eq!(
            Repo::find(&wt).unwrap().symbolic_ref_short("HEAD"),
            Some(Some("side".into()))
        );
        assert_eq!(f.exact_tag, None);
    }
}
