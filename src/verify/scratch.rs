//! Where verification unpacks its rootfs trees. Creating thousands of small files on ext4 is
//! slow when the filesystem has seen many recent deletions (each new inode scans for recently
//! freed ones: measured here, unpacking a Debian-based image took 0.9–1.2 s on the ext4 `/tmp`
//! and 0.15–0.18 s on the tmpfs `/dev/shm`), and verification creates and deletes a whole tree
//! per platform on every run. So, unless the user chose a temporary directory (`TMPDIR`),
//! verification uses `/dev/shm` when it is a tmpfs that allows running programs, that we may
//! write, and that has room (and the machine has memory) for generously more than the images
//! could unpack to; anywhere else it uses the system temp dir as before.

use std::path::{Path, PathBuf};

/// What decides the choice, as observed (kept apart so the rule can be tested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `TMPDIR` is set (and not empty): the user's choice wins.
    pub tmpdir_set: bool,
    /// The candidate is a tmpfs.
    pub tmpfs: bool,
    /// Mounted `noexec`: nothing unpacked there could run.
    pub noexec: bool,
    /// We may create entries in it.
    pub writable: bool,
    /// Bytes free for us on it.
    pub free: u64,
    /// `MemAvailable` from /proc/meminfo (tmpfs pages are memory).
    pub mem_available: u64,
}

/// The tmpfs candidate.
pub const SHM: &str = "/dev/shm";

/// The unpacked size we plan room for, per compressed byte: gzip layers of binaries and Debian
/// packages unpack to 2–4 times their size; 6 leaves a margin.
const EXPANSION: u64 = 6;
/// Room kept free besides, on the tmpfs and in memory.
const SLACK: u64 = 256 << 20;

/// Whether to unpack into the candidate, for images whose layers total `compressed` bytes.
pub fn use_candidate(o: &Observed, compressed: u64) -> bool {
    let need = compressed.saturating_mul(EXPANSION).saturating_add(SLACK);
    !o.tmpdir_set && o.tmpfs && !o.noexec && o.writable && o.free >= need && o.mem_available >= need
}

/// Where a verification run unpacks.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// The directory its temp dirs are created in.
    pub dir: PathBuf,
    /// For `-v`: the directory and why.
    pub shown: String,
    /// On tmpfs: the most one image may unpack to there (the room there, at most half the
    /// available memory, less slack, shared by the images unpacked at once and the
    /// shared-layer store). An image that
    /// does not fit, or fails there for any reason, is unpacked again on disk
    /// ([`Scratch::fallback`]), so a tmpfs never makes a verification fail and a hostile image
    /// cannot fill memory.
    pub cap: Option<u64>,
}

impl Scratch {
    /// Where an image that failed to unpack on tmpfs is unpacked again: the system temp dir.
    pub fn fallback(&self) -> Option<PathBuf> {
        self.cap.map(|_| std::env::temp_dir())
    }
}

/// Where to create verification temp dirs, for images whose layers (plus the QEMU binaries
/// copied in) total `compressed` bytes, `jobs` of them unpacked at once: `/dev/shm` when
/// [`use_candidate`] says so, else the system temp dir.
pub fn parent_for(compressed: u64, jobs: usize) -> Scratch {
    let o = observe(Path::new(SHM));
    if use_candidate(&o, compressed) {
        sweep_stale(Path::new(SHM), STALE);
        // At most half the available memory in all, whatever an image claims to unpack to.
        let room = o.free.min(o.mem_available / 2).saturating_sub(SLACK);
        let cap = room / (jobs.max(1) as u64 + 1);
        return Scratch {
            dir: PathBuf::from(SHM),
            shown: format!(
                "{SHM} (tmpfs; {} MiB free, at most {} MiB per image, else on disk)",
                o.free >> 20,
                cap >> 20
            ),
            cap: Some(cap),
        };
    }
    let why = if o.tmpdir_set {
        "TMPDIR is set"
    } else if !o.tmpfs {
        "no tmpfs at /dev/shm"
    } else if o.noexec {
        "/dev/shm is mounted noexec"
    } else if !o.writable {
        "/dev/shm is not writable"
    } else {
        "/dev/shm or memory lacks room for these images"
    };
    let dir = std::env::temp_dir();
    Scratch {
        shown: format!("{} ({why})", dir.display()),
        dir,
        cap: None,
    }
}

/// How old a temp dir of ours must be to count as left behind by a run that was killed
/// outright (SIGKILL, a crash): no verification runs for a day.
const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes from `dir` what verification runs killed outright left there (a tmpfs holds it in
/// memory until reboot): our own `shipit-verify-*` and `shipit-layers-*` directories, not
/// changed for `age`. Anything else, another user's, or a symlink is left alone.
fn sweep_stale(dir: &Path, age: std::time::Duration) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("shipit-verify-") || name.starts_with("shipit-layers-")) {
            continue;
        }
        let path = e.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > age);
        if m.is_dir() && m.uid() == uid && old {
            // std's remove_dir_all does not follow symlinks inside the tree.
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn observe(candidate: &Path) -> Observed {
    use std::os::unix::ffi::OsStrExt;
    let tmpdir_set = std::env::var_os("TMPDIR").is_some_and(|v| !v.is_empty());
    let mut o = Observed {
        tmpdir_set,
        mem_available: mem_available().unwrap_or(0),
        ..Observed::default()
    };
    let Ok(c) = std::ffi::CString::new(candidate.as_os_str().as_bytes()) else {
        return o;
    };
    // SAFETY: statfs/statvfs/access fill or read only what they are given; `c` is a valid
    // NUL-terminated path.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut fs) != 0 {
            return o;
        }
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        #[allow(clippy::unnecessary_cast)]
        {
            o.tmpfs = fs.f_type as i64 == TMPFS_MAGIC;
        }
        let mut vfs: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut vfs) != 0 {
            return o;
        }
        o.noexec = vfs.f_flag & libc::ST_NOEXEC != 0;
        #[allow(clippy::unnecessary_cast)]
        {
            o.free = (vfs.f_bavail as u64).saturating_mul(vfs.f_frsize as u64);
        }
        o.writable = libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0;
    }
    o
}

/// `MemAvailable` in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roomy() -> Observed {
        Observed {
            tmpdir_set: false,
            tmpfs: true,
            noexec: false,
            writable: true,
            free: 8 << 30,
            mem_available: 16 << 30,
        }
    }

    #[test]
    fn a_roomy_exec_tmpfs_is_used_unless_the_user_chose_tmpdir() {
        assert!(use_candidate(&roomy(), 100 << 20));
        for (what, o) in [
            (
                "TMPDIR set",
                Observed {
                    tmpdir_set: true,
                    ..roomy()
                },
            ),
            (
                "not a tmpfs",
                Observed {
                    tmpfs: false,
                    ..roomy()
                },
            ),
            (
                "noexec",
                Observed {
                    noexec: true,
                    ..roomy()
                },
            ),
            (
                "read-only",
                Observed {
                    writable: false,
                    ..roomy()
                },
            ),
            // Docker's default /dev/shm is 64 MiB.
            (
                "small",
                Observed {
                    free: 64 << 20,
                    ..roomy()
                },
            ),
            (
                "little memory",
                Observed {
                    mem_available: 300 << 20,
                    ..roomy()
                },
            ),
        ] {
            assert!(!use_candidate(&o, 100 << 20), "{what}");
        }
        // Room for six times the compressed size, plus slack.
        let o = Observed {
            free: (6 * (100 << 20)) + (256 << 20),
            ..roomy()
        };
        assert!(use_candidate(&o, 100 << 20));
        assert!(!use_candidate(&o, (100 << 20) + 1));
        assert!(!use_candidate(&roomy(), u64::MAX), "no overflow");
    }

    #[test]
    fn only_our_old_temp_dirs_are_swept() {
        let shm = tempfile::tempdir().unwrap();
        let make = |name: &str, days_old: u64| {
            let p = shm.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("f"), b"x").unwrap();
            let when = std::time::SystemTime::now()
                - std::time::Duration::from_secs(days_old * 24 * 3600 + 60);
            std::fs::File::open(&p).unwrap().set_modified(when).unwrap();
            p
        };
        let stale = make("shipit-verify-abc", 2);
        let stale_store = make("shipit-layers-abc", 3);
        let running = make("shipit-verify-def", 0);
        let other = make("someone-elses", 5);
        let target = make("target", 5);
        let link = shm.path().join("shipit-verify-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        sweep_stale(shm.path(), STALE);
        assert!(
            !stale.exists() && !stale_store.exists(),
            "left behind by killed runs"
        );
        assert!(running.exists(), "a run of today");
        assert!(other.exists(), "not ours by name");
        assert!(
            link.exists() && target.join("f").exists(),
            "a symlink is not followed"
        );
    }

    #[test]
    fn this_machine_is_observed_without_error() {
        let o = observe(Path::new(SHM));
        assert!(o.mem_available > 0, "{o:?}");
        let s = parent_for(1 << 20, 2);
        assert!(s.dir.is_dir(), "{}", s.shown);
        assert_eq!(s.cap.is_some(), s.fallback().is_some());
        // A path that is not there is no candidate.
        let none = observe(Path::new("/nonexistent/shipit"));
        assert!(!none.tmpfs && !none.writable, "{none:?}");
    }
}
