//! SLSA provenance v1 (`https://slsa.dev/provenance/v1`) as an in-toto statement: what was
//! built (the subjects), how (our build type, the pipeline config digest, platform, variant,
//! features, profile), from what (source revision, base image digests, toolchain versions), by
//! whom and when (builder id, invocation id, start and finish). The inputs are a plain struct so
//! the release stage maps its own facts onto it.

use super::{Statement, Subject, timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// shipit's build type: how to read `externalParameters` and `internalParameters`.
pub const BUILD_TYPE: &str = "https://shipit.dev/buildtypes/release/v1";

/// A SLSA ResourceDescriptor: a source, base image or tool, by URI and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm → hex (`sha256`, `gitCommit`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Resource {
    /// A git source at a revision: `uri` like `git+https://github.com/acme/app`.
    pub fn git(uri: &str, revision: &str) -> Resource {
        Resource {
            uri: Some(uri.to_string()),
            digest: BTreeMap::from([("gitCommit".to_string(), revision.to_string())]),
            ..Resource::default()
        }
    }

    /// A base image by reference and digest.
    pub fn image(reference: &str, digest: &crate::oci::digest::Digest) -> Resource {
        Resource {
            uri: Some(reference.to_string()),
            digest: BTreeMap::from([("sha256".to_string(), digest.hex().to_string())]),
            ..Resource::default()
        }
    }

    /// A tool by name and version (`rustc`, `1.91.0`), with the commit it was built from when
    /// known (`rustc -vV` prints it).
    pub fn tool(name: &str, version: &str, commit: Option<&str>) -> Resource {
        Resource {
            name: Some(name.to_string()),
            uri: Some(format!("pkg:generic/{name}@{version}")),
            digest: commit
                .map(|c| BTreeMap::from([("gitCommit".to_string(), c.to_string())]))
                .unwrap_or_default(),
            ..Resource::default()
        }
    }
}

/// Everything the provenance of one image (or index) says.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvenanceInput {
    pub subjects: Vec<Subject>,
    /// sha256 of the pipeline config file as read.
    pub config_digest: crate::oci::digest::Digest,
    /// `linux/arm64`; several for an index.
    pub platforms: Vec<String>,
    pub variant: String,
    pub features: Vec<String>,
    pub profile: String,
    /// Facts the user did not choose: the Rust target, backend, linker, glibc floor…
    pub internal: BTreeMap<String, Value>,
    /// The source repository at its revision (see [`Resource::git`]).
    pub source: Option<Resource>,
    pub base_images: Vec<Resource>,
    pub toolchain: Vec<Resource>,
    /// The builder's identity: the workflow run URL in CI, else `https://shipit.dev/local`.
    pub builder_id: String,
    pub builder_version: BTreeMap<String, String>,
    pub invocation_id: String,
    /// Epoch seconds.
    pub started_on: u64,
    pub finished_on: u64,
}

/// The provenance statement.
pub fn statement_for(input: &ProvenanceInput) -> Statement {
    let mut resolved: Vec<&Resource> = Vec::new();
    resolved.extend(input.source.iter());
    resolved.extend(input.base_images.iter());
    resolved.extend(input.toolchain.iter());
    let mut external = json!({
        "configDigest": {"sha256": input.config_digest.hex()},
        "variant": input.variant,
        "features": input.features,
        "profile": input.profile,
    });
    match input.platforms.as_slice() {
        [one] => external["platform"] = json!(one),
        many => external["platforms"] = json!(many),
    }
    let mut build_definition = json!({
        "buildType": BUILD_TYPE,
        "externalParameters": external,
        "resolvedDependencies": resolved,
    });
    if !input.internal.is_empty() {
        build_definition["internalParameters"] = json!(input.internal);
    }
    let mut builder = json!({"id": input.builder_id});
    if !input.builder_version.is_empty() {
        builder["version"] = json!(input.builder_version);
    }
    let predicate = json!({
        "buildDefinition": build_definition,
        "runDetails": {
            "builder": builder,
            "metadata": {
                "invocationId": input.invocation_id,
                "startedOn": timestamp(input.started_on),
                "finishedOn": timestamp(input.finished_on),
            },
        },
    });
    super::statement(&input.subjects, PREDICATE_TYPE, predicate)
}

/// Alias kept short for callers: `provenance::statement(&input)`.
pub use statement_for as statement;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Digest;

    #[test]
    fn slsa_v1_shape() {
        let input = ProvenanceInput {
            subjects: vec![Subject {
                name: "ghcr.io/acme/app".into(),
                digest: Digest::of(b"manifest"),
            }],
            config_digest: Digest::of(b"pipeline.yaml"),
            platforms: vec!["linux/arm64".into()],
            variant: "gnu".into(),
            features: vec![],
            profile: "release".into(),
            internal: BTreeMap::from([("target".into(), json!("aarch64-unknown-linux-gnu"))]),
            source: Some(Resource::git("git+https://github.com/acme/app", "abc123")),
            base_images: vec![Resource::image("oci:base/bookworm", &Digest::of(b"base"))],
            toolchain: vec![Resource::tool("rustc", "1.91.0", Some("f00"))],
            builder_id: "https://shipit.dev/local".into(),
            builder_version: BTreeMap::from([("shipit".into(), "0.1.0".into())]),
            invocation_id: "run-1".into(),
            started_on: 1_700_000_000,
            finished_on: 1_700_000_060,
        };
        let s = statement(&input);
        assert_eq!(s.bytes, statement(&input).bytes);
        let v: Value = serde_json::from_slice(&s.bytes).unwrap();
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        let p = &v["predicate"];
        assert_eq!(p["buildDefinition"]["buildType"], BUILD_TYPE);
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["platform"],
            "linux/arm64"
        );
        let deps = p["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps[0]["digest"]["gitCommit"], "abc123");
        assert_eq!(deps[1]["digest"]["sha256"], Digest::of(b"base").hex());
        assert_eq!(deps[2]["name"], "rustc");
        assert_eq!(
            p["runDetails"]["metadata"]["finishedOn"],
            "2023-11-14T22:14:20Z"
        );
    }
}
