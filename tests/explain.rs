//! `netwhy explain` against real drops in namespaces the tests create: the
//! finding names the cause from the knowledge base and carries live state.
mod common;

use std::net::UdpSocket;

use common::*;

#[test]
fn no_socket_finding_says_the_port_is_bound_elsewhere() {
    if !root_or_skip("explain no-socket") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").clone();
    // The service listens, but only on loopback: the seed "bound to
    // 127.0.0.1" case. The socket lives in srv for the whole test.
    let sock = traffic::in_netns(&srv.name, || {
        UdpSocket::bind("127.0.0.1:5300").map_err(|e| netwhy::lab::LabError::Traffic(e.to_string()))
    })
    .unwrap();
    let r = start(&[
        "explain",
        "--netns",
        &srv.name,
        "--duration",
        "2",
        "-o",
        "json",
    ]);
    traffic::udp_send(
        &lab.ns("cli").name,
        "198.18.0.2:5300".parse().unwrap(),
        2,
        b"q",
    )
    .unwrap();
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let f = of_type(&v, "finding");
    assert!(!f.is_empty(), "{out}");
    let first = f[0];
    assert_eq!(first["reason"], "NO_SOCKET");
    assert_eq!(first["location"]["symbol"], "__udp4_lib_rcv");
    assert_eq!(first["netns"], srv.inode);
    assert_eq!(first["count"], 2);
    assert_eq!(first["cause"], "socket-bound-elsewhere");
    assert!(!first["fix"].as_array().unwrap().is_empty());
    let evidence = first["evidence"].to_string();
    assert!(
        evidence.contains("127.0.0.1:5300"),
        "live socket state in evidence: {evidence}"
    );
    drop(sock);
}

#[test]
fn rp_filter_finding_shows_the_reverse_path() {
    if !root_or_skip("explain rp_filter") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").clone();
    // A source the server would answer through loopback-only routing: add a
    // route for it via another interface (lo) so the reverse path differs.
    lab.ip("srv", &["route", "add", "198.18.7.0/24", "dev", "lo"])
        .unwrap();
    lab.sysctl("srv", "net.ipv4.conf.all.rp_filter", "1")
        .unwrap();
    lab.sysctl("srv", "net.ipv4.conf.eth0.rp_filter", "1")
        .unwrap();
    lab.ip("cli", &["addr", "add", "198.18.7.1/32", "dev", "eth0"])
        .unwrap();
    // With rp_filter=1 the server also ignores ARP requests from that
    // source: give the client a static neighbour entry.
    lab.pin_neighbour("cli", "eth0", "198.18.0.2", "srv", "eth0")
        .unwrap();
    let r = start(&[
        "explain",
        "--netns",
        &srv.name,
        "--duration",
        "2",
        "-o",
        "json",
    ]);
    let cli = lab.ns("cli").name.clone();
    traffic::in_netns(&cli, || {
        let s = UdpSocket::bind("198.18.7.1:0").unwrap();
        for _ in 0..2 {
            let _ = s.send_to(b"x", "198.18.0.2:5301");
        }
        Ok(())
    })
    .unwrap();
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let f = of_type(&v, "finding");
    let rp = f
        .iter()
        .find(|f| f["reason"] == "IP_RPFILTER")
        .unwrap_or_else(|| panic!("no IP_RPFILTER finding: {out}"));
    let evidence = rp["evidence"].to_string();
    assert!(evidence.contains("came in on eth0"), "{evidence}");
    assert!(evidence.contains("dev lo"), "{evidence}");
    assert!(evidence.contains("strict mode"), "{evidence}");
}

#[test]
fn nft_drop_finding_names_the_rule_via_nftrace() {
    if !root_or_skip("explain nftrace") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.nft(
        "rtr",
        "table inet nwlab_filter {\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n    tcp dport 443 drop comment \"netwhy lab: block https\"\n  }\n}\n",
    )
    .unwrap();
    let rtr = lab.ns("rtr").clone();
    let handle = netwhy::state::nftrace::rules(rtr.inode, 1, "nwlab_filter", "forward")
        .unwrap()
        .first()
        .expect("the planted rule")
        .handle;
    let r = start(&[
        "explain",
        "--netns",
        &rtr.name,
        "--duration",
        "3",
        "-o",
        "json",
    ]);
    // The first SYN is dropped and arms nftrace; the next attempts are traced.
    for _ in 0..3 {
        let _ = traffic::tcp_connect(
            &lab.ns("cli").name,
            "198.18.2.2:443".parse().unwrap(),
            std::time::Duration::from_millis(300),
        );
    }
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let f = of_type(&v, "finding");
    let nf = f
        .iter()
        .find(|f| f["reason"] == "NETFILTER_DROP")
        .unwrap_or_else(|| panic!("no NETFILTER_DROP finding: {out}"));
    assert_eq!(nf["location"]["symbol"], "nft_do_chain");
    let evidence = nf["evidence"].to_string();
    assert!(
        evidence.contains(&format!(
            "table inet nwlab_filter chain forward rule handle {handle}"
        )),
        "{evidence}"
    );
    assert!(evidence.contains("netwhy lab: block https"), "{evidence}");
    // The tracer's table is gone once explain has ended.
    let tables = netwhy::state::nftrace::tables(rtr.inode).unwrap();
    assert!(
        tables.iter().all(|t| !t.name.starts_with("netwhy_trace_")),
        "{tables:?}"
    );
}
