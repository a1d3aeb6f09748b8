//! The value readers of the pipeline schema: each reads one scalar or list at a position in the
//! YAML tree (string, bool, number, duration, path, platform, base, regex) and records a located
//! problem when it does not fit, plus the pure parsers behind them (durations, sizes, glibc
//! versions, tag templates, repositories, users). `schema.rs` walks the sections and calls these.

use super::types::*;
use super::walker::{Walker, suggest};
use super::yaml::{Kind, Node};
use crate::platform::Platform;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The shortest and longest duration a config may give (timeouts, stop.within).
pub const MIN_DURATION: Duration = Duration::from_millis(1);
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The longest tag a registry accepts (the OCI distribution spec's tag grammar).
pub const MAX_TAG_LEN: usize = 128;

/// The placeholders of a tag template (`plan::tags` expands them; README, "Tags").
pub(super) const PLACEHOLDERS: &[&str] = &[
    "version", "major", "minor", "patch", "sha", "sha_long", "branch", "pr",
];

/// YAML 1.1 spellings of booleans: as a bare value where a string is meant they are ambiguous
/// (other YAML readers turn them into true/false), so shipit asks for quotes.
const YAML11_BOOLS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
];

impl Walker<'_> {
    pub(super) fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.kind {
            Kind::Scalar { text, quoted } => {
                if !quoted && YAML11_BOOLS.contains(&text.as_str()) {
                    self.err(
                        n.pos,
                        format!(
                            "{what}: `{text}` is a YAML boolean, but a string is expected here"
                        ),
                        format!("quote it if you mean the text: \"{text}\""),
                    );
                    return None;
                }
                Some(text.clone())
            }
            _ => {
                self.err(
                    n.pos,
                    format!("{what} must be a string, found {}", n.kind_name()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn bool(&mut self, n: &Node, what: &str) -> Option<bool> {
        match &n.kind {
            Kind::Scalar {
                text,
                quoted: false,
            } if text == "true" => Some(true),
            Kind::Scalar {
                text,
                quoted: false,
            } if text == "false" => Some(false),
            _ => {
                self.err(
                    n.pos,
                    format!("{what} must be true or false"),
                    Some("YAML 1.1 spellings such as yes/no/on/off are not accepted".into()),
                );
                None
            }
        }
    }

    pub(super) fn int(&mut self, n: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let parsed = match &n.kind {
            Kind::Scalar {
                text,
                quoted: false,
            } => text.parse::<i64>().ok(),
            _ => None,
        };
        match parsed {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.err(
                    n.pos,
                    format!("{what}: {v} is out of range ({min} to {max})"),
                    None,
                );
                None
            }
            None => {
                self.err(n.pos, format!("{what} must be a whole number"), None);
                None
            }
        }
    }

    pub(super) fn strings(&mut self, n: &Node, what: &str) -> Option<Vec<String>> {
        let Kind::Seq(items) = &n.kind else {
            self.err(
                n.pos,
                format!("{what} must be a list, found {}", n.kind_name()),
                Some("write it as `[a, b]` or one `- item` per line".to_string()),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{what}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn string_map(&mut self, n: &Node, what: &str) -> Option<Vec<(String, String)>> {
        let Kind::Map(entries) = &n.kind else {
            self.err(
                n.pos,
                format!("{what} must be a mapping of names to strings"),
                None,
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            if let Some(s) = self.string(v, &format!("{what}.{}", k.name)) {
                out.push((k.name.clone(), s));
            }
        }
        Some(out)
    }

    pub(super) fn duration(&mut self, n: &Node, what: &str) -> Option<Duration> {
        let text = self.string(n, what)?;
        match parse_duration(&text) {
            Some(d) if (MIN_DURATION..=MAX_DURATION).contains(&d) => Some(d),
            _ => {
                self.err(
                    n.pos,
                    format!("{what}: `{text}` is not a duration between 1ms and 24h"),
                    Some("write it like 500ms, 10s or 2m".into()),
                );
                None
            }
        }
    }

    /// A relative path must stay inside the project; absolute paths are taken as they are.
    pub(super) fn path(&mut self, n: &Node, text: &str, what: &str) -> Option<PathBuf> {
        let p = Path::new(text);
        if p.is_absolute() {
            return Some(p.to_path_buf());
        }
        let mut depth: i32 = 0;
        for c in p.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                self.err(
                    n.pos,
                    format!("{what}: `{text}` escapes the project directory"),
                    Some("keep relative paths inside the project (the directory of the pipeline file), or give an absolute path".to_string()),
                );
                return None;
            }
        }
        Some(self.root.join(p))
    }

    pub(super) fn platform(&mut self, n: &Node, what: &str) -> Option<&'static Platform> {
        let s = self.string(n, what)?;
        match Platform::parse(&s) {
            Some(p) => Some(p),
            None => {
                let known = Platform::known_names();
                let hint = match s.as_str() {
                    "linux/arm/v8" | "linux/armv8" => format!(
                        "64-bit ARMv8 is `linux/arm64`; 32-bit code for ARMv8 CPUs is `linux/arm/v7`. supported: {}",
                        known.join(", ")
                    ),
                    _ => match suggest(&s, &known) {
                        Some(k) => format!("did you mean `{k}`? supported: {}", known.join(", ")),
                        None => format!("supported platforms: {}", known.join(", ")),
                    },
                };
                self.err(n.pos, format!("{what}: unknown platform `{s}`"), hint);
                None
            }
        }
    }

    pub(super) fn platforms(&mut self, n: &Node, what: &str) -> Option<Vec<&'static Platform>> {
        let Kind::Seq(items) = &n.kind else {
            self.err(n.pos, format!("{what} must be a list of platforms"), None);
            return None;
        };
        if items.is_empty() {
            self.err(
                n.pos,
                format!("{what} is empty: there is nothing to build"),
                Some("list at least one platform, e.g. [linux/amd64, linux/arm64]".into()),
            );
            return None;
        }
        let mut out: Vec<&'static Platform> = Vec::new();
        for item in items {
            if let Some(p) = self.platform(item, what) {
                if out.contains(&p) {
                    self.err(
                        item.pos,
                        format!("{what}: `{}` is listed twice", p.name),
                        None,
                    );
                } else {
                    out.push(p);
                }
            }
        }
        Some(out)
    }

    pub(super) fn base(&mut self, n: &Node, what: &str) -> Option<Base> {
        let s = self.string(n, what)?;
        if s == "scratch" {
            return Some(Base::Scratch);
        }
        if s.starts_with("oci:") {
            // The one `oci:PATH[:TAG]` parser (the path ends at the first `:`, as in skopeo).
            let r = match crate::oci::layout::parse_oci_ref(&s) {
                Ok(r) => r,
                Err(e) => {
                    let why = match e {
                        crate::oci::layout::LayoutError::BadRef(_) => {
                            format!("`{s}` names no directory")
                        }
                        e => format!("`{s}`: {e}"),
                    };
                    self.err(
                        n.pos,
                        format!("{what}: {why}"),
                        Some("write oci:PATH or oci:PATH:TAG".into()),
                    );
                    return None;
                }
            };
            let path = self.path(n, &r.path.to_string_lossy(), what)?;
            return Some(Base::Oci { path, tag: r.tag });
        }
        if s.is_empty() || s.contains(char::is_whitespace) {
            self.err(
                n.pos,
                format!("{what}: `{s}` is not an image reference"),
                Some(
                    "write scratch, oci:PATH[:TAG] or an image reference like debian:bookworm-slim"
                        .into(),
                ),
            );
            return None;
        }
        if let Err(e) = crate::oci::registry::Reference::parse(&s) {
            self.err(
                n.pos,
                format!("{what}: {e}"),
                Some(
                    "write scratch, oci:PATH[:TAG] or an image reference like debian:bookworm-slim"
                        .into(),
                ),
            );
            return None;
        }
        Some(Base::Registry(s))
    }

    pub(super) fn regex(&mut self, n: &Node, what: &str) -> Option<String> {
        let s = self.string(n, what)?;
        match regex::Regex::new(&s) {
            Ok(_) => Some(s),
            Err(e) => {
                self.err(
                    n.pos,
                    format!("{what}: not a valid regular expression: {e}"),
                    Some("use single quotes around patterns with backslashes".into()),
                );
                None
            }
        }
    }
}

pub(super) fn unreachable_seq() -> ! {
    unreachable!("platforms() only succeeds on a sequence")
}

pub(super) fn valid_repository(s: &str) -> bool {
    !s.is_empty()
        && !s.contains('@')
        && s.split('/').enumerate().all(|(i, part)| {
            !part.is_empty()
                && if i == 0 && s.contains('/') {
                    // the first component may be a host[:port]
                    part.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
                        && part
                            .chars()
                            .all(|c| !c.is_ascii_uppercase() || part.contains('.'))
                } else {
                    part.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                }
        })
}

/// `UID[:GID]`, each a number that fits an unsigned 32-bit id (at most 4294967295).
pub(super) fn valid_user(s: &str) -> bool {
    let mut parts = s.split(':');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u32>().is_ok())
    };
    let uid = parts.next();
    match (uid, parts.next(), parts.next()) {
        (u, None, None) => ok(u),
        (u, Some(g), None) => ok(u) && ok(Some(g)),
        _ => false,
    }
}

/// Checks a tag template: known placeholders only, and tag characters otherwise.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    let mut plain = String::new();
    while let Some(open) = rest.find('{') {
        plain.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{t}` has an unclosed `{{`"));
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("`{t}` uses an unknown placeholder `{{{name}}}`"));
        }
        plain.push('x');
        rest = &rest[open + close + 1..];
    }
    plain.push_str(rest);
    if plain.contains('}') {
        return Err(format!("`{t}` has a stray `}}`"));
    }
    if plain.is_empty()
        || !plain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || plain.starts_with(['.', '-'])
    {
        return Err(format!(
            "`{t}` would not make a valid tag (letters, digits, `.`, `_`, `-`; not starting with `.` or `-`)"
        ));
    }
    Ok(())
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // Checked: a huge number (99999999999999999999s) is an error, not a panic.
    Duration::try_from_secs_f64(secs).ok()
}

pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

pub(super) fn parse_glibc(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    let major: u32 = a.parse().ok()?;
    let minor: u32 = b.parse().ok()?;
    (major == 2 && (17..=99).contains(&minor)).then_some((major, minor))
}

/// The longest tag a template can make: each placeholder at its longest (`{major}`, `{minor}`,
/// `{patch}`, `{pr}`: 20 digits, the largest u64; `{version}`: the explicit version when the
/// config gives one, else three 20-digit numbers; `{sha}`, `{sha_long}`: 64 hex digits, a SHA-256
/// repository), plus `suffix`. `{branch}` counts one character: it is cut to the room the rest
/// of the tag leaves.
pub fn worst_case_tag_len(template: &str, version: Option<&str>, suffix: &str) -> usize {
    let version_len = version.map_or(20 * 3 + 2, str::len);
    let mut len = template.len() + suffix.len();
    for (name, longest) in [
        ("{version}", version_len),
        ("{major}", 20),
        ("{minor}", 20),
        ("{patch}", 20),
        ("{sha}", 64),
        ("{sha_long}", 64),
        ("{pr}", 20),
        ("{branch}", 1),
    ] {
        let n = template.matches(name).count();
        len = len - n * name.len() + n * longest;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_not_panicking() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5ms"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("1e400h"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn users_fit_32_bits() {
        assert!(valid_user("10001:10001"));
        assert!(valid_user("4294967295"));
        assert!(!valid_user("4294967296"));
        assert!(!valid_user("1:99999999999"));
        assert!(!valid_user("1:"));
        assert!(!valid_user("-1"));
    }

    #[test]
    fn tag_templates_at_their_longest() {
        assert_eq!(worst_case_tag_len("latest", None, ""), 6);
        assert_eq!(worst_case_tag_len("{version}", None, "-musl"), 67);
        assert_eq!(worst_case_tag_len("{version}", Some("1.4.0-rc.1"), ""), 10);
        assert_eq!(worst_case_tag_len("{major}.{minor}", None, ""), 41);
        assert_eq!(worst_case_tag_len("sha-{sha}", None, ""), 68);
        assert_eq!(worst_case_tag_len("sha-{sha_long}", None, ""), 68);
        assert_eq!(worst_case_tag_len("pr-{pr}", None, "-musl"), 28);
        assert_eq!(worst_case_tag_len("{branch}", None, "-musl"), 6);
    }
}
