//! Single-platform images: an optional base (its config and layers, kept first) plus shipit's
//! layers, described by an image config and a manifest. Both are written as canonical JSON and
//! hashed as those exact bytes, so the same inputs give the same digests run after run.
//!
//! The base config is edited as a `serde_json::Value`, never re-modelled, so nothing a base
//! carries (Docker's `container_config`, `Healthcheck`, `StopSignal`, unknown future fields) is
//! lost. Manifests and configs from Docker tooling (Docker media types) are read as well. Also
//! the OCI `platform` object (descriptors, configs and indexes share it) and the rules for when
//! two platforms are the same (arm64 = arm64/v8, arm = arm/v7).

use crate::oci::digest::Digest;
use crate::oci::json::canonical;
use crate::oci::layer::LayerDigests;
use crate::oci::media;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// The OCI `platform` object of a descriptor (and the platform fields of an image config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Fields shipit does not model (`os.version`, `os.features`, `features`), kept as read.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl Platform {
    /// `linux`, `arm64`, `None` and so on.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
            extra: BTreeMap::new(),
        }
    }

    /// Parses `os/arch[/variant]`, e.g. `linux/arm/v7`.
    pub fn parse(s: &str) -> Option<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Some(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Some(Platform::new(os, arch, Some(v)))
            }
            _ => None,
        }
    }

    /// The variant with the implied defaults filled in: arm64 means v8, arm means v7.
    pub fn normalised_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("")) => Some("v8"),
            ("arm", None | Some("")) => Some("v7"),
            (_, Some("")) => None,
            (_, v) => v,
        }
    }

    /// True when the two name the same platform (os, architecture, normalised variant).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && self.normalised_variant() == other.normalised_variant()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// An OCI content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields shipit does not model (`urls`, `artifactType`, `data`), kept as read.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A plain descriptor: no platform, no annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }

    /// The value of one annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2), as read or written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields shipit does not model (`artifactType`, `subject`), kept as read.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

/// A base image to build on: its config as read (edited, never re-modelled) and its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    config: Value,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
}

impl Base {
    /// Checks that the config and the manifest agree (one diff_id per layer) and turns Docker
    /// layer media types into their OCI equivalents (the blobs are the same bytes).
    pub fn new(config: Value, manifest: &Manifest) -> Result<Base, ImageError> {
        let diff_ids = config_diff_ids(&config)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid(format!(
                "base image has {} layers in its manifest but {} rootfs.diff_ids in its config; \
                 the base image is corrupt, rebuild or re-pull it",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.media_type = oci_layer_media_type(&l.media_type).to_string();
                l
            })
            .collect();
        Ok(Base {
            config,
            layers,
            diff_ids,
        })
    }

    /// The base's layer descriptors (OCI media types).
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The base's config as read.
    pub fn config(&self) -> &Value {
        &self.config
    }
}

/// What shipit sets in the image config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageSpec {
    pub platform: Platform,
    /// `config.User`, e.g. `10001:10001`; `None` keeps the base's.
    pub user: Option<String>,
    /// `Some` replaces the base's entrypoint, and then the base's `Cmd` is dropped unless `cmd` is given.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Merged into the base's `Env`: base order first, ours replace equal keys, new keys follow in this order.
    pub env: Vec<(String, String)>,
    /// `8080` or `8080/tcp` or `53/udp`; merged with the base's.
    pub exposed_ports: Vec<String>,
    pub working_dir: Option<String>,
    /// Merged with the base's labels; ours win.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// SOURCE_DATE_EPOCH: the `created` time of the config and of our history entries.
    pub epoch: u64,
}

/// An image as written: the exact config and manifest bytes and their descriptors.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltImage {
    pub config_bytes: Vec<u8>,
    pub config: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    /// The manifest's descriptor, with `platform` set (ready for an index).
    pub descriptor: Descriptor,
}

/// Why an image could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image: {0}")]
    Invalid(String),
    #[error("image JSON is not of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
}

/// Builds the config and manifest of one platform image: `base` layers first, then `layers`.
pub fn build(
    base: Option<&Base>,
    layers: &[LayerDigests],
    spec: &ImageSpec,
) -> Result<BuiltImage, ImageError> {
    let invalid = |s: String| ImageError::Invalid(s);
    let mut config = match base {
        Some(b) => {
            let base_platform = config_platform(&b.config)?;
            if !base_platform.matches(&spec.platform) {
                return Err(invalid(format!(
                    "base image is {base_platform} but the image being built is {}; pick the base \
                     image for that platform",
                    spec.platform
                )));
            }
            b.config.clone()
        }
        None => json!({}),
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| invalid("base image config is not a JSON object".into()))?;
    let created = rfc3339(spec.epoch);
    obj.insert("architecture".into(), json!(spec.platform.architecture));
    obj.insert("os".into(), json!(spec.platform.os));
    match &spec.platform.variant {
        Some(v) => obj.insert("variant".into(), json!(v)),
        None => obj.remove("variant"),
    };
    obj.insert("created".into(), json!(created));

    let c = object_field(obj, "config")?;
    if let Some(user) = &spec.user {
        c.insert("User".into(), json!(user));
    }
    if let Some(ep) = &spec.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
        c.remove("Cmd");
    }
    if let Some(cmd) = &spec.cmd {
        c.insert("Cmd".into(), json!(cmd));
    }
    merge_env(c, &spec.env)?;
    if !spec.exposed_ports.is_empty() {
        let ports = object_field(c, "ExposedPorts")?;
        for p in &spec.exposed_ports {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            ports.insert(key, json!({}));
        }
    }
    if let Some(wd) = &spec.working_dir {
        c.insert("WorkingDir".into(), json!(wd));
    }
    if !spec.labels.is_empty() {
        let labels = object_field(c, "Labels")?;
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), json!(v));
        }
    }

    let mut diff_ids: Vec<Digest> = base.map(|b| b.diff_ids.clone()).unwrap_or_default();
    diff_ids.extend(layers.iter().map(|l| l.diff_id.clone()));
    obj.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let mut history = match obj.remove("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(h)) => h,
        Some(_) => return Err(invalid("base image config: history is not a list".into())),
    };
    history.extend(
        layers
            .iter()
            .map(|_| json!({"created": created, "created_by": "shipit"})),
    );
    obj.insert("history".into(), Value::Array(history));

    let config_bytes = canonical(&config)?;
    let config_desc = Descriptor::new(
        media::OCI_CONFIG,
        Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    let mut all_layers: Vec<Descriptor> = base.map(|b| b.layers.clone()).unwrap_or_default();
    all_layers.extend(
        layers
            .iter()
            .map(|l| Descriptor::new(media::OCI_LAYER_GZIP, l.digest.clone(), l.size)),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: config_desc.clone(),
        layers: all_layers,
        annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
        extra: BTreeMap::new(),
    };
    let manifest_bytes = canonical(&manifest)?;
    let mut descriptor = Descriptor::new(
        media::OCI_MANIFEST,
        Digest::of(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    descriptor.platform = Some(spec.platform.clone());
    Ok(BuiltImage {
        config_bytes,
        config: config_desc,
        manifest_bytes,
        manifest,
        descriptor,
    })
}

/// Parses an image manifest: OCI, or Docker schema 2.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ImageError> {
    let v: Value = serde_json::from_slice(bytes)?;
    let media_type = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST {
        return Err(ImageError::Invalid(format!(
            "expected an image manifest but found an index ({media_type}); select a platform first"
        )));
    }
    let m: Manifest = serde_json::from_value(v)?;
    if m.schema_version != 2 {
        return Err(ImageError::Invalid(format!(
            "manifest schemaVersion {} is not supported (expected 2; Docker schema 1 images must \
             be converted, e.g. with skopeo copy)",
            m.schema_version
        )));
    }
    match m.media_type.as_deref() {
        None | Some(media::OCI_MANIFEST) | Some(media::DOCKER_MANIFEST) => {}
        Some(other) => {
            return Err(ImageError::Invalid(format!(
                "media type {other:?} is not an image manifest"
            )));
        }
    }
    match m.config.media_type.as_str() {
        media::OCI_CONFIG | media::DOCKER_CONFIG => Ok(m),
        other => Err(ImageError::Invalid(format!(
            "manifest config has media type {other:?}, which is not an image config (an artifact?)"
        ))),
    }
}

/// Parses an image config (OCI or Docker) into a JSON object, kept whole.
pub fn parse_config(bytes: &[u8]) -> Result<Value, ImageError> {
    let v: Value = serde_json::from_slice(bytes)?;
    if !v.is_object() {
        return Err(ImageError::Invalid(
            "image config is not a JSON object".into(),
        ));
    }
    config_platform(&v)?;
    Ok(v)
}

/// The platform an image config declares (`os`, `architecture`, `variant`).
pub fn config_platform(config: &Value) -> Result<Platform, ImageError> {
    let field = |k: &str| config.get(k).and_then(Value::as_str);
    match (field("os"), field("architecture")) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform::new(os, arch, field("variant")))
        }
        _ => Err(ImageError::Invalid(
            "image config lacks os or architecture".into(),
        )),
    }
}

/// The config's `rootfs.diff_ids`, validated.
pub fn config_diff_ids(config: &Value) -> Result<Vec<Digest>, ImageError> {
    match config.pointer("/rootfs/diff_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(ids) => Ok(serde_json::from_value(ids.clone())
            .map_err(|e| ImageError::Invalid(format!("image config rootfs.diff_ids: {e}")))?),
    }
}

/// The OCI media type for a (possibly Docker) layer media type.
pub fn oci_layer_media_type(media_type: &str) -> &str {
    match media_type {
        media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        other => other,
    }
}

/// `created` timestamps: RFC 3339, UTC, seconds (`2023-11-14T22:13:20Z`).
pub fn rfc3339(epoch: u64) -> String {
    let secs = epoch % 86_400;
    let days = (epoch / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `obj[key]` as an object, created when missing or null (Docker writes `"Labels": null`).
fn object_field<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, ImageError> {
    let v = obj.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
        .ok_or_else(|| ImageError::Invalid(format!("image config field {key} is not an object")))
}

fn merge_env(c: &mut Map<String, Value>, ours: &[(String, String)]) -> Result<(), ImageError> {
    if ours.is_empty() {
        return Ok(());
    }
    let mut env: Vec<String> = match c.get("Env") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ImageError::Invalid(format!("image config Env is not a list of strings: {e}"))
        })?,
    };
    for (k, v) in ours {
        if k.is_empty() || k.contains('=') {
            return Err(ImageError::Invalid(format!(
                "environment variable name {k:?} is empty or contains '='"
            )));
        }
        let item = format!("{k}={v}");
        let prefix = format!("{k}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == k) {
            Some(slot) => *slot = item,
            None => env.push(item),
        }
    }
    c.insert("Env".into(), json!(env));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::layer::{self, Entry};

    fn ours() -> LayerDigests {
        layer::build(
            &[Entry::file("usr/local/bin/app", b"app".to_vec(), 0o755)],
            1_700_000_000,
        )
        .unwrap()
        .digests
    }

    fn spec(platform: &str) -> ImageSpec {
        ImageSpec {
            platform: Platform::parse(platform).unwrap(),
            user: Some("10001:10001".into()),
            entrypoint: Some(vec!["/usr/local/bin/app".into()]),
            env: vec![
                ("RUST_LOG".into(), "info".into()),
                ("PATH".into(), "/usr/local/bin:/bin".into()),
            ],
            exposed_ports: vec!["8080".into()],
            labels: [(
                "org.opencontainers.image.source".to_string(),
                "x".to_string(),
            )]
            .into(),
            epoch: 1_700_000_000,
            ..ImageSpec::default()
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn scratch_image_is_canonical_and_deterministic() {
        let a = build(None, &[ours()], &spec("linux/arm/v6")).unwrap();
        assert_eq!(a, build(None, &[ours()], &spec("linux/arm/v6")).unwrap());
        assert_eq!(a.config.digest, Digest::of(&a.config_bytes));
        assert_eq!(a.descriptor.digest, Digest::of(&a.manifest_bytes));
        assert_eq!(
            a.descriptor.platform.as_ref().unwrap().to_string(),
            "linux/arm/v6"
        );
        let cfg = String::from_utf8(a.config_bytes.clone()).unwrap();
        let diff_id = ours().diff_id;
        assert_eq!(
            cfg,
            format!(
                r#"{{"architecture":"arm","config":{{"Entrypoint":["/usr/local/bin/app"],"Env":["RUST_LOG=info","PATH=/usr/local/bin:/bin"],"ExposedPorts":{{"8080/tcp":{{}}}},"Labels":{{"org.opencontainers.image.source":"x"}},"User":"10001:10001"}},"created":"2023-11-14T22:13:20Z","history":[{{"created":"2023-11-14T22:13:20Z","created_by":"shipit"}}],"os":"linux","rootfs":{{"diff_ids":["{diff_id}"],"type":"layers"}},"variant":"v6"}}"#
            )
        );
        let m = String::from_utf8(a.manifest_bytes.clone()).unwrap();
        assert!(m.starts_with(r#"{"config":{"digest":"sha256:"#), "{m}");
        assert!(
            m.ends_with(
                r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#
            ),
            "{m}"
        );
        assert_eq!(parse_manifest(&a.manifest_bytes).unwrap(), a.manifest);
    }

    const DOCKER_BASE_CONFIG: &str = r#"{
      "architecture": "arm64", "variant": "v8", "os": "linux",
      "created": "2024-01-01T00:00:00.123456789Z",
      "container_config": {"Hostname": "abc"},
      "config": {"Env": ["PATH=/usr/sbin:/usr/bin", "LANG=C.UTF-8"], "Cmd": ["bash"],
                 "Labels": null, "ExposedPorts": null, "StopSignal": "SIGQUIT"},
      "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
      "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file"}]
    }"#;

    const DOCKER_BASE_MANIFEST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1000,
                 "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
      "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 29000000,
                  "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333"}]
    }"#;

    #[test]
    fn docker_base_is_kept_and_merged() {
        let manifest = parse_manifest(DOCKER_BASE_MANIFEST.as_bytes()).unwrap();
        let config = parse_config(DOCKER_BASE_CONFIG.as_bytes()).unwrap();
        let base = Base::new(config, &manifest).unwrap();
        let mut s = spec("linux/arm64");
        s.env = vec![
            ("PATH".into(), "/app:/usr/bin".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        let img = build(Some(&base), &[ours()], &s).unwrap();
        let cfg: Value = serde_json::from_slice(&img.config_bytes).unwrap();
        assert_eq!(
            cfg["config"]["Env"],
            json!(["PATH=/app:/usr/bin", "LANG=C.UTF-8", "RUST_LOG=info"])
        );
        assert_eq!(cfg["config"]["StopSignal"], "SIGQUIT");
        assert_eq!(
            cfg["config"]["Cmd"],
            Value::Null,
            "entrypoint set: base Cmd dropped"
        );
        assert_eq!(cfg["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(cfg["container_config"]["Hostname"], "abc");
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
        assert_eq!(cfg["architecture"], "arm64");
        assert_eq!(cfg["variant"], Value::Null, "our platform has no variant");
        let ids = config_diff_ids(&cfg).unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[0].hex().starts_with("1111"));
        assert_eq!(ids[1], ours().diff_id);
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["history"][1]["created_by"], "shipit");
        assert_eq!(img.manifest.layers.len(), 2);
        assert_eq!(img.manifest.layers[0].media_type, media::OCI_LAYER_GZIP);
        assert!(img.manifest.layers[0].digest.hex().starts_with("3333"));
        assert_eq!(img.manifest.layers[1].digest, ours().digest);

        // A base of another architecture is refused.
        let err = build(Some(&base), &[ours()], &spec("linux/amd64"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("base image is linux/arm64/v8"), "{err}");
    }

    #[test]
    fn refuses_what_is_not_an_image_manifest() {
        assert!(parse_manifest(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#).is_err());
        let bad = DOCKER_BASE_MANIFEST.replace("\"schemaVersion\": 2", "\"schemaVersion\": 1");
        assert!(parse_manifest(bad.as_bytes()).is_err());
        let mut m = parse_manifest(DOCKER_BASE_MANIFEST.as_bytes()).unwrap();
        m.layers.clear();
        let config = parse_config(DOCKER_BASE_CONFIG.as_bytes()).unwrap();
        assert!(
            Base::new(config, &m)
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }
}
