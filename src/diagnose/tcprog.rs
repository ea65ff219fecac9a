//! Which BPF program on the packet's device made a TC or XDP drop. The
//! kernel says TC_INGRESS / TC_EGRESS (XDP drops often say nothing): the
//! programs attached to that hook of that device, in that namespace, right
//! at the first drop, are the answer, with the commands to read and detach
//! each one.
use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use super::refine::normalize_function;
use crate::event::DropEvent;
use crate::state::tcbpf::{self, Attach, Hook, HookProg};

/// The hooks a drop points at: by reason, else by the dropping function
/// for drops inside the tc / XDP path that carry a vaguer reason.
pub fn hooks_of(reason: &str, function: &str) -> &'static [Hook] {
    match reason {
        "TC_INGRESS" => return &[Hook::Ingress],
        "TC_EGRESS" => return &[Hook::Egress],
        "XDP" => return &[Hook::Xdp],
        _ => {}
    }
    match normalize_function(function) {
        "sch_handle_ingress" | "tcx_run" => &[Hook::Ingress],
        "sch_handle_egress" => &[Hook::Egress],
        "tc_run" | "tcf_classify" | "cls_bpf_classify" => &[Hook::Ingress, Hook::Egress],
        "do_xdp_generic" | "netif_receive_generic_xdp" | "bpf_prog_run_generic_xdp" => &[Hook::Xdp],
        f if f.starts_with("veth_xdp_rcv") => &[Hook::Xdp],
        _ => &[],
    }
}

/// Clues for a drop on a tc or XDP hook (nothing for other drops).
pub fn gather(e: &DropEvent, c: &mut Clues) {
    let hooks = hooks_of(e.reason, &e.location.symbol);
    if hooks.is_empty() {
        return;
    }
    let Some(dev) = e.dev.as_deref() else {
        c.line("the drop carries no device: the programs on its hook cannot be listed");
        return;
    };
    let mut progs: Vec<HookProg> = Vec::new();
    for &h in hooks {
        match tcbpf::on_device(e.netns, dev, h) {
            Ok(p) => progs.extend(p),
            Err(err) => c.line(format!("listing BPF programs on {dev} {h} failed: {err}")),
        }
    }
    let ns = in_ns(e.netns_name.as_deref());
    let names: Vec<String> = hooks.iter().map(|h| h.to_string()).collect();
    if progs.is_empty() {
        c.line(format!(
            "no BPF program is attached to {dev} {} now (tcx, cls_bpf, XDP): a non-BPF tc \
             filter or action (gact drop, police) dropped it, or the program was detached since",
            names.join("/")
        ));
        if hooks.contains(&Hook::Ingress) || hooks.contains(&Hook::Egress) {
            c.fix(format!("{ns}tc -s filter show dev {dev} {}", names[0]));
        }
        return;
    }
    if progs.len() > 1 {
        c.line(format!(
            "{} BPF programs on this hook, run in the order listed; the first drop verdict \
             ends the packet",
            progs.len()
        ));
    }
    for p in &progs {
        c.line(format!("{p} (at the first drop)"));
        c.subjects.push(subject(p));
        c.fix(format!(
            "read what program {} '{}' decides: bpftool prog dump xlated id {}",
            p.id, p.name, p.id
        ));
        c.fix(format!(
            "detach it (the agent that loaded it may re-attach it): {ns}{}",
            detach(p)
        ));
    }
    c.cause = Some(if hooks == [Hook::Xdp] {
        specific::XDP_BPF_DROP
    } else {
        specific::TC_BPF_DROP
    });
}

fn subject(p: &HookProg) -> Subject {
    let (attach, priority) = match &p.attach {
        Attach::ClsBpf { priority, .. } => ("cls_bpf", Some(*priority)),
        Attach::Tcx { .. } => ("tcx", None),
        Attach::Xdp { .. } => ("xdp", None),
    };
    Subject::BpfProg {
        id: p.id,
        name: p.name.clone(),
        tag: p.tag.clone(),
        dev: p.dev.clone(),
        hook: p.hook.to_string(),
        attach: attach.into(),
        priority,
    }
}

/// The command that takes `p` off its hook.
fn detach(p: &HookProg) -> String {
    let dev = &p.dev;
    match &p.attach {
        Attach::ClsBpf {
            priority,
            handle,
            chain,
            ..
        } => {
            let chain = if *chain != 0 {
                format!(" chain {chain}")
            } else {
                String::new()
            };
            format!(
                "tc filter del dev {dev} {}{chain} pref {priority} handle {handle:#x} bpf",
                p.hook
            )
        }
        Attach::Tcx { .. } => format!("bpftool net detach tcx_{} dev {dev}", p.hook),
        Attach::Xdp { mode } => {
            let kind = match *mode {
                "skb" => "xdpgeneric",
                "hw" => "xdpoffload",
                _ => "xdpdrv",
            };
            format!("ip link set dev {dev} {kind} off")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_from_reason_then_location() {
        assert_eq!(
            hooks_of("TC_INGRESS", "__netif_receive_skb_core"),
            [Hook::Ingress]
        );
        assert_eq!(hooks_of("TC_EGRESS", "__dev_queue_xmit"), [Hook::Egress]);
        assert_eq!(hooks_of("XDP", ""), [Hook::Xdp]);
        assert_eq!(
            hooks_of("NOT_SPECIFIED", "tcf_classify+0x12/0x40"),
            [Hook::Ingress, Hook::Egress]
        );
        assert_eq!(
            hooks_of("NOT_SPECIFIED", "veth_xdp_rcv_skb.isra.0"),
            [Hook::Xdp]
        );
        assert!(hooks_of("NO_SOCKET", "__udp4_lib_rcv").is_empty());
    }

    #[test]
    fn detach_commands_match_the_attachment() {
        let mut p = HookProg {
            dev: "eth0".into(),
            hook: Hook::Ingress,
            attach: Attach::ClsBpf {
                priority: 1,
                handle: 1,
                chain: 0,
                direct_action: true,
            },
            id: 7,
            name: "deny".into(),
            tag: "00".into(),
            filter_name: None,
        };
        assert_eq!(
            detach(&p),
            "tc filter del dev eth0 ingress pref 1 handle 0x1 bpf"
        );
        p.attach = Attach::Tcx { position: 0 };
        assert_eq!(detach(&p), "bpftool net detach tcx_ingress dev eth0");
        p.hook = Hook::Xdp;
        p.attach = Attach::Xdp { mode: "skb" };
        assert_eq!(detach(&p), "ip link set dev eth0 xdpgeneric off");
    }
}
