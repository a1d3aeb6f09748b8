//! The one platform table: OCI platform ↔ Rust target per libc ↔ QEMU binary and strict CPU ↔
//! the ELF facts a binary for it must show. Everything platform-specific in shipit reads it here.

use serde::Serialize;
use std::fmt;

/// A C library flavour: one multi-arch image per libc.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    Gnu,
    Musl,
}

impl Libc {
    pub const ALL: [Libc; 2] = [Libc::Gnu, Libc::Musl];

    pub fn name(self) -> &'static str {
        match self {
            Libc::Gnu => "gnu",
            Libc::Musl => "musl",
        }
    }

    pub fn parse(s: &str) -> Option<Libc> {
        match s {
            "gnu" | "glibc" => Some(Libc::Gnu),
            "musl" => Some(Libc::Musl),
            _ => None,
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ELF `e_machine` values used by the table.
pub mod machine {
    pub const X86_64: u16 = 62;
    pub const AARCH64: u16 = 183;
    pub const ARM: u16 = 40;
    pub const RISCV: u16 = 243;
}

/// What the ARM build attributes of a binary for this platform may show at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ArmProfile {
    /// Highest `Tag_CPU_arch` allowed (6 = v6, 7 = v6KZ, 10 = v7).
    pub max_cpu_arch: u8,
    /// Thumb-2 allowed (`Tag_THUMB_ISA_use` = 2).
    pub allow_thumb2: bool,
    /// Highest `Tag_FP_arch` allowed (2 = VFPv2, 3 = VFPv3, 4 = VFPv3-D16, ...).
    pub max_fp_arch: u8,
    /// Advanced SIMD (NEON) allowed.
    pub allow_neon: bool,
}

/// One row of the table.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `linux/arm/v7`: the OCI platform string users write.
    pub name: &'static str,
    pub os: &'static str,
    pub architecture: &'static str,
    /// The OCI variant written into image configs and index entries.
    pub variant: Option<&'static str>,
    /// Devices this platform is for, for humans.
    pub devices: &'static str,
    pub gnu_target: &'static str,
    pub musl_target: &'static str,
    /// The qemu-user binary (without `-static`) that runs it.
    pub qemu: &'static str,
    /// The oldest CPU of the platform, passed as `-cpu` in strict mode.
    pub strict_cpu: Option<&'static str>,
    pub elf_machine: u16,
    pub elf_64: bool,
    pub arm: Option<ArmProfile>,
    /// Dynamic loaders.
    pub gnu_interp: &'static str,
    pub musl_interp: &'static str,
    /// Debian's name for the architecture (apt, mmdebstrap) and its cross-gcc triple.
    pub debian_arch: &'static str,
    pub gcc_triple: &'static str,
    /// Whether the platform is listed as optional in the design (not in defaults).
    pub optional: bool,
}

/// The table, in the order plans and indexes list platforms.
pub static PLATFORMS: [Platform; 5] = [
    Platform {
        name: "linux/amd64",
        os: "linux",
        architecture: "amd64",
        variant: None,
        devices: "PCs, servers",
        gnu_target: "x86_64-unknown-linux-gnu",
        musl_target: "x86_64-unknown-linux-musl",
        qemu: "qemu-x86_64",
        strict_cpu: None,
        elf_machine: machine::X86_64,
        elf_64: true,
        arm: None,
        gnu_interp: "/lib64/ld-linux-x86-64.so.2",
        musl_interp: "/lib/ld-musl-x86_64.so.1",
        debian_arch: "amd64",
        gcc_triple: "x86_64-linux-gnu",
        optional: false,
    },
    Platform {
        name: "linux/arm64",
        os: "linux",
        architecture: "arm64",
        variant: Some("v8"),
        devices: "Pi 3/4/5 on a 64-bit OS, Graviton, Apple silicon VMs",
        gnu_target: "aarch64-unknown-linux-gnu",
        musl_target: "aarch64-unknown-linux-musl",
        qemu: "qemu-aarch64",
        strict_cpu: Some("cortex-a53"),
        elf_machine: machine::AARCH64,
        elf_64: true,
        arm: None,
        gnu_interp: "/lib/ld-linux-aarch64.so.1",
        musl_interp: "/lib/ld-musl-aarch64.so.1",
        debian_arch: "arm64",
        gcc_triple: "aarch64-linux-gnu",
        optional: false,
    },
    Platform {
        name: "linux/arm/v7",
        os: "linux",
        architecture: "arm",
        variant: Some("v7"),
        devices: "Pi 2/3/4/5 on a 32-bit OS",
        gnu_target: "armv7-unknown-linux-gnueabihf",
        musl_target: "armv7-unknown-linux-musleabihf",
        qemu: "qemu-arm",
        strict_cpu: Some("cortex-a7"),
        elf_machine: machine::ARM,
        elf_64: false,
        arm: Some(ArmProfile {
            max_cpu_arch: 10,
            allow_thumb2: true,
            max_fp_arch: 6,
            allow_neon: true,
        }),
        gnu_interp: "/lib/ld-linux-armhf.so.3",
        musl_interp: "/lib/ld-musl-armhf.so.1",
        debian_arch: "armhf",
        gcc_triple: "arm-linux-gnueabihf",
        optional: false,
    },
    Platform {
        name: "linux/arm/v6",
        os: "linux",
        architecture: "arm",
        variant: Some("v6"),
        devices: "Pi Zero, Zero W, Pi 1",
        gnu_target: "arm-unknown-linux-gnueabihf",
        musl_target: "arm-unknown-linux-musleabihf",
        qemu: "qemu-arm",
        strict_cpu: Some("arm1176"),
        elf_machine: machine::ARM,
        elf_64: false,
        arm: Some(ArmProfile {
            max_cpu_arch: 7,
            allow_thumb2: false,
            max_fp_arch: 2,
            allow_neon: false,
        }),
        gnu_interp: "/lib/ld-linux-armhf.so.3",
        musl_interp: "/lib/ld-musl-armhf.so.1",
        debian_arch: "armhf",
        gcc_triple: "arm-linux-gnueabihf",
        optional: false,
    },
    Platform {
        name: "linux/riscv64",
        os: "linux",
        architecture: "riscv64",
        variant: None,
        devices: "RISC-V boards",
        gnu_target: "riscv64gc-unknown-linux-gnu",
        musl_target: "riscv64gc-unknown-linux-musl",
        qemu: "qemu-riscv64",
        strict_cpu: None,
        elf_machine: machine::RISCV,
        elf_64: true,
        arm: None,
        gnu_interp: "/lib/ld-linux-riscv64-lp64d.so.1",
        musl_interp: "/lib/ld-musl-riscv64.so.1",
        debian_arch: "riscv64",
        gcc_triple: "riscv64-linux-gnu",
        optional: true,
    },
];

impl Platform {
    /// Looks up an OCI platform string. `linux/arm64/v8` is accepted for `linux/arm64`, and
    /// `linux/arm` alone means `linux/arm/v7` (as containerd reads it).
    pub fn parse(s: &str) -> Option<&'static Platform> {
        let s = match s {
            "linux/arm64/v8" => "linux/arm64",
            "linux/arm" => "linux/arm/v7",
            other => other,
        };
        PLATFORMS.iter().find(|p| p.name == s)
    }

    /// The platform of an image config or index entry (os, architecture, variant), with the
    /// usual normalisation: arm64 with or without `v8`; arm with no variant is v7.
    pub fn from_oci(
        os: &str,
        architecture: &str,
        variant: Option<&str>,
    ) -> Option<&'static Platform> {
        let variant = variant.filter(|v| !v.is_empty());
        PLATFORMS.iter().find(|p| {
            p.os == os
                && p.architecture == architecture
                && match (architecture, variant) {
                    ("arm64", None | Some("v8" | "8")) => true,
                    ("arm", None) => p.variant == Some("v7"),
                    (_, v) => p.variant == v,
                }
        })
    }

    /// Which platform a Rust target triple builds for, and with which libc.
    pub fn from_target(target: &str) -> Option<(&'static Platform, Libc)> {
        PLATFORMS.iter().find_map(|p| {
            if p.gnu_target == target {
                Some((p, Libc::Gnu))
            } else if p.musl_target == target {
                Some((p, Libc::Musl))
            } else {
                None
            }
        })
    }

    pub fn target(&self, libc: Libc) -> &'static str {
        match libc {
            Libc::Gnu => self.gnu_target,
            Libc::Musl => self.musl_target,
        }
    }

    pub fn interp(&self, libc: Libc) -> &'static str {
        match libc {
            Libc::Gnu => self.gnu_interp,
            Libc::Musl => self.musl_interp,
        }
    }

    /// `linux-arm-v7`: the platform as a path component (dist/bin/<libc>/<slug>/).
    pub fn slug(&self) -> String {
        self.name.replace('/', "-")
    }

    /// `qemu-arm-static`: the static qemu-user binary shipit runs (never binfmt).
    pub fn qemu_static(&self) -> String {
        format!("{}-static", self.qemu)
    }

    /// Whether binaries for this platform run natively on the machine shipit runs on.
    pub fn is_native(&self) -> bool {
        self.gnu_target.starts_with(std::env::consts::ARCH)
            && matches!(std::env::consts::ARCH, "x86_64" | "aarch64")
    }

    /// The names of every known platform, for error messages.
    pub fn known_names() -> Vec<&'static str> {
        PLATFORMS.iter().map(|p| p.name).collect()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_name_round_trips_through_the_table() {
        for p in &PLATFORMS {
            assert_eq!(Platform::parse(p.name), Some(p));
            assert_eq!(Platform::from_oci(p.os, p.architecture, p.variant), Some(p));
            assert_eq!(Platform::from_target(p.gnu_target), Some((p, Libc::Gnu)));
            assert_eq!(Platform::from_target(p.musl_target), Some((p, Libc::Musl)));
            assert_eq!(p.target(Libc::Gnu), p.gnu_target);
        }
    }

    #[test]
    fn rows_match_the_design_table() {
        let v6 = Platform::parse("linux/arm/v6").unwrap();
        assert_eq!(v6.musl_target, "arm-unknown-linux-musleabihf");
        assert_eq!((v6.qemu, v6.strict_cpu), ("qemu-arm", Some("arm1176")));
        assert_eq!(v6.variant, Some("v6"));
        let arm = v6.arm.unwrap();
        assert!(!arm.allow_thumb2 && !arm.allow_neon && arm.max_fp_arch == 2);
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(v7.gnu_target, "armv7-unknown-linux-gnueabihf");
        assert_eq!(v7.strict_cpu, Some("cortex-a7"));
        let a64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            (a64.qemu, a64.strict_cpu),
            ("qemu-aarch64", Some("cortex-a53"))
        );
        assert_eq!(a64.elf_machine, machine::AARCH64);
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().qemu_static(),
            "qemu-x86_64-static"
        );
    }

    #[test]
    fn normalisation_follows_containerd() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().name,
            "linux/arm64"
        );
        assert_eq!(
            Platform::from_oci("linux", "arm64", None).unwrap().name,
            "linux/arm64"
        );
        assert_eq!(
            Platform::from_oci("linux", "arm", None).unwrap().name,
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::from_oci("linux", "arm", Some("v6")).unwrap().name,
            "linux/arm/v6"
        );
        assert!(Platform::parse("linux/arm/v8").is_none());
        assert!(Platform::parse("linux/amd").is_none());
        assert!(Platform::from_oci("windows", "amd64", None).is_none());
        assert!(Platform::from_target("sparc64-unknown-linux-gnu").is_none());
    }
}
