//! Why a file could not be inspected as an ELF executable, and the small helpers every part of
//! the reader uses to say so.

/// Why a file could not be inspected as an ELF executable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// The bytes do not start with the ELF magic.
    #[error(
        "not an ELF file (starts with {start}): the image must ship a compiled Linux binary; \
         check the entrypoint path and that the build output (not a script or an archive) was packaged"
    )]
    NotElf {
        /// The first bytes, shown as hex and printable text.
        start: String,
    },
    /// ELF magic is there but the class or byte order field is not one we know.
    #[error("unsupported ELF identification ({what}): the file is damaged or not a Linux binary")]
    Unsupported {
        /// Which field was wrong.
        what: String,
    },
    /// The file header contradicts the file: impossible counts, entry sizes or extents of the
    /// header tables (no linker writes these; the loader would refuse the file).
    #[error(
        "not a valid ELF file: {what}; no linker writes this, so the file is corrupt or was \
         altered: rebuild it and check the copy into the image"
    )]
    Invalid {
        /// What the header claims and why it cannot be.
        what: String,
    },
    /// Headers or tables point outside the file or are inconsistent.
    #[error(
        "malformed ELF file: {what}; the file is truncated or corrupted, rebuild it and check the \
         copy into the image"
    )]
    Malformed {
        /// What could not be read.
        what: String,
    },
}

pub(super) fn malformed(what: impl Into<String>) -> ElfError {
    ElfError::Malformed { what: what.into() }
}

/// Adds context to `object`'s terse read errors.
pub(super) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, ElfError>;
}

impl<T> Context<T> for object::read::Result<T> {
    fn ctx(self, what: &str) -> Result<T, ElfError> {
        self.map_err(|e| malformed(format!("{what}: {e}")))
    }
}
