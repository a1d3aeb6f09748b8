//! The one platform table: OCI platform ↔ Rust target per libc ↔ QEMU binary and strict CPU ↔
//! the ELF facts a binary for it must show (machine, class, float ABI, the ARM ISA ceiling, from
//! which `verify::elf::ElfExpect` is derived). Everything platform-specific in shipit reads it here.

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

/// How a platform's loader and libraries pass floating-point values: what `e_flags` (and for ARM
/// `Tag_ABI_VFP_args`) of every binary for it must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FloatConvention {
    /// The ISA has a single convention (x86-64, AArch64): nothing to check.
    Native,
    /// armhf: EABI5 hard-float, floats in VFP registers (soft-float binaries cannot link).
    ArmHard,
    /// lp64d: RISC-V double-float, the Linux distribution ABI.
    RiscvDouble,
}

/// What the ARM build attributes (`.ARM.attributes`) of a binary for this platform may show at
/// most. Values are the ARM ABI addenda's (AAELF "Build attributes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ArmProfile {
    /// Highest `Tag_CPU_arch` allowed (6 = v6, 7 = v6KZ, 10 = v7, 14 = v8).
    pub max_cpu_arch: u8,
    /// Thumb-2 allowed (`Tag_THUMB_ISA_use` = 2).
    pub allow_thumb2: bool,
    /// Highest `Tag_FP_arch` allowed (2 = VFPv2, 3 = VFPv3, 4 = VFPv3-D16, 5 = VFPv4,
    /// 6 = VFPv4-D16, 7 = ARMv8 FP, 8 = ARMv8 FP-D16). A D32 value admits its D16 subset and
    /// the older versions, so the ceiling is the device's own FPU.
    pub max_fp_arch: u8,
    /// Highest `Tag_Advanced_SIMD_arch` allowed: 0 = no NEON, 1 = NEONv1, 2 = NEONv1 with FMA
    /// (the NEON of VFPv4 cores), 3 = ARMv8 NEON.
    pub max_simd_arch: u8,
}

impl ArmProfile {
    /// Whether NEON (Advanced SIMD) code is allowed at all.
    pub fn allows_neon(&self) -> bool {
        self.max_simd_arch > 0
    }
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
    /// Devices this platform is for (their oldest CPU first where it sets the ceiling), for humans
    /// and for messages such as "it would die with SIGILL on ...".
    pub devices: &'static str,
    pub gnu_target: &'static str,
    pub musl_target: &'static str,
    /// The qemu-user binary (without `-static`) that runs it.
    pub qemu: &'static str,
    /// The oldest CPU of the platform, passed as `-cpu` in strict mode.
    pub strict_cpu: Option<&'static str>,
    /// ELF `e_machine` of its binaries.
    pub elf_machine: u16,
    /// ELFCLASS64 (else ELFCLASS32). Every platform of the table is little-endian.
    pub elf_64: bool,
    /// The float ABI its binaries must use.
    pub float_abi: FloatConvention,
    /// The ISA ceiling of 32-bit ARM platforms (`None` elsewhere).
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
        devices: "x86-64 PCs and servers",
        gnu_target: "x86_64-unknown-linux-gnu",
        musl_target: "x86_64-unknown-linux-musl",
        qemu: "qemu-x86_64",
        strict_cpu: None,
        elf_machine: machine::X86_64,
        elf_64: true,
        float_abi: FloatConvention::Native,
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
        float_abi: FloatConvention::Native,
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
        devices: "Cortex-A7 and newer: Pi 2/3/4/5 on a 32-bit OS",
        gnu_target: "armv7-unknown-linux-gnueabihf",
        musl_target: "armv7-unknown-linux-musleabihf",
        qemu: "qemu-arm",
        strict_cpu: Some("cortex-a7"),
        elf_machine: machine::ARM,
        elf_64: false,
        float_abi: FloatConvention::ArmHard,
        // The oldest device is the Pi 2 (BCM2836, Cortex-A7): ARMv7-A, Thumb-2, and the Cortex-A7
        // NEON unit, which is VFPv4 with 32 double registers plus Advanced SIMDv2 (NEON with
        // FMA). So the FP ceiling is Tag_FP_arch 5 (VFPv4), which admits 3 (VFPv3), 4 (VFPv3-D16,
        // what the armv7 Rust targets emit) and 6 (VFPv4-D16); it refuses 7 and 8 (ARMv8 FP,
        // which has instructions a Cortex-A7 lacks). 6 would be wrong: VFPv4-D16 is a subset
        // that refuses VFPv3 and VFPv4 code using d16-d31, which a Pi 2 runs
        // (`-mfpu=neon-vfpv4`). CPU arch 10 = v7: ARMv8 AArch32 code (14) SIGILLs on a Pi 2.
        arm: Some(ArmProfile {
            max_cpu_arch: 10,
            allow_thumb2: true,
            max_fp_arch: 5,
            max_simd_arch: 2,
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
        devices: "ARM1176: Pi Zero, Zero W, Pi 1",
        gnu_target: "arm-unknown-linux-gnueabihf",
        musl_target: "arm-unknown-linux-musleabihf",
        qemu: "qemu-arm",
        strict_cpu: Some("arm1176"),
        elf_machine: machine::ARM,
        elf_64: false,
        float_abi: FloatConvention::ArmHard,
        // BCM2835, ARM1176JZF-S: ARMv6KZ (Tag_CPU_arch 7), Thumb-1 only, VFPv2, no NEON.
        arm: Some(ArmProfile {
            max_cpu_arch: 7,
            allow_thumb2: false,
            max_fp_arch: 2,
            max_simd_arch: 0,
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
        devices: "RISC-V boards (RV64GC)",
        gnu_target: "riscv64gc-unknown-linux-gnu",
        musl_target: "riscv64gc-unknown-linux-musl",
        qemu: "qemu-riscv64",
        // SiFive U54: the first Linux-capable RV64GC core (IMAFDC), exactly what `riscv64gc`
        // targets assume.
        strict_cpu: Some("sifive-u54"),
        elf_machine: machine::RISCV,
        elf_64: true,
        float_abi: FloatConvention::RiscvDouble,
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
        assert!(!arm.allow_thumb2 && !arm.allows_neon() && arm.max_fp_arch == 2);
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(v7.gnu_target, "armv7-unknown-linux-gnueabihf");
        assert_eq!(v7.strict_cpu, Some("cortex-a7"));
        let a64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            (a64.qemu, a64.strict_cpu),
            ("qemu-aarch64", Some("cortex-a53"))
        );
        assert_eq!(a64.elf_machine, machine::AARCH64);
        let rv = Platform::parse("linux/riscv64").unwrap();
        assert_eq!(
            (rv.qemu, rv.strict_cpu, rv.musl_target),
            (
                "qemu-riscv64",
                Some("sifive-u54"),
                "riscv64gc-unknown-linux-musl"
            )
        );
        assert!(
            rv.optional,
            "riscv64 is built only when a pipeline lists it"
        );
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
