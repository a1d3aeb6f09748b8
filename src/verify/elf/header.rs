//! The entry point of parsing: identification, the file header and the program headers, each
//! validated against the file before anything they point to is believed, then the facts.

use super::arm_attributes::{arm_facts, read_arm_attributes};
use super::dynamic::read_dynamic;
use super::versions::GlibcVersion;
use super::{Context, ElfClass, ElfError, ElfFacts, RiscvFacts, RiscvFloatAbi, malformed};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader as _};
use object::{Endianness, FileKind};

/// Reads the facts of one ELF executable. Never panics on bad input; truncated, garbage and
/// non-ELF bytes give an [`ElfError`].
pub fn inspect(bytes: &[u8]) -> Result<ElfFacts, ElfError> {
    with_aligned(bytes, |data| match identify(data)? {
        FileKind::Elf32 => inspect_as::<elf::FileHeader32<Endianness>>(data),
        _ => inspect_as::<elf::FileHeader64<Endianness>>(data),
    })
}

/// `object`'s headers are aligned types; callers may hand us a slice at any offset (e.g. out of
/// a tar buffer), so copy into an 8-aligned buffer when needed.
pub(super) fn with_aligned<T>(bytes: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    if (bytes.as_ptr() as usize).is_multiple_of(8) {
        return f(bytes);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(bytes.len() + 8);
    let pad = buf.as_ptr().align_offset(8).min(8);
    buf.resize(pad, 0);
    buf.extend_from_slice(bytes);
    f(&buf[pad..])
}

pub(super) fn identify(data: &[u8]) -> Result<FileKind, ElfError> {
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
