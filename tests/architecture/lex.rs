//! Rust source to the module paths it names: comments and literals
//! stripped, then identifiers and `::`, then paths and `use` trees.
use super::graph::Alias;

/// The source with comments, string and char literals removed; lifetimes
/// and everything else kept.
pub(crate) fn strip(src: &str) -> String {
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

pub(crate) fn prev(c: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        c[i - 1]
    }
}

pub(crate) fn is_ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Length of a raw string's opening (`r#"` is 3) if one starts at `i`.
pub(crate) fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
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
pub(crate) fn tokens(src: &str) -> Vec<String> {
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

pub(crate) fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|ch| ch.is_alphabetic() || ch == '_')
}

/// The paths starting at token `i` (several when a `{..}` group follows),
/// each as its segments, and the index after them. `None` if no path
/// (at least `a::b`) starts there.
pub(crate) fn paths_at(t: &[String], i: usize) -> Option<(Vec<Vec<String>>, usize)> {
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
pub(crate) fn tree(t: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
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
pub(crate) fn use_aliases(t: &[String]) -> Vec<Alias> {
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

pub(crate) fn collect_use(t: &[String], prefix: &[String], out: &mut Vec<Alias>) {
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
