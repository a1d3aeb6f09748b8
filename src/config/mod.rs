//! The pipeline config: load `pipeline.yaml`, validate it against schema version 1, fill in the
//! defaults. A config error names `file:line:col`, says what is wrong and how to fix it, and all
//! errors of a file are reported at once.

pub mod files;
pub mod redact;
pub mod schema;
pub mod types;
pub mod values;
mod walker;
pub mod yaml;

pub use types::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// The largest config file shipit reads (configs are tiny; this stops hostile input early).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// One located problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Everything wrong with one config file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file as the user named it (for messages).
    pub file: PathBuf,
    /// The file's text, with the values of secret-looking keys masked (`redact::mask_text`).
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    fn single(file: &Path, message: String, hint: Option<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            source_text: String::new(),
            diagnostics: vec![Diagnostic {
                line: 0,
                col: 0,
                message,
                hint,
            }],
        }
    }

    /// GitHub Actions annotations, one line per problem.
    pub fn github_annotations(&self) -> String {
        let file = self.file.display().to_string();
        self.diagnostics
            .iter()
            .map(|d| {
                let msg = match &d.hint {
                    Some(h) => format!("{} (hint: {h})", d.message),
                    None => d.message.clone(),
                };
                crate::ci::github::error_annotation(&file, d.line.max(1), d.col.max(1), &msg)
            })
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = shown_path(&self.file);
        let lines: Vec<&str> = self.source_text.lines().collect();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let message = printable(&d.message);
            if d.line == 0 {
                writeln!(f, "{file}: error: {message}")?;
            } else {
                writeln!(f, "{file}:{}:{}: error: {message}", d.line, d.col)?;
                if let Some(src) = lines.get(d.line - 1) {
                    writeln!(f, "{:>5} | {}", d.line, printable(src))?;
                    writeln!(f, "      | {}^", " ".repeat(d.col.saturating_sub(1)))?;
                }
            }
            if let Some(h) = &d.hint {
                writeln!(f, "      = hint: {}", printable(h))?;
            }
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "{} problem{} in {file}; nothing was built, written or pushed",
            n,
            if n == 1 { "" } else { "s" },
        )
    }
}

/// Text from the config as one printable line: control characters (line breaks, carriage
/// returns, escape sequences; tabs stay) are shown escaped, so a key holding `\n::warning::x`
/// cannot start a line of its own (a GitHub workflow command) or move a terminal's cursor.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&c.escape_unicode().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

/// A path for a diagnostic line: printable, and a relative path starting with `::` gets `./` in
/// front (the same file), so the line cannot read as a workflow command.
fn shown_path(p: &Path) -> String {
    let s = printable(&p.display().to_string());
    if s.starts_with("::") {
        format!("./{s}")
    } else {
        s
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a pipeline file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let bytes = files::read_regular(file, MAX_CONFIG_BYTES).map_err(|e| match e {
        files::FileError::Open(e) => ConfigError::single(
            file,
            format!("cannot read the pipeline: {e}"),
            Some(
                "run shipit in the project directory, pass -c PATH (or SHIPIT_CONFIG), or create one with `shipit init`"
                    .into(),
            ),
        ),
        files::FileError::NotRegular(kind) => ConfigError::single(
            file,
            format!("the pipeline is a {kind}, not a regular file; shipit reads only regular files"),
            Some("pass the path of the pipeline file itself with -c PATH".into()),
        ),
        files::FileError::TooLarge { .. } => ConfigError::single(
            file,
            "the file is larger than 1 MiB; a pipeline is at most 1 MiB".into(),
            None,
        ),
        files::FileError::Read(e) => {
            ConfigError::single(file, format!("cannot read the pipeline: {e}"), None)
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::single(
            file,
            format!(
                "the file is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            Some("save it as UTF-8".into()),
        )
    })?;
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let root = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_str(&text, file, &root)
}

/// Validates config text; `file` is used for messages, `root` is the project directory.
pub fn parse_str(text: &str, file: &Path, root: &Path) -> Result<Config, ConfigError> {
    // No secret from the file reaches an error: neither in the excerpt nor in a message or hint
    // (terminal, `::error` annotations and --json all render these same fields).
    let fail = |diagnostics: Vec<Diagnostic>, secrets: &[String]| ConfigError {
        file: file.to_path_buf(),
        source_text: redact::mask_values(&redact::mask_text(text), secrets),
        diagnostics: diagnostics
            .into_iter()
            .map(|d| Diagnostic {
                message: redact::mask_values(&d.message, secrets),
                hint: d.hint.map(|h| redact::mask_values(&h, secrets)),
                ..d
            })
            .collect(),
    };
    let (doc, parse_problems) = yaml::parse(text).map_err(|p| {
        fail(
            vec![Diagnostic {
                line: p.pos.line,
                col: p.pos.col,
                message: p.message,
                hint: p.hint,
            }],
            &[],
        )
    })?;
    let secrets = redact::secret_values(&doc);
    let mut diags: Vec<Diagnostic> = parse_problems
        .into_iter()
        .map(|p| Diagnostic {
            line: p.pos.line,
            col: p.pos.col,
            message: p.message,
            hint: p.hint,
        })
        .collect();
    match schema::validate(&doc, file, root) {
        Ok(cfg) if diags.is_empty() => Ok(cfg),
        Ok(_) => Err(fail(diags, &secrets)),
        Err(problems) => {
            diags.extend(problems.into_iter().map(|p| Diagnostic {
                line: p.pos.line,
                col: p.pos.col,
                message: p.message,
                hint: p.hint,
            }));
            diags.sort_by_key(|d| (d.line, d.col));
            Err(fail(diags, &secrets))
        }
    }
}
