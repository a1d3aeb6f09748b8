//! The one way shipit opens a file it did not just write itself and must not trust: a layout's
//! `oci-layout`, `index.json` and blobs (ours, a base's, one given to `verify oci:`), the files
//! `image.files` bakes into an image, and the pipeline. Each open
//!
//! - refuses to follow a symbolic link: below a layout directory every component is opened with
//!   `openat(…, O_NOFOLLOW)` relative to the one before, so a blob cannot lead out of the layout
//!   (to `/etc/shadow`, `/dev/zero`); for a single file only its last component is protected
//!   (`open_file`), or links are followed on purpose (`open_following`, for the pipeline);
//! - uses `O_NONBLOCK`, so a FIFO opens at once instead of waiting forever for a writer;
//! - checks the *opened* descriptor with fstat (no race with a rename between check and open):
//!   anything but a regular file is refused, and so is a size above the caller's cap;
//! - hands back the size, and `read_*` stop one byte past the cap (a file can grow after fstat).
//!
//! Errors name the file and say what it is instead ("is a FIFO (named pipe), not a regular file").

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

/// A file that could not be opened or read safely, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub why: Why,
}

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Why {
    #[error("{0}")]
    Open(io::Error),
    #[error(
        "it is a symbolic link; shipit follows no link here (it could lead out of the directory)"
    )]
    Symlink,
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is {size} bytes, more than the {cap} bytes allowed")]
    TooLarge { size: u64, cap: u64 },
    #[error("{0}")]
    Read(io::Error),
    #[error("{0:?} is not a plain relative path (no `..`, no leading `/`)")]
    BadName(PathBuf),
}

impl FileError {
    fn new(path: &Path, why: Why) -> FileError {
        FileError {
            path: path.to_path_buf(),
            why,
        }
    }

    /// True when the file (or a directory on its way) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(&self.why, Why::Open(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// A regular file, opened, with its size at open time.
#[derive(Debug)]
pub struct Regular {
    pub file: File,
    pub size: u64,
}

/// What kind of file a non-regular file is, in words.
pub fn kind_name(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "regular file"
    }
}

/// Opens `rel` below the directory `dir` (which may itself be reached through links: the user
/// named it). Every component of `rel` is opened relative to the previous one with
/// `O_NOFOLLOW`; the file must be regular and at most `cap` bytes.
pub fn open_in(dir: &Path, rel: &Path, cap: u64) -> Result<Regular, FileError> {
    let path = dir.join(rel);
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => return Err(FileError::new(&path, Why::BadName(rel.to_path_buf()))),
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return Err(FileError::new(&path, Why::BadName(rel.to_path_buf())));
    };
    let mut at = open_at(
        None,
        dir.as_os_str().as_bytes(),
        libc::O_DIRECTORY | libc::O_PATH,
    )
    .map_err(|e| FileError::new(dir, Why::Open(e)))?;
    for name in parents {
        at = match open_at(
            Some(&at),
            name.as_bytes(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        ) {
            Ok(fd) => fd,
            // With O_DIRECTORY a link answers ENOTDIR, not ELOOP: say which it is.
            Err(_) if is_link_at(&at, name.as_bytes()) => {
                return Err(FileError::new(&path, Why::Symlink));
            }
            Err(e) => return Err(FileError::new(&path, why_open(e))),
        };
    }
    let fd = open_at(
        Some(&at),
        last.as_bytes(),
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .map_err(|e| FileError::new(&path, why_open(e)))?;
    regular(File::from(fd), &path, cap)
}

/// Opens the file at `path`: the directories leading to it are followed, the file itself must
/// not be a link (`O_NOFOLLOW`), must be regular and at most `cap` bytes.
pub fn open_file(path: &Path, cap: u64) -> Result<Regular, FileError> {
    let (dir, name) = split(path);
    let fd = open_at(
        None,
        dir.as_os_str().as_bytes(),
        libc::O_DIRECTORY | libc::O_PATH,
    )
    .and_then(|d| {
        open_at(
            Some(&d),
            name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        )
    })
    .map_err(|e| FileError::new(path, why_open(e)))?;
    regular(File::from(fd), path, cap)
}

/// Opens the file at `path`, following links (for a file the user names directly, such as the
/// pipeline, which may well be a link); it must be regular and at most `cap` bytes.
pub fn open_following(path: &Path, cap: u64) -> Result<Regular, FileError> {
    let fd = open_at(
        None,
        path.as_os_str().as_bytes(),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .map_err(|e| FileError::new(path, Why::Open(e)))?;
    regular(File::from(fd), path, cap)
}

/// `open_in`, then reads the whole file (at most `cap` bytes).
pub fn read_in(dir: &Path, rel: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    read_all(open_in(dir, rel, cap)?, &dir.join(rel), cap)
}

/// `open_file`, then reads the whole file (at most `cap` bytes).
pub fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    read_all(open_file(path, cap)?, path, cap)
}

/// `open_following`, then reads the whole file (at most `cap` bytes).
pub fn read_following(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    read_all(open_following(path, cap)?, path, cap)
}

fn read_all(r: Regular, path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::with_capacity(usize::try_from(r.size).unwrap_or(0));
    r.file
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::new(path, Why::Read(e)))?;
    if bytes.len() as u64 > cap {
        return Err(FileError::new(
            path,
            Why::TooLarge {
                size: bytes.len() as u64,
                cap,
            },
        ));
    }
    Ok(bytes)
}

/// The directory part and the last name of `path` (`.` when it has no directory part).
fn split(path: &Path) -> (&Path, &[u8]) {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n.as_bytes()),
        (_, Some(n)) => (Path::new("."), n.as_bytes()),
        // `/`, `..` or empty: open it as given; fstat then refuses a directory.
        _ => (Path::new("."), path.as_os_str().as_bytes()),
    }
}

/// ELOOP from `O_NOFOLLOW` means the name is a symbolic link.
fn why_open(e: io::Error) -> Why {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Why::Symlink
    } else {
        Why::Open(e)
    }
}

/// True when `name` in `dir` is a symbolic link (lstat relative to `dir`).
fn is_link_at(dir: &OwnedFd, name: &[u8]) -> bool {
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: a NUL-terminated name, a directory descriptor we own, a zeroed stat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn open_at(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a NUL-terminated name and a directory descriptor we own (or AT_FDCWD).
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// fstat on the opened descriptor: only a regular file of at most `cap` bytes passes.
fn regular(file: File, path: &Path, cap: u64) -> Result<Regular, FileError> {
    let meta = file
        .metadata()
        .map_err(|e| FileError::new(path, Why::Open(e)))?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(FileError::new(path, Why::NotRegular(kind_name(&t))));
    }
    if meta.len() > cap {
        return Err(FileError::new(
            path,
            Why::TooLarge {
                size: meta.len(),
                cap,
            },
        ));
    }
    Ok(Regular {
        size: meta.len(),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn refuses_fifos_devices_directories_and_links_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
        mkfifo(&d.join("blobs/sha256/fifo"));
        symlink("/dev/zero", d.join("blobs/sha256/zero")).unwrap();
        std::fs::write(d.join("outside"), b"secret").unwrap();
        symlink(d.join("outside"), d.join("blobs/sha256/out")).unwrap();
        symlink(d.join("blobs"), d.join("linked")).unwrap();
        std::fs::write(d.join("blobs/sha256/ok"), b"0123456789").unwrap();
        let why = |r: Result<Vec<u8>, FileError>| r.unwrap_err().why.to_string();

        // Without O_NONBLOCK the FIFO would wait for a writer forever.
        let e = read_in(d, Path::new("blobs/sha256/fifo"), 100).unwrap_err();
        assert!(e.to_string().contains("blobs/sha256/fifo"), "{e}");
        assert!(matches!(e.why, Why::NotRegular("FIFO (named pipe)")), "{e}");
        assert!(why(read_file(&d.join("blobs/sha256/fifo"), 100)).contains("FIFO"));
        assert!(why(read_following(&d.join("blobs/sha256/fifo"), 100)).contains("FIFO"));
        for link in ["blobs/sha256/zero", "blobs/sha256/out", "linked/sha256/ok"] {
            let e = read_in(d, Path::new(link), 100).unwrap_err();
            assert!(matches!(e.why, Why::Symlink), "{link}: {e}");
        }
        assert!(matches!(
            read_file(&d.join("blobs/sha256/zero"), 100)
                .unwrap_err()
                .why,
            Why::Symlink
        ));
        assert!(why(read_following(Path::new("/dev/zero"), 100)).contains("character device"));
        assert!(why(read_in(d, Path::new("blobs"), 100)).contains("directory"));
        assert!(why(read_in(d, Path::new("../x"), 100)).contains("plain relative path"));
        assert!(
            read_in(d, Path::new("none"), 100)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn reads_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("f"), b"0123456789").unwrap();
        assert_eq!(read_in(d, Path::new("f"), 10).unwrap(), b"0123456789");
        assert_eq!(read_file(&d.join("f"), 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_in(d, Path::new("f"), 9).unwrap_err().why,
            Why::TooLarge { size: 10, cap: 9 }
        ));
        let r = open_file(&d.join("f"), 10).unwrap();
        assert_eq!(r.size, 10);
    }
}
