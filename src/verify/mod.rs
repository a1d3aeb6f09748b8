//! Verification: static ELF checks, safe unpacking, and running each image under QEMU.

pub mod checks;
pub mod elf;
pub mod qemu;
pub mod scratch;
