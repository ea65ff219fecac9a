//! The expressions of an nftables rule, decoded from NFTA_RULE_EXPRESSIONS
//! well enough to say what the rule does: its action (drop, reject, accept,
//! an iptables-nft `-j REJECT`...), whether it matches anything at all, and
//! a short nft-like rendering for evidence lines.
//!
//! Why decode at all: nftrace names the rule that ended a packet, but a
//! `reject` and a `drop` both end in a drop verdict, and iptables-nft rules
//! carry their target in an xt-compat `target` expression. The diagnosis
//! (nft-reject vs nft-rule-drop vs iptables-reject vs a `ct state invalid`
//! drop) needs the expressions, and `netwhy doctor` needs "matches nothing"
//! to find catch-all REJECT rules that shadow later ACCEPTs.
use serde::Serialize;

use super::*;
use crate::state::netlink as nl;

/// One decoded expression. Unknown ones keep their name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// `immediate` setting the verdict register.
    Verdict(Verdict),
    /// `reject`: kind 0 icmp, 1 tcp reset, 2 icmpx; code for icmp kinds.
    Reject {
        kind: u32,
        code: Option<u8>,
    },
    /// iptables-nft target through xt compat (`REJECT`, `LOG`, `MASQUERADE`...).
    XtTarget(String),
    /// iptables-nft match through xt compat (`conntrack`, `comment`, `tcp`...).
    XtMatch(String),
    /// `ct` load of a key (0 = state).
    Ct {
        key: u32,
    },
    /// `meta` load of a key (16 = l4proto, 4/5 = iif/oifname...).
    Meta {
        key: u32,
    },
    /// `payload` load: base 0 link, 1 network, 2 transport header.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `cmp` against constant bytes; op 0 eq, 1 neq, 2 lt, 3 lte, 4 gt, 5 gte.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// `bitwise` mask (the `& mask` of a flag test).
    Bitwise {
        mask: Vec<u8>,
    },
    /// `lookup` in a named or anonymous set.
    Lookup {
        set: String,
    },
    Counter,
    Log,
    Other(String),
}

/// What a rule does to a packet it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Drop,
    /// Dropped after answering with an ICMP error or a TCP reset.
    Reject,
    Accept,
    Jump(String),
    Goto(String),
    Return,
    /// An xt target that is neither REJECT nor a verdict (LOG, MASQUERADE...).
    Target(String),
    /// No verdict: the rule only counts, logs, sets marks...
    Continue,
}

/// Decodes an NFTA_RULE_EXPRESSIONS payload (a list of NFTA_LIST_ELEM).
pub fn parse_exprs(list: &[u8]) -> Vec<Expr> {
    nl::attrs(list)
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .map(|(_, elem)| {
            let mut name = String::new();
            let mut data: &[u8] = &[];
            for (t, v) in nl::attrs(elem) {
                match t {
                    NFTA_EXPR_NAME => name = cstr(v),
                    NFTA_EXPR_DATA => data = v,
                    _ => {}
                }
            }
            parse_expr(&name, data)
        })
        .collect()
}

fn attr(data: &[u8], ty: u16) -> Option<&[u8]> {
    nl::attrs(data).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

fn be32_at(data: &[u8], ty: u16) -> Option<u32> {
    attr(data, ty).and_then(|v| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)))
}

/// The bytes of an NFTA_DATA_VALUE nested in attribute `ty`.
fn value_at(data: &[u8], ty: u16) -> Vec<u8> {
    attr(data, ty)
        .and_then(|d| attr(d, NFTA_DATA_VALUE))
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn parse_expr(name: &str, d: &[u8]) -> Expr {
    match name {
        "immediate" => {
            // NFTA_IMMEDIATE_DATA (2) → NFTA_DATA_VERDICT → code/chain.
            let Some(v) = attr(d, 2).and_then(|x| attr(x, NFTA_DATA_VERDICT)) else {
                return Expr::Other("immediate".into());
            };
            let code = be32_at(v, NFTA_VERDICT_CODE).unwrap_or(u32::MAX) as i32;
            let chain = attr(v, NFTA_VERDICT_CHAIN).map(cstr);
            Expr::Verdict(Verdict::from_code(code, chain))
        }
        "reject" => Expr::Reject {
            kind: be32_at(d, 1).unwrap_or(0),
            code: attr(d, 2).and_then(|v| v.first().copied()),
        },
        "target" => Expr::XtTarget(attr(d, 1).map(cstr).unwrap_or_default()),
        "match" => Expr::XtMatch(attr(d, 1).map(cstr).unwrap_or_default()),
        "ct" => Expr::Ct {
            key: be32_at(d, 2).unwrap_or(u32::MAX),
        },
        "meta" => Expr::Meta {
            key: be32_at(d, 2).unwrap_or(u32::MAX),
        },
        "payload" => Expr::Payload {
            base: be32_at(d, 2).unwrap_or(0),
            offset: be32_at(d, 3).unwrap_or(0),
            len: be32_at(d, 4).unwrap_or(0),
        },
        "cmp" => Expr::Cmp {
            op: be32_at(d, 2).unwrap_or(0),
            data: value_at(d, 3),
        },
        // NFTA_BITWISE_MASK = 4.
        "bitwise" => Expr::Bitwise {
            mask: value_at(d, 4),
        },
        // NFTA_LOOKUP_SET = 1.
        "lookup" => Expr::Lookup {
            set: attr(d, 1).map(cstr).unwrap_or_default(),
        },
        "counter" => Expr::Counter,
        "log" => Expr::Log,
        other => Expr::Other(other.to_string()),
    }
}

/// What the rule does when it matches: the last deciding expression.
pub fn action(exprs: &[Expr]) -> Action {
    for e in exprs.iter().rev() {
        match e {
            Expr::Reject { .. } => return Action::Reject,
            Expr::XtTarget(t) if t == "REJECT" => return Action::Reject,
            Expr::XtTarget(t) if t == "DROP" => return Action::Drop,
            Expr::XtTarget(t) => return Action::Target(t.clone()),
            Expr::Verdict(v) => {
                return match v {
                    Verdict::Drop => Action::Drop,
                    Verdict::Accept => Action::Accept,
                    Verdict::Jump(c) => Action::Jump(c.clone()),
                    Verdict::Goto(c) => Action::Goto(c.clone()),
                    Verdict::Return => Action::Return,
                    _ => Action::Continue,
                }
            }
            _ => {}
        }
    }
    Action::Continue
}

/// True when the rule matches every packet reaching it: it has no
/// expression that tests the packet (only counters, logs, and its action).
pub fn matches_everything(exprs: &[Expr]) -> bool {
    exprs.iter().all(|e| {
        matches!(
            e,
            Expr::Verdict(_) | Expr::Reject { .. } | Expr::XtTarget(_) | Expr::Counter | Expr::Log
        ) || matches!(e, Expr::XtMatch(m) if m == "comment")
    })
}

/// True for `ct state invalid` (alone or in a set of states with it):
/// a ct state load followed by a mask with the invalid bit.
pub fn matches_ct_invalid(exprs: &[Expr]) -> bool {
    exprs.windows(2).any(|w| match (&w[0], &w[1]) {
        (Expr::Ct { key: NFT_CT_STATE }, Expr::Bitwise { mask }) => {
            mask.len() >= 4
                && u32::from_ne_bytes(mask[..4].try_into().expect("4 bytes")) & CT_STATE_INVALID_BIT
                    != 0
        }
        (Expr::Ct { key: NFT_CT_STATE }, Expr::Cmp { op: 0, data }) => {
            data.len() >= 4
                && u32::from_ne_bytes(data[..4].try_into().expect("4 bytes"))
                    == CT_STATE_INVALID_BIT
        }
        _ => false,
    })
}

/// A short nft-like rendering: `th dport == 0x01bb, counter, reject`.
pub fn describe(exprs: &[Expr]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    for e in exprs {
        let s = match e {
            Expr::Payload { base, offset, len } => {
                pending = Some(payload_name(*base, *offset, *len));
                continue;
            }
            Expr::Meta { key } => {
                pending = Some(format!("meta {}", meta_name(*key)));
                continue;
            }
            Expr::Ct { key } => {
                pending = Some(if *key == NFT_CT_STATE {
                    "ct state".into()
                } else {
                    format!("ct key {key}")
                });
                continue;
            }
            Expr::Bitwise { mask } if pending.as_deref() == Some("ct state") => {
                // ct state masks are host-order bit sets: name the states.
                let bits = mask
                    .get(..4)
                    .map_or(0, |m| u32::from_ne_bytes(m.try_into().expect("4 bytes")));
                pending = Some(format!("ct state {}", ct_states(bits)));
                continue;
            }
            Expr::Bitwise { mask } => {
                let lhs = pending.take().unwrap_or_else(|| "reg".into());
                pending = Some(format!("{lhs} & 0x{}", hex(mask)));
                continue;
            }
            Expr::Cmp { op: 1, data }
                if data.iter().all(|b| *b == 0)
                    && pending
                        .as_deref()
                        .is_some_and(|p| p.starts_with("ct state ")) =>
            {
                pending.take().expect("checked")
            }
            Expr::Cmp { op, data } => {
                let lhs = pending.take().unwrap_or_else(|| "reg".into());
                format!("{lhs} {} 0x{}", cmp_op(*op), hex(data))
            }
            Expr::Lookup { set } => {
                let lhs = pending.take().unwrap_or_else(|| "reg".into());
                format!("{lhs} in @{set}")
            }
            Expr::Verdict(v) => verdict_name(v),
            Expr::Reject { kind, code } => match (kind, code) {
                (1, _) => "reject with tcp reset".into(),
                (_, Some(c)) => format!("reject (icmp code {c})"),
                _ => "reject".into(),
            },
            Expr::XtTarget(t) => format!("-j {t}"),
            Expr::XtMatch(m) => format!("-m {m}"),
            Expr::Counter => "counter".into(),
            Expr::Log => "log".into(),
            Expr::Other(n) => n.clone(),
        };
        parts.push(s);
    }
    parts.join(", ")
}

/// `invalid,established` for a ct state bit set (NF_CT_STATE_*_BIT).
fn ct_states(bits: u32) -> String {
    const NAMES: [(u32, &str); 5] = [
        (1, "invalid"),
        (2, "established"),
        (4, "related"),
        (8, "new"),
        (64, "untracked"),
    ];
    let v: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        format!("0x{bits:x}")
    } else {
        v.join(",")
    }
}

fn payload_name(base: u32, offset: u32, len: u32) -> String {
    match (base, offset, len) {
        (1, 9, 1) => "ip protocol".into(),
        (1, 12, 4) => "ip saddr".into(),
        (1, 16, 4) => "ip daddr".into(),
        (2, 0, 2) => "th sport".into(),
        (2, 2, 2) => "th dport".into(),
        _ => format!("payload base {base} offset {offset} len {len}"),
    }
}

fn meta_name(key: u32) -> String {
    match key {
        4 => "iif".into(),
        5 => "oif".into(),
        6 => "iifname".into(),
        7 => "oifname".into(),
        15 => "nfproto".into(),
        16 => "l4proto".into(),
        k => format!("key {k}"),
    }
}

fn cmp_op(op: u32) -> &'static str {
    match op {
        0 => "==",
        1 => "!=",
        2 => "<",
        3 => "<=",
        4 => ">",
        _ => ">=",
    }
}

fn verdict_name(v: &Verdict) -> String {
    match v {
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
