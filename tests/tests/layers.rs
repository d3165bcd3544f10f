//! The structure of host-cli, read from its sources: modules import only downward (no cycles
//! between top-level modules, nor between the files of one folder), nothing but `main.rs` and
//! `commands/` imports from `commands/`, and no source file is over 800 lines.
//!
//! Imports are read as `crate::<module>` and `super::<module>` paths outside comments and
//! before the first `#[cfg(test)]` of a file (unit tests may reach anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file allowed, in lines.
const MAX_LINES: usize = 800;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module path of a source file relative to `src` (`training/fit.rs` → `["training", "fit"]`,
/// `export/mod.rs` → `["export"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// Identifiers following `prefix::` in the code part of `text`.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.insert(name);
            }
        }
    }
    found
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut c = stack[start..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn host_cli_layers_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host-cli/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "host-cli sources not found under {}", src.display());

    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Per folder: sibling file → siblings it names through `super::`.
    let mut siblings: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut too_long = Vec::new();
    let mut into_commands = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        if lines > MAX_LINES {
            too_long.push(format!("{} ({lines} lines)", file.display()));
        }
        let path = module_path(&src, file);
        let Some(first) = path.first().cloned() else { continue };
        let crate_refs = references(&text, "crate::");
        if first != "commands" && crate_refs.contains("commands") {
            into_commands.push(file.display().to_string());
        }
        let entry = top.entry(first.clone()).or_default();
        entry.extend(crate_refs.into_iter().filter(|m| *m != first));
        if path.len() >= 2 {
            let folder = path[..path.len() - 1].to_vec();
            let me = path[path.len() - 1].clone();
            let named = references(&text, "super::");
            let e = siblings.entry(folder).or_default().entry(me.clone()).or_default();
            e.extend(named.into_iter().filter(|m| *m != me));
        }
    }
    assert!(too_long.is_empty(), "files over {MAX_LINES} lines: {too_long:?}");
    assert!(into_commands.is_empty(), "imports from commands/ in {into_commands:?}");
    if let Some(c) = cycle(&top) {
        panic!("import cycle between host-cli modules: {}", c.join(" → "));
    }
    for (folder, graph) in &siblings {
        // `super::x` where x is not a sibling file (an item of the parent) is not an edge.
        let files: BTreeSet<&String> = graph.keys().collect();
        let graph: BTreeMap<String, BTreeSet<String>> = graph
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().filter(|m| files.contains(m)).cloned().collect()))
            .collect();
        if let Some(c) = cycle(&graph) {
            panic!("import cycle in {}/: {}", folder.join("/"), c.join(" → "));
        }
    }
}

#[test]
fn the_reader_finds_imports_and_cycles() {
    let refs = references("use crate::a::B;\n// crate::c\nlet x = crate::d::f();\n", "crate::");
    assert_eq!(refs, BTreeSet::from(["a".to_string(), "d".to_string()]));
    let refs = references("use crate::x;\n#[cfg(test)]\nuse crate::y;\n", "crate::");
    assert_eq!(refs, BTreeSet::from(["x".to_string()]));
    let g = |edges: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            m.entry(a.to_string()).or_default().insert(b.to_string());
        }
        m
    };
    assert!(cycle(&g(&[("a", "b"), ("b", "c")])).is_none());
    assert_eq!(cycle(&g(&[("a", "b"), ("b", "a")])).unwrap(), ["a", "b", "a"]);
}
