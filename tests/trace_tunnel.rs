//! `netwhy trace` through a VXLAN tunnel between two namespaces: the same
//! skb carries an outer header on the underlay and is decapsulated on the
//! far side; the timeline must follow it through both (the tracked IPv4 id
//! is found in the inner header while the outer one is on).
mod common;

use common::*;

#[test]
fn vxlan_encapsulation_is_a_tuple_change_not_the_end() {
    if !root_or_skip("trace_vxlan") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.add_ns("a").unwrap();
    lab.add_ns("b").unwrap();
    lab.veth("a", "eth0", "b", "eth0").unwrap();
    for (role, under, peer, over) in [
        ("a", "198.18.50.1", "198.18.50.2", "198.19.99.1/24"),
        ("b", "198.18.50.2", "198.18.50.1", "198.19.99.2/24"),
    ] {
        lab.ip(
            role,
            &["addr", "add", &format!("{under}/24"), "dev", "eth0"],
        )
        .unwrap();
        lab.ip(
            role,
            &[
                "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local",
                under, "remote", peer, "dev", "eth0",
            ],
        )
        .unwrap();
        lab.ip(role, &["addr", "add", over, "dev", "vx0"]).unwrap();
        lab.ip(role, &["link", "set", "vx0", "up"]).unwrap();
    }
    let (a, b) = (lab.ns("a").clone(), lab.ns("b").clone());
    let r = start(&[
        "trace",
        "udp port 5300",
        "--netns",
        &a.name,
        "-o",
        "json",
        "--count",
        "1",
        "--duration",
        "20",
    ]);
    traffic::udp_send(
        &a.name,
        "198.19.99.2:5300".parse().unwrap(),
        1,
        b"over vxlan",
    )
    .unwrap();
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let steps = of_type(&v, "step");
    let dev_dst = |s: &serde_json::Value| {
        (
            s["dev"].as_str().unwrap_or("").to_string(),
            s["flow"]["dst"].as_str().unwrap_or("").to_string(),
        )
    };
    let path: Vec<(String, String)> = steps.iter().map(|s| dev_dst(s)).collect();
    // Inner packet on vx0 in a, outer on the underlay, inner again on vx0 in b.
    assert_eq!(path[0], ("vx0".into(), "198.19.99.2".into()), "{path:?}");
    let outer = steps
        .iter()
        .find(|s| s["flow"]["dport"] == 4789)
        .unwrap_or_else(|| panic!("no outer VXLAN step: {path:?}"));
    assert_eq!(outer["tuple_changed"], true);
    assert_eq!(outer["flow"]["dst"], "198.18.50.2");
    assert!(
        steps
            .iter()
            .any(|s| s["netns"] == b.inode && s["dev"] == "vx0" && s["tuple_changed"] == true),
        "decapsulated in b: {path:?}"
    );
    let fate = of_type(&v, "fate")[0];
    assert_eq!(fate["fate"], "dropped");
    assert_eq!(fate["reason"], "NO_SOCKET");
    assert_eq!(fate["netns"], b.inode);
    assert_eq!(of_type(&v, "summary")[0]["stale"], 0);
}
