//! What verification checks, per platform image. Static: the entrypoint's ELF facts against the
//! platform, its interpreter and every DT_NEEDED library present in the image, the glibc it needs
//! against the image's own glibc and `build.glibc`, config platform against the index, the user,
//! the size. Dynamic: `run` checks (exit status, stdout/stderr patterns) and `serve` checks
//! (start, wait for the port, HTTP request, stop signal, clean exit in time) under QEMU.
//! A failure says what ran, what came back, and what to do about it.

use super::elf;
use super::qemu::Guest;
use crate::config::{Check, CheckKind};
use crate::exec::{self, Running};
use crate::oci::unpack::{read_in_root, resolve_in_root};
use crate::platform::{Libc, Platform};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The result of one check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub seconds: f64,
    /// What ran and what came back (on failure, and for dynamic checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Reused from an earlier verification of the same image bytes with the same checks
    /// (`dist/cache/verified.json`): nothing ran this time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

impl CheckResult {
    fn pass(name: &str, start: Instant, detail: Option<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            passed: true,
            seconds: start.elapsed().as_secs_f64(),
            detail,
            fix: None,
            cached: false,
        }
    }
    fn fail(name: &str, start: Instant, detail: String, fix: impl Into<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            passed: false,
            seconds: start.elapsed().as_secs_f64(),
            detail: Some(detail),
            fix: Some(fix.into()),
            cached: false,
        }
    }
}

/// What the static checks need to know about one image.
pub struct Subject<'a> {
    pub platform: &'static Platform,
    /// The libc variant the pipeline says this image is (None for foreign images: inferred).
    pub libc: Option<Libc>,
    pub root: &'a Path,
    pub config: &'a serde_json::Value,
    /// The platform the index entry claims, if it claims one.
    pub index_platform: Option<crate::oci::index::Platform>,
    pub compressed_size: u64,
}

pub struct Policy {
    pub glibc_floor: Option<(u32, u32)>,
    pub allow_root: bool,
    pub max_size: Option<u64>,
}

const MAX_ELF: u64 = 1 << 30;

/// The image's entrypoint + cmd, with argv[0] resolved inside the image.
pub fn entry_argv(s: &Subject) -> Result<Vec<String>, String> {
    let cfg = &s.config["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = strings(&cfg["Entrypoint"]);
    if argv.is_empty() {
        argv = strings(&cfg["Cmd"]);
    }
    let Some(first) = argv.first().cloned() else {
        return Err("the image config has neither Entrypoint nor Cmd: nothing to run".into());
    };
    let env = image_env(s.config);
    let resolved = super::qemu::resolve_program(s.root, &first, &env)
        .ok_or_else(|| format!("the entrypoint `{first}` does not exist in the image"))?;
    argv[0] = resolved;
    Ok(argv)
}

/// `KEY=value` pairs of the image config's Env.
pub fn image_env(config: &serde_json::Value) -> Vec<(String, String)> {
    config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `UID[:GID]` from the config's User (names are looked up in the image's /etc/passwd).
pub fn image_user(root: &Path, config: &serde_json::Value) -> (u32, u32, String) {
    let user = config["config"]["User"].as_str().unwrap_or("").to_string();
    if user.is_empty() {
        return (0, 0, "root (no User set)".into());
    }
    let (u, g) = user
        .split_once(':')
        .map(|(a, b)| (a, Some(b)))
        .unwrap_or((&user, None));
    let lookup = |file: &str, name: &str, field: usize| -> Option<u32> {
        let text = read_in_root(root, file, 1 << 20).ok()?;
        String::from_utf8_lossy(&text).lines().find_map(|l| {
            let parts: Vec<&str> = l.split(':').collect();
            (parts.first() == Some(&name))
                .then(|| parts.get(field)?.parse().ok())
                .flatten()
        })
    };
    let uid = u
        .parse()
        .ok()
        .or_else(|| lookup("/etc/passwd", u, 2))
        .unwrap_or(0);
    let gid = match g {
        Some(g) => g
            .parse()
            .ok()
            .or_else(|| lookup("/etc/group", g, 2))
            .unwrap_or(0),
        None => lookup("/etc/passwd", u, 3).unwrap_or(uid),
    };
    (uid, gid, user)
}

/// Every static check of one image, and whether running it makes sense (false when there is no
/// binary to run or it is for another machine).
pub fn static_checks(s: &Subject, policy: &Policy) -> (Vec<CheckResult>, bool) {
    let (out, runnable) = static_inner(s, policy);
    (out, runnable)
}

/// The highest `GLIBC_x.y` the image's entrypoint and the libraries it names (`DT_NEEDED`, as
/// found in the image) require: what the verification attestation records as the image's glibc
/// requirement. `None` for a binary that needs no versioned glibc symbol (musl, static).
pub fn glibc_required(s: &Subject) -> Option<elf::GlibcVersion> {
    let argv = entry_argv(s).ok()?;
    let facts = elf::inspect(&read_in_root(s.root, &argv[0], MAX_ELF).ok()?).ok()?;
    let dirs = library_dirs(s.root, s.platform);
    let libs = facts.needed.iter().filter_map(|lib| {
        let bytes = dirs
            .iter()
            .find_map(|d| read_in_root(s.root, &format!("{d}/{lib}"), MAX_ELF).ok())?;
        elf::inspect(&bytes).ok()?.max_glibc
    });
    facts.max_glibc.into_iter().chain(libs).max()
}

fn static_inner(s: &Subject, policy: &Policy) -> (Vec<CheckResult>, bool) {
    let mut out = Vec::new();
    let start = Instant::now();

    // Config platform against the index entry.
    let cfg_platform = crate::oci::image::config_platform(s.config).ok();
    let want = crate::oci::index::Platform::new(
        s.platform.os,
        s.platform.architecture,
        s.platform.variant,
    );
    match (&cfg_platform, &s.index_platform) {
        (Some(c), _) if !c.matches(&want) => out.push(CheckResult::fail(
            "platform",
            start,
            format!("the image config says {c} but the image is listed as {}", s.platform.name),
            "the index entry and the image config must agree: rebuild the image for the platform it is listed under",
        )),
        (Some(c), Some(i)) if !c.matches(i) => out.push(CheckResult::fail(
            "platform",
            start,
            format!("the image config says {c} but its index entry says {i}"),
            "fix the index entry's platform (containerd picks images by it)",
        )),
        (None, _) => out.push(CheckResult::fail("platform", start, "the image config has no os/architecture".into(), "set architecture and os in the image config")),
        _ => out.push(CheckResult::pass("platform", start, Some(format!("config and index say {}", s.platform.name)))),
    }

    // User.
    let start = Instant::now();
    let (uid, _, user) = image_user(s.root, s.config);
    if uid == 0 && !policy.allow_root {
        out.push(CheckResult::fail(
            "user",
            start,
            format!("the image runs as {user} (uid 0)"),
            "set image.user to a non-root \"UID:GID\" (default \"10001:10001\"), or set verify.allow_root: true if root is really needed",
        ));
    } else {
        out.push(CheckResult::pass(
            "user",
            start,
            Some(format!("runs as {user} (uid {uid})")),
        ));
    }

    // Size.
    if let Some(max) = policy.max_size {
        let start = Instant::now();
        if s.compressed_size > max {
            out.push(CheckResult::fail(
                "size",
                start,
                format!("compressed size {} is over verify.max_size {}", human(s.compressed_size), human(max)),
                "use a smaller base (scratch for static musl binaries), strip the binary, or raise verify.max_size",
            ));
        } else {
            out.push(CheckResult::pass(
                "size",
                start,
                Some(format!("{} <= {}", human(s.compressed_size), human(max))),
            ));
        }
    }

    // The entrypoint binary.
    let start = Instant::now();
    let argv = match entry_argv(s) {
        Ok(a) => a,
        Err(e) => {
            out.push(CheckResult::fail(
                "elf",
                start,
                e,
                "set image.entrypoint to the binary's path inside the image",
            ));
            return (out, false);
        }
    };
    let bytes = match read_in_root(s.root, &argv[0], MAX_ELF) {
        Ok(b) => b,
        Err(e) => {
            out.push(CheckResult::fail(
                "elf",
                start,
                format!("cannot read the entrypoint {}: {e}", argv[0]),
                "the entrypoint must be a regular file in the image",
            ));
            return (out, false);
        }
    };
    let facts = match elf::inspect(&bytes) {
        Ok(f) => f,
        Err(e) => {
            out.push(CheckResult::fail(
                "elf",
                start,
                format!("{}: {e}", argv[0]),
                "the entrypoint must be an ELF binary for the platform (scripts are not verified)",
            ));
            return (out, false);
        }
    };
    let kind = elf::libc_kind(&facts);
    let libc = s.libc.or(match kind {
        elf::LibcKind::Glibc => Some(Libc::Gnu),
        elf::LibcKind::Musl => Some(Libc::Musl),
        _ => None,
    });
    let mut expect = elf::ElfExpect::for_platform(s.platform);
    if let Some(l) = libc {
        expect = expect.with_libc(l);
    }
    let findings = elf::check(&facts, &expect);
    let errors: Vec<&elf::Finding> = findings
        .iter()
        .filter(|f| f.severity == elf::Severity::Error)
        .collect();
    if errors.is_empty() {
        out.push(CheckResult::pass(
            "elf",
            start,
            Some(format!("{}: {}", argv[0], facts.summary())),
        ));
    } else {
        out.push(CheckResult::fail(
            "elf",
            start,
            errors
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
            errors
                .iter()
                .map(|f| f.fix.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ));
        // A binary for another machine: the library checks below would only add noise.
        if errors
            .iter()
            .any(|f| matches!(f.check, "machine" | "class" | "endian"))
        {
            return (out, false);
        }
    }

    // Interpreter and libraries.
    if let Some(interp) = &facts.interpreter {
        let start = Instant::now();
        if resolve_in_root(s.root, interp).is_err() {
            // The binary's own libc decides the advice, not the variant it was packaged as.
            let fix = if kind == elf::LibcKind::Musl
                || (kind != elf::LibcKind::Glibc && s.libc == Some(Libc::Musl))
            {
                "link statically (musl targets are static by default) or add musl to the image"
            } else {
                "this is a glibc binary: put it on a glibc base (e.g. debian:bookworm-slim), or build the musl variant for scratch"
            };
            out.push(CheckResult::fail(
                "interpreter",
                start,
                format!("the binary needs the loader {interp}, which the image does not have"),
                fix,
            ));
            return (out, true);
        }
        out.push(CheckResult::pass(
            "interpreter",
            start,
            Some(interp.clone()),
        ));
    }
    if !facts.needed.is_empty() {
        let start = Instant::now();
        let dirs = library_dirs(s.root, s.platform);
        let missing: Vec<&String> = facts
            .needed
            .iter()
            .filter(|lib| {
                !dirs
                    .iter()
                    .any(|d| resolve_in_root(s.root, &format!("{d}/{lib}")).is_ok())
            })
            .collect();
        if missing.is_empty() {
            out.push(CheckResult::pass(
                "libraries",
                start,
                Some(facts.needed.join(", ")),
            ));
        } else {
            let names = missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let packages = debian_packages(&missing);
            let add = if packages.is_empty() {
                "add it to the base (e.g. the Debian package that ships it)".to_string()
            } else {
                format!(
                    "add it to the base: add {} to image.packages (the Debian package{} that ship{} {names})",
                    packages.join(", "),
                    if packages.len() == 1 { "" } else { "s" },
                    if packages.len() == 1 { "s" } else { "" },
                )
            };
            out.push(CheckResult::fail(
                "libraries",
                start,
                format!("the binary needs {names}, which the image does not have (it would fail with \"{}: cannot open shared object file\")", missing[0]),
                format!("the base image lacks {names}: {add}, or link statically"),
            ));
        }
    }

    // CA roots: a binary that will look for the system's roots needs a bundle in the image.
    if let Some(why) = elf::ca::looks_for_ca_roots(&bytes, &facts.needed) {
        let start = Instant::now();
        match ca_bundle(s.root, s.config) {
            Some(found) => out.push(CheckResult::pass(
                "ca-roots",
                start,
                Some(format!("{why}; the image has {found}")),
            )),
            None => out.push(CheckResult::fail(
                "ca-roots",
                start,
                format!("the binary will look for the system's CA roots ({why}), but the image has no CA bundle (none of the paths openssl-probe checks, such as /etc/ssl/certs/ca-certificates.crt, exists): every TLS connection would fail to verify"),
                "add ca-certificates to image.packages (or a CA bundle at /etc/ssl/certs/ca-certificates.crt through image.files)",
            )),
        }
    }

    // glibc versions.
    if let Some(need) = facts.max_glibc {
        let start = Instant::now();
        let dirs = library_dirs(s.root, s.platform);
        let provided = dirs
            .iter()
            .find_map(|d| read_in_root(s.root, &format!("{d}/libc.so.6"), 64 << 20).ok())
            .and_then(|b| elf::glibc_provided(&b).ok().flatten());
        let mut problems = Vec::new();
        if let Some(have) = provided
            && need > have
        {
            problems.push(format!("the binary needs GLIBC_{need} but the image's glibc provides at most GLIBC_{have} (\"version `GLIBC_{need}' not found\" at run time)"));
        }
        if let Some((a, b)) = policy.glibc_floor {
            let floor = elf::GlibcVersion {
                major: a,
                minor: b,
                patch: 0,
            };
            if need > floor {
                problems.push(format!(
                    "the binary needs GLIBC_{need}, above build.glibc {floor}"
                ));
            }
        }
        if problems.is_empty() {
            out.push(CheckResult::pass(
                "glibc",
                start,
                Some(format!(
                    "needs {need}, image has {}",
                    provided
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "no libc.so.6".into())
                )),
            ));
        } else {
            out.push(CheckResult::fail(
                "glibc",
                start,
                problems.join("; "),
                format!("build with cargo-zigbuild pinned to the oldest glibc you run on (`--target {}.{}`, build.backend: zigbuild), or use a base with a newer glibc", s.platform.gnu_target, policy.glibc_floor.map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "2.31".into())),
            ));
        }
    }
    (out, true)
}

/// The Debian packages that ship these libraries, where known, each once.
fn debian_packages(libs: &[&String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for lib in libs {
        if let Some(p) = crate::syslibs::table::debian_package_for_library(lib)
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// The CA bundle the image offers where openssl-probe looks (`SSL_CERT_FILE`/`SSL_CERT_DIR` of
/// the image's environment first, then its well-known files, then a non-empty `certs` dir).
fn ca_bundle(root: &Path, config: &serde_json::Value) -> Option<String> {
    let is_file = |p: &str| read_in_root(root, p, 64 << 20).is_ok_and(|b| !b.is_empty());
    let non_empty_dir = |p: &str| {
        resolve_in_root(root, p)
            .ok()
            .filter(|d| d.is_dir())
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|mut entries| entries.next().is_some())
    };
    for (k, v) in image_env(config) {
        if (k == "SSL_CERT_FILE" && is_file(&v)) || (k == "SSL_CERT_DIR" && non_empty_dir(&v)) {
            return Some(format!("{v} ({k})"));
        }
    }
    for dir in elf::ca::CA_DIRS {
        if let Some(f) = elf::ca::CA_FILES
            .iter()
            .map(|f| format!("{dir}/{f}"))
            .find(|p| is_file(p))
        {
            return Some(f);
        }
    }
    elf::ca::CA_DIRS
        .iter()
        .map(|d| format!("{d}/certs"))
        .find(|p| non_empty_dir(p))
}

fn library_dirs(_root: &Path, p: &Platform) -> Vec<String> {
    let dirs: Vec<String> = vec![
        format!("/lib/{}", p.gcc_triple),
        format!("/usr/lib/{}", p.gcc_triple),
        "/lib".into(),
        "/usr/lib".into(),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/usr/local/lib".into(),
    ];
    dirs
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < 3 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The command a dynamic check runs in the guest: the entrypoint with the check's arguments
/// (`run`), or the entrypoint alone (`serve`, in its own network namespace unless the guest has
/// no sandbox).
pub fn check_command(guest: &Guest, argv: &[String], check: &Check) -> exec::Cmd {
    let purpose = format!("check `{}` on {}", check.name, guest.platform.name);
    match &check.kind {
        CheckKind::Run { args, .. } => {
            let mut full = argv.to_vec();
            full.extend(args.iter().cloned());
            guest.command(&full, purpose, true)
        }
        CheckKind::Serve { .. } => {
            let netns = guest.isolation != super::qemu::Isolation::Prefix;
            guest.command(argv, purpose, netns)
        }
    }
}

/// Runs one dynamic check in the guest.
pub fn run_check(guest: &Guest, argv: &[String], check: &Check, scratch: &Path) -> CheckResult {
    match &check.kind {
        CheckKind::Run {
            args,
            stdout,
            stderr,
            exit,
            timeout,
        } => run_once(
            guest,
            argv,
            check,
            args,
            stdout.as_deref(),
            stderr.as_deref(),
            *exit,
            *timeout,
            scratch,
        ),
        CheckKind::Serve {
            port,
            path,
            status,
            timeout,
            stop_signal,
            stop_within,
        } => serve(
            guest,
            argv,
            check,
            *port,
            path,
            *status,
            *timeout,
            stop_signal.number(),
            stop_signal.name(),
            *stop_within,
            scratch,
        ),
    }
}

/// Starts a check's command in the guest with its stdout and stderr in scratch files; a failure
/// to do so is the check's result.
fn start_guest(
    guest: &Guest,
    cmd: &crate::exec::Cmd,
    check: &Check,
    shown: &str,
    verb: &str,
    scratch: &Path,
    start: Instant,
) -> Result<(Running, std::path::PathBuf, std::path::PathBuf), CheckResult> {
    let (out, err, out_p, err_p) = output_files(scratch, &check.name).map_err(|e| {
        CheckResult::fail(
            &check.name,
            start,
            format!("scratch files: {e}"),
            "check the temp directory",
        )
    })?;
    let running = Running::start_with(cmd, out, err, &guest.cancel).map_err(|e| {
        CheckResult::fail(
            &check.name,
            start,
            format!("{verb} `{shown}`: {e}"),
            start_fix(guest, &e),
        )
    })?;
    Ok((running, out_p, err_p))
}

fn output_files(
    scratch: &Path,
    name: &str,
) -> std::io::Result<(
    std::fs::File,
    std::fs::File,
    std::path::PathBuf,
    std::path::PathBuf,
)> {
    let o = scratch.join(format!("{name}.stdout"));
    let e = scratch.join(format!("{name}.stderr"));
    Ok((std::fs::File::create(&o)?, std::fs::File::create(&e)?, o, e))
}

fn tail(path: &Path, n: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = Vec::new();
        let _ = Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut buf);
        s = String::from_utf8_lossy(&buf).into_owned();
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn read_capped(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(1 << 20).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Explains a failed run from its status and output.
fn diagnose(guest: &Guest, status: Option<std::process::ExitStatus>, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let cpu = guest.cpu.as_deref().unwrap_or("the default CPU");
    if stderr.contains("cannot open shared object file") {
        let lib = stderr
            .split("error while loading shared libraries: ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or("a library");
        return match crate::syslibs::table::debian_package_for_library(lib) {
            Some(pkg) => format!(
                "the base image lacks {lib}: add it to the base (add {pkg} to image.packages) or link statically"
            ),
            None => format!("the base image lacks {lib}: add it to the base or link statically"),
        };
    }
    if stderr.contains("GLIBC_") && stderr.contains("not found") {
        return "the binary needs a newer glibc than the image has: pin the floor with cargo-zigbuild (build.glibc) or use a newer base".into();
    }
    if stderr.contains("Exec format error") || stderr.contains("exec format error") {
        return format!(
            "the binary is not for {}: build it for {}",
            guest.platform.name, guest.platform.gnu_target
        );
    }
    match status.map(|s| (s.code(), s.signal())) {
        Some((_, Some(4))) | Some((Some(132), _)) => format!(
            "illegal instruction on {cpu}: the binary uses instructions that the platform's devices lack ({}) (for linux/arm/v6 build genuine ARMv6 code: arm-unknown-linux-musleabihf with cargo-zigbuild)",
            guest.platform.devices
        ),
        Some((_, Some(11))) | Some((Some(139), _)) => {
            "the program crashed (SIGSEGV) under emulation".into()
        }
        Some((Some(127), _)) => "the program or its loader was not found in the image".into(),
        _ => "see the output above".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    guest: &Guest,
    argv: &[String],
    check: &Check,
    args: &[String],
    want_out: Option<&str>,
    want_err: Option<&str>,
    want_exit: i32,
    timeout: Duration,
    scratch: &Path,
) -> CheckResult {
    let start = Instant::now();
    let cmd = check_command(guest, argv, check);
    let shown = format!("{} {}", argv[0], args.join(" "));
    let (running, out_p, err_p) =
        match start_guest(guest, &cmd, check, &shown, "ran", scratch, start) {
            Ok(x) => x,
            Err(failed) => return failed,
        };
    let status = running.wait_for(timeout);
    if status.is_none() {
        running.terminate();
        if let Some(sig) = guest.cancel.signal() {
            return CheckResult::fail(
                &check.name,
                start,
                format!("cancelled by {}", exec::signal_name(sig)),
                "",
            );
        }
        return CheckResult::fail(
            &check.name,
            start,
            format!(
                "ran `{shown}` under {}: no exit within {:?}; its process group was killed\nlast output:\n{}",
                guest_desc(guest),
                timeout,
                tail(&out_p, 10)
            ),
            "the program hangs: make sure these arguments make it exit, or raise the check's timeout",
        );
    }
    let status = status.unwrap_or_default();
    let stdout = read_capped(&out_p);
    let stderr = read_capped(&err_p);
    let code = status.code();
    let mut problems = Vec::new();
    if code != Some(want_exit) {
        problems.push(format!(
            "exit status {} (expected {want_exit})",
            exec::describe_status(&status)
        ));
    }
    if let Some(re) = want_out
        && !regex::Regex::new(re)
            .map(|r| r.is_match(&stdout))
            .unwrap_or(false)
    {
        problems.push(format!("stdout does not match /{re}/"));
    }
    if let Some(re) = want_err
        && !regex::Regex::new(re)
            .map(|r| r.is_match(&stderr))
            .unwrap_or(false)
    {
        problems.push(format!("stderr does not match /{re}/"));
    }
    let shown_out = |s: &str| {
        s.lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    if problems.is_empty() {
        CheckResult::pass(
            &check.name,
            start,
            Some(format!(
                "`{shown}` → exit {}, stdout: {}",
                want_exit,
                stdout.lines().next().unwrap_or("").trim()
            )),
        )
    } else {
        CheckResult::fail(
            &check.name,
            start,
            format!(
                "ran `{shown}` under {}: {}\nstdout:\n{}\nstderr:\n{}",
                guest_desc(guest),
                problems.join("; "),
                shown_out(&stdout),
                shown_out(&stderr)
            ),
            diagnose(guest, Some(status), &stderr),
        )
    }
}

/// What to do when the guest program could not even be started.
fn start_fix(guest: &Guest, e: &exec::ExecError) -> String {
    let not_found = matches!(e, exec::ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
    if not_found && guest.native {
        // Native runs exec the binary itself: ENOENT for a file that exists means its loader
        // (ELF interpreter) is missing from the image.
        "the program or its loader (ELF interpreter) is missing from the image: a glibc binary needs a glibc base; for scratch build the static musl variant".into()
    } else if matches!(e, exec::ExecError::Spawn { source, .. } if source.raw_os_error() == Some(libc::ETXTBSY))
    {
        "the program stayed open for writing by another process (Text file busy) through every retry: another tool is writing the unpacked image; run again, and report it if it repeats".into()
    } else if not_found {
        "is qemu-user-static installed? run `shipit doctor --fix`".into()
    } else {
        format!(
            "the guest could not be started ({e}); check that qemu-user-static works: `shipit doctor`"
        )
    }
}

fn guest_desc(g: &Guest) -> String {
    if g.native {
        format!("native {}", g.platform.name)
    } else {
        format!(
            "{} -cpu {}",
            g.platform.qemu_static(),
            g.cpu.as_deref().unwrap_or("max")
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    guest: &Guest,
    argv: &[String],
    check: &Check,
    port: u16,
    path: &str,
    want_status: u16,
    timeout: Duration,
    sig: i32,
    sig_name: &str,
    within: Duration,
    scratch: &Path,
) -> CheckResult {
    let start = Instant::now();
    let netns = guest.isolation != super::qemu::Isolation::Prefix;
    let cmd = check_command(guest, argv, check);
    let shown = argv.join(" ");
    let (running, _, err_p) =
        match start_guest(guest, &cmd, check, &shown, "started", scratch, start) {
            Ok(x) => x,
            Err(failed) => return failed,
        };
    let lines = |p: &Path| tail(p, 10);
    // 1. Wait for the port.
    let deadline = Instant::now() + timeout;
    // Every 2 ms for the first 100 ms (a native server listens within milliseconds, one under
    // QEMU within tens: each millisecond polled late is a millisecond on the run), then pauses
    // growing to 50 ms so that a slow starter is not polled hundreds of times.
    let mut pause = Duration::from_millis(2);
    let stream = loop {
        if let Some(status) = running.try_wait() {
            let stderr = read_capped(&err_p);
            return CheckResult::fail(
                &check.name,
                start,
                format!(
                    "started `{shown}` under {}: it exited with status {} before answering on port {port}\nstderr:\n{}",
                    guest_desc(guest),
                    exec::describe_status(&status),
                    lines(&err_p)
                ),
                diagnose(guest, Some(status), &stderr),
            );
        }
        let attempt = if netns {
            exec::connect_in_netns(running.pid, port, Duration::from_millis(200))
        } else {
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
        };
        if let Ok(s) = attempt {
            break s;
        }
        // The pause between attempts wakes at once when the run is cancelled.
        let this_pause = pause;
        if start.elapsed() >= Duration::from_millis(100) {
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        if Instant::now() >= deadline || guest.cancel.sleep(this_pause).is_err() {
            running.terminate();
            return CheckResult::fail(
                &check.name,
                start,
                format!(
                    "started `{shown}` under {}: nothing listened on port {port} within {:?}; its process group was killed\nstderr:\n{}",
                    guest_desc(guest),
                    timeout,
                    lines(&err_p)
                ),
                "the server never answered: check that it listens on 0.0.0.0 and this port, or raise serve.timeout",
            );
        }
    };
    // 2. The request.
    let answer_within = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let got = http_get(stream, port, path, answer_within);
    let request_problem = match &got {
        Ok(code) if *code == want_status => None,
        Ok(code) => Some(format!(
            "GET {path} answered {code}, expected {want_status}"
        )),
        // A socket read timeout surfaces as EAGAIN ("Resource temporarily unavailable").
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Some(format!(
                "GET {path} got no answer within {:.1}s (the port accepted the connection)",
                answer_within.as_secs_f64()
            ))
        }
        Err(e) => Some(format!("GET {path} failed: {e}")),
    };
    // 3. The stop signal and a clean exit in time.
    running.signal(sig);
    let exited = running.wait_for(within);
    let stop_problem = match exited {
        Some(s) if s.code() == Some(0) => None,
        Some(s) => Some(format!(
            "after {sig_name} it exited with status {} instead of 0",
            exec::describe_status(&s)
        )),
        None => {
            running.terminate();
            Some(format!(
                "it did not exit within {within:?} of {sig_name}; its process group was killed"
            ))
        }
    };
    match (request_problem, stop_problem) {
        (None, None) => CheckResult::pass(
            &check.name,
            start,
            Some(format!(
                "GET {path} → {want_status}; exited 0 after {sig_name} in {:.2}s",
                running.elapsed().as_secs_f64()
            )),
        ),
        (req, stop) => {
            let fix = if stop.is_some() && req.is_none() {
                format!(
                    "handle {sig_name}: stop accepting, finish in-flight requests and exit 0 (orchestrators send it before killing)"
                )
            } else {
                "check the route and status the server returns for this path".to_string()
            };
            CheckResult::fail(
                &check.name,
                start,
                format!(
                    "`{shown}` under {}: {}\nstderr:\n{}",
                    guest_desc(guest),
                    [req, stop]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; "),
                    lines(&err_p)
                ),
                fix,
            )
        }
    }
}

/// A minimal HTTP/1.1 GET; returns the status code.
fn http_get(
    mut s: std::net::TcpStream,
    port: u16,
    path: &str,
    timeout: Duration,
) -> std::io::Result<u16> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: `write!` on a raw socket would send each piece separately, and a server that
    // answers after its first read would then see a truncated request (and we an EPIPE).
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: shipit-verify\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "not an HTTP response: {:?}",
                line.lines().next().unwrap_or("")
            ))
        })?;
    Ok(code)
}
