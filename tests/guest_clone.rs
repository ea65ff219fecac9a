//! `netwhy trace` follows copies of a packet (issue 7: skb_clone and
//! friends hooked at return), proven in a Debian 6.12 guest, the host
//! having no kprobes and no fentry (harness: tests/guest/mod.rs).
//!
//! The network: a bridge in namespace `br` with ports to namespaces A, B
//! and C (10.9.0.1-3), learning off, so it floods every frame. A sends one
//! UDP datagram to B's address and MAC (a permanent neighbour entry: no
//! ARP); the bridge hands one copy to B's port and a clone (skb_clone in
//! its flooding) to C's. B has no socket on the port: NO_SOCKET; C is not
//! the frame's MAC: OTHERHOST in ip_rcv_core. Without clone tracking the
//! clone would start as an unrelated packet (no `clone_of`).
//!
//! Outside CI a missing capability skips with a message; with CI=true it
//! fails.
mod guest;

use std::collections::BTreeMap;
use std::time::Duration;

use guest::report::{json_lines, sections, show};
use guest::{Guest, KernelSpec, DEBIAN_6_1, DEBIAN_6_12};
use serde_json::Value;

const FILTER: &str = "udp and dst host 10.9.0.2";

/// Bridge functions (module `bridge`) and the drop's, for the backends
/// attaching per function.
const FUNCS: &str =
    "--kmods bridge --funcs '^(br_handle_frame_finish|br_flood|ip_rcv_core|sk_skb_reason_drop)$'";

/// Builds the bridge and its three namespaces (iproute2's ip: busybox's
/// ignores veth peer names and has no netns).
const SETUP: &str = r#"
set -e
IP=/usr/local/bin/ip
echo "=== uname"; uname -r
for n in br A B C; do $IP netns add $n; done
$IP -n br link add br0 type bridge
$IP -n br link set br0 up
i=1
for n in A B C; do
  $IP -n br link add p$n type veth peer name eth0 netns $n
  $IP -n br link set p$n master br0
  $IP -n br link set p$n type bridge_slave learning off
  $IP -n br link set p$n up
  $IP -n $n addr add 10.9.0.$i/24 dev eth0
  $IP -n $n link set eth0 up
  $IP -n $n link set lo up
  i=$((i+1))
done
mac=$($IP -n B -o link show eth0 | sed 's/.*ether \([0-9a-f:]*\) .*/\1/')
$IP -n A neigh replace 10.9.0.2 lladdr $mac dev eth0 nud permanent
sleep 1
set +e
"#;

/// One `netwhy trace` run (`extra` arguments, output `fmt`) while A sends
/// one datagram (busybox traceroute: one probe, UDP); its output in
/// section `name`, its stderr in `name-stderr`. `--count 1`: copies come
/// along with the original and do not count.
fn run(name: &str, extra: &str, fmt: &str) -> String {
    format!(
        r#"
netwhy trace '{FILTER}' {extra} -o {fmt} --count 1 --duration 120 > /tmp/{name}.out 2> /tmp/{name}.err &
pid=$!
i=0; until grep -q attached /tmp/{name}.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/{name}.err; exit 20; fi; sleep 0.1
done
/usr/local/bin/ip netns exec A /bin/busybox traceroute -n -q 1 -m 1 -w 2 -p 9000 10.9.0.2
wait $pid || {{ cat /tmp/{name}.err; exit 22; }}
echo "=== {name}"; cat /tmp/{name}.out
echo "=== {name}-stderr"; cat /tmp/{name}.err
"#
    )
}

/// Steps and fate of each packet id in trace's JSON Lines.
fn packets(out: &str) -> BTreeMap<u64, (Vec<Value>, Value)> {
    let mut m: BTreeMap<u64, (Vec<Value>, Value)> = BTreeMap::new();
    for x in json_lines(out) {
        let Some(id) = x["packet"].as_u64() else {
            continue;
        };
        let e = m.entry(id).or_insert_with(|| (Vec::new(), Value::Null));
        match x["type"].as_str() {
            Some("step") => e.0.push(x.clone()),
            Some("fate") => e.1 = x.clone(),
            _ => {}
        }
    }
    m
}

fn hooks(steps: &[Value]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            let mut h = format!("{}@{}", s["hook"].as_str().unwrap_or("?"), s["netns_name"]);
            if let Some(c) = s["clone"].as_u64() {
                h += &format!("->{c}");
            }
            h
        })
        .collect()
}

/// The flooded datagram and its clone in run `run`: the original's
/// timeline has the skb_clone step naming the clone, after the bridge's
/// flooding; the clone is a packet of its own with `clone_of` on every
/// step and its fate; one copy dies NO_SOCKET in B, the other OTHERHOST
/// in C.
/// `bridge`: the run has steps in the bridge module's functions.
fn check(run: &str, via: &str, bridge: bool, s: &BTreeMap<String, String>, out: &str) {
    let err = &s[&format!("{run}-stderr")];
    eprintln!("{run}: {}", err.trim());
    assert!(err.contains(&format!("via {via}")), "{run}: {err}");
    assert!(
        err.contains("copies followed through skb_clone"),
        "{run}: {err}"
    );
    let p = packets(&s[run]);
    for (id, (steps, fate)) in &p {
        eprintln!("{run}: packet {id}: {:?} -> {fate}", hooks(steps));
    }
    assert_eq!(p.len(), 2, "{run}: the datagram and its clone: {out}");
    let (parent, (psteps, pfate)) = p
        .iter()
        .find(|(_, (st, _))| st.iter().any(|x| x["clone"].is_u64()))
        .unwrap_or_else(|| panic!("{run}: no packet has a clone step: {out}"));
    let at = psteps
        .iter()
        .position(|x| x["clone"].is_u64())
        .expect("found above");
    let step = &psteps[at];
    assert_eq!(step["hook"], "skb_clone", "{run}: {step}");
    assert_eq!(
        step["netns_name"], "br",
        "{run}: cloned on the bridge: {step}"
    );
    let child = step["clone"].as_u64().unwrap();
    assert!(
        !bridge || psteps[..at].iter().any(|x| x["hook"] == "br_flood"),
        "{run}: the bridge floods, then clones: {:?}",
        hooks(psteps)
    );
    assert_eq!(psteps[0]["netns_name"], "A", "{run}: sent by A");
    assert!(pfate.get("clone_of").is_none(), "{run}: {pfate}");
    let (csteps, cfate) = p
        .get(&child)
        .unwrap_or_else(|| panic!("{run}: clone {child} not printed: {out}"));
    assert_eq!(cfate["clone_of"].as_u64(), Some(*parent), "{run}: {cfate}");
    assert_eq!(cfate["clone_via"], "skb_clone", "{run}: {cfate}");
    assert!(
        csteps
            .iter()
            .all(|x| x["clone_of"].as_u64() == Some(*parent)),
        "{run}: every step of the clone names its source: {csteps:?}"
    );
    assert_eq!(csteps[0]["hook"], "skb_clone", "{run}: {:?}", hooks(csteps));
    let mut ends: Vec<(String, String, String)> = [pfate, cfate]
        .iter()
        .map(|f| {
            assert_eq!(f["fate"], "dropped", "{run}: {f}");
            (
                f["netns_name"].as_str().unwrap_or("?").to_string(),
                f["reason"].as_str().unwrap_or("?").to_string(),
                f["location"]["symbol"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    ends.sort();
    assert_eq!(
        ends,
        [
            ("B".into(), "NO_SOCKET".into(), "__udp4_lib_rcv".into()),
            ("C".into(), "OTHERHOST".into(), "ip_rcv_core".into()),
        ],
        "{run}"
    );
}

/// Boots `spec` with the bridge module, builds the network, runs `runs`.
fn boot(test: &str, spec: KernelSpec, runs: &str) -> Option<BTreeMap<String, String>> {
    let g = Guest::new(spec).with_netwhy().module("bridge");
    let o = guest::or_skip(
        test,
        g.run(&format!("{SETUP}{runs}"), Duration::from_secs(600)),
    )?;
    eprintln!("{test}: guest ran in {:?}", o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let mut s = sections(&o.output);
    assert!(s["uname"].trim().starts_with(spec.tag), "{}", show(&o));
    s.insert("_all".into(), show(&o));
    Some(s)
}

#[test]
fn trace_follows_a_bridge_clone_on_debian_6_12() {
    let test = "trace_follows_a_bridge_clone_on_debian_6_12";
    let runs = [
        run("kmulti", "--backend kprobe-multi --kmods bridge", "json"),
        run("fentry", &format!("--backend fentry {FUNCS}"), "json"),
        run("kprobe", &format!("--backend kprobe {FUNCS}"), "json"),
        run("text", &format!("--backend fentry {FUNCS}"), "text"),
    ];
    let Some(s) = boot(test, DEBIAN_6_12, &runs.concat()) else {
        return;
    };
    let out = &s["_all"];
    check("kmulti", "tp_btf+kprobe-multi", true, &s, out);
    check("fentry", "tp_btf+fentry", true, &s, out);
    check("kprobe", "tp_btf+kprobe", true, &s, out);
    let text = &s["text"];
    eprintln!("{test}: text timeline:\n{text}");
    let header = text
        .lines()
        .find(|l| l.contains("(clone of "))
        .unwrap_or_else(|| panic!("no clone header: {text}"));
    assert!(header.contains(" via skb_clone)"), "{header}");
    assert!(text.contains("cloned -> packet "), "{text}");
    assert!(
        text.contains("fate: dropped OTHERHOST at ip_rcv_core"),
        "{text}"
    );
    assert!(
        text.contains("fate: dropped NO_SOCKET at __udp4_lib_rcv"),
        "{text}"
    );
}

/// 6.1: no kprobe-multi (no FPROBE), other drop-reason numbers; single
/// kprobes with kretprobes, and fexit, follow the clone there too.
#[test]
fn trace_follows_a_bridge_clone_on_debian_6_1() {
    let test = "trace_follows_a_bridge_clone_on_debian_6_1";
    let runs = [
        run("kprobe", &format!("--backend kprobe {FUNCS}"), "json"),
        run("fentry", &format!("--backend fentry {FUNCS}"), "json"),
    ];
    let Some(s) = boot(test, DEBIAN_6_1, &runs.concat()) else {
        return;
    };
    let out = &s["_all"];
    check("kprobe", "tp_btf+kprobe", true, &s, out);
    // 6.1 refuses fentry on the bridge module's functions (not followed
    // here: vmlinux functions only), which the clone does not need.
    check("fentry", "tp_btf+fentry", false, &s, out);
}
