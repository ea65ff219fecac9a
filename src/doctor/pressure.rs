//! Losses happening right now: interface rx drops rising, and TCP
//! listeners overflowing their accept queue. Both are sampled over the
//! `--window` (counters read before and after); a full accept queue is
//! also visible in one sample. Accept-queue overflows never reach the drop
//! tracepoint (the SYN is freed as consumed), so only counters show them.
use super::{Finding, NsState, Severity};
use crate::state::sockets::SockInfo;

pub const RX_ID: &str = "rx-drops-rising";
pub const LISTEN_ID: &str = "listen-overflow";

fn rate(n: i128, st: &NsState) -> String {
    let secs = st.window.as_secs_f64();
    if secs > 0.0 {
        format!("+{n} in {secs:.1}s ({:.1}/s)", n as f64 / secs)
    } else {
        format!("+{n}")
    }
}

/// Devices whose `rx_dropped` (/proc/net/dev) rose during the window.
pub fn rx_drops(st: &NsState) -> Vec<Finding> {
    let mut out = Vec::new();
    for l in &st.links {
        let key = format!("dev:{}:rx_dropped", l.name);
        let Some(d) = st.delta(&key).filter(|&d| d > 0) else {
            continue;
        };
        let now = st.after.as_ref().and_then(|a| a.get(&key)).unwrap_or(0);
        let mut f = Finding::new(st, RX_ID, Severity::Warning, l.name.clone())
            .seen(format!(
                "rx_dropped on {} {} (now {now})",
                l.name,
                rate(d, st)
            ))
            .seen(
                "rx_dropped counts packets the stack discarded before any protocol took them: \
                 no handler for the protocol or VLAN, a full backlog or RX ring, a filter",
            );
        if let Some(sd) = st.delta("softnet:dropped").filter(|&x| x > 0) {
            f = f.seen(format!(
                "softnet backlog drops {} (netdev_max_backlog = {})",
                rate(sd, st),
                st.sysctl
                    .netdev_max_backlog
                    .map_or("?".into(), |v| v.to_string())
            ));
        }
        let mut drops = format!("netwhy drops --dev {}", l.name);
        if !st.target.is_init {
            drops += &format!(" --netns {}", st.target.name);
        }
        out.push(
            f.fix(drops)
                .fix("# names the reason of each drop; for a NIC also:")
                .fix(st.cmd(&format!("ethtool -S {} | grep -i -e drop -e miss", l.name)))
                .fix(st.cmd(&format!("ethtool -G {} rx 4096", l.name)))
                .fix("# (a larger RX ring, if ethtool -g shows room)"),
        );
    }
    out
}

fn overflowing(s: &SockInfo) -> bool {
    // The kernel refuses a connection when the queue length exceeds the
    // backlog (sk_acceptq_is_full: ack_backlog > max_ack_backlog).
    s.accept_queue().is_some_and(|(q, max)| q > max)
}

/// Listeners whose accept queue is full now, and TcpExt:ListenOverflows
/// rising during the window.
pub fn listen_overflow(st: &NsState) -> Vec<Finding> {
    let overflows = st.delta("TcpExt:ListenOverflows").filter(|&d| d > 0);
    let full: Vec<&SockInfo> = st.sockets.iter().filter(|s| overflowing(s)).collect();
    let fixes = |f: Finding, who: &str| {
        f.fix(format!(
            "# {who} does not accept() fast enough: find why it is slow (CPU, a blocked worker) first"
        ))
        .fix(st.cmd("sysctl -w net.core.somaxconn=4096"))
        .fix("# then restart the service with a larger listen(2) backlog (somaxconn caps it)")
    };
    let mut out = Vec::new();
    for s in &full {
        let (q, max) = s.accept_queue().unwrap_or_default();
        let who = s
            .owner
            .as_ref()
            .map(|o| format!("{} (pid {})", o.comm, o.pid))
            .unwrap_or_else(|| format!("the owner of socket inode {}", s.inode));
        let mut f = Finding::new(st, LISTEN_ID, Severity::Warning, format!("tcp {}", s.local))
            .seen(format!(
                "accept queue {q} of backlog {max}: full, new connections' SYNs and ACKs are \
                 dropped (clients see timeouts and retransmits)"
            ))
            .seen(format!("socket: {s}"));
        if let Some(d) = overflows {
            f = f.seen(format!("TcpExt:ListenOverflows {}", rate(d, st)));
        }
        out.push(fixes(f, &who));
    }
    if let (Some(d), true) = (overflows, full.is_empty()) {
        let f = Finding::new(
            st,
            LISTEN_ID,
            Severity::Warning,
            "TcpExt:ListenOverflows".into(),
        )
        .seen(format!(
            "TcpExt:ListenOverflows {}: a listener's accept queue overflowed (it has drained \
             since; no listener is full now)",
            rate(d, st)
        ));
        out.push(fixes(f, "the listening application"));
    }
    out
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::state::addr::Link;
    use crate::state::counters::Counters;
    use crate::state::sockets::Proto;
    use std::time::Duration;

    fn counters(v: &[(&str, u64)]) -> Counters {
        Counters {
            values: v.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
        }
    }

    fn base() -> NsState {
        let mut st = NsState::default();
        st.links = vec![Link {
            index: 2,
            name: "eth0".into(),
            up: true,
            lower_up: true,
            loopback: false,
        }];
        st.window = Duration::from_secs(1);
        st.target.is_init = true;
        st
    }

    #[test]
    fn rising_rx_drops() {
        let mut st = base();
        assert!(
            rx_drops(&st).is_empty(),
            "no samples (window 0), no finding"
        );
        st.before = Some(counters(&[("dev:eth0:rx_dropped", 10)]));
        st.after = Some(counters(&[("dev:eth0:rx_dropped", 10)]));
        assert!(rx_drops(&st).is_empty());
        st.after = Some(counters(&[("dev:eth0:rx_dropped", 60)]));
        let f = rx_drops(&st);
        assert_eq!(f[0].subject, "eth0");
        assert!(
            f[0].evidence[0].contains("+50 in 1.0s (50.0/s) (now 60)"),
            "{:?}",
            f[0].evidence
        );
        assert_eq!(f[0].fix[0], "netwhy drops --dev eth0");
    }

    fn listener(q: u32, max: u32) -> SockInfo {
        SockInfo {
            proto: Proto::Tcp,
            state: 10,
            local: "0.0.0.0:8080".parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            bound_ifindex: 0,
            v6only: false,
            inode: 5,
            uid: 0,
            rqueue: q,
            wqueue: max,
            mem: None,
            owner: None,
        }
    }

    #[test]
    fn full_listener_and_overflow_counter() {
        let mut st = base();
        st.sockets = vec![listener(3, 4)];
        assert!(listen_overflow(&st).is_empty());
        st.sockets = vec![listener(5, 4)];
        let f = listen_overflow(&st);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "tcp 0.0.0.0:8080");
        st.sockets.clear();
        st.before = Some(counters(&[("TcpExt:ListenOverflows", 1)]));
        st.after = Some(counters(&[("TcpExt:ListenOverflows", 4)]));
        let f = listen_overflow(&st);
        assert_eq!(f[0].subject, "TcpExt:ListenOverflows");
        assert!(f[0].evidence[0].contains("+3 in 1.0s"));
    }
}
