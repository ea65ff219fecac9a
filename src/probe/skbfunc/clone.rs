//! Following copies of tracked packets (`netwhy trace` with a function
//! backend): the bridge flooding a frame to several ports, netfilter's
//! dup/TEE, a packet socket tapping transmit... all hand on a copy made by
//! one of [`FUNCS`], which the tracepoints cannot tell from a new packet.
//!
//! Each is hooked where both skbs are known, at return: fexit on the fentry
//! backend; on kprobe and kprobe-multi an entry probe remembers the source
//! per thread and a return probe reads the copy (BPF side: clone.h). A
//! tracked source makes the copy a tracked packet with its own id (from the
//! path probe's counter, so ids never collide) and `clone_of` = the
//! source's id. Which of them the kernel has is looked up, never assumed: a
//! missing or refused one only goes unfollowed.
use std::collections::HashSet;

use libbpf_rs::{KprobeMultiOpts, KprobeOpts, Link};

use super::fentry;
use super::skel::*;
use super::Backend;
use crate::kernel::btf::FuncParam;

/// The functions that return a copy of their first argument, an skb. Their
/// index is the attach cookie and, added to the clone hook base, the step's
/// hook. Wrappers (pskb_copy, skb_realloc_headroom, skb_expand_head...)
/// call one of these, which is hooked instead: one copy, one new packet.
pub const FUNCS: [&str; 4] = [
    "skb_clone",
    "skb_copy",
    "skb_copy_expand",
    "__pskb_copy_fclone",
];

/// A cloning function this kernel has, with its index in [`FUNCS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneTarget {
    pub id: u32,
    pub name: &'static str,
}

/// Those of [`FUNCS`] that BTF lists with the skb as first argument (what
/// the programs read) and ftrace can hook.
pub fn select(btf_funcs: &[FuncParam], traceable: &HashSet<String>) -> Vec<CloneTarget> {
    FUNCS
        .iter()
        .enumerate()
        .filter(|(_, name)| traceable.contains(**name))
        .filter(|(_, name)| {
            btf_funcs
                .iter()
                .any(|f| f.func == **name && f.arg_index == 0)
        })
        .map(|(id, name)| CloneTarget {
            id: id as u32,
            name,
        })
        .collect()
}

/// The kprobe flavours of the clone programs (fexit is set up apart: it
/// needs a target before load).
pub(super) fn progs_mut<'a>(
    open: &'a mut OpenSkbfuncSkel<'static>,
) -> [&'a mut libbpf_rs::OpenProgramMut<'static>; 4] {
    let p = &mut open.progs;
    [
        &mut p.nw_clone_kmulti,
        &mut p.nw_clone_kmulti_ret,
        &mut p.nw_clone_kprobe,
        &mut p.nw_clone_kretprobe,
    ]
}

/// The clone hooks attached: dropping it detaches them.
#[derive(Default)]
pub struct Attached {
    pub links: Vec<Link>,
    pub fexit: Vec<fentry::Clone>,
    /// Functions whose copies are followed.
    pub funcs: Vec<String>,
    /// Functions the kernel refused (name, error).
    pub refused: Vec<(String, String)>,
}

/// Hooks `targets` through `backend` (nothing for tracepoints). `fexit`:
/// the fentry object (its nw_clone_fexit verified on the first target)
/// and vmlinux BTF, when the fentry backend was loaded.
pub(super) fn attach(
    backend: Backend,
    skel: &SkbfuncSkel<'static>,
    fexit: Option<(&SkbfuncSkel<'static>, &fentry::VmlinuxBtf)>,
    targets: &[CloneTarget],
) -> Attached {
    let mut a = Attached::default();
    if targets.is_empty() {
        return a;
    }
    match backend {
        Backend::Tracepoint => {}
        Backend::KprobeMulti => {
            let opts = |retprobe| KprobeMultiOpts {
                symbols: targets.iter().map(|t| t.name.to_string()).collect(),
                cookies: targets.iter().map(|t| u64::from(t.id)).collect(),
                retprobe,
                ..Default::default()
            };
            let p = &skel.progs;
            let r = p
                .nw_clone_kmulti
                .attach_kprobe_multi_with_opts(opts(false))
                .and_then(|entry| {
                    let ret = p
                        .nw_clone_kmulti_ret
                        .attach_kprobe_multi_with_opts(opts(true))?;
                    Ok([entry, ret])
                });
            match r {
                Ok(l) => {
                    a.links.extend(l);
                    a.funcs = targets.iter().map(|t| t.name.to_string()).collect();
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    a.refused = targets.iter().map(|t| (t.name.into(), e.clone())).collect();
                }
            }
        }
        Backend::Kprobe => {
            for t in targets {
                let o = || KprobeOpts {
                    cookie: u64::from(t.id),
                    ..Default::default()
                };
                let p = &skel.progs;
                let r = p
                    .nw_clone_kprobe
                    .attach_kprobe_with_opts(false, t.name, o())
                    .and_then(|entry| {
                        let ret =
                            p.nw_clone_kretprobe
                                .attach_kprobe_with_opts(true, t.name, o())?;
                        Ok([entry, ret])
                    });
                match r {
                    Ok(l) => {
                        a.links.extend(l);
                        a.funcs.push(t.name.into());
                    }
                    Err(e) => a.refused.push((t.name.into(), format!("{e:#}"))),
                }
            }
        }
        Backend::Fentry => {
            let Some((fs, btf)) = fexit.filter(|(fs, _)| fs.progs.nw_clone_fexit.autoload()) else {
                a.refused = targets
                    .iter()
                    .map(|t| (t.name.into(), "fexit program not loaded".into()))
                    .collect();
                return a;
            };
            let insns = fs.progs.nw_clone_fexit.insns();
            for t in targets {
                let r = btf
                    .func_id(t.name)
                    .ok_or_else(|| "no BTF id".to_string())
                    .and_then(|id| {
                        fentry::attach(insns, id, None, t.id.into(), fentry::Kind::Fexit)
                    });
                match r {
                    Ok(c) => {
                        a.fexit.push(c);
                        a.funcs.push(t.name.into());
                    }
                    Err(e) => a.refused.push((t.name.into(), e)),
                }
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, arg: u8) -> FuncParam {
        FuncParam {
            func: name.into(),
            arg_index: arg,
        }
    }

    #[test]
    fn only_traceable_functions_with_the_skb_first_in_funcs_order() {
        let btf = [
            p("skb_copy_expand", 0),
            p("skb_clone", 0),
            p("__pskb_copy_fclone", 1), // not where the programs read it
            p("skb_copy", 0),
            p("ip_rcv", 0),
        ];
        let traceable: HashSet<String> = ["skb_clone", "skb_copy_expand", "__pskb_copy_fclone"]
            .map(String::from)
            .into();
        let t = select(&btf, &traceable);
        assert_eq!(
            t,
            [
                CloneTarget {
                    id: 0,
                    name: "skb_clone"
                },
                CloneTarget {
                    id: 2,
                    name: "skb_copy_expand"
                },
            ]
        );
        // The ids are the hooks' offsets: FUNCS order, fixed.
        assert_eq!(FUNCS[t[1].id as usize], "skb_copy_expand");
        assert!(select(&[], &traceable).is_empty());
    }
}
