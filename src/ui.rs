//! Where output goes: results and machine output (`--json`) on stdout, progress and logs on
//! stderr. `-q` quiets, `-v` shows every command, `NO_COLOR` or a non-TTY stderr turns colour and
//! progress bars off, and GitHub Actions gets `::group::` / `::error::` lines instead.
//!
//! Workflow commands go through [`Ui::workflow`]: on stdout as before, but on stderr under
//! `--json` (the runner reads commands from both streams), so stdout then holds the JSON document
//! only. Under Actions every human line is made inert first: a value holding `\n::warning::x`
//! cannot start a workflow command of its own.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Default)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    pub color: bool,
    /// stderr is a terminal and bars are wanted.
    pub bars: bool,
    pub github: bool,
    /// Nothing at all, warnings included: for work done ahead whose stage says it all again
    /// (`stage::early`).
    pub muted: bool,
}

impl Ui {
    pub fn new(quiet: bool, verbose: bool, json: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        Ui {
            quiet,
            verbose,
            json,
            color: tty && !no_color,
            bars: tty && !quiet && !verbose && !json && !github && !no_color,
            github,
            muted: false,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Text for a log line: under GitHub Actions no line of it can read as a workflow command.
    fn shown<'a>(&self, msg: &'a str) -> Cow<'a, str> {
        if self.github {
            Cow::Owned(crate::ci::github::inert_lines(msg))
        } else {
            Cow::Borrowed(msg)
        }
    }

    /// Writes workflow-command lines (GitHub Actions only; each line ends in `\n`): on stdout,
    /// or on stderr under `--json` so that stdout holds the JSON document only.
    pub fn workflow(&self, lines: &str) {
        if !self.github || lines.is_empty() {
            return;
        }
        if self.json {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(lines.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(lines.as_bytes());
            let _ = out.flush();
        }
    }

    /// `::error::MSG` (escaped) in GitHub Actions.
    pub fn github_error(&self, msg: &str) {
        self.workflow(&crate::ci::github::error(msg));
    }

    /// One `::error file=..,line=..,col=..::` annotation per problem of a config error.
    pub fn github_config_error(&self, e: &crate::config::ConfigError) {
        self.workflow(&e.github_annotations());
    }

    /// `::add-mask::` for a secret (every line of it) in GitHub Actions.
    pub fn add_mask(&self, secret: &str) {
        self.workflow(&crate::ci::github::add_mask(secret));
    }

    /// A normal progress line (hidden by -q).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", self.shown(msg.as_ref()));
        }
    }

    /// A stage heading. In GitHub Actions each stage is a collapsible `::group::` (the previous
    /// one is closed first).
    pub fn step(&self, msg: impl AsRef<str>) {
        if self.github {
            if GROUP_OPEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
                self.workflow(&crate::ci::github::endgroup());
            }
            self.workflow(&crate::ci::github::group(msg.as_ref()));
        }
        if !self.quiet {
            eprintln!(
                "{} {}",
                self.paint("1;36", "==>"),
                self.paint("1", &self.shown(msg.as_ref()))
            );
        }
    }

    /// Closes the last `::group::` (GitHub Actions), before the summary and errors.
    pub fn end_groups(&self) {
        if self.github && GROUP_OPEN.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.workflow(&crate::ci::github::endgroup());
        }
    }

    pub fn ok(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("  {} {}", self.paint("32", "ok"), self.shown(msg.as_ref()));
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.muted {
            return;
        }
        self.workflow(&crate::ci::github::warning(msg.as_ref()));
        eprintln!(
            "{} {}",
            self.paint("33", "warning:"),
            self.shown(msg.as_ref())
        );
    }

    /// Shown with -v (and always in --dry-run).
    pub fn verbose(&self, msg: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            eprintln!("{}", self.paint("2", &self.shown(msg.as_ref())));
        }
    }

    pub fn error(&self, msg: impl AsRef<str>) {
        if self.muted {
            return;
        }
        eprintln!(
            "{} {}",
            self.paint("1;31", "error:"),
            self.shown(msg.as_ref())
        );
    }
}

/// Whether a `::group::` is open.
static GROUP_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
