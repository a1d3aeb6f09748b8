//! How the config layer opens files (the pipeline, the Cargo manifest it names, `image.files`
//! sources): without blocking and only if they are regular files. Each is opened with
//! `O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer), the *opened* descriptor is
//! checked with fstat (no race with a rename between a check and the open), anything but a regular
//! file is refused, and reading stops one byte past the limit (a device reports size 0).
//!
//! The opening itself is `oci::fsafe::open_following` (the one safe-open helper); this module
//! keeps the config layer's error shape.

use crate::oci::fsafe::{self, Why};
use std::fs::File;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Open(std::io::Error),
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Read(std::io::Error),
}

/// What kind of file a non-regular file is, in words.
pub use crate::oci::fsafe::kind_name;

fn from_fsafe(e: fsafe::FileError, limit: u64) -> FileError {
    match e.why {
        Why::Open(e) => FileError::Open(e),
        Why::NotRegular(kind) => FileError::NotRegular(kind),
        Why::TooLarge { .. } => FileError::TooLarge { limit },
        Why::Read(e) => FileError::Read(e),
        // Not produced when links are followed; kept as an open failure if they ever are.
        why @ (Why::Symlink | Why::BadName(_)) => {
            FileError::Open(std::io::Error::other(why.to_string()))
        }
    }
}

/// Opens `path` for reading without blocking and returns it only if it is a regular file
/// (symbolic links are followed; the caller decides where they may lead).
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    fsafe::open_following(path, u64::MAX)
        .map(|r| r.file)
        .map_err(|e| from_fsafe(e, u64::MAX))
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    fsafe::read_following(path, limit).map_err(|e| from_fsafe(e, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        assert!(matches!(
            read_regular(&fifo, 10),
            Err(FileError::NotRegular("FIFO (named pipe)"))
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10),
            Err(FileError::NotRegular("character device"))
        ));
        assert!(matches!(
            read_regular(dir.path(), 10),
            Err(FileError::NotRegular("directory"))
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 10),
            Err(FileError::Open(_))
        ));
    }

    #[test]
    fn reads_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_regular(&f, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_regular(&f, 9),
            Err(FileError::TooLarge { limit: 9 })
        ));
    }
}
