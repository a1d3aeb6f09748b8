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
//! Use: [`inspect`] the bytes, derive an [`ElfExpect`] from the platform's row of the one
//! platform table ([`ElfExpect::for_platform`], then [`ElfExpect::with_libc`] and
//! [`ElfExpect::with_max_glibc`]), and [`check`] returns [`Finding`]s that each say what was
//! expected, what was found, and what to do. [`glibc_provided`] reads the highest `GLIBC_x.y` a
//! base image's `libc.so.6` defines.
//!
//! The parts: `header` (identification, file and program headers, validated before anything is
//! believed), `dynamic` (the dynamic table through `PT_DYNAMIC`), `versions` (glibc symbol
//! versions needed and defined), `arm_attributes` (`.ARM.attributes` and the ARM float ABI),
//! `expect` (the expectations and the checks). Parsing uses `object`'s low-level `read::elf`
//! API. The dynamic table, DT_NEEDED and the version needs are read through `PT_DYNAMIC` (what
//! the loader sees), so section-stripped binaries still work; `.ARM.attributes` exists only as a
//! section.

mod arm_attributes;
pub mod ca;
mod dynamic;
mod error;
mod expect;
mod facts;
mod header;
#[cfg(test)]
mod tests;
mod versions;

pub use arm_attributes::{
    ArmAttributes, ArmFacts, FloatAbi, cpu_arch_name, fp_arch_name, simd_arch_name,
};
pub use error::ElfError;
pub use expect::{ElfExpect, Finding, LibcKind, Severity, check, libc_kind};
pub use facts::{
    ElfClass, ElfFacts, GlibcVersion, RiscvFacts, RiscvFloatAbi, VersionNeed, machine_name,
};
pub use header::inspect;
pub use versions::glibc_provided;
