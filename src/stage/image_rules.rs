//! The rules that decide an image's bytes, written once: both packagers (native and docker) and
//! `release --merge` call these, so a merged index is byte for byte the one a single-machine
//! release makes, and the two packagers write the same labels and users.

use crate::config::Config;
use crate::deb::rootfs::ImageUser;
use crate::oci::image::{self, Platform as OciPlatform};
use crate::plan::{Plan, PlatformPlan};
use std::collections::BTreeMap;

/// The OCI `platform` object of a planned platform (in the image config and the index).
pub fn oci_platform(p: &PlatformPlan) -> OciPlatform {
    OciPlatform::new(p.spec.os, p.spec.architecture, p.spec.variant)
}

/// The annotations of every multi-arch index: the version and, when known, the revision.
pub fn index_annotations(plan: &Plan) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.version".to_string(),
        plan.version.to_string(),
    );
    if let Some(rev) = &plan.revision {
        annotations.insert("org.opencontainers.image.revision".to_string(), rev.clone());
    }
    annotations
}

/// The image labels: the pipeline's, then `org.opencontainers.image.{version,title,created,
/// revision}`.
pub fn image_labels(cfg: &Config, plan: &Plan, epoch: u64) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = cfg.image.labels.iter().cloned().collect();
    labels.insert(
        "org.opencontainers.image.version".into(),
        plan.version.to_string(),
    );
    labels.insert(
        "org.opencontainers.image.title".into(),
        plan.project.package.clone(),
    );
    labels.insert(
        "org.opencontainers.image.created".into(),
        image::rfc3339(epoch),
    );
    if let Some(rev) = &plan.revision {
        labels.insert("org.opencontainers.image.revision".into(), rev.clone());
    }
    labels
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
