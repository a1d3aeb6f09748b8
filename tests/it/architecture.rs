//! The shape of `src/`: the file-level module graph has no cycle, and nothing below the command
//! line imports it. The graph is read from the sources: each file is a module path
//! (`src/oci/image.rs` is `oci::image`, `src/stage/mod.rs` is `stage`), and every `crate::…`,
//! `super::…` and `self::…` path in it (also inside `use crate::{a, b::{c, d}}` groups), and every
//! `use child::…` of a child module, is an edge to the longest module prefix that is a file.
//! Comments and a `#[cfg(test)]` module at the end of a file are left out: they are not part of
//! the layering.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/oci/image.rs` → `oci::image`; `src/stage/mod.rs` → `stage`; `src/lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments and without a trailing inline `#[cfg(test)] mod NAME { … }`
/// (a `#[cfg(test)] mod NAME;` declaration is only a line: the file after it still counts).
fn code_of(text: &str) -> String {
    let inline_test_module = text.match_indices("#[cfg(test)]\n").find(|(i, m)| {
        let line = text[i + m.len()..].lines().next().unwrap_or("");
        let decl = ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
            .iter()
            .any(|p| line.starts_with(p));
        decl && !line.trim_end().ends_with(';')
    });
    let text = match inline_test_module {
        Some((i, _)) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut in_block = 0usize;
    for line in text.lines() {
        let mut rest = line;
        let mut kept = String::new();
        loop {
            if in_block > 0 {
                match rest.find("*/") {
                    Some(i) => {
                        in_block -= 1;
                        rest = &rest[i + 2..];
                    }
                    None => break,
                }
            } else if let Some(i) = rest.find("/*") {
                let before = &rest[..i];
                match before.find("//") {
                    Some(j) => {
                        kept.push_str(&before[..j]);
                        break;
                    }
                    None => {
                        kept.push_str(before);
                        in_block += 1;
                        rest = &rest[i + 2..];
                    }
                }
            } else {
                match rest.find("//") {
                    Some(j) => kept.push_str(&rest[..j]),
                    None => kept.push_str(rest),
                }
                break;
            }
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a path tree after `prefix::` (identifiers joined by `::`, `{a, b::{c}}` groups) and
/// returns every full path it names. `s` starts right after the `::`.
fn path_tree(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let bytes: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut path = prefix.to_vec();
    loop {
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == '{' {
            i += 1;
            loop {
                while i < bytes.len() && (bytes[i].is_whitespace() || bytes[i] == ',') {
                    i += 1;
                }
                if i >= bytes.len() {
                    return i;
                }
                if bytes[i] == '}' {
                    return i + 1;
                }
                let rest: String = bytes[i..].iter().collect();
                let used = path_tree(&rest, &path, out);
                if used == 0 {
                    i += 1;
                } else {
                    i += used;
                }
            }
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i == start {
            out.push(path);
            return i;
        }
        let ident: String = bytes[start..i].iter().collect();
        if ident != "self" {
            path.push(ident);
        }
        if bytes.get(i) == Some(&':') && bytes.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            // `as alias` and the like end the path.
            out.push(path);
            return i;
        }
    }
}

/// Every module path a file's code names through `crate::`, `super::` or `self::`.
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = if module == "lib" || module == "main" {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    for (k, &(pos, c)) in chars.iter().enumerate() {
        if k > 0 && is_ident(chars[k - 1].1) {
            continue;
        }
        if !c.is_ascii_lowercase() {
            continue;
        }
        let rest = &code[pos..];
        // `use child::Item` (2018 paths): a path from this module to its child module.
        if let Some(path) = rest.strip_prefix("use ")
            && !["crate::", "super::", "self::", "::"]
                .iter()
                .any(|p| path.trim_start().starts_with(p))
        {
            path_tree(path.trim_start(), &here, &mut out);
            continue;
        }
        let (base, len) = if rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("self::") {
            (here.clone(), "self::".len())
        } else if rest.starts_with("super::") {
            let mut base = here.clone();
            let mut len = 0;
            let mut r = rest;
            while r.starts_with("super::") {
                base.pop();
                len += "super::".len();
                r = &r["super::".len()..];
            }
            (base, len)
        } else {
            continue;
        };
        // `super::super::x` was consumed whole; skip the inner matches.
        if k >= 7 && code[..pos].ends_with("super::") {
            continue;
        }
        path_tree(&rest[len..], &base, &mut out);
    }
    out
}

/// The file-level graph: module → the modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut edges = BTreeSet::new();
        for path in references(module, &code) {
            // The longest prefix of the path that is a file of its own.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains_key(m));
            if let Some(t) = target
                && &t != module
            {
                edges.insert(t);
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A cycle of the graph, as a list of modules whose last one names the first, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the stack, 2 done.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|m| m == next).unwrap();
                    return Some(stack[from..].to_vec());
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_module_graph_of_src_has_no_cycle() {
    let graph = graph();
    assert!(
        graph.len() > 30 && graph["stage::release"].contains("plan"),
        "the graph was not read: {graph:?}"
    );
    // Report every cycle at once: after each one found, drop its closing edge and look again.
    let mut rest = graph.clone();
    let mut cycles = Vec::new();
    while let Some(cycle) = find_cycle(&rest) {
        let (last, first) = (cycle.last().unwrap(), cycle.first().unwrap());
        cycles.push(format!("{} -> {first}", cycle.join(" -> ")));
        rest.get_mut(last).unwrap().remove(first);
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn only_main_and_lib_name_the_cli() {
    let graph = graph();
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(m, edges)| edges.contains("cli") && *m != "main" && *m != "lib")
        .map(|(m, _)| m)
        .collect();
    assert!(
        importers.is_empty(),
        "modules below the command line import it: {importers:?}"
    );
}

#[test]
fn the_graph_reader_sees_groups_super_and_cycles() {
    let refs = references(
        "stage::split",
        "use crate::{cli::{Global, jobs}, oci::image::Descriptor};\nuse super::{build, package};\nlet x = super::super::lib::f();\npub use child::Item;",
    );
    for want in [
        vec!["cli", "Global"],
        vec!["cli", "jobs"],
        vec!["oci", "image", "Descriptor"],
        vec!["stage", "build"],
        vec!["stage", "package"],
        vec!["lib", "f"],
        vec!["stage", "split", "child", "Item"],
    ] {
        assert!(
            refs.iter().any(|r| r == &want),
            "{want:?} not found in {refs:?}"
        );
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(
        code_of("a // crate::cli\n/* crate::cli */ b\n#[cfg(test)]\nmod tests { crate::cli }"),
        "a \n b\n"
    );
}
