//! Attaching the whole function set through the chosen backend: one
//! kprobe-multi link, a kprobe per function, or an fentry program copy per
//! function (see fentry.rs), the per-function ones from many threads.
use std::os::fd::AsFd;

use libbpf_rs::{KprobeMultiOpts, KprobeOpts, Link};

use super::skel::*;
use super::{fentry, parallel, probes, select, Backend, Target};
use crate::probe::ProbeError;

/// What attaching did: links to keep, how many functions are hooked, and
/// the ones the kernel refused (name, error).
#[derive(Default)]
pub(super) struct Hooked {
    pub links: Vec<Link>,
    pub fentry: Vec<fentry::Clone>,
    pub count: usize,
    pub refused: Vec<(String, String)>,
}

/// Hooks `targets` through `backend`. `fentry`: the fentry object and
/// vmlinux BTF, present when the fentry feature probe passed. Only a
/// kprobe-multi refusal fails the whole set; per-function backends skip
/// what the kernel refuses.
pub(super) fn functions(
    backend: Backend,
    skel: &SkbfuncSkel<'static>,
    fentry: Option<(&SkbfuncSkel<'static>, &fentry::VmlinuxBtf)>,
    targets: &[Target],
) -> Result<Hooked, ProbeError> {
    let mut h = Hooked::default();
    match backend {
        Backend::Tracepoint => {}
        Backend::KprobeMulti => {
            let link = skel
                .progs
                .nw_skb_kmulti
                .attach_kprobe_multi_with_opts(KprobeMultiOpts {
                    symbols: targets.iter().map(|t| t.name.clone()).collect(),
                    cookies: cookies(targets),
                    retprobe: false,
                    ..Default::default()
                })
                .map_err(|e| ProbeError::Attach {
                    probe: "skbfunc",
                    hook: format!("kprobe-multi on {} functions", targets.len()),
                    detail: e.to_string(),
                })?;
            h.links.push(link);
            h.count = targets.len();
        }
        Backend::Kprobe => {
            parallel::raise_fd_limit(targets.len() * 2);
            let prog = parallel::SharedProg(&skel.progs.nw_skb_kprobe);
            let results = parallel::map(targets, parallel::ATTACH_THREADS, |id, t| {
                let o = KprobeOpts {
                    cookie: select::cookie(id as u32, t.arg),
                    ..Default::default()
                };
                prog.get()
                    .attach_kprobe_with_opts(false, &t.name, o)
                    .map_err(|e| e.to_string())
            });
            for (t, r) in targets.iter().zip(results) {
                match r {
                    Ok(l) => {
                        h.links.push(l);
                        h.count += 1;
                    }
                    Err(e) => h.refused.push((t.name.clone(), e)),
                }
            }
        }
        Backend::Fentry => {
            parallel::raise_fd_limit(targets.len() * 2);
            let (fs, btf) = fentry.expect("fentry probe passed");
            let mut mods = std::collections::HashMap::new();
            for m in targets.iter().filter_map(|t| t.module.as_deref()) {
                if !mods.contains_key(m) {
                    mods.insert(m.to_string(), fentry::ModuleBtf::load(btf, m));
                }
            }
            let ids: Vec<Result<(u32, Option<&fentry::ModuleBtf>), String>> = targets
                .iter()
                .map(|t| match &t.module {
                    None => btf
                        .func_id(&t.name)
                        .map(|i| (i, None))
                        .ok_or("no BTF id".into()),
                    Some(m) => match &mods[m] {
                        Ok(mb) => mb
                            .func_id(&t.name)
                            .map(|i| (i, Some(mb)))
                            .ok_or("no BTF id".into()),
                        Err(e) => Err(e.clone()),
                    },
                })
                .collect();
            let insns: [&[libbpf_rs::libbpf_sys::bpf_insn]; 5] =
                std::array::from_fn(|pos| probes::fentry_insns(fs, pos as u8));
            let results = parallel::map(targets, parallel::ATTACH_THREADS, |id, t| {
                ids[id].clone().and_then(|(bid, m)| {
                    let obj = m.map(|m| m.fd.as_fd());
                    fentry::attach(
                        insns[t.arg.min(4) as usize],
                        bid,
                        obj,
                        id as u64,
                        fentry::Kind::Fentry,
                    )
                })
            });
            for (t, r) in targets.iter().zip(results) {
                match r {
                    Ok(c) => {
                        h.fentry.push(c);
                        h.count += 1;
                    }
                    Err(e) => h.refused.push((t.name.clone(), e)),
                }
            }
        }
    }
    Ok(h)
}

fn cookies(targets: &[Target]) -> Vec<u64> {
    targets
        .iter()
        .enumerate()
        .map(|(id, t)| select::cookie(id as u32, t.arg))
        .collect()
}
