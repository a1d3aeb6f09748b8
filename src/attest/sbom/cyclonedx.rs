//! CycloneDX 1.6 JSON for one platform image: the container as `metadata.component`, the
//! binary's package as an application, every crate and Debian package as a library (sorted by
//! purl), build-only crates with `scope: excluded` and `cdx:cargo:dependency_kind=build`, and the
//! dependency graph. Deterministic: the timestamp is SOURCE_DATE_EPOCH and the serial number is
//! derived from the document's own content.

use super::{Crate, Sbom, uuid_from_digest};
use crate::attest::{canonical_bytes, timestamp};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The media type of a CycloneDX JSON document.
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// The in-toto predicate type for a CycloneDX document as a statement's predicate.
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

const IMAGE_REF: &str = "image";

/// Renders `sbom` as canonical CycloneDX 1.6 JSON bytes.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let mut components = vec![crate_component(&sbom.cargo.root, "application")];
    components.extend(
        sbom.cargo
            .crates
            .iter()
            .map(|c| crate_component(c, "library")),
    );
    for d in &sbom.debs {
        let purl = d.purl(&sbom.distro);
        let mut props = vec![prop("shipit:deb:architecture", &d.architecture)];
        if let Some(src) = &d.source {
            props.push(prop("shipit:deb:source", src));
        }
        components.push(json!({
            "type": "library",
            "bom-ref": purl,
            "name": d.name,
            "version": d.version,
            "purl": purl,
            "properties": props,
        }));
    }
    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));

    let mut depends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let image_deps = depends.entry(IMAGE_REF.to_string()).or_default();
    image_deps.push(sbom.cargo.root.purl());
    image_deps.extend(sbom.debs.iter().map(|d| d.purl(&sbom.distro)));
    for c in std::iter::once(&sbom.cargo.root).chain(&sbom.cargo.crates) {
        depends.entry(c.purl()).or_default();
    }
    for d in &sbom.debs {
        depends.entry(d.purl(&sbom.distro)).or_default();
    }
    for e in &sbom.cargo.edges {
        depends
            .entry(e.from.clone())
            .or_default()
            .push(e.to.clone());
    }
    let dependencies: Vec<Value> = depends
        .into_iter()
        .map(|(r, mut on)| {
            on.sort();
            on.dedup();
            json!({"ref": r, "dependsOn": on})
        })
        .collect();

    let mut image_props = vec![
        prop("shipit:platform", &sbom.platform),
        prop("shipit:target", &sbom.target),
        prop("shipit:variant", &sbom.variant),
    ];
    if !sbom.features.is_empty() {
        image_props.push(prop("shipit:features", &sbom.features.join(",")));
    }
    let mut doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": timestamp(sbom.created),
            "tools": {"components": [{
                "type": "application",
                "name": "shipit",
                "version": sbom.tool_version,
            }]},
            "component": {
                "type": "container",
                "bom-ref": IMAGE_REF,
                "name": sbom.image_name,
                "version": sbom.cargo.root.version,
                "properties": image_props,
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let serial = format!("urn:uuid:{}", uuid_from_digest(&canonical_bytes(&doc)));
    doc["serialNumber"] = Value::String(serial);
    canonical_bytes(&doc)
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

fn crate_component(c: &Crate, kind: &str) -> Value {
    let purl = c.purl();
    let mut v = json!({
        "type": kind,
        "bom-ref": purl,
        "name": c.name,
        "version": c.version,
        "purl": purl,
        "scope": if c.build_only { "excluded" } else { "required" },
    });
    if let Some(l) = &c.license {
        v["licenses"] = json!([{"expression": l}]);
    }
    if let Some(sum) = &c.checksum {
        v["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
    }
    if c.build_only {
        v["properties"] = json!([prop("cdx:cargo:dependency_kind", "build")]);
    }
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attest::sbom::tests::sample_graph;
    use crate::attest::sbom::{DEFAULT_DISTRO, parse_dpkg_status};

    pub(crate) fn sample_sbom() -> Sbom {
        Sbom {
            image_name: "ghcr.io/acme/app".into(),
            platform: "linux/arm64".into(),
            target: "aarch64-unknown-linux-gnu".into(),
            variant: "gnu".into(),
            features: vec![],
            cargo: sample_graph(),
            debs: parse_dpkg_status(
                "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: arm64\n",
            ),
            distro: DEFAULT_DISTRO.into(),
            created: 1_700_000_000,
            tool_version: "0.1.0".into(),
        }
    }

    #[test]
    fn deterministic_and_marked() {
        let a = render(&sample_sbom());
        assert_eq!(a, render(&sample_sbom()));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
        let comps = v["components"].as_array().unwrap();
        let cc = comps.iter().find(|c| c["name"] == "cc").unwrap();
        assert_eq!(cc["scope"], "excluded");
        assert_eq!(cc["properties"][0]["value"], "build");
        let refs: Vec<&str> = comps
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        let mut sorted = refs.clone();
        sorted.sort();
        assert_eq!(refs, sorted);
        // another epoch: another serial number
        let mut other = sample_sbom();
        other.created += 1;
        let w: Value = serde_json::from_slice(&render(&other)).unwrap();
        assert_ne!(v["serialNumber"], w["serialNumber"]);
    }
}
