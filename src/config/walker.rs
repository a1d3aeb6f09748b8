//! The walker's core, shared by the section walker (`schema.rs`) and the single-value readers
//! (`values.rs`): the problem list it collects, and the "did you mean" suggestions.

use super::yaml::Pos;
use std::path::Path;

/// One problem in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Walks one pipeline file, collecting every problem.
pub(super) struct Walker<'a> {
    pub(super) root: &'a Path,
    pub(super) problems: Vec<Problem>,
}

impl Walker<'_> {
    pub(super) fn err(
        &mut self,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.problems.push(Problem {
            pos,
            message: message.into(),
            hint: hint.into(),
        });
    }
}

pub(super) fn suggest(name: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k.to_string())
}

pub(super) fn list(known: &[&str]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
