//! The error every command returns, mapped to the documented exit codes by `main`:
//! 0 ok · 1 a stage failed · 2 usage or config error · 3 environment (tool missing or too old,
//! credentials unusable) · 130/143 interrupted.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A build, verify or publish step failed.
    Stage,
    /// Bad usage or config.
    Config,
    /// The machine lacks something (tool, credentials).
    Environment,
    /// SIGINT/SIGTERM/SIGHUP.
    Interrupted(i32),
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// More lines under the message (a log tail, a list of findings).
    pub detail: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn stage(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Stage,
            message: message.into(),
            detail: None,
        }
    }
    pub fn config(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config,
            message: message.into(),
            detail: None,
        }
    }
    pub fn env(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Environment,
            message: message.into(),
            detail: None,
        }
    }
    pub fn interrupted(sig: i32) -> Error {
        Error {
            kind: Kind::Interrupted(sig),
            message: format!(
                "interrupted by {}: stopped cleanly, no tag was moved",
                crate::exec::signal_name(sig)
            ),
            detail: None,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Stage => 1,
            Kind::Config => 2,
            Kind::Environment => 3,
            Kind::Interrupted(sig) => 128 + sig,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

impl From<crate::exec::ExecError> for Error {
    fn from(e: crate::exec::ExecError) -> Error {
        if let crate::exec::ExecError::Cancelled { signal, .. } = e {
            return Error::interrupted(signal);
        }
        let tail = e.tail().map(|t| {
            t.lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        let err = Error::stage(e.to_string());
        match tail {
            Some(t) => err.with_detail(format!("last lines of output:\n{t}")),
            None => err,
        }
    }
}

impl From<crate::exec::Cancelled> for Error {
    fn from(c: crate::exec::Cancelled) -> Error {
        Error::interrupted(c.0)
    }
}

impl From<crate::plan::PlanError> for Error {
    fn from(e: crate::plan::PlanError) -> Error {
        Error::config(e.to_string())
    }
}
