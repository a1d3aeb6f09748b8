//! Everything that can go wrong between the Debian archive and a rootfs layer, with the exit
//! class of each.

use std::path::PathBuf;

/// Everything that can go wrong between the archive and a rootfs layer.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot reach the Debian mirror at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url}: HTTP status {status}")]
    Http { url: String, status: u16 },
    #[error(
        "Debian suite {suite:?} is not on the mirror ({url} is missing); use one of bullseye, bookworm, trixie"
    )]
    UnknownSuite { suite: String, url: String },
    #[error(
        "{what} from {url} is refused: its OpenPGP signature does not verify against the Debian archive keyring{}",
        detail_line(detail)
    )]
    BadSignature {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{what} from {url} is refused: {why}; nothing was written to the cache")]
    Integrity {
        what: String,
        url: String,
        why: String,
    },
    #[error("{what}: {why}")]
    Format { what: String, why: String },
    #[error(
        "package {package:?} is not in Debian {suite} ({component}, {arch}){}",
        hint_line(hint)
    )]
    UnknownPackage {
        package: String,
        suite: String,
        arch: String,
        component: &'static str,
        hint: Option<String>,
    },
    #[error(
        "package {package:?} in Debian {suite} ({arch}) needs {needs}, which no package satisfies{}",
        hint_line(hint)
    )]
    Unsatisfiable {
        package: String,
        needs: String,
        suite: String,
        arch: String,
        hint: Option<String>,
    },
    #[error("package {package:?} has no build for {arch} in Debian {suite} (it is built for {})", built_for.join(", "))]
    NoBuild {
        package: String,
        suite: String,
        arch: String,
        built_for: Vec<String>,
    },
    #[error("Debian {suite} has no {arch} port (it has {}); use another suite or base", ports.join(", "))]
    NoPort {
        suite: String,
        arch: String,
        ports: Vec<String>,
    },
    #[error("{platform} has no Debian architecture: {why}")]
    NoDebianArch { platform: String, why: &'static str },
    #[error("the Debian archive keyring is missing ({}); install the debian-archive-keyring package", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoKeyring { tried: Vec<PathBuf> },
    #[error(transparent)]
    Tool(#[from] crate::exec::ExecError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Lock { path: PathBuf, why: String },
    #[error(
        "{what} is no longer on the mirror ({url}: 404); Debian drops superseded versions at point releases: run `shipit lock --update`, or set SHIPIT_DEBIAN_MIRROR to a snapshot such as https://snapshot.debian.org/archive/debian/20250520T000000Z"
    )]
    Gone { what: String, url: String },
    #[error("the lock has no entry for {package:?} in {suite}/{arch}; run `shipit lock --update`")]
    NotLocked {
        package: String,
        suite: String,
        arch: String,
    },
    #[error("{0}")]
    Layer(#[from] crate::oci::layer::LayerError),
    #[error("download cancelled")]
    Cancelled(i32),
}

fn detail_line(d: &str) -> String {
    if d.trim().is_empty() {
        String::new()
    } else {
        format!("\n{}", d.trim_end())
    }
}

fn hint_line(h: &Option<String>) -> String {
    h.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

impl DebError {
    /// Which exit code the error maps to.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            DebError::Unreachable { .. }
            | DebError::Http { .. }
            | DebError::NoKeyring { .. }
            | DebError::Gone { .. }
            | DebError::Tool(_) => Kind::Environment,
            DebError::UnknownSuite { .. }
            | DebError::UnknownPackage { .. }
            | DebError::Unsatisfiable { .. }
            | DebError::NoBuild { .. }
            | DebError::NoPort { .. }
            | DebError::NoDebianArch { .. }
            | DebError::Lock { .. }
            | DebError::NotLocked { .. } => Kind::Config,
            DebError::Cancelled(sig) => Kind::Interrupted(*sig),
            DebError::BadSignature { .. }
            | DebError::Integrity { .. }
            | DebError::Format { .. }
            | DebError::Io { .. }
            | DebError::Layer(_) => Kind::Stage,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DebError {
        let path = path.into();
        move |source| DebError::Io { path, source }
    }

    pub(crate) fn format(what: impl Into<String>, why: impl Into<String>) -> DebError {
        DebError::Format {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl From<DebError> for crate::error::Error {
    /// The class comes from [`DebError::kind`] (the archive client knows which of its failures
    /// are the config's); `crate::error` names no deb type, so the two modules form no cycle.
    fn from(e: DebError) -> crate::error::Error {
        use crate::error::{Error, Kind};
        let mut message = e.to_string();
        if let DebError::Tool(t) = &e
            && let Some(tail) = t.tail()
        {
            message = format!("{message}\n{tail}");
        }
        match e.kind() {
            Kind::Stage => Error::stage(message),
            Kind::Config => Error::config(message),
            Kind::Environment => Error::env(message),
            Kind::Interrupted(sig) => Error::interrupted(sig),
        }
    }
}
