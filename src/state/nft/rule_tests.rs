//! Expression decoding on netlink fixtures built like the kernel dumps them.
use super::*;
use crate::state::netlink::{nest_end, nest_start, put, put_str};

const NESTED: u16 = 0x8000;

fn expr(list: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    let e = nest_start(list, NESTED | NFTA_LIST_ELEM);
    put_str(list, NFTA_EXPR_NAME, name);
    let d = nest_start(list, NESTED | NFTA_EXPR_DATA);
    data(list);
    nest_end(list, d);
    nest_end(list, e);
}

fn value(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
    let n = nest_start(b, NESTED | ty);
    put(b, NFTA_DATA_VALUE, v);
    nest_end(b, n);
}

fn verdict(b: &mut Vec<u8>, code: i32, chain: Option<&str>) {
    put(b, 1, &1u32.to_be_bytes()); // dreg: verdict register
    let d = nest_start(b, NESTED | 2);
    let v = nest_start(b, NESTED | NFTA_DATA_VERDICT);
    put(b, NFTA_VERDICT_CODE, &code.to_be_bytes());
    if let Some(c) = chain {
        put_str(b, NFTA_VERDICT_CHAIN, c);
    }
    nest_end(b, v);
    nest_end(b, d);
}

/// `tcp dport 443 counter drop`
fn dport_drop() -> Vec<u8> {
    let mut l = Vec::new();
    expr(&mut l, "meta", |b| {
        put(b, 2, &16u32.to_be_bytes());
        put(b, 1, &1u32.to_be_bytes());
    });
    expr(&mut l, "cmp", |b| {
        put(b, 1, &1u32.to_be_bytes());
        put(b, 2, &0u32.to_be_bytes());
        value(b, 3, &[6]);
    });
    expr(&mut l, "payload", |b| {
        put(b, 1, &1u32.to_be_bytes());
        put(b, 2, &2u32.to_be_bytes());
        put(b, 3, &2u32.to_be_bytes());
        put(b, 4, &2u32.to_be_bytes());
    });
    expr(&mut l, "cmp", |b| {
        put(b, 1, &1u32.to_be_bytes());
        put(b, 2, &0u32.to_be_bytes());
        value(b, 3, &443u16.to_be_bytes());
    });
    expr(&mut l, "counter", |_| {});
    expr(&mut l, "immediate", |b| verdict(b, 0, None));
    l
}

#[test]
fn a_port_drop_rule() {
    let e = parse_exprs(&dport_drop());
    assert_eq!(e.len(), 6);
    assert_eq!(action(&e), Action::Drop);
    assert!(!matches_everything(&e));
    assert!(!matches_ct_invalid(&e));
    assert_eq!(
        describe(&e),
        "meta l4proto == 0x06, th dport == 0x01bb, counter, drop"
    );
}

#[test]
fn reject_and_xt_targets() {
    let mut l = Vec::new();
    expr(&mut l, "reject", |b| {
        put(b, 1, &0u32.to_be_bytes());
        put(b, 2, &[3]);
    });
    let e = parse_exprs(&l);
    assert_eq!(
        e,
        vec![Expr::Reject {
            kind: 0,
            code: Some(3)
        }]
    );
    assert_eq!(action(&e), Action::Reject);
    assert!(matches_everything(&e), "a bare reject matches everything");

    let mut l = Vec::new();
    expr(&mut l, "counter", |_| {});
    expr(&mut l, "target", |b| {
        put_str(b, 1, "REJECT");
        put(b, 2, &0u32.to_be_bytes());
    });
    let e = parse_exprs(&l);
    assert_eq!(action(&e), Action::Reject);
    assert!(matches_everything(&e));
    assert_eq!(describe(&e), "counter, -j REJECT");

    let mut l = Vec::new();
    expr(&mut l, "immediate", |b| verdict(b, -3, Some("LIBVIRT_FWI")));
    assert_eq!(action(&parse_exprs(&l)), Action::Jump("LIBVIRT_FWI".into()));
}

#[test]
fn ct_state_invalid() {
    let mut l = Vec::new();
    expr(&mut l, "ct", |b| {
        put(b, 1, &1u32.to_be_bytes());
        put(b, 2, &0u32.to_be_bytes());
    });
    expr(&mut l, "bitwise", |b| value(b, 4, &1u32.to_ne_bytes()));
    expr(&mut l, "cmp", |b| {
        put(b, 2, &1u32.to_be_bytes());
        value(b, 3, &0u32.to_ne_bytes());
    });
    expr(&mut l, "immediate", |b| verdict(b, 0, None));
    let e = parse_exprs(&l);
    assert!(matches_ct_invalid(&e));
    assert_eq!(action(&e), Action::Drop);
    assert_eq!(describe(&e), "ct state invalid, drop");
    // `ct state established,related accept` is not an invalid test.
    let mut l = Vec::new();
    expr(&mut l, "ct", |b| put(b, 2, &0u32.to_be_bytes()));
    expr(&mut l, "bitwise", |b| value(b, 4, &6u32.to_ne_bytes()));
    assert!(!matches_ct_invalid(&parse_exprs(&l)));
}

#[test]
fn truncated_input_does_not_panic() {
    let full = dport_drop();
    for n in 0..full.len() {
        let _ = parse_exprs(&full[..n]);
    }
}
