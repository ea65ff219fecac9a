//! The checker on tiny synthetic crates: a cycle it must report, and the
//! things it must not count.
use super::graph::Graph;

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
