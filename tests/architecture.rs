//! The layout rules of docs/ARCHITECTURE.md, checked mechanically on the sources:
//! - no import cycle between the library's modules (a unit is a top-level module of
//!   `src/`; `ffi::oaep_label`, the one outbound call into libcrypto, is a unit of its own
//!   because rule 1 keeps it in `src/ffi/` while it sits below `crypto`);
//! - `crypto` is a leaf (only `error` and `ffi::oaep_label` below it), `error` knows no
//!   other module, and neither `backend` nor `mechanism` uses the other;
//! - no Rust file of the library or the CLI (`src/`, `cli/src/`) is longer than 800 lines.
//!
//! `cargo test --test architecture -- --nocapture` prints the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

/// A unit's dependencies, each with the files that create the edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a library file: `src/backend/azure/mod.rs` → `backend::azure`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.remove(0); // "src"
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The unit a module path belongs to.
fn unit(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [first, second, ..] if first == "ffi" && second == "oaep_label" => {
            Some("ffi::oaep_label".into())
        }
        [first, ..] => Some(first.clone()),
    }
}

/// The code of a file without its comments (doc links name modules too). A small lexer:
/// `//` starts a comment only outside string and character literals (escaped quotes and
/// `'"'` included); block comments and raw strings are rare enough here to be read as code,
/// which can only add edges (a false failure), never hide one.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let (mut i, mut in_string, mut cut) = (0, false, chars.len());
        while i < chars.len() {
            match chars[i] {
                '\\' if in_string => i += 1,
                '"' => in_string = !in_string,
                '\'' if !in_string && chars.get(i + 2) == Some(&'\'') => i += 2,
                '\'' if !in_string && chars.get(i + 1) == Some(&'\\') => {
                    // '\'' or '\"' or '\\': skip to the closing quote.
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                }
                '/' if !in_string && chars.get(i + 1) == Some(&'/') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.extend(&chars[..cut]);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a file names from `crate::` or `super::`, resolved to module paths (the
/// first two segments are enough to find the unit), `use` groups expanded.
fn referenced_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !is_ident(char::from(bytes[i - 1])) && bytes[i - 1] != b':';
        let (base, skip) = if boundary && rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if boundary && rest.starts_with("super::") {
            // `super::super::x` from `a::b::c` (a file) is `a::x`.
            let mut base = here.to_vec();
            let mut skip = 0;
            while code[i + skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        i += skip;
        collect_tree(code, &mut i, base, &mut found);
    }
    found
}

/// Reads `a::b::{c, d::{e}}` (or one path) at `*i`, pushing every full path.
fn collect_tree(code: &str, i: &mut usize, prefix: Vec<String>, found: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        let rest = &code[*i..];
        if let Some(group) = rest.strip_prefix('{') {
            *i += 1;
            let _ = group;
            loop {
                while code[*i..].starts_with(|c: char| c.is_whitespace() || c == ',') {
                    *i += 1;
                }
                if code[*i..].starts_with('}') || *i >= code.len() {
                    *i += 1;
                    return;
                }
                let before = *i;
                collect_tree(code, i, path.clone(), found);
                if *i == before {
                    // Nothing this scanner reads (`r#type`, …): skip it rather than loop.
                    *i += code[*i..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            // `*`, `self`-less ends: the path so far.
            if rest.starts_with('*') {
                *i += 1;
            }
            found.push(path);
            return;
        }
        let ident = &rest[..len];
        *i += len;
        if ident != "self" {
            path.push(ident.to_owned());
        }
        if code[*i..].starts_with("::") {
            *i += 2;
        } else {
            // ` as x`, `;`, `,`, `}`, `(`, …: the path ends here.
            found.push(path);
            return;
        }
    }
}

fn import_graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    // The top-level modules: `src/NAME.rs` and `src/NAME/`.
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(f.strip_prefix(root).ok()?).first().cloned())
        .collect();
    let mut graph = Graph::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap_or(file);
        let here = module_path(rel);
        let Some(from) = unit(&here) else { continue };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let edges = graph.entry(from.clone()).or_default();
        for path in referenced_paths(&code_of(&text), &here) {
            // `crate::Error` / `crate::Result` are lib.rs's re-exports of `error`.
            // A `super::` inside an inline module (`mod tests`) of a top-level file reads
            // as the crate root here; such paths name no module and are skipped.
            let target = match path.first().map(String::as_str) {
                Some("Error" | "Result") => Some("error".to_owned()),
                Some(first) if modules.contains(first) => unit(&path),
                _ => None,
            };
            if let Some(to) = target
                && to != from
            {
                edges
                    .entry(to)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    graph
}

/// Every cycle's units (Tarjan's strongly connected components of more than one unit).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let next: Vec<&'g str> = s
            .graph
            .get(v)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for w in next {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn describe(graph: &Graph, units: &[String]) -> String {
    let mut lines = Vec::new();
    for a in units {
        for (b, files) in graph.get(a).into_iter().flatten() {
            if units.contains(b) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                lines.push(format!("  {a} -> {b} ({})", files.join(", ")));
            }
        }
    }
    lines.join("\n")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn modules_import_each_other_without_cycles() {
    let graph = import_graph(&root());
    for (from, to) in &graph {
        let to: Vec<&str> = to.keys().map(String::as_str).collect();
        println!("{from} -> {}", to.join(", "));
    }
    assert!(graph.len() > 8, "the walk found the modules: {graph:?}");
    let found = cycles(&graph);
    let text: Vec<String> = found.iter().map(|c| describe(&graph, c)).collect();
    assert!(
        found.is_empty(),
        "import cycles between modules:\n{}",
        text.join("\n\n")
    );
}

#[test]
fn layer_rules_hold() {
    let graph = import_graph(&root());
    let uses = |a: &str| -> BTreeSet<&str> {
        graph
            .get(a)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let allowed = |unit: &str, allowed: &[&str]| {
        let extra: Vec<&str> = uses(unit)
            .into_iter()
            .filter(|u| !allowed.contains(u))
            .collect();
        assert!(
            extra.is_empty(),
            "`{unit}` may use only {allowed:?}, but uses {extra:?}:\n{}",
            describe(
                &graph,
                &std::iter::once(unit)
                    .chain(extra.iter().copied())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            )
        );
    };
    allowed("crypto", &["error", "ffi::oaep_label"]);
    allowed("error", &[]);
    allowed("ffi::oaep_label", &[]);
    for (a, b) in [("backend", "mechanism"), ("mechanism", "backend")] {
        assert!(
            !uses(a).contains(b),
            "`{a}` must not use `{b}`:\n{}",
            describe(&graph, &[a.to_owned(), b.to_owned()])
        );
    }
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["src", "cli/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| {
                format!(
                    "{} ({n} lines)",
                    f.strip_prefix(&root).unwrap_or(f).display()
                )
            })
        })
        .collect();
    long.sort();
    assert!(files.len() > 40, "the walk found the sources");
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by what they do):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_scanner_reads_paths_groups_and_super() {
    let here = vec![
        "backend".to_owned(),
        "azure".to_owned(),
        "errors".to_owned(),
    ];
    let code = code_of(
        "use crate::{error::{Error, Result}, crypto::HashAlg};\n\
         // use crate::mechanism;\n\
         let x = crate::object::attributes::f(); let u = \"https://a\"; // crate::session\n\
         let q = \"a \\\"b//\\\"\"; let c = '\"'; crate::telemetry::f();\n\
         use super::super::open::x as y;\n\
         use super::*;\n",
    );
    let units: BTreeSet<String> = referenced_paths(&code, &here)
        .iter()
        .filter_map(|p| unit(p))
        .collect();
    let expected: BTreeSet<String> = ["error", "crypto", "object", "telemetry", "backend"]
        .map(str::to_owned)
        .into();
    assert_eq!(units, expected);
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().entry(b.into()).or_default();
    }
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}
