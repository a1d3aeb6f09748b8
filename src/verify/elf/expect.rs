//! What a platform image requires of its binary, derived from the platform's row of the one
//! table in `platform.rs` (machine, class, float ABI, the ARM ISA ceiling, the loaders, the Rust
//! targets), and the checks that compare a binary's facts with it. Each [`Finding`] says what
//! was expected, what was found, what happens at run time, and what to do.

use super::arm_attributes::{
    FloatAbi, cpu_arch_family, cpu_arch_name, fp_arch_name, simd_arch_name,
};
use super::facts::{ElfClass, ElfFacts, GlibcVersion, RiscvFloatAbi, machine_name};
use crate::platform::{ArmProfile, FloatConvention, Libc, Platform};
use object::elf;
use serde::Serialize;
use std::fmt;

/// What a binary's interpreter says about its libc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LibcKind {
    /// No interpreter: statically linked (static or static-pie).
    Static,
    /// `ld-linux*`: glibc.
    Glibc,
    /// `ld-musl-*`: dynamically linked musl.
    Musl,
    /// Some other interpreter.
    Other(String),
}

/// Classifies the binary by its interpreter.
pub fn libc_kind(facts: &ElfFacts) -> LibcKind {
    let Some(interp) = &facts.interpreter else {
        return LibcKind::Static;
    };
    let file = interp.rsplit('/').next().unwrap_or(interp);
    if file.starts_with("ld-linux") {
        LibcKind::Glibc
    } else if file.starts_with("ld-musl-") {
        LibcKind::Musl
    } else {
        LibcKind::Other(interp.clone())
    }
}

/// What a platform image requires of its binary: the platform's row, seen as ELF facts, plus the
/// image variant's libc and glibc ceiling. Build one with [`ElfExpect::for_platform`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfExpect {
    /// The platform's row (name, devices, Rust targets and loaders for messages and fixes).
    pub platform: &'static Platform,
    /// Required class.
    pub class: ElfClass,
    /// Required `e_machine`.
    pub machine: u16,
    /// Required byte order (every platform of the table is little-endian).
    pub little_endian: bool,
    /// Required float ABI.
    pub float_abi: FloatConvention,
    /// ARM ISA ceiling, for 32-bit ARM platforms.
    pub arm: Option<ArmProfile>,
    /// The image variant's libc, when known.
    pub libc: Option<Libc>,
    /// The oldest glibc the binary must run on: min(base image glibc, `build.glibc`).
    pub max_glibc: Option<GlibcVersion>,
}

impl ElfExpect {
    /// The expectations of a platform: every field comes from its row of the table.
    pub fn for_platform(platform: &'static Platform) -> Self {
        ElfExpect {
            platform,
            class: if platform.elf_64 {
                ElfClass::Elf64
            } else {
                ElfClass::Elf32
            },
            machine: platform.elf_machine,
            little_endian: true,
            float_abi: platform.float_abi,
            arm: platform.arm,
            libc: None,
            max_glibc: None,
        }
    }

    /// Sets the image variant's libc.
    pub fn with_libc(mut self, libc: Libc) -> Self {
        self.libc = Some(libc);
        self
    }

    /// Sets the highest glibc the binary may require.
    pub fn with_max_glibc(mut self, version: GlibcVersion) -> Self {
        self.max_glibc = Some(version);
        self
    }

    /// The RISC-V float ABI `e_flags` must show, for RISC-V platforms.
    pub fn riscv_float_abi(&self) -> Option<RiscvFloatAbi> {
        (self.float_abi == FloatConvention::RiscvDouble).then_some(RiscvFloatAbi::Double)
    }

    fn target_for(&self, libc: Option<Libc>) -> String {
        match libc {
            Some(libc) => self.platform.target(libc).to_string(),
            None => format!(
                "{} or {}",
                self.platform.gnu_target, self.platform.musl_target
            ),
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Severity {
    /// The image would not run on its platform: fail verification.
    Error,
    /// Could not be proven either way; reported, does not fail.
    Warning,
}

/// One mismatch between a binary and its platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Short stable name of the check: `class`, `machine`, `endian`, `file-type`, `arm-eabi`,
    /// `float-abi`, `arm-isa`, `arm-attributes`, `riscv-float-abi`, `interpreter`, `glibc`.
    pub check: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// What the platform needs.
    pub expected: String,
    /// What the binary is.
    pub found: String,
    /// The whole story in one sentence: what, and what happens at run time.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message, self.fix)
    }
}

impl Finding {
    fn error(
        check: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            severity: Severity::Error,
            expected: expected.into(),
            found: found.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn warning(self) -> Self {
        Finding {
            severity: Severity::Warning,
            ..self
        }
    }
}

/// Compares a binary with its platform. An empty list (or only warnings) means it fits.
/// A wrong machine or class stops further checks, since nothing else would mean anything.
pub fn check(facts: &ElfFacts, expect: &ElfExpect) -> Vec<Finding> {
    let mut out = Vec::new();
    let platform = expect.platform;
    let target = expect.target_for(expect.libc);

    if facts.machine != expect.machine {
        let found = facts.machine_name();
        let wanted = machine_name(expect.machine);
        out.push(Finding::error(
            "machine",
            wanted.clone(),
            found.clone(),
            format!(
                "binary is {found} but the image is {platform} ({wanted}): the wrong target was \
                 packaged (exec format error at run time)"
            ),
            format!("build with --target {target}"),
        ));
        return out;
    }
    if facts.class != expect.class {
        out.push(Finding::error(
            "class",
            expect.class.to_string(),
            facts.class.to_string(),
            format!(
                "binary is {} {} but {platform} needs {}: a {}-bit build was packaged \
                 (exec format error at run time)",
                facts.class,
                facts.machine_name(),
                expect.class,
                facts.class.bits()
            ),
            format!("build with --target {target}"),
        ));
        return out;
    }
    if facts.little_endian != expect.little_endian {
        let order = |le: bool| if le { "little-endian" } else { "big-endian" };
        out.push(Finding::error(
            "endian",
            order(expect.little_endian),
            order(facts.little_endian),
            format!(
                "binary is {} but {platform} is {}: it cannot run there",
                order(facts.little_endian),
                order(expect.little_endian)
            ),
            format!("build with --target {target}"),
        ));
        return out;
    }

    let ft = elf::FileType(facts.file_type);
    if ft != elf::ET_EXEC && ft != elf::ET_DYN {
        out.push(Finding::error(
            "file-type",
            "an executable (ET_EXEC or ET_DYN)",
            format!("e_type {}", facts.file_type),
            "the packaged file is an object or core file, not an executable",
            "package the linked binary from target/<triple>/<profile>/",
        ));
    }

    if let Some(arm_expect) = &expect.arm {
        check_arm(facts, expect, arm_expect, &target, &mut out);
    }
    if let (Some(want), Some(rv)) = (expect.riscv_float_abi(), &facts.riscv)
        && rv.float_abi != want
    {
        out.push(Finding::error(
            "riscv-float-abi",
            want.to_string(),
            rv.float_abi.to_string(),
            format!(
                "binary is {} but {platform} Linux uses {want}: it cannot link against the \
                 image's libraries",
                rv.float_abi
            ),
            format!("build with --target {target}"),
        ));
    }

    check_libc(facts, expect, &mut out);
    out
}

/// Whether code built for Tag_CPU_arch `found` runs on a device whose newest is `max`.
/// The numbering is not an order (v6T2 = 8 is not inside v6KZ = 7, v6K = 9 is), hence the table.
pub(super) fn cpu_arch_within(found: u64, max: u64) -> bool {
    match max {
        7 => matches!(found, 0..=7 | 9),  // v6KZ (ARM1176) includes v6K
        9 => matches!(found, 0..=6 | 9),  // v6K
        8 => found <= 6 || found == 8,    // v6T2
        10 => found <= 10,                // v7 runs everything before, not v8
        14 => found <= 10 || found == 14, // v8-A AArch32
        _ => found <= max,
    }
}

/// Whether Tag_FP_arch `found` fits a device with `max`; D16 variants are subsets of D32 ones.
pub(super) fn fp_arch_within(found: u64, max: u64) -> bool {
    match max {
        3 => found <= 4,                     // VFPv3 includes VFPv3-D16
        4 => found <= 2 || found == 4,       // VFPv3-D16
        5 => found <= 6,                     // VFPv4 includes all of VFPv3/v4
        6 => matches!(found, 0..=2 | 4 | 6), // VFPv4-D16
        _ => found <= max,
    }
}

fn check_arm(
    facts: &ElfFacts,
    expect: &ElfExpect,
    arm_expect: &ArmProfile,
    target: &str,
    out: &mut Vec<Finding>,
) {
    let platform = expect.platform;
    let Some(arm) = &facts.arm else {
        return;
    };
    if arm.eabi_version < 4 {
        out.push(Finding::error(
            "arm-eabi",
            "EABI5",
            format!("EABI version {}", arm.eabi_version),
            format!(
                "binary uses the old ARM ABI (EABI version {} in e_flags 0x{:08x}) but Linux \
                 {platform} needs EABI5",
                arm.eabi_version, facts.flags
            ),
            format!("build with --target {target}"),
        ));
    }
    if expect.float_abi == FloatConvention::ArmHard {
        match arm.float_abi {
            FloatAbi::Hard | FloatAbi::Compatible => {}
            FloatAbi::Soft => out.push(Finding::error(
                "float-abi",
                "hard-float (armhf)",
                "soft-float (armel)",
                format!(
                    "binary is soft-float but {platform} images are hard-float (armhf): it \
                     cannot use the image's libraries (and the loader path differs)"
                ),
                format!("build with --target {target} (the \"hf\" targets)"),
            )),
            FloatAbi::Unknown => out.push(
                Finding::error(
                    "float-abi",
                    "hard-float (armhf)",
                    format!(
                        "no float ABI in e_flags 0x{:08x} nor attributes",
                        facts.flags
                    ),
                    format!("cannot tell whether the binary is hard-float as {platform} needs"),
                    format!("build with --target {target}"),
                )
                .warning(),
            ),
        }
    }

    let Some(attrs) = &arm.attributes else {
        out.push(
            Finding::error(
                "arm-attributes",
                format!(
                    "an .ARM.attributes section proving it runs on {}",
                    platform.devices
                ),
                "no .ARM.attributes section",
                format!(
                    "the binary has no .ARM.attributes (section headers stripped?), so its \
                     instruction set cannot be checked for {platform}; QEMU with the strict CPU \
                     is the only check left"
                ),
                "strip with `strip` (which keeps section headers), not sstrip",
            )
            .warning(),
        );
        return;
    };

    let max_cpu_arch = u64::from(arm_expect.max_cpu_arch);
    let max_fp_arch = u64::from(arm_expect.max_fp_arch);
    let max_simd_arch = u64::from(arm_expect.max_simd_arch);
    let mut problems = Vec::new();
    if !cpu_arch_within(attrs.cpu_arch(), max_cpu_arch) {
        problems.push(format!("Tag_CPU_arch {}", cpu_arch_name(attrs.cpu_arch())));
    }
    if !arm_expect.allow_thumb2 && attrs.uses_thumb2() {
        problems.push("Thumb-2".to_string());
    }
    if !fp_arch_within(attrs.fp_arch(), max_fp_arch) {
        problems.push(fp_arch_name(attrs.fp_arch()).to_string());
    }
    if attrs.simd_arch() > max_simd_arch {
        problems.push(simd_arch_name(attrs.simd_arch()).to_string());
    }
    if problems.is_empty() {
        return;
    }

    let mut allowed = vec![format!("Tag_CPU_arch <= {}", cpu_arch_name(max_cpu_arch))];
    if !arm_expect.allow_thumb2 {
        allowed.push("no Thumb-2".into());
    }
    allowed.push(format!("FP <= {}", fp_arch_name(max_fp_arch)));
    allowed.push(if max_simd_arch == 0 {
        "no NEON".into()
    } else {
        format!("SIMD <= {}", simd_arch_name(max_simd_arch))
    });
    let needs = cpu_arch_family(max_cpu_arch);
    let fix = if max_cpu_arch <= 9 {
        format!(
            "build {} with cargo-zigbuild (or -Zbuild-std), not with Debian's \
             arm-linux-gnueabihf-gcc, whose crt objects and libc are ARMv7 + Thumb-2",
            expect.target_for(expect.libc.or(Some(Libc::Musl)))
        )
    } else {
        format!("build with --target {target} and no -C target-cpu/target-feature beyond {needs}")
    };
    out.push(Finding::error(
        "arm-isa",
        format!("{needs} ({})", allowed.join(", ")),
        attrs.describe(),
        format!(
            "binary is {} but {platform} needs {needs} ({}): it would die with SIGILL \
             (offending: {})",
            attrs.describe(),
            platform.devices,
            problems.join(", ")
        ),
        fix,
    ));
}

fn check_libc(facts: &ElfFacts, expect: &ElfExpect, out: &mut Vec<Finding>) {
    let platform = expect.platform;
    if facts.interpreter.is_none() && !facts.needed.is_empty() {
        out.push(Finding::error(
            "interpreter",
            "an executable with PT_INTERP, or a static one",
            format!("no PT_INTERP but DT_NEEDED {}", facts.needed.join(" ")),
            "the binary needs shared libraries but names no dynamic loader: it is a shared \
             library, not a program",
            "package the program binary, not a .so",
        ));
    }
    let Some(libc) = expect.libc else {
        return;
    };
    let kind = libc_kind(facts);
    let want = expect.platform.interp(libc);
    let interp = facts.interpreter.clone().unwrap_or_default();
    let target = expect.target_for(Some(libc));
    match (libc, &kind) {
        (_, LibcKind::Static) => {}
        (Libc::Gnu, LibcKind::Glibc) | (Libc::Musl, LibcKind::Musl) => {
            if interp != want {
                out.push(Finding::error(
                    "interpreter",
                    want,
                    interp.clone(),
                    format!(
                        "binary asks for the loader {interp} but {platform} {libc} images \
                         provide {want}: it would fail with \"no such file or directory\""
                    ),
                    format!("build with --target {target}"),
                ));
            }
        }
        (Libc::Gnu, LibcKind::Musl) | (Libc::Musl, LibcKind::Glibc) | (_, LibcKind::Other(_)) => {
            let what = match &kind {
                LibcKind::Glibc => "glibc".to_string(),
                LibcKind::Musl => "musl".to_string(),
                _ => "an unknown libc".to_string(),
            };
            let wanted = match libc {
                Libc::Musl => format!("static, or {want}"),
                Libc::Gnu => want.to_string(),
            };
            out.push(Finding::error(
                "interpreter",
                wanted,
                interp.clone(),
                format!(
                    "binary is linked against {what} (interpreter {interp}) but this is the \
                     {libc} image variant: the loader is missing there (\"no such file or \
                     directory\" at run time)"
                ),
                format!("build with --target {target}"),
            ));
        }
    }

    if let (Some(max), Some(needed)) = (expect.max_glibc, facts.max_glibc)
        && needed > max
    {
        let mut over: Vec<String> = facts
            .version_needs
            .iter()
            .flat_map(|n| {
                n.versions
                    .iter()
                    .filter(|v| GlibcVersion::parse(v).is_some_and(|g| g > max))
                    .map(move |v| format!("{}: {v}", n.library))
            })
            .collect();
        over.dedup();
        out.push(Finding::error(
            "glibc",
            format!("GLIBC_{max} or older"),
            format!("GLIBC_{needed}"),
            format!(
                "binary needs GLIBC_{needed} ({}) but {platform} must run on glibc {max}: it \
                 would fail with \"version `GLIBC_{needed}' not found\"",
                over.join(", ")
            ),
            format!(
                "build with cargo zigbuild --target {}.{max} (pins the glibc floor), or use a \
                 base image with glibc >= {needed} and raise build.glibc",
                expect.platform.gnu_target
            ),
        ));
    }
}
