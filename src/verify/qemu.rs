//! Running a program from an unpacked image under qemu-user, explicitly (`qemu-<arch>-static`,
//! never binfmt_misc), with the platform's strict CPU, confined to the image's rootfs.
//!
//! Isolation, best first: as root, `chroot` into the rootfs and drop to the image's user; as a
//! normal user, a user namespace maps us to root and the chroot happens inside it; where neither
//! works, qemu's `-L rootfs` prefix, which is *not* a jail (a missing library may be found on the
//! host), and the report says so. The static qemu binary is copied into `<rootfs>/.shipit/`.
//! On an x86-64 host, amd64 images run natively in the same sandbox.

use crate::exec::{Cancel, Cmd, Sandbox};
use crate::platform::Platform;
use std::path::{Path, PathBuf};

/// How a verification run is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// chroot as real root, then the image's user; own network namespace.
    Chroot,
    /// chroot inside a user namespace (we are root only in there); own network namespace.
    UserNamespace,
    /// `qemu -L rootfs`: paths missing in the image fall back to the host's.
    Prefix,
}

impl Isolation {
    /// What this machine allows (probed once; `cancel` stops the probe).
    pub fn detect(cancel: &Cancel) -> Isolation {
        static DETECTED: std::sync::OnceLock<Isolation> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                return Isolation::Chroot;
            }
            let probe = Cmd::new("/bin/true", "probe user namespaces");
            let mut probe = probe;
            probe.sandbox = Some(Sandbox {
                root: PathBuf::from("/"),
                as_root: false,
                uid: 0,
                gid: 0,
                new_netns: true,
                workdir: "/".into(),
            });
            match crate::exec::capture(&probe, std::time::Duration::from_secs(5), cancel) {
                Ok(_) => Isolation::UserNamespace,
                Err(_) => Isolation::Prefix,
            }
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            Isolation::Chroot => "chroot into the image as its user, own network namespace",
            Isolation::UserNamespace => "chroot in a user namespace, own network namespace",
            Isolation::Prefix => {
                "qemu -L prefix only: files missing in the image may be found on the host (no chroot or user namespaces here)"
            }
        }
    }
}

/// Where and how to run programs of one platform image.
#[derive(Debug, Clone)]
pub struct Guest {
    pub root: PathBuf,
    pub platform: &'static Platform,
    /// `-cpu` value, None for QEMU's default.
    pub cpu: Option<String>,
    pub native: bool,
    pub isolation: Isolation,
    pub uid: u32,
    pub gid: u32,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    /// The run's cancel token: it terminates the guest's process group.
    pub cancel: Cancel,
}

/// The directory inside the rootfs where shipit puts the static qemu binary.
pub const QEMU_DIR: &str = ".shipit";

impl Guest {
    /// Copies the static qemu binary into the rootfs (hard link when possible).
    pub fn install_qemu(&self) -> Result<(), String> {
        if self.native || self.isolation == Isolation::Prefix {
            return Ok(());
        }
        let name = self.platform.qemu_static();
        let host = which::which(&name).map_err(|_| {
            format!("{name} is not installed: it runs {} images (apt-get install qemu-user-static, or `shipit doctor --fix`)", self.platform.name)
        })?;
        let dir = self.root.join(QEMU_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dest = dir.join(&name);
        if !dest.exists() && std::fs::hard_link(&host, &dest).is_err() {
            std::fs::copy(&host, &dest)
                .map_err(|e| format!("copy {} into the rootfs: {e}", host.display()))?;
        }
        Ok(())
    }

    /// The command that runs `argv` (argv[0] is a path inside the image) in the guest.
    pub fn command(&self, argv: &[String], purpose: String, new_netns: bool) -> Cmd {
        let (program, mut args): (String, Vec<String>) = match self.isolation {
            Isolation::Prefix => {
                let guest_path = self.root.join(argv[0].trim_start_matches('/'));
                let mut a = vec!["-L".to_string(), self.root.display().to_string()];
                a.extend(self.cpu_args());
                a.push(guest_path.display().to_string());
                (self.platform.qemu_static(), a)
            }
            _ if self.native => (argv[0].clone(), Vec::new()),
            _ => {
                let mut a = self.cpu_args();
                a.push(argv[0].clone());
                (format!("/{QEMU_DIR}/{}", self.platform.qemu_static()), a)
            }
        };
        args.extend(argv[1..].iter().cloned());
        let mut cmd = Cmd::new(program, purpose).args(args);
        cmd.clear_env = true;
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        if self.isolation != Isolation::Prefix {
            cmd.sandbox = Some(Sandbox {
                root: self.root.clone(),
                as_root: self.isolation == Isolation::Chroot,
                uid: self.uid,
                gid: self.gid,
                new_netns,
                workdir: self.workdir.clone(),
            });
        }
        cmd
    }

    fn cpu_args(&self) -> Vec<String> {
        match (&self.cpu, self.native) {
            (Some(c), false) => vec!["-cpu".into(), c.clone()],
            _ => Vec::new(),
        }
    }
}

/// Finds argv[0] of the entrypoint inside the image: absolute as is, else along the image's PATH.
pub fn resolve_program(root: &Path, name: &str, env: &[(String, String)]) -> Option<String> {
    if name.starts_with('/') {
        return Some(name.to_string());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|p| crate::oci::unpack::resolve_in_root(root, p).is_ok())
}
