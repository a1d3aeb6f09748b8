//! Release archives (issue 16 item 2): `shipit release` of a tiny crate writes
//! `dist/archives/<bin>-<version>-<target>.tar.gz` with the binary and the crate's license and
//! README files, and `SHA256SUMS`; GNU `sha256sum -c` and `tar -tvzf` read them, a second run
//! writes the same bytes, and a tampered archive fails the check. A matrix release (`--split`
//! per platform, then `--merge`) writes the same archives and `SHA256SUMS` bytes as a one-shot
//! release of the same platforms.

use crate::support::{shipit, write};
use std::path::Path;
use std::process::{Command, Output};

const TARGET: &str = "x86_64-unknown-linux-musl";
const NAME: &str = "tiny-1.2.3-x86_64-unknown-linux-musl.tar.gz";

/// A dependency-free crate with `license-file`, license and README files (and files that are
/// none of those), released for linux/amd64 musl on scratch.
pub(crate) fn tiny(archives: Option<bool>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(
        &p.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"1.2.3\"\nedition = \"2021\"\n\
         description = \"A tiny program\"\nlicense-file = \"legal/TERMS.txt\"\npublish = false\n\n[workspace]\n",
    );
    write(
        &p.join("src/main.rs"),
        "fn main() { if std::env::args().nth(1).as_deref() == Some(\"--version\") { println!(\"tiny {}\", env!(\"CARGO_PKG_VERSION\")); } }\n",
    );
    write(&p.join("LICENSE-MIT"), "MIT License\n");
    write(&p.join("README.md"), "# tiny\n");
    write(&p.join("legal/TERMS.txt"), "terms\n");
    write(&p.join("NOTES.md"), "not shipped\n");
    std::fs::create_dir_all(p.join("LICENSES")).unwrap();
    write(
        &p.join("pipeline.yaml"),
        &format!(
            "version: 1\nplatforms: [linux/amd64]\nvariants:\n  musl: {{ base: scratch, platforms: [linux/amd64] }}\n\
             image:\n  repository: localhost/tiny\nverify:\n  checks:\n    - name: version\n      run: [\"--version\"]\n      stdout: 'tiny 1\\.2\\.3'\n\
             publish:\n  to: oci:dist/oci\n{}",
            archives
                .map(|a| format!("archives: {a}\n"))
                .unwrap_or_default()
        ),
    );
    d
}

fn release(dir: &Path, extra: &[&str]) -> Output {
    shipit(dir)
        .args(["release", "-q"])
        .args(extra)
        .env("SOURCE_DATE_EPOCH", crate::support::fixture::EPOCH)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sha256sum_check(dir: &Path) -> Output {
    Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum (coreutils)")
}

#[test]
fn release_writes_checked_deterministic_archives() {
    let project = tiny(None);
    let out = release(project.path(), &[]);
    ok(&out);
    let archives = project.path().join("dist/archives");
    let mut names: Vec<String> = std::fs::read_dir(&archives)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["SHA256SUMS", NAME]);
    // Release files are readable by everyone (a web server, another user uploading them).
    for file in [
        archives.join("SHA256SUMS"),
        archives.join(NAME),
        project.path().join("dist/release.json"),
        project.path().join("dist/package.json"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", file.display());
    }

    // GNU sha256sum accepts the checksum file.
    let check = sha256sum_check(&archives);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        format!("{NAME}: OK\n")
    );

    // GNU tar lists the entries sorted, owned by 0/0, dated at the epoch, with fixed modes.
    let list = Command::new("tar")
        .args(["--numeric-owner", "-tvzf", NAME])
        .current_dir(&archives)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(list.status.success());
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let summary: Vec<(String, String, String, String, String)> = lines
        .iter()
        .map(|f| {
            (
                f[0].clone(),
                f[1].clone(),
                f[3].clone(),
                f[4].clone(),
                f[5].clone(),
            )
        })
        .collect();
    let dir = "tiny-1.2.3-x86_64-unknown-linux-musl";
    let row = |mode: &str, name: &str| {
        (
            mode.to_string(),
            "0/0".to_string(),
            "2023-11-14".to_string(),
            "22:13".to_string(),
            format!("{dir}/{name}"),
        )
    };
    assert_eq!(
        summary,
        [
            row("drwxr-xr-x", ""),
            row("-rw-r--r--", "LICENSE-MIT"),
            row("-rw-r--r--", "README.md"),
            row("-rw-r--r--", "TERMS.txt"),
            row("-rwxr-xr-x", "tiny"),
        ],
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    // The archived binary is the built one, and runs.
    let x = tempfile::tempdir().unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(archives.join(NAME))
        .current_dir(x.path())
        .output()
        .unwrap();
    assert!(untar.status.success());
    let bin = x.path().join(dir).join("tiny");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(project.path().join("dist/bin/musl/linux-amd64/tiny")).unwrap()
    );
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout), "tiny 1.2.3\n");

    // release.json lists it: name, target, digest and size of the bytes on disk.
    let bytes = std::fs::read(archives.join(NAME)).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.path().join("dist/release.json")).unwrap())
            .unwrap();
    let listed = &report["archives"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], NAME);
    assert_eq!(listed[0]["target"], TARGET);
    assert_eq!(listed[0]["platform"], "linux/amd64");
    assert_eq!(listed[0]["variant"], "musl");
    assert_eq!(listed[0]["size"], bytes.len() as u64);
    let sums = std::fs::read_to_string(archives.join("SHA256SUMS")).unwrap();
    let hex = sums.split_whitespace().next().unwrap();
    assert_eq!(listed[0]["digest"], format!("sha256:{hex}"));

    // A second run (nothing changed) writes the same bytes; a stale archive goes.
    std::fs::write(archives.join("tiny-0.0.1-old.tar.gz"), "old").unwrap();
    ok(&release(project.path(), &[]));
    assert_eq!(std::fs::read(archives.join(NAME)).unwrap(), bytes);
    assert_eq!(
        std::fs::read_to_string(archives.join("SHA256SUMS")).unwrap(),
        sums
    );
    assert!(!archives.join("tiny-0.0.1-old.tar.gz").exists());

    // A tampered archive fails the check.
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(archives.join(NAME), tampered).unwrap();
    let check = sha256sum_check(&archives);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&format!("{NAME}: FAILED")),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // The archives are compressed while the images are verified, and put in place only after
    // every image passed: a release of a changed binary that fails verification leaves
    // dist/archives as it was, with no temporary file.
    let before = files_of(&archives);
    write(
        &project.path().join("src/main.rs"),
        "fn main() { println!(\"not the version\"); }\n",
    );
    let failed = release(project.path(), &[]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("no tag moved"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    assert_eq!(files_of(&archives), before);
}

#[test]
fn archives_false_skips_the_stage_saying_so() {
    let project = tiny(Some(false));
    let dry = shipit(project.path())
        .args(["release", "--dry-run"])
        .output()
        .unwrap();
    ok(&dry);
    assert!(
        String::from_utf8_lossy(&dry.stdout)
            .contains("# skip archives: `archives: false` in the pipeline"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    let out = release(project.path(), &[]);
    ok(&out);
    assert!(!project.path().join("dist/archives").exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.path().join("dist/release.json")).unwrap())
            .unwrap();
    assert_eq!(report["archives"], serde_json::json!([]));

    // On (the default), the dry run names the archive and the checksum file.
    let on = tiny(None);
    let dry = shipit(on.path())
        .args(["release", "--dry-run"])
        .output()
        .unwrap();
    ok(&dry);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("# archive ") && text.contains(NAME), "{text}");
    assert!(text.contains("dist/archives/SHA256SUMS"), "{text}");
}

fn run_in(dir: &Path, out: &Path, args: &[&str]) -> Output {
    shipit(dir)
        .args(["--out", out.to_str().unwrap()])
        .args(args)
        .env("SOURCE_DATE_EPOCH", crate::support::fixture::EPOCH)
        .output()
        .unwrap()
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The matrix workflow's contract, on this machine: each `release --split` job (its own output
/// dir) writes its platform's archive and lists it in its fragment; the merge job, given the
/// fragments with the archives next to them (as the workflow downloads both artifacts into one
/// directory), writes exactly the archives and `SHA256SUMS` bytes of a one-shot release of the
/// same platforms, `sha256sum -c` passes, and release.json lists them. Only some archives, or
/// one that differs from its fragment, fails the merge before any push; none at all (a
/// workflow that uploads only fragments) merges without archives, saying so.
#[test]
fn split_and_merge_write_the_archives_and_sums_of_a_one_shot_release() {
    let reg = crate::support::registry::TestRegistry::anonymous();
    let project = tiny(None);
    let dir = project.path();
    let pipeline = std::fs::read_to_string(dir.join("pipeline.yaml"))
        .unwrap()
        .replace("[linux/amd64]", "[linux/amd64, linux/arm64]")
        .replace("to: oci:dist/oci", "to: registry")
        .replace(
            "repository: localhost/tiny",
            &format!("repository: {}/tiny", reg.host_port()),
        );
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();

    let one = dir.join("dist-one");
    ok(&run_in(dir, &one, &["release"]));
    let one_archives = files_of(&one.join("archives"));
    assert_eq!(
        one_archives
            .iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>(),
        [
            "SHA256SUMS",
            "tiny-1.2.3-aarch64-unknown-linux-musl.tar.gz",
            NAME
        ]
    );

    // Each job on its own "machine"; the workflow downloads what they upload into one directory.
    let downloaded = dir.join("downloaded");
    std::fs::create_dir_all(&downloaded).unwrap();
    let mut fragments = Vec::new();
    let mut archives = Vec::new();
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let out = dir.join(format!("dist-job{i}"));
        ok(&run_in(
            dir,
            &out,
            &["release", "--split", "--platform", platform],
        ));
        let frag = std::fs::read_dir(out.join("fragments"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&frag).unwrap()).unwrap();
        let listed = f["archives"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{f}");
        let name = listed[0]["name"].as_str().unwrap().to_string();
        let copy = downloaded.join(frag.file_name().unwrap());
        std::fs::copy(&frag, &copy).unwrap();
        fragments.push(copy.to_str().unwrap().to_string());
        archives.push((out.join("archives").join(&name), downloaded.join(&name)));
    }
    let merge_out = dir.join("dist-merge");
    let merge = |out: &Path| {
        let mut args = vec!["release", "--merge"];
        args.extend(fragments.iter().map(String::as_str));
        run_in(dir, out, &args)
    };
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // No archive next to the fragments: merged without archives, saying so.
    let bare = dir.join("dist-merge-bare");
    let o = merge(&bare);
    ok(&o);
    assert!(!bare.join("archives").exists());
    assert!(
        stderr(&o).contains("none of the 2 archives"),
        "{}",
        stderr(&o)
    );

    // Only one of the two: refused, nothing pushed or written.
    std::fs::copy(&archives[0].0, &archives[0].1).unwrap();
    let o = merge(&merge_out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("but not") && stderr(&o).contains("no tag was moved"),
        "{}",
        stderr(&o)
    );
    assert!(!merge_out.join("release.json").exists());

    // One that is not the bytes its fragment names: refused.
    let mut bad = std::fs::read(&archives[1].0).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&archives[1].1, bad).unwrap();
    let o = merge(&merge_out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("its fragment says"), "{}", stderr(&o));
    assert!(!merge_out.join("release.json").exists());

    // Both, as the jobs wrote them: the one-shot's bytes, and sha256sum accepts them.
    std::fs::copy(&archives[1].0, &archives[1].1).unwrap();
    ok(&merge(&merge_out));
    assert_eq!(files_of(&merge_out.join("archives")), one_archives);
    let check = sha256sum_check(&merge_out.join("archives"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let listed = |out: &Path| {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("release.json")).unwrap()).unwrap();
        r["archives"].clone()
    };
    assert_eq!(listed(&merge_out), listed(&one));
    assert_eq!(listed(&one).as_array().unwrap().len(), 2);
}
