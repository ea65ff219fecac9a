//! Socket buffer limits so close to 2^31 that the kernel's int arithmetic
//! on them wraps (the seed incident: DNS over UDP dropped with an empty
//! queue after `net.core.rmem_default` was set to 2147483647).
//!
//! The arithmetic: on enqueue, UDP charges the skb and then tests
//! `sk_rmem_alloc > skb->truesize + sk_rcvbuf`. Both are ints. With
//! sk_rcvbuf = 2147483647 any truesize (several hundred bytes even for a tiny
//! datagram) makes the sum exceed INT_MAX: it wraps negative, the test is
//! always true, and every datagram is dropped (SOCKET_RCVBUFF, Udp
//! RcvbufErrors) although nothing is queued. Kernels that do the sum
//! unsigned survive it, but nothing is gained by such a value: a queue of
//! 2 GiB per socket is never what anyone meant.
use super::{Finding, NsState, Severity};
use crate::diagnose::evidence::RCVBUF_DANGER;
use crate::state::sysctl::{danger, Severity as SysSeverity};

pub const RMEM_ID: &str = "rmem-int-overflow";
pub const SOCKET_ID: &str = "socket-rcvbuf-int-overflow";

/// What to use instead: large enough for any realistic UDP burst.
pub const SAFE_RCVBUF: u32 = 16 << 20;

/// `net.core.rmem_default`/`wmem_default` near INT_MAX (critical: every
/// new socket gets it), `rmem_max`/`wmem_max` above 2^30 (warning). These
/// are host-global: a child namespace sees the host's value, so they are
/// reported in the init netns when it is scanned, and in each namespace
/// otherwise.
pub fn rmem_sysctls(st: &NsState) -> Vec<Finding> {
    if !st.target.is_init && st.host_scanned {
        return Vec::new();
    }
    danger(&st.sysctl)
        .into_iter()
        .filter(|f| f.key.starts_with("net.core."))
        .map(|f| {
            let sev = match f.severity {
                SysSeverity::Critical => Severity::Critical,
                SysSeverity::Warning => Severity::Warning,
            };
            let mut out = Finding::new(st, RMEM_ID, sev, f.key.clone())
                .seen(format!("{} = {}", f.key, f.value))
                .seen(f.why.clone());
            if let Ok(v) = f.value.parse::<i64>() {
                out = out.seen(format!(
                    "INT_MAX - {} = {} bytes of room: a single skb's truesize (~2 KiB for a \
                     1500-byte datagram, ~70 KiB for a 64 KiB GSO one) is more",
                    f.key,
                    i64::from(i32::MAX) - v
                ));
            }
            if !st.target.is_init {
                out = out.seen(
                    "net.core.* is host-global: this namespace sees the host's value; change it on the host",
                );
            }
            if let Some(s) = &f.suggestion {
                out = out
                    .fix(format!("sysctl -w {s}"))
                    .fix(format!(
                        "# persist it: echo '{}' > /etc/sysctl.d/90-netwhy-socket-buffers.conf",
                        s.replace('=', " = ")
                    ))
                    .fix("# sockets already open keep their buffer: restart the services that own them");
            }
            out
        })
        .collect()
}

/// TCP/UDP sockets whose receive buffer (sk_rcvbuf, from sock_diag
/// skmeminfo) is at or above [`RCVBUF_DANGER`] (16 MiB below INT_MAX, the
/// threshold `explain` uses too), e.g. set with SO_RCVBUFFORCE, which
/// ignores rmem_max.
pub fn socket_rcvbuf(st: &NsState) -> Vec<Finding> {
    st.sockets
        .iter()
        .filter_map(|s| Some((s, s.mem?)))
        .filter(|(_, m)| m.rcvbuf >= RCVBUF_DANGER)
        .map(|(s, m)| {
            let room = i64::from(i32::MAX) - i64::from(m.rcvbuf);
            let mut f = Finding::new(
                st,
                SOCKET_ID,
                Severity::Warning,
                format!("{} {}", s.proto, s.local),
            )
            .seen(format!("socket: {s}"))
            .seen(format!(
                "sk_rcvbuf = {} leaves {room} bytes below INT_MAX = {}: the enqueue test \
                 `sk_rmem_alloc > truesize + sk_rcvbuf` adds an skb's truesize (~2 KiB and up) \
                 in int arithmetic, which wraps negative, so every datagram looks over the \
                 limit and is dropped (SOCKET_RCVBUFF, RcvbufErrors) on kernels that do that \
                 sum signed",
                m.rcvbuf,
                i32::MAX
            ))
            .seen(format!(
                "receive queue now {} bytes, socket drops so far {}",
                m.rmem_alloc, m.drops
            ));
            let who = s
                .owner
                .as_ref()
                .map(|o| format!("{} (pid {})", o.comm, o.pid))
                .unwrap_or_else(|| format!("the owner of socket inode {}", s.inode));
            f = f
                .fix(format!(
                    "# make {who} ask for at most {SAFE_RCVBUF} bytes with SO_RCVBUF (not \
                     SO_RCVBUFFORCE) and restart it; the kernel doubles the request"
                ))
                .fix(format!("sysctl -w net.core.rmem_max={SAFE_RCVBUF}"))
                .fix("# on the host (net.core is host-global): rmem_max caps SO_RCVBUF requests; SO_RCVBUFFORCE bypasses it");
            f
        })
        .collect()
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::doctor::collect::TargetInfo;
    use crate::state::sockets::{Proto, SkMemInfo, SockInfo};
    use crate::state::sysctl::Snapshot;

    fn ns(is_init: bool) -> NsState {
        NsState {
            target: TargetInfo {
                ino: 4026531840,
                name: if is_init {
                    "init".into()
                } else {
                    "blue".into()
                },
                is_init,
                exec_prefix: (!is_init).then(|| "ip netns exec blue".into()),
            },
            ..NsState::default()
        }
    }

    #[test]
    fn rmem_default_at_int_max_is_critical_with_a_safe_value() {
        let mut st = ns(true);
        st.sysctl = Snapshot {
            rmem_default: Some(2_147_483_647),
            rmem_max: Some(16_777_216),
            nf_conntrack_count: Some(99),
            nf_conntrack_max: Some(100),
            ..Snapshot::default()
        };
        let f = rmem_sysctls(&st);
        assert_eq!(f.len(), 1, "conntrack is its own check: {f:?}");
        assert_eq!(f[0].check, RMEM_ID);
        assert_eq!(f[0].subject, "net.core.rmem_default");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].fix[0], "sysctl -w net.core.rmem_default=4194304");
        assert!(f[0].evidence.iter().any(|e| e.contains("0 bytes of room")));
    }

    #[test]
    fn host_global_values_are_reported_once() {
        let mut child = ns(false);
        child.sysctl.rmem_max = Some(2_147_483_647);
        child.host_scanned = true;
        assert!(rmem_sysctls(&child).is_empty());
        child.host_scanned = false;
        let f = rmem_sysctls(&child);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].evidence.iter().any(|e| e.contains("host-global")));
        // The fix is for the host, not wrapped in `ip netns exec`.
        assert!(f[0].fix[0].starts_with("sysctl -w net.core.rmem_max="));
    }

    #[test]
    fn socket_near_int_max_is_reported() {
        let mut st = ns(false);
        let sock = |rcvbuf: u32, port: u16| SockInfo {
            proto: Proto::Udp,
            state: 7,
            local: format!("0.0.0.0:{port}").parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            bound_ifindex: 0,
            v6only: false,
            inode: 77,
            uid: 0,
            rqueue: 0,
            wqueue: 0,
            mem: Some(SkMemInfo {
                rcvbuf,
                ..SkMemInfo::default()
            }),
            owner: None,
        };
        st.sockets = vec![sock(2_147_483_646, 53), sock(16 << 20, 54)];
        let f = socket_rcvbuf(&st);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "udp 0.0.0.0:53");
        assert!(f[0].evidence[1].contains("leaves 1 bytes"));
        assert!(f[0]
            .fix
            .iter()
            .any(|l| l == "sysctl -w net.core.rmem_max=16777216"));
    }
}
