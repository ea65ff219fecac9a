//! The hook table against event.h and path.bpf.c, and against this kernel.
use super::*;

/// The Rust table and event.h's `enum nw_hook` must agree, and every
/// hook must have its BPF program.
#[test]
fn hook_table_matches_event_h_and_programs() {
    let h = include_str!("../include/event.h");
    let c = include_str!("path.bpf.c");
    let body = &h[h.find("enum nw_hook {").unwrap()..];
    let body = &body[..body.find("};").unwrap()];
    let mut n = 0;
    for line in body.lines().filter(|l| l.contains("NW_HOOK_")) {
        let (name, val) = line.trim().trim_end_matches(',').split_once(" = ").unwrap();
        let val: usize = val.parse().unwrap();
        if name == "NW_HOOK_MAX" {
            assert_eq!(val, HOOKS.len());
            continue;
        }
        let tp = HOOKS[val].tp;
        let want = format!("NW_HOOK_{}", tp.to_uppercase());
        assert!(want.starts_with(name), "{name} = {val} vs {tp}");
        assert!(
            c.contains(&format!("nw_path_{tp}"))
                || c.contains(&format!("PATH_HOOK({tp},"))
                || c.contains(&format!("PATH_HOOK_SK({tp},"))
        );
        n += 1;
    }
    assert_eq!(n, HOOKS.len());
    assert_eq!(HOOKS[HOOK_KFREE_SKB as usize].tp, "kfree_skb");
    assert_eq!(HOOKS[HOOK_CONSUME_SKB as usize].tp, "consume_skb");
}

#[test]
fn macro_indexes_match_the_table() {
    let c = include_str!("path.bpf.c");
    let lines = c
        .lines()
        .filter(|l| l.starts_with("PATH_HOOK(") || l.starts_with("PATH_HOOK_SK("));
    let mut n = 0;
    for line in lines {
        n += 1;
        let open = line.find('(').unwrap();
        let args: Vec<&str> = line[open + 1..line.len() - 1].split(", ").collect();
        let h = HOOKS.iter().find(|h| h.tp == args[0]).unwrap();
        assert_eq!(h.skb_arg.to_string(), args[1], "{line}");
    }
    assert!(n >= 12, "only {n} macro lines");
}

#[test]
fn this_kernel_has_the_core_hooks() {
    let Ok(btf) = Btf::load_vmlinux() else {
        return;
    };
    let (on, _) = select_hooks(&btf);
    for tp in [
        "netif_receive_skb",
        "net_dev_queue",
        "kfree_skb",
        "consume_skb",
        "sk_data_ready",
    ] {
        assert!(
            on.iter().any(|&i| HOOKS[i as usize].tp == tp),
            "{tp} missing"
        );
    }
}

#[test]
fn argument_counts_come_from_the_tracepoint_typedefs() {
    let Ok(btf) = Btf::load_vmlinux() else {
        return;
    };
    // kfree_skb(skb, location, reason, rx_sk) since 6.12; (skb, location,
    // reason) before: at least the three the program reads.
    assert!(btf.raw_tracepoint_arg_count("kfree_skb").unwrap() >= 3);
    assert_eq!(btf.raw_tracepoint_arg_count("net_dev_xmit"), Some(4));
    assert_eq!(btf.raw_tracepoint_arg_count("no_such_tracepoint_nw"), None);
    // This kernel's consume_skb has its location (6.3+).
    assert!(consume_has_location(&btf));
}
