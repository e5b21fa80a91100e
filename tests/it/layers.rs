//! The module map in docs/modules.md is the code's: every module of
//! `src/` sits in one layer there, imports (`crate::` paths, tests left
//! out) point only down or sideways, apart from the few exceptions the map
//! names with a reason, there is no cycle, and no source file is over 900
//! lines. The layers are read from the document, so the map and the code
//! cannot drift apart without this test going red.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 900;
const MAX_EXCEPTIONS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers and exceptions the map declares.
struct Map {
    /// Unit (`github`, `github::api`) to its layer number.
    layer: BTreeMap<String, u32>,
    /// Imports allowed to point up: (from unit, to unit).
    exceptions: BTreeSet<(String, String)>,
}

fn read_map() -> Map {
    let text = std::fs::read_to_string(root().join("docs/modules.md"))
        .expect("docs/modules.md: the module map");
    let mut layer = BTreeMap::new();
    let mut exceptions = BTreeSet::new();
    let mut current: Option<u32> = None;
    let mut in_exceptions = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_exceptions = h.trim().eq_ignore_ascii_case("exceptions");
            current = h
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u32>().ok());
            continue;
        }
        if let (Some(n), Some(list)) = (current, line.strip_prefix("Modules:")) {
            for name in backticked(list) {
                let old = layer.insert(name.clone(), n);
                assert!(old.is_none(), "docs/modules.md lists `{name}` twice");
            }
        }
        if in_exceptions && line.starts_with("- ") {
            let names = backticked(line);
            let arrow = names.first().expect("an exception names `a -> b`");
            let (a, b) = arrow
                .split_once(" -> ")
                .expect("an exception is written `from -> to`");
            exceptions.insert((a.trim().to_string(), b.trim().to_string()));
        }
    }
    assert!(!layer.is_empty(), "docs/modules.md declares no layer");
    Map { layer, exceptions }
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every `.rs` file under src/, with its module path (`lock::file`).
fn sources() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src/") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            (parts.join("::"), p)
        })
        .collect()
}

/// The source with comments, string literals and `#[cfg(test)]` modules
/// blanked out, so only code is searched for `crate::` paths.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            i = end;
            continue;
        }
        if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(b.len(), |n| i + n + 2);
            i = end;
            continue;
        }
        if let Some(len) = raw_string_len(rest) {
            i += len;
            out.push_str("\"\"");
            continue;
        }
        if rest.starts_with('"') {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
            continue;
        }
        if rest.starts_with("'{'") || rest.starts_with("'}'") || rest.starts_with("'\"'") {
            i += 3;
            out.push_str("' '");
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        i += c.len_utf8();
    }
    strip_test_modules(&out)
}

fn raw_string_len(s: &str) -> Option<usize> {
    let after_r = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(s.len() - body.len() + end + close.len())
}

fn strip_test_modules(code: &str) -> String {
    let re = regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
        .expect("regex");
    let mut out = String::new();
    let mut i = 0;
    while let Some(m) = re.find(&code[i..]) {
        out.push_str(&code[i..i + m.start()]);
        let mut j = i + m.end();
        let mut depth = 1;
        let b = code.as_bytes();
        while depth > 0 && j < b.len() {
            match b[j] {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        i = j;
    }
    out.push_str(&code[i..]);
    out
}

/// Files that are `#[cfg(test)] mod name;` of their parent: tests, left out.
fn test_only_files(files: &[(String, PathBuf)]) -> BTreeSet<String> {
    let re = regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
        .expect("regex");
    let mut out = BTreeSet::new();
    for (module, path) in files {
        let text = std::fs::read_to_string(path).expect("read source");
        for c in re.captures_iter(&text) {
            let child = &c[3];
            out.insert(
                if module == "lib" || module == "main" || module.is_empty() {
                    child.to_string()
                } else {
                    format!("{module}::{child}")
                },
            );
        }
    }
    out
}

/// The module paths a `crate::` use names: `crate::a::{b, c::d}` gives
/// `a::b` and `a::c::d`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(n) = rest.find("crate::") {
        let before = rest[..n].chars().last();
        rest = &rest[n + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `runbook_crate::`, not ours
        }
        expand("", rest, &mut out);
    }
    out
}

/// Reads one path (with `{…}` groups) at the start of `s`, appending each
/// full path under `prefix`; returns how much it consumed.
fn expand(prefix: &str, s: &str, out: &mut Vec<String>) -> usize {
    let mut path = prefix.to_string();
    let mut i = 0;
    let b = s.as_bytes();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            if !path.is_empty() {
                path.push_str("::");
            }
            path.push_str(&s[start..i]);
        }
        if s[i..].starts_with("::") {
            i += 2;
            if s[i..].starts_with('{') {
                i += 1;
                loop {
                    while i < b.len() && (b[i] as char).is_whitespace() {
                        i += 1;
                    }
                    if i >= b.len() || b[i] == b'}' {
                        return i + 1;
                    }
                    i += expand(&path, &s[i..], out);
                    while i < b.len() && ((b[i] as char).is_whitespace() || b[i] == b',') {
                        i += 1;
                    }
                }
            }
            continue;
        }
        out.push(path);
        return i;
    }
}

/// The unit (a module the map lists) a module belongs to: the longest
/// listed prefix.
fn unit_of(module: &str, map: &Map) -> Option<String> {
    let parts: Vec<&str> = module.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|p| map.layer.contains_key(p))
}

/// Imports between units, read from the code: (from, to) → one example
/// (file module, imported path).
fn unit_edges(map: &Map) -> BTreeMap<(String, String), (String, String)> {
    let files = sources();
    let tests = test_only_files(&files);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges = BTreeMap::new();
    for (module, path) in &files {
        if tests.contains(module) || module == "lib" || module == "main" {
            continue;
        }
        let from = unit_of(module, map).unwrap_or_else(|| {
            panic!("src module `{module}` is in no layer of docs/modules.md: add it to one")
        });
        let code = code_only(&std::fs::read_to_string(path).expect("read source"));
        for p in crate_paths(&code) {
            let parts: Vec<&str> = p.split("::").collect();
            let Some(target) = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find(|c| modules.contains(c))
            else {
                continue; // a crate-root item or macro
            };
            let to = unit_of(&target, map)
                .unwrap_or_else(|| panic!("`{target}` is in no layer of docs/modules.md"));
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert((module.clone(), p.clone()));
            }
        }
    }
    edges
}

#[test]
fn every_module_is_in_one_layer_of_the_map() {
    let map = read_map();
    let top: BTreeSet<String> = sources()
        .into_iter()
        .map(|(m, _)| m.split("::").next().unwrap_or_default().to_string())
        .filter(|m| m != "lib")
        .collect();
    let missing: Vec<&String> = top.iter().filter(|m| unit_of(m, &map).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules missing from docs/modules.md: {missing:?}"
    );
    let stale: Vec<&String> = map
        .layer
        .keys()
        .filter(|u| !top.contains(u.split("::").next().unwrap_or_default()))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/modules.md lists modules src/ no longer has: {stale:?}"
    );
}

#[test]
fn imports_point_down_apart_from_the_named_exceptions() {
    let map = read_map();
    let edges = unit_edges(&map);
    let up: BTreeMap<_, _> = edges
        .iter()
        .filter(|((a, b), _)| map.layer[b] > map.layer[a])
        .collect();
    let unexplained: Vec<String> = up
        .iter()
        .filter(|(k, _)| !map.exceptions.contains(*k))
        .map(|((a, b), (m, p))| format!("{a} -> {b} (in {m}: crate::{p})"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "imports up the layers of docs/modules.md, not among its exceptions:\n  {}",
        unexplained.join("\n  ")
    );
    let stale: Vec<_> = map
        .exceptions
        .iter()
        .filter(|k| !up.contains_key(k))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/modules.md names exceptions the code no longer has: {stale:?}"
    );
    assert!(
        map.exceptions.len() <= MAX_EXCEPTIONS,
        "{} exceptions; the map allows at most {MAX_EXCEPTIONS}",
        map.exceptions.len()
    );
}

#[test]
fn no_cycle_between_modules() {
    let map = read_map();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in unit_edges(&map).keys() {
        graph.entry(a.clone()).or_default().insert(b.clone());
    }
    // Depth-first search; a back edge is a cycle, reported with its path.
    fn visit(
        v: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in graph.get(v).into_iter().flatten() {
            match state.get(w.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(w, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in graph.keys() {
        if state.get(v.as_str()).copied().unwrap_or(0) == 0 {
            let cycle = visit(v, &graph, &mut state, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "a cycle of imports: {}",
                cycle.unwrap_or_default().join(" -> ")
            );
        }
    }
}

#[test]
fn no_source_file_is_over_900_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter_map(|(_, p)| {
            let n = std::fs::read_to_string(&p).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split by concern: {}", long.join(", "));
}

#[test]
fn the_path_reader_expands_groups() {
    let got = crate_paths("use crate::a::{b, c::{d, e}}; x = crate::f::g(1); my_crate::h");
    assert_eq!(got, ["a::b", "a::c::d", "a::c::e", "f::g"]);
    let code = code_only(
        "// crate::x\nlet s = \"crate::y\"; crate::z\n#[cfg(test)]\nmod tests { use crate::w; }",
    );
    assert_eq!(crate_paths(&code), ["z"]);
}
