//! The docker packager (`package: docker`): each platform image is built by dockerd's BuildKit
//! from a small generated Dockerfile (`FROM <base>`, `COPY` of the binary shipit built, user,
//! entrypoint, ports, env, labels) in a temporary build context, then exported with `docker save`
//! and imported into the same OCI layout the native packager writes, so verify and publish treat
//! both packagers alike: layers are gzipped deterministically and checked against the config's
//! `diff_ids`, the config is kept (with the platform variant added when docker left it out), and
//! an OCI manifest is written.
//!
//! Why `docker save` and not `--output type=oci`: dockerd's built-in BuildKit has no `oci`
//! exporter ("exporter \"oci\" could not be found" on 20.10), and buildx's default `docker`
//! driver refuses it too; `docker save` works with every daemon. An `oci:PATH[:TAG]` base is
//! loaded into the daemon first (`docker load` of a docker archive written from the layout, under
//! `shipit-base:<manifest hex>`, skipped when present): no image can be pulled here, and BuildKit
//! uses a local image of the requested platform. Registry bases are refused with a clear error.

use super::image_rules::{BaseImage, layout_base, manifest_annotations};
use crate::config::{Base, Config};
use crate::error::{Error, Result};
use crate::exec::{self, Cancel, Cmd};
use crate::oci::digest::{Digest, HashingReader, HashingWriter};
use crate::oci::image::{self, Descriptor, Manifest};
use crate::oci::json::canonical;
use crate::oci::layout::{Layout, MAX_JSON_BLOB};
use crate::oci::media;
use crate::plan::{ImagePlan, Plan, PlatformPlan};
use crate::tools::docker;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long one `docker build`, `save` or `load` may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Builds the image of platform `p` with docker and imports it into `layout`. Returns the
/// manifest's descriptor (platform set) and the image's compressed size (layers + config).
pub fn package_platform(
    cfg: &Config,
    plan: &Plan,
    img: &ImagePlan,
    p: &PlatformPlan,
    layout: &Layout,
    bases: &super::deb_base::DebBases,
    cancel: &Cancel,
) -> Result<(Descriptor, u64, Option<BaseImage>)> {
    let what = format!("{} ({})", p.platform, p.libc);
    if !p.binary.exists() {
        return Err(Error::stage(format!(
            "{what}: no binary at {}: run `shipit build` first (or `shipit release`)",
            p.binary.display()
        )));
    }
    let log = plan.out_dir.join("logs").join(format!(
        "package-docker-{}-{}.log",
        p.libc.name(),
        p.spec.slug()
    ));
    let _ = fs::remove_file(&log);
    let want = super::image_rules::oci_platform(p);
    let (base, base_image) = match &img.base_ref {
        Base::Scratch => ("scratch".to_string(), None),
        Base::Oci { path, tag } => (
            load_base(path, tag.as_deref(), &img.base, p, &log, cancel)?,
            layout_base(&img.base, path, tag.as_deref(), &want),
        ),
        Base::Deb { .. } => {
            let (path, tag) = bases.require(img, p)?;
            (
                load_base(&path, tag.as_deref(), &img.base, p, &log, cancel)?,
                layout_base(&img.base, &path, tag.as_deref(), &want),
            )
        }
        Base::Registry(r) => {
            return Err(Error::config(format!(
                "base `{r}`: the docker packager cannot pull from a registry here; use \
                 `oci:PATH[:TAG]` (a local OCI layout, e.g. from `skopeo copy`) or `scratch`"
            )));
        }
    };

    let work = tempfile::Builder::new()
        .prefix("shipit-docker-package-")
        .tempdir()
        .map_err(|e| Error::stage(format!("{what}: cannot create a temporary directory: {e}")))?;
    let context = work.path().join("context");
    let annotations = manifest_annotations(cfg, plan, img, base_image.as_ref());
    let dockerfile = write_context(cfg, plan, img, p, &base, &context, &annotations)
        .map_err(|e| Error::stage(format!("{what}: build context {}: {e}", context.display())))?;
    fs::write(context.join("Dockerfile"), dockerfile)
        .map_err(|e| Error::stage(format!("{what}: writing the Dockerfile: {e}")))?;

    let tag = temp_tag(&plan.project.bin, p);
    run(
        &docker::build_image(&context, p.platform, &tag),
        &log,
        cancel,
    )?;
    let archive = work.path().join("image.tar");
    let saved = run(&docker::save(&tag, &archive), &log, cancel);
    // The tag was only a handle for `docker save`; the image's layers stay cached in dockerd.
    let _ = exec::run_logged(
        &docker::remove_image(&tag),
        &log,
        Some(DOCKER_TIMEOUT),
        cancel,
    );
    saved?;
    let (desc, size) = import_archive(&archive, &work.path().join("saved"), layout, p, annotations)
        .map_err(|e| Error::stage(format!("{what}: importing `docker save` output: {e}")))?;
    Ok((desc, size, base_image))
}

fn run(cmd: &Cmd, log: &Path, cancel: &Cancel) -> Result<()> {
    exec::run_logged(cmd, log, Some(DOCKER_TIMEOUT), cancel)?;
    Ok(())
}

/// `shipit-pkg/<bin>:<libc>-<os>-<arch>[-<variant>]-<pid>`: a docker-valid, run-unique tag.
fn temp_tag(bin: &str, p: &PlatformPlan) -> String {
    let repo: String = bin
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "shipit-pkg/{}:{}-{}-{}",
        repo.trim_matches(|c: char| !c.is_ascii_alphanumeric()),
        p.libc.name(),
        p.spec.slug(),
        std::process::id()
    )
}

/// Writes the build context (binary, passwd/group for scratch, extra files) and returns the
/// Dockerfile text.
fn write_context(
    cfg: &Config,
    plan: &Plan,
    img: &ImagePlan,
    p: &PlatformPlan,
    base: &str,
    context: &Path,
    annotations: &BTreeMap<String, String>,
) -> io::Result<String> {
    fs::create_dir_all(context)?;
    let epoch = plan.source_date_epoch.max(0) as u64;
    let bin = &plan.project.bin;
    // `image.files` first, then the binary and (on scratch) passwd/group: the layer order the
    // native packager writes (each COPY is a layer, so the files' layers are the same blobs on
    // every platform and variant).
    let mut copies = Vec::new();
    for (i, f) in cfg.image.files.iter().enumerate() {
        let name = format!("file-{i}");
        put_file(&f.src, &context.join(&name), f.mode, epoch)?;
        copies.push((name, f.dest.clone()));
    }
    put_file(&p.binary, &context.join("bin"), 0o755, epoch)?;
    copies.push(("bin".to_string(), format!("/usr/local/bin/{bin}")));
    if base == "scratch" {
        let (passwd, group) = super::image_rules::passwd_group(&cfg.image.user);
        for (name, text) in [("passwd", passwd), ("group", group)] {
            let path = context.join(name);
            fs::write(&path, text)?;
            set_mode_and_time(&path, 0o644, epoch)?;
            copies.push((name.to_string(), format!("/etc/{name}")));
        }
    }
    let labels = super::image_rules::image_labels(cfg, annotations);
    Ok(dockerfile(&DockerfileSpec {
        base,
        copies: &copies,
        env: &cfg.image.env,
        labels: &labels,
        user: &cfg.image.user,
        workdir: cfg.image.workdir.as_deref(),
        ports: &cfg.image.ports,
        entrypoint: &img.entrypoint,
        cmd: &cfg.image.cmd,
    }))
}

fn put_file(src: &Path, dest: &Path, mode: u32, epoch: u64) -> io::Result<()> {
    fs::copy(src, dest).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
    set_mode_and_time(dest, mode, epoch)
}

/// COPY keeps a context file's mode and mtime: make both what the plan says.
fn set_mode_and_time(path: &Path, mode: u32, epoch: u64) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))
}

/// What the generated Dockerfile says.
struct DockerfileSpec<'a> {
    base: &'a str,
    /// (context file, absolute destination)
    copies: &'a [(String, String)],
    env: &'a [(String, String)],
    labels: &'a BTreeMap<String, String>,
    user: &'a str,
    workdir: Option<&'a str>,
    ports: &'a [u16],
    entrypoint: &'a [String],
    cmd: &'a [String],
}

/// A double-quoted Dockerfile word: JSON escapes, and `$` escaped so nothing is substituted.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string())
        .to_string()
        .replace('$', "\\$")
}

/// A JSON array (exec form of ENTRYPOINT and CMD).
fn exec_form(args: &[String]) -> String {
    serde_json::Value::from(args.to_vec()).to_string()
}

fn dockerfile(s: &DockerfileSpec) -> String {
    let mut out = String::from("# Generated by shipit's docker packager.\n");
    out.push_str(&format!("FROM {}\n", s.base));
    for (src, dest) in s.copies {
        out.push_str(&format!(
            "COPY {}\n",
            exec_form(&[src.clone(), dest.clone()])
        ));
    }
    for (k, v) in s.env {
        out.push_str(&format!("ENV {k}={}\n", quoted(v)));
    }
    for (k, v) in s.labels {
        out.push_str(&format!("LABEL {}={}\n", quoted(k), quoted(v)));
    }
    if let Some(w) = s.workdir {
        out.push_str(&format!("WORKDIR {}\n", quoted(w)));
    }
    for port in s.ports {
        out.push_str(&format!("EXPOSE {port}\n"));
    }
    out.push_str(&format!("USER {}\n", s.user));
    out.push_str(&format!("ENTRYPOINT {}\n", exec_form(s.entrypoint)));
    if !s.cmd.is_empty() {
        out.push_str(&format!("CMD {}\n", exec_form(s.cmd)));
    }
    out
}

// ---- bases: an OCI layout image loaded into dockerd ---------------------------------------

/// Makes the `oci:` base for `p` available to dockerd and returns its local name.
fn load_base(
    path: &Path,
    tag: Option<&str>,
    shown: &str,
    p: &PlatformPlan,
    log: &Path,
    cancel: &Cancel,
) -> Result<String> {
    let want = super::image_rules::oci_platform(p);
    // The pipeline's `image.base` layout: unreadable or without this platform is a config
    // error (exit 2), as in the native packager.
    let base_err =
        |e: &dyn std::fmt::Display| Error::config(format!("{} base {shown}: {e}", p.platform));
    let from = Layout::open(path).map_err(|e| base_err(&e))?;
    let selected = from.select_platform(tag, &want).map_err(|e| base_err(&e))?;
    let name = format!("shipit-base:{}", selected.descriptor.digest.hex());
    if exec::capture(&docker::image_id(&name), Duration::from_secs(60), cancel).is_ok() {
        return Ok(name);
    }
    let work = tempfile::Builder::new()
        .prefix("shipit-docker-base-")
        .tempdir()
        .map_err(|e| {
            Error::stage(format!(
                "base {shown}: cannot create a temporary directory: {e}"
            ))
        })?;
    let archive = work.path().join("base.tar");
    write_docker_archive(&from, &selected.manifest, &name, &archive).map_err(|e| {
        Error::stage(format!(
            "base {shown} for {}: writing a docker archive: {e}",
            p.platform
        ))
    })?;
    run(&docker::load(&archive), log, cancel)?;
    Ok(name)
}

/// Writes the image `manifest` of `from` as a docker archive (`manifest.json`, the config, the
/// layer blobs as they are: `docker load` decompresses gzip layers itself) named `name`.
fn write_docker_archive(
    from: &Layout,
    manifest: &Manifest,
    name: &str,
    out: &Path,
) -> io::Result<()> {
    let file = BufWriter::new(File::create(out)?);
    let mut tar = tar::Builder::new(file);
    let config_name = format!("{}.json", manifest.config.digest.hex());
    let mut layer_names = Vec::new();
    for l in &manifest.layers {
        if !(l.media_type.ends_with(".tar")
            || l.media_type.ends_with("tar+gzip")
            || l.media_type.ends_with("tar.gzip"))
        {
            return Err(io::Error::other(format!(
                "layer {} has media type {}, which dockerd cannot load (only tar and gzip layers)",
                l.digest, l.media_type
            )));
        }
        let n = format!("{}.tar", l.digest.hex());
        // Through the layout's safe open: a regular file inside the layout, never a FIFO.
        let blob = from.open_blob(l, u64::MAX).map_err(io::Error::other)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(blob.size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, &n, blob.file.take(blob.size))?;
        layer_names.push(n);
    }
    let config = from
        .read_blob(&manifest.config, MAX_JSON_BLOB)
        .map_err(io::Error::other)?;
    append_bytes(&mut tar, &config_name, &config)?;
    let index = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [name],
        "Layers": layer_names,
    }]);
    append_bytes(&mut tar, "manifest.json", index.to_string().as_bytes())?;
    tar.into_inner()?.flush()
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, bytes)
}

// ---- `docker save` output into the OCI layout ---------------------------------------------

/// Imports the one image of a `docker save` archive into `layout` as an OCI image for `p`.
fn import_archive(
    archive: &Path,
    dir: &Path,
    layout: &Layout,
    p: &PlatformPlan,
    annotations: BTreeMap<String, String>,
) -> std::result::Result<(Descriptor, u64), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    tar::Archive::new(BufReader::new(file))
        .unpack(dir)
        .map_err(|e| format!("unpacking {}: {e}", archive.display()))?;
    let inside = |rel: &str| -> std::result::Result<PathBuf, String> {
        let path = fs::canonicalize(dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        let root = fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if path.starts_with(&root) {
            Ok(path)
        } else {
            Err(format!("{rel} points outside the archive"))
        }
    };
    let list: Value = serde_json::from_slice(
        &fs::read(inside("manifest.json")?).map_err(|e| format!("manifest.json: {e}"))?,
    )
    .map_err(|e| format!("manifest.json: {e}"))?;
    let entry = match list.as_array().map(Vec::as_slice) {
        Some([one]) => one,
        _ => return Err("manifest.json does not describe exactly one image".into()),
    };
    let config_path = entry["Config"]
        .as_str()
        .ok_or("manifest.json has no Config")?;
    let config_bytes = fs::read(inside(config_path)?).map_err(|e| format!("{config_path}: {e}"))?;
    let mut config =
        image::parse_config(&config_bytes).map_err(|e| format!("{config_path}: {e}"))?;
    let want = super::image_rules::oci_platform(p);
    let actual = image::config_platform(&config).map_err(|e| e.to_string())?;
    if !actual.matches(&want) {
        return Err(format!(
            "docker built an image for {actual}, not {want}: the base has no {want} image loaded?"
        ));
    }
    let diff_ids = image::config_diff_ids(&config).map_err(|e| e.to_string())?;
    let layer_paths: Vec<&str> = entry["Layers"]
        .as_array()
        .ok_or("manifest.json has no Layers")?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or("manifest.json: a layer path is not a string")
        })
        .collect::<std::result::Result<_, _>>()?;
    if layer_paths.len() != diff_ids.len() {
        return Err(format!(
            "manifest.json lists {} layers but the config has {} diff_ids",
            layer_paths.len(),
            diff_ids.len()
        ));
    }
    let mut layers = Vec::new();
    for (rel, diff_id) in layer_paths.iter().zip(&diff_ids) {
        let src = inside(rel)?;
        let gz = dir.join(format!("{}.gz", diff_id.hex()));
        gzip_layer(&src, &gz, diff_id).map_err(|e| format!("layer {rel}: {e}"))?;
        let desc = layout
            .write_blob_from_file(media::OCI_LAYER_GZIP, &gz)
            .map_err(|e| e.to_string())?;
        let _ = fs::remove_file(&gz);
        layers.push(desc);
    }
    // Docker writes no `variant` for arm64; shipit's images carry the platform's variant.
    let config_bytes = match (want.variant.as_deref(), config.get("variant")) {
        (Some(v), None) => {
            if let Some(obj) = config.as_object_mut() {
                obj.insert("variant".into(), Value::String(v.to_string()));
            }
            canonical(&config).map_err(|e| e.to_string())?
        }
        _ => config_bytes,
    };
    let config_desc = layout
        .write_blob(media::OCI_CONFIG, &config_bytes)
        .map_err(|e| e.to_string())?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        config: config_desc.clone(),
        layers,
        annotations: (!annotations.is_empty()).then_some(annotations),
        extra: BTreeMap::new(),
    };
    let manifest_bytes = canonical(&manifest).map_err(|e| e.to_string())?;
    let mut desc = layout
        .write_blob(media::OCI_MANIFEST, &manifest_bytes)
        .map_err(|e| e.to_string())?;
    desc.platform = Some(want);
    let size = manifest.layers.iter().map(|l| l.size).sum::<u64>() + config_desc.size;
    Ok((desc, size))
}

/// Gzips a layer tar deterministically (no name, mtime 0) into `out`, checking that the
/// uncompressed bytes are `diff_id`. A layer that is gzipped already is checked and copied.
fn gzip_layer(src: &Path, out: &Path, diff_id: &Digest) -> io::Result<()> {
    let mut head = [0u8; 2];
    let already_gzip = {
        let mut f = File::open(src)?;
        f.read(&mut head)? == 2 && head == [0x1f, 0x8b]
    };
    let file = BufReader::new(File::open(src)?);
    let reader: Box<dyn Read> = if already_gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut plain = HashingReader::new(reader);
    if already_gzip {
        io::copy(&mut plain, &mut io::sink())?;
        fs::copy(src, out)?;
    } else {
        let w = HashingWriter::new(BufWriter::new(File::create(out)?));
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(w, flate2::Compression::default());
        io::copy(&mut plain, &mut gz)?;
        gz.finish()?.flush()?;
    }
    let (digest, _) = plain.finish();
    if &digest != diff_id {
        return Err(io::Error::other(format!(
            "its content is {digest}, but the image config says {diff_id}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_quotes_and_orders() {
        let labels: BTreeMap<String, String> = [("a.b".to_string(), "x \"y\"".to_string())].into();
        let text = dockerfile(&DockerfileSpec {
            base: "scratch",
            copies: &[("bin".into(), "/usr/local/bin/app".into())],
            env: &[("RUST_LOG".into(), "info $HOME".into())],
            labels: &labels,
            user: "10001:10001",
            workdir: None,
            ports: &[8080],
            entrypoint: &["/usr/local/bin/app".into()],
            cmd: &[],
        });
        assert_eq!(
            text,
            "# Generated by shipit's docker packager.\n\
             FROM scratch\n\
             COPY [\"bin\",\"/usr/local/bin/app\"]\n\
             ENV RUST_LOG=\"info \\$HOME\"\n\
             LABEL \"a.b\"=\"x \\\"y\\\"\"\n\
             EXPOSE 8080\n\
             USER 10001:10001\n\
             ENTRYPOINT [\"/usr/local/bin/app\"]\n"
        );
    }

    #[test]
    fn gzip_layer_checks_the_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("layer.tar");
        fs::write(&src, b"not really a tar, but bytes").unwrap();
        let good = Digest::of(b"not really a tar, but bytes");
        let out = dir.path().join("a.gz");
        gzip_layer(&src, &out, &good).unwrap();
        let again = dir.path().join("b.gz");
        gzip_layer(&src, &again, &good).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
        // Already gzipped: copied as is, still checked.
        let copied = dir.path().join("c.gz");
        gzip_layer(&out, &copied, &good).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&copied).unwrap());
        let bad = Digest::of(b"other");
        let err = gzip_layer(&src, &dir.path().join("d.gz"), &bad).unwrap_err();
        assert!(err.to_string().contains("image config says"), "{err}");
    }
}
