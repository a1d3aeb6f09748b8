//! The verification attestation, shipit's own predicate (`https://shipit.dev/verification/v1`):
//! for one platform image, the platform and libc variant, how it ran (QEMU binary and CPU, or
//! natively), the glibc floor, and every check with its result and duration. This is what no
//! peer can attest to: that each platform image actually ran. The verify stage's result types
//! are mapped onto [`VerificationInput`].

use super::{Statement, Subject, timestamp};
use serde::Serialize;
use serde_json::json;

/// The predicate type of the verification attestation.
pub const PREDICATE_TYPE: &str = "https://shipit.dev/verification/v1";

/// How the image's checks were run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emulator {
    /// `qemu-aarch64-static`.
    pub binary: String,
    /// `cortex-a53`.
    pub cpu: String,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    pub name: String,
    /// `static`, `run` or `serve`.
    pub kind: String,
    /// `passed`, `failed` or `skipped`.
    pub result: String,
    pub duration_ms: u64,
    /// What failed, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Everything the verification attestation of one platform image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationInput {
    pub subject: Subject,
    pub platform: String,
    pub variant: String,
    /// `None`: ran natively (amd64 on an x86-64 host).
    pub emulator: Option<Emulator>,
    /// `build.glibc` (gnu images).
    pub glibc_floor: Option<String>,
    /// The highest `GLIBC_x.y` the binary needs, as found.
    pub glibc_required: Option<String>,
    pub checks: Vec<CheckRecord>,
    pub verifier_version: String,
    /// Epoch seconds.
    pub verified_on: u64,
}

/// The verification statement.
pub fn statement_for(input: &VerificationInput) -> Statement {
    let passed = input.checks.iter().all(|c| c.result != "failed");
    let predicate = json!({
        "verifier": {"id": "https://shipit.dev/verify", "version": {"shipit": input.verifier_version}},
        "verifiedOn": timestamp(input.verified_on),
        "platform": input.platform,
        "variant": input.variant,
        "emulator": input.emulator,
        "glibc": {"floor": input.glibc_floor, "required": input.glibc_required},
        "checks": input.checks,
        "result": if passed { "passed" } else { "failed" },
    });
    super::statement(
        std::slice::from_ref(&input.subject),
        PREDICATE_TYPE,
        predicate,
    )
}

pub use statement_for as statement;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Digest;

    #[test]
    fn records_every_check() {
        let input = VerificationInput {
            subject: Subject {
                name: "r".into(),
                digest: Digest::of(b"m"),
            },
            platform: "linux/arm/v6".into(),
            variant: "musl".into(),
            emulator: Some(Emulator {
                binary: "qemu-arm-static".into(),
                cpu: "arm1176".into(),
            }),
            glibc_floor: None,
            glibc_required: None,
            checks: vec![
                CheckRecord {
                    name: "elf".into(),
                    kind: "static".into(),
                    result: "passed".into(),
                    duration_ms: 3,
                    detail: None,
                },
                CheckRecord {
                    name: "serves".into(),
                    kind: "serve".into(),
                    result: "failed".into(),
                    duration_ms: 20_000,
                    detail: Some("no answer on :8080".into()),
                },
            ],
            verifier_version: "0.1.0".into(),
            verified_on: 0,
        };
        let v: serde_json::Value = serde_json::from_slice(&statement(&input).bytes).unwrap();
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(v["predicate"]["emulator"]["cpu"], "arm1176");
        assert_eq!(v["predicate"]["checks"][1]["durationMs"], 20_000);
        assert_eq!(v["predicate"]["result"], "failed");
    }
}
