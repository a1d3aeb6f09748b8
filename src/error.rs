//! The error every command returns, and the one place that decides its exit code
//! ([`Error::exit_code`], by variant): 0 ok · 1 a stage failed · 2 usage or config error ·
//! 3 environment (tool missing or too old, credentials unusable, registry auth) · 128+signal
//! interrupted (130/143).
//!
//! Module errors convert with `?` (`#[from]`), so their class comes from what they are, not from
//! the call site; [`Context`] puts a prefix on one ("copy musl into oci:dist") without changing
//! its class. A message written where the error happens names its class with
//! [`Error::stage`], [`Error::config`] or [`Error::env`]. A rendered config file error is its own
//! variant ([`Error::Config`]) and is printed as it is.

use crate::attest::key::KeyError;
use crate::attest::sbom::SbomError;
use crate::config::ConfigError;
use crate::exec::{Cancelled, ExecError};
use crate::oci::image::ImageError;
use crate::oci::index::IndexError;
use crate::oci::layer::LayerError;
use crate::oci::layout::LayoutError;
use crate::oci::registry::{CredentialError, ErrorKind, ReferenceError, RegistryError};
use crate::oci::unpack::{ManifestError, UnpackError};
use crate::plan::PlanError;
use crate::verify::elf::ElfError;
use std::path::PathBuf;

/// The exit code of a failed stage (build, verify, publish).
pub const EXIT_STAGE: i32 = 1;
/// The exit code of bad usage or config.
pub const EXIT_CONFIG: i32 = 2;
/// The exit code of a machine that lacks something (tool, credentials, registry access).
pub const EXIT_ENVIRONMENT: i32 = 3;

/// The class of an error, read from its exit code.
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A build, verify or publish step failed (a message written where it happened).
    #[error("{0}")]
    Stage(String),
    /// Bad usage or a config value the schema could not catch (a message).
    #[error("{0}")]
    Usage(String),
    /// The machine lacks something: a tool, usable credentials (a message).
    #[error("{0}")]
    Environment(String),
    /// SIGINT/SIGTERM/SIGHUP: the run stopped cleanly.
    #[error(
        "interrupted by {}: stopped cleanly, no tag was moved",
        crate::exec::signal_name(*.0)
    )]
    Interrupted(i32),
    /// The config file's problems, rendered `file:line:col: error: …` each: printed as it is.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// No plan could be made from this config and command line.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An image reference that does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A command failed (its log tail follows the message). Cancelled runs are `Interrupted`.
    #[error("{}", exec_text(.0))]
    Exec(ExecError),
    /// Talking to a registry failed. Cancelled calls are `Interrupted`.
    #[error(transparent)]
    Registry(RegistryError),
    /// Registry credentials could not be read. Cancelled lookups are `Interrupted`.
    #[error(transparent)]
    Credentials(CredentialError),
    /// The signing key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("SBOM: {0}")]
    Sbom(#[from] SbomError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// A manifest or index document that breaks the reading rules.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// A report or record shipit writes or reads back (build.json, package.json, …).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A local file shipit reads or writes.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What was being done when `source` happened; the class is `source`'s.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// More lines under the message (a log tail, a list of findings); the class is `error`'s.
    #[error("{error}\n{detail}")]
    Detailed { error: Box<Error>, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stage failure (exit 1).
    pub fn stage(message: impl Into<String>) -> Error {
        Error::Stage(message.into())
    }
    /// Bad usage or config (exit 2).
    pub fn config(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }
    /// The machine lacks something (exit 3).
    pub fn env(message: impl Into<String>) -> Error {
        Error::Environment(message.into())
    }
    /// Interrupted by `sig` (exit 128 + sig).
    pub fn interrupted(sig: i32) -> Error {
        Error::Interrupted(sig)
    }
    /// More lines under the message.
    pub fn with_detail(self, detail: impl Into<String>) -> Error {
        Error::Detailed {
            error: Box::new(self),
            detail: detail.into(),
        }
    }
    /// `context: self`, same class.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
    /// A local file's I/O error (exit 1).
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The process exit code: decided here, by variant, and nowhere else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(sig) => 128 + sig,
            Error::Usage(_) | Error::Config(_) | Error::Plan(_) | Error::Reference(_) => {
                EXIT_CONFIG
            }
            // Unusable credentials, a refused login or a policy refusal (plain http, a bad CA
            // file) are for the operator to fix on the machine, not in the pipeline.
            Error::Environment(_) | Error::Credentials(_) | Error::Key(_) => EXIT_ENVIRONMENT,
            Error::Registry(e) => match e.kind() {
                ErrorKind::Auth | ErrorKind::Config => EXIT_ENVIRONMENT,
                ErrorKind::Cancelled => 128 + e.cancelled_by().unwrap_or(libc::SIGINT),
                _ => EXIT_STAGE,
            },
            Error::Exec(ExecError::Cancelled { signal, .. }) => 128 + signal,
            Error::Context { source: e, .. } | Error::Detailed { error: e, .. } => e.exit_code(),
            Error::Stage(_)
            | Error::Exec(_)
            | Error::Sbom(_)
            | Error::Layout(_)
            | Error::Image(_)
            | Error::Index(_)
            | Error::Layer(_)
            | Error::Unpack(_)
            | Error::Manifest(_)
            | Error::Elf(_)
            | Error::Json(_)
            | Error::Io { .. } => EXIT_STAGE,
        }
    }

    /// The class, read from [`Error::exit_code`].
    pub fn kind(&self) -> Kind {
        match self.exit_code() {
            EXIT_CONFIG => Kind::Config,
            EXIT_ENVIRONMENT => Kind::Environment,
            code if code > 128 => Kind::Interrupted(code - 128),
            _ => Kind::Stage,
        }
    }

    /// The signal that interrupted the run, when this is an interruption.
    pub fn interrupted_by(&self) -> Option<i32> {
        match self.kind() {
            Kind::Interrupted(sig) => Some(sig),
            _ => None,
        }
    }

    /// The rendered config file error inside, if that is what this is.
    pub fn rendered_config(&self) -> Option<&ConfigError> {
        match self {
            Error::Config(e) => Some(e),
            Error::Context { source: e, .. } | Error::Detailed { error: e, .. } => {
                e.rendered_config()
            }
            _ => None,
        }
    }

    /// The message without the detail lines under it (for one-line annotations).
    pub fn message(&self) -> String {
        match self {
            Error::Detailed { error, .. } => error.message(),
            Error::Context { context, source } => format!("{context}: {}", source.message()),
            Error::Exec(e) => e.to_string(),
            e => e.to_string(),
        }
    }
}

/// An `ExecError`'s message and the last lines of its output.
fn exec_text(e: &ExecError) -> String {
    match e.tail() {
        Some(t) => {
            let tail = t
                .lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            format!("{e}\nlast lines of output:\n{tail}")
        }
        None => e.to_string(),
    }
}

impl From<ExecError> for Error {
    fn from(e: ExecError) -> Error {
        match e {
            ExecError::Cancelled { signal, .. } => Error::Interrupted(signal),
            e => Error::Exec(e),
        }
    }
}

impl From<Cancelled> for Error {
    fn from(c: Cancelled) -> Error {
        Error::Interrupted(c.0)
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Error {
        match e.cancelled_by() {
            Some(sig) => Error::Interrupted(sig),
            None => Error::Registry(e),
        }
    }
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Error {
        match e {
            CredentialError::Cancelled(sig) => Error::Interrupted(sig),
            e => Error::Credentials(e),
        }
    }
}

/// `context` for results: `layout.copy_image(..).context("copy musl into oci:dist")?` keeps
/// the error's class and puts what was being done in front of its message.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn registry(status: u16) -> RegistryError {
        RegistryError::Status {
            what: "push".into(),
            url: "https://r.example/v2/".into(),
            status,
            codes: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn exit_codes_by_variant() {
        let cases: Vec<(Error, i32)> = vec![
            (Error::stage("x"), 1),
            (Error::config("x"), 2),
            (Error::env("x"), 3),
            (Error::interrupted(libc::SIGINT), 130),
            (Error::interrupted(libc::SIGTERM), 143),
            (
                ConfigError {
                    file: "pipeline.yaml".into(),
                    source_text: String::new(),
                    diagnostics: Vec::new(),
                }
                .into(),
                2,
            ),
            (PlanError::Empty.into(), 2),
            (
                crate::oci::registry::Reference::parse("UPPER/Case:tag")
                    .unwrap_err()
                    .into(),
                2,
            ),
            (
                ExecError::Timeout {
                    purpose: "build".into(),
                    command: "cargo build".into(),
                    timeout: std::time::Duration::from_secs(1),
                    tail: String::new(),
                }
                .into(),
                1,
            ),
            (
                ExecError::Cancelled {
                    purpose: "build".into(),
                    signal: libc::SIGTERM,
                }
                .into(),
                143,
            ),
            (Cancelled(libc::SIGINT).into(), 130),
            (
                RegistryError::Auth {
                    host: "r.example".into(),
                    detail: "401".into(),
                }
                .into(),
                3,
            ),
            (registry(403).into(), 3),
            (registry(500).into(), 1),
            (RegistryError::Policy("plain http".into()).into(), 3),
            (
                RegistryError::Cancelled {
                    what: "push".into(),
                    signal: libc::SIGINT,
                }
                .into(),
                130,
            ),
            (CredentialError::HalfEnv.into(), 3),
            (
                CredentialError::Cancelled(libc::SIGHUP).into(),
                128 + libc::SIGHUP,
            ),
            (
                KeyError::Private {
                    path: "k.pem".into(),
                    reason: "unreadable".into(),
                }
                .into(),
                3,
            ),
            (SbomError::Cargo("x".into()).into(), 1),
            (
                crate::oci::layout::Layout::open(Path::new("/nonexistent/shipit-layout"))
                    .unwrap_err()
                    .into(),
                1,
            ),
            (crate::oci::index::parse(b"{").unwrap_err().into(), 1),
            (
                crate::verify::elf::inspect(b"not an elf")
                    .unwrap_err()
                    .into(),
                1,
            ),
            (
                Error::io("dist/build.json", std::io::Error::other("disk full")),
                1,
            ),
            (Error::env("x").context("credentials"), 3),
            (Error::config("x").with_detail("more"), 2),
            (
                Error::interrupted(libc::SIGINT)
                    .with_detail("more")
                    .context("push"),
                130,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }

    #[test]
    fn kind_follows_the_exit_code() {
        assert_eq!(Error::stage("x").kind(), Kind::Stage);
        assert_eq!(Error::config("x").kind(), Kind::Config);
        assert_eq!(Error::env("x").kind(), Kind::Environment);
        assert_eq!(
            Error::from(Cancelled(libc::SIGTERM)).interrupted_by(),
            Some(libc::SIGTERM)
        );
        assert_eq!(Error::stage("x").interrupted_by(), None);
    }

    #[test]
    fn context_and_detail_render_like_the_message_they_wrap() {
        let e = Error::stage("it broke")
            .with_detail("  | line")
            .context("build of linux/arm64 (gnu) failed");
        assert_eq!(
            e.to_string(),
            "build of linux/arm64 (gnu) failed: it broke\n  | line"
        );
        assert_eq!(e.message(), "build of linux/arm64 (gnu) failed: it broke");
        let r: std::result::Result<(), RegistryError> = Err(registry(500));
        let e = r.context("tag 1.0.0").unwrap_err();
        assert!(e.to_string().starts_with("tag 1.0.0: "), "{e}");
        assert_eq!(e.exit_code(), 1);
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_rendered_config_error_is_found_by_variant() {
        let e = Error::from(ConfigError {
            file: "pipeline.yaml".into(),
            source_text: String::new(),
            diagnostics: Vec::new(),
        });
        assert!(e.rendered_config().is_some());
        assert!(
            Error::config("pipeline.yaml: error: x")
                .rendered_config()
                .is_none()
        );
    }
}
