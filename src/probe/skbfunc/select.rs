//! Which kernel functions to trace and through which backend: pure logic,
//! tested on fixtures; the feature probes that feed it live in `mod.rs`.
use std::collections::HashSet;

use serde::Serialize;

use crate::kernel::btf::FuncParam;

/// How the skb functions are hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// One kprobe-multi link (fprobe) for every function, cookies → ids.
    KprobeMulti,
    /// One kprobe (perf event + link) per function.
    Kprobe,
    /// One BPF trampoline per function: a program load and a link each.
    Fentry,
    /// No function backend: the skb tracepoints only.
    Tracepoint,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::KprobeMulti => "kprobe-multi",
            Backend::Fentry => "fentry",
            Backend::Kprobe => "kprobe",
            Backend::Tracepoint => "tracepoint",
        }
    }
}

/// Preference when nothing is asked for, from attach + detach of the whole
/// skb function set (~1.6k functions; BENCHMARKS.md, Debian 6.12 under
/// TCG): kprobe-multi registers everything in one batch and one link
/// (0.2 s + 0.1 s); single kprobes cost a perf event and an ftrace
/// registration each (33 s + 41 s); fentry costs a verified program load
/// and a trampoline each, and every trampoline detach waits for its own
/// RCU-tasks grace period (31 s + 228 s, not shortened by closing links in
/// parallel). fentry's cheaper hits do not repay that for a tracing
/// session; it stays available with `--backend fentry`.
pub const PREFERENCE: [Backend; 3] = [Backend::KprobeMulti, Backend::Kprobe, Backend::Fentry];

/// A feature probe's verdict: attaching one real skb function worked, or
/// the kernel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub backend: Backend,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProbeResult {
    pub fn ok(backend: Backend) -> Self {
        ProbeResult {
            backend,
            ok: true,
            error: None,
        }
    }
    pub fn failed(backend: Backend, why: impl Into<String>) -> Self {
        ProbeResult {
            backend,
            ok: false,
            error: Some(why.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("--backend {backend}: this kernel refuses it ({why}); leave --backend out to use what it allows")]
    Refused { backend: &'static str, why: String },
}

/// The backend to use: the requested one if its probe passed, else the
/// first of [`PREFERENCE`] that passed, else the tracepoints alone.
pub fn choose(requested: Option<Backend>, probes: &[ProbeResult]) -> Result<Backend, SelectError> {
    let verdict = |b: Backend| probes.iter().find(|p| p.backend == b);
    match requested {
        Some(Backend::Tracepoint) => Ok(Backend::Tracepoint),
        Some(b) => match verdict(b) {
            Some(p) if p.ok => Ok(b),
            p => Err(SelectError::Refused {
                backend: b.as_str(),
                why: p
                    .and_then(|p| p.error.clone())
                    .unwrap_or_else(|| "not probed".into()),
            }),
        },
        None => Ok(PREFERENCE
            .into_iter()
            .find(|&b| verdict(b).is_some_and(|p| p.ok))
            .unwrap_or(Backend::Tracepoint)),
    }
}

/// One function to hook and where its skb is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// 0-based position of the `struct sk_buff *` argument (0..5).
    pub arg: u8,
    /// The module defining it (`--kmods`), None for vmlinux.
    pub module: Option<String>,
}

/// What `available_filter_functions` lists, as `name` for vmlinux and
/// `module:name` for modules (lines `name [module]`). Compiler clones
/// (`foo.isra.0`) have no BTF and never match.
pub fn traceable(available_filter_functions: &str) -> HashSet<String> {
    available_filter_functions
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            Some(match it.next() {
                Some(m) => format!("{}:{name}", m.trim_matches(|c| c == '[' || c == ']')),
                None => name.to_string(),
            })
        })
        .collect()
}

/// BTF functions with an skb argument that ftrace can hook, matching
/// `pattern` if given, sorted by name (stable ids run to run). `funcs` is
/// (module or None for vmlinux, functions from that BTF).
pub fn targets(
    funcs: Vec<(Option<String>, Vec<FuncParam>)>,
    traceable: &HashSet<String>,
    pattern: Option<&regex::Regex>,
) -> Vec<Target> {
    let mut v: Vec<Target> = funcs
        .into_iter()
        .flat_map(|(m, fs)| fs.into_iter().map(move |f| (m.clone(), f)))
        .filter(|(m, f)| match m {
            None => traceable.contains(&f.func),
            Some(m) => traceable.contains(&format!("{m}:{}", f.func)),
        })
        .filter(|(_, f)| pattern.is_none_or(|re| re.is_match(&f.func)))
        .map(|(module, f)| Target {
            name: f.func,
            arg: f.arg_index,
            module,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.dedup_by(|a, b| a.name == b.name);
    v
}

/// The cookie kprobes carry: the argument position above the function id.
pub fn cookie(id: u32, arg: u8) -> u64 {
    (u64::from(arg) << 32) | u64::from(id)
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
    fn host_without_function_backends_falls_back_to_tracepoints() {
        // What this machine's 6.18 kernel answers.
        let probes = [
            ProbeResult::failed(
                Backend::KprobeMulti,
                "Operation not supported (os error 95)",
            ),
            ProbeResult::failed(Backend::Fentry, "Operation not permitted (os error 1)"),
            ProbeResult::failed(Backend::Kprobe, "No such file or directory (os error 2)"),
        ];
        assert_eq!(choose(None, &probes), Ok(Backend::Tracepoint));
        assert_eq!(
            choose(Some(Backend::Tracepoint), &probes),
            Ok(Backend::Tracepoint)
        );
        let e = choose(Some(Backend::Fentry), &probes).unwrap_err();
        assert!(e.to_string().contains("--backend fentry"), "{e}");
        assert!(e.to_string().contains("os error 1"), "{e}");
    }

    #[test]
    fn preference_and_override() {
        let all = [
            ProbeResult::ok(Backend::Kprobe),
            ProbeResult::ok(Backend::Fentry),
            ProbeResult::ok(Backend::KprobeMulti),
        ];
        assert_eq!(choose(None, &all), Ok(Backend::KprobeMulti));
        assert_eq!(choose(Some(Backend::Kprobe), &all), Ok(Backend::Kprobe));
        // 6.1: no FPROBE, so no kprobe-multi.
        let no_multi = [
            ProbeResult::failed(Backend::KprobeMulti, "os error 95"),
            ProbeResult::ok(Backend::Fentry),
            ProbeResult::ok(Backend::Kprobe),
        ];
        assert_eq!(choose(None, &no_multi), Ok(Backend::Kprobe));
        let only_fentry = [
            ProbeResult::failed(Backend::KprobeMulti, "x"),
            ProbeResult::ok(Backend::Fentry),
            ProbeResult::failed(Backend::Kprobe, "y"),
        ];
        assert_eq!(choose(None, &only_fentry), Ok(Backend::Fentry));
        let e = choose(Some(Backend::KprobeMulti), &[]).unwrap_err();
        assert!(e.to_string().contains("not probed"));
    }

    #[test]
    fn targets_are_traceable_filtered_sorted_unique() {
        let avail = "ip_rcv\n__udp4_lib_rcv\nnft_do_chain [nf_tables]\nskb_clone\n\
                     tcp_v4_rcv\nfoo.isra.0\n";
        let t = traceable(avail);
        assert!(t.contains("ip_rcv") && !t.contains("nft_do_chain"));
        assert!(t.contains("nf_tables:nft_do_chain"));
        let funcs = vec![
            p("tcp_v4_rcv", 0),
            p("ip_rcv", 0),
            p("sk_skb_reason_drop", 1),
            p("__udp4_lib_rcv", 0),
            p("ip_rcv", 0),
            p("skb_clone", 0),
        ];
        let kmod = vec![p("nft_do_chain", 1), p("nft_other", 0)];
        let with_mod = targets(
            vec![(None, funcs.clone()), (Some("nf_tables".into()), kmod)],
            &t,
            None,
        );
        let m: Vec<_> = with_mod.iter().filter(|t| t.module.is_some()).collect();
        assert_eq!(m.len(), 1, "{with_mod:?}");
        assert_eq!((m[0].name.as_str(), m[0].arg), ("nft_do_chain", 1));
        let funcs = vec![(None, funcs)];
        let all = targets(funcs.clone(), &t, None);
        let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["__udp4_lib_rcv", "ip_rcv", "skb_clone", "tcp_v4_rcv"]
        );
        let re = regex::Regex::new("^(ip|tcp)_").unwrap();
        let some = targets(funcs, &t, Some(&re));
        let names: Vec<_> = some.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ip_rcv", "tcp_v4_rcv"]);
    }

    #[test]
    fn cookie_keeps_position_and_id_apart() {
        let c = cookie(1234, 4);
        assert_eq!(c as u32, 1234);
        assert_eq!((c >> 32) as u32, 4);
    }
}
