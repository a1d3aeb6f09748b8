//! Reads a `.deb` as hostile input: the `ar` container (`debian-binary`, `control.tar.*`,
//! `data.tar.*`, compressed with xz, zstd or gzip, or not at all), the control stanza and
//! `md5sums`, and the data tree. Every size is bounded (member sizes against the file, decompressed
//! bytes, entry counts); paths are normalised and refused if they hold `..`, NUL or are not UTF-8;
//! hard links must point at an earlier regular file of the same package (they become copies);
//! device files, FIFOs and sparse entries are refused. Maintainer scripts are never read.

use super::error::DebError;
use super::packages::{Stanza, parse_stanzas};
use super::release::{Compression, decompress};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The largest `.deb` shipit reads.
const MAX_DEB: u64 = 1 << 30;
/// The largest decompressed control archive.
const MAX_CONTROL: u64 = 64 << 20;
/// The largest decompressed data archive of one package (held in memory while assembling).
const MAX_DATA: u64 = 2 << 30;
/// The most entries one data archive may have.
const MAX_ENTRIES: usize = 500_000;

/// What a package's data tree holds at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One entry of a package's data tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    /// Normalised and relative: `usr/lib/x86_64-linux-gnu/libc.so.6` (no `./`, no trailing `/`).
    pub path: String,
    pub kind: DataKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The parts of a `.deb` shipit uses.
#[derive(Debug, Clone)]
pub struct DebContents {
    pub control: Stanza,
    /// The `md5sums` control file, as shipped.
    pub md5sums: Option<Vec<u8>>,
    /// The `conffiles` control file, as shipped.
    pub conffiles: Option<String>,
    /// The data tree, in archive order.
    pub files: Vec<DataEntry>,
}

/// One member of an `ar` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember<'a> {
    pub name: String,
    pub data: &'a [u8],
}

/// Parses an `ar` archive (the common format: `!<arch>\n`, 60-byte headers, even padding).
pub fn read_ar<'a>(bytes: &'a [u8], what: &str) -> Result<Vec<ArMember<'a>>, DebError> {
    let bad = |why: String| DebError::format(what, format!("not a valid .deb (ar): {why}"));
    let rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or_else(|| bad("no `!<arch>` magic".into()))?;
    let mut pos = 0usize;
    let mut out = Vec::new();
    while pos < rest.len() {
        if rest.len() - pos < 60 {
            return Err(bad(format!("truncated header at byte {}", pos + 8)));
        }
        let h = &rest[pos..pos + 60];
        if &h[58..60] != b"`\n" {
            return Err(bad(format!("bad header terminator at byte {}", pos + 8)));
        }
        let name = std::str::from_utf8(&h[..16])
            .map_err(|_| bad("a member name is not ASCII".into()))?
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: usize = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(format!("bad size of member {name:?}")))?;
        let start = pos + 60;
        let end = start
            .checked_add(size)
            .filter(|e| *e <= rest.len())
            .ok_or_else(|| bad(format!("member {name:?} runs past the end of the file")))?;
        out.push(ArMember {
            name,
            data: &rest[start..end],
        });
        pos = end + (size & 1);
    }
    Ok(out)
}

fn compression_of(name: &str, prefix: &str) -> Option<Compression> {
    Some(match name.strip_prefix(prefix)? {
        "" => Compression::None,
        ".gz" => Compression::Gz,
        ".xz" => Compression::Xz,
        ".zst" => Compression::Zstd,
        _ => return None,
    })
}

/// Reads a `.deb` file.
pub fn read_deb(path: &Path) -> Result<DebContents, DebError> {
    let f = std::fs::File::open(path).map_err(DebError::io(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_DEB + 1)
        .read_to_end(&mut bytes)
        .map_err(DebError::io(path))?;
    if bytes.len() as u64 > MAX_DEB {
        return Err(DebError::format(
            path.display().to_string(),
            "larger than 1 GiB",
        ));
    }
    read_deb_bytes(&bytes, &path.display().to_string())
}

/// Reads a `.deb` from memory; `what` names it in errors.
pub fn read_deb_bytes(bytes: &[u8], what: &str) -> Result<DebContents, DebError> {
    let members = read_ar(bytes, what)?;
    let bad = |why: String| DebError::format(what, why);
    match members.first() {
        Some(m) if m.name == "debian-binary" && m.data.starts_with(b"2.") => {}
        _ => return Err(bad("the first member is not `debian-binary` 2.x".into())),
    }
    let find = |prefix: &str| {
        members
            .iter()
            .find_map(|m| compression_of(&m.name, prefix).map(|c| (m, c)))
            .ok_or_else(|| bad(format!("no {prefix}{{,.gz,.xz,.zst}} member")))
    };
    let (control_m, cc) = find("control.tar")?;
    let (data_m, dc) = find("data.tar")?;
    let control_what = format!("{what}: {}", control_m.name);
    let control_files = read_tar(decompress(cc, control_m.data), MAX_CONTROL, &control_what)?;
    let control_file = |name: &str| {
        control_files.iter().find_map(|e| match &e.kind {
            DataKind::File(b) if e.path == name => Some(b.clone()),
            _ => None,
        })
    };
    let control = control_file("control").ok_or_else(|| bad("no control file".into()))?;
    let control = String::from_utf8(control).map_err(|_| bad("control is not UTF-8".into()))?;
    let control = parse_stanzas(&control, &format!("{what}: control"))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("an empty control file".into()))?;
    let md5sums = control_file("md5sums");
    let conffiles = control_file("conffiles").map(|b| String::from_utf8_lossy(&b).into_owned());
    let data_what = format!("{what}: {}", data_m.name);
    let files = read_tar(decompress(dc, data_m.data), MAX_DATA, &data_what)?;
    Ok(DebContents {
        control,
        md5sums,
        conffiles,
        files,
    })
}

/// `./usr/bin/x` → `usr/bin/x`; `./` → `None` (the root); `..` anywhere is refused.
pub fn normalise(raw: &[u8], what: &str) -> Result<Option<String>, DebError> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| DebError::format(what, format!("path {raw:?} is not UTF-8")))?;
    if s.contains('\0') {
        return Err(DebError::format(
            what,
            format!("path {s:?} holds a NUL byte"),
        ));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(DebError::format(
                    what,
                    format!("path {s:?} climbs out with `..`; refused"),
                ));
            }
            c => parts.push(c),
        }
    }
    Ok(if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    })
}

/// Reads a tar stream into entries, at most `max` content bytes.
fn read_tar(r: Box<dyn Read + '_>, max: u64, what: &str) -> Result<Vec<DataEntry>, DebError> {
    let bad = |why: String| DebError::format(what, why);
    let mut ar = tar::Archive::new(r);
    let mut out: Vec<DataEntry> = Vec::new();
    let mut files: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0u64;
    for entry in ar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("damaged tar: {e}")))?;
        if out.len() >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let Some(path) = normalise(&entry.path_bytes(), what)? else {
            continue;
        };
        let h = entry.header();
        let mode = h
            .mode()
            .map_err(|e| bad(format!("{path}: bad mode: {e}")))?
            & 0o7777;
        let id = |v: std::io::Result<u64>| {
            v.ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(format!("{path}: bad owner")))
        };
        let (uid, gid) = (id(h.uid())?, id(h.gid())?);
        let etype = h.entry_type();
        let kind = match etype {
            tar::EntryType::Directory => DataKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                total += size;
                if total > max {
                    return Err(bad(format!("unpacks to more than {max} bytes; refused")));
                }
                let mut bytes = Vec::with_capacity(size.min(1 << 24) as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(format!("{path}: {e}")))?;
                if bytes.len() as u64 != size {
                    return Err(bad(format!("{path}: truncated")));
                }
                files.insert(path.clone(), out.len());
                DataKind::File(bytes)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(format!("{path}: symlink without a target")))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| bad(format!("{path}: symlink target is not UTF-8")))?;
                if target.is_empty() || target.contains('\0') {
                    return Err(bad(format!("{path}: bad symlink target")));
                }
                DataKind::Symlink(target.to_string())
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(format!("{path}: hard link without a target")))?;
                let target = normalise(&target, what)?.unwrap_or_default();
                let i = files.get(&target).copied().ok_or_else(|| {
                    bad(format!(
                        "{path}: hard link to {target:?}, which is not an earlier file of the package"
                    ))
                })?;
                let bytes = match &out[i].kind {
                    DataKind::File(b) => b.clone(),
                    _ => unreachable!("files only indexes regular files"),
                };
                total += bytes.len() as u64;
                if total > max {
                    return Err(bad(format!("unpacks to more than {max} bytes; refused")));
                }
                files.insert(path.clone(), out.len());
                DataKind::File(bytes)
            }
            other => {
                return Err(bad(format!(
                    "{path}: entry type {other:?} (devices, FIFOs, sparse files) is refused"
                )));
            }
        };
        out.push(DataEntry {
            path,
            kind,
            mode,
            uid,
            gid,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    "100644",
                    data.len()
                )
                .as_bytes(),
            );
            out.extend(*data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    /// A tar with raw headers (so tests can write what `tar::Builder` would refuse).
    pub(crate) fn tar(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, t, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*t);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A minimal `.deb` with the given data entries (gzip-compressed members).
    pub(crate) fn deb(name: &str, data: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let gz = |b: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, b).unwrap();
            e.finish().unwrap()
        };
        let control = format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: amd64\nDescription: test\n long\n"
        );
        let control_tar = tar(&[
            ("./", tar::EntryType::Directory, b"", ""),
            ("./control", tar::EntryType::Regular, control.as_bytes(), ""),
            ("./md5sums", tar::EntryType::Regular, b"abc  usr/x\n", ""),
            (
                "./postinst",
                tar::EntryType::Regular,
                b"#!/bin/sh\nrm -rf /\n",
                "",
            ),
        ]);
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gz(&control_tar)),
            ("data.tar.gz", &gz(&tar(data))),
        ])
    }

    #[test]
    fn ar_members_are_read_with_padding() {
        let a = ar(&[
            ("debian-binary", b"2.0\n"),
            ("odd/", b"abc"),
            ("next", b"xy"),
        ]);
        let m = read_ar(&a, "t").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[1].name.as_str(), m[1].data), ("odd", b"abc".as_slice()));
        assert_eq!(m[2].data, b"xy");
        let mut cut = a.clone();
        cut.truncate(a.len() - 1);
        assert!(
            read_ar(&cut, "t")
                .unwrap_err()
                .to_string()
                .contains("past the end")
        );
        assert!(read_ar(b"<arch>", "t").is_err());
        let mut big = a.clone();
        // Claim a huge size for the second member.
        let at = 8 + 60 + 4 + 48;
        big[at..at + 10].copy_from_slice(b"9999999999");
        assert!(read_ar(&big, "t").is_err());
    }

    #[test]
    fn a_deb_gives_control_md5sums_and_data_without_scripts() {
        let d = deb(
            "hello",
            &[
                ("./", tar::EntryType::Directory, b"", ""),
                ("./usr/", tar::EntryType::Directory, b"", ""),
                ("./usr/x", tar::EntryType::Regular, b"bytes", ""),
                ("./usr/y", tar::EntryType::Link, b"", "./usr/x"),
                ("./usr/z", tar::EntryType::Symlink, b"", "x"),
            ],
        );
        let c = read_deb_bytes(&d, "hello.deb").unwrap();
        assert_eq!(c.control.get("Package"), Some("hello"));
        assert_eq!(c.md5sums.as_deref(), Some(b"abc  usr/x\n".as_slice()));
        let paths: Vec<&str> = c.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr", "usr/x", "usr/y", "usr/z"]);
        assert_eq!(c.files[2].kind, DataKind::File(b"bytes".to_vec()));
        assert_eq!(c.files[3].kind, DataKind::Symlink("x".into()));
    }

    #[test]
    fn hostile_archives_are_refused() {
        for (entries, want) in [
            (
                vec![(
                    "./../etc/passwd",
                    tar::EntryType::Regular,
                    b"x".as_slice(),
                    "",
                )],
                "climbs out",
            ),
            (
                vec![(
                    "./usr/y",
                    tar::EntryType::Link,
                    b"".as_slice(),
                    "/etc/shadow",
                )],
                "not an earlier file",
            ),
            (
                vec![("./dev/sda", tar::EntryType::Block, b"".as_slice(), "")],
                "refused",
            ),
        ] {
            let d = deb("evil", &entries);
            let e = read_deb_bytes(&d, "evil.deb").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("evil.deb"), "{e}");
        }
    }
}
