//! The README's `--json` shapes are true (issue 16 item 5): every command's JSON document, from
//! real runs on a tiny crate, holds no key the README's "Machine output" list does not name, and
//! every top-level key the list names is there.

use crate::archives::tiny;
use crate::support::fixture::{EPOCH, repo};
use crate::support::shipit;
use std::collections::BTreeSet;
use std::path::Path;

/// The README's list: per line, the commands it is for and the key paths it names (what is in
/// parentheses is a note about values, not keys).
fn documented() -> Vec<(Vec<String>, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("### Machine output: the `--json` shapes")
        .expect("the README's --json section");
    let mut out = Vec::new();
    for line in readme[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let (head, keys) = rest
            .split_once("): ")
            .or_else(|| rest.split_once(": "))
            .unwrap();
        let ticked = |s: &str| -> Vec<String> {
            s.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let mut without_notes = String::new();
        let mut depth = 0;
        for c in keys.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => without_notes.push(c),
                _ => {}
            }
        }
        let commands = ticked(&format!("`{head}"))
            .into_iter()
            .filter(|c| !c.contains('/'))
            .collect();
        // A command named in the list (`verify IMAGE` adds …) is no key.
        let keys = ticked(&without_notes)
            .into_iter()
            .filter(|k| !k.contains(' '))
            .collect();
        out.push((commands, keys));
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

/// Every key path of `v`, three levels of keys deep (`[]` for array elements).
fn paths(v: &serde_json::Value, prefix: &str, depth: usize, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Array(items) => {
            for i in items {
                paths(i, &format!("{prefix}[]"), depth, out);
            }
        }
        serde_json::Value::Object(m) if depth < 3 => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(x, &p, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// A key of the document itself (or of each element, when the document is an array).
fn top_level(k: &str) -> bool {
    let k = k.strip_prefix("[].").unwrap_or(k);
    !k.contains('.') && !k.contains("[]")
}

fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = shipit(dir)
        .args(args)
        .arg("--json")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shipit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shipit {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn every_json_document_has_only_the_documented_keys() {
    let project = tiny(None);
    let dir = project.path();
    // In the order a user runs them; each document is checked against its README line.
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("plan", vec!["plan"]),
        ("doctor", vec!["doctor"]),
        ("build", vec!["build"]),
        ("package", vec!["package"]),
        ("verify", vec!["verify"]),
        ("smoke", vec!["smoke", "--platform", "linux/amd64"]),
        ("release", vec!["release"]),
        ("publish", vec!["publish"]),
        ("verify IMAGE", vec!["verify", "oci:dist/oci:1.2.3"]),
    ];
    let docs = documented();
    let mut seen_top: Vec<BTreeSet<String>> = vec![BTreeSet::new(); docs.len()];
    for (name, args) in runs {
        let doc = run_json(dir, &args);
        let mut actual = BTreeSet::new();
        paths(&doc, "", 0, &mut actual);
        let (i, (_, keys)) = docs
            .iter()
            .enumerate()
            .find(|(_, (cmds, _))| cmds.iter().any(|c| c == name))
            .unwrap_or_else(|| panic!("the README documents no `{name}` --json shape"));
        let undocumented: Vec<&String> = actual.difference(keys).collect();
        assert!(
            undocumented.is_empty(),
            "`shipit {name} --json` prints keys the README does not list: {undocumented:?}"
        );
        seen_top[i].extend(actual.into_iter().filter(|k| top_level(k)));
    }
    for ((cmds, keys), seen) in docs.iter().zip(&seen_top) {
        let top: BTreeSet<&String> = keys.iter().filter(|k| top_level(k)).collect();
        let missing: Vec<&&String> = top.iter().filter(|k| !seen.contains(**k)).collect();
        assert!(
            missing.is_empty(),
            "the README lists top-level keys for {cmds:?} that no run printed: {missing:?}"
        );
    }
}
