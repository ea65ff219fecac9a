//! Reading what a guest run printed: `=== NAME` sections, JSON Lines,
//! and a failure message with the output and the serial console's tail.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;

use super::Outcome;

/// Splits the script's output into `=== NAME` sections.
pub fn sections(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut cur = String::from("_");
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("=== ") {
            cur = n.trim().to_string();
            continue;
        }
        let e: &mut String = m.entry(cur.clone()).or_default();
        e.push_str(line);
        e.push('\n');
    }
    m
}

pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `netwhy reasons` output → name → value.
pub fn reason_table(s: &str) -> BTreeMap<String, u32> {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let v = it.next()?.parse().ok()?;
            Some((it.next()?.to_string(), v))
        })
        .collect()
}

pub fn show(o: &Outcome) -> String {
    format!(
        "exit {} after {:?}\n--- output:\n{}\n--- serial (tail):\n{}",
        o.code,
        o.elapsed,
        o.output,
        &o.serial[o.serial.len().saturating_sub(3000)..]
    )
}

/// Steps and fate of each packet id in trace's JSON Lines; copies
/// (`clone_of`, followed by the function backends) only `with_copies`.
pub fn trace_packets(out: &str, with_copies: bool) -> BTreeMap<u64, (Vec<Value>, Value)> {
    let mut m: BTreeMap<u64, (Vec<Value>, Value)> = BTreeMap::new();
    for x in json_lines(out) {
        let Some(id) = x["packet"].as_u64() else {
            continue;
        };
        if !with_copies && x["clone_of"].is_u64() {
            continue;
        }
        let e = m.entry(id).or_insert_with(|| (Vec::new(), Value::Null));
        match x["type"].as_str() {
            Some("step") => e.0.push(x.clone()),
            Some("fate") => e.1 = x.clone(),
            _ => {}
        }
    }
    m
}
