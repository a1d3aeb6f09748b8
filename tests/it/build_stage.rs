//! The build stage against the real toolchains: every target of the example, each binary run
//! under qemu-user with its platform's strict CPU; the glibc floor; the ARMv6 guard; SIGINT and
//! SIGTERM in the middle of a compile; a failing target; `--dry-run` against a real run;
//! incremental builds; `shipit doctor` with and without QEMU on the PATH.

use crate::support::fixture::{built, copy_tree, example, example_pipeline, example_variant, repo};
use crate::support::write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// (libc, platform slug, qemu binary, strict cpu)
const BUILT: &[(&str, &str, &str, &str)] = &[
    ("gnu", "linux-amd64", "", ""),
    ("gnu", "linux-arm64", "qemu-aarch64-static", "cortex-a53"),
    ("gnu", "linux-arm-v7", "qemu-arm-static", "cortex-a7"),
    ("musl", "linux-amd64", "", ""),
    ("musl", "linux-arm64", "qemu-aarch64-static", "cortex-a53"),
    ("musl", "linux-arm-v7", "qemu-arm-static", "cortex-a7"),
    ("musl", "linux-arm-v6", "qemu-arm-static", "arm1176"),
];

/// The shared fixture's lock (the one `example()` takes while it rebuilds `dist/`): held while
/// reading the fixture's binaries, so that another test process re-initialising the fixture
/// cannot remove them under us. Call `example()` first (it takes the same lock once).
pub struct FixtureLock(#[allow(dead_code)] std::fs::File);

pub fn fixture_lock() -> FixtureLock {
    let root = example().parent().unwrap().to_path_buf();
    let f = std::fs::File::create(root.join(".lock")).unwrap();
    // SAFETY: flock on an open file; released when the file is closed.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) },
        0
    );
    FixtureLock(f)
}

/// The bytes of a built fixture binary, read under the fixture lock.
pub fn built_bytes(libc: &str, slug: &str) -> Vec<u8> {
    let path = built(libc, slug);
    let _lock = fixture_lock();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example's sources alone (no dist, no target, no base) in a temp dir: a fresh compile.
fn source_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/hello-server"), tmp.path());
    tmp
}

/// `shipit` in `dir` with cargo's target dir left to the project (no inherited override).
fn shipit(dir: &Path) -> Command {
    let mut c = crate::support::shipit(dir);
    c.env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits for a child with a bound; kills it and panics when the bound passes.
fn wait_bounded(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shipit did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes (pid, cmdline) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = text(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Polls until no process mentions `needle` (bounded); returns what is left.
fn leftovers_after(needle: &str, bound: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + bound;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_target_builds_and_runs_under_its_strict_cpu() {
    let base = example().join("base/bookworm");
    let _ = base;
    for (libc, slug, qemu, cpu) in BUILT {
        let bin = built(libc, slug);
        assert!(bin.exists(), "{} missing", bin.display());
        let out = if qemu.is_empty() {
            Command::new(&bin).arg("--version").output().unwrap()
        } else {
            let mut c = Command::new(qemu);
            c.args(["-cpu", cpu]);
            if *libc == "gnu" {
                // the Debian rootfs the example's gnu images sit on
                let rootfs = crate::support::fixture::unpacked_base(match *slug {
                    "linux-arm64" => "bookworm-arm64",
                    _ => "bookworm-armhf",
                });
                c.args(["-L", rootfs.to_str().unwrap()]);
            }
            c.arg(&bin).arg("--version").output().unwrap()
        };
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == "hello-server 0.3.1",
            "{libc} {slug} under {qemu} -cpu {cpu}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The plan shipit itself makes for the example, restricted to one platform and variant.
fn example_plan(platform: &str, variant: &str, out: &Path) -> shipit::plan::Plan {
    let opts = shipit::session::RunOptions {
        config: example().join("pipeline.yaml"),
        platforms: vec![platform.to_string()],
        variant: Some(variant.to_string()),
        out: out.to_path_buf(),
        ..Default::default()
    };
    let ui = shipit::ui::Ui::new(true, false, false);
    shipit::session::Session::load(opts, &ui)
        .unwrap_or_else(|e| panic!("plan: {e}"))
        .plan
}

#[test]
fn armv6_guard_refuses_an_armv7_binary_presented_as_v6() {
    let out = tempfile::tempdir().unwrap();
    let plan = example_plan("linux/arm/v6", "musl", out.path());
    let (_, v6) = plan
        .platforms()
        .find(|(_, p)| p.platform == "linux/arm/v6")
        .expect("the example plans linux/arm/v6 (musl)");

    // The real ARMv7 (musl) binary of the fixture, presented as the ARMv6 one.
    let v7 = shipit::verify::elf::inspect(&built_bytes("musl", "linux-arm-v7")).unwrap();
    let (errors, _) = shipit::stage::build::check_binary(v6, &v7);
    let all = errors.join("\n");
    assert!(!errors.is_empty(), "an ARMv7 binary passed as ARMv6");
    for word in ["ARMv6", "ARMv7", "Thumb-2"] {
        assert!(
            all.contains(word),
            "the refusal does not say `{word}`:\n{all}"
        );
    }
    // It says what to do, too.
    assert!(all.contains("zigbuild"), "no fix in:\n{all}");

    // The real ARMv6 binary passes the same guard.
    let real = shipit::verify::elf::inspect(&built_bytes("musl", "linux-arm-v6")).unwrap();
    let (errors, _) = shipit::stage::build::check_binary(v6, &real);
    assert!(
        errors.is_empty(),
        "the genuine ARMv6 binary was refused: {errors:?}"
    );
}

#[test]
fn zigbuild_pins_the_glibc_floor_of_every_gnu_binary() {
    let floor = shipit::verify::elf::GlibcVersion::new(2, 31, 0);
    for slug in ["linux-amd64", "linux-arm64", "linux-arm-v7"] {
        let facts = shipit::verify::elf::inspect(&built_bytes("gnu", slug)).unwrap();
        let max = facts
            .max_glibc
            .unwrap_or_else(|| panic!("gnu {slug}: no GLIBC_ version needed at all?"));
        assert!(
            max <= floor,
            "gnu {slug} needs GLIBC_{max:?}, above the 2.31 floor"
        );
        // And the plan says how: cargo-zigbuild with the floor in the target.
        let out = tempfile::tempdir().unwrap();
        let platform = format!(
            "linux/{}",
            slug.trim_start_matches("linux-").replace('-', "/")
        );
        let plan = example_plan(&platform, "gnu", out.path());
        let (_, p) = plan.platforms().next().unwrap();
        let line = p.build.display();
        assert!(
            line.contains("cargo zigbuild") && line.contains(&format!("{}.2.31", p.target)),
            "gnu {slug} is not planned with zigbuild and the 2.31 floor: {line}"
        );
    }
}

/// Starts a fresh build of one fast target in a source copy, sends `sig` while cargo is
/// compiling, and checks the exit code and that nothing of the build survives.
fn interrupt_build(sig: i32) {
    let tmp = source_copy();
    let dir = tmp.path();
    let stderr_path = dir.join("shipit.stderr");
    let mut child = shipit(dir)
        .args(["build", "--platform", "linux/amd64", "--variant", "musl"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let log = dir.join("dist/logs/build-musl-linux-amd64.log");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let compiling = std::fs::read_to_string(&log)
            .map(|t| t.contains("Compiling"))
            .unwrap_or(false);
        if compiling {
            break;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "shipit ended ({s}) before cargo compiled anything:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no `Compiling` in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let needle = dir.display().to_string();
    assert!(
        processes_mentioning(&needle)
            .iter()
            .any(|(_, c)| c.contains("rustc") || c.contains("cargo")),
        "nothing was compiling when the signal was sent"
    );
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(128 + sig),
        "exit status {status}; stderr:\n{stderr}"
    );
    let name = shipit::exec::signal_name(sig);
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "stderr:\n{stderr}"
    );
    let left = leftovers_after(&needle, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "processes outlived the interrupted build: {left:#?}"
    );
    assert!(
        !dir.join("dist/bin/musl/linux-amd64/hello-server").exists(),
        "an interrupted build left a binary behind"
    );
}

#[test]
fn sigint_during_a_build_exits_130_and_leaves_no_process() {
    interrupt_build(libc::SIGINT);
}

#[test]
fn sigterm_during_a_build_exits_143_and_leaves_no_process() {
    interrupt_build(libc::SIGTERM);
}

/// The build command lines `shipit build --dry-run` prints (without the `#` and `cp` lines).
fn planned_commands(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = shipit(dir)
        .args(["build", "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dry run failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("cp ") && !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_failing_target_prints_its_command_and_log_tail_and_stops_the_other() {
    let tmp = source_copy();
    let dir = tmp.path();
    // A real type error, on x86_64 only; the arm64 build sits in a slow build script, so it is
    // still running when the amd64 one fails.
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    write(
        &dir.join("src/main.rs"),
        &format!(
            "{main}\n#[cfg(target_arch = \"x86_64\")]\nconst BROKEN: u32 = \"not a number\";\n"
        ),
    );
    write(
        &dir.join("build.rs"),
        "fn main() {\n    if std::env::var(\"TARGET\").unwrap_or_default().starts_with(\"aarch64\") {\n        std::thread::sleep(std::time::Duration::from_secs(600));\n    }\n}\n",
    );
    let args = [
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--variant",
        "musl",
    ];
    let planned = planned_commands(dir, &args);
    assert_eq!(planned.len(), 2, "{planned:?}");

    let start = Instant::now();
    let out: Output = shipit(dir)
        .args(["build", "--jobs", "2"])
        .args(args)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(300),
        "the arm64 build was not stopped (its build script sleeps 600 s)"
    );
    assert!(
        stderr.contains(&planned[0]),
        "stderr lacks the exact cargo command `{}`:\n{stderr}",
        planned[0]
    );
    assert!(
        stderr.contains("error[E0308]: mismatched types"),
        "no compiler error:\n{stderr}"
    );
    assert!(
        stderr.contains("last lines of output"),
        "no log tail:\n{stderr}"
    );
    assert!(
        stderr.contains("build-musl-linux-amd64.log"),
        "no log path:\n{stderr}"
    );
    // The other target was running and got stopped (not waited for, not reported as failing).
    assert!(
        stderr.contains("linux/arm64 (musl): stopped"),
        "arm64 not stopped:\n{stderr}"
    );
    assert!(!dir.join("dist/bin/musl/linux-arm64/hello-server").exists());
    let left = leftovers_after(&dir.display().to_string(), Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "the stopped build left processes: {left:#?}"
    );

    // One at a time, the second target never starts: skipped.
    let out = shipit(dir)
        .args(["build", "--jobs", "1"])
        .args(args)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("linux/arm64 (musl): skipped"),
        "arm64 not skipped:\n{stderr}"
    );
    assert!(
        stderr.contains("error[E0308]"),
        "no compiler error:\n{stderr}"
    );
}

#[test]
fn dry_run_prints_exactly_the_commands_a_real_build_runs() {
    let tmp = source_copy();
    let dir = tmp.path();
    let args = [
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--variant",
        "musl",
    ];
    let out = shipit(dir)
        .args(["build", "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!dir.join("dist").exists(), "the dry run created dist/");
    assert!(
        !dir.join("target").exists(),
        "the dry run created target/ (it compiled?)"
    );
    let planned: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("cp "))
        .collect();
    let copies: Vec<&str> = stdout.lines().filter(|l| l.starts_with("cp ")).collect();
    assert_eq!(planned.len(), 2, "{stdout}");
    assert_eq!(copies.len(), 2, "{stdout}");
    for (line, target) in planned
        .iter()
        .zip(["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"])
    {
        assert!(
            line.contains(&format!("cargo build --target {target} ")),
            "{line}"
        );
    }

    let out = shipit(dir).args(["build"]).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "real build failed:\n{}",
        text(&out.stderr)
    );
    for (line, slug) in planned.iter().zip(["linux-amd64", "linux-arm64"]) {
        let log = dir.join(format!("dist/logs/build-musl-{slug}.log"));
        let logged = std::fs::read_to_string(&log).unwrap();
        let first = logged.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("$ {line}"),
            "{} ran something else",
            log.display()
        );
    }
    // The `cp SRC DEST` lines: DEST holds exactly what cargo left at SRC.
    for cp in copies {
        let parts = shlex::split(cp).unwrap();
        let (src, dest) = (PathBuf::from(&parts[1]), PathBuf::from(&parts[2]));
        assert_eq!(
            std::fs::read(&src).unwrap(),
            std::fs::read(&dest).unwrap(),
            "{cp}"
        );
    }
}

#[test]
fn a_second_build_does_no_compiler_work() {
    let flags = example_variant("incr", &example_pipeline());
    let out_dir = PathBuf::from(&flags[3]);
    let out = shipit(example())
        .args(["build", "--json"])
        .args(&flags)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("every binary was already up to date: no compiler work was done"),
        "{stderr}"
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("build.json")).unwrap())
            .unwrap();
    assert_eq!(printed, recorded, "--json and build.json disagree");
    let built = recorded["built"].as_array().unwrap();
    assert_eq!(built.len(), 7, "{recorded:#}");
    for b in built {
        assert_eq!(b["compiled"], false, "{}: the compiler ran", b["platform"]);
        let log = std::fs::read_to_string(out_dir.join(format!(
            "logs/build-{}-{}.log",
            b["libc"].as_str().unwrap(),
            b["platform"].as_str().unwrap().replace('/', "-")
        )))
        .unwrap();
        assert!(!log.contains("Compiling "), "{log}");
    }
}

fn doctor_findings(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "doctor --json printed no JSON ({e}):\n{}",
                text(&out.stdout)
            )
        })
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn doctor_finds_every_required_tool() {
    let out = shipit(example())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let findings = doctor_findings(&out);
    let tools: Vec<&str> = findings
        .iter()
        .map(|f| f["tool"].as_str().unwrap())
        .collect();
    for t in [
        "cargo",
        "cargo-zigbuild",
        "qemu-aarch64-static",
        "qemu-arm-static",
    ] {
        assert!(tools.contains(&t), "doctor does not check {t}: {tools:?}");
    }
    for f in findings.iter().filter(|f| f["required"] == true) {
        assert_eq!(f["status"], "ok", "{f:#}");
    }
}

/// `build.packages` with no `deb:` base: the build sysroots still come from a Debian suite whose
/// InRelease is checked, so doctor lists gpgv and the archive keyring, each for the sysroot.
#[test]
fn doctor_lists_gpgv_and_the_keyring_for_build_sysroots_without_a_deb_base() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(&dir.path().join("src/main.rs"), "fn main() {}\n");
    write(
        &dir.path().join("pipeline.yaml"),
        "version: 1\nbuild: { packages: [libssl-dev] }\nplatforms: [linux/arm64]\n\
         variants:\n  gnu: { base: scratch }\nimage: { repository: localhost/tiny }\n",
    );
    let out = shipit(dir.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let findings = doctor_findings(&out);
    for tool in ["gpgv", "debian-archive-keyring"] {
        let f = findings
            .iter()
            .find(|f| f["tool"] == tool)
            .unwrap_or_else(|| panic!("doctor does not list {tool}: {findings:#?}"));
        assert_eq!(f["required"], true, "{f:#}");
        assert_eq!(
            f["needed_for"],
            serde_json::json!(["linux/arm64 (gnu): build sysroot (bookworm arm64)"]),
            "{f:#}"
        );
        // This machine has both (scripts/setup.sh installs them).
        assert_eq!(f["status"], "ok", "{f:#}");
    }
    assert_eq!(
        findings
            .iter()
            .find(|f| f["tool"] == "debian-archive-keyring")
            .unwrap()["install_command"],
        "apt-get install -y debian-archive-keyring"
    );
}

#[test]
fn doctor_without_qemu_exits_3_and_says_how_to_install_it() {
    // The same PATH, except that every directory holding qemu-aarch64-static is replaced by a
    // directory of symlinks to everything else in it.
    let tmp = tempfile::tempdir().unwrap();
    let path = std::env::var("PATH").unwrap();
    let mut dirs = Vec::new();
    for (i, d) in std::env::split_paths(&path).enumerate() {
        if !d.join("qemu-aarch64-static").exists() {
            dirs.push(d);
            continue;
        }
        let mirror = tmp.path().join(format!("path{i}"));
        std::fs::create_dir(&mirror).unwrap();
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_name() != "qemu-aarch64-static" {
                std::os::unix::fs::symlink(e.path(), mirror.join(e.file_name())).unwrap();
            }
        }
        dirs.push(mirror);
    }
    let stripped = std::env::join_paths(dirs).unwrap();

    let out = shipit(example())
        .args(["doctor", "--json"])
        .env("PATH", &stripped)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("qemu-aarch64-static"), "{stderr}");
    let findings = doctor_findings(&out);
    let blocking: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["required"] == true && f["status"] != "ok")
        .collect();
    assert_eq!(
        blocking.len(),
        1,
        "only qemu-aarch64-static should be missing: {blocking:#?}"
    );
    assert_eq!(blocking[0]["tool"], "qemu-aarch64-static");
    assert_eq!(blocking[0]["status"], "missing");
    assert_eq!(
        blocking[0]["install_command"],
        "apt-get install -y qemu-user-static"
    );

    // The human report says the same.
    let out = shipit(example())
        .arg("doctor")
        .env("PATH", &stripped)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("MISSING") && l.contains("qemu-aarch64-static")),
        "{stdout}"
    );
    assert!(
        stdout.contains("install: apt-get install -y qemu-user-static"),
        "{stdout}"
    );

    // `--fix --dry-run` shows the exact installs it would run (apt, as root here) and runs none.
    let out = shipit(example())
        .args(["doctor", "--fix", "--dry-run"])
        .env("PATH", &stripped)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("$ DEBIAN_FRONTEND=noninteractive apt-get update"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install -y --no-install-recommends qemu-user-static"),
        "{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "nothing was installed, so it is still missing"
    );
}

/// The pipeline of the freshness test: musl amd64 only, a dev build (quick to redo), `features`.
fn fresh_pipeline(features: &str) -> String {
    format!(
        "version: 1\nproject: {{ manifest: Cargo.toml, version: cargo }}\n\
         build: {{ backend: auto, profile: dev, features: {features} }}\n\
         platforms: [linux/amd64]\nvariants:\n  musl: {{ base: scratch }}\n\
         image:\n  repository: localhost/hello-server\n  user: \"10001:10001\"\n"
    )
}

/// `shipit build --json` in `dir` with `env` (and no inherited RUSTFLAGS, HELLO_FLAVOUR,
/// RUSTUP_TOOLCHAIN or SHIPIT_NO_FRESHNESS otherwise): the one `built` entry, and the build log.
fn build_once(dir: &Path, env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut cmd = shipit(dir);
    cmd.args(["build", "--json"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("HELLO_FLAVOUR")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("SHIPIT_NO_FRESHNESS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = std::fs::read_to_string(dir.join("dist/logs/build-musl-linux-amd64.log")).unwrap();
    (doc["built"][0].clone(), log)
}

/// Builds until the target is fresh (at most twice more: cargo may rewrite Cargo.lock, and a
/// file written while a build runs keeps that build from leaving a stamp).
fn settle(dir: &Path, env: &[(&str, &str)]) {
    for _ in 0..3 {
        if build_once(dir, env).0["fresh"] == true {
            return;
        }
    }
    panic!("the target never became fresh with {env:?}");
}

#[test]
fn a_no_op_build_starts_no_toolchain_and_each_changed_input_defeats_it() {
    let tmp = source_copy();
    let dir = tmp.path();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    write(
        &dir.join("Cargo.toml"),
        &format!("{manifest}\n[features]\nextra = []\n"),
    );
    write(
        &dir.join("build.rs"),
        "fn main() {\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
         println!(\"cargo:rerun-if-env-changed=HELLO_FLAVOUR\");\n}\n",
    );
    write(&dir.join("pipeline.yaml"), &fresh_pipeline("[]"));

    let (first, _) = build_once(dir, &[]);
    assert_eq!(first["fresh"], false);
    let (again, log) = build_once(dir, &[]);
    assert_eq!(again["fresh"], true, "{log}");
    assert_eq!(again["compiled"], false);
    assert!(log.contains("fresh (no toolchain started)"), "{log}");
    assert!(!log.contains("$ "), "a command ran: {log}");
    assert_eq!(again["sha256"], first["sha256"]);
    assert!(dir.join("dist/bin/musl/linux-amd64/hello-server").is_file());

    let defeated = |what: &str, env: &[(&str, &str)], compiles: bool| {
        let (b, log) = build_once(dir, env);
        assert_eq!(
            b["fresh"], false,
            "{what} did not start the toolchain: {log}"
        );
        assert!(log.starts_with("$ "), "{what}: {log}");
        if compiles {
            assert_eq!(b["compiled"], true, "{what}: cargo compiled nothing: {log}");
        }
        settle(dir, env);
    };

    // A source file.
    let main_rs = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    write(
        &dir.join("src/main.rs"),
        &format!("{main_rs}\n// changed\n"),
    );
    defeated("a changed source file", &[], true);
    // Cargo.lock (a comment: cargo has nothing to compile, but only cargo may say so).
    let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    write(&dir.join("Cargo.lock"), &format!("{lock}\n# touched\n"));
    defeated("a changed Cargo.lock", &[], false);
    // A feature.
    write(&dir.join("pipeline.yaml"), &fresh_pipeline("[extra]"));
    defeated("a changed feature", &[], true);
    // RUSTFLAGS, set and then unset again.
    defeated(
        "RUSTFLAGS set",
        &[("RUSTFLAGS", "-C debug-assertions=off")],
        true,
    );
    // Cargo keeps the artifacts of both flag sets apart: it copies the earlier binary back.
    defeated("RUSTFLAGS unset", &[], false);
    // A variable a build script declared with rerun-if-env-changed.
    defeated("HELLO_FLAVOUR set", &[("HELLO_FLAVOUR", "a")], true);
    defeated("HELLO_FLAVOUR changed", &[("HELLO_FLAVOUR", "b")], true);
    // A .cargo/config.toml appearing in the project.
    write(
        &dir.join(".cargo/config.toml"),
        "[profile.dev]\ndebug = false\n",
    );
    defeated("a new .cargo/config.toml", &[("HELLO_FLAVOUR", "b")], true);

    // The toolchain chosen through the environment (the same one: cargo has nothing to do).
    let env = [("HELLO_FLAVOUR", "b"), ("RUSTUP_TOOLCHAIN", "stable")];
    defeated("RUSTUP_TOOLCHAIN set", &env, false);

    // The escape hatch: the toolchain starts (and cargo finds nothing to do).
    let (b, log) = build_once(dir, &[env[0], env[1], ("SHIPIT_NO_FRESHNESS", "1")]);
    assert_eq!(b["fresh"], false, "{log}");
    assert_eq!(b["compiled"], false, "{log}");
    assert!(log.contains("SHIPIT_NO_FRESHNESS is set"), "{log}");
}

/// `shipit release --json` in `dir` (no inherited RUSTFLAGS or toolchain choice): the report
/// and the one `built` entry of `dist/build.json`.
fn release_once(dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let out = shipit(dir)
        .args(["release", "--json"])
        .env("SOURCE_DATE_EPOCH", crate::support::fixture::EPOCH)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("HELLO_FLAVOUR")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("SHIPIT_NO_FRESHNESS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let build: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dist/build.json")).unwrap()).unwrap();
    (report, build["built"][0].clone())
}

/// The release's no-op path for the build: a second `release` with nothing changed starts no
/// toolchain, reuses the verification and makes the same digests; a changed source file
/// rebuilds, and its new bytes are packaged and verified again.
#[test]
fn a_no_op_release_starts_no_toolchain_and_a_changed_source_rebuilds_and_verifies_again() {
    let tmp = source_copy();
    let dir = tmp.path();
    write(
        &dir.join("pipeline.yaml"),
        &format!(
            "{}  entrypoint: [\"/usr/local/bin/hello-server\"]\nverify:\n  checks:\n    - name: version\n      run: [\"--version\"]\n      stdout: 'hello-server \\d+'\npublish:\n  to: oci:dist/oci\n",
            fresh_pipeline("[]")
        ),
    );
    settle(dir, &[]);
    let platform = |r: &serde_json::Value| r["images"][0]["platforms"][0].clone();

    let (first, _) = release_once(dir);
    let (second, built) = release_once(dir);
    assert_eq!(built["fresh"], true, "{built}");
    assert_eq!(platform(&second)["cached"], true, "{second}");
    assert_eq!(
        platform(&second)["manifest_digest"],
        platform(&first)["manifest_digest"]
    );
    assert_eq!(
        second["images"][0]["index_digest"],
        first["images"][0]["index_digest"]
    );

    // New bytes: a changed message in the source.
    let main_rs = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    let changed = main_rs.replace("shutting down", "shutting down now");
    assert_ne!(changed, main_rs);
    write(&dir.join("src/main.rs"), &changed);
    let (third, built) = release_once(dir);
    assert_eq!(built["fresh"], false, "{built}");
    assert_eq!(built["compiled"], true, "{built}");
    assert_ne!(
        platform(&third)["manifest_digest"],
        platform(&first)["manifest_digest"],
        "a new image for a new binary"
    );
    assert_eq!(platform(&third)["cached"], false, "verified again: {third}");
}

/// A build script that, for aarch64 only, waits (at most 5 minutes) until the file named by
/// `SHIPIT_TEST_GO_ON` exists: the arm64 target is still building for as long as the test wants.
fn waiting_build_rs(comment: &str) -> String {
    format!(
        "// {comment}\nfn main() {{\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
         if !std::env::var(\"TARGET\").unwrap_or_default().starts_with(\"aarch64\") {{\n        return;\n    }}\n    \
         let Some(go_on) = std::env::var_os(\"SHIPIT_TEST_GO_ON\") else {{ return }};\n    \
         for _ in 0..3000 {{\n        if std::path::Path::new(&go_on).exists() {{\n            return;\n        }}\n        \
         std::thread::sleep(std::time::Duration::from_millis(100));\n    }}\n}}\n"
    )
}

/// `shipit release -v --jobs 1` of the musl amd64 and arm64 targets in `dir` (the arm64 build
/// waiting for `go_on`), its stderr read line by line: the receiver hears once the amd64 image
/// was verified early, and the thread returns the whole stderr.
fn release_with_early(
    dir: &Path,
    go_on: &Path,
    tmp: &Path,
) -> (
    Child,
    std::sync::mpsc::Receiver<&'static str>,
    std::thread::JoinHandle<String>,
) {
    use std::io::BufRead;
    let mut child = shipit(dir)
        .args(["release", "-v", "--jobs", "1", "--variant", "musl"])
        .args(["--platform", "linux/amd64", "--platform", "linux/arm64"])
        .env("SOURCE_DATE_EPOCH", crate::support::fixture::EPOCH)
        .env("SHIPIT_TEST_GO_ON", go_on)
        // At the builds' own priority: on a machine busy with other tests, `idle` could starve
        // the early checks past their timeouts (they would then only run again in the stage).
        .env("SHIPIT_EARLY", "normal")
        .env("TMPDIR", tmp)
        .env_remove("SHIPIT_NO_FRESHNESS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("early: linux/amd64 (musl): packaging and verifying") {
                let _ = tx.send("started");
            }
            if line.contains("early: linux/amd64 (musl) packaged and verified") {
                let _ = tx.send("verified");
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (child, rx, reader)
}

/// Processes whose root (a verification chroot) or command line is under `dir`.
fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let mut found = processes_mentioning(&dir.display().to_string());
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("root")).is_ok_and(|r| r.starts_with(dir)) {
            let cmdline = text(&std::fs::read(e.path().join("cmdline")).unwrap_or_default());
            found.push((pid, cmdline.replace('\0', " ")));
        }
    }
    found
}

/// Early work (`stage::early`): with two targets built one at a time, the first target's image
/// is packaged and verified while the second still builds (its build script waits until the test
/// saw that). The verify stage takes that pass as run in this release (not cached), and caches it
/// like any other: the next release reuses it, with the same digests. A signal while the early
/// verification's guest runs (a serve check that waits a minute for a port nobody opens) and the
/// second target builds: the release exits 130 promptly, no guest or build process is left, no
/// temp dir, and the tags are where they were.
#[test]
fn the_first_target_is_verified_while_the_second_builds_and_a_signal_then_stops_all() {
    let tmp = source_copy();
    let dir = tmp.path();
    write(&dir.join("build.rs"), &waiting_build_rs("first"));
    let go_on = dir.join("go-on");
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, early, reader) = release_with_early(dir, &go_on, tmp.path());
    let deadline = Instant::now() + Duration::from_secs(400);
    let mut seen = false;
    while let Ok(what) = early.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if what == "verified" {
            seen = true;
            break;
        }
    }
    // The arm64 build goes on either way: a missing early verification fails below, not a hang.
    std::fs::write(&go_on, "").unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(400));
    let stderr = reader.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(seen, "amd64 was not verified while arm64 built:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("ok linux/amd64") && l.contains("while other targets built")),
        "the verify stage did not take the early pass:\n{stderr}"
    );
    let report = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("dist/release.json")).unwrap()).unwrap()
    };
    let first = report(dir);
    let amd64 = |r: &serde_json::Value| {
        r["images"][0]["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == "linux/amd64")
            .cloned()
            .unwrap()
    };
    assert_eq!(amd64(&first)["cached"], false, "{first}");
    assert!(
        amd64(&first)["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{first}"
    );

    // Cached like any other pass: the next release runs nothing again, same digests.
    let (mut child, _, reader) = release_with_early(dir, &go_on, tmp.path());
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let stderr = reader.join().unwrap();
    assert!(status.success(), "{stderr}");
    let second = report(dir);
    assert_eq!(amd64(&second)["cached"], true, "{second}");
    assert_eq!(
        second["images"][0]["index_digest"],
        first["images"][0]["index_digest"]
    );

    // Interrupted while the amd64 image's guest runs and arm64 builds (a changed source and
    // build script: both targets build new binaries, and arm64 waits for a file that never
    // comes; a serve check on a port the server does not open keeps the guest running).
    let tags = std::fs::read(dir.join("dist/oci/index.json")).unwrap();
    let pipeline = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    let slow = pipeline.replace(
        "serve: { port: 8080, path: /health, status: 200, timeout: 20s }",
        "serve: { port: 9999, path: /health, status: 200, timeout: 60s }",
    );
    assert_ne!(slow, pipeline);
    write(&dir.join("pipeline.yaml"), &slow);
    write(&dir.join("build.rs"), &waiting_build_rs("second"));
    let main_rs = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    let changed = main_rs.replace("shutting down", "shutting down now");
    assert_ne!(changed, main_rs);
    write(&dir.join("src/main.rs"), &changed);
    let (mut child, early, reader) = release_with_early(dir, &dir.join("never"), tmp.path());
    let started = early.recv_timeout(Duration::from_secs(400)).is_ok();
    // The guest: a process whose root is a verification rootfs under TMPDIR.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut guest = Vec::new();
    while started && guest.is_empty() && Instant::now() < deadline {
        guest = processes_under(tmp.path());
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let stopped = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(started, "amd64 was not packaged early:\n{stderr}");
    assert!(!guest.is_empty(), "no early guest ran:\n{stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?} to stop:\n{stderr}",
        stopped.elapsed()
    );
    let left = leftovers_after(&dir.display().to_string(), Duration::from_secs(5));
    assert!(left.is_empty(), "processes outlived the release: {left:#?}");
    let left = processes_under(tmp.path());
    assert!(left.is_empty(), "guests outlived the release: {left:#?}");
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("shipit-"))
        .collect();
    assert!(dirs.is_empty(), "temp dirs left: {dirs:?}");
    assert_eq!(
        std::fs::read(dir.join("dist/oci/index.json")).unwrap(),
        tags,
        "the tags moved"
    );
}
