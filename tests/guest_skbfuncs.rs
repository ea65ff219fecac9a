//! The skb function probe's backends for real: kprobe-multi, kprobe and
//! fentry cannot attach on this project's host kernel, so these tests run
//! `netwhy skbfuncs` in qemu guests booting Debian's 6.12 and 6.1 kernels
//! (harness: tests/guest/mod.rs) while a lab scenario drops packets.
//!
//! Outside CI a missing capability skips with a message; with CI=true it
//! fails.
mod guest;

use std::time::Duration;

use guest::report::{json_lines, sections, show};
use guest::{Guest, DEBIAN_6_1, DEBIAN_6_12};

/// The functions a UDP datagram to a closed port runs through, for the
/// backends whose full-set detach is too slow for every CI run (fentry:
/// ~140 ms per function under TCG, see BENCHMARKS.md).
const PATH_FUNCS: &str = "^(ip_send_skb|__dev_queue_xmit|__netif_receive_skb|ip_rcv|ip_rcv_core|\
ip_local_deliver|udp_rcv|__udp4_lib_rcv|__icmp_send|sk_skb_reason_drop|kfree_skb_reason)$";

/// Runs `netwhy skbfuncs --backend B [--funcs F] --port 5300` for each
/// (B, F) while the lab's udp-closed-port scenario drops three datagrams
/// (B = "auto": no --backend, the feature probes choose).
fn backends_script(runs: &[(&str, &str)]) -> String {
    runs.iter()
        .map(|(b, funcs)| skbfuncs_run(b, b, funcs, "5300", "udp-closed-port"))
        .collect()
}

/// One `netwhy skbfuncs` run, its JSON in section `name`, while `scenario`
/// runs (`backend` "auto": no --backend; extra flags in `funcs`).
fn skbfuncs_run(name: &str, backend: &str, funcs: &str, port: &str, scenario: &str) -> String {
    let mut f = if funcs.is_empty() || funcs.starts_with("--") {
        funcs.to_string()
    } else {
        format!("--funcs '{funcs}'")
    };
    if backend != "auto" {
        f += &format!(" --backend {backend}");
    }
    format!(
        r#"
netwhy skbfuncs {f} --port {port} -o json > /tmp/{name}.json 2> /tmp/{name}.err &
pid=$!
i=0; until grep -q attached /tmp/{name}.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/{name}.err; exit 20; fi; sleep 0.1
done
netwhy lab run {scenario} --check -o json > /tmp/{name}.lab || {{ cat /tmp/{name}.lab; exit 21; }}
kill -INT $pid; wait $pid || {{ cat /tmp/{name}.err; exit 22; }}
echo "=== {name}"; cat /tmp/{name}.json
echo "=== {name}-stderr"; cat /tmp/{name}.err
"#
    )
}

/// Each backend on 6.12 while a NO_SOCKET UDP drop happens: the path must
/// run through IP receive, UDP receive and the drop function, in that
/// order, whatever hooked them. kprobe-multi and the tracepoints take the
/// whole skb function set; fentry and kprobes the path functions only.
#[test]
fn skb_function_backends_follow_a_drop_on_debian_6_12() {
    backends(
        "skb_function_backends_follow_a_drop_on_debian_6_12",
        &[
            ("kprobe-multi", ""),
            ("fentry", PATH_FUNCS),
            ("kprobe", PATH_FUNCS),
            ("tracepoint", ""),
        ],
    );
}

/// The benchmark of issue 7: attach and detach of the full skb function set
/// on every backend. fentry alone detaches for minutes under TCG, so this
/// runs by hand: `cargo test --release --test guest_skbfuncs -- --ignored`.
#[test]
#[ignore]
fn skb_function_backends_full_set_benchmark() {
    backends(
        "skb_function_backends_full_set_benchmark",
        &[
            ("kprobe-multi", ""),
            ("fentry", ""),
            ("kprobe", ""),
            ("tracepoint", ""),
        ],
    );
}

fn backends(test: &str, runs: &[(&str, &str)]) {
    let g = Guest::new(DEBIAN_6_12).with_netwhy();
    let script = backends_script(runs);
    let Some(o) = guest::or_skip(test, g.run(&script, Duration::from_secs(1500))) else {
        return;
    };
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    let mut table = Vec::new();
    for (b, funcs) in runs {
        let b = *b;
        let v = json_lines(&s[b]);
        assert_eq!(v.len(), 1, "{b}: {}", show(&o));
        let r = &v[0];
        assert_eq!(r["backend"], b, "{r}");
        // All three function backends pass their probe on 6.12.
        for p in r["probes"].as_array().unwrap() {
            assert_eq!(p["ok"], true, "{b}: probe {p}");
        }
        let names: Vec<&str> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["name"].as_str())
            .collect();
        let line = format!(
            "{b:>13}: {:>5} functions, attach {:>9} ms, detach {:>9} ms, {} hit, {} refused",
            r["functions"],
            r["attach_ms"],
            r["detach_ms"],
            names.len(),
            r["skipped_count"]
        );
        eprintln!("{test}: {line}");
        table.push(line);
        let has = |n: &str| names.contains(&n);
        if b == "tracepoint" {
            assert_eq!(r["functions"], 0, "{r}");
            assert!(
                has("tp:netif_receive_skb") && has("tp:kfree_skb"),
                "{b}: {names:?}"
            );
        } else {
            let n = r["functions"].as_u64().unwrap();
            if funcs.is_empty() {
                assert!(n > 500, "{b}: only {n} functions hooked: {r}");
            }
            assert!(has("ip_rcv") || has("ip_rcv_core"), "{b}: {names:?}");
            assert!(has("__udp4_lib_rcv"), "{b}: {names:?}");
            assert!(
                has("sk_skb_reason_drop") || has("kfree_skb_reason"),
                "{b}: {names:?}"
            );
            // In path order: received before UDP looked for a socket,
            // which came before the drop.
            let at = |n: &str| names.iter().position(|x| *x == n);
            assert!(at("ip_rcv") < at("__udp4_lib_rcv"), "{b}: {names:?}");
            assert!(
                at("__udp4_lib_rcv") < at("sk_skb_reason_drop").or(at("kfree_skb_reason")),
                "{b}: {names:?}"
            );
        }
    }
    eprintln!(
        "{test} (qemu TCG, 1 vCPU, Debian 6.12):\n{}",
        table.join("\n")
    );
}

/// Debian 12's own 6.1 kernel has kprobes and fentry but no FPROBE: the
/// feature probes must see kprobe-multi refused and choose single kprobes,
/// which then follow the drop (to 6.1's `kfree_skb_reason`).
#[test]
fn feature_probes_choose_kprobes_on_debian_6_1() {
    let test = "feature_probes_choose_kprobes_on_debian_6_1";
    let g = Guest::new(DEBIAN_6_1).with_netwhy();
    let script = backends_script(&[("auto", PATH_FUNCS)]);
    let Some(o) = guest::or_skip(test, g.run(&script, Duration::from_secs(300))) else {
        return;
    };
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    let v = json_lines(&s["auto"]);
    assert_eq!(v.len(), 1, "{}", show(&o));
    let r = &v[0];
    let probe = |b: &str| {
        r["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["backend"] == b)
            .cloned()
            .unwrap_or_else(|| panic!("no {b} probe: {r}"))
    };
    assert_eq!(probe("kprobe-multi")["ok"], false, "{r}");
    assert_eq!(probe("kprobe")["ok"], true, "{r}");
    assert_eq!(probe("fentry")["ok"], true, "{r}");
    assert_eq!(r["backend"], "kprobe", "{r}");
    eprintln!(
        "{test}: kprobe-multi refused: {}",
        probe("kprobe-multi")["error"]
    );
    let names: Vec<&str> = r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    for f in ["ip_rcv", "__udp4_lib_rcv", "kfree_skb_reason"] {
        assert!(names.contains(&f), "{f} not hit: {names:?}");
    }
}

/// `--kmods nf_tables`: module functions join the set (kprobe-multi by
/// name, fentry through the module's BTF object), and an nftables drop in
/// the forward chain shows `nft_do_chain_inet` (the hook entry; nft_do_chain
/// itself takes no skb) between `ip_forward`'s netfilter
/// hook and the drop.
#[test]
fn module_functions_join_with_kmods_on_debian_6_12() {
    let test = "module_functions_join_with_kmods_on_debian_6_12";
    let funcs = "--kmods nf_tables --funcs '^(ip_rcv|ip_forward|nf_hook_slow|nft_do_chain_(ipv4|inet)|sk_skb_reason_drop)$'";
    let script: String = ["kprobe-multi", "fentry"]
        .iter()
        .map(|b| skbfuncs_run(b, b, funcs, "443", "nft-forward-drop"))
        .collect();
    let g = Guest::new(DEBIAN_6_12).with_netwhy();
    let Some(o) = guest::or_skip(test, g.run(&script, Duration::from_secs(300))) else {
        return;
    };
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    for b in ["kprobe-multi", "fentry"] {
        let v = json_lines(&s[b]);
        assert_eq!(v.len(), 1, "{}", show(&o));
        let r = &v[0];
        assert_eq!(r["backend"], b, "{r}");
        assert_eq!(r["functions"], 6, "{b}: {r}");
        let names: Vec<&str> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["name"].as_str())
            .collect();
        eprintln!("{test}: {b}: {names:?}");
        let at = |n: &str| {
            names
                .iter()
                .position(|x| *x == n)
                .unwrap_or_else(|| panic!("{b}: {n} not hit: {names:?}"))
        };
        // The table's family picks the hook entry (the lab uses inet).
        let nft = names
            .iter()
            .find(|n| n.starts_with("nft_do_chain_"))
            .unwrap_or_else(|| panic!("{b}: no nft_do_chain_* hit: {names:?}"));
        assert!(at("ip_rcv") < at("ip_forward"), "{b}: {names:?}");
        assert!(at("nf_hook_slow") < at(nft), "{b}: {names:?}");
        assert!(at(nft) < at("sk_skb_reason_drop"), "{b}: {names:?}");
    }
}
