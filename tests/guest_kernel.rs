//! netwhy on other kernels than the host's, for real: qemu guests booting
//! Debian's 6.12 (bookworm-security) and 6.1 kernels run the binary under
//! test (see tests/guest/mod.rs for the harness).
//!
//! Outside CI a missing capability (qemu, busybox-static, the kernel .deb)
//! skips with a message; with CI=true it fails.
mod guest;

use std::collections::BTreeMap;
use std::time::Duration;

use guest::report::{json_lines, reason_table, sections, show};
use guest::{Guest, KernelSpec, Outcome, DEBIAN_6_1, DEBIAN_6_12};

/// `netwhy drops` (the CLI, tp_btf) while the lab's udp-closed-port scenario
/// sends three datagrams to a closed port; then `reasons` for the guest's
/// numbering.
const DROPS_SCRIPT: &str = r#"
echo "=== uname"; uname -r
echo "=== reasons"; netwhy reasons || exit 10
netwhy drops --events -o json --port 5300 --count 3 --duration 120 > /tmp/drops.json 2> /tmp/drops.err &
pid=$!
i=0; until grep -q attached /tmp/drops.err; do i=$((i+1)); [ $i -gt 600 ] && { cat /tmp/drops.err; exit 11; }; sleep 0.1; done
echo "=== lab"; netwhy lab run udp-closed-port --check -o json; lab=$?
wait $pid; drops=$?
echo "=== drops"; cat /tmp/drops.json
echo "=== drops-stderr"; cat /tmp/drops.err
echo "=== codes"; echo "lab=$lab drops=$drops"
[ $lab -eq 0 ] && [ $drops -eq 0 ]
"#;

fn drops_on(spec: KernelSpec, test: &str) -> Option<(BTreeMap<String, String>, Outcome)> {
    let g = Guest::new(spec).with_netwhy();
    let o = guest::or_skip(test, g.run(DROPS_SCRIPT, Duration::from_secs(180)))?;
    eprintln!("{test}: guest {} ran in {:?}", spec.tag, o.elapsed);
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    Some((sections(&o.output), o))
}

/// Checks one guest's drops: NO_SOCKET by name, with the guest's own code.
fn check_no_socket(test: &str, s: &BTreeMap<String, String>, o: &Outcome) -> u32 {
    let table = reason_table(&s["reasons"]);
    let guest_no_socket = *table.get("NO_SOCKET").expect("guest BTF names NO_SOCKET");
    let drops: Vec<_> = json_lines(&s["drops"])
        .into_iter()
        .filter(|v| v["type"] == "drop")
        .collect();
    assert!(drops.len() >= 3, "{test}: {}", show(o));
    for d in &drops {
        assert_eq!(d["reason"], "NO_SOCKET", "{test}: {d}");
        assert_eq!(d["reason_code"], guest_no_socket, "{test}: {d}");
        assert_eq!(d["location"]["symbol"], "__udp4_lib_rcv", "{d}");
        assert_eq!(d["flow"]["dport"], 5300, "{d}");
    }
    let lab = json_lines(&s["lab"]);
    assert_eq!(lab.len(), 1, "{test}: {}", show(o));
    assert_eq!(lab[0]["pass"], true, "{test}: lab report {}", lab[0]);
    guest_no_socket
}

/// Host BTF: the numbering this machine uses.
fn host_reasons() -> BTreeMap<String, u32> {
    let r = netwhy::kernel::reasons::DropReasons::load().expect("host BTF reasons");
    r.iter().map(|(v, n)| (n.to_string(), v)).collect()
}

#[test]
fn drops_names_no_socket_on_debian_6_12() {
    let test = "drops_names_no_socket_on_debian_6_12";
    let Some((s, o)) = drops_on(DEBIAN_6_12, test) else {
        return;
    };
    assert!(s["uname"].trim().starts_with("6.12."), "{}", show(&o));
    let guest_val = check_no_socket(test, &s, &o);
    // The enum is renumbered between kernels: the same names carry other
    // values here than on the host, and decoding still names them right.
    let host = host_reasons();
    let guest = reason_table(&s["reasons"]);
    let moved: Vec<_> = guest
        .iter()
        .filter(|(n, v)| host.get(*n).is_some_and(|h| h != *v))
        .collect();
    eprintln!(
        "{test}: NO_SOCKET = {guest_val} in 6.12, {:?} on the host; {} of {} names carry another value",
        host.get("NO_SOCKET"),
        moved.len(),
        guest.len()
    );
    assert!(
        !moved.is_empty(),
        "6.12 and the host number every reason alike?"
    );
    assert_ne!(
        guest.len(),
        host.len(),
        "reason tables of different kernels"
    );
}

#[test]
fn drops_names_no_socket_on_debian_6_1() {
    let test = "drops_names_no_socket_on_debian_6_1";
    let Some((s, o)) = drops_on(DEBIAN_6_1, test) else {
        return;
    };
    assert!(s["uname"].trim().starts_with("6.1."), "{}", show(&o));
    let guest_val = check_no_socket(test, &s, &o);
    let host = host_reasons()["NO_SOCKET"];
    // On 6.1 NO_SOCKET itself moved (NOT_DROPPED_YET came later): the code
    // differs from the host's and the name is still right.
    assert_ne!(guest_val, host, "NO_SOCKET has the host's value on 6.1");
}

/// The lab scenarios on 6.12 (`lab run NAMES --check`): each builds its
/// broken network, triggers the drop, and checks what `drops` saw and what
/// `explain` concluded, on a kernel with another reason numbering.
#[test]
fn lab_scenarios_pass_on_debian_6_12() {
    let test = "lab_scenarios_pass_on_debian_6_12";
    // tc-bpf-drop needs the clsact qdisc and cls_bpf: modules on Debian.
    let g = Guest::new(DEBIAN_6_12)
        .with_netwhy()
        .module("sch_ingress")
        .module("cls_bpf")
        // The accept-queue scenarios' client is a TUN device.
        .module("tun")
        // udp-sndbuf-full holds the sender's queue with a tbf qdisc.
        .module("sch_tbf")
        // nft-bridge-drop's bridge (the bridge nft family is in nf_tables).
        .module("bridge")
        // ...whose rules' `meta` expression (udp dport) is a bridge module.
        .module("nft_meta_bridge");
    let script = "netwhy lab run --all --check -o json";
    let Some(o) = guest::or_skip(test, g.run(script, Duration::from_secs(600))) else {
        return;
    };
    let reports = json_lines(&o.output);
    for r in &reports {
        eprintln!(
            "{test}: {} pass={} {} ms{}",
            r["scenario"],
            r["pass"],
            r["elapsed_ms"],
            r["not_affected"]
                .as_str()
                .map(|s| format!(" (not affected: {s})"))
                .unwrap_or_default()
        );
    }
    assert_eq!(o.code, 0, "{test}: {}", show(&o));
    assert!(reports.len() >= 20, "{test}: {}", show(&o));
    // NETFILTER_DROP is renumbered between 6.12 and the host: the name
    // still comes out right, with the guest's own code.
    let host = host_reasons()["NETFILTER_DROP"];
    let nft: Vec<_> = reports
        .iter()
        .filter(|r| r["scenario"] == "nft-forward-drop")
        .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(!nft.is_empty(), "{test}: {}", show(&o));
    for e in nft {
        assert_eq!(e["reason"], "NETFILTER_DROP", "{e}");
        assert_ne!(
            e["reason_code"], host,
            "NETFILTER_DROP has the host's value: {e}"
        );
    }
}
