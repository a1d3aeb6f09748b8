//! Real binaries built here with the installed cross compilers (a few ms each), compared
//! with `readelf`, plus hand-built attribute sections and corrupted inputs.

use super::arm_attributes::parse_arm_attributes;
use super::expect::{cpu_arch_within, fp_arch_within};
use super::*;
use crate::platform::{Libc, Platform};
use object::elf;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The expectations of a platform of the table, by name.
fn expect(platform: &str) -> ElfExpect {
    ElfExpect::for_platform(Platform::parse(platform).expect("a platform of the table"))
}

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

    let armv6 = expect("linux/arm/v6").with_libc(Libc::Musl);
    assert_eq!(check(&v6, &armv6), vec![]);
    let found = check(&v7, &armv6);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!((f.check, f.severity), ("arm-isa", Severity::Error));
    let text = f.to_string();
    for needle in [
        "binary is ARMv7 (Tag_CPU_arch v7, Thumb-2, VFPv3-D16)",
        "linux/arm/v6 needs ARMv6 (ARM1176: Pi Zero, Zero W, Pi 1)",
        "SIGILL",
        "arm-unknown-linux-musleabihf",
        "cargo-zigbuild",
        "arm-linux-gnueabihf-gcc",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in: {text}");
    }

    let armv7 = expect("linux/arm/v7").with_libc(Libc::Gnu);
    assert_eq!(check(&v6, &armv7), vec![]);
    assert_eq!(check(&v7, &armv7), vec![]);
}

#[test]
fn armv8_aarch32_code_is_not_armv7() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v8) = arm_binary(dir.path(), "v8", &["-march=armv8-a+simd"]);
    let attrs = v8.arm.as_ref().unwrap().attributes.as_ref().unwrap();
    assert_eq!(attrs.cpu_arch, Some(14));
    let found = check(&v8, &expect("linux/arm/v7"));
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
    let found = check(&soft, &expect("linux/arm/v7"));
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
    let found = check(&facts, &expect("linux/amd64").with_libc(Libc::Gnu));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].check, "machine");
    assert_eq!(
        found[0].to_string(),
        "binary is AArch64 but the image is linux/amd64 (x86-64): the wrong target was \
         packaged (exec format error at run time); build with --target \
         x86_64-unknown-linux-gnu"
    );

    // Right platform, gnu: clean. Musl variant: wrong loader.
    let arm64 = expect("linux/arm64");
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
        Some(Platform::parse("linux/amd64").unwrap().interp(Libc::Gnu))
    );
    assert_eq!(
        check(&dynamic, &expect("linux/amd64").with_libc(Libc::Gnu)),
        vec![]
    );
    let wrong = check(&dynamic, &expect("linux/arm64"));
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
        check(&musl, &expect("linux/amd64").with_libc(Libc::Musl)),
        vec![]
    );
    assert_eq!(
        check(&musl, &expect("linux/amd64").with_libc(Libc::Gnu)),
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
        check(&dyn_musl, &expect("linux/amd64").with_libc(Libc::Musl)),
        vec![]
    );
    let gnu = check(&dyn_musl, &expect("linux/amd64").with_libc(Libc::Gnu));
    assert!(gnu[0].message.contains("linked against musl"), "{}", gnu[0]);
}

#[test]
fn glibc_provided_matches_readelf_on_real_libcs() {
    for path in [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/aarch64-linux-gnu/lib/libc.so.6",
        "/usr/arm-linux-gnueabihf/lib/libc.so.6",
    ] {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{path}: {e}; install libc6 and the cross gcc packages"));
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
    assert_eq!(check(&facts, &expect("linux/riscv64")), vec![]);
    bytes[48..52].copy_from_slice(&0x1u32.to_le_bytes()); // RVC, soft float
    let soft = inspect(&bytes).unwrap();
    let found = check(&soft, &expect("linux/riscv64"));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].check, "riscv-float-abi");
    assert!(found[0].message.contains("soft-float (lp64)"));
}

#[test]
fn wrong_class_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v6) = arm_binary(dir.path(), "c", &["-march=armv6+fp", "-mfpu=vfp"]);
    let mut expect = expect("linux/arm/v6");
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

#[test]
fn expectations_are_derived_from_the_platform_rows() {
    for p in &crate::platform::PLATFORMS {
        let e = ElfExpect::for_platform(p);
        assert_eq!(e.platform, p);
        assert_eq!(e.machine, p.elf_machine, "{p}");
        assert_eq!(e.class.bits(), if p.elf_64 { 64 } else { 32 }, "{p}");
        assert!(e.little_endian, "{p}");
        assert_eq!(e.float_abi, p.float_abi, "{p}");
        assert_eq!(e.arm, p.arm, "{p}");
        assert_eq!((e.libc, e.max_glibc), (None, None), "{p}");
        assert_eq!(e.clone().with_libc(Libc::Musl).libc, Some(Libc::Musl));
    }
    // The facts themselves, row by row.
    let v7 = expect("linux/arm/v7");
    assert_eq!((v7.machine, v7.class), (elf::EM_ARM.0, ElfClass::Elf32));
    assert_eq!(v7.float_abi, crate::platform::FloatConvention::ArmHard);
    let arm = v7.arm.unwrap();
    assert_eq!(
        (
            arm.max_cpu_arch,
            arm.allow_thumb2,
            arm.max_fp_arch,
            arm.max_simd_arch
        ),
        (10, true, 5, 2),
        "Cortex-A7: ARMv7, Thumb-2, VFPv4 (D32), NEON with FMA"
    );
    let v6 = expect("linux/arm/v6").arm.unwrap();
    assert_eq!(
        (
            v6.max_cpu_arch,
            v6.allow_thumb2,
            v6.max_fp_arch,
            v6.max_simd_arch
        ),
        (7, false, 2, 0),
        "ARM1176: ARMv6KZ, Thumb-1, VFPv2, no NEON"
    );
    let rv = expect("linux/riscv64");
    assert_eq!(rv.riscv_float_abi(), Some(RiscvFloatAbi::Double));
    assert_eq!((rv.machine, rv.class), (elf::EM_RISCV.0, ElfClass::Elf64));
    let amd64 = expect("linux/amd64");
    assert_eq!(amd64.riscv_float_abi(), None);
    assert_eq!((amd64.machine, amd64.arm), (elf::EM_X86_64.0, None));
    assert_eq!(expect("linux/arm64").machine, elf::EM_AARCH64.0);
}

/// Real binaries for each Tag_FP_arch around the arm/v7 ceiling (VFPv4, from the Pi 2's
/// Cortex-A7): what a Cortex-A7 runs passes, ARMv8 FP (and ARMv8 NEON) fails.
#[test]
fn armv7_fp_ceiling_is_vfpv4_and_a_higher_tag_fails() {
    let dir = tempfile::tempdir().unwrap();
    let v7 = expect("linux/arm/v7").with_libc(Libc::Gnu);
    for (name, fpu, fp_arch, simd) in [
        ("vfpv3", "vfpv3", 3, None),
        ("vfpv3d16", "vfpv3-d16", 4, None),
        ("vfpv4", "neon-vfpv4", 5, Some(2)),
        ("vfpv4d16", "vfpv4-d16", 6, None),
    ] {
        let (_, facts) = arm_binary(
            dir.path(),
            name,
            &["-march=armv7-a", &format!("-mfpu={fpu}")],
        );
        let attrs = facts.arm.as_ref().unwrap().attributes.as_ref().unwrap();
        assert_eq!(
            (attrs.fp_arch, attrs.advanced_simd_arch),
            (Some(fp_arch), simd)
        );
        assert_eq!(
            check(&facts, &v7),
            vec![],
            "-mfpu={fpu} runs on a Cortex-A7"
        );
        // None of them is ARMv6 code for a Pi Zero.
        let v6 = check(&facts, &expect("linux/arm/v6"));
        assert_eq!(v6.len(), 1, "{v6:#?}");
        assert_eq!(v6[0].check, "arm-isa");
    }
    for (name, fpu, offending) in [
        ("fparmv8", "fp-armv8", "FP for ARMv8"),
        ("neonv8", "neon-fp-armv8", "NEON for ARMv8"),
    ] {
        let (_, facts) = arm_binary(
            dir.path(),
            name,
            &["-march=armv7-a", &format!("-mfpu={fpu}")],
        );
        let attrs = facts.arm.as_ref().unwrap().attributes.as_ref().unwrap();
        assert_eq!((attrs.cpu_arch, attrs.fp_arch), (Some(10), Some(7)));
        let found = check(&facts, &v7);
        assert_eq!(found.len(), 1, "-mfpu={fpu}: {found:#?}");
        let f = &found[0];
        assert_eq!((f.check, f.severity), ("arm-isa", Severity::Error));
        assert!(f.expected.contains("FP <= VFPv4"), "{}", f.expected);
        assert!(f.message.contains(offending), "{}", f.message);
        assert!(f.message.contains("SIGILL"), "{}", f.message);
    }
}

/// A real binary with one header field patched: the reader refuses it as "not a valid ELF file"
/// instead of reading no program headers and calling it static (issue 11, item 17).
#[test]
fn impossible_header_counts_are_not_a_valid_elf() {
    let dir = tempfile::tempdir().unwrap();
    let good = compile(dir.path(), "cc", &["-O1", "-lm"], HELLO, "h");
    let arm = compile(
        dir.path(),
        "arm-linux-gnueabihf-gcc",
        &["-O1", "-static", "-nostdlib", "-marm", "-march=armv7-a+fp"],
        ARM_START,
        "arm",
    );
    assert!(inspect(&good).unwrap().interpreter.is_some());
    let patch = |bytes: &[u8], at: usize, value: u16| {
        let mut copy = bytes.to_vec();
        copy[at..at + 2].copy_from_slice(&value.to_le_bytes());
        copy
    };
    let invalid = |bytes: &[u8], needle: &str| {
        let e = inspect(bytes).unwrap_err();
        assert!(matches!(e, ElfError::Invalid { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with("not a valid ELF file: "), "{text}");
        assert!(text.contains(needle), "{needle:?} not in {text}");
    };
    // ELF64 (x86-64): e_phentsize at 54, e_phnum 56, e_shentsize 58, e_shnum 60.
    invalid(&patch(&good, 56, 0xffff), "e_phnum is 0xffff (PN_XNUM");
    invalid(&patch(&good, 56, 0xfffe), "e_phnum 65534 program headers");
    invalid(&patch(&good, 56, 0), "no program headers");
    invalid(&patch(&good, 54, 32), "e_phentsize is 32");
    invalid(&patch(&good, 60, 0xfff0), "65520 section headers");
    invalid(&patch(&good, 58, 1), "e_shentsize is 1");
    // The same rules hold when reading a base image's libc.so.6.
    assert!(matches!(
        glibc_provided(&patch(&good, 60, 0xfff0)),
        Err(ElfError::Invalid { .. })
    ));
    // ELF32 (ARM): e_phnum at 44.
    invalid(&patch(&arm, 44, 0xffff), "e_phnum is 0xffff (PN_XNUM");
    // PN_XNUM without section headers (e_shoff 0, as sstrip leaves it).
    let mut no_sections = patch(&good, 56, 0xffff);
    no_sections[40..48].fill(0);
    no_sections[60..62].fill(0);
    invalid(&no_sections, "no section headers");
    // A truncated file without section headers: its program headers fit, a PT_LOAD does not.
    let mut stripped = good.clone();
    stripped[40..48].fill(0);
    stripped[60..64].fill(0);
    assert!(inspect(&stripped).is_ok());
    invalid(&stripped[..good.len() / 2], "(PT_LOAD) covers");
}
