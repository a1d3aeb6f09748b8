//! glibc symbol versions: the ones a binary needs (`.gnu.version_r`, read in `dynamic`) and the
//! highest one a base image's `libc.so.6` defines (`.gnu.version_d`).

use super::error::{Context, ElfError, malformed};
use super::facts::{GlibcVersion, MAX_ENTRIES};
use super::header::{check_header_tables, identify, with_aligned};
use object::elf;
use object::read::elf::FileHeader;
use object::{Endianness, FileKind};

/// The highest `GLIBC_x.y[.z]` version that a `libc.so.6` DEFINES (`.gnu.version_d`): what a
/// base image's glibc provides. `Ok(None)` if the file defines no GLIBC version (not glibc).
pub fn glibc_provided(libc_so: &[u8]) -> Result<Option<GlibcVersion>, ElfError> {
    with_aligned(libc_so, |data| match identify(data)? {
        FileKind::Elf32 => glibc_provided_as::<elf::FileHeader32<Endianness>>(data),
        _ => glibc_provided_as::<elf::FileHeader64<Endianness>>(data),
    })
}

fn glibc_provided_as<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Option<GlibcVersion>, ElfError> {
    let header = Elf::parse(data).ctx("ELF header")?;
    let endian = header.endian().ctx("ELF byte order")?;
    check_header_tables(header, endian, data)?;
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
