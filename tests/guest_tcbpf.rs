//! `netwhy trace --backend fentry` names the TC BPF program that dropped a
//! tracked packet: an fexit on the program (planted by the `tc-bpf-drop`
//! lab scenario) adds "tc-bpf NAME id N on eth0 ingress → TC_ACT_SHOT" to
//! the packet's timeline before its TC_INGRESS fate. fentry/fexit are
//! refused on the host kernel, so this runs in a Debian 6.12 qemu guest
//! (harness: tests/guest/mod.rs).
mod guest;

use std::time::Duration;

use guest::report::{json_lines, sections, show};
use guest::{Guest, DEBIAN_6_12};
use serde_json::Value;

/// The lab builds the network and plants the program, then pauses while
/// trace starts (trace only fexits programs present at its start), then
/// sends its datagrams.
const SCRIPT: &str = r#"
echo "=== uname"; uname -r
NETWHY_TEST_PAUSE_MS=40000 netwhy lab run tc-bpf-drop --check -o json > /tmp/lab.json 2> /tmp/lab.err &
lab=$!
i=0; until grep -q "lab built" /tmp/lab.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $lab 2>/dev/null; then cat /tmp/lab.err; exit 20; fi; sleep 0.1
done
netwhy trace 'udp port 5300' --backend fentry --funcs '^(ip_rcv|sk_skb_reason_drop)$' -o json --count 3 --duration 120 > /tmp/tc.json 2> /tmp/tc.err &
pid=$!
i=0; until grep -q attached /tmp/tc.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/tc.err; exit 21; fi; sleep 0.1
done
echo "trace attached" >&2
wait $lab || { cat /tmp/lab.json /tmp/lab.err; exit 22; }
wait $pid || { cat /tmp/tc.err; exit 23; }
echo "=== tc"; cat /tmp/tc.json
echo "=== tc-stderr"; cat /tmp/tc.err
echo "=== lab"; cat /tmp/lab.json
"#;

#[test]
fn fexit_on_the_tc_program_shows_its_verdict_before_the_drop() {
    let test = "fexit_on_the_tc_program_shows_its_verdict_before_the_drop";
    let g = Guest::new(DEBIAN_6_12)
        .module("sch_ingress")
        .module("cls_bpf")
        .with_netwhy();
    let Some(o) = guest::or_skip(test, g.run(SCRIPT, Duration::from_secs(600))) else {
        return;
    };
    eprintln!("{test}: guest ran in {:?}", o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    let err = &s["tc-stderr"];
    eprintln!("{test}: {}", err.trim());
    assert!(
        err.contains("fexit on 1 TC BPF program(s): tc-bpf nwlab_udp_deny id "),
        "{err}"
    );
    let lab = json_lines(&s["lab"]);
    assert_eq!(lab[0]["pass"], true, "{}", s["lab"]);
    let mut packets = 0;
    let mut steps: Vec<Value> = Vec::new();
    for x in json_lines(&s["tc"]) {
        match x["type"].as_str() {
            Some("step") => steps.push(x),
            Some("fate") => {
                packets += 1;
                let id = &x["packet"];
                let mine: Vec<&Value> = steps.iter().filter(|st| &st["packet"] == id).collect();
                let hooks: Vec<&str> = mine.iter().filter_map(|st| st["hook"].as_str()).collect();
                eprintln!("{test}: packet {id}: {hooks:?} -> {}", x["reason"]);
                assert_eq!(x["fate"], "dropped", "{x}");
                assert_eq!(x["reason"], "TC_INGRESS", "{x}");
                let verdict = hooks
                    .iter()
                    .position(|h| {
                        h.starts_with("tc-bpf nwlab_udp_deny id ")
                            && h.ends_with(" on eth0 ingress → TC_ACT_SHOT")
                    })
                    .unwrap_or_else(|| panic!("no verdict step in {hooks:?}"));
                let at = |f: &str| {
                    hooks
                        .iter()
                        .rposition(|h| *h == f)
                        .unwrap_or_else(|| panic!("no {f} step in {hooks:?}"))
                };
                // Received on eth0, judged by the program, then freed: the
                // verdict comes before the drop function and the fate.
                let (rcv, drop, free) = (
                    at("netif_receive_skb"),
                    at("sk_skb_reason_drop"),
                    at("kfree_skb"),
                );
                assert!(rcv < verdict && verdict < drop && drop < free, "{hooks:?}");
                assert_eq!(free, hooks.len() - 1, "{hooks:?}");
                let t = |i: usize| mine[i]["time_ns"].as_u64().unwrap();
                assert!(t(rcv) <= t(verdict) && t(verdict) <= t(free), "{hooks:?}");
                assert_eq!(mine[verdict]["dev"], "eth0");
            }
            _ => {}
        }
    }
    assert_eq!(packets, 3, "{}", show(&o));
}
