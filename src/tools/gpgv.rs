//! gpgv: verifies the Debian archive's clearsigned `InRelease` against the archive keyring and
//! writes out only the signed text. Machine-readable status goes to stdout (`--status-fd 1`), so
//! the caller can require a `GOODSIG`/`VALIDSIG` instead of trusting the exit status alone.

use crate::exec::Cmd;
use std::path::{Path, PathBuf};

/// Where Debian's archive keyring lives: the `debian-archive-keyring` package ships one combined
/// `.gpg` keyring (bookworm) and/or per-release `.pgp` files (trixie and later).
pub const KEYRING_DIR: &str = "/usr/share/keyrings";

/// The keyrings to trust: the combined keyring if present, else every `debian-archive-*.pgp`
/// (sorted), excluding removed keys.
pub fn archive_keyrings(dir: &Path) -> Vec<PathBuf> {
    let combined = dir.join("debian-archive-keyring.gpg");
    if combined.is_file() {
        return vec![combined];
    }
    let combined = dir.join("debian-archive-keyring.pgp");
    if combined.is_file() {
        return vec![combined];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.starts_with("debian-archive-")
                        && !n.contains("removed")
                        && (n.ends_with(".pgp") || n.ends_with(".gpg"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// `gpgv --status-fd 1 --keyring K… --output OUT SIGNED`: verify and extract the signed text.
pub fn verify_clearsigned(keyrings: &[PathBuf], signed: &Path, out: &Path) -> Cmd {
    let mut cmd = Cmd::new("gpgv", "verify the Debian archive's InRelease signature")
        .args(["--status-fd", "1"]);
    for k in keyrings {
        cmd = cmd.args(["--keyring", &k.display().to_string()]);
    }
    cmd.args(["--output", &out.display().to_string()])
        .arg(signed.display().to_string())
        .env("LC_ALL", "C")
}

/// Whether gpgv's status output reports a good signature and no bad one.
pub fn status_is_good(status: &str) -> bool {
    let lines = || status.lines().filter_map(|l| l.strip_prefix("[GNUPG:] "));
    lines().any(|l| l.starts_with("GOODSIG ") || l.starts_with("VALIDSIG "))
        && !lines().any(|l| {
            l.starts_with("BADSIG ") || l.starts_with("EXPKEYSIG ") || l.starts_with("REVKEYSIG ")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_every_keyring_and_the_output() {
        let c = verify_clearsigned(
            &[PathBuf::from("/k/a.gpg"), PathBuf::from("/k/b.pgp")],
            Path::new("/t/InRelease"),
            Path::new("/t/Release"),
        );
        assert_eq!(
            c.display(),
            "LC_ALL=C gpgv --status-fd 1 --keyring /k/a.gpg --keyring /k/b.pgp --output /t/Release /t/InRelease"
        );
    }

    #[test]
    fn status_needs_a_good_signature_and_no_bad_one() {
        assert!(status_is_good(
            "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 6ED0E7B82643E131 Debian\n"
        ));
        assert!(!status_is_good(
            "[GNUPG:] ERRSIG 6ED0E7B82643E131 1 10 01 1 9\n"
        ));
        assert!(!status_is_good(
            "[GNUPG:] GOODSIG A x\n[GNUPG:] BADSIG B y\n"
        ));
    }
}
