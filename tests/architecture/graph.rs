//! Files to places (crate + module path), paths to the files defining
//! them, and the cycles of the resulting graph.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::lex::{paths_at, strip, tokens, use_aliases};

/// A name a `use` brings into scope, and the path it stands for.
pub(crate) type Alias = (String, Vec<String>);

/// A file's place: its crate (a library name, or the file itself for a
/// binary root) and its module path within that crate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Place {
    krate: String,
    module: Vec<String>,
}

pub(crate) struct Graph {
    pub(crate) edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// `files`: (path relative to the repository, text); `libs`: library
    /// crate names and their source dirs.
    pub(crate) fn build(files: &[(String, String)], libs: &[(&str, &str)]) -> Graph {
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

    pub(crate) fn has_edge(&self, a: &str, b: &str) -> bool {
        self.edges.get(a).is_some_and(|s| s.contains(b))
    }

    /// The graph between top-level modules: each file stands for the
    /// first directory or file under its library's dir (`src/diagnose`,
    /// `src/event`); edges inside one module and from or to a library's
    /// root file are dropped.
    pub(crate) fn top_level(&self, libs: &[(&str, &str)]) -> Graph {
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

    pub(crate) fn without(&self, skip: &[(&str, &str)]) -> Graph {
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
    pub(crate) fn cycles(&self) -> Vec<String> {
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
    pub(crate) fn shortest_cycle(&self, from: &str, within: &BTreeSet<String>) -> Vec<String> {
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
    pub(crate) fn components(&self) -> Vec<BTreeSet<String>> {
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
    pub(crate) fn is_ancestor_of(&self, other: &Place) -> bool {
        self.krate == other.krate && other.module.starts_with(&self.module)
    }
}

/// Each file's place: from its path under its library's dir, except files
/// a `#[path = ".."] mod name;` names, which are `name` under the file
/// that declares them. Files under a `bin/` dir or named main.rs are roots
/// of binary crates of their own.
pub(crate) fn places(files: &[(String, String)], libs: &[(&str, &str)]) -> BTreeMap<String, Place> {
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
pub(crate) fn path_mods(text: &str) -> Vec<(String, String)> {
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
pub(crate) fn resolve(
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
pub(crate) fn defining_file<'a>(
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
