//! Where output goes: results and machine output (`--json`) on stdout, progress and logs on
//! stderr. `-q` quiets, `-v` shows every command, `NO_COLOR` or a non-TTY stderr turns colour and
//! progress bars off, and GitHub Actions gets `::group::` / `::error::` lines instead.

use std::io::IsTerminal;

#[derive(Debug, Clone, Default)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    pub color: bool,
    /// stderr is a terminal and bars are wanted.
    pub bars: bool,
    pub github: bool,
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
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// A normal progress line (hidden by -q).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A stage heading. In GitHub Actions each stage is a collapsible `::group::` (the previous
    /// one is closed first).
    pub fn step(&self, msg: impl AsRef<str>) {
        if self.github {
            if GROUP_OPEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
                print!("{}", crate::ci::github::endgroup());
            }
            print!("{}", crate::ci::github::group(msg.as_ref()));
        }
        if !self.quiet {
            eprintln!(
                "{} {}",
                self.paint("1;36", "==>"),
                self.paint("1", msg.as_ref())
            );
        }
    }

    /// Closes the last `::group::` (GitHub Actions), before the summary and errors.
    pub fn end_groups(&self) {
        if self.github && GROUP_OPEN.swap(false, std::sync::atomic::Ordering::SeqCst) {
            print!("{}", crate::ci::github::endgroup());
        }
    }

    pub fn ok(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("  {} {}", self.paint("32", "ok"), msg.as_ref());
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.github {
            println!("::warning::{}", escape_gh(msg.as_ref()));
        }
        eprintln!("{} {}", self.paint("33", "warning:"), msg.as_ref());
    }

    /// Shown with -v (and always in --dry-run).
    pub fn verbose(&self, msg: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            eprintln!("{}", self.paint("2", msg.as_ref()));
        }
    }

    pub fn error(&self, msg: impl AsRef<str>) {
        eprintln!("{} {}", self.paint("1;31", "error:"), msg.as_ref());
    }
}

/// Whether a `::group::` is open on stdout.
static GROUP_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Escapes a message for a GitHub workflow command.
pub fn escape_gh(s: &str) -> String {
    crate::ci::github::escape_data(s)
}
