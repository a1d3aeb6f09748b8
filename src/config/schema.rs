//! pipeline.yaml schema version 1: walks the positioned YAML tree section by section, checks
//! every key, fills in defaults and collects *every* problem (with line, column and a fix) before
//! giving up. The readers of single values live in `values.rs`.

use super::types::*;
use super::values::*;
pub use super::walker::Problem;
use super::walker::{Walker, list, suggest};
use super::yaml::{Key, Kind, Node, Pos};
use crate::platform::{Libc, Platform};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOP: &[&str] = &[
    "version",
    "project",
    "build",
    "platforms",
    "variants",
    "image",
    "package",
    "verify",
    "publish",
    "attest",
    "archives",
];
const PROJECT: &[&str] = &["manifest", "package", "bin", "version"];
const BUILD: &[&str] = &["backend", "profile", "features", "glibc", "packages"];
const VARIANT: &[&str] = &["base", "tag_suffix", "platforms"];
const IMAGE: &[&str] = &[
    "repository",
    "user",
    "entrypoint",
    "cmd",
    "workdir",
    "ports",
    "env",
    "labels",
    "annotations",
    "tags",
    "files",
    "packages",
];
const FILE: &[&str] = &["src", "dest", "mode"];
const VERIFY: &[&str] = &["cpu", "max_size", "allow_root", "checks"];
const CHECK: &[&str] = &[
    "name", "run", "stdout", "stderr", "exit", "timeout", "serve", "stop",
];
const SERVE: &[&str] = &["port", "path", "status", "timeout"];
const STOP: &[&str] = &["signal", "within"];
const PUBLISH: &[&str] = &["to", "insecure"];
const ATTEST: &[&str] = &["sbom", "provenance", "verification"];
/// A mapping whose keys were checked against a known list.
struct Fields<'n> {
    pos: Pos,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
}

/// A destination inside the image in one spelling: no empty or `.` components, no trailing `/`.
fn normal_dest(d: &str) -> String {
    let parts: Vec<&str> = d
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// What the image section is checked against from the other sections.
struct ImageContext {
    /// The explicit project version as a tag writes it (`+` as `_`), if the config gives one.
    version: Option<String>,
    /// `project.bin`, if given: the default entrypoint is `/usr/local/bin/<bin>`.
    bin: Option<String>,
    /// The longest variant tag_suffix.
    longest_suffix: String,
}

/// Validates the whole document; `Err` holds every problem found.
pub fn validate(doc: &Node, file: &Path, root: &Path) -> Result<Config, Vec<Problem>> {
    let mut w = Walker {
        root,
        problems: Vec::new(),
    };
    find_secrets(doc, &mut w.problems);
    let cfg = w.top(doc, file);
    if w.problems.is_empty() {
        cfg.ok_or_else(Vec::new)
    } else {
        w.problems.sort_by_key(|p| p.pos);
        w.problems.dedup();
        Err(w.problems)
    }
}

fn find_secrets(n: &Node, out: &mut Vec<Problem>) {
    match &n.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                let lower = k.name.to_ascii_lowercase();
                if lower.contains("password") || lower == "passwd" {
                    out.push(Problem {
                        pos: k.pos,
                        message: format!("`{}`: secrets never live in the pipeline file", k.name),
                        hint: Some(
                            "remove it; give registry credentials through SHIPIT_REGISTRY_USER and \
                             SHIPIT_REGISTRY_PASSWORD, `--password-stdin` or `docker login`"
                                .into(),
                        ),
                    });
                }
                find_secrets(v, out);
            }
        }
        Kind::Seq(items) => items.iter().for_each(|i| find_secrets(i, out)),
        Kind::Scalar { .. } => {}
    }
}

impl Walker<'_> {
    fn fields<'n>(&mut self, n: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
        let Kind::Map(entries) = &n.kind else {
            self.err(
                n.pos,
                format!("{what} must be a mapping, found {}", n.kind_name()),
                format!("expected keys: {}", list(known)),
            );
            return None;
        };
        for (k, _) in entries {
            // `password` keys already have their own error (find_secrets).
            if !known.contains(&k.name.as_str())
                && !k.name.to_ascii_lowercase().contains("password")
            {
                let hint = match suggest(&k.name, known) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys here: {}", list(known)),
                };
                self.err(k.pos, format!("unknown key `{}` in {what}", k.name), hint);
            }
        }
        Some(Fields {
            pos: n.pos,
            entries,
        })
    }

    fn top(&mut self, doc: &Node, file: &Path) -> Option<Config> {
        let f = self.fields(doc, "the pipeline", TOP)?;
        match f.get("version") {
            None => self.err(
                f.pos,
                "missing `version`",
                Some("add `version: 1` at the top (the schema version)".to_string()),
            ),
            Some(v) => match &v.kind {
                Kind::Scalar {
                    text,
                    quoted: false,
                } if text == "1" => {}
                _ => self.err(
                    v.pos,
                    "version: this shipit reads pipeline schema version 1 only",
                    Some(
                        "write `version: 1` (the schema version, not your project's version)"
                            .to_string(),
                    ),
                ),
            },
        }
        let project = self.project(f.get("project"));
        if let Some(p) = &project {
            // `cargo metadata` reads the manifest: a FIFO there would block it. A missing
            // manifest is left to cargo, which says so.
            let at = f
                .get("project")
                .and_then(|n| match &n.kind {
                    Kind::Map(e) => e.iter().find(|(k, _)| k.name == "manifest").map(|(_, v)| v),
                    _ => None,
                })
                .map_or(f.pos, |n| n.pos);
            if let Err(super::files::FileError::NotRegular(kind)) =
                super::files::open_regular(&p.manifest)
            {
                self.err(
                    at,
                    format!(
                        "project.manifest: {} is a {kind}, not a regular file",
                        p.manifest.display()
                    ),
                    Some("point project.manifest at the package's Cargo.toml".into()),
                );
            }
        }
        let build = self.build(f.get("build"));
        let platforms = match f.get("platforms") {
            Some(n) => self.platforms(n, "platforms"),
            None => Some(
                crate::platform::PLATFORMS
                    .iter()
                    .filter(|p| !p.optional)
                    .collect(),
            ),
        };
        let variants = self.variants(f.get("variants"), platforms.as_deref());
        let image = self.image(
            f.get("image"),
            f.pos,
            &ImageContext {
                version: match project.as_ref().map(|p| &p.version) {
                    Some(VersionSource::Explicit(v)) => Some(v.to_string().replace('+', "_")),
                    _ => None,
                },
                bin: project.as_ref().and_then(|p| p.bin.clone()),
                longest_suffix: variants
                    .iter()
                    .flatten()
                    .map(|v| v.tag_suffix.clone())
                    .max_by_key(String::len)
                    .unwrap_or_default(),
            },
        );
        if let (Some(img), Some(vs)) = (&image, &variants)
            && !img.packages.is_empty()
            && !vs.iter().any(|v| matches!(v.base, Base::Deb { .. }))
        {
            let at = f
                .get("image")
                .and_then(|n| match &n.kind {
                    Kind::Map(e) => e
                        .iter()
                        .find(|(k, _)| k.name == "packages")
                        .map(|(k, _)| k.pos),
                    _ => None,
                })
                .unwrap_or(f.pos);
            self.err(
                at,
                "image.packages: Debian packages need a Debian base, and no variant has one",
                Some("set a variant's base to deb:bookworm (or deb:bullseye, deb:trixie), e.g. `gnu: { base: \"deb:bookworm\" }`".into()),
            );
        }
        let package = match f.get("package") {
            None => Some(Packager::Native),
            Some(n) => match self.string(n, "package").as_deref() {
                Some("native") => Some(Packager::Native),
                Some("docker") => Some(Packager::Docker),
                Some(other) => {
                    self.err(
                        n.pos,
                        format!("package: unknown packager `{other}`"),
                        Some("use `native` (default, daemonless) or `docker`".into()),
                    );
                    None
                }
                None => None,
            },
        };
        let verify = self.verify(f.get("verify"));
        let publish = self.publish(f.get("publish"));
        let attest = self.attest(f.get("attest"));
        let archives = match f.get("archives") {
            None => Some(true),
            Some(n) => self.bool(n, "archives"),
        };
        Some(Config {
            file: file.to_path_buf(),
            root: self.root.to_path_buf(),
            project: project?,
            build: build?,
            platforms: platforms?,
            variants: variants?,
            image: image?,
            package: package?,
            verify: verify?,
            publish: publish?,
            attest: attest?,
            archives: archives?,
        })
    }

    fn project(&mut self, n: Option<&Node>) -> Option<Project> {
        let mut p = Project {
            manifest: self.root.join("Cargo.toml"),
            package: None,
            bin: None,
            version: VersionSource::Cargo,
        };
        let Some(n) = n else { return Some(p) };
        let f = self.fields(n, "project", PROJECT)?;
        let mut ok = true;
        if let Some(m) = f.get("manifest") {
            match self.string(m, "project.manifest") {
                Some(s) => match self.path(m, &s, "project.manifest") {
                    Some(path) => p.manifest = path,
                    None => ok = false,
                },
                None => ok = false,
            }
        }
        p.package = f
            .get("package")
            .and_then(|n| self.string(n, "project.package"));
        p.bin = f.get("bin").and_then(|n| self.string(n, "project.bin"));
        if let Some(v) = f.get("version") {
            match self.string(v, "project.version").as_deref() {
                Some("cargo") => p.version = VersionSource::Cargo,
                Some("git-tag") => p.version = VersionSource::GitTag,
                Some(s) => match semver::Version::parse(s.strip_prefix('v').unwrap_or(s)) {
                    Ok(ver) => p.version = VersionSource::Explicit(ver),
                    Err(e) => {
                        self.err(
                            v.pos,
                            format!("project.version: `{s}` is not `cargo`, `git-tag` or a semantic version ({e})"),
                            Some("write a full version like 1.4.0 or 1.4.0-rc.1 (quote it)".into()),
                        );
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        ok.then_some(p)
    }

    fn build(&mut self, n: Option<&Node>) -> Option<Build> {
        let mut b = Build {
            backend: Backend::Auto,
            profile: "release".into(),
            features: Vec::new(),
            glibc: None,
            packages: Vec::new(),
        };
        let Some(n) = n else { return Some(b) };
        let f = self.fields(n, "build", BUILD)?;
        let mut ok = true;
        if let Some(v) = f.get("backend") {
            match self.string(v, "build.backend") {
                Some(s) => match Backend::parse(&s) {
                    Some(be) => b.backend = be,
                    None => {
                        let hint = match suggest(&s, &Backend::NAMES) {
                            Some(k) => format!("did you mean `{k}`?"),
                            None => format!("one of: {}", list(&Backend::NAMES)),
                        };
                        self.err(v.pos, format!("build.backend: unknown backend `{s}`"), hint);
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        if let Some(v) = f.get("profile") {
            match self.string(v, "build.profile") {
                Some(s)
                    if !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    b.profile = s
                }
                Some(s) => {
                    self.err(
                        v.pos,
                        format!("build.profile: `{s}` is not a Cargo profile name"),
                        None,
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(v) = f.get("features") {
            match self.strings(v, "build.features") {
                Some(list) => b.features = list,
                None => ok = false,
            }
        }
        if let Some(v) = f.get("packages") {
            match self.deb_packages(v, "build.packages") {
                Some(list) => b.packages = list,
                None => ok = false,
            }
        }
        if let Some(v) = f.get("glibc") {
            match self.string(v, "build.glibc") {
                Some(s) => match parse_glibc(&s) {
                    Some(g) => b.glibc = Some(g),
                    None => {
                        self.err(
                            v.pos,
                            format!("build.glibc: `{s}` is not a glibc version"),
                            Some("write major.minor in quotes, e.g. \"2.31\" (Debian bullseye) or \"2.36\" (bookworm)".into()),
                        );
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        ok.then_some(b)
    }

    fn variants(
        &mut self,
        n: Option<&Node>,
        platforms: Option<&[&'static Platform]>,
    ) -> Option<Vec<Variant>> {
        let all = platforms.unwrap_or(&[]);
        let Some(n) = n else {
            return Some(vec![Variant {
                libc: Libc::Musl,
                base: Base::Scratch,
                tag_suffix: String::new(),
                platforms: all.to_vec(),
            }]);
        };
        let Kind::Map(entries) = &n.kind else {
            self.err(
                n.pos,
                "variants must be a mapping from a libc (gnu, musl) to its settings",
                Some("e.g. `musl: { base: scratch }`".to_string()),
            );
            return None;
        };
        if entries.is_empty() {
            self.err(n.pos, "variants is empty: there is no image to make", None);
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let Some(libc) = Libc::parse(&k.name) else {
                let hint = match suggest(&k.name, &["gnu", "musl"]) {
                    Some(s) => {
                        format!("did you mean `{s}`? the libc variants are `gnu` and `musl`")
                    }
                    None => "the libc variants are `gnu` and `musl`".into(),
                };
                self.err(k.pos, format!("variants: unknown libc `{}`", k.name), hint);
                ok = false;
                continue;
            };
            let what = format!("variants.{}", k.name);
            let Some(f) = (if v.is_null() {
                Some(Fields {
                    pos: v.pos,
                    entries: &[],
                })
            } else {
                self.fields(v, &what, VARIANT)
            }) else {
                ok = false;
                continue;
            };
            let base = match f.get("base") {
                None => Some(Base::Scratch),
                Some(b) => self.base(b, &format!("{what}.base")),
            };
            let tag_suffix = match f.get("tag_suffix") {
                None => Some(String::new()),
                Some(t) => self.string(t, &format!("{what}.tag_suffix")).and_then(|s| {
                    if s.is_empty()
                        || s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        Some(s)
                    } else {
                        self.err(
                            t.pos,
                            format!("{what}.tag_suffix: `{s}` cannot be part of a tag"),
                            Some("use letters, digits, `.`, `_` and `-`".into()),
                        );
                        None
                    }
                }),
            };
            let plats = match f.get("platforms") {
                None => Some(all.to_vec()),
                Some(pn) => {
                    let listed = self.platforms(pn, &format!("{what}.platforms"));
                    let Kind::Seq(items) = &pn.kind else {
                        unreachable_seq()
                    };
                    if let Some(listed) = &listed {
                        for (p, item) in listed.iter().zip(items) {
                            if platforms.is_some() && !all.contains(p) {
                                self.err(
                                    item.pos,
                                    format!("{what}.platforms: `{}` is not in the top-level `platforms`", p.name),
                                    Some("add it to `platforms` or remove it here".to_string()),
                                );
                            }
                        }
                    }
                    // keep the order of the top-level list
                    listed.map(|l| all.iter().copied().filter(|p| l.contains(p)).collect())
                }
            };
            if let (Some(Base::Deb { suite }), Some(plats), Some(b)) =
                (&base, &plats, f.get("base"))
                && let Some((p, why)) = plats
                    .iter()
                    .find_map(|p| crate::deb::names::no_debian_arch(p).map(|w| (p, w)))
            {
                self.err(
                    b.pos,
                    format!(
                        "{what}.base: deb:{suite} cannot hold {0}: {0} has no Debian architecture: {why}",
                        p.name
                    ),
                    Some(format!(
                        "give {what} a `platforms:` list without {}, or add a musl variant on scratch for it",
                        p.name
                    )),
                );
                ok = false;
            }
            match (base, tag_suffix, plats) {
                (Some(base), Some(tag_suffix), Some(platforms)) => out.push(Variant {
                    libc,
                    base,
                    tag_suffix,
                    platforms,
                }),
                _ => ok = false,
            }
        }
        let suffixes: Vec<&str> = out.iter().map(|v| v.tag_suffix.as_str()).collect();
        if out.len() == 2 && suffixes[0] == suffixes[1] {
            self.err(
                n.pos,
                "both variants have the same tag_suffix: their tags would collide",
                Some(
                    "give one of them a suffix, e.g. `musl: { tag_suffix: \"-musl\" }`".to_string(),
                ),
            );
            ok = false;
        }
        ok.then_some(out)
    }

    fn image(&mut self, n: Option<&Node>, top: Pos, ctx: &ImageContext) -> Option<Image> {
        let Some(n) = n else {
            self.err(
                top,
                "missing `image`",
                Some("add `image: { repository: ghcr.io/OWNER/NAME }`".to_string()),
            );
            return None;
        };
        let f = self.fields(n, "image", IMAGE)?;
        let mut ok = true;
        let repository = match f.get("repository") {
            None => {
                self.err(f.pos, "image.repository is missing", Some("e.g. `repository: ghcr.io/acme/hello-server`".to_string()));
                None
            }
            Some(r) => self.string(r, "image.repository").and_then(|s| {
                if valid_repository(&s) {
                    Some(s)
                } else {
                    self.err(r.pos, format!("image.repository: `{s}` is not a valid repository"), Some("use lowercase letters, digits and . _ - / (e.g. ghcr.io/acme/app), without tag or digest".into()));
                    None
                }
            }),
        };
        let user = match f.get("user") {
            None => Some("10001:10001".to_string()),
            Some(u) => self.string(u, "image.user").and_then(|s| {
                if valid_user(&s) {
                    Some(s)
                } else {
                    self.err(u.pos, format!("image.user: `{s}` is not `UID[:GID]`"), Some("use numbers up to 4294967295, e.g. \"10001:10001\"; \"0:0\" (root) must be asked for explicitly with verify.allow_root".into()));
                    None
                }
            }),
        };
        let entrypoint = match f.get("entrypoint") {
            None => Some(None),
            Some(e) => self.strings(e, "image.entrypoint").map(Some),
        };
        let cmd = match f.get("cmd") {
            None => Some(Vec::new()),
            Some(c) => self.strings(c, "image.cmd"),
        };
        let workdir = f.get("workdir").map(|w| {
            self.string(w, "image.workdir").filter(|s| {
                let absolute = s.starts_with('/');
                if !absolute {
                    self.err(
                        w.pos,
                        format!("image.workdir: `{s}` is not an absolute path"),
                        Some(format!("write it from the image's root, e.g. /{s}")),
                    );
                }
                absolute
            })
        });
        let ports = match f.get("ports") {
            None => Some(Vec::new()),
            Some(p) => match &p.kind {
                Kind::Seq(items) => {
                    let v: Vec<Option<u16>> = items
                        .iter()
                        .map(|i| self.int(i, "image.ports", 1, 65535).map(|x| x as u16))
                        .collect();
                    v.into_iter().collect()
                }
                _ => {
                    self.err(p.pos, "image.ports must be a list of port numbers", None);
                    None
                }
            },
        };
        let env = match f.get("env") {
            None => Some(Vec::new()),
            Some(e) => self
                .string_map(e, "image.env")
                .filter(|_| self.env_names(e)),
        };
        let labels = match f.get("labels") {
            None => Some(Vec::new()),
            Some(l) => self.string_map(l, "image.labels"),
        };
        let annotations = match f.get("annotations") {
            None => Some(Vec::new()),
            Some(a) => self.annotations(a),
        };
        let tags = match f.get("tags") {
            None => Some(vec!["{version}".to_string(), "latest".to_string()]),
            Some(t) => {
                let list = self.strings(t, "image.tags");
                if let (Some(list), Kind::Seq(items)) = (&list, &t.kind) {
                    if list.is_empty() {
                        self.err(
                            t.pos,
                            "image.tags is empty: nothing would be tagged",
                            Some("e.g. [\"{version}\", latest]".to_string()),
                        );
                        ok = false;
                    }
                    for (tpl, item) in list.iter().zip(items) {
                        let longest =
                            worst_case_tag_len(tpl, ctx.version.as_deref(), &ctx.longest_suffix);
                        if check_template(tpl).is_ok() && longest > MAX_TAG_LEN {
                            self.err(
                                item.pos,
                                format!(
                                    "image.tags: `{tpl}` can make a tag of {longest} characters; a tag is at most {MAX_TAG_LEN}"
                                ),
                                Some(format!(
                                    "counted with the longest values: {{version}} {}, {{major}}/{{minor}}/{{patch}} 20 digits, {{sha}} and {{sha_long}} 64, {{pr}} 20, {{branch}} cut to fit, plus the longest tag_suffix; shorten the template",
                                    match &ctx.version {
                                        Some(v) => format!("`{v}`"),
                                        None => "62 characters".to_string(),
                                    }
                                )),
                            );
                            ok = false;
                        }
                        if let Err(e) = check_template(tpl) {
                            self.err(
                                item.pos,
                                format!("image.tags: {e}"),
                                Some(format!(
                                    "placeholders: {}",
                                    PLACEHOLDERS
                                        .iter()
                                        .map(|p| format!("{{{p}}}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )),
                            );
                            ok = false;
                        }
                    }
                }
                list
            }
        };
        let files = match f.get("files") {
            None => Some(Vec::new()),
            Some(fl) => {
                let entry = match &entrypoint {
                    Some(Some(e)) => e.first().cloned(),
                    _ => ctx.bin.as_ref().map(|b| format!("/usr/local/bin/{b}")),
                };
                self.files(fl, entry.as_deref())
            }
        };
        let packages = match f.get("packages") {
            None => Some(Vec::new()),
            Some(p) => self.deb_packages(p, "image.packages"),
        };
        if workdir.as_ref().is_some_and(|w| w.is_none()) {
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(Image {
            repository: repository?,
            user: user?,
            entrypoint: entrypoint?,
            cmd: cmd?,
            workdir: workdir.flatten(),
            ports: ports?,
            env: env?,
            labels: labels?,
            annotations: annotations?,
            tags: tags?,
            files: files?,
            packages: packages?,
        })
    }

    /// `image.annotations`: a mapping of `[index:|manifest:]KEY` to a string; a key is
    /// non-empty, without whitespace or control characters, and a scope prefix is one of the two.
    fn annotations(&mut self, n: &Node) -> Option<Vec<Annotation>> {
        let Kind::Map(entries) = &n.kind else {
            self.err(
                n.pos,
                "image.annotations must be a mapping of annotation keys to strings",
                Some("e.g. `org.opencontainers.image.vendor: Acme`, or `index:KEY` / `manifest:KEY` for one of the two".into()),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let (scope, key) = match k.name.split_once(':') {
                Some(("index", key)) => (AnnotationScope::Index, key),
                Some(("manifest", key)) => (AnnotationScope::Manifest, key),
                Some((prefix, _)) if !prefix.contains('.') => {
                    self.err(
                        k.pos,
                        format!("image.annotations: `{prefix}:` is not a scope"),
                        Some("prefix a key with `index:` (the multi-arch index only) or `manifest:` (each platform manifest and its labels only), or with nothing (both)".into()),
                    );
                    ok = false;
                    continue;
                }
                _ => (AnnotationScope::Both, k.name.as_str()),
            };
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(
                    k.pos,
                    format!("image.annotations: `{}` is not an annotation key", k.name),
                    Some("use a reverse-domain key without spaces, e.g. org.opencontainers.image.vendor".into()),
                );
                ok = false;
                continue;
            }
            match self.string(v, &format!("image.annotations.{}", k.name)) {
                Some(value) => out.push(Annotation {
                    scope,
                    key: key.to_string(),
                    value,
                }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Names in `image.env` must be non-empty and hold no `=` (or NUL).
    fn env_names(&mut self, n: &Node) -> bool {
        let Kind::Map(entries) = &n.kind else {
            return false;
        };
        let mut ok = true;
        for (k, _) in entries {
            if k.name.is_empty() || k.name.contains(['=', '\0']) {
                self.err(
                    k.pos,
                    format!(
                        "image.env: `{}` is not a variable name (empty, or holds `=`)",
                        k.name
                    ),
                    Some("use a name like RUST_LOG; the value goes after the colon".into()),
                );
                ok = false;
            }
        }
        ok
    }

    fn files(&mut self, n: &Node, entrypoint: Option<&str>) -> Option<Vec<ExtraFile>> {
        let Kind::Seq(items) = &n.kind else {
            self.err(
                n.pos,
                "image.files must be a list of { src, dest, mode }",
                None,
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        let mut dests: Vec<String> = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "image.files entry", FILE) else {
                ok = false;
                continue;
            };
            let src = f.get("src").and_then(|s| {
                let t = self.string(s, "image.files.src")?;
                let path = self.path(s, &t, "image.files.src")?;
                self.project_file(s, &t, &path)
            });
            let dest = f.get("dest").and_then(|d| {
                let t = self.string(d, "image.files.dest")?;
                if !t.starts_with('/') || t.split('/').any(|c| c == "..") {
                    self.err(d.pos, format!("image.files.dest: `{t}` must be an absolute path inside the image without `..`"), None);
                    return None;
                }
                let normal = normal_dest(&t);
                if normal == "/" {
                    self.err(
                        d.pos,
                        format!("image.files.dest: `{t}` is the image's root directory"),
                        Some("name the file, e.g. /etc/app.toml".into()),
                    );
                    return None;
                }
                if entrypoint.is_some_and(|e| normal_dest(e) == normal) {
                    self.err(
                        d.pos,
                        format!("image.files.dest: `{t}` is the entrypoint; this file would replace the binary"),
                        Some("put the file somewhere else, or change image.entrypoint".into()),
                    );
                    return None;
                }
                if dests.contains(&normal) {
                    self.err(
                        d.pos,
                        format!("image.files.dest: `{t}` is the destination of an earlier entry too"),
                        Some("give each file its own destination".into()),
                    );
                    return None;
                }
                dests.push(normal);
                Some(t)
            });
            let mode =
                match f.get("mode") {
                    None => Some(0o644),
                    Some(m) => self.string(m, "image.files.mode").and_then(|t| {
                        match u32::from_str_radix(t.trim_start_matches("0o"), 8) {
                            Ok(v) if v <= 0o777 => Some(v),
                            _ => {
                                self.err(
                                    m.pos,
                                    format!(
                                        "image.files.mode: `{t}` is not an octal mode like \"0755\""
                                    ),
                                    None,
                                );
                                None
                            }
                        }
                    }),
                };
            if f.get("src").is_none() || f.get("dest").is_none() {
                self.err(f.pos, "image.files entry needs both `src` and `dest`", None);
            }
            match (src, dest, mode) {
                (Some(src), Some(dest), Some(mode)) => out.push(ExtraFile { src, dest, mode }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An `image.files` source: resolved through every symbolic link, it must stay inside the
    /// project directory and be a regular file (not a directory, FIFO or device). Returns the
    /// resolved path, which the packagers then read.
    fn project_file(&mut self, n: &Node, text: &str, path: &Path) -> Option<PathBuf> {
        let resolved = match std::fs::canonicalize(path) {
            Ok(r) => r,
            Err(e) => {
                self.err(
                    n.pos,
                    format!("image.files.src: cannot read `{text}`: {e}"),
                    Some("paths are relative to the directory of the pipeline file".into()),
                );
                return None;
            }
        };
        let root = std::fs::canonicalize(self.root).unwrap_or_else(|_| self.root.to_path_buf());
        if !resolved.starts_with(&root) {
            self.err(
                n.pos,
                format!(
                    "image.files.src: `{text}` resolves to {}, outside the project directory",
                    resolved.display()
                ),
                Some(
                    "copy the file into the project; shipit bakes only project files into images"
                        .into(),
                ),
            );
            return None;
        }
        match super::files::open_regular(&resolved) {
            Ok(_) => Some(resolved),
            Err(e) => {
                self.err(
                    n.pos,
                    format!("image.files.src: `{text}`: {e}"),
                    Some("list each file on its own; a directory, FIFO or device cannot be copied into the image".into()),
                );
                None
            }
        }
    }

    fn verify(&mut self, n: Option<&Node>) -> Option<Verify> {
        let mut v = Verify {
            cpu: CpuMode::Strict,
            max_size: None,
            allow_root: false,
            checks: Vec::new(),
        };
        let Some(n) = n else { return Some(v) };
        let f = self.fields(n, "verify", VERIFY)?;
        let mut ok = true;
        if let Some(c) = f.get("cpu") {
            match self.string(c, "verify.cpu").as_deref() {
                Some("strict") => v.cpu = CpuMode::Strict,
                Some("max") => v.cpu = CpuMode::Max,
                Some(other) => {
                    self.err(
                        c.pos,
                        format!("verify.cpu: unknown mode `{other}`"),
                        Some("use `strict` (the oldest CPU of each platform) or `max`".into()),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(m) = f.get("max_size") {
            match self
                .string(m, "verify.max_size")
                .map(|s| (parse_size(&s), s))
            {
                Some((Some(sz), _)) => v.max_size = Some(sz),
                Some((None, s)) => {
                    self.err(
                        m.pos,
                        format!("verify.max_size: `{s}` is not a size"),
                        Some("write it like 64MiB, 500KB or a number of bytes".into()),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(a) = f.get("allow_root") {
            match self.bool(a, "verify.allow_root") {
                Some(b) => v.allow_root = b,
                None => ok = false,
            }
        }
        if let Some(c) = f.get("checks") {
            match &c.kind {
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match self.check(item, i) {
                            Some(ch) => {
                                if v.checks.iter().any(|o| o.name == ch.name) {
                                    self.err(
                                        item.pos,
                                        format!(
                                            "verify.checks: the name `{}` is used twice",
                                            ch.name
                                        ),
                                        None,
                                    );
                                    ok = false;
                                }
                                v.checks.push(ch)
                            }
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    self.err(c.pos, "verify.checks must be a list of checks", None);
                    ok = false;
                }
            }
        }
        ok.then_some(v)
    }

    fn check(&mut self, n: &Node, i: usize) -> Option<Check> {
        let f = self.fields(n, &format!("verify.checks[{i}]"), CHECK)?;
        let name = match f.get("name") {
            Some(x) => self.string(x, "check name")?,
            None => format!("check-{}", i + 1),
        };
        let what = format!("check `{name}`");
        let timeout = match f.get("timeout") {
            Some(t) => self.duration(t, &format!("{what}: timeout"))?,
            None => Duration::from_secs(30),
        };
        match (f.get("run"), f.get("serve")) {
            (Some(_), Some(s)) | (None, Some(s)) if f.get("run").is_some() => {
                self.err(
                    s.pos,
                    format!("{what} has both `run` and `serve`"),
                    Some("split it into two checks".into()),
                );
                None
            }
            (Some(r), None) => {
                let args = self.strings(r, &format!("{what}: run"));
                for k in ["stop"] {
                    if let Some(x) = f.get(k) {
                        self.err(
                            x.pos,
                            format!("{what}: `{k}` belongs to `serve` checks"),
                            None,
                        );
                    }
                }
                let stdout = f
                    .get("stdout")
                    .and_then(|s| self.regex(s, &format!("{what}: stdout")));
                let stderr = f
                    .get("stderr")
                    .and_then(|s| self.regex(s, &format!("{what}: stderr")));
                let exit = match f.get("exit") {
                    Some(e) => self.int(e, &format!("{what}: exit"), 0, 255)? as i32,
                    None => 0,
                };
                Some(Check {
                    name,
                    kind: CheckKind::Run {
                        args: args?,
                        stdout,
                        stderr,
                        exit,
                        timeout,
                    },
                })
            }
            (None, Some(s)) => {
                let sf = self.fields(s, &format!("{what}: serve"), SERVE)?;
                for k in ["stdout", "stderr", "exit"] {
                    if let Some(x) = f.get(k) {
                        self.err(
                            x.pos,
                            format!("{what}: `{k}` belongs to `run` checks"),
                            None,
                        );
                    }
                }
                let port = match sf.get("port") {
                    Some(p) => self
                        .int(p, &format!("{what}: serve.port"), 1, 65535)
                        .map(|p| p as u16),
                    None => {
                        self.err(sf.pos, format!("{what}: serve.port is missing"), None);
                        None
                    }
                };
                let path = match sf.get("path") {
                    Some(p) => self
                        .string(p, &format!("{what}: serve.path"))
                        .filter(|s| s.starts_with('/')),
                    None => Some("/".to_string()),
                };
                let status = match sf.get("status") {
                    Some(p) => self
                        .int(p, &format!("{what}: serve.status"), 100, 599)
                        .map(|s| s as u16),
                    None => Some(200),
                };
                let serve_timeout = match sf.get("timeout") {
                    Some(t) => self.duration(t, &format!("{what}: serve.timeout")),
                    None => Some(timeout),
                };
                let (mut stop_signal, mut stop_within) =
                    (Some(StopSignal::Term), Some(Duration::from_secs(5)));
                if let Some(st) = f.get("stop") {
                    let stf = self.fields(st, &format!("{what}: stop"), STOP)?;
                    if let Some(sig) = stf.get("signal") {
                        stop_signal =
                            match self.string(sig, &format!("{what}: stop.signal")).as_deref() {
                                Some("SIGTERM" | "TERM") => Some(StopSignal::Term),
                                Some("SIGINT" | "INT") => Some(StopSignal::Int),
                                Some(other) => {
                                    self.err(
                                        sig.pos,
                                        format!(
                                            "{what}: stop.signal `{other}` is not SIGTERM or SIGINT"
                                        ),
                                        None,
                                    );
                                    None
                                }
                                None => None,
                            };
                    }
                    if let Some(w) = stf.get("within") {
                        stop_within = self.duration(w, &format!("{what}: stop.within"));
                    }
                }
                Some(Check {
                    name,
                    kind: CheckKind::Serve {
                        port: port?,
                        path: path?,
                        status: status?,
                        timeout: serve_timeout?,
                        stop_signal: stop_signal?,
                        stop_within: stop_within?,
                    },
                })
            }
            _ => {
                self.err(
                    f.pos,
                    format!("{what} needs `run: [ARGS...]` or `serve: {{ port, path, status }}`"),
                    None,
                );
                None
            }
        }
    }

    fn publish(&mut self, n: Option<&Node>) -> Option<Publish> {
        let mut p = Publish {
            to: PublishTo::Oci(self.root.join("dist/oci")),
            insecure: false,
        };
        let Some(n) = n else { return Some(p) };
        let f = self.fields(n, "publish", PUBLISH)?;
        let mut ok = true;
        if let Some(t) = f.get("to") {
            match self.string(t, "publish.to") {
                Some(s) if s == "registry" => p.to = PublishTo::Registry,
                Some(s) if s.starts_with("oci:") => match self.path(t, &s[4..], "publish.to") {
                    Some(path) => p.to = PublishTo::Oci(path),
                    None => ok = false,
                },
                Some(s) => {
                    self.err(t.pos, format!("publish.to: `{s}` is not `registry` or `oci:PATH`"), Some("`registry` pushes image.repository; `oci:dist/oci` writes an OCI layout".into()));
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(i) = f.get("insecure") {
            match self.bool(i, "publish.insecure") {
                Some(b) => p.insecure = b,
                None => ok = false,
            }
        }
        ok.then_some(p)
    }

    fn attest(&mut self, n: Option<&Node>) -> Option<Attest> {
        let mut a = Attest::default();
        let Some(n) = n else { return Some(a) };
        let f = self.fields(n, "attest", ATTEST)?;
        let mut ok = true;
        for (key, slot) in [
            ("sbom", &mut a.sbom),
            ("provenance", &mut a.provenance),
            ("verification", &mut a.verification),
        ] {
            if let Some(v) = f.get(key) {
                match self.bool(v, &format!("attest.{key}")) {
                    Some(b) => *slot = b,
                    None => ok = false,
                }
            }
        }
        ok.then_some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "version: 1\nvariants:\n  musl: { base: scratch }\nimage:\n  repository: localhost/app\n";

    fn parse(text: &str) -> Result<Config, Vec<(usize, usize, String)>> {
        let dir = std::env::temp_dir();
        crate::config::parse_str(text, Path::new("pipeline.yaml"), &dir).map_err(|e| {
            e.diagnostics
                .into_iter()
                .map(|d| (d.line, d.col, d.message))
                .collect()
        })
    }

    #[test]
    fn annotations_with_and_without_a_scope() {
        let cfg = parse(&format!(
            "{HEAD}  annotations:\n    org.opencontainers.image.vendor: Acme\n    \"index:org.opencontainers.image.description\": all\n    manifest:com.example.build: \"42\"\n    com.example:odd: kept\n"
        ))
        .unwrap();
        let got: Vec<(AnnotationScope, &str, &str)> = cfg
            .image
            .annotations
            .iter()
            .map(|a| (a.scope, a.key.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    AnnotationScope::Both,
                    "org.opencontainers.image.vendor",
                    "Acme"
                ),
                (
                    AnnotationScope::Index,
                    "org.opencontainers.image.description",
                    "all"
                ),
                (AnnotationScope::Manifest, "com.example.build", "42"),
                (AnnotationScope::Both, "com.example:odd", "kept"),
            ]
        );
        assert!(cfg.archives, "archives are on by default");
    }

    #[test]
    fn bad_annotations_and_archives_are_errors_where_they_are() {
        let errs = parse(&format!(
            "{HEAD}  annotations:\n    manifest-descriptor:a.b: x\n    \"index:\": x\n    ok.key: [x]\n    \"with space\": x\narchives: yes\n"
        ))
        .unwrap_err();
        let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(at, [(7, 5), (8, 5), (9, 13), (10, 5), (11, 11)], "{errs:?}");
        assert!(
            errs[0].2.contains("`manifest-descriptor:` is not a scope"),
            "{errs:?}"
        );
        assert!(errs[1].2.contains("is not an annotation key"), "{errs:?}");
        assert!(errs[2].2.contains("image.annotations.ok.key"), "{errs:?}");
        assert!(errs[3].2.contains("is not an annotation key"), "{errs:?}");
        assert!(
            errs[4].2.contains("archives must be true or false"),
            "{errs:?}"
        );
        let errs = parse(&format!("{HEAD}  annotations: [a, b]\n")).unwrap_err();
        assert_eq!(errs[0].0, 6);
        assert!(errs[0].2.contains("must be a mapping"), "{errs:?}");
    }
}
