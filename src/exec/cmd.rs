//! A command as data: program, arguments, environment, working directory, the purpose shown in
//! logs and errors, and (for verification) the sandbox it runs in. `display` prints it as one
//! shell line for `-v` and `--dry-run`; `duct` turns it into an expression that starts in its
//! own process group.

use super::sandbox::{Prepared, Sandbox};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// A command as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Variables set for the child (on top of the inherited environment unless `clear_env`).
    pub env: BTreeMap<String, String>,
    /// Variables removed from the inherited environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_remove: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
    /// Why shipit runs it, for logs and errors ("build linux/arm64 (gnu)").
    pub purpose: String,
    /// Run it confined to an unpacked image (verification), see [`Sandbox`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
    /// Bytes written to the child's stdin (otherwise stdin is `/dev/null`). Never a secret:
    /// it is shown by `display`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

impl Cmd {
    pub fn new(program: impl Into<String>, purpose: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_remove: Vec::new(),
            clear_env: false,
            cwd: None,
            purpose: purpose.into(),
            sandbox: None,
            stdin: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Cmd {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }

    /// The command as one shell line, `cd DIR && VAR=value program args`, quoted so that it can
    /// be pasted into a shell.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dir) = &self.cwd {
            parts.push(format!("cd {} &&", quote(&dir.display().to_string())));
        }
        for (k, v) in &self.env {
            parts.push(format!("{k}={}", quote(v)));
        }
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        if let Some(text) = &self.stdin {
            parts.push(format!("<<< {}", quote(text)));
        }
        parts.join(" ")
    }

    pub(super) fn duct(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args);
        if self.clear_env {
            e = e.full_env(self.env.iter());
        } else {
            for k in &self.env_remove {
                e = e.env_remove(k);
            }
            for (k, v) in &self.env {
                e = e.env(k, v);
            }
        }
        if let Some(dir) = &self.cwd {
            e = e.dir(dir);
        }
        let sandbox = self.sandbox.as_ref().map(Prepared::new);
        e = match &self.stdin {
            Some(text) => e.stdin_bytes(text.as_bytes()),
            None => e.stdin_null(),
        };
        e.unchecked().before_spawn(move |c| {
            c.process_group(0);
            if let Some(prepared) = &sandbox {
                let prepared = prepared
                    .as_ref()
                    .map_err(|e| io::Error::new(e.kind(), e.to_string()))?
                    .clone();
                // SAFETY: the closure only makes raw system calls on data prepared before the
                // fork (no allocation, no locks), as pre_exec requires.
                unsafe {
                    c.pre_exec(move || prepared.enter());
                }
            }
            Ok(())
        })
    }
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| format!("{s:?}"))
}
