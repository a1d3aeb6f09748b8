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
//! Use: [`inspect`] the bytes, build an [`ElfExpect`] for the platform (e.g.
//! [`ElfExpect::armv6`], then [`ElfExpect::with_libc`] and [`ElfExpect::with_max_glibc`]), and
//! [`check`] returns [`Finding`]s that each say what was expected, what was found, and what to do.
//! [`glibc_provided`] reads the highest `GLIBC_x.y` a base image's `libc.so.6` defines.
//!
//! Parsing uses `object`'s low-level `read::elf` API. The dynamic table, DT_NEEDED and the
//! version needs are read through `PT_DYNAMIC` (what the loader sees), so section-stripped
//! binaries still work; `.ARM.attributes` exists only as a section.

use std::fmt;

use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, SectionHeader as _};
use object::read::{ReadRef, StringTable};
use object::{Endianness, FileKind};
use serde::Serialize;

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

/// ARM float calling convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FloatAbi {
    /// Floats passed in VFP registers (armhf).
    Hard,
    /// Floats passed in core registers (armel).
    Soft,
    /// The binary passes no floats, so either convention works (Tag_ABI_VFP_args 3).
    Compatible,
    /// Neither e_flags nor the attributes say.
    Unknown,
}

impl fmt::Display for FloatAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloatAbi::Hard => "hard-float",
            FloatAbi::Soft => "soft-float",
            FloatAbi::Compatible => "float-ABI-neutral",
            FloatAbi::Unknown => "unknown float ABI",
        })
    }
}

/// The public "aeabi" file attributes from `.ARM.attributes`. `None` = tag absent (the ABI
/// default for an absent tag is 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArmAttributes {
    /// Tag_CPU_raw_name (4).
    pub cpu_raw_name: Option<String>,
    /// Tag_CPU_name (5), e.g. `"7-A"`, `"6"`, `"ARM1176JZF-S"`.
    pub cpu_name: Option<String>,
    /// Tag_CPU_arch (6): 6 = v6, 7 = v6KZ, 8 = v6T2, 10 = v7, 14 = v8 ... (see [`cpu_arch_name`]).
    pub cpu_arch: Option<u64>,
    /// Tag_CPU_arch_profile (7): `'A'`, `'R'`, `'M'`, `'S'` as a number, 0 if none.
    pub cpu_arch_profile: Option<u64>,
    /// Tag_ARM_ISA_use (8): 1 = ARM instructions allowed.
    pub arm_isa_use: Option<u64>,
    /// Tag_THUMB_ISA_use (9): 1 = Thumb-1, 2 = Thumb-2, 3 = as implied by Tag_CPU_arch.
    pub thumb_isa_use: Option<u64>,
    /// Tag_FP_arch (10): 2 = VFPv2, 3 = VFPv3, 4 = VFPv3-D16, 5 = VFPv4, 6 = VFPv4-D16 ...
    pub fp_arch: Option<u64>,
    /// Tag_WMMX_arch (11).
    pub wmmx_arch: Option<u64>,
    /// Tag_Advanced_SIMD_arch (12): 1 = NEON, 2 = NEON + FMA, 3 = ARMv8 NEON ...
    pub advanced_simd_arch: Option<u64>,
    /// Tag_ABI_VFP_args (28): 0 = base (soft), 1 = VFP registers (hard), 3 = no floats.
    pub abi_vfp_args: Option<u64>,
    /// Tag_compatibility (32): flag and vendor name.
    pub compatibility: Option<(u64, String)>,
}

impl ArmAttributes {
    /// Tag_CPU_arch with the ABI default (0) for an absent tag.
    pub fn cpu_arch(&self) -> u64 {
        self.cpu_arch.unwrap_or(0)
    }

    /// Tag_FP_arch with its default.
    pub fn fp_arch(&self) -> u64 {
        self.fp_arch.unwrap_or(0)
    }

    /// Tag_Advanced_SIMD_arch with its default.
    pub fn simd_arch(&self) -> u64 {
        self.advanced_simd_arch.unwrap_or(0)
    }

    /// Whether the code may use Thumb-2: THUMB_ISA_use 2, or 3 with an architecture that has it.
    pub fn uses_thumb2(&self) -> bool {
        match self.thumb_isa_use.unwrap_or(0) {
            2 => true,
            3 => arch_has_thumb2(self.cpu_arch()),
            _ => false,
        }
    }

    /// A short human description, e.g. `ARMv7 (Tag_CPU_arch v7, Thumb-2, VFPv3-D16)`.
    pub fn describe(&self) -> String {
        let arch = self.cpu_arch();
        let mut parts = vec![format!("Tag_CPU_arch {}", cpu_arch_name(arch))];
        match self.thumb_isa_use.unwrap_or(0) {
            0 => {}
            1 => parts.push("Thumb-1".into()),
            _ if self.uses_thumb2() => parts.push("Thumb-2".into()),
            _ => parts.push("Thumb-1".into()),
        }
        if self.fp_arch() != 0 {
            parts.push(fp_arch_name(self.fp_arch()).to_string());
        }
        if self.simd_arch() != 0 {
            parts.push(simd_arch_name(self.simd_arch()).to_string());
        }
        format!("{} ({})", cpu_arch_family(arch), parts.join(", "))
    }
}

/// ARM-specific facts: e_flags plus the attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmFacts {
    /// EABI version from e_flags (5 for every current Linux toolchain; 0 = old ABI).
    pub eabi_version: u8,
    /// Float ABI from e_flags (EABI5), else from Tag_ABI_VFP_args.
    pub float_abi: FloatAbi,
    /// `.ARM.attributes` "aeabi" file attributes; `None` if the section is missing (stripped
    /// section headers) or has no aeabi subsection.
    pub attributes: Option<ArmAttributes>,
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

/// Name of a Tag_CPU_arch value as readelf prints it.
pub fn cpu_arch_name(value: u64) -> String {
    const NAMES: [&str; 23] = [
        "Pre-v4",
        "v4",
        "v4T",
        "v5T",
        "v5TE",
        "v5TEJ",
        "v6",
        "v6KZ",
        "v6T2",
        "v6K",
        "v7",
        "v6-M",
        "v6S-M",
        "v7E-M",
        "v8",
        "v8-R",
        "v8-M.baseline",
        "v8-M.mainline",
        "v8.1-A",
        "v8.2-A",
        "v8.3-A",
        "v8.1-M.mainline",
        "v9",
    ];
    usize::try_from(value)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("unknown ({value})"), |s| (*s).to_string())
}

/// Family name for a Tag_CPU_arch value: "ARMv6", "ARMv7", "ARMv8 AArch32", ...
fn cpu_arch_family(value: u64) -> &'static str {
    match value {
        0..=2 => "ARMv4",
        3..=5 => "ARMv5",
        6 | 7 | 9 => "ARMv6",
        8 => "ARMv6T2",
        10 => "ARMv7",
        11..=13 | 16 | 17 | 21 => "ARM Cortex-M (microcontroller)",
        14 | 18..=20 => "ARMv8 AArch32",
        15 => "ARMv8-R",
        22 => "ARMv9 AArch32",
        _ => "ARM (unknown architecture)",
    }
}

fn arch_has_thumb2(cpu_arch: u64) -> bool {
    matches!(cpu_arch, 8 | 10 | 13..)
}

/// Name of a Tag_FP_arch value.
pub fn fp_arch_name(value: u64) -> &'static str {
    match value {
        0 => "no FP",
        1 => "VFPv1",
        2 => "VFPv2",
        3 => "VFPv3",
        4 => "VFPv3-D16",
        5 => "VFPv4",
        6 => "VFPv4-D16",
        7 => "FP for ARMv8",
        8 => "FPv5/FP-D16 for ARMv8",
        _ => "unknown FP",
    }
}

/// Name of a Tag_Advanced_SIMD_arch value.
pub fn simd_arch_name(value: u64) -> &'static str {
    match value {
        0 => "no NEON",
        1 => "NEONv1",
        2 => "NEONv1 with FMA",
        3 => "NEON for ARMv8",
        4 => "NEON for ARMv8.1",
        _ => "unknown SIMD",
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Reads the facts of one ELF executable. Never panics on bad input; truncated, garbage and
/// non-ELF bytes give an [`ElfError`].
pub fn inspect(bytes: &[u8]) -> Result<ElfFacts, ElfError> {
    with_aligned(bytes, |data| match identify(data)? {
        FileKind::Elf32 => inspect_as::<elf::FileHeader32<Endianness>>(data),
        _ => inspect_as::<elf::FileHeader64<Endianness>>(data),
    })
}

/// The highest `GLIBC_x.y[.z]` version that a `libc.so.6` DEFINES (`.gnu.version_d`): what a
/// base image's glibc provides. `Ok(None)` if the file defines no GLIBC version (not glibc).
pub fn glibc_provided(libc_so: &[u8]) -> Result<Option<GlibcVersion>, ElfError> {
    with_aligned(libc_so, |data| match identify(data)? {
        FileKind::Elf32 => glibc_provided_as::<elf::FileHeader32<Endianness>>(data),
        _ => glibc_provided_as::<elf::FileHeader64<Endianness>>(data),
    })
}

/// `object`'s headers are aligned types; callers may hand us a slice at any offset (e.g. out of
/// a tar buffer), so copy into an 8-aligned buffer when needed.
fn with_aligned<T>(bytes: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    if (bytes.as_ptr() as usize).is_multiple_of(8) {
        return f(bytes);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(bytes.len() + 8);
    let pad = buf.as_ptr().align_offset(8).min(8);
    buf.resize(pad, 0);
    buf.extend_from_slice(bytes);
    f(&buf[pad..])
}

fn identify(data: &[u8]) -> Result<FileKind, ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        let head = &data[..data.len().min(8)];
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = head
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        let start = if data.is_empty() {
            "an empty file".to_string()
        } else {
            format!("{} \"{}\"", hex.join(" "), text)
        };
        return Err(ElfError::NotElf { start });
    }
    if data.len() < 16 {
        return Err(malformed(format!(
            "only {} bytes, shorter than the ELF identification",
            data.len()
        )));
    }
    if data[5] != elf::ELFDATA2LSB.0 && data[5] != elf::ELFDATA2MSB.0 {
        return Err(ElfError::Unsupported {
            what: format!("byte order EI_DATA={}", data[5]),
        });
    }
    match data[4] {
        c if c == elf::ELFCLASS32.0 => Ok(FileKind::Elf32),
        c if c == elf::ELFCLASS64.0 => Ok(FileKind::Elf64),
        c => Err(ElfError::Unsupported {
            what: format!("class EI_CLASS={c}"),
        }),
    }
}

fn inspect_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfFacts, ElfError> {
    let header = Elf::parse(data).ctx("ELF header")?;
    let endian = header.endian().ctx("ELF byte order")?;
    let machine = header.e_machine(endian).0;
    let flags = header.e_flags(endian).0;
    let file_type = header.e_type(endian).0;
    let phdrs = header
        .program_headers(endian, data)
        .ctx("program headers")?;

    let mut interpreter = None;
    for ph in phdrs {
        if let Some(interp) = ph.interpreter(endian, data).ctx("PT_INTERP")? {
            interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }

    let dynamic = read_dynamic::<Elf>(endian, data, phdrs)?;

    let arm = if elf::Machine(machine) == elf::EM_ARM {
        let attributes = read_arm_attributes::<Elf>(header, endian, data)?;
        Some(arm_facts(flags, attributes))
    } else {
        None
    };
    let riscv = (elf::Machine(machine) == elf::EM_RISCV).then_some(RiscvFacts {
        float_abi: match flags & elf::EF_RISCV_FLOAT_ABI {
            0 => RiscvFloatAbi::Soft,
            2 => RiscvFloatAbi::Single,
            4 => RiscvFloatAbi::Double,
            _ => RiscvFloatAbi::Quad,
        },
        rvc: flags & elf::EF_RISCV_RVC.0 != 0,
    });

    let pie = elf::FileType(file_type) == elf::ET_DYN
        && (interpreter.is_some() || dynamic.flags_1 & elf::DF_1_PIE.0 != 0);
    let max_glibc = dynamic
        .version_needs
        .iter()
        .flat_map(|n| n.versions.iter())
        .filter_map(|v| {
            v.starts_with("GLIBC_")
                .then(|| GlibcVersion::parse(v))
                .flatten()
        })
        .max();

    Ok(ElfFacts {
        class: if header.is_type_64() {
            ElfClass::Elf64
        } else {
            ElfClass::Elf32
        },
        little_endian: header.is_little_endian(),
        file_type,
        machine,
        flags,
        arm,
        riscv,
        interpreter,
        needed: dynamic.needed,
        pie,
        version_needs: dynamic.version_needs,
        max_glibc,
    })
}

fn arm_facts(flags: u32, attributes: Option<ArmAttributes>) -> ArmFacts {
    let eabi_version = (flags >> 24) as u8;
    let from_attrs = || match attributes.as_ref().and_then(|a| a.abi_vfp_args) {
        Some(1) => FloatAbi::Hard,
        Some(0) => FloatAbi::Soft,
        Some(3) => FloatAbi::Compatible,
        _ => FloatAbi::Unknown,
    };
    // The 0x400/0x200 bits mean hard/soft float only from EABI5 on (older ABIs reused them).
    let float_abi = if eabi_version >= 5 && flags & elf::EF_ARM_ABI_FLOAT_HARD != 0 {
        FloatAbi::Hard
    } else if eabi_version >= 5 && flags & elf::EF_ARM_ABI_FLOAT_SOFT != 0 {
        FloatAbi::Soft
    } else {
        from_attrs()
    };
    ArmFacts {
        eabi_version,
        float_abi,
        attributes,
    }
}

#[derive(Default)]
struct DynamicInfo {
    needed: Vec<String>,
    version_needs: Vec<VersionNeed>,
    flags_1: u64,
}

/// Upper bound on entries we follow in any table: real binaries have a few dozen; a corrupted
/// count must not make us loop for minutes.
const MAX_ENTRIES: u64 = 65_536;

fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &[u8],
    phdrs: &[Elf::ProgramHeader],
) -> Result<DynamicInfo, ElfError> {
    let mut dyns = None;
    for ph in phdrs {
        if let Some(d) = ph.dynamic(endian, data).ctx("PT_DYNAMIC")? {
            dyns = Some(d);
            break;
        }
    }
    let Some(dyns) = dyns else {
        return Ok(DynamicInfo::default());
    };

    let (mut strtab, mut strsz, mut verneed, mut verneednum) = (None, None, None, 0u64);
    let mut needed_offsets = Vec::new();
    let mut info = DynamicInfo::default();
    for d in dyns {
        let tag = d.d_tag(endian);
        let val: u64 = d.d_val(endian).into();
        match tag {
            elf::DT_NULL => break,
            elf::DT_NEEDED => needed_offsets.push(val),
            elf::DT_STRTAB => strtab = Some(val),
            elf::DT_STRSZ => strsz = Some(val),
            elf::DT_VERNEED => verneed = Some(val),
            elf::DT_VERNEEDNUM => verneednum = val,
            elf::DT_FLAGS_1 => info.flags_1 = val,
            _ => {}
        }
    }
    if needed_offsets.is_empty() && verneed.is_none() {
        return Ok(info);
    }

    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(malformed(
            "dynamic table lists DT_NEEDED or DT_VERNEED but no DT_STRTAB/DT_STRSZ",
        ));
    };
    let str_off = vaddr_to_offset::<Elf>(endian, phdrs, strtab)
        .ok_or_else(|| malformed(format!("DT_STRTAB 0x{strtab:x} is outside every PT_LOAD")))?;
    let str_end = str_off
        .checked_add(strsz)
        .filter(|&end| end <= data.len() as u64)
        .ok_or_else(|| malformed("dynamic string table runs past the end of the file"))?;
    let strings = StringTable::new(data, str_off, str_end);
    let string = |off: u64, what: &str| -> Result<String, ElfError> {
        let off = u32::try_from(off).map_err(|_| malformed(format!("{what} offset too large")))?;
        strings
            .get(off)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .map_err(|()| malformed(format!("{what} string at offset {off} is invalid")))
    };

    for off in needed_offsets {
        info.needed.push(string(off, "DT_NEEDED")?);
    }

    if let Some(verneed) = verneed {
        let mut off = vaddr_to_offset::<Elf>(endian, phdrs, verneed).ok_or_else(|| {
            malformed(format!("DT_VERNEED 0x{verneed:x} is outside every PT_LOAD"))
        })?;
        for _ in 0..verneednum.min(MAX_ENTRIES) {
            let vn: &elf::Verneed<Endianness> = data
                .read_at(off)
                .map_err(|()| malformed(format!("version need entry at 0x{off:x} is truncated")))?;
            let library = string(vn.vn_file.get(endian).into(), "version need file")?;
            let mut versions = Vec::new();
            let mut aux_off = off
                .checked_add(vn.vn_aux.get(endian).into())
                .ok_or_else(|| malformed("vn_aux overflows"))?;
            for _ in 0..vn.vn_cnt.get(endian) {
                let aux: &elf::Vernaux<Endianness> = data.read_at(aux_off).map_err(|()| {
                    malformed(format!(
                        "version need aux entry at 0x{aux_off:x} is truncated"
                    ))
                })?;
                versions.push(string(
                    aux.vna_name.get(endian).into(),
                    "version need name",
                )?);
                let next = aux.vna_next.get(endian);
                if next == 0 {
                    break;
                }
                aux_off = aux_off
                    .checked_add(next.into())
                    .ok_or_else(|| malformed("vna_next overflows"))?;
            }
            info.version_needs.push(VersionNeed { library, versions });
            let next = vn.vn_next.get(endian);
            if next == 0 {
                break;
            }
            off = off
                .checked_add(next.into())
                .ok_or_else(|| malformed("vn_next overflows"))?;
        }
    }
    Ok(info)
}

fn vaddr_to_offset<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    phdrs: &[Elf::ProgramHeader],
    addr: u64,
) -> Option<u64> {
    phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .find_map(|ph| {
            let vaddr: u64 = ph.p_vaddr(endian).into();
            let filesz: u64 = ph.p_filesz(endian).into();
            let offset: u64 = ph.p_offset(endian).into();
            let rel = addr.checked_sub(vaddr)?;
            (rel < filesz).then(|| offset.checked_add(rel)).flatten()
        })
}

fn read_arm_attributes<Elf: FileHeader<Endian = Endianness>>(
    header: &Elf,
    endian: Endianness,
    data: &[u8],
) -> Result<Option<ArmAttributes>, ElfError> {
    let sections = header.sections(endian, data).ctx("section headers")?;
    let Some(section) = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_ARM_ATTRIBUTES)
    else {
        return Ok(None);
    };
    let raw = section.data(endian, data).ctx(".ARM.attributes")?;
    parse_arm_attributes(raw)
}

/// Parses the body of `.ARM.attributes` (format version 'A', little-endian lengths as on every
/// ARM Linux target) and returns the public "aeabi" file attributes.
fn parse_arm_attributes(raw: &[u8]) -> Result<Option<ArmAttributes>, ElfError> {
    let section = object::read::elf::AttributesSection::<elf::FileHeader32<Endianness>>::new(
        Endianness::Little,
        raw,
    )
    .ctx(".ARM.attributes")?;
    let mut subsections = section.subsections().ctx(".ARM.attributes")?;
    let mut found = None;
    while let Some(sub) = subsections.next().ctx(".ARM.attributes subsection")? {
        if sub.vendor() != b"aeabi" {
            continue; // vendor subsections ("gnu", ...) are not ours to judge
        }
        let attrs = found.get_or_insert_with(ArmAttributes::default);
        let mut subsubs = sub.subsubsections();
        while let Some(subsub) = subsubs.next().ctx(".ARM.attributes sub-subsection")? {
            if subsub.tag() != elf::Tag_File {
                continue; // per-section / per-symbol attributes do not occur in executables
            }
            parse_aeabi_file_attributes(subsub.attributes(), attrs)?;
        }
    }
    Ok(found)
}

fn parse_aeabi_file_attributes(
    mut reader: object::read::elf::AttributeReader<'_>,
    attrs: &mut ArmAttributes,
) -> Result<(), ElfError> {
    let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
    while let Some(tag) = reader.read_tag().ctx("aeabi attribute tag")? {
        match tag {
            4 => attrs.cpu_raw_name = Some(text(reader.read_string().ctx("Tag_CPU_raw_name")?)),
            5 => attrs.cpu_name = Some(text(reader.read_string().ctx("Tag_CPU_name")?)),
            32 => {
                let flag = reader.read_integer().ctx("Tag_compatibility flag")?;
                let vendor = text(reader.read_string().ctx("Tag_compatibility vendor")?);
                attrs.compatibility = Some((flag, vendor));
            }
            // Tags >= 32: odd values carry a string, even ones a ULEB128 (AAELF "Attributes").
            t if t > 32 && t % 2 == 1 => {
                reader.read_string().ctx("aeabi string attribute")?;
            }
            t => {
                let v = reader.read_integer().ctx("aeabi integer attribute")?;
                let slot = match t {
                    6 => &mut attrs.cpu_arch,
                    7 => &mut attrs.cpu_arch_profile,
                    8 => &mut attrs.arm_isa_use,
                    9 => &mut attrs.thumb_isa_use,
                    10 => &mut attrs.fp_arch,
                    11 => &mut attrs.wmmx_arch,
                    12 => &mut attrs.advanced_simd_arch,
                    28 => &mut attrs.abi_vfp_args,
                    _ => continue,
                };
                *slot = Some(v);
            }
        }
    }
    Ok(())
}

fn glibc_provided_as<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Option<GlibcVersion>, ElfError> {
    let header = Elf::parse(data).ctx("ELF header")?;
    let endian = header.endian().ctx("ELF byte order")?;
    let sections = header.sections(endian, data).ctx("section headers")?;
    let Some((mut verdefs, link)) = sections.gnu_verdef(endian, data).ctx(".gnu.version_d")? else {
        return Ok(None);
    };
    let strings = sections
        .strings(endian, data, link)
        .ctx(".gnu.version_d string table")?;
    let mut best = None;
    let mut count = 0u64;
    while let Some((_def, mut aux)) = verdefs.next().ctx(".gnu.version_d entry")? {
        count += 1;
        if count > MAX_ENTRIES {
            return Err(malformed(".gnu.version_d has too many entries"));
        }
        // The first aux entry is the version's own name; later ones name its parents.
        if let Some(first) = aux.next().ctx(".gnu.version_d aux entry")? {
            let name = first.name(endian, strings).ctx(".gnu.version_d name")?;
            let name = String::from_utf8_lossy(name);
            if name.starts_with("GLIBC_")
                && let Some(v) = GlibcVersion::parse(&name)
            {
                best = best.max(Some(v));
            }
        }
    }
    Ok(best)
}

// ---------------------------------------------------------------------------------------------
// Libc classification
// ---------------------------------------------------------------------------------------------

/// Which libc an image variant is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Libc {
    /// glibc (the `gnu` variant, Debian-like base images).
    Gnu,
    /// musl (the `musl` variant, usually `scratch`).
    Musl,
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Libc::Gnu => "gnu",
            Libc::Musl => "musl",
        })
    }
}

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

/// The dynamic loader path a binary for `machine` linked against `libc` must request
/// (hard-float for 32-bit ARM, lp64d for RISC-V: the ABIs of the platform table).
pub fn expected_interpreter(machine: u16, libc: Libc) -> Option<&'static str> {
    Some(match (elf::Machine(machine), libc) {
        (elf::EM_X86_64, Libc::Gnu) => "/lib64/ld-linux-x86-64.so.2",
        (elf::EM_AARCH64, Libc::Gnu) => "/lib/ld-linux-aarch64.so.1",
        (elf::EM_ARM, Libc::Gnu) => "/lib/ld-linux-armhf.so.3",
        (elf::EM_RISCV, Libc::Gnu) => "/lib/ld-linux-riscv64-lp64d.so.1",
        (elf::EM_X86_64, Libc::Musl) => "/lib/ld-musl-x86_64.so.1",
        (elf::EM_AARCH64, Libc::Musl) => "/lib/ld-musl-aarch64.so.1",
        (elf::EM_ARM, Libc::Musl) => "/lib/ld-musl-armhf.so.1",
        (elf::EM_RISCV, Libc::Musl) => "/lib/ld-musl-riscv64.so.1",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------------------------

/// What a 32-bit ARM platform allows, in `.ARM.attributes` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArmExpect {
    /// Newest Tag_CPU_arch the device runs (7 = v6KZ for ARM1176, 10 = v7 for Cortex-A7).
    pub max_cpu_arch: u64,
    /// Whether Thumb-2 is allowed (not on ARMv6 / ARM1176).
    pub allow_thumb2: bool,
    /// Newest Tag_FP_arch (2 = VFPv2, 5 = VFPv4; D16 variants of an allowed version pass).
    pub max_fp_arch: u64,
    /// Newest Tag_Advanced_SIMD_arch (0 = no NEON, 2 = NEON with FMA).
    pub max_simd_arch: u64,
    /// Require the hard-float (armhf) calling convention.
    pub hard_float: bool,
}

/// What a platform image requires of its binary. Build one with a platform constructor, then
/// add the variant's libc and glibc ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfExpect {
    /// OCI platform, e.g. `linux/arm/v6` (used in messages).
    pub platform: &'static str,
    /// Devices it targets (used in messages), e.g. `ARM1176, Pi Zero/Pi 1`.
    pub devices: &'static str,
    /// Rust targets that build for it (used in fixes), gnu then musl.
    pub rust_targets: [&'static str; 2],
    /// Required class.
    pub class: ElfClass,
    /// Required `e_machine`.
    pub machine: u16,
    /// Required byte order.
    pub little_endian: bool,
    /// ARM ISA limits, for 32-bit ARM platforms.
    pub arm: Option<ArmExpect>,
    /// Required RISC-V float ABI.
    pub riscv_float_abi: Option<RiscvFloatAbi>,
    /// The image variant's libc, when known.
    pub libc: Option<Libc>,
    /// The oldest glibc the binary must run on: min(base image glibc, `build.glibc`).
    pub max_glibc: Option<GlibcVersion>,
}

impl ElfExpect {
    fn base(
        platform: &'static str,
        devices: &'static str,
        rust_targets: [&'static str; 2],
        class: ElfClass,
        machine: elf::Machine,
    ) -> Self {
        ElfExpect {
            platform,
            devices,
            rust_targets,
            class,
            machine: machine.0,
            little_endian: true,
            arm: None,
            riscv_float_abi: None,
            libc: None,
            max_glibc: None,
        }
    }

    /// linux/amd64: EM_X86_64, ELF64.
    pub fn amd64() -> Self {
        Self::base(
            "linux/amd64",
            "x86-64 PCs and servers",
            ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"],
            ElfClass::Elf64,
            elf::EM_X86_64,
        )
    }

    /// linux/arm64: EM_AARCH64, ELF64.
    pub fn arm64() -> Self {
        Self::base(
            "linux/arm64",
            "Pi 3/4/5 on a 64-bit OS, Graviton",
            ["aarch64-unknown-linux-gnu", "aarch64-unknown-linux-musl"],
            ElfClass::Elf64,
            elf::EM_AARCH64,
        )
    }

    /// linux/arm/v7: EM_ARM, ELF32, hard-float, Tag_CPU_arch at most v7 (no ARMv8 AArch32
    /// code), FP up to VFPv4, NEON allowed (Cortex-A7).
    pub fn armv7() -> Self {
        ElfExpect {
            arm: Some(ArmExpect {
                max_cpu_arch: 10,
                allow_thumb2: true,
                max_fp_arch: 5,
                max_simd_arch: 2,
                hard_float: true,
            }),
            ..Self::base(
                "linux/arm/v7",
                "Cortex-A7, Pi 2 and newer on a 32-bit OS",
                [
                    "armv7-unknown-linux-gnueabihf",
                    "armv7-unknown-linux-musleabihf",
                ],
                ElfClass::Elf32,
                elf::EM_ARM,
            )
        }
    }

    /// linux/arm/v6: EM_ARM, ELF32, hard-float, Tag_CPU_arch at most v6KZ, no Thumb-2, FP at
    /// most VFPv2, no NEON (ARM1176JZF-S).
    pub fn armv6() -> Self {
        ElfExpect {
            arm: Some(ArmExpect {
                max_cpu_arch: 7,
                allow_thumb2: false,
                max_fp_arch: 2,
                max_simd_arch: 0,
                hard_float: true,
            }),
            ..Self::base(
                "linux/arm/v6",
                "ARM1176, Pi Zero/Pi 1",
                [
                    "arm-unknown-linux-gnueabihf",
                    "arm-unknown-linux-musleabihf",
                ],
                ElfClass::Elf32,
                elf::EM_ARM,
            )
        }
    }

    /// linux/riscv64: EM_RISCV, ELF64, lp64d.
    pub fn riscv64() -> Self {
        ElfExpect {
            riscv_float_abi: Some(RiscvFloatAbi::Double),
            ..Self::base(
                "linux/riscv64",
                "RISC-V boards (RV64GC)",
                [
                    "riscv64gc-unknown-linux-gnu",
                    "riscv64gc-unknown-linux-musl",
                ],
                ElfClass::Elf64,
                elf::EM_RISCV,
            )
        }
    }

    /// The expectation for an OCI platform string (`linux/arm64/v8` and `linux/arm` are
    /// normalised like containerd does: arm without variant is v7).
    pub fn for_platform(platform: &str) -> Option<Self> {
        Some(match platform {
            "linux/amd64" => Self::amd64(),
            "linux/arm64" | "linux/arm64/v8" => Self::arm64(),
            "linux/arm/v7" | "linux/arm" => Self::armv7(),
            "linux/arm/v6" => Self::armv6(),
            "linux/riscv64" => Self::riscv64(),
            _ => return None,
        })
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

    fn target_for(&self, libc: Option<Libc>) -> String {
        match libc {
            Some(Libc::Gnu) => self.rust_targets[0].to_string(),
            Some(Libc::Musl) => self.rust_targets[1].to_string(),
            None => format!("{} or {}", self.rust_targets[0], self.rust_targets[1]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

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
    if let (Some(want), Some(rv)) = (expect.riscv_float_abi, &facts.riscv)
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
fn cpu_arch_within(found: u64, max: u64) -> bool {
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
fn fp_arch_within(found: u64, max: u64) -> bool {
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
    arm_expect: &ArmExpect,
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
    if arm_expect.hard_float {
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
                    expect.devices
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

    let mut problems = Vec::new();
    if !cpu_arch_within(attrs.cpu_arch(), arm_expect.max_cpu_arch) {
        problems.push(format!("Tag_CPU_arch {}", cpu_arch_name(attrs.cpu_arch())));
    }
    if !arm_expect.allow_thumb2 && attrs.uses_thumb2() {
        problems.push("Thumb-2".to_string());
    }
    if !fp_arch_within(attrs.fp_arch(), arm_expect.max_fp_arch) {
        problems.push(fp_arch_name(attrs.fp_arch()).to_string());
    }
    if attrs.simd_arch() > arm_expect.max_simd_arch {
        problems.push(simd_arch_name(attrs.simd_arch()).to_string());
    }
    if problems.is_empty() {
        return;
    }

    let mut allowed = vec![format!(
        "Tag_CPU_arch <= {}",
        cpu_arch_name(arm_expect.max_cpu_arch)
    )];
    if !arm_expect.allow_thumb2 {
        allowed.push("no Thumb-2".into());
    }
    allowed.push(format!("FP <= {}", fp_arch_name(arm_expect.max_fp_arch)));
    allowed.push(if arm_expect.max_simd_arch == 0 {
        "no NEON".into()
    } else {
        format!("SIMD <= {}", simd_arch_name(arm_expect.max_simd_arch))
    });
    let needs = cpu_arch_family(arm_expect.max_cpu_arch);
    let fix = if arm_expect.max_cpu_arch <= 9 {
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
            expect.devices,
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
    let want = expected_interpreter(expect.machine, libc);
    let interp = facts.interpreter.clone().unwrap_or_default();
    let target = expect.target_for(Some(libc));
    match (libc, &kind) {
        (_, LibcKind::Static) => {}
        (Libc::Gnu, LibcKind::Glibc) | (Libc::Musl, LibcKind::Musl) => {
            if let Some(want) = want
                && interp != want
            {
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
            let wanted = match (libc, want) {
                (Libc::Musl, Some(w)) => format!("static, or {w}"),
                (_, Some(w)) => w.to_string(),
                (_, None) => format!("a {libc} loader"),
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
                expect.rust_targets[0]
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    //! Real binaries built here with the installed cross compilers (a few ms each), compared
    //! with `readelf`, plus hand-built attribute sections and corrupted inputs.

    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A no-libc ARM program: `_start` does a little arithmetic and calls exit (tech.md §6.3).
    const ARM_START: &str = r#"
static volatile int sink;
void _start(void) {
  for (int i = 0; i < 4; i++) sink += i * 7;
  __asm__ volatile("mov r7, #1\n mov r0, #0\n svc #0");
  for (;;) {}
}
"#;

    const HELLO: &str = r#"
#include <stdio.h>
#include <math.h>
int main(int argc, char **argv) { printf("hello %f\n", sqrt((double)argc)); return 0; }
"#;

    /// Compiles `source` with `compiler args`, returns the binary's bytes. Fails loudly (with
    /// the install hint) if the compiler is missing: these tests never skip silently.
    fn compile(dir: &Path, compiler: &str, args: &[&str], source: &str, name: &str) -> Vec<u8> {
        let src = dir.join(format!("{name}.c"));
        let out = dir.join(name);
        std::fs::write(&src, source).expect("write C source");
        let result = Command::new(compiler)
            .arg(&src)
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {compiler} ({e}); install it: apt-get install \
                     gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu musl-tools"
                )
            });
        assert!(
            result.status.success(),
            "{compiler} {args:?} failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        std::fs::read(&out).expect("read compiled binary")
    }

    fn readelf(args: &[&str], file: &Path) -> String {
        let out = Command::new("readelf")
            .args(args)
            .arg(file)
            .output()
            .expect("readelf (binutils) must be installed");
        assert!(out.status.success(), "readelf {args:?} {}", file.display());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Highest `Name: GLIBC_x.y` in the given part of `readelf -V` output.
    fn readelf_max_glibc(readelf_v: &str, section: &str) -> Option<GlibcVersion> {
        let start = readelf_v.find(section)?;
        let rest = &readelf_v[start..];
        let end = rest[1..].find("Version ").map_or(rest.len(), |i| i + 1);
        rest[..end]
            .split_whitespace()
            .filter_map(GlibcVersion::parse)
            .max()
    }

    fn arm_binary(dir: &Path, name: &str, flags: &[&str]) -> (PathBuf, ElfFacts) {
        let mut args = vec![
            "-O1",
            "-static",
            "-nostdlib",
            "-fno-pie",
            "-no-pie",
            "-marm",
        ];
        args.extend_from_slice(flags);
        let bytes = compile(dir, "arm-linux-gnueabihf-gcc", &args, ARM_START, name);
        let facts = inspect(&bytes).expect("inspect ARM binary");
        (dir.join(name), facts)
    }

    #[test]
    fn armv6_build_passes_v6_and_v7_build_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (v6_path, v6) = arm_binary(dir.path(), "v6", &["-march=armv6+fp", "-mfpu=vfp"]);
        let (v7_path, v7) = arm_binary(dir.path(), "v7", &["-march=armv7-a+fp"]);

        // Same ELF header: EABI5 hard-float for both; only the attributes differ.
        assert_eq!(v6.flags, 0x0500_0400);
        assert_eq!(v7.flags, 0x0500_0400);
        for (path, facts) in [(&v6_path, &v6), (&v7_path, &v7)] {
            assert_eq!(facts.class, ElfClass::Elf32);
            assert_eq!(facts.machine_name(), "ARM");
            assert!(facts.is_static() && !facts.pie);
            assert_eq!(libc_kind(facts), LibcKind::Static);
            let arm = facts.arm.as_ref().unwrap();
            assert_eq!(arm.eabi_version, 5);
            assert_eq!(arm.float_abi, FloatAbi::Hard);
            let attrs = arm.attributes.as_ref().unwrap();
            // Agree with binutils.
            let a = readelf(&["-A"], path);
            let arch_line = format!("Tag_CPU_arch: {}\n", cpu_arch_name(attrs.cpu_arch()));
            assert!(a.contains(&arch_line), "{arch_line:?} not in {a}");
            let name_line = format!("Tag_CPU_name: \"{}\"", attrs.cpu_name.as_deref().unwrap());
            assert!(a.contains(&name_line), "{name_line:?} not in {a}");
            let fp_line = format!("Tag_FP_arch: {}\n", fp_arch_name(attrs.fp_arch()));
            assert!(a.contains(&fp_line), "{fp_line:?} not in {a}");
            assert_eq!(attrs.abi_vfp_args, Some(1));
        }
        let a6 = v6.arm.as_ref().unwrap().attributes.as_ref().unwrap();
        assert_eq!(
            (a6.cpu_arch, a6.thumb_isa_use, a6.fp_arch),
            (Some(6), Some(1), Some(2))
        );
        let a7 = v7.arm.as_ref().unwrap().attributes.as_ref().unwrap();
        assert_eq!(
            (
                a7.cpu_arch,
                a7.cpu_arch_profile,
                a7.thumb_isa_use,
                a7.fp_arch
            ),
            (Some(10), Some(u64::from(b'A')), Some(2), Some(4))
        );

        let armv6 = ElfExpect::armv6().with_libc(Libc::Musl);
        assert_eq!(check(&v6, &armv6), vec![]);
        let found = check(&v7, &armv6);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!((f.check, f.severity), ("arm-isa", Severity::Error));
        let text = f.to_string();
        for needle in [
            "binary is ARMv7 (Tag_CPU_arch v7, Thumb-2, VFPv3-D16)",
            "linux/arm/v6 needs ARMv6 (ARM1176, Pi Zero/Pi 1)",
            "SIGILL",
            "arm-unknown-linux-musleabihf",
            "cargo-zigbuild",
            "arm-linux-gnueabihf-gcc",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in: {text}");
        }

        let armv7 = ElfExpect::armv7().with_libc(Libc::Gnu);
        assert_eq!(check(&v6, &armv7), vec![]);
        assert_eq!(check(&v7, &armv7), vec![]);
    }

    #[test]
    fn armv8_aarch32_code_is_not_armv7() {
        let dir = tempfile::tempdir().unwrap();
        let (_, v8) = arm_binary(dir.path(), "v8", &["-march=armv8-a+simd"]);
        let attrs = v8.arm.as_ref().unwrap().attributes.as_ref().unwrap();
        assert_eq!(attrs.cpu_arch, Some(14));
        let found = check(&v8, &ElfExpect::armv7());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].message.contains("binary is ARMv8 AArch32")
                && found[0].message.contains("needs ARMv7"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn soft_float_arm_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (_, soft) = arm_binary(dir.path(), "soft", &["-march=armv7-a", "-mfloat-abi=soft"]);
        assert_eq!(soft.flags, 0x0500_0200);
        assert_eq!(soft.arm.as_ref().unwrap().float_abi, FloatAbi::Soft);
        let found = check(&soft, &ElfExpect::armv7());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].check, "float-abi");
        assert!(
            found[0]
                .message
                .starts_with("binary is soft-float but linux/arm/v7 images are hard-float (armhf)"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn aarch64_dynamic_glibc_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = compile(
            dir.path(),
            "aarch64-linux-gnu-gcc",
            &["-O1", "-lm"],
            HELLO,
            "a64",
        );
        let facts = inspect(&bytes).unwrap();
        assert_eq!(facts.class, ElfClass::Elf64);
        assert_eq!(facts.machine_name(), "AArch64");
        assert_eq!(
            facts.interpreter.as_deref(),
            Some("/lib/ld-linux-aarch64.so.1")
        );
        assert!(facts.needed.iter().any(|n| n == "libc.so.6"), "{facts:?}");
        assert!(facts.pie, "Debian's gcc links PIE by default");
        assert_eq!(libc_kind(&facts), LibcKind::Glibc);
        let libc = facts
            .version_needs
            .iter()
            .find(|n| n.library == "libc.so.6")
            .expect("version needs for libc.so.6");
        assert!(libc.versions.iter().any(|v| v == "GLIBC_2.17"), "{libc:?}");
        let readelf_d = readelf(&["-d"], &dir.path().join("a64"));
        let readelf_needed: Vec<&str> = readelf_d
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| l.split('[').nth(1)?.split(']').next())
            .collect();
        assert_eq!(facts.needed, readelf_needed);
        let readelf_v = readelf(&["-V"], &dir.path().join("a64"));
        let expected = readelf_max_glibc(&readelf_v, "Version needs section");
        assert!(expected.is_some());
        assert_eq!(facts.max_glibc, expected);

        // Wrong platform: names AArch64 and the fix.
        let found = check(&facts, &ElfExpect::amd64().with_libc(Libc::Gnu));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].check, "machine");
        assert_eq!(
            found[0].to_string(),
            "binary is AArch64 but the image is linux/amd64 (x86-64): the wrong target was \
             packaged (exec format error at run time); build with --target \
             x86_64-unknown-linux-gnu"
        );

        // Right platform, gnu: clean. Musl variant: wrong loader.
        let arm64 = ElfExpect::arm64();
        assert_eq!(check(&facts, &arm64.clone().with_libc(Libc::Gnu)), vec![]);
        let musl = check(&facts, &arm64.clone().with_libc(Libc::Musl));
        assert_eq!(musl.len(), 1, "{musl:#?}");
        assert_eq!(musl[0].check, "interpreter");
        assert!(
            musl[0].message.contains("linked against glibc"),
            "{}",
            musl[0]
        );
        assert!(musl[0].fix.contains("aarch64-unknown-linux-musl"));

        // glibc floor: anything below what it needs fails, exactly its need passes.
        let need = facts.max_glibc.unwrap();
        let old = GlibcVersion::new(2, 17, 0);
        assert!(need > old);
        let floor = check(
            &facts,
            &arm64.clone().with_libc(Libc::Gnu).with_max_glibc(old),
        );
        assert_eq!(floor.len(), 1, "{floor:#?}");
        assert_eq!(floor[0].check, "glibc");
        assert!(floor[0].message.contains(&format!("needs GLIBC_{need}")));
        assert!(
            floor[0]
                .message
                .contains(&format!("libc.so.6: GLIBC_{need}"))
        );
        assert!(floor[0].fix.contains("aarch64-unknown-linux-gnu.2.17"));
        assert_eq!(
            check(&facts, &arm64.with_libc(Libc::Gnu).with_max_glibc(need)),
            vec![]
        );
    }

    #[test]
    fn host_x86_64_binaries_dynamic_static_and_static_pie() {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = inspect(&compile(dir.path(), "cc", &["-O1", "-lm"], HELLO, "dyn")).unwrap();
        assert_eq!(dynamic.machine_name(), "x86-64");
        assert_eq!(
            dynamic.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(libc_kind(&dynamic), LibcKind::Glibc);
        assert_eq!(
            Some(dynamic.interpreter.as_deref().unwrap()),
            expected_interpreter(dynamic.machine, Libc::Gnu)
        );
        assert_eq!(
            check(&dynamic, &ElfExpect::amd64().with_libc(Libc::Gnu)),
            vec![]
        );
        let wrong = check(&dynamic, &ElfExpect::arm64());
        assert!(
            wrong[0]
                .message
                .starts_with("binary is x86-64 but the image is linux/arm64")
        );

        let musl = inspect(&compile(
            dir.path(),
            "musl-gcc",
            &["-static"],
            HELLO,
            "musl",
        ))
        .unwrap();
        assert!(musl.is_static() && !musl.pie);
        assert_eq!(libc_kind(&musl), LibcKind::Static);
        assert_eq!(musl.max_glibc, None);
        assert_eq!(
            check(&musl, &ElfExpect::amd64().with_libc(Libc::Musl)),
            vec![]
        );
        assert_eq!(
            check(&musl, &ElfExpect::amd64().with_libc(Libc::Gnu)),
            vec![]
        );

        let spie = inspect(&compile(
            dir.path(),
            "cc",
            &["-static-pie", "-lm"],
            HELLO,
            "spie",
        ))
        .unwrap();
        assert!(spie.is_static() && spie.pie, "{spie:?}");
        assert_eq!(spie.file_type, elf::ET_DYN.0);
        assert!(spie.summary().contains("static-pie"), "{}", spie.summary());

        // musl on the gnu variant, and a dynamic musl loader on the musl variant.
        let mut dyn_musl = dynamic.clone();
        dyn_musl.interpreter = Some("/lib/ld-musl-x86_64.so.1".into());
        assert_eq!(libc_kind(&dyn_musl), LibcKind::Musl);
        assert_eq!(
            check(&dyn_musl, &ElfExpect::amd64().with_libc(Libc::Musl)),
            vec![]
        );
        let gnu = check(&dyn_musl, &ElfExpect::amd64().with_libc(Libc::Gnu));
        assert!(gnu[0].message.contains("linked against musl"), "{}", gnu[0]);
    }

    #[test]
    fn glibc_provided_matches_readelf_on_real_libcs() {
        for path in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/aarch64-linux-gnu/lib/libc.so.6",
            "/usr/arm-linux-gnueabihf/lib/libc.so.6",
        ] {
            let bytes = std::fs::read(path).unwrap_or_else(|e| {
                panic!("{path}: {e}; install libc6 and the cross gcc packages")
            });
            let ours = glibc_provided(&bytes).unwrap();
            let theirs = readelf_max_glibc(
                &readelf(&["-V"], Path::new(path)),
                "Version definition section",
            );
            assert!(ours.is_some(), "{path}");
            assert_eq!(ours, theirs, "{path}");
            // Debian bookworm ships glibc 2.36 for every architecture.
            assert!(
                ours.unwrap() >= GlibcVersion::new(2, 36, 0),
                "{path}: {ours:?}"
            );
        }
        // A static program defines no versions.
        let dir = tempfile::tempdir().unwrap();
        let musl = compile(dir.path(), "musl-gcc", &["-static", "-lm"], HELLO, "m");
        assert_eq!(glibc_provided(&musl), Ok(None));
    }

    /// No riscv64 compiler is installed here, so this one patches a real ELF64's e_machine and
    /// e_flags: it exercises the RISC-V e_flags decoding and checks, not a real RISC-V binary.
    #[test]
    fn riscv_float_abi_from_patched_e_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = compile(dir.path(), "musl-gcc", &["-static", "-lm"], HELLO, "rv");
        bytes[18..20].copy_from_slice(&elf::EM_RISCV.0.to_le_bytes());
        bytes[48..52].copy_from_slice(&0x5u32.to_le_bytes()); // RVC | double
        let facts = inspect(&bytes).unwrap();
        assert_eq!(facts.machine_name(), "RISC-V");
        assert_eq!(
            facts.riscv,
            Some(RiscvFacts {
                float_abi: RiscvFloatAbi::Double,
                rvc: true
            })
        );
        assert_eq!(check(&facts, &ElfExpect::riscv64()), vec![]);
        bytes[48..52].copy_from_slice(&0x1u32.to_le_bytes()); // RVC, soft float
        let soft = inspect(&bytes).unwrap();
        let found = check(&soft, &ElfExpect::riscv64());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].check, "riscv-float-abi");
        assert!(found[0].message.contains("soft-float (lp64)"));
    }

    #[test]
    fn wrong_class_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_, v6) = arm_binary(dir.path(), "c", &["-march=armv6+fp", "-mfpu=vfp"]);
        let mut expect = ElfExpect::armv6();
        expect.class = ElfClass::Elf64;
        let found = check(&v6, &expect);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].check, "class");
        assert!(found[0].message.contains("binary is ELF32 ARM"));
    }

    fn aeabi_section(attrs: &[u8]) -> Vec<u8> {
        let mut file_sub = vec![1u8]; // Tag_File
        file_sub.extend_from_slice(&(5 + attrs.len() as u32).to_le_bytes());
        file_sub.extend_from_slice(attrs);
        let mut sub = Vec::new();
        let vendor = b"aeabi\0";
        sub.extend_from_slice(&((4 + vendor.len() + file_sub.len()) as u32).to_le_bytes());
        sub.extend_from_slice(vendor);
        sub.extend_from_slice(&file_sub);
        let mut out = vec![b'A'];
        // A vendor subsection we must skip.
        let gnu = b"gnu\0\x01\x07\x00\x00\x00\x04\x01";
        out.extend_from_slice(&((4 + gnu.len()) as u32).to_le_bytes());
        out.extend_from_slice(gnu);
        out.extend_from_slice(&sub);
        out
    }

    #[test]
    fn attribute_parser_handles_strings_ulebs_and_the_odd_even_rule() {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(b"\x05ARM1176JZF-S\0"); // Tag_CPU_name
        attrs.extend_from_slice(b"\x04arm1176jzf-s\0"); // Tag_CPU_raw_name
        attrs.extend_from_slice(&[6, 7]); // Tag_CPU_arch v6KZ
        attrs.extend_from_slice(&[8, 1, 9, 1, 10, 2]); // ARM, Thumb-1, VFPv2
        attrs.extend_from_slice(&[34, 0x81, 0x01]); // even tag >= 32: ULEB 129 (2 bytes)
        attrs.extend_from_slice(b"\x20\x01gnu\0"); // Tag_compatibility: uleb + string
        attrs.extend_from_slice(b"\x43conformance\0"); // 67: odd => string
        attrs.extend_from_slice(b"\x81\x01vendor\0"); // tag 129: 2-byte ULEB, odd => string
        attrs.extend_from_slice(&[28, 1, 12, 0]); // hard-float args, no NEON
        let parsed = parse_arm_attributes(&aeabi_section(&attrs))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.cpu_name.as_deref(), Some("ARM1176JZF-S"));
        assert_eq!(parsed.cpu_raw_name.as_deref(), Some("arm1176jzf-s"));
        assert_eq!(parsed.cpu_arch, Some(7));
        assert_eq!(parsed.thumb_isa_use, Some(1));
        assert_eq!(parsed.fp_arch, Some(2));
        assert_eq!(parsed.compatibility, Some((1, "gnu".to_string())));
        assert_eq!(parsed.abi_vfp_args, Some(1));
        assert_eq!(parsed.advanced_simd_arch, Some(0));
        assert!(!parsed.uses_thumb2());
        assert_eq!(
            parsed.describe(),
            "ARMv6 (Tag_CPU_arch v6KZ, Thumb-1, VFPv2)"
        );

        // Truncated attribute data is an error, not a panic.
        let section = aeabi_section(b"\x05unterminated");
        assert!(parse_arm_attributes(&section).is_err());
        // No aeabi subsection at all.
        assert_eq!(parse_arm_attributes(b"A"), Ok(None));
    }

    #[test]
    fn cpu_and_fp_tables() {
        // v6KZ device: v6, v6K, v6KZ yes; v6T2, v7, v6-M no.
        assert!(cpu_arch_within(6, 7) && cpu_arch_within(9, 7) && cpu_arch_within(7, 7));
        assert!(!cpu_arch_within(8, 7) && !cpu_arch_within(10, 7) && !cpu_arch_within(11, 7));
        // v7 device: not v8.
        assert!(cpu_arch_within(10, 10) && cpu_arch_within(6, 10) && !cpu_arch_within(14, 10));
        assert!(fp_arch_within(2, 2) && !fp_arch_within(4, 2) && !fp_arch_within(3, 2));
        assert!(fp_arch_within(4, 5) && fp_arch_within(6, 5) && !fp_arch_within(7, 5));
        assert_eq!(cpu_arch_name(7), "v6KZ");
        assert_eq!(cpu_arch_name(99), "unknown (99)");
    }

    #[test]
    fn glibc_version_parse_and_order() {
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.34"),
            Some(GlibcVersion::new(2, 34, 0))
        );
        assert_eq!(
            GlibcVersion::parse("GLIBC_2.1.3"),
            Some(GlibcVersion::new(2, 1, 3))
        );
        assert_eq!(
            GlibcVersion::parse("2.31"),
            Some(GlibcVersion::new(2, 31, 0))
        );
        for bad in [
            "GLIBC_PRIVATE",
            "GLIBC_ABI_DT_RELR",
            "2",
            "2.",
            "2.x",
            "1.2.3.4",
            "",
        ] {
            assert_eq!(GlibcVersion::parse(bad), None, "{bad}");
        }
        assert!(GlibcVersion::new(2, 3, 4) < GlibcVersion::new(2, 17, 0));
        assert!(GlibcVersion::new(2, 2, 5) > GlibcVersion::new(2, 2, 0));
        assert_eq!(GlibcVersion::new(2, 1, 3).to_string(), "2.1.3");
        assert_eq!(GlibcVersion::new(2, 36, 0).to_string(), "2.36");
    }

    #[test]
    fn non_elf_and_truncated_input_give_clear_errors() {
        assert_eq!(
            inspect(b"").unwrap_err().to_string(),
            "not an ELF file (starts with an empty file): the image must ship a compiled Linux \
             binary; check the entrypoint path and that the build output (not a script or an \
             archive) was packaged"
        );
        let script = inspect(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(
            script
                .to_string()
                .contains("23 21 2f 62 69 6e 2f 73 \"#!/bin/s\""),
            "{script}"
        );
        assert!(matches!(inspect(b"\x7fEL"), Err(ElfError::NotElf { .. })));
        assert!(matches!(
            inspect(b"\x7fELF\x02\x01"),
            Err(ElfError::Malformed { .. })
        ));
        let mut bad_class = b"\x7fELF\x07\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
        assert!(matches!(
            inspect(&bad_class),
            Err(ElfError::Unsupported { .. })
        ));
        bad_class[4] = 2;
        bad_class[5] = 9;
        assert!(matches!(
            inspect(&bad_class),
            Err(ElfError::Unsupported { .. })
        ));
        assert!(matches!(
            glibc_provided(b"garbage"),
            Err(ElfError::NotElf { .. })
        ));
    }

    #[test]
    fn corrupted_and_misaligned_real_binaries_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let good = compile(
            dir.path(),
            "aarch64-linux-gnu-gcc",
            &["-O1", "-lm"],
            HELLO,
            "a",
        );
        let arm = compile(
            dir.path(),
            "arm-linux-gnueabihf-gcc",
            &["-O1", "-static", "-nostdlib", "-marm", "-march=armv7-a+fp"],
            ARM_START,
            "arm",
        );
        let expected = inspect(&good).unwrap();

        // Misaligned copies parse the same.
        let mut shifted = vec![0u8; 3];
        shifted.extend_from_slice(&good);
        assert_eq!(inspect(&shifted[3..]).as_ref(), Ok(&expected));

        // Every truncation point in the headers, then coarser steps: errors, never panics.
        for input in [&good, &arm] {
            let cuts = (0..512).chain((512..input.len()).step_by(97));
            for cut in cuts {
                let _ = inspect(&input[..cut]);
                let _ = glibc_provided(&input[..cut]);
            }
        }
        assert!(inspect(&good[..40]).is_err());

        // Random corruptions (deterministic xorshift), biased to the headers and tables.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for input in [&good, &arm] {
            for _ in 0..300 {
                let mut copy = input.clone();
                for _ in 0..(1 + next() % 8) {
                    let limit = if next() % 2 == 0 {
                        256
                    } else {
                        copy.len() as u64
                    };
                    let at = (next() % limit) as usize;
                    copy[at] = next() as u8;
                }
                let _ = inspect(&copy);
                let _ = glibc_provided(&copy);
            }
        }
    }
}
