//! ARM specifics: the float calling convention (from `e_flags`, else `Tag_ABI_VFP_args`) and the
//! public "aeabi" file attributes of `.ARM.attributes` (Tag_CPU_arch, Tag_THUMB_ISA_use,
//! Tag_FP_arch, Tag_Advanced_SIMD_arch, ...), with the names readelf prints for their values.

use super::error::{Context, ElfError};
use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader as _};
use serde::Serialize;
use std::fmt;

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
pub(super) fn cpu_arch_family(value: u64) -> &'static str {
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

pub(super) fn arch_has_thumb2(cpu_arch: u64) -> bool {
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

pub(super) fn arm_facts(flags: u32, attributes: Option<ArmAttributes>) -> ArmFacts {
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

pub(super) fn read_arm_attributes<Elf: FileHeader<Endian = Endianness>>(
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
pub(super) fn parse_arm_attributes(raw: &[u8]) -> Result<Option<ArmAttributes>, ElfError> {
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
