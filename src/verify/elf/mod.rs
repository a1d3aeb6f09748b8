//! Static ELF checks: read what a packaged binary really is (class, machine, float ABI, the ARM
//! build attributes, interpreter, DT_NEEDED, required glibc symbol versions) and compare it with
//! what its platform image promises, before anything runs.
//!
//! Why static checks and not only QEMU: a wrong architecture gives `exec format error` at best,
//! but an ARMv7 binary shipped as `linux/arm/v6` has the same ELF header as a real ARMv6 one
//! (`0x05000400`, EABI5 hard-float) and only dies with SIGILL on a Pi Zero when a v7 instruction
//! actually executes. Only `.ARM.attributes` (Tag_CPU_arch, Tag_THUMB_ISA_use, Tag_FP_arch,
//! Tag_Advanced_SIMD_arch) tells them apart (`research/tech.md` §6). Likewise a gnu binary that
//! needs `GLIBC_2.34` fails on a glibc 2.31 base only when the loader runs; `.gnu.version_r`
//! says so up front.
//!
//! Use: [`inspect`] the bytes, derive an [`ElfExpect`] from the platform's row of the one
//! platform table ([`ElfExpect::for_platform`], then [`ElfExpect::with_libc`] and
//! [`ElfExpect::with_max_glibc`]), and [`check`] returns [`Finding`]s that each say what was
//! expected, what was found, and what to do. [`glibc_provided`] reads the highest `GLIBC_x.y` a
//! base image's `libc.so.6` defines.
//!
//! The parts: `header` (identification, file and program headers, validated before anything is
//! believed), `dynamic` (the dynamic table through `PT_DYNAMIC`), `versions` (glibc symbol
//! versions needed and defined), `arm_attributes` (`.ARM.attributes` and the ARM float ABI),
//! `expect` (the expectations and the checks). Parsing uses `object`'s low-level `read::elf`
//! API. The dynamic table, DT_NEEDED and the version needs are read through `PT_DYNAMIC` (what
//! the loader sees), so section-stripped binaries still work; `.ARM.attributes` exists only as a
//! section.

mod arm_attributes;
pub mod ca;
mod dynamic;
mod expect;
mod header;
#[cfg(test)]
mod tests;
mod versions;

pub use arm_attributes::{
    ArmAttributes, ArmFacts, FloatAbi, cpu_arch_name, fp_arch_name, simd_arch_name,
};
pub use expect::{ElfExpect, Finding, LibcKind, Severity, check, libc_kind};
pub use header::inspect;
pub use versions::{GlibcVersion, VersionNeed, glibc_provided};

use object::elf;
use serde::Serialize;
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a file could not be inspected as an ELF executable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// The bytes do not start with the ELF magic.
    #[error(
        "not an ELF file (starts with {start}): the image must ship a compiled Linux binary; \
         check the entrypoint path and that the build output (not a script or an archive) was packaged"
    )]
    NotElf {
        /// The first bytes, shown as hex and printable text.
        start: String,
    },
    /// ELF magic is there but the class or byte order field is not one we know.
    #[error("unsupported ELF identification ({what}): the file is damaged or not a Linux binary")]
    Unsupported {
        /// Which field was wrong.
        what: String,
    },
    /// The file header contradicts the file: impossible counts, entry sizes or extents of the
    /// header tables (no linker writes these; the loader would refuse the file).
    #[error(
        "not a valid ELF file: {what}; no linker writes this, so the file is corrupt or was \
         altered: rebuild it and check the copy into the image"
    )]
    Invalid {
        /// What the header claims and why it cannot be.
        what: String,
    },
    /// Headers or tables point outside the file or are inconsistent.
    #[error(
        "malformed ELF file: {what}; the file is truncated or corrupted, rebuild it and check the \
         copy into the image"
    )]
    Malformed {
        /// What could not be read.
        what: String,
    },
}

fn malformed(what: impl Into<String>) -> ElfError {
    ElfError::Malformed { what: what.into() }
}

/// Adds context to `object`'s terse read errors.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, ElfError>;
}

impl<T> Context<T> for object::read::Result<T> {
    fn ctx(self, what: &str) -> Result<T, ElfError> {
        self.map_err(|e| malformed(format!("{what}: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------------

/// ELF class: 32- or 64-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ElfClass {
    /// ELFCLASS32
    Elf32,
    /// ELFCLASS64
    Elf64,
}

impl ElfClass {
    /// 32 or 64.
    pub fn bits(self) -> u8 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 64,
        }
    }
}

impl fmt::Display for ElfClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ELF{}", self.bits())
    }
}

/// RISC-V float ABI from e_flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RiscvFloatAbi {
    /// lp64 / ilp32: no float registers for arguments.
    Soft,
    /// lp64f
    Single,
    /// lp64d (the Linux distribution ABI)
    Double,
    /// lp64q
    Quad,
}

impl fmt::Display for RiscvFloatAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RiscvFloatAbi::Soft => "soft-float (lp64)",
            RiscvFloatAbi::Single => "single-float (lp64f)",
            RiscvFloatAbi::Double => "double-float (lp64d)",
            RiscvFloatAbi::Quad => "quad-float (lp64q)",
        })
    }
}

/// RISC-V facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiscvFacts {
    /// Float ABI.
    pub float_abi: RiscvFloatAbi,
    /// Compressed instructions (EF_RISCV_RVC).
    pub rvc: bool,
}

/// Everything the static checks need to know about one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfFacts {
    /// 32 or 64 bit.
    pub class: ElfClass,
    /// Byte order.
    pub little_endian: bool,
    /// `e_type`: 2 = ET_EXEC, 3 = ET_DYN.
    pub file_type: u16,
    /// `e_machine`, e.g. 62 = EM_X86_64.
    pub machine: u16,
    /// `e_flags`.
    pub flags: u32,
    /// ARM details when `machine == EM_ARM`.
    pub arm: Option<ArmFacts>,
    /// RISC-V details when `machine == EM_RISCV`.
    pub riscv: Option<RiscvFacts>,
    /// PT_INTERP, e.g. `/lib/ld-linux-aarch64.so.1`.
    pub interpreter: Option<String>,
    /// DT_NEEDED in order.
    pub needed: Vec<String>,
    /// Position independent executable (ET_DYN run via an interpreter, or static-pie).
    pub pie: bool,
    /// `.gnu.version_r` per library.
    pub version_needs: Vec<VersionNeed>,
    /// Highest `GLIBC_x.y[.z]` required from any library.
    pub max_glibc: Option<GlibcVersion>,
}

impl ElfFacts {
    /// Human name of the machine ("x86-64", "AArch64", "ARM", "RISC-V", ...).
    pub fn machine_name(&self) -> String {
        machine_name(self.machine)
    }

    /// Statically linked: no interpreter and no DT_NEEDED.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed.is_empty()
    }

    /// One line: class, machine, ABI details, linkage.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", self.class, self.machine_name());
        if let Some(arm) = &self.arm {
            s.push_str(&format!(" EABI{} {}", arm.eabi_version, arm.float_abi));
            if let Some(a) = &arm.attributes {
                s.push_str(&format!(", {}", a.describe()));
            }
        }
        if let Some(rv) = &self.riscv {
            s.push_str(&format!(" {}", rv.float_abi));
        }
        match (&self.interpreter, self.is_static()) {
            (Some(i), _) => s.push_str(&format!(", dynamic (interpreter {i})")),
            (None, true) if self.pie => s.push_str(", static-pie"),
            (None, true) if elf::FileType(self.file_type) == elf::ET_DYN => {
                s.push_str(", shared object without interpreter")
            }
            (None, true) => s.push_str(", static"),
            (None, false) => s.push_str(", no interpreter but DT_NEEDED"),
        }
        if !self.needed.is_empty() {
            s.push_str(&format!(", needs {}", self.needed.join(" ")));
        }
        if let Some(g) = self.max_glibc {
            s.push_str(&format!(", GLIBC_{g}"));
        }
        s
    }
}

/// Human name for an `e_machine` value.
pub fn machine_name(machine: u16) -> String {
    let name = match elf::Machine(machine) {
        elf::EM_X86_64 => "x86-64",
        elf::EM_AARCH64 => "AArch64",
        elf::EM_ARM => "ARM",
        elf::EM_RISCV => "RISC-V",
        elf::EM_386 => "x86 (i386)",
        elf::EM_PPC => "PowerPC",
        elf::EM_PPC64 => "PowerPC64",
        elf::EM_S390 => "s390x",
        elf::EM_MIPS => "MIPS",
        elf::EM_LOONGARCH => "LoongArch",
        elf::EM_SPARCV9 => "SPARC64",
        _ => return format!("unknown machine (e_machine {machine})"),
    };
    name.to_string()
}
