//! OCI images, written and read by shipit itself.
//!
//! The split follows the data: a `layer` is a deterministic tar+gzip; an `image` is base layers +
//! our layer + a config + a manifest; an `index` is images in platform order; a `layout` is the
//! on-disk OCI image layout; `registry` speaks the distribution API; `unpack` turns an image back
//! into a rootfs, treating every byte as hostile; `fsafe` is the one way to open a file shipit
//! must not trust (regular files only, no links followed, no blocking, bounded).

pub mod digest;
pub mod fsafe;
pub mod image;
pub mod index;
pub mod json;
pub mod layer;
pub mod layer_cache;
pub mod layout;
pub mod pgzip;
pub mod registry;
pub mod unpack;

/// Media types shipit writes and accepts.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}
