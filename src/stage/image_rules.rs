//! The rules that decide an image's bytes, written once: both packagers (native and docker) and
//! `release --merge` call these, so a merged index is byte for byte the one a single-machine
//! release makes, and the two packagers write the same labels, annotations and users.

use crate::config::{Base, Config};
use crate::deb::rootfs::ImageUser;
use crate::oci::image::{self, Platform as OciPlatform};
use crate::plan::{ImagePlan, Plan, PlatformPlan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The OCI `platform` object of a planned platform (in the image config and the index).
pub fn oci_platform(p: &PlatformPlan) -> OciPlatform {
    OciPlatform::new(p.spec.os, p.spec.architecture, p.spec.variant)
}

/// The base image a platform image was made from: its name as the pipeline gives it and the
/// digest of the base's manifest for that platform. Recorded in `dist/package.json` and
/// `release.json` (`base` of each platform) for every non-scratch base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// `image.base` as written: a registry reference, `oci:PATH[:TAG]` or `deb:SUITE`.
    pub name: String,
    /// The base's manifest digest for this platform (for `deb:SUITE`, the base shipit
    /// assembled from the locked packages).
    pub digest: String,
}

const PREFIX: &str = "org.opencontainers.image.";

/// The standard annotations every index and platform manifest of a release carries, from
/// Cargo.toml, git and the epoch: `source`, `revision`, `created`, `version`, `licenses`,
/// `title` (the binary), `description` and `url` (each only when known).
fn standard(plan: &Plan) -> BTreeMap<String, String> {
    let meta = &plan.project.meta;
    let mut out = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            out.insert(format!("{PREFIX}{key}"), v);
        }
    };
    put("source", plan.project.source.clone());
    put("revision", plan.revision.clone());
    put(
        "created",
        Some(image::rfc3339(plan.source_date_epoch.max(0) as u64)),
    );
    put("version", Some(plan.version.to_string()));
    put("licenses", meta.license.as_deref().map(spdx_expression));
    put("title", Some(plan.project.bin.clone()));
    put("description", meta.description.clone());
    put("url", meta.homepage.clone());
    out
}

/// `base.name` and `base.digest` for a base that is an image anyone can pull or copy: a
/// registry reference or an `oci:` layout. A `deb:SUITE` base is assembled by shipit from
/// Debian packages and is no image with a reference, so it gets neither (its packages are in
/// the SBOM and `package.json`); scratch is no base.
fn base_annotations(img: &ImagePlan, base: Option<&BaseImage>, out: &mut BTreeMap<String, String>) {
    if matches!(img.base_ref, Base::Scratch | Base::Deb { .. }) {
        return;
    }
    out.insert(format!("{PREFIX}base.name"), img.base.clone());
    if let Some(b) = base {
        out.insert(format!("{PREFIX}base.digest"), b.digest.clone());
    }
}

/// The annotations of an image variant's multi-arch index: the standard ones, `base.name`
/// (the digest differs per platform, so it is on the manifests only), then `image.annotations`
/// without a scope or with `index:`.
pub fn index_annotations(cfg: &Config, plan: &Plan, img: &ImagePlan) -> BTreeMap<String, String> {
    let mut out = standard(plan);
    base_annotations(img, None, &mut out);
    for a in cfg.image.annotations.iter().filter(|a| a.scope.on_index()) {
        out.insert(a.key.clone(), a.value.clone());
    }
    out
}

/// The annotations of one platform manifest: the standard ones, `base.name` and `base.digest`,
/// then `image.annotations` without a scope or with `manifest:`. The image config's labels
/// carry the same keys (`image_labels`).
pub fn manifest_annotations(
    cfg: &Config,
    plan: &Plan,
    img: &ImagePlan,
    base: Option<&BaseImage>,
) -> BTreeMap<String, String> {
    let mut out = standard(plan);
    base_annotations(img, base, &mut out);
    for a in cfg
        .image
        .annotations
        .iter()
        .filter(|a| a.scope.on_manifest())
    {
        out.insert(a.key.clone(), a.value.clone());
    }
    out
}

/// The image config's labels: the pipeline's `image.labels`, then every annotation of the
/// platform manifest (`manifest_annotations`), so the two stay in step.
pub fn image_labels(
    cfg: &Config,
    manifest_annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = cfg.image.labels.iter().cloned().collect();
    labels.extend(
        manifest_annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    labels
}

/// Cargo's `license` as an SPDX expression: the deprecated `/` separator becomes ` OR `
/// (`MIT/Apache-2.0` → `MIT OR Apache-2.0`); an expression already in SPDX form is kept.
pub fn spdx_expression(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The base image of a platform read from a local OCI layout (an `oci:` base, a pulled
/// registry base, an assembled `deb:` base): the digest of the manifest selected for `want`.
pub fn layout_base(
    name: &str,
    layout: &std::path::Path,
    tag: Option<&str>,
    want: &OciPlatform,
) -> Option<BaseImage> {
    let from = crate::oci::layout::Layout::open(layout).ok()?;
    let selected = from.select_platform(tag, want).ok()?;
    Some(BaseImage {
        name: name.to_string(),
        digest: selected.descriptor.digest.to_string(),
    })
}

/// `UID[:GID]` from a validated `image.user`.
pub fn parse_user(user: &str) -> (u32, u32) {
    let mut it = user.split(':').map(|s| s.parse::<u32>().unwrap_or(0));
    let uid = it.next().unwrap_or(0);
    (uid, it.next().unwrap_or(uid))
}

/// The image user as the rootfs builder takes it: `app` with `image.user`'s ids (`None` for
/// root).
pub fn image_user(user: &str) -> Option<ImageUser> {
    let (uid, gid) = parse_user(user);
    (uid != 0).then(|| ImageUser {
        name: "app".into(),
        uid,
        gid,
    })
}

/// `/etc/passwd` and `/etc/group` for a base that has none: root, plus `app` for a non-root
/// `image.user`. The one builder is `deb::rootfs::passwd_group` (a `deb:` base gets the same
/// lines).
pub fn passwd_group(user: &str) -> (String, String) {
    crate::deb::rootfs::passwd_group(image_user(user).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_licenses_become_spdx_expressions() {
        assert_eq!(spdx_expression("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("MIT / Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("GPL-3.0-only"), "GPL-3.0-only");
    }

    #[test]
    fn passwd_and_group_for_root_and_for_app() {
        let (p, g) = passwd_group("0");
        assert_eq!(p, "root:x:0:0:root:/root:/sbin/nologin\n");
        assert_eq!(g, "root:x:0:\n");
        let (p, g) = passwd_group("65532:65532");
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532:app:/nonexistent:/sbin/nologin\n"
        );
        assert_eq!(g, "root:x:0:\napp:x:65532:\n");
        let (p, g) = passwd_group("1000:0");
        assert!(p.ends_with("app:x:1000:0:app:/nonexistent:/sbin/nologin\n"));
        assert_eq!(g, "root:x:0:\n");
        assert_eq!(parse_user("1000"), (1000, 1000));
    }
}
