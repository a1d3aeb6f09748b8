//! Pulling a `REGISTRY/REPO[:TAG|@DIGEST]` image (every platform of an index) into a local OCI
//! layout over the registry API, so that `verify` reads registry images exactly like local ones.

use super::verify::Item;
use crate::error::{Context, Error, Result};
use crate::exec::Cancel;
use crate::oci::image::{self, Descriptor};
use crate::oci::index;
use crate::oci::layout::Layout;
use crate::oci::registry::credentials::Credentials;
use crate::oci::registry::{ClientOptions, MaskSink, Reference, RegistryClient};
use crate::ui::Ui;
use std::path::Path;

const MAX_JSON: u64 = 4 << 20;
const MAX_BLOB: u64 = 8 << 30;

/// Overrides the registry request deadline ([`ClientOptions::request_deadline`]), in seconds.
pub const DEADLINE_ENV: &str = "SHIPIT_REGISTRY_DEADLINE";

/// Client options for a registry: plain http only for loopback hosts or when insecure; the
/// request deadline from `SHIPIT_REGISTRY_DEADLINE` when set.
/// Under `--json` the client's `::add-mask::` lines go to stderr, so that stdout holds the JSON
/// document only.
pub fn client_options(reference: &Reference, insecure: bool, json: bool) -> Result<ClientOptions> {
    let mut opts = ClientOptions::default();
    if json {
        opts.mask_sink = MaskSink::Stderr;
    }
    let ca = std::env::var_os("SHIPIT_REGISTRY_CA_FILE").map(std::path::PathBuf::from);
    opts.plain_http = ca.is_none() && (reference.is_loopback() || insecure);
    opts.insecure = insecure;
    opts.ca_file = ca;
    if let Some(v) = std::env::var_os(DEADLINE_ENV) {
        let v = v.to_string_lossy();
        opts.request_deadline = v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.001 && *s <= 86_400.0)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                Error::config(format!(
                    "{DEADLINE_ENV}={v:?}: expected a number of seconds between 0.001 and 86400"
                ))
            })?;
    }
    Ok(opts)
}

pub fn client(
    reference: &Reference,
    insecure: bool,
    cancel: &Cancel,
    json: bool,
) -> Result<RegistryClient> {
    let creds = Credentials::resolve(
        &reference.registry,
        crate::oci::registry::credentials::HELPER_TIMEOUT,
        cancel,
    )
    .with_context(|| format!("credentials for {}", reference.registry))?;
    Ok(RegistryClient::new(
        reference,
        creds,
        client_options(reference, insecure, json)?,
        cancel,
    )?)
}

pub fn pull(spec: &str, dir: &Path, insecure: bool, cancel: &Cancel, ui: &Ui) -> Result<Vec<Item>> {
    let reference = Reference::parse(spec).context(spec)?;
    let client = client(&reference, insecure, cancel, ui.json)?;
    let layout = Layout::create(dir)?;
    ui.step(format!("pull {spec}"));
    let (bytes, media_type, digest) = client.get_manifest(&reference.tag_or_digest())?;
    let desc = layout.write_blob(&media_type, &bytes)?;
    if desc.digest != digest {
        return Err(Error::stage(format!(
            "{spec}: the registry's digest {digest} does not match the manifest bytes ({})",
            desc.digest
        )));
    }
    if index::is_index_media_type(&media_type) {
        let idx = index::parse(&bytes).context(spec)?;
        // The layout's limits apply before anything is fetched; each image is pulled once.
        let mut walk = crate::oci::layout::IndexWalk::default();
        walk.check_entries(&desc, &idx).context(spec)?;
        for m in &idx.manifests {
            if m.platform.as_ref().is_some_and(|p| p.os == "unknown") {
                continue;
            }
            if walk
                .image(m)
                .map_err(|e| Error::stage(format!("{spec}: {e}")))?
            {
                pull_image(&client, &layout, m)?;
            }
        }
    } else {
        pull_image(&client, &layout, &desc)?;
    }
    super::verify::items_from_descriptor(dir, spec, None, &desc)
}

fn pull_image(client: &RegistryClient, layout: &Layout, m: &Descriptor) -> Result<()> {
    let (bytes, media_type, _) = client.get_manifest(m.digest.as_str())?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(Error::stage(format!(
            "manifest {} is larger than 4 MiB",
            m.digest
        )));
    }
    layout.write_blob(&media_type, &bytes)?;
    let manifest = image::parse_manifest(&bytes).with_context(|| format!("{}", m.digest))?;
    for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        if layout.has_blob(&blob.digest) {
            continue;
        }
        let max = if blob.digest == manifest.config.digest {
            MAX_JSON
        } else {
            MAX_BLOB
        };
        client.get_blob(
            &blob.digest,
            &layout.blob_path(&blob.digest),
            max.min(blob.size),
        )?;
    }
    Ok(())
}

/// Pulls the image of `want`'s platform from a registry base reference into the user's cache
/// (`$XDG_CACHE_HOME/shipit/bases`, content-addressed: blobs already there are not fetched
/// again) and returns the cache layout and a ref naming exactly that image
/// (`<platform>-<manifest hex>`), so the base is used by digest.
pub fn pull_base(
    spec: &str,
    want: &crate::oci::index::Platform,
    insecure: bool,
    cancel: &Cancel,
    json: bool,
) -> Result<(std::path::PathBuf, Option<String>)> {
    let reference = Reference::parse(spec)?;
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("shipit/bases");
    let layout = Layout::create(&cache)?;
    let client = client(&reference, insecure, cancel, json)?;
    let (bytes, media_type, digest) = client.get_manifest(&reference.tag_or_digest())?;
    let manifest_desc = if index::is_index_media_type(&media_type) {
        let idx = index::parse(&bytes)?;
        idx.manifests
            .into_iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(want)))
            .ok_or_else(|| Error::config(format!("the image has no {want} platform")))?
    } else {
        Descriptor::new(&media_type, digest, bytes.len() as u64)
    };
    pull_image(&client, &layout, &manifest_desc)?;
    let tag = format!(
        "{}-{}",
        want.to_string().replace('/', "-"),
        manifest_desc.digest.hex()
    );
    let mut desc = manifest_desc.clone();
    desc.platform = Some(want.clone());
    layout.tag(&tag, &desc)?;
    Ok((cache, Some(tag)))
}
