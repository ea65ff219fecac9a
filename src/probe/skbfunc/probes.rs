//! Feature probes and target discovery for the skb function probe: which
//! functions to hook (BTF + available_filter_functions + --kmods), and
//! whether this kernel lets each backend attach one of them.
use std::collections::HashSet;
use std::os::fd::AsFd;

use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{KprobeMultiOpts, KprobeOpts};

use super::skel::*;
use super::{clone, fentry, select, Backend, ProbeResult, SkbFuncOptions, Target, PROBE_SLOT};
use crate::kernel::btf::Btf;
use crate::probe::ProbeError;
use crate::sys::tracefs::TRACEFS;
use crate::undo::tracefs::ensure_tracefs;
/// What discovery found: the functions to hook, `ip_rcv` from BTF alone
/// for the feature probes when ftrace lists nothing (so they report the
/// kernel's own answer, e.g. no kprobes at all), and the cloning
/// functions (followed only when sharing the path probe's maps).
pub(super) struct Discovered {
    pub targets: Vec<Target>,
    pub fallback: Option<Target>,
    pub clones: Vec<clone::CloneTarget>,
}

/// BTF functions with an skb argument that ftrace lists as traceable.
pub(super) fn discover(opts: &SkbFuncOptions) -> Result<Discovered, ProbeError> {
    let btf = Btf::load_vmlinux().map_err(|e| ProbeError::Load {
        probe: "skbfunc",
        detail: e.to_string(),
    })?;
    let funcs = btf.funcs_with_struct_ptr_param("sk_buff");
    // tracefs is needed for this one read: the kprobe PMU, kprobe-multi
    // and fentry attach without it. Unmounting now means no error path
    // below can leave a mount behind.
    let (_, mount) = ensure_tracefs();
    let avail = std::fs::read_to_string(format!("{TRACEFS}/available_filter_functions"))
        .unwrap_or_default();
    drop(mount);
    let traceable: HashSet<String> = select::traceable(&avail);
    let fallback = funcs.iter().find(|f| f.func == "ip_rcv").map(|f| Target {
        name: f.func.clone(),
        arg: f.arg_index,
        module: None,
    });
    let mut all = vec![(None, funcs)];
    for m in &opts.kmods {
        let mb = Btf::load_module(m, &btf).map_err(|e| ProbeError::Load {
            probe: "skbfunc",
            detail: format!("--kmods {m}: {e} (is the module loaded?)"),
        })?;
        all.push((Some(m.clone()), mb.funcs_with_struct_ptr_param("sk_buff")));
    }
    let clones = match opts.share {
        Some(_) => clone::select(&all[0].1, &traceable),
        None => Vec::new(),
    };
    Ok(Discovered {
        targets: select::targets(all, &traceable, opts.funcs.as_ref()),
        fallback,
        clones,
    })
}

pub(super) fn fentry_progs_mut<'a>(
    open: &'a mut OpenSkbfuncSkel<'static>,
) -> [&'a mut libbpf_rs::OpenProgramMut<'static>; 5] {
    let p = &mut open.progs;
    [
        &mut p.nw_skb_fentry0,
        &mut p.nw_skb_fentry1,
        &mut p.nw_skb_fentry2,
        &mut p.nw_skb_fentry3,
        &mut p.nw_skb_fentry4,
    ]
}

pub(super) fn fentry_insns<'a>(
    s: &'a SkbfuncSkel<'static>,
    arg: u8,
) -> &'a [libbpf_rs::libbpf_sys::bpf_insn] {
    let p = &s.progs;
    match arg {
        0 => p.nw_skb_fentry0.insns(),
        1 => p.nw_skb_fentry1.insns(),
        2 => p.nw_skb_fentry2.insns(),
        3 => p.nw_skb_fentry3.insns(),
        _ => p.nw_skb_fentry4.insns(),
    }
}

/// The fentry object: each position's program verified against the first
/// target with its skb there (unused positions are not loaded), and the
/// clone fexit program against the first cloning function (when copies
/// are followed), sharing the main object's hits map.
pub(super) fn load_fentry(
    opts: &SkbFuncOptions,
    tp_base: u32,
    main: &SkbfuncSkel<'static>,
    targets: &[Target],
    clones: &[clone::CloneTarget],
) -> Result<(SkbfuncSkel<'static>, fentry::VmlinuxBtf), String> {
    let btf = fentry::VmlinuxBtf::load()?;
    let mut open = super::open_skel(opts, tp_base).map_err(|e| e.to_string())?;
    let p = &mut open.progs;
    for prog in [
        &mut p.nw_skb_kmulti,
        &mut p.nw_skb_kprobe,
        &mut p.nw_tp_netif_receive_skb,
        &mut p.nw_tp_net_dev_queue,
        &mut p.nw_tp_net_dev_xmit,
        &mut p.nw_tp_kfree_skb,
        &mut p.nw_tp_consume_skb,
    ] {
        prog.set_autoload(false);
    }
    for prog in clone::progs_mut(&mut open) {
        prog.set_autoload(false);
    }
    if let Some(c) = clones.first() {
        let p = &mut open.progs.nw_clone_fexit;
        p.set_autoload(true);
        p.set_attach_target(0, Some(c.name.to_string()))
            .map_err(|e| format!("fexit target {}: {e}", c.name))?;
    }
    for (pos, prog) in fentry_progs_mut(&mut open).into_iter().enumerate() {
        let vmlinux = targets.iter().filter(|t| t.module.is_none());
        match vmlinux.clone().find(|t| t.arg as usize == pos) {
            Some(t) => prog
                .set_attach_target(0, Some(t.name.clone()))
                .map_err(|e| format!("fentry target {}: {e}", t.name))?,
            None => prog.set_autoload(false),
        }
    }
    open.maps
        .hits
        .reuse_fd(main.maps.hits.as_fd())
        .map_err(|e| format!("sharing the hits map: {e}"))?;
    let s = open
        .load()
        .map_err(|e| format!("loading fentry programs: {e}"))?;
    Ok((s, btf))
}

pub(super) fn probe_kmulti(skel: &SkbfuncSkel<'static>, t: &Target) -> ProbeResult {
    let r = skel
        .progs
        .nw_skb_kmulti
        .attach_kprobe_multi_with_opts(KprobeMultiOpts {
            symbols: vec![t.name.clone()],
            cookies: vec![select::cookie(PROBE_SLOT, t.arg)],
            retprobe: false,
            ..Default::default()
        });
    verdict(Backend::KprobeMulti, r.map(drop))
}

pub(super) fn probe_kprobe(skel: &SkbfuncSkel<'static>, t: &Target) -> ProbeResult {
    let o = KprobeOpts {
        cookie: select::cookie(PROBE_SLOT, t.arg),
        ..Default::default()
    };
    let r = skel
        .progs
        .nw_skb_kprobe
        .attach_kprobe_with_opts(false, &t.name, o);
    verdict(Backend::Kprobe, r.map(drop))
}

pub(super) fn probe_fentry(
    fs: &SkbfuncSkel<'static>,
    btf: &fentry::VmlinuxBtf,
    t: &Target,
) -> ProbeResult {
    let r = btf
        .func_id(&t.name)
        .ok_or_else(|| format!("no BTF id for {}", t.name))
        .and_then(|id| {
            fentry::attach(
                fentry_insns(fs, t.arg),
                id,
                None,
                PROBE_SLOT.into(),
                fentry::Kind::Fentry,
            )
        });
    match r {
        Ok(c) => {
            drop(c);
            ProbeResult::ok(Backend::Fentry)
        }
        Err(e) => ProbeResult::failed(Backend::Fentry, e),
    }
}

fn verdict(b: Backend, r: libbpf_rs::Result<()>) -> ProbeResult {
    match r {
        Ok(()) => ProbeResult::ok(b),
        Err(e) => ProbeResult::failed(b, format!("{e:#}")),
    }
}
