//! `shipit verify oci:…` on hostile OCI layouts, each a real layout on disk made in the test:
//! a FIFO as `oci-layout`, `index.json`, manifest, config or layer blob (the open must not block),
//! a blob that is a symbolic link out of the layout or to `/dev/zero` (refused, not followed),
//! and indexes built to exhaust the walker: 10 000 levels deep, a 10×10 fan-out of the same
//! images, 2 000 and 100 000 entries, a million paths through one shared child index. Each run
//! has a deadline (a hang fails the test instead of stalling the suite) and, where memory is
//! the attack, its peak RSS is measured by GNU time (`/usr/bin/time`; `wait4` in this process
//! would count the test's own memory, shared with the child until it execs).

use crate::support::shipit;
use serde_json::{Value, json};
use shipit::oci::digest::Digest;
use shipit::oci::image::{self, BuiltImage, Descriptor, ImageSpec};
use shipit::oci::index::Platform;
use shipit::oci::layer::Entry;
use shipit::oci::layout::Layout;
use shipit::oci::media;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a bounded run of shipit gave: exit code, stdout + stderr, peak RSS in KiB, seconds.
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    out: String,
    stdout: String,
    max_rss_kib: i64,
    seconds: f64,
}

/// Runs `cmd` (under GNU time when `measure`), killing its process group after `limit` (then
/// the run has no exit code and its output ends with "HUNG").
fn bounded(cmd: &mut Command, limit: Duration, measure: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (o, e, m) = (
        dir.path().join("out"),
        dir.path().join("err"),
        dir.path().join("rss"),
    );
    let mut timed;
    let cmd = if measure {
        let time = Path::new("/usr/bin/time");
        assert!(
            time.exists(),
            "this test measures peak memory with GNU time: apt-get install time"
        );
        timed = Command::new(time);
        timed.arg("-f").arg("%M").arg("-o").arg(&m);
        timed.arg(cmd.get_program()).args(cmd.get_args());
        if let Some(d) = cmd.get_current_dir() {
            timed.current_dir(d);
        }
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => timed.env(k, v),
                None => timed.env_remove(k),
            };
        }
        &mut timed
    } else {
        cmd
    };
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    let mut hung = false;
    loop {
        // SAFETY: plain syscalls on our own child, reaped here (the Child is never waited on).
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if start.elapsed() > limit {
            // SAFETY: the child leads its own process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            hung = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    let stdout = std::fs::read_to_string(&o).unwrap_or_default();
    let mut stderr = std::fs::read_to_string(&e).unwrap_or_default();
    let mut code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let mut signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    let mut max_rss_kib = -1;
    if measure {
        // GNU time reports a signal as "Command terminated by signal N" and exits 128+N.
        if let Some(n) = stderr
            .lines()
            .find_map(|l| l.strip_prefix("Command terminated by signal "))
        {
            signal = n.trim().parse().ok();
            code = None;
        }
        stderr = stderr
            .lines()
            .filter(|l| !l.starts_with("Command "))
            .collect::<Vec<_>>()
            .join("\n");
        let rss = std::fs::read_to_string(&m).unwrap_or_default();
        max_rss_kib = rss
            .lines()
            .rev()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or(-1);
    }
    if hung {
        stderr.push_str(&format!("\nHUNG: shipit was killed after {limit:?}"));
    }
    let run = Run {
        code,
        signal,
        out: format!("{stdout}\n{stderr}"),
        stdout,
        max_rss_kib,
        seconds: start.elapsed().as_secs_f64(),
    };
    eprintln!(
        "{cmd:?}: exit {:?} signal {:?} in {:.2}s, peak RSS {} KiB\n{}",
        run.code,
        run.signal,
        run.seconds,
        run.max_rss_kib,
        tail(&stderr)
    );
    run
}

/// The last lines of a long output.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `shipit verify [--dry-run] oci:DIR:TAG` in a directory without a pipeline.
fn verify(layout: &Path, tag: &str, extra: &[&str], limit: Duration) -> Run {
    verify_run(layout, tag, extra, limit, false)
}

/// `verify`, its peak memory measured.
fn verify_measured(layout: &Path, tag: &str, extra: &[&str]) -> Run {
    verify_run(layout, tag, extra, QUICK, true)
}

fn verify_run(layout: &Path, tag: &str, extra: &[&str], limit: Duration, measure: bool) -> Run {
    let cwd = layout.parent().unwrap();
    let mut c = shipit(cwd);
    c.arg("verify")
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()));
    bounded(&mut c, limit, measure)
}

/// A small real image (one layer with one file) in a new layout at `dir`, tagged `t`.
fn small_image(dir: &Path, content: &[u8]) -> (Layout, BuiltImage) {
    let layout = Layout::create(dir).unwrap();
    let img = image_in(&layout, content);
    layout.tag("t", &img.descriptor).unwrap();
    (layout, img)
}

fn image_in(layout: &Layout, content: &[u8]) -> BuiltImage {
    let (_, digests) = layout
        .write_layer(
            &[Entry::file("bin/app", content.to_vec(), 0o755)],
            1_700_000_000,
        )
        .unwrap();
    let spec = ImageSpec {
        platform: Platform::new("linux", "amd64", None),
        entrypoint: Some(vec!["/bin/app".into()]),
        epoch: 1_700_000_000,
        ..ImageSpec::default()
    };
    let img = image::build(None, &[digests], &spec).unwrap();
    layout.write_image(&img).unwrap();
    img
}

fn mkfifo(p: &Path) {
    std::fs::remove_file(p).unwrap();
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

fn relink(p: &Path, to: &Path) {
    std::fs::remove_file(p).unwrap();
    std::os::unix::fs::symlink(to, p).unwrap();
}

/// Writes `bytes` straight into the blob directory (no fsync: thousands are written).
fn raw_blob(layout: &Layout, media_type: &str, bytes: &[u8]) -> Descriptor {
    let digest = Digest::of(bytes);
    std::fs::write(layout.blob_path(&digest), bytes).unwrap();
    Descriptor::new(media_type, digest, bytes.len() as u64)
}

/// An OCI index listing `entries` (descriptors as JSON), with an annotation to tell copies apart.
fn index_bytes(entries: &[Value], note: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
        "annotations": {"note": note},
    }))
    .unwrap()
}

fn entry(d: &Descriptor, platform: Option<&str>) -> Value {
    let mut v = json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size});
    if let Some(p) = platform {
        let p = Platform::parse(p).unwrap();
        v["platform"] = serde_json::to_value(&p).unwrap();
    }
    v
}

const QUICK: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Item 5: files that are not regular, or that lead out of the layout

/// Each file of a layout replaced in turn by a FIFO, a link out of the layout or a link to
/// `/dev/zero`: verify answers at once, with an error that names the file and what it is.
#[test]
fn fifos_and_links_in_a_layout_are_refused_quickly_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    type Sabotage = fn(&Layout, &BuiltImage, &Path) -> PathBuf;
    let cases: &[(&str, Sabotage, i32, &str)] = &[
        (
            "FIFO as manifest blob",
            |l, img, _| {
                let p = l.blob_path(&img.descriptor.digest);
                mkfifo(&p);
                p
            },
            1,
            "FIFO (named pipe), not a regular file",
        ),
        (
            "FIFO as config blob",
            |l, img, _| {
                let p = l.blob_path(&img.config.digest);
                mkfifo(&p);
                p
            },
            1,
            "FIFO (named pipe), not a regular file",
        ),
        (
            "FIFO as layer blob",
            |l, img, _| {
                let p = l.blob_path(&img.manifest.layers[0].digest);
                mkfifo(&p);
                p
            },
            1,
            "FIFO (named pipe), not a regular file",
        ),
        (
            "FIFO as index.json",
            |l, _, _| {
                let p = l.root().join("index.json");
                mkfifo(&p);
                p
            },
            2,
            "FIFO (named pipe), not a regular file",
        ),
        (
            "FIFO as oci-layout",
            |l, _, _| {
                let p = l.root().join("oci-layout");
                mkfifo(&p);
                p
            },
            2,
            "FIFO (named pipe), not a regular file",
        ),
        (
            "manifest blob linked to an identical file outside the layout",
            |l, img, outside| {
                let p = l.blob_path(&img.descriptor.digest);
                let copy = outside.join(img.descriptor.digest.hex());
                std::fs::copy(&p, &copy).unwrap();
                relink(&p, &copy);
                p
            },
            1,
            "symbolic link",
        ),
        (
            "config blob linked to /dev/zero",
            |l, img, _| {
                let p = l.blob_path(&img.config.digest);
                relink(&p, Path::new("/dev/zero"));
                p
            },
            1,
            "symbolic link",
        ),
        (
            "layer blob linked to /dev/zero",
            |l, img, _| {
                let p = l.blob_path(&img.manifest.layers[0].digest);
                relink(&p, Path::new("/dev/zero"));
                p
            },
            1,
            "symbolic link",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, sabotage, code, says)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        let (layout, img) = small_image(&dir.join("oci"), format!("app {i}").as_bytes());
        let file = sabotage(&layout, &img, &outside);
        let run = verify(layout.root(), "t", &[], Duration::from_secs(10));
        let shown = file.display().to_string();
        if run.code != Some(*code) || !run.out.contains(&shown) || !run.out.contains(says) {
            failures.push(format!(
                "{name}: expected exit {code} and an error naming {shown} that says {says:?}; \
                 got exit {:?} after {:.1}s:\n{}",
                run.code,
                run.seconds,
                tail(&run.out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Item 7: the walk over nested indexes is bounded

/// 10 000 indexes, each listing the next: before, the recursion overflowed the stack (SIGABRT,
/// exit 134); now the walk stops at the depth limit with a clear error and exit 1.
#[test]
fn ten_thousand_nested_indexes_are_refused_without_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, img) = small_image(&tmp.path().join("oci"), b"deep");
    let mut inner = entry(&img.descriptor, Some("linux/amd64"));
    for level in 0..10_000 {
        let d = raw_blob(
            &layout,
            media::OCI_INDEX,
            &index_bytes(&[inner], &level.to_string()),
        );
        inner = entry(&d, None);
    }
    let top: Descriptor = serde_json::from_value(inner).unwrap();
    layout.tag("deep", &top).unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let run = verify(layout.root(), "deep", extra, QUICK);
        assert_eq!(
            run.signal, None,
            "{extra:?}: killed by a signal\n{}",
            run.out
        );
        assert_eq!(run.code, Some(1), "{extra:?}\n{}", run.out);
        assert!(
            run.out.contains("nested more than 8 deep") && run.out.contains("limit"),
            "{extra:?}: the error must name the depth limit:\n{}",
            run.out
        );
    }
    // Eight levels are still fine.
    let mut inner = entry(&img.descriptor, Some("linux/amd64"));
    for level in 0..8 {
        let d = raw_blob(
            &layout,
            media::OCI_INDEX,
            &index_bytes(&[inner], &format!("ok{level}")),
        );
        inner = entry(&d, None);
    }
    layout
        .tag("eight", &serde_json::from_value(inner).unwrap())
        .unwrap();
    let run = verify(layout.root(), "eight", &["--dry-run"], QUICK);
    assert_eq!(run.code, Some(0), "{}", run.out);
    assert_eq!(run.stdout.matches("# verify").count(), 1, "{}", run.stdout);
}

/// Ten indexes that each list the same ten images, under one index: the ten images are
/// verified once each, not a hundred times.
#[test]
fn a_ten_by_ten_fan_out_of_the_same_images_verifies_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, first) = small_image(&tmp.path().join("oci"), b"image 0");
    let mut images = vec![first];
    for i in 1..10 {
        images.push(image_in(&layout, format!("image {i}").as_bytes()));
    }
    let listed: Vec<Value> = images
        .iter()
        .map(|img| entry(&img.descriptor, Some("linux/amd64")))
        .collect();
    let children: Vec<Value> = (0..10)
        .map(|c| {
            let d = raw_blob(
                &layout,
                media::OCI_INDEX,
                &index_bytes(&listed, &format!("child {c}")),
            );
            entry(&d, None)
        })
        .collect();
    let top = raw_blob(&layout, media::OCI_INDEX, &index_bytes(&children, "top"));
    layout.tag("fan", &top).unwrap();

    let run = verify(layout.root(), "fan", &["--dry-run"], QUICK);
    assert_eq!(run.code, Some(0), "{}", run.out);
    let mut lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("# verify"))
        .collect();
    assert_eq!(lines.len(), 10, "{}", run.stdout);
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 10, "each image once: {}", run.stdout);

    // A real run verifies ten images (they fail: no loader for an empty "binary"), not 100.
    let run = verify(layout.root(), "fan", &["--json"], Duration::from_secs(300));
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!("no JSON report ({e}):\n{}", run.out);
    });
    let mut digests: Vec<&str> = report["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 10, "{}", run.stdout);
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 10);
}

/// One index of 2 000 entries (under the size cap): refused, naming the per-index limit.
#[test]
fn an_index_over_the_entry_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = small_image(&tmp.path().join("oci"), b"wide");
    let entries: Vec<Value> = (0..2000u32)
        .map(|i| {
            let d = Descriptor::new(media::OCI_MANIFEST, Digest::of(&i.to_le_bytes()), 500);
            entry(&d, Some("linux/amd64"))
        })
        .collect();
    let top = raw_blob(&layout, media::OCI_INDEX, &index_bytes(&entries, "wide"));
    layout.tag("wide", &top).unwrap();
    let run = verify(layout.root(), "wide", &["--dry-run"], QUICK);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out.contains("2000 entries") && run.out.contains("1024 entries per index"),
        "{}",
        tail(&run.out)
    );
    assert_eq!(run.stdout.matches("# verify").count(), 0);
}

/// 100 000 entries in one index: refused quickly (by the 4 MiB cap on JSON blobs, before it is
/// parsed), in bounded memory.
#[test]
fn an_index_of_a_hundred_thousand_entries_is_refused_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = small_image(&tmp.path().join("oci"), b"huge");
    let entries: Vec<Value> = (0..100_000u32)
        .map(|i| {
            let d = Descriptor::new(media::OCI_MANIFEST, Digest::of(&i.to_le_bytes()), 500);
            entry(&d, None)
        })
        .collect();
    let top = raw_blob(&layout, media::OCI_INDEX, &index_bytes(&entries, "huge"));
    layout.tag("huge", &top).unwrap();
    let run = verify_measured(layout.root(), "huge", &["--dry-run"]);
    assert_eq!(run.code, Some(1), "{}", tail(&run.out));
    assert!(run.out.contains("4194304 bytes"), "{}", tail(&run.out));
    assert!(run.seconds < 10.0, "took {:.1}s", run.seconds);
    assert!(
        (1..100_000).contains(&run.max_rss_kib),
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

/// A million paths in small blobs: one index lists the same child index 1 000 times, and the
/// child lists 1 000 images. Before, `--dry-run` expanded all 10^6 (hundreds of MB); now the
/// child is read once and its 1 000 images exceed the image limit: refused in bounded memory.
#[test]
fn a_million_paths_through_a_shared_child_are_refused_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = small_image(&tmp.path().join("oci"), b"million");
    let images: Vec<Value> = (0..1000u32)
        .map(|i| {
            let d = Descriptor::new(media::OCI_MANIFEST, Digest::of(&i.to_le_bytes()), 500);
            entry(&d, Some("linux/amd64"))
        })
        .collect();
    let child = raw_blob(&layout, media::OCI_INDEX, &index_bytes(&images, "child"));
    let top = raw_blob(
        &layout,
        media::OCI_INDEX,
        &index_bytes(&vec![entry(&child, None); 1000], "top"),
    );
    layout.tag("million", &top).unwrap();
    let run = verify_measured(layout.root(), "million", &["--dry-run"]);
    assert_eq!(run.code, Some(1), "{}", tail(&run.out));
    assert!(
        run.out.contains("more than 256 distinct images"),
        "{}",
        tail(&run.out)
    );
    assert!(
        (1..100_000).contains(&run.max_rss_kib),
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}
