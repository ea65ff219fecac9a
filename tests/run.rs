//! Cgroup-based selection against the real kernel: `netwhy run -- CMD` on a
//! DNS-like UDP exchange through DNAT on a router namespace (healthy, and
//! with the reply coming back from the wrong address), a refused TCP
//! connect, and `netwhy trace --pid`.
mod common;

use std::time::Duration;

use common::dns::{self, dns_lab, server};
use common::*;
use serde_json::Value;

/// `netwhy run -o json -- ip netns exec cli bash` sending one query to the
/// VIP on a connected UDP socket and waiting 1 s for the answer.
fn client(lab: &Lab) -> (std::process::Output, Vec<Value>) {
    run_bash_in_cli(lab, dns::QUERY)
}

/// `netwhy run -o json -- ip netns exec cli bash -c SCRIPT`: its output and
/// JSON Lines.
fn run_bash_in_cli(lab: &Lab, script: &str) -> (std::process::Output, Vec<Value>) {
    let out = run(&[
        "run",
        "-o",
        "json",
        "--",
        "ip",
        "netns",
        "exec",
        &lab.ns("cli").name,
        "bash",
        "-c",
        script,
    ]);
    let v = json_lines(&String::from_utf8_lossy(&out.stdout));
    (out, v)
}

fn flow_packets(v: &[Value]) -> Vec<Value> {
    let flows = of_type(v, "flow");
    assert_eq!(flows.len(), 1, "one socket, one flow: {v:?}");
    assert_eq!(flows[0]["proto"], "udp");
    assert!(flows[0]["local"]
        .as_str()
        .unwrap()
        .starts_with("198.18.1.2:"));
    flows[0]["packets"].as_array().unwrap().clone()
}

#[test]
fn healthy_exchange_every_packet_delivered() {
    if !root_or_skip("run_healthy") {
        return;
    }
    let lab = dns_lab("198.18.2.2");
    let srv = server(&lab);
    let (out, v) = client(&lab);
    srv.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let p = flow_packets(&v);
    assert_eq!(p.len(), 2, "query and answer: {p:?}");
    assert_eq!(p[0]["direction"], "out");
    assert_eq!(p[0]["remote"], "198.18.1.1:53");
    assert_eq!(p[0]["fate"]["fate"], "delivered");
    assert_eq!(p[0]["fate"]["socket"]["port"], 53);
    assert_eq!(p[0]["fate"]["netns"], lab.ns("srv").inode);
    assert_eq!(p[1]["direction"], "in");
    assert_eq!(p[1]["remote"], "198.18.1.1:53", "un-NATed on the way back");
    assert_eq!(p[1]["fate"]["fate"], "delivered");
    assert_eq!(p[1]["fate"]["netns"], lab.ns("cli").inode);
    // Whoever holds the socket: bash, or the children that inherited it.
    let comm = p[1]["fate"]["comm"].as_str().unwrap_or("");
    assert!(["bash", "timeout", "head"].contains(&comm), "{:?}", p[1]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        v.len()
    );
    assert!(err.contains("2 packets, 1 flows  lost: 0"), "{err}");
}

#[test]
fn reply_from_the_wrong_address_is_reported_dropped() {
    if !root_or_skip("run_nat_mismatch") {
        return;
    }
    // DNAT to a secondary address; the answer leaves from the primary, so
    // conntrack does not un-NAT it and the client's socket refuses it.
    let lab = dns_lab("198.18.2.3");
    let srv = server(&lab);
    let (out, v) = client(&lab);
    srv.join().unwrap();
    assert_eq!(out.status.code(), Some(124), "the client timed out waiting");
    let p = flow_packets(&v);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0]["fate"]["fate"], "delivered", "the query got through");
    let reply = &p[1];
    assert_eq!(reply["direction"], "in");
    assert_eq!(reply["remote"], "198.18.2.2:53", "not un-NATed");
    let f = &reply["fate"];
    assert_eq!(f["fate"], "dropped");
    assert_eq!(f["reason"], "NO_SOCKET");
    assert_eq!(f["location"]["symbol"], "__udp4_lib_rcv");
    assert_eq!(f["netns"], lab.ns("cli").inode);
    assert!(f["hint"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(reply["explanation"]["reason"], "NO_SOCKET");
    assert_eq!(reply["explanation"]["id"], "nat-tuple-mismatch");
    assert!(reply["explanation"]["fixes"][0].is_string());
    let note = reply["note"].as_str().unwrap();
    assert!(note.contains("sent to 198.18.1.1:53"), "{note}");
    // explain's finding for the drop, with live state read while the
    // command's socket was open: its peer, and the DNAT entry on rtr.
    let findings = of_type(&v, "finding");
    assert_eq!(findings.len(), 1, "{findings:?}");
    let fd = findings[0];
    assert_eq!(fd["cause"], "nat-tuple-mismatch");
    assert_eq!(fd["confidence"], "high");
    let subjects = fd["subjects"].to_string();
    assert!(subjects.contains("\"kind\":\"conntrack\""), "{subjects}");
    assert!(
        subjects.contains("198.18.1.1:53"),
        "the socket's peer: {subjects}"
    );
    assert!(p[0]["note"].is_null());
    // The run's cgroup is gone.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cg = stderr
        .split("in cgroup ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    assert!(!std::path::Path::new(cg).exists(), "{cg} left behind");
}

/// The conntrack entry of the DNAT is flushed between query and answer:
/// the reply reaches the client un-NATed and is refused. The evidence (no
/// NAT entry left anywhere) makes the conntrack fix the first one, in the
/// flow summary as in the finding, ahead of the knowledge base's generic
/// "make the server answer from the DNAT target".
#[test]
fn lost_conntrack_entry_puts_the_conntrack_fix_first() {
    if !root_or_skip("run_nat_lost_ct") {
        return;
    }
    let lab = dns_lab("198.18.2.2");
    let s = traffic::udp_socket(&lab.ns("srv").name, "0.0.0.0:53".parse().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let rtr = lab.ns("rtr").name.clone();
    let srv = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, from)) = s.recv_from(&mut buf) {
            let st = std::process::Command::new("ip")
                .args(["netns", "exec", &rtr, "conntrack", "-F"])
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run conntrack");
            assert!(st.success(), "conntrack -F failed");
            s.send_to(b"answer\n", from).unwrap();
            std::thread::sleep(Duration::from_millis(800));
        }
    });
    let (out, v) = client(&lab);
    srv.join().unwrap();
    assert_eq!(out.status.code(), Some(124), "the client timed out waiting");
    let p = flow_packets(&v);
    let reply = p
        .iter()
        .find(|p| p["fate"]["fate"] == "dropped")
        .unwrap_or_else(|| panic!("no dropped reply: {p:?}"));
    assert_eq!(reply["remote"], "198.18.2.2:53", "not un-NATed");
    assert_eq!(reply["explanation"]["id"], "nat-tuple-mismatch");
    let generic = reply["explanation"]["fixes"][0].as_str().unwrap();
    assert!(generic.contains("DNAT target"), "{generic}");
    let first = reply["fix"][0].as_str().unwrap_or_default();
    assert!(
        first.starts_with("keep the conntrack entry"),
        "the flow's first fix is not about conntrack: {reply:#}"
    );
    let findings = of_type(&v, "finding");
    let f = findings
        .iter()
        .find(|f| f["cause"] == "nat-tuple-mismatch")
        .unwrap_or_else(|| panic!("no nat-tuple-mismatch finding: {findings:?}"));
    assert_eq!(f["fix"][0], reply["fix"][0]);
    assert!(
        f["evidence"]
            .to_string()
            .contains("no conntrack entry with NAT"),
        "{f:#}"
    );
}

#[test]
fn refused_tcp_connect_shows_the_dropped_syn_and_the_reset() {
    if !root_or_skip("run_tcp_refused") {
        return;
    }
    let lab = pair();
    let script = "exec 3<>/dev/tcp/198.18.0.2/8081";
    let (out, v) = run_bash_in_cli(&lab, script);
    assert!(!out.status.success(), "connection refused: bash fails");
    let flows = of_type(&v, "flow");
    assert_eq!(flows.len(), 1, "{v:?}");
    assert_eq!(flows[0]["proto"], "tcp");
    let p = flows[0]["packets"].as_array().unwrap();
    let syn = &p[0];
    assert_eq!(syn["direction"], "out");
    assert_eq!(syn["remote"], "198.18.0.2:8081");
    assert_eq!(syn["fate"]["fate"], "dropped");
    assert_eq!(syn["fate"]["reason"], "NO_SOCKET");
    assert_eq!(syn["fate"]["location"]["symbol"], "tcp_v4_rcv");
    assert_eq!(syn["fate"]["netns"], lab.ns("srv").inode);
    // The reset answering it comes back to the client's endpoint.
    let rst = p.iter().find(|x| x["direction"] == "in").expect("the RST");
    let rst_steps: Vec<&Value> = v
        .iter()
        .filter(|x| x["type"] == "step" && x["packet"] == rst["packet"])
        .collect();
    assert_eq!(rst_steps[0]["flow"]["tcp_flags"], "RA", "{rst_steps:?}");
    assert_eq!(rst["fate"]["netns"], lab.ns("cli").inode);
}

/// A cgroup the test creates and removes (even on failure).
struct TestCgroup(std::path::PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn trace_pid_follows_only_that_process_cgroup() {
    if !root_or_skip("trace_pid") {
        return;
    }
    trace_pid(&[], "host");
}

/// `ip netns exec NS netwhy trace --pid`: no cgroup hierarchy is mounted
/// in netwhy's mount namespace there (issue #12).
#[test]
fn trace_pid_under_ip_netns_exec() {
    if !root_or_skip("trace_pid_ip_netns_exec") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    let ns = lab.add_ns("netwhy").unwrap().name;
    trace_pid(&["ip", "netns", "exec", &ns], "netns");
}

/// netwhy (run by `wrapper`) traces the packets of one process by its
/// cgroup, and not the same flow sent from another cgroup.
fn trace_pid(wrapper: &[&str], tag: &str) {
    let lab = pair();
    let h = netwhy::sys::cgroup::Hierarchy::find(true).expect("cgroup v2");
    let mount = h.mountpoint().expect("cgroup v2 mounted");
    let cg = TestCgroup(mount.join(format!("netwhy-test-{tag}-{}", std::process::id())));
    std::fs::create_dir(&cg.0).unwrap();
    // The child sends once netwhy is attached (a file the test creates).
    let go = std::env::temp_dir().join(format!("netwhy-test-go-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let script = format!(
        "for i in $(seq 200); do [ -e {0} ] && break; sleep 0.05; done; echo x > /dev/udp/198.18.0.2/5300",
        go.display()
    );
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("cli").name, "bash", "-c", &script])
        .spawn()
        .unwrap();
    std::fs::write(cg.0.join("cgroup.procs"), child.id().to_string()).unwrap();
    let pid = child.id().to_string();
    let r = start_wrapped(
        wrapper,
        &["trace", "--pid", &pid, "-o", "json", "--duration", "4"],
    );
    std::fs::write(&go, b"").unwrap();
    // The same flow from the test process (another cgroup): not traced.
    let dst = "198.18.0.2:5300".parse().unwrap();
    traffic::udp_send(&lab.ns("cli").name, dst, 3, b"not traced").unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_file(&go);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let fates = of_type(&v, "fate");
    assert_eq!(fates.len(), 1, "only the child's datagram: {out}");
    assert_eq!(fates[0]["fate"], "dropped");
    assert_eq!(fates[0]["reason"], "NO_SOCKET");
    let first = of_type(&v, "step")[0];
    assert_eq!(first["comm"], "bash", "{first}");
    assert_eq!(first["hook"], "net_dev_queue");
}
