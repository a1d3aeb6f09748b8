//! qemu-user: shipit runs `qemu-<arch>-static` explicitly (never through binfmt_misc), with the
//! platform's strict CPU (`-cpu arm1176`, `cortex-a7`, `cortex-a53`).

pub const MIN: semver::Version = semver::Version::new(5, 0, 0);

pub fn version(binary: &str, cancel: &crate::exec::Cancel) -> Option<semver::Version> {
    super::probe_version(binary, &["--version"], cancel)
}
