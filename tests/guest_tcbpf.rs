//! `netwhy trace` with function steps names the TC BPF program that dropped
//! a tracked packet: an fexit on the program (planted by the `tc-bpf-drop`
//! lab scenario) adds "tc-bpf NAME id N on eth0 ingress → TC_ACT_SHOT" to
//! the packet's timeline before its TC_INGRESS fate. fentry/fexit are
//! refused on the host kernel, so this runs in a Debian 6.12 qemu guest
//! (harness: tests/guest/mod.rs).
mod guest;

use std::collections::BTreeMap;
use std::time::Duration;

use guest::report::{json_lines, sections, show};
use guest::{Guest, Outcome, DEBIAN_6_12};
use serde_json::Value;

/// The lab builds the network and plants the program, then pauses until
/// trace has attached (trace only fexits programs present at its start),
/// then sends its datagrams.
fn script(run: &str, steps: &str) -> String {
    format!(
        r#"
NETWHY_TEST_PAUSE_MS=400000 NETWHY_TEST_PAUSE_UNTIL=/tmp/{run}.go netwhy lab run tc-bpf-drop --check -o json > /tmp/{run}-lab.json 2> /tmp/{run}-lab.err &
lab=$!
i=0; until grep -q "lab built" /tmp/{run}-lab.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $lab 2>/dev/null; then cat /tmp/{run}-lab.err; exit 20; fi; sleep 0.1
done
netwhy trace 'udp port 5300' {steps} -o json --count 3 --duration 120 > /tmp/{run}.json 2> /tmp/{run}.err &
pid=$!
i=0; until grep -q attached /tmp/{run}.err; do
  i=$((i+1)); if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/{run}.err; exit 21; fi; sleep 0.1
done
echo "trace attached" >&2
touch /tmp/{run}.go
wait $lab || {{ cat /tmp/{run}-lab.json /tmp/{run}-lab.err; exit 22; }}
wait $pid || {{ cat /tmp/{run}.err; exit 23; }}
echo "=== {run}"; cat /tmp/{run}.json
echo "=== {run}-stderr"; cat /tmp/{run}.err
echo "=== {run}-lab"; cat /tmp/{run}-lab.json
"#
    )
}

/// On fentry (two path functions) and on the default backend (kprobe-multi
/// on every skb function: the program's fexit comes with any function
/// backend where the kernel allows fexit).
#[test]
fn fexit_on_the_tc_program_shows_its_verdict_before_the_drop() {
    let test = "fexit_on_the_tc_program_shows_its_verdict_before_the_drop";
    let runs = [
        (
            "fe",
            "--backend fentry --funcs '^(ip_rcv|sk_skb_reason_drop)$'",
        ),
        ("km", ""),
    ];
    let mut all = String::from("echo \"=== uname\"; uname -r\n");
    for (run, steps) in runs {
        all += &script(run, steps);
    }
    let g = Guest::new(DEBIAN_6_12)
        .module("sch_ingress")
        .module("cls_bpf")
        .with_netwhy();
    let Some(o) = guest::or_skip(test, g.run(&all, Duration::from_secs(600))) else {
        return;
    };
    eprintln!("{test}: guest ran in {:?}", o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    let s = sections(&o.output);
    for (run, _) in runs {
        check(test, run, &s, &o);
    }
}

/// Three datagrams, each dropped TC_INGRESS with the program's verdict
/// step between its receive and the drop.
fn check(test: &str, run: &str, s: &BTreeMap<String, String>, o: &Outcome) {
    let err = &s[&format!("{run}-stderr")];
    eprintln!("{test}: {run}: {}", err.trim());
    assert!(
        err.contains("fexit on 1 TC BPF program(s): tc-bpf nwlab_udp_deny id "),
        "{err}"
    );
    let lab = json_lines(&s[&format!("{run}-lab")]);
    assert_eq!(lab[0]["pass"], true, "{:?}", lab);
    let mut packets = 0;
    let mut steps: Vec<Value> = Vec::new();
    for x in json_lines(&s[run]) {
        match x["type"].as_str() {
            Some("step") => steps.push(x),
            Some("fate") => {
                packets += 1;
                let id = &x["packet"];
                let mine: Vec<&Value> = steps.iter().filter(|st| &st["packet"] == id).collect();
                let hooks: Vec<&str> = mine.iter().filter_map(|st| st["hook"].as_str()).collect();
                eprintln!("{test}: {run}: packet {id}: {hooks:?} -> {}", x["reason"]);
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
                // An original packet's step: no copy relation.
                assert!(mine[verdict].get("clone_of").is_none(), "{}", mine[verdict]);
            }
            _ => {}
        }
    }
    assert_eq!(packets, 3, "{run}: {}", show(o));
}
