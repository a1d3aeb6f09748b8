//! The dynamic table as the loader sees it (through `PT_DYNAMIC`, so section-stripped binaries
//! still work): DT_NEEDED, DT_FLAGS_1 and the version needs (DT_VERNEED).

use super::error::{Context, ElfError, malformed};
use super::facts::{MAX_ENTRIES, VersionNeed};
use object::Endianness;
use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _};
use object::read::{ReadRef, StringTable};

#[derive(Default)]
pub(super) struct DynamicInfo {
    pub(super) needed: Vec<String>,
    pub(super) version_needs: Vec<VersionNeed>,
    pub(super) flags_1: u64,
}

pub(super) fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
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
