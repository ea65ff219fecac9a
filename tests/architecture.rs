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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Cycle edges that belong to work outside this test's author's files,
/// ignored until that work lands. Each entry is (from, to), both relative
/// to the repository root. An entry whose edge no longer exists fails the
/// test, so the list only shrinks: delete the entry when the test says so.
///
/// - diagnose/kb ↔ diagnose/unknown: the knowledge base and the unknown-
///   drop explainer use each other's tables (typed-domain work).
/// - diagnose/finding ↔ output/finding: the finding model and its text
///   renderer (typed-domain work).
const KNOWN_ELSEWHERE: &[(&str, &str)] = &[
    ("src/diagnose/unknown.rs", "src/diagnose/kb/mod.rs"),
    ("src/diagnose/finding.rs", "src/output/finding.rs"),
];

/// The same for cycles between top-level modules (a directory and all its
/// files, or one top-level file): `src/event` stands for src/event.rs,
/// `src/diagnose` for everything under src/diagnose/.
///
/// - event → diagnose: `event.rs` asks diagnose for hint text, which
///   belongs to the table renderer (typed-domain work).
/// - output → diagnose is fine, diagnose → output is not: the finding model
///   names its renderer (typed-domain work; see KNOWN_ELSEWHERE).
/// - diagnose → lab: diagnose/tests.rs runs the lab scenarios' expectations;
///   the lab (lead's capture rework) uses diagnose. A test-only edge, but
///   it still makes the two one unit.
const MODULES_KNOWN_ELSEWHERE: &[(&str, &str)] = &[
    ("src/event", "src/diagnose"),
    ("src/diagnose", "src/output"),
    ("src/diagnose", "src/lab"),
];

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

// ---------------------------------------------------------------- lexing

/// The source with comments, string and char literals removed; lifetimes
/// and everything else kept.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some(len) = raw_string_start(&c, i) {
            // r"..", r#".."#, br#".."#: ends at a quote and as many #s.
            let hashes = len - if c[i] == 'b' { 3 } else { 2 };
            i += len;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str(" \"\" ");
        } else if c[i] == '"' {
            // b"..", c"..": the prefix stays, as a harmless identifier.
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str(" \"\" ");
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str(" ' ' ");
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push_str(" ' ' ");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn prev(c: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        c[i - 1]
    }
}

fn is_ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Length of a raw string's opening (`r#"` is 3) if one starts at `i`.
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    if is_ident_char(prev(c, i)) {
        return None;
    }
    let mut k = i;
    if c.get(k) == Some(&'b') {
        k += 1;
    }
    if c.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    while c.get(k) == Some(&'#') {
        k += 1;
    }
    (c.get(k) == Some(&'"')).then_some(k + 1 - i)
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_whitespace() {
            i += 1;
        } else if is_ident_char(c[i]) {
            let s = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            out.push(c[i].to_string());
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|ch| ch.is_alphabetic() || ch == '_')
}

/// The paths starting at token `i` (several when a `{..}` group follows),
/// each as its segments, and the index after them. `None` if no path
/// (at least `a::b`) starts there.
fn paths_at(t: &[String], i: usize) -> Option<(Vec<Vec<String>>, usize)> {
    if !is_ident(&t[i]) || t.get(i + 1).map(String::as_str) != Some("::") {
        return None;
    }
    if i > 0 && t[i - 1] == "::" {
        return None;
    }
    let (paths, end) = tree(t, i);
    Some((paths, end))
}

/// A use-tree: `a::b::{c, d::e, self}` or `a::b as c`; aliases are dropped
/// here (see [`use_aliases`]).
fn tree(t: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match t.get(i).map(String::as_str) {
            Some("{") => {
                let mut all = Vec::new();
                i += 1;
                while i < t.len() && t[i] != "}" {
                    if t[i] == "," {
                        i += 1;
                        continue;
                    }
                    let (sub, end) = tree(t, i);
                    for s in sub {
                        let mut p = prefix.clone();
                        p.extend(s.into_iter().filter(|x| x != "self" || prefix.is_empty()));
                        all.push(p);
                    }
                    i = end.max(i + 1);
                }
                return (all, i + 1);
            }
            Some(s) if is_ident(s) => {
                prefix.push(s.to_string());
                i += 1;
                if t.get(i).map(String::as_str) == Some("::") {
                    i += 1;
                } else {
                    if t.get(i).map(String::as_str) == Some("as") {
                        i += 2;
                    }
                    return (vec![prefix], i);
                }
            }
            Some("*") => return (vec![prefix], i + 1),
            _ => return (vec![prefix], i),
        }
    }
}

/// `use` leaves and the name each brings into scope: `use a::b::c;` binds
/// `c` to `a::b::c`, `use a::b as d;` binds `d`, `use a::{self}` binds `a`.
fn use_aliases(t: &[String]) -> Vec<Alias> {
    let mut out = Vec::new();
    for i in 0..t.len() {
        if t[i] != "use" {
            continue;
        }
        let mut end = i + 1;
        while end < t.len() && t[end] != ";" {
            end += 1;
        }
        collect_use(&t[i + 1..end], &[], &mut out);
    }
    out
}

fn collect_use(t: &[String], prefix: &[String], out: &mut Vec<Alias>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < t.len() {
        match t[i].as_str() {
            "::" => i += 1,
            "{" => {
                // Split the group's items at top-level commas.
                let mut depth = 0;
                let mut start = i + 1;
                for k in i + 1..t.len() {
                    match t[k].as_str() {
                        "{" => depth += 1,
                        "}" if depth > 0 => depth -= 1,
                        "," | "}" if depth == 0 => {
                            collect_use(&t[start..k], &path, out);
                            start = k + 1;
                            if t[k] == "}" {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" => {
                if let Some(alias) = t.get(i + 1) {
                    out.push((alias.clone(), path.clone()));
                }
                return;
            }
            "self" if !path.is_empty() => i += 1,
            s if is_ident(s) => {
                path.push(s.to_string());
                i += 1;
            }
            _ => return,
        }
    }
    if let Some(last) = path.last() {
        if path.len() > prefix.len() || !prefix.is_empty() {
            out.push((last.clone(), path.clone()));
        }
    }
}

// ---------------------------------------------------------------- graph

/// A name a `use` brings into scope, and the path it stands for.
type Alias = (String, Vec<String>);

/// A file's place: its crate (a library name, or the file itself for a
/// binary root) and its module path within that crate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Place {
    krate: String,
    module: Vec<String>,
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// `files`: (path relative to the repository, text); `libs`: library
    /// crate names and their source dirs.
    fn build(files: &[(String, String)], libs: &[(&str, &str)]) -> Graph {
        let places = places(files, libs);
        let by_place: HashMap<&Place, &str> = places.iter().map(|(f, p)| (p, f.as_str())).collect();
        let lexed: BTreeMap<&str, (Vec<String>, Vec<Alias>)> = files
            .iter()
            .map(|(f, text)| {
                let toks = tokens(&strip(text));
                let aliases = use_aliases(&toks);
                (f.as_str(), (toks, aliases))
            })
            .collect();
        let all_aliases: HashMap<&str, &[Alias]> =
            lexed.iter().map(|(f, (_, a))| (*f, a.as_slice())).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, (toks, aliases)) in &lexed {
            let file = file.to_string();
            let Some(here) = places.get(&file) else {
                continue;
            };
            // Inline `mod x { .. }` blocks: (name, brace depth inside).
            let mut inline: Vec<(String, usize)> = Vec::new();
            let mut depth = 0usize;
            let mut i = 0;
            while i < toks.len() {
                match toks[i].as_str() {
                    "{" => depth += 1,
                    "}" => {
                        if inline.last().is_some_and(|(_, d)| *d == depth) {
                            inline.pop();
                        }
                        depth = depth.saturating_sub(1);
                    }
                    "mod" if toks.get(i + 2).map(String::as_str) == Some("{") => {
                        inline.push((toks[i + 1].clone(), depth + 1));
                    }
                    _ => {}
                }
                let Some((paths, end)) = paths_at(toks, i) else {
                    i += 1;
                    continue;
                };
                let mut module = here.clone();
                module.module.extend(inline.iter().map(|(n, _)| n.clone()));
                for p in paths {
                    let Some(abs) = resolve(&p, &module, aliases, &by_place, libs) else {
                        continue;
                    };
                    if let Some(target) =
                        defining_file(&abs, &places, &by_place, &all_aliases, libs)
                    {
                        let tp = &places[target];
                        if target != file && !tp.is_ancestor_of(here) {
                            edges
                                .entry(file.clone())
                                .or_default()
                                .insert(target.to_string());
                        }
                    }
                }
                i = end.max(i + 1);
            }
        }
        Graph { edges }
    }

    fn has_edge(&self, a: &str, b: &str) -> bool {
        self.edges.get(a).is_some_and(|s| s.contains(b))
    }

    /// The graph between top-level modules: each file stands for the
    /// first directory or file under its library's dir (`src/diagnose`,
    /// `src/event`); edges inside one module and from or to a library's
    /// root file are dropped.
    fn top_level(&self, libs: &[(&str, &str)]) -> Graph {
        let module = |f: &str| -> Option<String> {
            let (_, dir) = libs.iter().find(|(_, d)| f.starts_with(&format!("{d}/")))?;
            let first = f[dir.len() + 1..]
                .split('/')
                .next()?
                .trim_end_matches(".rs");
            (first != "lib").then(|| format!("{dir}/{first}"))
        };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, bs) in &self.edges {
            for b in bs {
                if let (Some(ma), Some(mb)) = (module(a), module(b)) {
                    if ma != mb {
                        edges.entry(ma).or_default().insert(mb);
                    }
                }
            }
        }
        Graph { edges }
    }

    fn without(&self, skip: &[(&str, &str)]) -> Graph {
        let mut edges = self.edges.clone();
        for (a, b) in skip {
            if let Some(s) = edges.get_mut(*a) {
                s.remove(*b);
            }
        }
        Graph { edges }
    }

    /// One shortest cycle per strongly connected component of more than
    /// one file, as `a -> b -> a`.
    fn cycles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for comp in self.components() {
            if comp.len() < 2 {
                continue;
            }
            let start = comp.iter().next().unwrap();
            let mut cycle = self.shortest_cycle(start, &comp);
            cycle.insert(0, start.clone());
            let mut line = cycle.join(" -> ");
            if comp.len() > cycle.len() - 1 {
                line.push_str(&format!("   (all tangled: {comp:?})"));
            }
            out.push(line);
        }
        out
    }

    /// Breadth-first from `from`'s successors back to `from`, inside
    /// `within`: the nodes after `from`, ending with `from`.
    fn shortest_cycle(&self, from: &str, within: &BTreeSet<String>) -> Vec<String> {
        let mut parent: HashMap<String, Option<String>> = HashMap::new();
        let mut queue = std::collections::VecDeque::new();
        for n in self.edges.get(from).into_iter().flatten() {
            if within.contains(n) {
                parent.insert(n.clone(), None);
                queue.push_back(n.clone());
            }
        }
        while let Some(n) = queue.pop_front() {
            if n == from {
                let mut path = vec![n.clone()];
                let mut cur = parent[&n].clone();
                while let Some(p) = cur {
                    path.push(p.clone());
                    cur = parent[&p].clone();
                }
                path.reverse();
                return path;
            }
            for m in self.edges.get(&n).into_iter().flatten() {
                if within.contains(m) && !parent.contains_key(m) {
                    parent.insert(m.clone(), Some(n.clone()));
                    queue.push_back(m.clone());
                }
            }
        }
        Vec::new()
    }

    /// Tarjan's strongly connected components.
    fn components(&self) -> Vec<BTreeSet<String>> {
        struct St<'a> {
            g: &'a Graph,
            index: HashMap<&'a str, usize>,
            low: HashMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on: BTreeSet<&'a str>,
            out: Vec<BTreeSet<String>>,
        }
        fn visit<'a>(s: &mut St<'a>, v: &'a str) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            s.on.insert(v);
            for w in s.g.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut comp = BTreeSet::new();
                while let Some(w) = s.stack.pop() {
                    s.on.remove(w);
                    comp.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                s.out.push(comp);
            }
        }
        let mut s = St {
            g: self,
            index: HashMap::new(),
            low: HashMap::new(),
            stack: Vec::new(),
            on: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                visit(&mut s, v);
            }
        }
        s.out
    }
}

impl Place {
    /// Whether `other` is this module or one of its submodules.
    fn is_ancestor_of(&self, other: &Place) -> bool {
        self.krate == other.krate && other.module.starts_with(&self.module)
    }
}

/// Each file's place: from its path under its library's dir, except files
/// a `#[path = ".."] mod name;` names, which are `name` under the file
/// that declares them. Files under a `bin/` dir or named main.rs are roots
/// of binary crates of their own.
fn places(files: &[(String, String)], libs: &[(&str, &str)]) -> BTreeMap<String, Place> {
    let mut out = BTreeMap::new();
    for (file, _) in files {
        let Some((name, dir)) = libs
            .iter()
            .find(|(_, d)| file.starts_with(&format!("{d}/")))
        else {
            continue;
        };
        let rel = &file[dir.len() + 1..];
        if rel == "main.rs" || rel.starts_with("bin/") {
            out.insert(
                file.clone(),
                Place {
                    krate: file.clone(),
                    module: Vec::new(),
                },
            );
            continue;
        }
        let mut module: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if module.last().is_some_and(|l| l == "mod" || l == "lib") {
            module.pop();
        }
        out.insert(
            file.clone(),
            Place {
                krate: name.to_string(),
                module,
            },
        );
    }
    // `#[path]` modules, declaring files first so nested ones follow.
    let mut changed = true;
    while changed {
        changed = false;
        for (file, text) in files {
            let Some(here) = out.get(file).cloned() else {
                continue;
            };
            let dir = Path::new(file).parent().unwrap();
            for (target, name) in path_mods(text) {
                let t = dir.join(target).to_string_lossy().into_owned();
                let mut module = here.module.clone();
                module.push(name);
                let want = Place {
                    krate: here.krate.clone(),
                    module,
                };
                if out.contains_key(&t) && out[&t] != want {
                    out.insert(t, want);
                    changed = true;
                }
            }
        }
    }
    out
}

/// `#[path = "file"] mod name;` declarations: (file, name). Read from the
/// raw text, since stripping removes the string.
fn path_mods(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("#[path = \"") else {
            continue;
        };
        let Some(target) = rest.split('"').next() else {
            continue;
        };
        for next in &lines[i + 1..] {
            if next.starts_with("#[") {
                continue;
            }
            let decl = next
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(name) = decl.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
                out.push((target.to_string(), name.trim().to_string()));
            }
            break;
        }
    }
    out
}

/// The absolute place a path names, or `None` for an outside crate, a
/// type, a local or anything else not a module of ours.
fn resolve(
    p: &[String],
    here: &Place,
    aliases: &[Alias],
    known: &HashMap<&Place, &str>,
    libs: &[(&str, &str)],
) -> Option<Place> {
    let first = p.first()?;
    let (mut base, rest) = match first.as_str() {
        "crate" => (
            Place {
                krate: here.krate.clone(),
                module: Vec::new(),
            },
            &p[1..],
        ),
        "self" => (here.clone(), &p[1..]),
        "super" => {
            let mut b = here.clone();
            let mut k = 0;
            while p.get(k).map(String::as_str) == Some("super") {
                b.module.pop();
                k += 1;
            }
            (b, &p[k..])
        }
        name if libs.iter().any(|(l, _)| *l == name) => {
            // Inside a library its own name is `crate` (binaries and doc
            // tests spell it so); elsewhere it is that library.
            (
                Place {
                    krate: name.to_string(),
                    module: Vec::new(),
                },
                &p[1..],
            )
        }
        name => {
            let mut child = here.clone();
            child.module.push(name.to_string());
            if known.contains_key(&child) {
                (child, &p[1..])
            } else if let Some((_, target)) = aliases
                .iter()
                .find(|(a, t)| a == name && t.first() != Some(first))
            {
                let mut t = resolve(target, here, &[], known, libs)?;
                t.module.extend(p[1..].iter().cloned());
                return Some(t);
            } else {
                return None;
            }
        }
    };
    base.module.extend(rest.iter().cloned());
    Some(base)
}

/// The file defining the item `p` names: the file of its longest module
/// prefix, or, when that file only re-exports the next segment (`pub use
/// child::Item;` in a mod.rs), the file the re-export points to.
fn defining_file<'a>(
    p: &Place,
    places: &BTreeMap<String, Place>,
    known: &HashMap<&Place, &'a str>,
    aliases: &HashMap<&str, &[Alias]>,
    libs: &[(&str, &str)],
) -> Option<&'a str> {
    let mut p = p.clone();
    // A bound, so that `use a::b; use b::a;`-style mistakes cannot hang.
    for _ in 0..8 {
        let mut q = p.clone();
        let file = loop {
            if let Some(f) = known.get(&q) {
                break *f;
            }
            q.module.pop()?;
        };
        let rest = &p.module[q.module.len()..];
        let Some(next) = rest.first() else {
            return Some(file);
        };
        let here = &places[file];
        let own = aliases.get(file).copied().unwrap_or_default();
        let Some((_, target)) = own.iter().find(|(a, _)| a == next) else {
            return Some(file);
        };
        let Some(mut t) = resolve(target, here, &[], known, libs) else {
            return Some(file);
        };
        t.module.extend(rest[1..].iter().cloned());
        if t == p {
            return Some(file);
        }
        p = t;
    }
    None
}

// ---------------------------------------------------------------- self-test

fn synthetic(files: &[(&str, &str)]) -> Graph {
    let owned: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    Graph::build(&owned, &[("demo", "src")])
}

#[test]
fn a_cycle_is_reported() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod a; pub mod b; pub mod c;"),
        ("src/a.rs", "use crate::b::thing;\npub fn f() { thing() }"),
        ("src/b.rs", "pub fn thing() { crate::c::go() }"),
        // through an alias of a module brought in by `use`
        (
            "src/c/mod.rs",
            "use crate::a as first;\npub fn go() { first::f() }",
        ),
    ]);
    let cycles = g.cycles();
    assert_eq!(
        cycles,
        vec!["src/a.rs -> src/b.rs -> src/c/mod.rs -> src/a.rs"]
    );
    // Cutting one edge of it breaks the cycle.
    assert!(g
        .without(&[("src/b.rs", "src/c/mod.rs")])
        .cycles()
        .is_empty());
}

#[test]
fn super_paths_and_groups_resolve() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod x; pub mod y;"),
        ("src/x/mod.rs", "pub mod one;"),
        (
            "src/x/one.rs",
            "use super::super::y::{self, two::{Deep, other}};",
        ),
        ("src/y/mod.rs", "pub mod two;"),
        ("src/y/two.rs", "fn g() { let _ = crate::x::one::F; }"),
    ]);
    assert!(g.has_edge("src/x/one.rs", "src/y/two.rs"));
    assert!(g.has_edge("src/x/one.rs", "src/y/mod.rs"));
    assert_eq!(
        g.cycles(),
        vec!["src/x/one.rs -> src/y/two.rs -> src/x/one.rs"]
    );
}

#[test]
fn comments_strings_and_parent_child_edges_do_not_count() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod a; pub mod b;"),
        (
            "src/a/mod.rs",
            "pub mod inner;\npub use inner::Thing;\nuse crate::b::B;",
        ),
        // a child using its parent is not a cycle
        ("src/a/inner.rs", "use super::Other;\npub struct Thing;"),
        (
            "src/b.rs",
            "// crate::a::inner::Thing\n/* crate::a::X /* nested */ crate::a::Y */\n\
             const S: &str = \"crate::a::Thing\";\nconst R: &str = r#\"crate::a::\"Q\"\"#;\n\
             const C: char = '\"'; fn f<'a>(x: &'a str) {}\npub struct B;",
        ),
    ]);
    assert!(g.has_edge("src/a/mod.rs", "src/b.rs"));
    assert!(!g.has_edge("src/b.rs", "src/a/mod.rs"), "{:?}", g.edges);
    assert!(!g.has_edge("src/b.rs", "src/a/inner.rs"), "{:?}", g.edges);
    assert!(!g.has_edge("src/a/inner.rs", "src/a/mod.rs"));
    assert!(g.cycles().is_empty());
}

#[test]
fn path_attribute_test_files_belong_to_their_parent() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod k;"),
        ("src/k/mod.rs", "pub mod r; pub mod s;"),
        (
            "src/k/r.rs",
            "use super::s::S;\n#[cfg(test)]\n#[path = \"r_tests.rs\"]\nmod tests;",
        ),
        // k::r::tests: `super` is k::r, so no edge to a sibling
        ("src/k/r_tests.rs", "use super::*;\nfn t() { super::f(); }"),
        ("src/k/s.rs", "pub struct S;"),
    ]);
    assert!(g.has_edge("src/k/r.rs", "src/k/s.rs"));
    assert!(!g.has_edge("src/k/r_tests.rs", "src/k/r.rs"));
    assert!(g.cycles().is_empty());
}

#[test]
fn inline_modules_shift_super() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod p; pub mod q;"),
        ("src/p.rs", "mod tests { use super::super::q::Q; }"),
        ("src/q.rs", "pub struct Q; fn f() { crate::p::g(); }"),
    ]);
    assert_eq!(g.cycles(), vec!["src/p.rs -> src/q.rs -> src/p.rs"]);
}

#[test]
fn a_cycle_through_a_parent_module_is_reported() {
    // ev uses dg's own function, which uses dg's child, which uses ev.
    let g = synthetic(&[
        ("src/lib.rs", "pub mod ev; pub mod dg;"),
        ("src/ev.rs", "fn f() { crate::dg::hint() }"),
        ("src/dg/mod.rs", "pub mod kb;\npub fn hint() { kb::look() }"),
        ("src/dg/kb.rs", "use crate::ev::Event;\npub fn look() {}"),
    ]);
    assert_eq!(
        g.cycles(),
        vec!["src/dg/kb.rs -> src/ev.rs -> src/dg/mod.rs -> src/dg/kb.rs"]
    );
}

#[test]
fn re_exports_lead_to_the_defining_file() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod a; pub mod b;"),
        (
            "src/a/mod.rs",
            "mod inner;\npub use inner::{Thing as Renamed, Other};",
        ),
        (
            "src/a/inner.rs",
            "pub struct Thing;\nfn x() { crate::b::y() }",
        ),
        ("src/b.rs", "use crate::a::Renamed;\npub fn y() {}"),
    ]);
    assert!(g.has_edge("src/b.rs", "src/a/inner.rs"), "{:?}", g.edges);
    assert!(!g.has_edge("src/b.rs", "src/a/mod.rs"), "{:?}", g.edges);
    assert_eq!(
        g.cycles(),
        vec!["src/a/inner.rs -> src/b.rs -> src/a/inner.rs"]
    );
}

#[test]
fn top_level_modules_collapse_their_files() {
    let g = synthetic(&[
        ("src/lib.rs", "pub mod a; pub mod b;"),
        ("src/a/mod.rs", "pub mod x; pub mod y;"),
        ("src/a/x.rs", "use crate::b::B;"),
        ("src/a/y.rs", "pub struct Y;"),
        // no file cycle (b uses y, y uses nothing), but a module cycle
        (
            "src/b.rs",
            "pub struct B; fn f() { let _ = crate::a::y::Y; }",
        ),
    ]);
    assert!(g.cycles().is_empty());
    let m = g.top_level(&[("demo", "src")]);
    assert_eq!(m.cycles(), vec!["src/a -> src/b -> src/a"]);
}
