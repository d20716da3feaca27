//! The layers point one way. Every `.rs` file under `src/` belongs to the layer of its first
//! directory, and a file may name (in code: `use` lines and paths; comments and string
//! literals do not count) only its own layer and the layers below it:
//!
//! ```text
//! core ← clock ← metrics ← shard ← transport ← node ← sim ← bin
//! ```
//!
//! * `core` names nothing of ours but `kommander_wal::PartitionId` (which it re-exports);
//! * `clock` (`src/clock.rs`, the hybrid logical clock) is a leaf: it names no other module of
//!   the crate; the shards' `Inbound` hands it to the transports, which stamp frames with it;
//! * `metrics` (`src/metrics.rs`) is a leaf: it names no other module of the crate, and every
//!   layer above the core may record through it (the sans-IO core records nothing);
//! * `sim` may name every layer of the library;
//! * the binary (`src/bin`) and the examples (`examples/`) are users of the library: they may
//!   name only `kommander_raft::` paths that are public without the `sim` feature (the binary
//!   is built without it). A module declared `pub` only under `#[cfg(feature = "sim")]` is
//!   internal; the default build's `cargo clippy --lib --bins` in `.ci/run` checks the rest.
//!
//! `super::` paths are resolved against the file's module, so `super::super::node` counts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A file may name a layer whose rank is not above its own.
const LAYERS: [&str; 8] = [
    "core",
    "clock",
    "metrics",
    "shard",
    "transport",
    "node",
    "sim",
    "bin",
];

/// Layers that name no other layer of the crate.
const LEAVES: [&str; 2] = ["clock", "metrics"];

/// The only item of the WAL crate the core may name.
const CORE_WAL_ALLOWED: &str = "kommander_wal::PartitionId";

/// One source file: its path under `src/` (with `/` separators) and its text.
struct Source {
    path: String,
    text: String,
}

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// The module path of a file (`transport/tcp/mod.rs` → `transport::tcp`); `bin` files are
/// the binary crate's, rooted at `bin`.
fn module_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of `text` with comments, string and char literals blanked out (lengths and line
/// breaks kept, so nothing that was split joins up).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let closing: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = j + 1;
            let rest: String = chars[body_start..].iter().collect();
            let end = rest.find(&closing).map_or(chars.len(), |at| {
                body_start + rest[..at].chars().count() + closing.len()
            });
            for &skipped in &chars[i..end] {
                out.push(blank(skipped));
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let width = if chars[i] == '\\' { 2 } else { 1 };
                for k in 0..width {
                    if let Some(&skipped) = chars.get(i + k) {
                        out.push(blank(skipped));
                    }
                }
                i += width;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}', '\''), or else a lifetime.
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .skip(1)
                    .position(|&d| d == '\'')
                    .map(|at| i + 2 + 1 + at + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &skipped in &chars[i..end.min(chars.len())] {
                        out.push(blank(skipped));
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every path in `code` that starts with one of `roots`, expanded through `use` groups
/// (`crate::{a::X, b::{Y, Z}}` gives `crate::a::X`, `crate::b::Y`, `crate::b::Z`), as its
/// segments, with the 1-based line it starts on.
fn paths(code: &str, roots: &[&str]) -> Vec<(usize, Vec<String>)> {
    let tokens = tokenize(code);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, ref token) = tokens[i];
        let starts_path = roots.contains(&token.as_str())
            && tokens.get(i + 1).is_some_and(|(_, t)| t == "::")
            && !(i > 0 && tokens[i - 1].1 == "::");
        if starts_path {
            let mut prefix = vec![token.clone()];
            let mut j = i + 1;
            // `super::super::x`: the run of roots belongs to one path.
            while tokens.get(j).is_some_and(|(_, t)| t == "::")
                && tokens.get(j + 1).is_some_and(|(_, t)| {
                    t == "super" && prefix.last().is_some_and(|p| p == "super")
                })
            {
                prefix.push("super".to_owned());
                j += 2;
            }
            let mut expanded = Vec::new();
            expand(&tokens, j, prefix, &mut expanded);
            found.extend(expanded.into_iter().map(|p| (line, p)));
        }
        i += 1;
    }
    found
}

/// Splits code into identifiers, `::` and single punctuation characters, with their lines.
fn tokenize(code: &str) -> Vec<(usize, String)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push((line, "::".to_owned()));
            i += 2;
        } else {
            tokens.push((line, c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// Expands the path continuing at `tokens[at]` (just after its prefix, at a `::` or not) into
/// `out`.
fn expand(tokens: &[(usize, String)], at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut i = at;
    while tokens.get(i).is_some_and(|(_, t)| t == "::") {
        match tokens.get(i + 1).map(|(_, t)| t.as_str()) {
            Some("{") => {
                let mut depth = 0;
                let mut item_start = i + 2;
                let mut j = i + 1;
                while j < tokens.len() {
                    match tokens[j].1.as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand_item(tokens, item_start, j, &path, out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            expand_item(tokens, item_start, j, &path, out);
                            item_start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                return;
            }
            Some(t) if t.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                path.push(t.to_owned());
                i += 2;
            }
            _ => break,
        }
    }
    out.push(path);
}

/// One item of a `use` group, `tokens[from..to]`: `a::b`, `a::{..}`, `self` or `X as Y`.
fn expand_item(
    tokens: &[(usize, String)],
    from: usize,
    to: usize,
    prefix: &[String],
    out: &mut Vec<Vec<String>>,
) {
    let Some((_, first)) = tokens.get(from).filter(|_| from < to) else {
        return;
    };
    if first == "self" {
        out.push(prefix.to_vec());
        return;
    }
    if first == "{" || first == "*" {
        out.push(prefix.to_vec());
        return;
    }
    let mut path = prefix.to_vec();
    path.push(first.clone());
    let mut nested = Vec::new();
    expand(&tokens[..to], from + 1, path, &mut nested);
    out.extend(nested);
}

/// Modules declared `pub` only with the `sim` feature: `#[cfg(feature = "sim")]` right before
/// `pub mod name;`. Each as its full path (`transport::tcp::handshake`).
fn sim_only_modules(sources: &[Source]) -> BTreeSet<Vec<String>> {
    let mut modules = BTreeSet::new();
    for source in sources {
        let mut sim_attribute = false;
        for line in source.text.lines().map(str::trim) {
            if line == "#[cfg(feature = \"sim\")]" {
                sim_attribute = true;
                continue;
            }
            if sim_attribute
                && let Some(name) = line
                    .strip_prefix("pub mod ")
                    .and_then(|rest| rest.strip_suffix(';'))
            {
                let mut path = module_of(&source.path);
                path.push(name.to_owned());
                modules.insert(path);
            }
            if !line.starts_with("#[") {
                sim_attribute = false;
            }
        }
    }
    modules
}

/// Every violation of the layering in `sources`, as `path:line: what`.
fn violations(sources: &[Source]) -> Vec<String> {
    let internal = sim_only_modules(sources);
    let mut found = Vec::new();
    for source in sources {
        if source.path == "lib.rs" {
            // The crate root declares the layers and re-exports the public surface.
            continue;
        }
        let layer = module_of(&source.path)
            .into_iter()
            .next()
            .unwrap_or_default();
        let layer = layer.as_str();
        let Some(own_rank) = rank(layer).or((layer == "examples").then_some(LAYERS.len())) else {
            found.push(format!(
                "{}: not in a layer (a new top-level module needs a place in LAYERS)",
                source.path
            ));
            continue;
        };
        let code = code_only(&source.text);
        let module = module_of(&source.path);
        if layer == "bin" || layer == "examples" {
            for (line, path) in paths(&code, &["kommander_raft"]) {
                let inside = &path[1..];
                if let Some(hidden) = internal.iter().find(|m| inside.starts_with(m)) {
                    found.push(format!(
                        "{}:{line}: a user of the library names `{}`, but `{}` is public only \
                         with the `sim` feature",
                        source.path,
                        path.join("::"),
                        hidden.join("::")
                    ));
                }
            }
            continue;
        }
        for (line, path) in paths(&code, &["crate", "super"]) {
            let absolute = if path[0] == "crate" {
                path[1..].to_vec()
            } else {
                let ups = path.iter().take_while(|s| *s == "super").count();
                let mut resolved = module[..module.len().saturating_sub(ups)].to_vec();
                resolved.extend_from_slice(&path[ups..]);
                resolved
            };
            let Some(target) = absolute.first() else {
                continue;
            };
            if LEAVES.contains(&layer) && target != layer && rank(target).is_some() {
                found.push(format!(
                    "{}:{line}: {layer} is a leaf but names `{}`",
                    source.path,
                    path.join("::")
                ));
            } else if let Some(target_rank) = rank(target)
                && target_rank > own_rank
            {
                found.push(format!(
                    "{}:{line}: the {layer} layer names `{}` (a higher layer: {target})",
                    source.path,
                    path.join("::")
                ));
            }
        }
        if layer == "core" {
            for (line, path) in paths(&code, &["kommander_wal"]) {
                if path.join("::") != CORE_WAL_ALLOWED {
                    found.push(format!(
                        "{}:{line}: the core names `{}` (it may name only {CORE_WAL_ALLOWED})",
                        source.path,
                        path.join("::")
                    ));
                }
            }
        }
    }
    found
}

fn read_sources(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src");
            out.push(Source {
                path: relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
                text: std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
            });
        }
    }
}

#[test]
fn no_layer_names_a_higher_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&root, &root, &mut sources);
    assert!(
        sources.len() > 50,
        "found only {} files under src/",
        sources.len()
    );
    let found = violations(&sources);
    assert!(
        found.is_empty(),
        "{} layering violations (core ← clock ← metrics ← shard ← transport ← node ← sim ← bin):\n{}",
        found.len(),
        found.join("\n")
    );
}

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.to_owned(),
        text: text.to_owned(),
    }
}

#[test]
fn the_checker_reports_every_kind_of_violation_and_nothing_else() {
    let sources = [
        source(
            "lib.rs",
            "#[cfg(feature = \"sim\")]\npub mod core;\n#[cfg(feature = \"sim\")]\npub mod node;\npub mod transport;\n",
        ),
        source(
            "transport/mod.rs",
            "#[cfg(feature = \"sim\")]\n#[doc(hidden)]\npub mod faulty;\npub mod memory;\n",
        ),
        source(
            "core/replica/mod.rs",
            "use crate::{shard::Reply, core::Entry};\n\
             use kommander_wal::PartitionId;\n\
             use kommander_wal::WalConfig;\n\
             // use crate::node::Raft; (a comment)\n\
             const NOTE: &str = \"crate::node::Raft\";\n\
             fn f<'a>(x: &'a str) -> char { let _ = super::super::sim::Simulation::new(); 'x' }\n",
        ),
        source(
            "transport/tcp/mod.rs",
            "use super::super::node::NodeConfig;\nuse super::Inbound;\nuse crate::shard::Transport;\n",
        ),
        source(
            "node/raft.rs",
            "fn f() { crate::sim::replay(); }\nuse crate::transport::{Inbound, memory::{self, MemoryNetwork}};\n",
        ),
        source(
            "sim/cluster.rs",
            "use crate::node::Raft;\nuse crate::{core::Replica, transport::faulty::FaultInjector};\n",
        ),
        source(
            "examples/kv.rs",
            "use kommander_raft::node::Raft;\nuse kommander_raft::transport::tcp::TcpTransport;\n",
        ),
        source(
            "bin/kommander/main.rs",
            "use kommander_raft::{Raft, core::Replica};\n\
             use kommander_raft::transport::memory::MemoryNetwork;\n\
             use kommander_raft::transport::faulty::FaultInjector;\n\
             const FILTER: &str = \"kommander_raft::core=warn\";\n\
             let s = r#\"kommander_raft::core::X\"#;\n",
        ),
        source("metrics.rs", "use crate::core::NodeId;\n"),
        source("core/log.rs", "fn f() { crate::metrics::describe(); }\n"),
        source("shard/worker.rs", "use crate::metrics::ShardMetrics;\n"),
        source("web/server.rs", "fn main() {}\n"),
    ];
    let found = violations(&sources);
    let expected = [
        "core/replica/mod.rs:1: the core layer names `crate::shard::Reply`",
        "core/replica/mod.rs:3: the core names `kommander_wal::WalConfig`",
        "core/replica/mod.rs:6: the core layer names `super::super::sim::Simulation::new`",
        "transport/tcp/mod.rs:1: the transport layer names `super::super::node::NodeConfig`",
        "node/raft.rs:1: the node layer names `crate::sim::replay`",
        "bin/kommander/main.rs:1: a user of the library names `kommander_raft::core::Replica`",
        "bin/kommander/main.rs:3: a user of the library names `kommander_raft::transport::faulty::FaultInjector`",
        "examples/kv.rs:1: a user of the library names `kommander_raft::node::Raft`",
        "metrics.rs:1: metrics is a leaf but names `crate::core::NodeId`",
        "core/log.rs:1: the core layer names `crate::metrics::describe`",
        "web/server.rs: not in a layer",
    ];
    for wanted in expected {
        assert!(
            found.iter().any(|f| f.starts_with(wanted)),
            "the checker missed `{wanted}`; it found:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "the checker reported more than the planted violations:\n{}",
        found.join("\n")
    );
}
