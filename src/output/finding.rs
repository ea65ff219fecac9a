//! A finding as text: what happened, why (with evidence), what to check,
//! the fix. Shared by `explain` and `run`.
use crate::diagnose::finding::Finding;
use crate::output::text::{container_suffix, netns_label};

/// Block `n` of the text report.
pub fn finding_text(n: usize, f: &Finding) -> String {
    let ns =
        netns_label(f.netns, f.netns_name.as_deref()) + &container_suffix(f.container.as_deref());
    let mut s = if f.source == crate::diagnose::finding::Source::State {
        format!("[{n}] no drop yet, but live state is a known trap  netns={ns}\n")
    } else if f.source == crate::diagnose::finding::Source::Counter {
        format!(
            "[{n}] {} lost with no drop event (kernel counters only)  netns={ns}\n",
            f.count
        )
    } else if f.source == crate::diagnose::finding::Source::Syscall {
        format!(
            "[{n}] {} sends failed before a packet existed (seen at the syscall)  netns={ns}\n",
            f.count
        )
    } else {
        format!(
            "[{n}] {}x {} at {}  netns={ns} dev={}\n",
            f.count,
            f.reason,
            f.location,
            f.dev.as_deref().unwrap_or("-")
        )
    };
    for fl in &f.flows {
        s += &format!("    flow:  {fl}\n");
    }
    s += &format!("    what:  {}\n", f.meaning);
    for c in f.causes.iter().take(3) {
        s += &format!("    why:   {c}\n");
    }
    for e in &f.evidence {
        s += &format!("    seen:  {e}\n");
    }
    for c in f.checks.iter().take(3) {
        s += &format!("    check: {c}\n");
    }
    for x in &f.fix {
        s += &format!("    fix:   {x}\n");
    }
    s += &format!("    diagnosis: {} (confidence {})\n", f.cause, f.confidence);
    s
}

#[cfg(test)]
mod tests {
    use super::finding_text;
    use crate::diagnose::finding::{explain, tests::event};

    #[test]
    fn an_unknown_reason_names_its_diagnosis_and_confidence() {
        let evs = [
            event("NW_FUTURE_GRE_THING", "gre_rcv"),
            event("NW_FUTURE_GRE_THING", "gre_rcv"),
        ];
        let f = &explain(&evs, Some("9.1.0"))[0];
        let text = finding_text(1, f);
        assert!(
            text.contains("diagnosis: unknown-reason (confidence low)"),
            "{text}"
        );
        assert!(
            text.starts_with("[1] 2x NW_FUTURE_GRE_THING at gre_rcv"),
            "{text}"
        );
    }

    /// `explain` and `--events` name the pod right after the netns, and
    /// say nothing more when the netns holds no container.
    #[test]
    fn the_pod_stands_beside_the_netns() {
        let mut ev = event("NO_SOCKET", "__udp4_lib_rcv");
        let plain = crate::output::text::event_line(&ev);
        assert!(
            plain.contains(" netns=init(4026531840) dev=eth0(2) "),
            "{plain}"
        );
        ev.site.container = Some(std::sync::Arc::new(crate::container::Container {
            runtime: crate::container::Runtime::Containerd,
            id: "1".repeat(64),
            name: Some("nginx".into()),
            pod: Some("web-7d4b9".into()),
            namespace: Some("shop".into()),
        }));
        let line = crate::output::text::event_line(&ev);
        assert!(
            line.contains(
                " netns=init(4026531840) pod=shop/web-7d4b9 container=nginx dev=eth0(2) "
            ),
            "{line}"
        );
        let f = &explain(&[ev], Some("6.18.0"))[0];
        let text = finding_text(1, f);
        assert!(
            text.starts_with("[1] 1x NO_SOCKET at __udp4_lib_rcv+0x10  netns=init(4026531840) pod=shop/web-7d4b9 container=nginx dev=eth0\n"),
            "{text}"
        );
        let j = serde_json::to_value(f).unwrap();
        assert_eq!(j["container"]["pod"], "web-7d4b9");
        assert_eq!(j["container"]["namespace"], "shop");
    }
}
