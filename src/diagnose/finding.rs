//! Drops grouped and explained: the `finding` every explaining output
//! renders (`netwhy explain`, the lab's diagnosis check).
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::clues::{Clues, Subject};
use super::{lookup, Explanation, Id};
use crate::event::{DropEvent, DropSite, Location};

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Reproduced in the lab, and pinned by location or live evidence.
    High,
    /// Reproduced in the lab, or checked against live state.
    Medium,
    /// Written from the kernel sources only.
    Low,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A group of drops.
    Drop,
    /// A trap seen in live state while no packet was dropped (yet): the
    /// site's reason and location are empty.
    State,
    /// Losses only kernel counters saw (no drop event: a refused SYN freed
    /// with consume_skb, a send that failed before an skb existed); `count`
    /// is how many, reason and location are empty.
    Counter,
    /// Sends that failed in the system call before a packet existed and
    /// that no counter counts (EMSGSIZE), seen at the syscall's exit;
    /// `count` is how many, reason and location are empty.
    Syscall,
}

/// One explained group of drops.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Finding {
    /// The group's site, as its first drop had it; the JSON object names
    /// reason, location, netns, netns_name and dev (docs/json.md).
    #[serde(flatten, serialize_with = "finding_site")]
    pub site: DropSite,
    pub count: u64,
    /// Up to three distinct flows, as text.
    pub flows: Vec<String>,
    /// Diagnosis id (stable; the lab's scenarios name the one they expect).
    pub cause: Id,
    pub meaning: &'static str,
    pub causes: &'static [&'static str],
    /// Facts gathered for this group (kernel counts, live state).
    pub evidence: Vec<String>,
    /// What the diagnosis is about (port, sysctl, rule...), as fields.
    pub subjects: Vec<Subject>,
    /// What to look at; for a reason without an entry, the commands of the
    /// stack area its name and location point to come first.
    pub checks: Vec<Cow<'static, str>>,
    /// Concrete commands from the evidence first, then the generic ones.
    pub fix: Vec<String>,
    pub confidence: Confidence,
    pub source: Source,
    /// One event of the group, for collectors that look up live state.
    #[serde(skip)]
    pub sample: Option<DropEvent>,
}

crate::json_record!(Finding, "finding");

// The site's fields read as the finding's own (`f.reason`).
impl std::ops::Deref for Finding {
    type Target = DropSite;
    fn deref(&self) -> &DropSite {
        &self.site
    }
}

/// The part of a [`DropSite`] a finding's JSON shows (no raw reason value,
/// no ifindex: a finding is about names), in the site's order.
fn finding_site<S: serde::Serializer>(site: &DropSite, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Named<'a> {
        reason: &'a str,
        location: &'a Location,
        netns: u32,
        netns_name: &'a Option<String>,
        dev: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        container: Option<&'a crate::container::Container>,
    }
    Named {
        reason: site.reason,
        location: &site.location,
        netns: site.netns,
        netns_name: &site.netns_name,
        dev: &site.dev,
        container: site.container.as_deref(),
    }
    .serialize(s)
}

/// What `explain` groups by: (reason, function, netns, dev). The dropping
/// function, not the exact return address the `drops` table's
/// [`crate::event::GroupKey`] keeps apart: two call sites in one function
/// share a diagnosis.
pub type ExplainKey = (&'static str, String, u32, Option<String>);

/// The [`ExplainKey`] of one drop.
pub fn explain_key(e: &DropEvent) -> ExplainKey {
    (e.reason, e.location.symbol.clone(), e.netns, e.dev.clone())
}

/// Group events by (reason, function, netns, dev) and explain each group,
/// biggest first. `kernel` is the running kernel's release (`uname -r`),
/// named where a reason without an entry sends the reader to the sources.
pub fn explain(events: &[DropEvent], kernel: Option<&str>) -> Vec<Finding> {
    let mut groups: BTreeMap<ExplainKey, Vec<&DropEvent>> = BTreeMap::new();
    for e in events {
        groups.entry(explain_key(e)).or_default().push(e);
    }
    let mut findings: Vec<Finding> = groups
        .into_values()
        .map(|evs| finding(&evs, kernel))
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.count));
    findings
}

fn finding(evs: &[&DropEvent], kernel: Option<&str>) -> Finding {
    let first = evs[0];
    let x: Explanation = lookup(first.reason, &first.location.symbol);
    let mut flows: Vec<String> = Vec::new();
    for e in evs {
        let f = e.flow.to_string();
        if !flows.contains(&f) {
            flows.push(f);
            if flows.len() == 3 {
                break;
            }
        }
    }
    let mut evidence = vec![format!(
        "the kernel reported {} drop(s) with reason {} at {}",
        evs.len(),
        first.reason,
        first.location
    )];
    let mut checks: Vec<Cow<'static, str>> = Vec::new();
    if let Some(u) = &x.unknown {
        evidence.extend(u.lines(kernel));
        checks.extend(u.checks().into_iter().map(Cow::Owned));
    } else if let Some(c) = x.caveat() {
        evidence.push(c.to_string());
    }
    checks.extend(x.checks.iter().map(|c| Cow::Borrowed(*c)));
    let confidence = match (x.verified, x.refined_by.is_some()) {
        (true, true) => Confidence::High,
        (true, false) => Confidence::Medium,
        _ => Confidence::Low,
    };
    Finding {
        site: first.site.clone(),
        count: evs.len() as u64,
        flows,
        cause: x.id,
        meaning: x.meaning,
        causes: x.causes,
        evidence,
        subjects: Vec::new(),
        checks,
        fix: x.fixes.iter().map(|f| f.to_string()).collect(),
        confidence,
        source: Source::Drop,
        sample: Some(first.clone()),
    }
}

impl Finding {
    /// Takes in what the collectors found; an evidence-driven diagnosis
    /// replaces the reason's generic texts and raises the confidence (the
    /// cause was checked against live state, not inferred from the reason).
    pub fn absorb(&mut self, c: Clues) {
        self.evidence.extend(c.lines);
        self.subjects.extend(c.subjects);
        let mut fix = c.fixes;
        if let Some(e) = c.cause {
            self.cause = e.id;
            self.meaning = e.meaning;
            self.causes = e.causes;
            self.checks = e.checks.iter().map(|c| Cow::Borrowed(*c)).collect();
            self.confidence = if e.verified {
                Confidence::High
            } else {
                Confidence::Medium
            };
            // The generic "unverified" caveat was about the reason's entry.
            self.evidence.retain(|l| l != super::UNVERIFIED_NOTE);
            fix.extend(e.fixes.iter().map(|f| f.to_string()));
        } else {
            fix.append(&mut self.fix);
        }
        self.fix = fix;
    }
}

/// A finding about live state with no drop behind it (a receive buffer
/// near INT_MAX seen while capturing), diagnosed as the clues' cause.
pub fn state_finding(netns: u32, netns_name: Option<String>, c: Clues) -> Option<Finding> {
    let e = c.cause?;
    let mut f = Finding {
        site: DropSite {
            reason: "",
            reason_code: 0,
            location: Location {
                symbol: String::new(),
                offset: 0,
                module: None,
                address: String::new(),
            },
            netns,
            netns_name,
            dev: None,
            ifindex: 0,
            container: None,
        },
        count: 0,
        flows: Vec::new(),
        cause: e.id,
        meaning: e.meaning,
        causes: e.causes,
        evidence: Vec::new(),
        subjects: Vec::new(),
        checks: e.checks.iter().map(|c| Cow::Borrowed(*c)).collect(),
        fix: Vec::new(),
        confidence: Confidence::Medium,
        source: Source::State,
        sample: None,
    };
    f.absorb(c);
    Some(f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diagnose::kb;
    use crate::event::{intern, Task, TaskContext};
    use crate::packet::{self, HdrKind};

    /// A drop at `symbol` with reason `reason` (other renderers' tests use it).
    pub(crate) fn event(reason: &str, symbol: &str) -> DropEvent {
        DropEvent {
            time_ns: 0,
            site: DropSite {
                reason: intern(reason),
                reason_code: 4242,
                location: Location {
                    symbol: symbol.into(),
                    offset: 0x10,
                    module: None,
                    address: "0x1".into(),
                },
                netns: 4026531840,
                netns_name: Some("init".into()),
                dev: Some("eth0".into()),
                ifindex: 2,
                container: None,
            },
            netns_source: crate::event::NetnsSource::Dev,
            mark: 0,
            flow: packet::parse(HdrKind::None, &[], None),
            len: 60,
            task: Task {
                pid: 0,
                comm: String::new(),
                context: TaskContext::Unknown,
            },
            skb: "0x2".into(),
        }
    }

    /// A reason no kernel has still gets a finding with the stable
    /// `unknown-reason` cause, what its name and function suggest, the
    /// honest "not in the knowledge base" line, and JSON like any other.
    #[test]
    fn unknown_reason_finding() {
        let evs = [
            event("NW_FUTURE_GRE_THING", "gre_rcv"),
            event("NW_FUTURE_GRE_THING", "gre_rcv"),
        ];
        let f = explain(&evs, Some("9.1.0"));
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.cause, crate::diagnose::unknown::ID);
        assert_eq!(f.count, 2);
        assert_eq!(f.confidence, Confidence::Low);
        let ev = f.evidence.join("\n");
        assert!(
            ev.contains("NW_FUTURE_GRE_THING is not in netwhy's knowledge base yet"),
            "{ev}"
        );
        assert!(ev.contains("gre_rcv, a function of tunnels"), "{ev}");
        assert!(ev.contains("of Linux 9.1.0"), "{ev}");
        assert!(!ev.contains("unverified"), "{ev}");
        assert_eq!(f.checks[0], "ip -d link show <tunnel-dev>");
        let j = serde_json::to_value(f).unwrap();
        assert_eq!(j["cause"], "unknown-reason");
        assert_eq!(j["reason"], "NW_FUTURE_GRE_THING");
        assert!(j["checks"].as_array().is_some_and(|c| c.len() >= 2));
    }

    #[test]
    fn known_reason_finding_is_unchanged() {
        let f = &explain(&[event("NO_SOCKET", "__udp4_lib_rcv")], None)[0];
        assert_eq!(f.cause, kb::entry("NO_SOCKET").id);
        assert_eq!(f.cause.as_str(), "no-socket");
        assert!(f.evidence.iter().all(|l| !l.contains("knowledge base")));
        assert_eq!(f.checks.len(), kb::entry("NO_SOCKET").checks.len());
    }

    /// The `finding` object keeps its fields and their order: the site's
    /// names (no reason_code, no ifindex) right after the envelope.
    #[test]
    fn finding_json_field_order() {
        let f = &explain(&[event("NO_SOCKET", "__udp4_lib_rcv")], None)[0];
        let j = serde_json::to_string(f).unwrap();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&j)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        // serde_json's map is sorted; the order is checked on the text.
        assert_eq!(keys.len(), 18, "{j}");
        let want = [
            "type",
            "v",
            "reason",
            "location",
            "netns",
            "netns_name",
            "dev",
            "count",
            "flows",
            "cause",
            "meaning",
            "causes",
            "evidence",
            "subjects",
            "checks",
            "fix",
            "confidence",
            "source",
        ];
        let mut at = 0;
        for k in want {
            let p = j[at..]
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing or out of order in {j}"));
            at += p;
        }
        assert!(j.starts_with(
            r#"{"type":"finding","v":1,"reason":"NO_SOCKET","location":{"symbol":"__udp4_lib_rcv","offset":16,"address":"0x1"},"netns":4026531840,"netns_name":"init","dev":"eth0","count":1,"#
        ), "{j}");
        assert!(
            j.ends_with(r#""confidence":"medium","source":"drop"}"#),
            "{j}"
        );
    }

    #[test]
    fn confidence_and_source_names_round_trip() {
        for (c, name) in [
            (Confidence::High, "high"),
            (Confidence::Medium, "medium"),
            (Confidence::Low, "low"),
        ] {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{name}\""));
            assert_eq!(c.to_string(), name);
            assert_eq!(serde_json::from_str::<Confidence>(&j).unwrap(), c);
        }
        for (s, name) in [
            (Source::Drop, "drop"),
            (Source::State, "state"),
            (Source::Counter, "counter"),
            (Source::Syscall, "syscall"),
        ] {
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Source>(&j).unwrap(), s);
        }
    }

    /// Evidence naming a refinement (a full UDP buffer) switches the
    /// finding to it wherever the drop was, instead of the lookup by id
    /// that used to miss refinements and keep the generic text.
    #[test]
    fn evidence_can_name_a_refinement() {
        let mut f = explain(&[event("SOCKET_RCVBUFF", "some_other_fn")], None).remove(0);
        assert_eq!(f.cause, kb::entry("SOCKET_RCVBUFF").id);
        f.absorb(Clues {
            cause: Some(crate::diagnose::refine::UDP_RCVBUF_FULL.entry()),
            ..Clues::default()
        });
        assert_eq!(f.cause.as_str(), "udp-rcvbuf-full");
        assert_eq!(f.confidence, Confidence::High);
    }
}
