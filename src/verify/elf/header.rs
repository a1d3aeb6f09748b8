//! The entry point of parsing: identification, the file header and the program headers, each
//! validated against the file before anything they point to is believed, then the facts.

use super::arm_attributes::{arm_facts, read_arm_attributes};
use super::dynamic::read_dynamic;
use super::error::{Context, ElfError, malformed};
use super::facts::{ElfClass, ElfFacts, GlibcVersion, RiscvFacts, RiscvFloatAbi};
use object::elf;
use object::read::ReadRef;
use object::read::elf::{FileHeader, ProgramHeader as _, SectionHeader as _};
use object::{Endianness, FileKind};
use std::mem::size_of;

fn invalid(what: impl Into<String>) -> ElfError {
    ElfError::Invalid { what: what.into() }
}

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
    check_header_tables(header, endian, data)?;
    let phdrs = header
        .program_headers(endian, data)
        .ctx("program headers")?;
    check_segments::<Elf>(endian, data, phdrs)?;

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

/// Checks what the file header says about its tables against the file itself, before any of
/// them is read: entry sizes, counts (with the extended numbering of PN_XNUM and `e_shnum` 0)
/// and extents. `object` takes `e_phnum = 0xffff` as "the count is in section 0" and, finding 0
/// there, reads no program headers at all: without this check such a file looked like a static
/// binary and only failed when it ran.
pub(super) fn check_header_tables<Elf: FileHeader<Endian = Endianness>>(
    header: &Elf,
    endian: Endianness,
    data: &[u8],
) -> Result<(), ElfError> {
    let len = data.len() as u64;
    let ehsize = usize::from(header.e_ehsize(endian));
    if ehsize != size_of::<Elf>() {
        return Err(invalid(format!(
            "e_ehsize is {ehsize}, not the {} bytes of an ELF{} header",
            size_of::<Elf>(),
            if header.is_type_64() { 64 } else { 32 }
        )));
    }
    // Section headers first: the extended counts live in section 0.
    let shoff: u64 = header.e_shoff(endian).into();
    let mut section_0 = None;
    let mut shnum = u64::from(header.e_shnum(endian));
    if shoff != 0 {
        let entsize = usize::from(header.e_shentsize(endian));
        if entsize != size_of::<Elf::SectionHeader>() {
            return Err(invalid(format!(
                "e_shentsize is {entsize}, not the {} bytes of a section header",
                size_of::<Elf::SectionHeader>()
            )));
        }
        let s0: &Elf::SectionHeader = data.read_at(shoff).map_err(|()| {
            invalid(format!(
                "the section header table (e_shoff 0x{shoff:x}) starts past the end of the {len}-byte file"
            ))
        })?;
        if shnum == 0 {
            shnum = s0.sh_size(endian).into();
        }
        section_0 = Some(s0);
        let end = shnum
            .checked_mul(entsize as u64)
            .and_then(|size| size.checked_add(shoff));
        if end.is_none_or(|end| end > len) {
            return Err(invalid(format!(
                "{shnum} section headers at 0x{shoff:x} run past the end of the {len}-byte file"
            )));
        }
    }
    let e_phnum = header.e_phnum(endian);
    let phnum = if e_phnum == elf::PN_XNUM {
        // Extended numbering: the real count is in section 0's sh_info, and is only used when
        // it does not fit in e_phnum.
        let real = section_0.map(|s0| s0.sh_info(endian));
        match real {
            Some(n) if n >= u32::from(elf::PN_XNUM) => u64::from(n),
            Some(n) => {
                return Err(invalid(format!(
                    "e_phnum is 0xffff (PN_XNUM: count in section 0) but section 0 gives {n} \
                     program headers, which would have fit in e_phnum"
                )));
            }
            None => {
                return Err(invalid(
                    "e_phnum is 0xffff (PN_XNUM: count in section 0) but the file has no \
                     section headers",
                ));
            }
        }
    } else {
        u64::from(e_phnum)
    };
    let file_type = elf::FileType(header.e_type(endian).0);
    if phnum == 0 {
        if file_type == elf::ET_EXEC || file_type == elf::ET_DYN {
            return Err(invalid(
                "an executable with no program headers (e_phnum 0): the kernel cannot load it",
            ));
        }
        return Ok(());
    }
    let entsize = usize::from(header.e_phentsize(endian));
    if entsize != size_of::<Elf::ProgramHeader>() {
        return Err(invalid(format!(
            "e_phentsize is {entsize}, not the {} bytes of a program header",
            size_of::<Elf::ProgramHeader>()
        )));
    }
    let phoff: u64 = header.e_phoff(endian).into();
    let end = phnum
        .checked_mul(entsize as u64)
        .and_then(|size| size.checked_add(phoff));
    if end.is_none_or(|end| end > len) {
        return Err(invalid(format!(
            "e_phnum {phnum} program headers at 0x{phoff:x} run past the end of the {len}-byte \
             file"
        )));
    }
    Ok(())
}

/// Every segment the loader maps must lie inside the file: a PT_LOAD or PT_INTERP past the end
/// is a truncated or corrupted file, whatever the headers promise.
fn check_segments<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &[u8],
    phdrs: &[Elf::ProgramHeader],
) -> Result<(), ElfError> {
    let len = data.len() as u64;
    for (i, ph) in phdrs.iter().enumerate() {
        let kind = match ph.p_type(endian) {
            elf::PT_LOAD => "PT_LOAD",
            elf::PT_INTERP => "PT_INTERP",
            elf::PT_DYNAMIC => "PT_DYNAMIC",
            _ => continue,
        };
        let offset: u64 = ph.p_offset(endian).into();
        let size: u64 = ph.p_filesz(endian).into();
        if offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(invalid(format!(
                "program header {i} ({kind}) covers 0x{offset:x}..+0x{size:x}, past the end of \
                 the {len}-byte file"
            )));
        }
    }
    Ok(())
}
