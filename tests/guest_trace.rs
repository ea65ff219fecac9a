//! `netwhy trace` on other kernels than the host's: Debian's 6.12 and 6.1
//! in qemu guests (harness: tests/guest/mod.rs). Their tracepoints differ
//! from the host's (6.1's consume_skb has no location, 6.1 has no
//! SKB_CONSUMED, the verifiers differ), so the path probe must load there
//! and still tell a packet's path and fate; and kernel function steps
//! (kprobe-multi, fentry, kprobe: none works on the host) must join the
//! tracepoints' timelines.
//!
//! Outside CI a missing capability skips with a message; with CI=true it
//! fails.
mod guest;

use std::collections::BTreeMap;
use std::time::Duration;

use guest::report::{json_lines, sections, show};
use guest::{Guest, KernelSpec, Outcome, DEBIAN_6_1, DEBIAN_6_12};
use serde_json::Value;

/// One `netwhy trace FILTER EXTRA` run while lab `scenario` runs; its JSON
/// in section `name`, its stderr in `name-stderr`.
pub fn trace_run(name: &str, filter: &str, extra: &str, count: u32, scenario: &str) -> String {
    format!(
        r#"
netwhy trace '{filter}' {extra} -o json --count {count} --duration 120 > /tmp/{name}.json 2> /tmp/{name}.err &
pid=$!
i=0; until grep -q attached /tmp/{name}.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/{name}.err; exit 20; fi; sleep 0.1
done
netwhy lab run {scenario} --check -o json > /tmp/{name}.lab || {{ cat /tmp/{name}.lab; exit 21; }}
wait $pid || {{ cat /tmp/{name}.err; exit 22; }}
echo "=== {name}"; cat /tmp/{name}.json
echo "=== {name}-stderr"; cat /tmp/{name}.err
"#
    )
}

/// Steps and fate of each original packet id in trace's JSON Lines.
/// Copies (`clone_of`: function backends follow them, e.g. the clone of a
/// datagram queued while its next hop's ARP resolves, which neigh_probe
/// makes for arp_solicit to read the source address from) are left out: these tests are about the originals, and
/// tests/guest_clone.rs about copies.
pub fn packets(out: &str) -> BTreeMap<u64, (Vec<Value>, Value)> {
    let mut m: BTreeMap<u64, (Vec<Value>, Value)> = BTreeMap::new();
    for x in json_lines(out) {
        let Some(id) = x["packet"].as_u64() else {
            continue;
        };
        if x["clone_of"].is_u64() {
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

pub fn hooks(steps: &[Value]) -> Vec<&str> {
    steps.iter().filter_map(|s| s["hook"].as_str()).collect()
}

/// The hooks trace's "attached to N tracepoints ...: a b c" line names.
pub fn attached(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .find(|l| l.contains(" attached to "))
        .and_then(|l| l.rsplit_once(": "))
        .map(|(_, names)| names.split_whitespace().collect())
        .unwrap_or_default()
}

pub fn assert_time_ordered(steps: &[Value]) {
    let t: Vec<u64> = steps.iter().filter_map(|s| s["time_ns"].as_u64()).collect();
    assert_eq!(t.len(), steps.len(), "steps without time_ns: {steps:?}");
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "steps out of order: {t:?}"
    );
}

const SCRIPT_HEAD: &str = "echo \"=== uname\"; uname -r\n";

/// Runs `script` in a Debian 6.12 guest; its sections when it exited 0.
fn on_6_12(test: &str, script: &str, secs: u64) -> Option<(BTreeMap<String, String>, Outcome)> {
    let g = Guest::new(DEBIAN_6_12).with_netwhy();
    let o = guest::or_skip(test, g.run(script, Duration::from_secs(secs)))?;
    eprintln!("{test}: guest ran in {:?}", o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    Some((sections(&o.output), o))
}

fn run(spec: KernelSpec, test: &str, more: &str) -> Option<(BTreeMap<String, String>, Outcome)> {
    let script = format!(
        "{SCRIPT_HEAD}{}{}{more}",
        trace_run("closed", "udp port 5300", "", 3, "udp-closed-port"),
        trace_run("dnat", "udp port 53", "", 2, "conntrack-nat-mismatch"),
    );
    let g = Guest::new(spec).with_netwhy();
    let o = guest::or_skip(test, g.run(&script, Duration::from_secs(400)))?;
    eprintln!("{test}: guest {} ran in {:?}", spec.tag, o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    for k in ["closed-stderr", "dnat-stderr"] {
        eprintln!("{test}: {k}: {}", s[k].trim());
    }
    Some((s, o))
}

/// The lab's three datagrams to a closed port: each a timeline from the
/// client's transmit to the server's drop, fate NO_SOCKET in __udp4_lib_rcv.
fn check_closed_port(test: &str, s: &BTreeMap<String, String>, o: &Outcome, icmp: bool) {
    let p = packets(&s["closed"]);
    assert_eq!(p.len(), 3, "{test}: {}", show(o));
    for (steps, fate) in p.values() {
        assert_eq!(fate["fate"], "dropped", "{test}: {fate}");
        assert_eq!(fate["reason"], "NO_SOCKET", "{test}: {fate}");
        assert_eq!(fate["location"]["symbol"], "__udp4_lib_rcv", "{fate}");
        assert_eq!(fate["dev"], "eth0", "{fate}");
        let h = hooks(steps);
        assert!(h.contains(&"net_dev_queue"), "{test}: {h:?}");
        assert!(h.contains(&"netif_receive_skb"), "{test}: {h:?}");
        assert_eq!(h.last(), Some(&"kfree_skb"), "{test}: {h:?}");
        if icmp {
            let step = steps.iter().find(|s| s["hook"] == "icmp_send");
            assert_eq!(step.map(|s| &s["icmp"]), Some(&Value::from("3/3")), "{h:?}");
        }
        assert_eq!(steps[0]["flow"]["dport"], 5300, "{:?}", steps[0]);
        assert_time_ordered(steps);
    }
}

/// conntrack-nat-mismatch: the query is DNATed on the router (the tuple
/// change shows there) and reaches the server (`query_fate`); the reply,
/// not un-NATed, is dropped at the client as NO_SOCKET.
fn check_dnat(test: &str, s: &BTreeMap<String, String>, o: &Outcome, query_fate: &str) {
    let funcs = s["dnat-stderr"].contains("kernel functions add steps");
    check_dnat_in("dnat", test, s, o, query_fate, funcs)
}

/// `want` appear in `h` in this order (each a prefix of a hook name).
fn assert_in_order(run: &str, h: &[&str], want: &[&str]) {
    let mut from = 0;
    for f in want {
        let i = h[from..]
            .iter()
            .position(|x| x.starts_with(f))
            .unwrap_or_else(|| panic!("{run}: no {f} step after {from} in {h:?}"));
        from += i + 1;
    }
}

/// [`check_dnat`] on the trace run named `run`.
fn check_dnat_in(
    run: &str,
    test: &str,
    s: &BTreeMap<String, String>,
    o: &Outcome,
    query_fate: &str,
    funcs: bool,
) {
    let p = packets(&s[run]);
    for (id, (steps, fate)) in &p {
        let h: Vec<String> = steps
            .iter()
            .map(|s| format!("{}@{}:{}", s["hook"], s["dev"], s["comm"]))
            .collect();
        eprintln!("{test}: dnat packet {id}: {h:?} -> {}", fate["fate"]);
    }
    assert_eq!(p.len(), 2, "{test}: {}", show(o));
    let (query, reply) = (p.values().next().unwrap(), p.values().nth(1).unwrap());
    let (steps, fate) = query;
    assert_time_ordered(steps);
    assert_eq!(
        steps[0]["flow"]["dst"], "198.18.1.1",
        "before DNAT: {:?}",
        steps[0]
    );
    let changed: Vec<&Value> = steps
        .iter()
        .filter(|s| s["tuple_changed"] == true)
        .collect();
    assert_eq!(changed.len(), 1, "{test}: one rewrite: {steps:?}");
    assert_eq!(changed[0]["flow"]["dst"], "198.18.2.3", "after DNAT");
    assert_eq!(changed[0]["flow"]["dport"], 53);
    assert_ne!(
        changed[0]["netns"], steps[0]["netns"],
        "rewritten on the router"
    );
    assert_eq!(fate["fate"], query_fate, "{test}: {fate}");
    // The last receive is the server's: after the router's.
    let rx = steps
        .iter()
        .rev()
        .find(|s| s["hook"] == "netif_receive_skb");
    let srv = rx.map(|s| s["netns"].clone()).unwrap_or_default();
    assert_ne!(
        srv, changed[0]["netns"],
        "received past the router: {steps:?}"
    );
    assert!(srv.as_u64().is_some_and(|n| n != 0), "{steps:?}");
    let (steps, fate) = reply;
    assert_time_ordered(steps);
    assert_eq!(steps[0]["flow"]["src"], "198.18.2.2", "{:?}", steps[0]);
    assert_eq!(fate["fate"], "dropped", "{test}: {fate}");
    assert_eq!(fate["reason"], "NO_SOCKET", "{test}: {fate}");
    assert_eq!(fate["location"]["symbol"], "__udp4_lib_rcv", "{fate}");
    if funcs {
        // With function steps: the query is received twice (router, then
        // server) and handed to UDP; the reply dies in UDP's receive.
        let q = hooks(&query.0);
        assert_in_order(run, &q, &["ip_rcv", "ip_rcv", "udp_rcv"]);
        let r = hooks(steps);
        assert_in_order(run, &r, &["ip_rcv", "__udp4_lib_rcv", "sk_skb_reason_drop"]);
    }
}

#[test]
fn trace_follows_drops_and_dnat_on_debian_6_12() {
    let test = "trace_follows_drops_and_dnat_on_debian_6_12";
    let Some((s, o)) = run(DEBIAN_6_12, test, "") else {
        return;
    };
    assert!(s["uname"].trim().starts_with("6.12."), "{}", show(&o));
    // 6.12's verifier used to refuse sk_data_ready's program.
    let on = attached(&s["closed-stderr"]);
    for h in ["sk_data_ready", "consume_skb", "kfree_skb", "icmp_send"] {
        assert!(on.contains(&h), "{h} not attached: {}", show(&o));
    }
    check_closed_port(test, &s, &o, true);
    // Nothing asked for: 6.12 gets kprobe-multi's steps by default, so the
    // DNAT path is also proven with every skb function hooked.
    let err = &s["dnat-stderr"];
    assert!(err.contains("via tp_btf+kprobe-multi "), "{err}");
    check_dnat(test, &s, &o, "delivered");
}

#[test]
fn trace_follows_drops_and_dnat_on_debian_6_1() {
    let test = "trace_follows_drops_and_dnat_on_debian_6_1";
    // Debian's 6.1 refuses kprobe-multi (EOPNOTSUPP): single kprobes on
    // the path functions add the function steps there.
    let more = trace_run(
        "kprobe",
        "udp port 5300",
        &format!("--backend kprobe --funcs '{PATH_FUNCS}'"),
        3,
        "udp-closed-port",
    );
    let Some((s, o)) = run(DEBIAN_6_1, test, &more) else {
        return;
    };
    assert!(s["uname"].trim().starts_with("6.1."), "{}", show(&o));
    // 6.1's consume_skb (one argument) loads and attaches.
    let on = attached(&s["closed-stderr"]);
    for h in ["consume_skb", "kfree_skb", "netif_receive_skb"] {
        assert!(on.contains(&h), "{h} not attached: {}", show(&o));
    }
    check_closed_port(test, &s, &o, on.contains(&"icmp_send"));
    // 6.1 has no sk_data_ready tracepoint, and a linear UDP datagram is
    // read (copy_linear_skb) and freed (__consume_stateless_skb, no
    // location argument) without any other: trace can only say the server
    // consumed the query, not that a socket got it.
    check_dnat(test, &s, &o, "consumed");
    check_function_steps(test, "kprobe", "tp_btf+kprobe", "kfree_skb_reason", &s, &o);
}

/// The functions a UDP datagram to a closed port runs through on 6.12,
/// for fentry (one trampoline per function: the full set takes minutes to
/// detach under TCG).
const PATH_FUNCS: &str = "^(ip_send_skb|__dev_queue_xmit|__netif_receive_skb|ip_rcv|ip_rcv_core|\
ip_local_deliver|udp_rcv|__udp4_lib_rcv|__icmp_send|sk_skb_reason_drop|kfree_skb_reason)$";

/// Issue 7: kernel function steps join the tracepoint timeline. Each
/// dropped datagram's timeline holds ip_rcv, __udp4_lib_rcv and
/// sk_skb_reason_drop in that order, between its first step and its fate,
/// with kprobe-multi (every skb function), fentry and single kprobes
/// (PATH_FUNCS).
#[test]
fn function_steps_join_the_timeline_on_debian_6_12() {
    let test = "function_steps_join_the_timeline_on_debian_6_12";
    let script = format!(
        "{SCRIPT_HEAD}{}{}{}",
        trace_run(
            "kmulti",
            "udp port 5300",
            "--backend kprobe-multi",
            3,
            "udp-closed-port"
        ),
        trace_run(
            "fentry",
            "udp port 5300",
            &format!("--backend fentry --funcs '{PATH_FUNCS}'"),
            3,
            "udp-closed-port"
        ),
        trace_run(
            "kprobe",
            "udp port 5300",
            &format!("--backend kprobe --funcs '{PATH_FUNCS}'"),
            3,
            "udp-closed-port"
        ),
    );
    let Some((s, o)) = on_6_12(test, &script, 600) else {
        return;
    };
    for (run, via) in [
        ("kmulti", "tp_btf+kprobe-multi"),
        ("fentry", "tp_btf+fentry"),
        ("kprobe", "tp_btf+kprobe"),
    ] {
        check_function_steps(test, run, via, "sk_skb_reason_drop", &s, &o);
    }
}

/// `netwhy run` with function steps: the command (the lab's closed-port
/// scenario, run by netwhy itself inside the cgroup) has its three
/// datagrams followed through ip_rcv, __udp4_lib_rcv and the drop, with
/// kprobe-multi's steps on every skb function.
#[test]
fn run_with_function_steps_on_debian_6_12() {
    let test = "run_with_function_steps_on_debian_6_12";
    let script = format!(
        r#"{SCRIPT_HEAD}
netwhy run --backend kprobe-multi -o json -- sh -c 'netwhy lab run udp-closed-port --check > /tmp/lab.out' > /tmp/run.json 2> /tmp/run.err || {{ cat /tmp/run.err /tmp/lab.out; exit 23; }}
echo "=== run"; cat /tmp/run.json
echo "=== run-stderr"; cat /tmp/run.err
"#
    );
    let Some((s, o)) = on_6_12(test, &script, 400) else {
        return;
    };
    check_function_steps(
        test,
        "run",
        "tp_btf+kprobe-multi",
        "sk_skb_reason_drop",
        &s,
        &o,
    );
    // And explain's finding for them, as at the end of trace.
    let finding = json_lines(&s["run"])
        .into_iter()
        .find(|x| x["type"] == "finding" && x["reason"] == "NO_SOCKET")
        .unwrap_or_else(|| panic!("no NO_SOCKET finding: {}", show(&o)));
    assert_eq!(finding["count"], 3, "{finding}");
}

/// Each of the three NO_SOCKET timelines of run `run` holds ip_rcv,
/// __udp4_lib_rcv and `drop_fn` steps, in that order, between the
/// tracepoints that start and end it.
fn check_function_steps(
    test: &str,
    run: &str,
    via: &str,
    drop_fn: &str,
    s: &BTreeMap<String, String>,
    o: &Outcome,
) {
    let err = &s[&format!("{run}-stderr")];
    eprintln!("{test}: {run}: {}", err.trim());
    assert!(err.contains(&format!("via {via}")), "{run}: {err}");
    // Issue 7: attach and detach times of the function set are printed.
    assert!(err.contains(" ms, attached in "), "{run}: {err}");
    let backend = via.trim_start_matches("tp_btf+");
    assert!(
        err.lines().any(|l| l.starts_with("netwhy: detached ")
            && l.contains(&format!(" kernel functions ({backend}) in "))),
        "{run}: {err}"
    );
    // The lab's datagrams (`netwhy run` also shows the command's other
    // packets, e.g. IPv6 multicast as its namespaces come up).
    let p: Vec<_> = packets(&s[run])
        .into_values()
        .filter(|(steps, _)| steps.first().is_some_and(|x| x["flow"]["dport"] == 5300))
        .collect();
    assert_eq!(p.len(), 3, "{run}: {}", show(o));
    for (steps, fate) in &p {
        assert_eq!(fate["fate"], "dropped", "{run}: {fate}");
        assert_eq!(fate["reason"], "NO_SOCKET", "{run}: {fate}");
        assert_eq!(fate["location"]["symbol"], "__udp4_lib_rcv", "{fate}");
        assert_time_ordered(steps);
        let h = hooks(steps);
        let at = |f: &str| {
            h.iter()
                .position(|x| *x == f)
                .unwrap_or_else(|| panic!("{run}: no {f} step in {h:?}"))
        };
        let (rcv, udp, drop) = (at("ip_rcv"), at("__udp4_lib_rcv"), at(drop_fn));
        assert!(0 < rcv && rcv < udp && udp < drop, "{run}: {h:?}");
        // Inside the timeline: the tracepoints start and end it.
        assert_eq!(h.last(), Some(&"kfree_skb"), "{run}: {h:?}");
        assert!(drop < h.len() - 1, "{run}: {h:?}");
        assert_eq!(fate["last_hook"], "kfree_skb", "{fate}");
        eprintln!("{test}: {run}: packet {}: {h:?}", fate["packet"]);
    }
}

/// Issue 7's firewall case: a TCP SYN dropped by an nftables forward rule
/// on the router, traced with module functions (`--kmods nf_tables`) on
/// kprobe-multi and fentry. Each SYN's timeline crosses ip_forward and the
/// netfilter hook into nft_do_chain_inet (the entry that takes the skb)
/// and ends with the drop NETFILTER_DROP at nft_do_chain.
#[test]
fn nft_drop_with_module_function_steps_on_debian_6_12() {
    let test = "nft_drop_with_module_function_steps_on_debian_6_12";
    let funcs = "--kmods nf_tables --funcs '^(ip_rcv|ip_forward|nf_hook_slow|nft_do_chain_(ipv4|inet)|sk_skb_reason_drop)$'";
    let script = format!(
        "{SCRIPT_HEAD}{}{}{}",
        trace_run(
            "nftkm",
            "tcp port 443",
            &format!("--backend kprobe-multi {funcs}"),
            3,
            "nft-forward-drop"
        ),
        trace_run(
            "nftfe",
            "tcp port 443",
            &format!("--backend fentry {funcs}"),
            3,
            "nft-forward-drop"
        ),
        trace_run(
            "nftkp",
            "tcp port 443",
            &format!("--backend kprobe {funcs}"),
            3,
            "nft-forward-drop"
        ),
    );
    let Some((s, o)) = on_6_12(test, &script, 600) else {
        return;
    };
    for (run, via) in [
        ("nftkm", "tp_btf+kprobe-multi"),
        ("nftfe", "tp_btf+fentry"),
        ("nftkp", "tp_btf+kprobe"),
    ] {
        let err = &s[&format!("{run}-stderr")];
        eprintln!("{test}: {run}: {}", err.trim());
        assert!(err.contains(&format!("via {via}")), "{run}: {err}");
        let p = packets(&s[run]);
        assert_eq!(p.len(), 3, "{run}: three SYNs: {}", show(&o));
        for (steps, fate) in p.values() {
            assert_eq!(fate["fate"], "dropped", "{run}: {fate}");
            assert_eq!(fate["reason"], "NETFILTER_DROP", "{run}: {fate}");
            assert_eq!(fate["location"]["symbol"], "nft_do_chain", "{fate}");
            assert_time_ordered(steps);
            let h = hooks(steps);
            // In this order (prerouting's hook runs before ip_forward too):
            // the forward path, its netfilter hook, the chain, the drop.
            assert_in_order(
                run,
                &h,
                &[
                    "ip_rcv",
                    "ip_forward",
                    "nf_hook_slow",
                    "nft_do_chain_",
                    "sk_skb_reason_drop",
                ],
            );
            assert_eq!(h.last(), Some(&"kfree_skb"), "{run}: {h:?}");
        }
    }
}

/// The DNAT path (one rewrite on the router, the un-NATed reply dropped
/// NO_SOCKET) and the nft drop on the backends the other tests do not use
/// for them: tracepoints alone, single kprobes, fentry (the closed port
/// runs on kprobe-multi and fentry here, and on single kprobes on 6.1).
#[test]
fn dnat_and_nft_drop_on_every_backend_on_debian_6_12() {
    let test = "dnat_and_nft_drop_on_every_backend_on_debian_6_12";
    let backends = [
        ("tp", "--backend tracepoint".to_string(), "tp_btf"),
        (
            "kp",
            format!("--backend kprobe --funcs '{PATH_FUNCS}'"),
            "tp_btf+kprobe",
        ),
        (
            "fe",
            format!("--backend fentry --funcs '{PATH_FUNCS}'"),
            "tp_btf+fentry",
        ),
    ];
    let mut script = SCRIPT_HEAD.to_string();
    for (tag, extra, _) in &backends {
        script += &trace_run(
            &format!("dnat{tag}"),
            "udp port 53",
            extra,
            2,
            "conntrack-nat-mismatch",
        );
    }
    script += &trace_run(
        "nfttp",
        "tcp port 443",
        "--backend tracepoint",
        3,
        "nft-forward-drop",
    );
    let Some((s, o)) = on_6_12(test, &script, 600) else {
        return;
    };
    for (tag, _, via) in &backends {
        let run = format!("dnat{tag}");
        let err = &s[&format!("{run}-stderr")];
        assert!(err.contains(&format!("via {via} ")), "{run}: {err}");
        check_dnat_in(&run, test, &s, &o, "delivered", *tag != "tp");
    }
    let p = packets(&s["nfttp"]);
    assert_eq!(p.len(), 3, "nfttp: three SYNs: {}", show(&o));
    for (steps, fate) in p.values() {
        assert_eq!(fate["reason"], "NETFILTER_DROP", "{fate}");
        assert_eq!(fate["location"]["symbol"], "nft_do_chain", "{fate}");
        assert_time_ordered(steps);
        assert!(
            steps
                .iter()
                .all(|st| !st["hook"].as_str().unwrap_or("").starts_with("nf_")),
            "tracepoints only: {steps:?}"
        );
    }
}
