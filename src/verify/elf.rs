//! Static ELF checks.
