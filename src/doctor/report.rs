//! Rendering a doctor [`Report`]: text for people, JSON Lines for tools
//! (one `doctor_finding` object per finding, then one `doctor_summary`).
use std::io::{self, Write};

use serde::Serialize;

use super::{exit_code, Finding, Report, Severity};
use crate::container::Resolver;
use crate::output::style::{self, Palette, Role};
use crate::output::text::{container_suffix, netns_label};

/// The closing JSON object.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Summary {
    pub namespaces: usize,
    pub findings: usize,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
    /// Worst severity, or null when nothing was found.
    pub worst: Option<Severity>,
    pub exit_code: i32,
    /// Namespaces or state that could not be read.
    pub skipped: Vec<String>,
}

crate::json_record!(Summary, "doctor_summary");

impl Summary {
    pub fn of(r: &Report) -> Summary {
        Summary {
            namespaces: r.namespaces,
            findings: r.findings.len(),
            critical: r.count(Severity::Critical),
            warning: r.count(Severity::Warning),
            info: r.count(Severity::Info),
            worst: r.worst(),
            exit_code: exit_code(r.worst()),
            skipped: r.skipped.clone(),
        }
    }
}

impl Report {
    /// Names the container of each finding's namespace (one /proc walk
    /// for the whole report: the resolver caches by netns).
    pub fn name_containers(&mut self, r: &mut Resolver) {
        for f in &mut self.findings {
            f.container = r.lookup(f.netns);
        }
    }
}

pub fn json<W: Write>(w: &mut W, r: &Report) -> io::Result<()> {
    for f in &r.findings {
        crate::output::json_line(w, f)?;
    }
    crate::output::json_line(w, &Summary::of(r))
}

/// The colour of a severity, for text on a terminal.
fn role(s: Severity) -> Role {
    match s {
        Severity::Critical => Role::Critical,
        Severity::Warning => Role::Warning,
        Severity::Info => Role::Info,
    }
}

/// One finding as text:
/// `[warning] rp-filter-asymmetric  eth0  netns=blue(4026532246)`, then
/// `seen:` and `fix:` lines. The severity is coloured when stdout takes
/// colour.
pub fn finding_text(f: &Finding) -> String {
    finding_text_in(f, style::stdout())
}

fn finding_text_in(f: &Finding, pal: Palette) -> String {
    let mut s = format!(
        "[{}] {}  {}  netns={}\n",
        pal.paint(role(f.severity), f.severity.as_str()),
        f.check,
        f.subject,
        netns_label(f.netns, Some(&f.netns_name)) + &container_suffix(f.container.as_deref())
    );
    for e in &f.evidence {
        s += &format!("    seen: {e}\n");
    }
    for x in &f.fix {
        s += &format!("    fix:  {x}\n");
    }
    s
}

pub fn text<W: Write>(w: &mut W, r: &Report) -> io::Result<()> {
    text_in(w, r, style::stdout())
}

fn text_in<W: Write>(w: &mut W, r: &Report, pal: Palette) -> io::Result<()> {
    let mut sorted: Vec<&Finding> = r.findings.iter().collect();
    // Worst first; stable, so namespaces and checks keep their order.
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in sorted {
        writeln!(w, "{}", finding_text_in(f, pal))?;
    }
    for s in &r.skipped {
        writeln!(w, "not checked: {s}")?;
    }
    let sum = Summary::of(r);
    // A count is coloured only when it is not zero: the eye goes to what
    // was found.
    let count = |n: usize, sev: Severity| {
        let t = format!("{n} {}", sev.as_str());
        if n == 0 {
            t
        } else {
            pal.paint(role(sev), &t).to_string()
        }
    };
    writeln!(
        w,
        "{} finding(s) in {} namespace(s): {}, {}, {} (exit {})",
        sum.findings,
        sum.namespaces,
        count(sum.critical, Severity::Critical),
        count(sum.warning, Severity::Warning),
        count(sum.info, Severity::Info),
        sum.exit_code
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(sev: Severity) -> Finding {
        Finding {
            check: "ipv6-dad-failed",
            severity: sev,
            netns: 4026532246,
            netns_name: "blue".into(),
            container: None,
            subject: "fd00::5/64 dev eth0".into(),
            evidence: vec!["it failed".into()],
            fix: vec!["ip netns exec blue sysctl -w net.ipv6.conf.eth0.accept_dad=0".into()],
        }
    }

    #[test]
    fn json_lines_schema() {
        let r = Report {
            findings: vec![finding(Severity::Critical), finding(Severity::Info)],
            namespaces: 1,
            skipped: vec![],
        };
        let mut out = Vec::new();
        json(&mut out, &r).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let f = &lines[0];
        assert_eq!(f["type"], "doctor_finding");
        assert_eq!(f["v"], 1);
        assert_eq!(f["check"], "ipv6-dad-failed");
        assert_eq!(f["severity"], "critical");
        assert_eq!(f["netns"], 4026532246u64);
        assert_eq!(f["netns_name"], "blue");
        assert_eq!(f["subject"], "fd00::5/64 dev eth0");
        assert!(f["evidence"].is_array() && f["fix"].is_array());
        let s = &lines[2];
        assert_eq!(s["type"], "doctor_summary");
        assert_eq!(
            (s["critical"].as_u64(), s["info"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(s["worst"], "critical");
        assert_eq!(s["exit_code"], 3);
    }

    /// A finding in a container's namespace names it in text and JSON; a
    /// finding on the host has no `container` key at all.
    #[test]
    fn findings_name_their_container() {
        let mut f = finding(Severity::Warning);
        let host = serde_json::to_value(&f).unwrap();
        assert!(host.get("container").is_none(), "{host}");
        f.container = Some(std::sync::Arc::new(crate::container::Container {
            runtime: crate::container::Runtime::Podman,
            id: "9".repeat(64),
            name: Some("db-main".into()),
            pod: None,
            namespace: None,
        }));
        let t = finding_text_in(&f, Palette::PLAIN);
        assert!(
            t.starts_with("[warning] ipv6-dad-failed  fd00::5/64 dev eth0  netns=blue(4026532246) container=db-main\n"),
            "{t}"
        );
        let j = serde_json::to_value(&f).unwrap();
        assert_eq!(j["container"]["runtime"], "podman");
        assert_eq!(j["container"]["name"], "db-main");
        assert!(j["container"]["pod"].is_null());
    }

    #[test]
    fn text_lists_worst_first_and_summarises() {
        let r = Report {
            findings: vec![finding(Severity::Info), finding(Severity::Critical)],
            namespaces: 2,
            skipped: vec!["netns gone: vanished".into()],
        };
        let mut out = Vec::new();
        text(&mut out, &r).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(t.starts_with(
            "[critical] ipv6-dad-failed  fd00::5/64 dev eth0  netns=blue(4026532246)\n"
        ));
        assert!(t.contains("    fix:  ip netns exec blue sysctl"));
        assert!(t.contains("not checked: netns gone: vanished"));
        assert!(
            t.ends_with("2 finding(s) in 2 namespace(s): 1 critical, 0 warning, 1 info (exit 3)\n")
        );
    }

    /// On a terminal the severities and non-zero counts are coloured;
    /// taking the escapes out gives the plain text back.
    #[test]
    fn colour_marks_severities_only() {
        let r = Report {
            findings: vec![finding(Severity::Critical)],
            namespaces: 1,
            skipped: vec![],
        };
        let (mut plain, mut ansi) = (Vec::new(), Vec::new());
        text_in(&mut plain, &r, Palette::PLAIN).unwrap();
        text_in(&mut ansi, &r, Palette::ANSI).unwrap();
        let (plain, ansi) = (
            String::from_utf8(plain).unwrap(),
            String::from_utf8(ansi).unwrap(),
        );
        assert!(!plain.contains('\x1b'));
        assert!(ansi.starts_with("[\x1b["), "{ansi:?}");
        assert!(
            ansi.contains("critical\x1b[0m] ipv6-dad-failed"),
            "{ansi:?}"
        );
        assert!(ansi.contains("1 critical\x1b[0m, 0 warning"), "{ansi:?}");
        assert!(ansi.contains(", 0 warning, 0 info"), "{ansi:?}");
        let stripped = ansi
            .split('\x1b')
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    p
                } else {
                    &p[p.find('m').unwrap() + 1..]
                }
            })
            .collect::<String>();
        assert_eq!(stripped, plain);
    }
}
