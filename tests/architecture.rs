//! No import cycles between files.
//!
//! A cycle between two files means neither can be read, tested or moved
//! without the other; the issue that split netwhy into a pipeline and pure
//! modules removed the ones that had grown, and this test keeps new ones
//! out. It reads the source text only (no compiler, no root): every file of
//! src/ and crates/*/src/, the module paths each one names (`crate::a::b`,
//! `super::x`, `self::x`, `netwhy::..` / `netwhy_vmcore::..`, names a `use`
//! brought in, child modules), each mapped to the file that defines the
//! longest prefix of that path. Comments and string literals are stripped
//! first, so prose never counts.
//!
//! A file's references to its own ancestors (a child using `super::Item`,
//! any file naming lib.rs) are left out: a mod.rs and the files of its own
//! submodules refer to each other, which is how Rust modules are built, not
//! a cycle to untangle. References down into submodules stay, so a cycle
//! that leaves a directory's mod.rs through one of its children and comes
//! back from outside is still found. A name a mod.rs only re-exports
//! (`pub use child::Item`) counts as a reference to the file defining it.
//!
//! `ARCH_DUMP=1 cargo test --test architecture -- --nocapture` prints the
//! whole file graph.
use std::fs;
use std::path::{Path, PathBuf};

#[path = "architecture/graph.rs"]
mod graph;
#[path = "architecture/lex.rs"]
mod lex;
#[cfg(test)]
#[path = "architecture/selftest.rs"]
mod selftest;

use graph::Graph;

/// Cycle edges that belong to work outside this test's author's files,
/// ignored until that work lands. Each entry is (from, to), both relative
/// to the repository root. An entry whose edge no longer exists fails the
/// test, so the list only shrinks: delete the entry when the test says so.
///
/// Empty now; kept so a cycle that must land in steps can be recorded.
const KNOWN_ELSEWHERE: &[(&str, &str)] = &[];

/// The same for cycles between top-level modules (a directory and all its
/// files, or one top-level file): `src/event` stands for src/event.rs,
/// `src/diagnose` for everything under src/diagnose/.
///
/// Empty now.
const MODULES_KNOWN_ELSEWHERE: &[(&str, &str)] = &[];

/// A library crate: the name other crates use for it, and its root dir.
const LIBS: &[(&str, &str)] = &[("netwhy", "src"), ("netwhy_vmcore", "crates/vmcore/src")];

#[test]
fn no_import_cycles_between_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for (_, dir) in LIBS {
        collect(root, &root.join(dir), &mut files);
    }
    assert!(
        files.len() > 50,
        "found only {} source files under {:?}",
        files.len(),
        LIBS
    );
    let graph = Graph::build(&files, LIBS);
    // A sanity anchor: if path resolution broke, the graph would be empty
    // and every check would pass.
    assert!(
        graph.has_edge("src/cli/run.rs", "src/sys/cgroup.rs"),
        "the checker no longer sees cli/run.rs using sys::cgroup"
    );
    if std::env::var_os("ARCH_DUMP").is_some() {
        for (a, bs) in &graph.edges {
            for b in bs {
                println!("{a} -> {b}");
            }
        }
    }
    let mut stale = Vec::new();
    for (a, b) in KNOWN_ELSEWHERE {
        if !graph.has_edge(a, b) {
            stale.push(format!("{a} -> {b}"));
        }
    }
    assert!(
        stale.is_empty(),
        "KNOWN_ELSEWHERE entries that no longer exist, remove them: {stale:?}"
    );
    let cycles = graph.without(KNOWN_ELSEWHERE).cycles();
    assert!(
        cycles.is_empty(),
        "import cycles between files (move the shared part to one of them or \
         to a third file):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for (_, dir) in LIBS {
        collect(root, &root.join(dir), &mut files);
    }
    let graph = Graph::build(&files, LIBS).top_level(LIBS);
    assert!(graph.has_edge("src/cli", "src/sys"), "{:?}", graph.edges);
    let mut stale = Vec::new();
    for (a, b) in MODULES_KNOWN_ELSEWHERE {
        if !graph.has_edge(a, b) {
            stale.push(format!("{a} -> {b}"));
        }
    }
    assert!(
        stale.is_empty(),
        "MODULES_KNOWN_ELSEWHERE entries that no longer exist, remove them: {stale:?}"
    );
    let cycles = graph.without(MODULES_KNOWN_ELSEWHERE).cycles();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
}

/// Every .rs file under `dir`, as (path relative to `root`, text).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, fs::read_to_string(&p).unwrap()));
        }
    }
}
