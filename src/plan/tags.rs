//! Tag templates expanded per variant with its suffix. The version gives `{version}`, `{major}`,
//! `{minor}`, `{patch}`; git and the CI ref give `{sha}` (7 hex digits), `{sha_long}`,
//! `{branch}` and `{pr}`, and the literal template `edge` is the tag that moves with each push to
//! the default branch (docker/metadata-action's `type=edge`). Values from refs are sanitised into
//! tag characters the way metadata-action does. A template whose placeholder has no value here
//! (`{pr}` outside a pull request, `edge` off the default branch) is dropped, with the reason.
//! A pre-release (`1.4.0-rc.1`) never gets a tag that moves users onto it: `latest`, `{major}`,
//! `{major}.{minor}` and other fixed names are dropped; tags naming the exact build stay.

use semver::Version;
use serde::Serialize;

/// The longest tag a registry accepts (the OCI distribution spec's tag grammar).
const MAX_TAG_LEN: usize = 128;

/// The tag `edge`: kept only on the default branch.
pub const EDGE: &str = "edge";

/// What the templates are expanded from.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub version: &'a Version,
    /// The full git revision.
    pub sha: Option<&'a str>,
    /// The branch built (for a pull request, its head branch), as named in git.
    pub branch: Option<&'a str>,
    /// The pull request number, when building one.
    pub pr: Option<u64>,
    /// The repository's default branch, when known.
    pub default_branch: Option<&'a str>,
}

/// A template that made no tag here, and why (shown by `shipit plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub template: String,
    pub reason: String,
}

/// The tags a variant gets, in template order, and the templates that made none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    pub tags: Vec<String>,
    pub dropped: Vec<Dropped>,
}

/// A ref name as a tag: runs of characters outside `[A-Za-z0-9._-]` become one `-`, letters are
/// lowercased, leading `.`/`-` and trailing `-`/`.` are trimmed, and it is cut to `max` chars.
pub fn sanitize(name: &str, max: usize) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    let cut: String = out
        .trim_start_matches(['.', '-'])
        .chars()
        .take(max)
        .collect();
    cut.trim_end_matches(['.', '-']).to_string()
}

/// Expands the templates in order, dropping duplicates.
pub fn expand(templates: &[String], ctx: &Context, suffix: &str) -> Expanded {
    let version = ctx.version;
    let pre = !version.pre.is_empty();
    let mut out = Expanded::default();
    let short = ctx.sha.map(|s| &s[..s.len().min(7)]);
    let on_default = match (ctx.branch, ctx.default_branch) {
        _ if ctx.pr.is_some() => Err("a pull request is not the default branch".to_string()),
        (None, _) => Err("no branch is checked out (a tag or a detached HEAD)".to_string()),
        (Some(b), Some(d)) if b == d => Ok(()),
        (Some(b), Some(d)) => Err(format!("`{b}` is not the default branch `{d}`")),
        (Some(_), None) => Err(
            "the default branch is unknown (no GitHub event with repository.default_branch, no origin/HEAD)"
                .to_string(),
        ),
    };
    for t in templates {
        let exact = t == EDGE
            || ["{version}", "{sha}", "{sha_long}", "{branch}", "{pr}"]
                .iter()
                .any(|p| t.contains(p));
        let missing = if pre && !exact {
            Some(format!(
                "{version} is a pre-release: it gets only tags that name the exact build"
            ))
        } else if t == EDGE {
            on_default.clone().err()
        } else if (t.contains("{sha}") || t.contains("{sha_long}")) && ctx.sha.is_none() {
            Some("no git revision (not a git checkout)".into())
        } else if t.contains("{pr}") && ctx.pr.is_none() {
            Some("not a pull request".into())
        } else if t.contains("{branch}") && ctx.branch.is_none() {
            Some("no branch is checked out (a tag or a detached HEAD)".into())
        } else {
            None
        };
        if let Some(reason) = missing {
            out.dropped.push(Dropped {
                template: t.clone(),
                reason,
            });
            continue;
        }
        let fixed = t
            .replace("{version}", &version.to_string().replace('+', "_"))
            .replace("{major}", &version.major.to_string())
            .replace("{minor}", &version.minor.to_string())
            .replace("{patch}", &version.patch.to_string())
            .replace("{sha_long}", ctx.sha.unwrap_or(""))
            .replace("{sha}", short.unwrap_or(""))
            .replace("{pr}", &ctx.pr.map(|n| n.to_string()).unwrap_or_default());
        let tag = match ctx.branch.filter(|_| fixed.contains("{branch}")) {
            Some(branch) => {
                // The branch takes what room the rest of the tag leaves (a tag is at most 128).
                let n = fixed.matches("{branch}").count();
                let room = MAX_TAG_LEN.saturating_sub(fixed.len() - n * 8 + suffix.len()) / n;
                let b = sanitize(branch, room);
                if b.is_empty() {
                    out.dropped.push(Dropped {
                        template: t.clone(),
                        reason: format!("the branch `{branch}` has no tag characters"),
                    });
                    continue;
                }
                fixed.replace("{branch}", &b)
            }
            None => fixed,
        };
        let tag = format!("{tag}{suffix}");
        if !out.tags.contains(&tag) {
            out.tags.push(tag);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn ctx(v: &Version) -> Context<'_> {
        Context {
            version: v,
            sha: None,
            branch: None,
            pr: None,
            default_branch: None,
        }
    }

    const SHA: &str = "abc1234def5678abc1234def5678abc1234def56";

    #[test]
    fn release_gets_every_tag_in_order() {
        let v = Version::parse("1.4.0").unwrap();
        let tpl = t(&["{version}", "{major}.{minor}", "{major}", "latest"]);
        assert_eq!(
            expand(&tpl, &ctx(&v), "").tags,
            ["1.4.0", "1.4", "1", "latest"]
        );
        assert_eq!(
            expand(&tpl, &ctx(&v), "-musl").tags,
            ["1.4.0-musl", "1.4-musl", "1-musl", "latest-musl"]
        );
        assert!(expand(&tpl, &ctx(&v), "").dropped.is_empty());
    }

    #[test]
    fn prerelease_gets_only_the_exact_version() {
        let v = Version::parse("1.4.0-rc.1").unwrap();
        let tpl = t(&[
            "{version}",
            "{major}.{minor}",
            "{major}",
            "latest",
            "sha-{sha}",
        ]);
        let c = Context {
            sha: Some(SHA),
            ..ctx(&v)
        };
        let e = expand(&tpl, &c, "");
        assert_eq!(e.tags, ["1.4.0-rc.1", "sha-abc1234"]);
        assert_eq!(
            e.dropped.iter().map(|d| &d.template).collect::<Vec<_>>(),
            ["{major}.{minor}", "{major}", "latest"]
        );
        assert!(e.dropped[2].reason.contains("pre-release"));
    }

    #[test]
    fn sha_and_build_metadata() {
        let v = Version::parse("2.0.1+build.5").unwrap();
        let tpl = t(&["{version}", "{major}.{minor}.{patch}", "git-{sha}"]);
        let e = expand(&tpl, &ctx(&v), "");
        assert_eq!(e.tags, ["2.0.1_build.5", "2.0.1"]);
        assert_eq!(e.dropped[0].template, "git-{sha}");
        assert!(e.dropped[0].reason.contains("no git revision"));
        let c = Context {
            sha: Some(SHA),
            ..ctx(&v)
        };
        assert_eq!(expand(&tpl, &c, "").tags[2], "git-abc1234");
    }

    #[test]
    fn sha_long_is_the_full_revision() {
        let v = Version::parse("1.0.0").unwrap();
        let c = Context {
            sha: Some(SHA),
            ..ctx(&v)
        };
        assert_eq!(
            expand(&t(&["sha-{sha_long}"]), &c, "").tags,
            [format!("sha-{SHA}")]
        );
    }

    #[test]
    fn branch_is_sanitised_and_dropped_without_one() {
        let v = Version::parse("1.0.0").unwrap();
        let tpl = t(&["{branch}", "br-{branch}-{sha}"]);
        let c = Context {
            sha: Some(SHA),
            branch: Some("feature/Foo_bar"),
            ..ctx(&v)
        };
        assert_eq!(
            expand(&tpl, &c, "-musl").tags,
            ["feature-foo_bar-musl", "br-feature-foo_bar-abc1234-musl"]
        );
        let detached = Context {
            sha: Some(SHA),
            ..ctx(&v)
        };
        let e = expand(&tpl, &detached, "");
        assert!(e.tags.is_empty());
        assert!(e.dropped.iter().all(|d| d.reason.contains("no branch")));
    }

    #[test]
    fn long_branches_fit_the_tag_length() {
        let v = Version::parse("1.0.0").unwrap();
        let long = "x".repeat(300);
        let c = Context {
            branch: Some(&long),
            ..ctx(&v)
        };
        let tags = expand(&t(&["b-{branch}"]), &c, "-musl").tags;
        assert_eq!(tags[0].len(), 128);
        assert!(tags[0].starts_with("b-x") && tags[0].ends_with("x-musl"));
    }

    #[test]
    fn pr_only_in_a_pull_request() {
        let v = Version::parse("1.0.0").unwrap();
        let tpl = t(&["pr-{pr}", "{version}"]);
        let c = Context {
            pr: Some(42),
            ..ctx(&v)
        };
        assert_eq!(expand(&tpl, &c, "").tags, ["pr-42", "1.0.0"]);
        let e = expand(&tpl, &ctx(&v), "");
        assert_eq!(e.tags, ["1.0.0"]);
        assert_eq!(
            e.dropped,
            [Dropped {
                template: "pr-{pr}".into(),
                reason: "not a pull request".into()
            }]
        );
    }

    #[test]
    fn edge_moves_only_on_the_default_branch() {
        let v = Version::parse("0.5.0-dev").unwrap();
        let tpl = t(&["edge", "latest"]);
        let main = Context {
            branch: Some("main"),
            default_branch: Some("main"),
            ..ctx(&v)
        };
        // A pre-release on the default branch: edge moves, latest does not.
        assert_eq!(expand(&tpl, &main, "").tags, ["edge"]);
        let feature = Context {
            branch: Some("feature/x"),
            ..main
        };
        assert!(
            expand(&tpl, &feature, "").dropped[0]
                .reason
                .contains("not the default branch")
        );
        let pr = Context {
            pr: Some(7),
            ..main
        };
        assert!(
            expand(&tpl, &pr, "").dropped[0]
                .reason
                .contains("pull request")
        );
        let unknown = Context {
            default_branch: None,
            ..main
        };
        assert!(
            expand(&tpl, &unknown, "").dropped[0]
                .reason
                .contains("unknown")
        );
        assert!(
            expand(&tpl, &ctx(&v), "").dropped[0]
                .reason
                .contains("no branch")
        );
    }

    #[test]
    fn sanitising_follows_metadata_action() {
        assert_eq!(sanitize("feature/Foo_bar", 128), "feature-foo_bar");
        assert_eq!(sanitize("refs//weird  name!!", 128), "refs-weird-name");
        assert_eq!(sanitize("-.hidden", 128), "hidden");
        assert_eq!(sanitize("ÄÖÜ-ok", 128), "ok");
        assert_eq!(sanitize("v1.2.x", 128), "v1.2.x");
        assert_eq!(sanitize("abc/def", 4), "abc");
        assert_eq!(sanitize("///", 128), "");
        let s = sanitize(&"a/".repeat(200), 128);
        assert!(s.len() <= 128 && !s.ends_with('-'));
    }
}
