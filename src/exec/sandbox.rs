//! The part of a sandboxed spawn that runs in the child between fork and exec (namespaces,
//! loopback, chroot, the image user, death with the parent), and connecting to a sandboxed
//! server inside its network namespace.

use serde::Serialize;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// How a verification run is confined: chrooted into the image's rootfs, as the image's user,
/// optionally in a network namespace of its own (so servers of parallel checks never collide
/// and the guest cannot reach the host's network), killed if shipit dies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sandbox {
    pub root: PathBuf,
    /// Real root: chroot + setgid/setuid to the image user. Otherwise a user namespace maps the
    /// caller to root inside, and the chroot happens there.
    pub as_root: bool,
    pub uid: u32,
    pub gid: u32,
    pub new_netns: bool,
    pub workdir: String,
}

/// Everything `enter` needs, allocated before the fork.
#[derive(Clone)]
pub struct Prepared {
    root: CString,
    workdir: CString,
    as_root: bool,
    uid: u32,
    gid: u32,
    new_netns: bool,
    uid_map: CString,
    gid_map: CString,
}

impl Prepared {
    pub fn new(s: &Sandbox) -> io::Result<Prepared> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("NUL in a sandbox path"));
        // SAFETY: getuid/getgid cannot fail.
        let (outer_uid, outer_gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Prepared {
            root: c(s.root.as_os_str().as_bytes())?,
            workdir: c(s.workdir.as_bytes())?,
            as_root: s.as_root,
            uid: s.uid,
            gid: s.gid,
            new_netns: s.new_netns,
            uid_map: c(format!("0 {outer_uid} 1").as_bytes())?,
            gid_map: c(format!("0 {outer_gid} 1").as_bytes())?,
        })
    }

    /// Runs in the child after fork: namespaces, loopback up, chroot, drop to the image user,
    /// die with the parent.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: raw system calls on pre-allocated data only.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if !self.as_root {
                let mut flags = libc::CLONE_NEWUSER;
                if self.new_netns {
                    flags |= libc::CLONE_NEWNET;
                }
                check(libc::unshare(flags))?;
                write_file(c"/proc/self/setgroups", c"deny")?;
                write_file(c"/proc/self/uid_map", &self.uid_map)?;
                write_file(c"/proc/self/gid_map", &self.gid_map)?;
            } else if self.new_netns {
                check(libc::unshare(libc::CLONE_NEWNET))?;
            }
            if self.new_netns {
                loopback_up()?;
            }
            check(libc::chroot(self.root.as_ptr()))?;
            if libc::chdir(self.workdir.as_ptr()) != 0 {
                check(libc::chdir(c"/".as_ptr()))?;
            }
            if self.as_root {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(self.gid))?;
                check(libc::setuid(self.uid))?;
            }
        }
        Ok(())
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

unsafe fn write_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: open/write/close on NUL-terminated, pre-allocated strings.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let bytes = text.to_bytes();
        let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        libc::close(fd);
        if n != bytes.len() as isize {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `ip link set lo up` in the new network namespace.
unsafe fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket and two ioctls on a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            libc::close(fd);
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        libc::close(fd);
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Opens a TCP connection to `127.0.0.1:port` inside the network namespace of process `pid`
/// (a sandboxed server), from a short-lived thread that joins that namespace.
pub fn connect_in_netns(pid: i32, port: u16, timeout: Duration) -> io::Result<std::net::TcpStream> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only; the thread ends right after connecting.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                timeout,
            )
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}
