//! Tag templates: `{version}`, `{major}`, `{minor}`, `{patch}`, `{sha}` expanded per variant
//! with its suffix. A pre-release (`1.4.0-rc.1`) gets only tags that name the exact version:
//! never `latest`, `{major}` or `{major}.{minor}`, which would move users onto it.

use semver::Version;

/// Expands the templates in order, dropping duplicates. `sha` is the short git revision, if any.
pub fn expand(
    templates: &[String],
    version: &Version,
    sha: Option<&str>,
    suffix: &str,
) -> Vec<String> {
    let pre = !version.pre.is_empty();
    let mut out: Vec<String> = Vec::new();
    for t in templates {
        let exact = t.contains("{version}") || t.contains("{sha}");
        if pre && !exact {
            continue;
        }
        if t.contains("{sha}") && sha.is_none() {
            continue;
        }
        let tag = t
            .replace("{version}", &version.to_string().replace('+', "_"))
            .replace("{major}", &version.major.to_string())
            .replace("{minor}", &version.minor.to_string())
            .replace("{patch}", &version.patch.to_string())
            .replace("{sha}", sha.unwrap_or(""));
        let tag = format!("{tag}{suffix}");
        if !out.contains(&tag) {
            out.push(tag);
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

    #[test]
    fn release_gets_every_tag_in_order() {
        let v = Version::parse("1.4.0").unwrap();
        let tpl = t(&["{version}", "{major}.{minor}", "{major}", "latest"]);
        assert_eq!(expand(&tpl, &v, None, ""), ["1.4.0", "1.4", "1", "latest"]);
        assert_eq!(
            expand(&tpl, &v, None, "-musl"),
            ["1.4.0-musl", "1.4-musl", "1-musl", "latest-musl"]
        );
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
        assert_eq!(
            expand(&tpl, &v, Some("abc1234"), ""),
            ["1.4.0-rc.1", "sha-abc1234"]
        );
    }

    #[test]
    fn sha_and_build_metadata() {
        let v = Version::parse("2.0.1+build.5").unwrap();
        let tpl = t(&["{version}", "{major}.{minor}.{patch}", "git-{sha}"]);
        assert_eq!(expand(&tpl, &v, None, ""), ["2.0.1_build.5", "2.0.1"]);
        assert_eq!(expand(&tpl, &v, Some("deadbee"), "")[2], "git-deadbee");
    }
}
