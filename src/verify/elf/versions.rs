//! glibc symbol versions: the ones a binary needs (`.gnu.version_r`, read in `dynamic`) and the
//! highest one a base image's `libc.so.6` defines (`.gnu.version_d`).

use super::dynamic::MAX_ENTRIES;
use super::header::{check_header_tables, identify, with_aligned};
use super::{Context, ElfError, malformed};
use object::elf;
use object::read::elf::FileHeader;
use object::{Endianness, FileKind};
use serde::Serialize;
use std::fmt;

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
