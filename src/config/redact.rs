//! Keeps secrets out of config errors. A pipeline that holds a `password:` is refused, but the
//! error's source excerpt would print that line, secret included, into a CI log. So before a
//! config error keeps the file's text, the values of secret-looking keys (password, passwd,
//! token, secret, api_key, apikey, auth, credential; any case, anywhere in the key) are masked in
//! it, and those values are masked wherever a message or hint might repeat them. The masking
//! works on the raw lines, so it holds for a file that is not even valid YAML, and on the parsed
//! document when there is one (values nested under a secret key, flow mappings, block scalars).

use super::yaml::{Kind, Node};

/// What a hidden value is shown as.
pub const MASK: &str = "********";

/// Words that make a key secret-looking, matched case-insensitively anywhere in the key.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "auth",
    "credential",
];

/// Values shorter than this are not searched for in messages (a one-letter "secret" would mask
/// every such letter); the excerpt masking still hides them by position.
const MIN_VALUE_LEN: usize = 3;

/// Whether a key looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Every scalar value under a secret-looking key, at any depth (a secret key's whole subtree).
pub fn secret_values(doc: &Node) -> Vec<String> {
    fn all(n: &Node, out: &mut Vec<String>) {
        match &n.kind {
            Kind::Scalar { text, .. } => out.push(text.clone()),
            Kind::Seq(items) => items.iter().for_each(|i| all(i, out)),
            Kind::Map(entries) => entries.iter().for_each(|(_, v)| all(v, out)),
        }
    }
    fn walk(n: &Node, out: &mut Vec<String>) {
        match &n.kind {
            Kind::Scalar { .. } => {}
            Kind::Seq(items) => items.iter().for_each(|i| walk(i, out)),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    if is_secret_key(&k.name) {
                        all(v, out);
                    } else {
                        walk(v, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out.retain(|v| v.trim().chars().count() >= MIN_VALUE_LEN);
    // Longest first, so a value that contains another is replaced whole.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out.dedup();
    out
}

/// Replaces every occurrence of each value (and of each of its lines) in `s` with the mask.
pub fn mask_values(s: &str, values: &[String]) -> String {
    let mut out = s.to_string();
    for v in values {
        for part in std::iter::once(v.as_str()).chain(v.lines()) {
            let part = part.trim();
            if part.chars().count() >= MIN_VALUE_LEN {
                out = out.replace(part, MASK);
            }
        }
    }
    out
}

/// The file's text with the values of secret-looking keys masked line by line: `key: value`
/// keeps the key (`password: ********`), in block and flow style alike, and the lines that
/// continue a secret key's value (a block scalar, a nested mapping, a list; anything indented
/// deeper than the key) are masked too, keeping only their own keys.
pub fn mask_text(text: &str) -> String {
    let mut out = Vec::new();
    // The indentation of the secret key whose value the next deeper lines continue.
    let mut inside: Option<usize> = None;
    for line in text.split('\n') {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let blank = line.trim().is_empty() || line.trim_start().starts_with('#');
        if let Some(key_indent) = inside {
            if blank || indent > key_indent {
                out.push(if blank {
                    line.to_string()
                } else {
                    mask_continuation(line, indent)
                });
                continue;
            }
            inside = None;
        }
        let (masked, open) = mask_line(line);
        if open {
            inside = Some(indent);
        }
        out.push(masked);
    }
    out.join("\n")
}

/// A line inside a secret value: its own `key:` (if any) stays, the rest is masked.
fn mask_continuation(line: &str, indent: usize) -> String {
    let body = &line[indent..];
    let lead = body.len() - body.trim_start_matches(['-', ' ']).len();
    let rest = &body[lead..];
    match key_end(rest) {
        Some(end) if rest[end + 1..].trim().is_empty() => line.to_string(),
        Some(end) => format!("{}{}: {MASK}", &line[..indent + lead], &rest[..end]),
        None => format!("{}{MASK}", &line[..indent + lead]),
    }
}

/// Where a `key:` ends in `s` (the index of its colon): a colon followed by a space or the end.
fn key_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' '))
}

/// Masks the values of secret-looking keys on one line. Returns the line and whether a secret
/// key in block style was found, whose value may continue on deeper-indented lines.
fn mask_line(line: &str) -> (String, bool) {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut open = false;
    let mut i = 0;
    let mut key_start = 0;
    while i < b.len() {
        let c = b[i];
        let list_dash = c == b'-' && b.get(i + 1).is_none_or(|n| *n == b' ');
        if matches!(c, b'{' | b'[' | b',') || list_dash || c == b' ' && i == key_start {
            out.push(c as char);
            i += 1;
            key_start = i;
            continue;
        }
        if c == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
            let key = line[key_start..i].trim().trim_matches(['"', '\'']);
            out.push(':');
            i += 1;
            if is_secret_key(key) {
                // The value runs to the end of the line, or in flow style to the next `,`/`}`.
                let flow = line[..key_start].contains('{');
                let end = if flow {
                    line[i..].find([',', '}']).map(|e| i + e).unwrap_or(b.len())
                } else {
                    b.len()
                };
                let value = line[i..end].split(" #").next().unwrap_or("").trim();
                open |= !flow;
                if value.is_empty() || matches!(value, "|" | ">" | "|-" | ">-" | "|+" | ">+") {
                    out.push_str(&line[i..end]);
                } else {
                    out.push(' ');
                    out.push_str(MASK);
                }
                i = end;
                key_start = i;
                continue;
            }
            key_start = i;
            continue;
        }
        // Only the first char is ASCII-tested; copy whole UTF-8 characters.
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_in_any_case_anywhere_in_the_key() {
        for k in [
            "password",
            "PASSWORD",
            "registry_passwd",
            "GITHUB_TOKEN",
            "Secret",
            "my-api_key",
            "ApiKey",
            "auth",
            "credentials",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["repository", "env", "tags", "user", "base"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn block_keys_keep_the_key_and_hide_the_value() {
        assert_eq!(
            mask_text("publish:\n  to: registry\n  password: hunter2\n"),
            "publish:\n  to: registry\n  password: ********\n"
        );
        assert_eq!(
            mask_text("  \"Api_Key\": 'x y z'  # note"),
            "  \"Api_Key\": ********"
        );
    }

    #[test]
    fn flow_mappings_hide_only_the_secret_value() {
        assert_eq!(
            mask_text("  env: { API_TOKEN: canary, LEVEL: debug }"),
            "  env: { API_TOKEN: ********, LEVEL: debug }"
        );
        assert_eq!(mask_text("- {secret: s3cr3t}"), "- {secret: ********}");
    }

    #[test]
    fn values_continued_on_deeper_lines_are_hidden() {
        let text = "credentials:\n  user: me\n  pass: |\n    canary\n- x\nimage:\n  token: >\n    canary\n    more\n  repository: r\n";
        assert_eq!(
            mask_text(text),
            "credentials:\n  user: ********\n  pass: ********\n    ********\n- x\nimage:\n  token: >\n    ********\n    ********\n  repository: r\n"
        );
    }

    #[test]
    fn other_lines_are_untouched() {
        let text = "image:\n  repository: localhost/app\n  tags: [\"{version}\", latest]\n";
        assert_eq!(mask_text(text), text);
        assert_eq!(mask_text("url: http://x:1/a"), "url: http://x:1/a");
    }

    #[test]
    fn values_are_masked_in_messages() {
        let (doc, _) = super::super::yaml::parse(
            "image:\n  env:\n    DB_PASSWORD: canary-1\n  auth: { user: canary-2 }\n  x: y\n",
        )
        .unwrap();
        let v = secret_values(&doc);
        assert_eq!(v, ["canary-1", "canary-2"]);
        assert_eq!(
            mask_values("`canary-1` is not `canary-2`, y", &v),
            "`********` is not `********`, y"
        );
    }
}
