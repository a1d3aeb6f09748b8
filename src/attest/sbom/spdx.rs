//! SPDX 2.3 JSON for one platform image: a container package that the document describes, which
//! CONTAINS the binary's package and every Debian package; the crate graph as DEPENDS_ON, and
//! build-only crates as BUILD_DEPENDENCY_OF (with a comment saying they are not in the binary).
//! Deterministic: `created` is SOURCE_DATE_EPOCH and the namespace ends in a digest of the
//! document's own content.

use super::{Crate, Sbom};
use crate::attest::{canonical_bytes, timestamp};
use crate::oci::digest::Digest;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The media type of an SPDX JSON document.
pub const MEDIA_TYPE: &str = "application/spdx+json";
/// The in-toto predicate type for an SPDX document as a statement's predicate.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";

const IMAGE_ID: &str = "SPDXRef-image";

/// Renders `sbom` as canonical SPDX 2.3 JSON bytes.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let mut ids = Ids::default();
    let mut packages = Vec::new();
    let mut relationships: BTreeSet<(String, &str, String)> = BTreeSet::new();
    let rel = |a: &str, t: &'static str, b: &str| (a.to_string(), t, b.to_string());

    packages.push(json!({
        "SPDXID": IMAGE_ID,
        "name": sbom.image_name,
        "versionInfo": sbom.cargo.root.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("platform {}, target {}, variant {}{}", sbom.platform, sbom.target,
            sbom.variant,
            if sbom.features.is_empty() { String::new() } else { format!(", features {}", sbom.features.join(",")) }),
    }));
    relationships.insert(rel("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID));

    let mut crate_ids = std::collections::BTreeMap::new();
    for (c, purpose) in std::iter::once((&sbom.cargo.root, "APPLICATION"))
        .chain(sbom.cargo.crates.iter().map(|c| (c, "LIBRARY")))
    {
        let id = ids.make(&format!("cargo-{}-{}", c.name, c.version));
        packages.push(crate_package(c, &id, purpose));
        crate_ids.insert(c.purl(), id);
    }
    relationships.insert(rel(
        IMAGE_ID,
        "CONTAINS",
        &crate_ids[&sbom.cargo.root.purl()],
    ));
    for e in &sbom.cargo.edges {
        let (from, to) = (&crate_ids[&e.from], &crate_ids[&e.to]);
        if e.build {
            relationships.insert(rel(to, "BUILD_DEPENDENCY_OF", from));
        } else {
            relationships.insert(rel(from, "DEPENDS_ON", to));
        }
    }
    for d in &sbom.debs {
        let id = ids.make(&format!("deb-{}-{}-{}", d.name, d.version, d.architecture));
        let mut p = json!({
            "SPDXID": id,
            "name": d.name,
            "versionInfo": d.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "externalRefs": [purl_ref(&d.purl(&sbom.distro))],
        });
        if let Some(src) = &d.source {
            p["sourceInfo"] = json!(format!("built from the Debian source package {src}"));
        }
        packages.push(p);
        relationships.insert(rel(IMAGE_ID, "CONTAINS", &id));
    }
    packages.sort_by(|a, b| a["SPDXID"].as_str().cmp(&b["SPDXID"].as_str()));
    let relationships: Vec<Value> = relationships
        .into_iter()
        .map(
            |(a, t, b)| json!({"spdxElementId": a, "relationshipType": t, "relatedSpdxElement": b}),
        )
        .collect();

    let name = format!("{} {}", sbom.image_name, sbom.platform);
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "creationInfo": {
            "created": timestamp(sbom.created),
            "creators": [format!("Tool: shipit-{}", sbom.tool_version)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    let content = Digest::of(&canonical_bytes(&doc));
    doc["documentNamespace"] = json!(format!(
        "https://shipit.dev/spdx/{}/{}",
        sanitize(&name),
        content.hex()
    ));
    canonical_bytes(&doc)
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn crate_package(c: &Crate, id: &str, purpose: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": c.name,
        "versionInfo": c.version,
        "downloadLocation": c.download_location().unwrap_or_else(|| "NOASSERTION".into()),
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": c.license.clone().unwrap_or_else(|| "NOASSERTION".into()),
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": purpose,
        "externalRefs": [purl_ref(&c.purl())],
    });
    if let Some(sum) = &c.checksum {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
    }
    if c.build_only {
        p["comment"] = json!(
            "build-only: compiled for the build host (build script or proc-macro), not linked into the binary"
        );
    }
    p
}

/// SPDX identifiers: `SPDXRef-` + letters, digits, `.` and `-`; made unique with a counter when
/// two names sanitise to the same string (in a deterministic order: the order of calls).
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn make(&mut self, raw: &str) -> String {
        let base = format!("SPDXRef-{}", sanitize(raw));
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::sbom::cyclonedx::tests::sample_sbom;

    #[test]
    fn deterministic_with_build_relationships() {
        let a = render(&sample_sbom());
        assert_eq!(a, render(&sample_sbom()));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let rels = v["relationships"].as_array().unwrap();
        assert!(
            rels.iter()
                .any(|r| r["relationshipType"] == "BUILD_DEPENDENCY_OF"
                    && r["spdxElementId"] == "SPDXRef-cargo-cc-1.0.0"
                    && r["relatedSpdxElement"] == "SPDXRef-cargo-app-0.3.1")
        );
        assert!(rels.iter().any(|r| r["relationshipType"] == "DEPENDS_ON"
            && r["relatedSpdxElement"] == "SPDXRef-cargo-libc-0.2.1"));
        let libc = v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "libc")
            .unwrap();
        assert_eq!(libc["licenseDeclared"], "MIT OR Apache-2.0");
        assert_eq!(libc["checksums"][0]["checksumValue"], "1".repeat(64));
    }
}
