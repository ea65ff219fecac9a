//! Benchmarks in a qemu guest booting Debian's 6.12 kernel (TCG: absolute
//! numbers are slow, the ratios are what these report): a UDP flood to a
//! closed port across a veth pair for 3 s per mode, the kernel's own count
//! of datagrams dropped (Udp NoPorts) as the rate, against nothing attached.
//!
//! - `skb_function_backends_flood_benchmark`: `netwhy skbfuncs`, every
//!   hooked function counting every packet: the cost of the hook itself.
//! - `trace_flood_benchmark`: `netwhy trace` tracking every datagram, with
//!   each backend adding its function steps: what a user pays, and how many
//!   steps per second reach user space (and how many are lost).
//!
//! By hand, after `cargo build --release --example udpflood`:
//! `cargo test --release --test guest_flood -- --ignored --nocapture`.
mod guest;

use std::collections::BTreeMap;
use std::time::Duration;

use guest::report::{sections, show};
use guest::{Guest, DEBIAN_6_12};

/// The functions a UDP datagram to a closed port runs through: the same
/// set for the three function backends.
const PATH_FUNCS: &str = "^(ip_send_skb|__dev_queue_xmit|__netif_receive_skb|ip_rcv|ip_rcv_core|\
ip_local_deliver|udp_rcv|__udp4_lib_rcv|__icmp_send|sk_skb_reason_drop|kfree_skb_reason)$";

/// A veth pair a/b; `noports` reads b's Udp NoPorts.
const SETUP: &str = r#"
ip() { /usr/local/bin/ip "$@"; }
ip netns add a; ip netns add b
ip -n a link add eth0 type veth peer name eth0 netns b
ip -n a addr add 198.18.9.1/24 dev eth0; ip -n b addr add 198.18.9.2/24 dev eth0
for n in a b; do ip -n $n link set eth0 up; ip -n $n link set lo up; done
ip netns exec b sysctl -qw net.ipv4.icmp_ratelimit=0
noports() { ip netns exec b awk '/^Udp:/ { if (++n == 2) print $3 }' /proc/net/snmp; }
"#;

/// Modes: (name, netwhy command line or "" for nothing attached).
fn flood_script(modes: &[(&str, String)]) -> String {
    // busybox sh runs its own applets before searching PATH: the host's
    // iproute2 is called by its full path (SETUP's `ip`).
    let mut script = SETUP.to_string();
    for (name, cmd) in modes {
        let (attach, detach) = if cmd.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!(
                    "{cmd} > /dev/null 2> /tmp/{name}.err &\npid=$!\n\
                     until grep -q attached /tmp/{name}.err; do kill -0 $pid || {{ cat /tmp/{name}.err; exit 30; }}; sleep 0.1; done\n"
                ),
                format!(
                    "kill -INT $pid; wait $pid || {{ cat /tmp/{name}.err; exit 31; }}\n\
                     echo \"=== err-{name}\"; cat /tmp/{name}.err\n"
                ),
            )
        };
        script += &format!(
            "{attach}before=$(noports)\nip netns exec a udpflood 198.18.9.2:9 3 > /dev/null\n\
             after=$(noports)\n{detach}echo \"=== rate-{name}\"; echo $(( (after - before) / 3 ))\n"
        );
    }
    script
}

fn run_flood(test: &str, modes: &[(&str, String)]) -> Option<BTreeMap<String, String>> {
    let netwhy = std::path::PathBuf::from(env!("CARGO_BIN_EXE_netwhy"));
    let flood = netwhy.with_file_name("examples").join("udpflood");
    assert!(
        flood.exists(),
        "{}: run `cargo build --release --example udpflood` first",
        flood.display()
    );
    let g = Guest::new(DEBIAN_6_12)
        .with_netwhy()
        .binary("udpflood", &flood);
    let o = guest::or_skip(test, g.run(&flood_script(modes), Duration::from_secs(900)))?;
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    Some(sections(&o.output))
}

/// Nothing attached, then `cmd` on tracepoints alone, on each function
/// backend with PATH_FUNCS, and on kprobe-multi with every skb function.
fn backend_modes(cmd: &str) -> Vec<(&'static str, String)> {
    let f = |b: &str| format!("{cmd} --backend {b} --funcs '{PATH_FUNCS}'");
    vec![
        ("none", String::new()),
        ("tracepoint", format!("{cmd} --backend tracepoint")),
        ("kprobe-multi", f("kprobe-multi")),
        ("kprobe", f("kprobe")),
        ("fentry", f("fentry")),
        ("kprobe-multi-all", format!("{cmd} --backend kprobe-multi")),
    ]
}

fn rate(s: &BTreeMap<String, String>, name: &str) -> f64 {
    s[&format!("rate-{name}")]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {s:?}"))
}

/// The hook's own cost per backend: `netwhy skbfuncs` without --port, so
/// every hooked function counts every packet (one array-map update).
#[test]
#[ignore]
fn skb_function_backends_flood_benchmark() {
    let test = "skb_function_backends_flood_benchmark";
    let modes = backend_modes("netwhy skbfuncs -o json");
    let Some(s) = run_flood(test, &modes) else {
        return;
    };
    let base = rate(&s, "none");
    assert!(base > 0.0, "{s:?}");
    for (name, _) in &modes {
        let r = rate(&s, name);
        eprintln!(
            "{test}: {name:>16}: {r:>8.0} drops/s  ratio {:.2}",
            r / base
        );
    }
}

/// `netwhy trace 'udp port 9'` tracks every flood datagram (and its ICMP
/// answer is not matched): tracepoints alone, then each function backend
/// adding the path functions' steps, then kprobe-multi on the whole skb
/// function set, and that set again with a filter the flood never matches.
/// Reports drops/s and its ratio, and the kernel's count of steps written
/// to the ring buffer and lost, per second of flood.
#[test]
#[ignore]
fn trace_flood_benchmark() {
    let test = "trace_flood_benchmark";
    let mut modes = backend_modes("netwhy trace 'udp port 9'");
    // The price of the hooks alone when the filter matches nothing in the
    // flood: what tracing one flow on a busy box costs.
    modes.push((
        "kprobe-multi-all-idle",
        "netwhy trace 'udp port 5353' --backend kprobe-multi".into(),
    ));
    let Some(s) = run_flood(test, &modes) else {
        return;
    };
    let base = rate(&s, "none");
    assert!(base > 0.0, "{s:?}");
    eprintln!("{test}: {:>16}: {base:>8.0} drops/s  ratio 1.00", "none");
    for (name, _) in &modes[1..] {
        let err = &s[&format!("err-{name}")];
        let (steps, lost) = summary(err).unwrap_or_else(|| panic!("{name}: no summary: {err}"));
        let r = rate(&s, name);
        eprintln!(
            "{test}: {name:>16}: {r:>8.0} drops/s  ratio {:.2}  steps/s {:>8.0}  lost/s {:>7.0}",
            r / base,
            steps / 3.0,
            lost / 3.0
        );
    }
}

/// `steps` and `lost` of trace's text summary line.
fn summary(err: &str) -> Option<(f64, f64)> {
    let line = err.lines().find(|l| l.contains(" matched: "))?;
    let field = |k: &str| -> Option<f64> {
        let rest = &line[line.find(k)? + k.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((field("steps: ")?, field("lost: ")?))
}
