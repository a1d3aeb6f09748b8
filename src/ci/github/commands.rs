//! GitHub Actions workflow commands and step files: escaping (in data `%`, `\r`, `\n`; in
//! properties also `:` and `,`), `::group::`, `::error` annotations, `::add-mask::`, and appending
//! to `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`. Each command is a pure function returning
//! complete lines (ending in `\n`); the I/O helpers take the file path explicitly (`*_to`) and have
//! a thin wrapper that reads the path from the environment.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// True when running as a GitHub Actions step (`GITHUB_ACTIONS=true`).
pub fn is_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escapes the data (message) part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Makes text inert as log lines under Actions (for what goes to stdout or stderr that is not a
/// workflow command): a bare `\r`, which the runner reads as a line break, is shown as `\r`,
/// and a line that starts with `::` after blanks (the runner trims them) gets its first colon
/// escaped as `%3A`, so no value can smuggle in a command.
pub fn inert_lines(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\\r");
    s.split('\n')
        .map(|line| {
            let blanks = line.len() - line.trim_start().len();
            if line[blanks..].starts_with("::") {
                format!("{}%3A{}", &line[..blanks], &line[blanks + 1..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes a property value (`file=`, `title=` ...) of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::NAME`: starts a collapsible group in the log.
pub fn group(name: &str) -> String {
    format!("::group::{}\n", escape_data(name))
}

/// `::endgroup::`: ends the current group.
pub fn endgroup() -> String {
    "::endgroup::\n".to_string()
}

/// An error annotation on a file position (line and column are 1-based; 0 leaves them out).
pub fn error_annotation(file: &str, line: usize, col: usize, msg: &str) -> String {
    let mut props = format!("file={}", escape_property(file));
    if line > 0 {
        let _ = write!(props, ",line={line}");
        if col > 0 {
            let _ = write!(props, ",col={col}");
        }
    }
    format!("::error {props}::{}\n", escape_data(msg))
}

/// An error annotation without a position.
pub fn error(msg: &str) -> String {
    format!("::error::{}\n", escape_data(msg))
}

/// A warning annotation without a position.
pub fn warning(msg: &str) -> String {
    format!("::warning::{}\n", escape_data(msg))
}

/// `::add-mask::` lines for a secret: one per line of a multi-line value (the runner masks only
/// single lines), blank lines skipped. Print them before anything could print the value; with
/// `set -x` in a shell the value would be echoed anyway (actions/runner#475).
pub fn add_mask(value: &str) -> String {
    value
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("::add-mask::{}\n", escape_data(l)))
        .collect()
}

/// A `$GITHUB_OUTPUT` entry: `name=value` for one line, the `name<<DELIM` heredoc form for a
/// multi-line value. `delimiter` must not occur in the value (`write_output_to` picks a random one).
pub fn output_entry(name: &str, value: &str, delimiter: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "GitHub output name {name:?} is invalid: use letters, digits, `_` and `-` only"
        ));
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    if value.contains(delimiter) || delimiter.is_empty() || delimiter.contains(['\n', '\r']) {
        return Err(format!(
            "GitHub output {name}: the heredoc delimiter {delimiter:?} is unusable for this value"
        ));
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

/// A random heredoc delimiter in the form the official toolkit uses (`ghadelimiter_<hex>`).
pub fn random_delimiter() -> String {
    let mut bytes = [0u8; 16];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_urandom {
        // No /dev/urandom: time and pid still make a collision with real output implausible.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes = seed.to_le_bytes();
    }
    format!("ghadelimiter_{}", hex::encode(bytes))
}

/// Appends `name` = `value` to the output file at `path` (the heredoc form for multi-line values).
pub fn write_output_to(path: &Path, name: &str, value: &str) -> Result<(), String> {
    let mut delimiter = random_delimiter();
    while value.contains(&delimiter) {
        delimiter = random_delimiter();
    }
    let entry = output_entry(name, value, &delimiter)?;
    append(path, &entry)
}

/// Appends an output to `$GITHUB_OUTPUT`. Returns `Ok(false)` when the variable is unset or
/// empty (not in Actions, nothing written).
pub fn write_output(name: &str, value: &str) -> Result<bool, String> {
    match env_path("GITHUB_OUTPUT") {
        Some(p) => write_output_to(&p, name, value).map(|()| true),
        None => Ok(false),
    }
}

/// Appends Markdown to the step summary file at `path` (a final newline is ensured).
pub fn append_step_summary_to(path: &Path, markdown: &str) -> Result<(), String> {
    let mut text = markdown.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    append(path, &text)
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY`. Returns `Ok(false)` when the variable is unset.
pub fn append_step_summary(markdown: &str) -> Result<bool, String> {
    match env_path("GITHUB_STEP_SUMMARY") {
        Some(p) => append_step_summary_to(&p, markdown).map(|()| true),
        None => Ok(false),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            format!(
                "cannot append to {}: {e} (the GitHub Actions runner provides this file; is the step's environment intact?)",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_property_escaping() {
        assert_eq!(escape_data("50% a\r\nb:c,d"), "50%25 a%0D%0Ab:c,d");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // `%` first, so an escape sequence in the input survives literally.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn log_lines_cannot_become_commands() {
        assert_eq!(
            inert_lines("key `x\n::warning::pwned`"),
            "key `x\n%3A:warning::pwned`"
        );
        assert_eq!(inert_lines("  \t::error::x"), "  \t%3A:error::x");
        assert_eq!(inert_lines("a\r::notice::b"), "a\\r::notice::b");
        assert_eq!(inert_lines("a\r\nb: c::d"), "a\nb: c::d");
    }

    #[test]
    fn annotations() {
        assert_eq!(
            error_annotation("dir,1/pipe:line.yaml", 3, 7, "bad\nvalue 100%"),
            "::error file=dir%2C1/pipe%3Aline.yaml,line=3,col=7::bad%0Avalue 100%25\n"
        );
        assert_eq!(
            error_annotation("p.yaml", 0, 0, "m"),
            "::error file=p.yaml::m\n"
        );
        assert_eq!(
            error_annotation("p.yaml", 2, 0, "m"),
            "::error file=p.yaml,line=2::m\n"
        );
        assert_eq!(error("x:y"), "::error::x:y\n");
        assert_eq!(warning("w"), "::warning::w\n");
        assert_eq!(group("build a\nb"), "::group::build a%0Ab\n");
        assert_eq!(endgroup(), "::endgroup::\n");
    }

    #[test]
    fn masks_every_line_of_a_multiline_secret() {
        assert_eq!(add_mask("s3cr%t"), "::add-mask::s3cr%25t\n");
        assert_eq!(
            add_mask("line1\r\nline2\n\n  \nline3\n"),
            "::add-mask::line1\n::add-mask::line2\n::add-mask::line3\n"
        );
        assert_eq!(add_mask(""), "");
    }

    #[test]
    fn output_single_and_heredoc() {
        assert_eq!(
            output_entry("digest", "sha256:ab", "D").unwrap(),
            "digest=sha256:ab\n"
        );
        assert_eq!(
            output_entry("tags", "a:1\na:latest", "ghadelimiter_x").unwrap(),
            "tags<<ghadelimiter_x\na:1\na:latest\nghadelimiter_x\n"
        );
        assert!(output_entry("tags", "a\nDELIM\n", "DELIM").is_err());
        for bad in ["", "a=b", "a b", "a\nb", "x<<y"] {
            assert!(output_entry(bad, "v", "D").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn output_file_is_parsed_back_as_the_runner_does() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out");
        write_output_to(&f, "digest", "sha256:00").unwrap();
        write_output_to(&f, "tags", "r:1.0.0\nr:latest").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let parsed = parse_output_file(&text);
        assert_eq!(
            parsed,
            vec![
                ("digest".to_string(), "sha256:00".to_string()),
                ("tags".to_string(), "r:1.0.0\nr:latest".to_string())
            ]
        );
        // Random delimiters: two writes of the same multi-line value differ.
        write_output_to(&f, "tags", "a\nb").unwrap();
        let text2 = std::fs::read_to_string(&f).unwrap();
        let delims: Vec<&str> = text2
            .lines()
            .filter_map(|l| l.split_once("<<").map(|(_, d)| d))
            .collect();
        assert_eq!(delims.len(), 2);
        assert_ne!(delims[0], delims[1]);
        assert!(delims[0].starts_with("ghadelimiter_") && delims[0].len() == 13 + 32);
    }

    /// The runner's file-command parser (actions/runner `SetOutputFileCommand`), for the test.
    fn parse_output_file(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            if let Some((name, delim)) = line.split_once("<<") {
                let mut val = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    val.push(l);
                }
                out.push((name.to_string(), val.join("\n")));
            } else if let Some((name, v)) = line.split_once('=') {
                out.push((name.to_string(), v.to_string()));
            }
        }
        out
    }

    #[test]
    fn step_summary_appends_with_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("summary.md");
        append_step_summary_to(&f, "# a").unwrap();
        append_step_summary_to(&f, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "# a\nb\n");
        let err = append_step_summary_to(&dir.path().join("no/such/dir/f"), "x").unwrap_err();
        assert!(err.contains("no/such/dir/f"), "{err}");
    }
}
