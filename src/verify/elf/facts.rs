//! What the reader learns about one binary ([`ElfFacts`]), the glibc versions it needs, and the
//! limits the reader keeps to.

use super::arm_attributes::ArmFacts;
use object::elf;
use serde::Serialize;
use std::fmt;

/// Upper bound on entries we follow in any table: real binaries have a few dozen; a corrupted
/// count must not make us loop for minutes.
pub(crate) const MAX_ENTRIES: u64 = 65_536;

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

/// A glibc symbol version such as `GLIBC_2.34` (or `2.34.1`), comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GlibcVersion {
    /// Major (2 for every glibc in use).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch, 0 when absent (`GLIBC_2.1.3` has 3).
    pub patch: u32,
}

impl GlibcVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        GlibcVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `"2.34"`, `"2.1.3"` or a version name `"GLIBC_2.34"`. `GLIBC_PRIVATE`,
    /// `GLIBC_ABI_DT_RELR` and anything else non-numeric give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.strip_prefix("GLIBC_").unwrap_or(s);
        let mut parts = s.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = match parts.next() {
            None => 0,
            some => num(some)?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(GlibcVersion::new(major, minor, patch))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

/// The versions a binary requires from one shared library (`.gnu.version_r` / DT_VERNEED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionNeed {
    /// The library, e.g. `libc.so.6`.
    pub library: String,
    /// Version names in file order, e.g. `GLIBC_2.17`, `GLIBC_2.34`.
    pub versions: Vec<String>,
}
