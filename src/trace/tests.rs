//! Timeline logic on hand-made steps: tuple-change detection, fate rules,
//! grouping and readiness.
use super::*;
use crate::event::Location;
use std::net::IpAddr;

fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
    Flow {
        l3: "ipv4",
        proto: Some("udp".into()),
        src: Some(src.parse::<IpAddr>().unwrap()),
        dst: Some(dst.parse::<IpAddr>().unwrap()),
        sport: Some(sport),
        dport: Some(dport),
        ..Flow::default()
    }
}

fn step(packet: u64, t: u64, hook: &str, role: Role, f: Flow) -> Step {
    Step {
        packet,
        time_ns: t,
        delta_ns: 0,
        hook: hook.into(),
        role: Some(role),
        netns: 7,
        netns_name: Some("ns".into()),
        container: None,
        dev: Some("eth0".into()),
        ifindex: 2,
        len: 40,
        mark: 0,
        flow: f,
        tuple_changed: false,
        skb: "0x1".into(),
        reason: None,
        reason_code: 0,
        location: None,
        icmp: None,
        socket: None,
        pid: 0,
        comm: String::new(),
        clone_of: None,
        clone: None,
        flags: 0,
        bytes: Vec::new(),
    }
}

fn loc(sym: &str) -> Location {
    Location {
        symbol: sym.into(),
        offset: 0x10,
        module: None,
        address: "0x1".into(),
    }
}

#[test]
fn tuple_change_marks_only_the_rewrite() {
    let before = flow("198.18.1.2", 4000, "198.18.1.1", 53);
    let after = flow("198.18.1.2", 4000, "198.18.2.2", 53);
    let mut s = vec![
        step(1, 30, "net_dev_queue", Role::Transmit, after.clone()),
        step(1, 10, "net_dev_queue", Role::Transmit, before.clone()),
        step(1, 20, "netif_receive_skb", Role::Receive, before.clone()),
        step(1, 25, "consume_skb", Role::Free, Flow::default()),
        step(1, 40, "netif_receive_skb", Role::Receive, after),
    ];
    finish_steps(&mut s);
    let times: Vec<u64> = s.iter().map(|x| x.time_ns).collect();
    assert_eq!(times, [10, 20, 25, 30, 40], "sorted by time");
    let changed: Vec<bool> = s.iter().map(|x| x.tuple_changed).collect();
    // Unreadable headers (step at 25) neither change nor reset the tuple.
    assert_eq!(changed, [false, false, false, true, false]);
    assert_eq!(s[3].delta_ns, 20);
}

#[test]
fn drop_fate_names_reason_location_hint() {
    let f0 = flow("198.18.0.1", 1, "198.18.0.2", 5300);
    let mut d = step(3, 20, "kfree_skb", Role::Free, f0.clone());
    d.reason = Some("NO_SOCKET");
    d.location = Some(loc("__udp4_lib_rcv"));
    let mut s = vec![step(3, 10, "netif_receive_skb", Role::Receive, f0), d];
    finish_steps(&mut s);
    let f = classify(3, &s);
    assert_eq!(f.fate, FateKind::Dropped);
    assert_eq!(f.reason, Some("NO_SOCKET"));
    assert_eq!(f.location.as_ref().unwrap().symbol, "__udp4_lib_rcv");
    assert!(!f.hint.unwrap().is_empty());
    assert_eq!(f.steps, 2);
    assert_eq!(f.duration_ns, 10);
}

#[test]
fn consumed_after_a_read_is_delivered_to_the_reader() {
    let f0 = flow("198.18.0.1", 1, "198.18.0.2", 5300);
    let mut r = step(
        4,
        20,
        "skb_copy_datagram_iovec",
        Role::Delivered,
        f0.clone(),
    );
    r.pid = 42;
    r.comm = "dig".into();
    let mut c = step(4, 30, "consume_skb", Role::Free, f0.clone());
    c.location = Some(loc("skb_consume_udp"));
    let s = vec![
        step(4, 10, "netif_receive_skb", Role::Receive, f0.clone()),
        r,
        c,
    ];
    let f = classify(4, &s);
    assert_eq!(
        (f.fate, f.pid, f.comm.as_deref()),
        (FateKind::Delivered, Some(42), Some("dig"))
    );

    // Consumed right after the driver took it: transmitted on that device.
    let mut x = step(5, 20, "net_dev_xmit", Role::Transmitted, f0.clone());
    x.dev = Some("ens3".into());
    let s = vec![x, step(5, 30, "consume_skb", Role::Free, f0.clone())];
    let f = classify(5, &s);
    assert_eq!(
        (f.fate, f.dev.as_deref()),
        (FateKind::Transmitted, Some("ens3"))
    );

    // Consumed with no read and no transmit: say where.
    let mut c = step(6, 30, "consume_skb", Role::Free, f0.clone());
    c.location = Some(loc("icmp_rcv"));
    let f = classify(6, &[step(6, 10, "netif_rx", Role::Receive, f0.clone()), c]);
    assert_eq!(f.fate, FateKind::Consumed);
    assert_eq!(f.location.unwrap().symbol, "icmp_rcv");

    // No free seen: unknown.
    let f = classify(7, &[step(7, 10, "netif_rx", Role::Receive, f0)]);
    assert_eq!(f.fate, FateKind::Unknown);
}

#[test]
fn timeline_releases_on_fate_or_timeout() {
    let f0 = flow("198.18.0.1", 1, "198.18.0.2", 5300);
    let t0 = Instant::now();
    let mut tl = Timeline::default();
    tl.push(step(1, 10, "netif_rx", Role::Receive, f0.clone()), 1, t0);
    tl.push(step(2, 11, "netif_rx", Role::Receive, f0.clone()), 1, t0);
    tl.push(step(1, 12, "consume_skb", Role::Free, f0.clone()), 2, t0);
    let settle = Duration::from_millis(20);
    let timeout = Duration::from_secs(1);
    assert!(tl.ready(t0, settle, timeout).is_empty(), "not settled yet");
    let r = tl.ready(t0 + settle, settle, timeout);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].id, r[0].steps.len()), (1, 2));
    let r = tl.ready(t0 + timeout, settle, timeout);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].fate.as_ref().unwrap().fate, FateKind::Unknown);
    assert!(tl.is_empty());
}

#[test]
fn text_block_prints_tuple_only_on_change() {
    let a = flow("198.18.1.2", 4000, "198.18.1.1", 53);
    let b = flow("198.18.1.2", 4000, "198.18.2.2", 53);
    let mut tl = Timeline::default();
    let t0 = Instant::now();
    tl.push(step(9, 10, "net_dev_queue", Role::Transmit, a), 1, t0);
    tl.push(
        step(9, 20, "net_dev_queue", Role::Transmit, b.clone()),
        0,
        t0,
    );
    tl.push(step(9, 30, "consume_skb", Role::Free, b), 2, t0);
    let p = tl.drain().pop().unwrap();
    let text = render::packet_block(&p);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("packet 9  198.18.1.2:4000 > 198.18.1.1:53 udp"),
        "{text}"
    );
    assert!(!lines[1].contains(" now "), "{text}");
    assert!(
        lines[2].contains("now 198.18.1.2:4000 > 198.18.2.2:53 udp"),
        "{text}"
    );
    assert!(!lines[3].contains(" now "), "{text}");
    assert!(lines[4].starts_with("  fate: consumed"), "{text}");
}

#[test]
fn queued_on_a_socket_is_delivered_to_its_owner() {
    let f0 = flow("198.18.0.1", 1, "198.18.0.2", 5300);
    let mut q = step(8, 20, "sk_data_ready", Role::Queued, f0.clone());
    q.socket = Some(SockRef {
        proto: "udp".into(),
        port: 5300,
        inode: 99,
        owner: Some(Owner {
            pid: 7,
            comm: "srv".into(),
        }),
    });
    let f = classify(8, &[step(8, 10, "netif_receive_skb", Role::Receive, f0), q]);
    assert_eq!(f.fate, FateKind::Delivered);
    assert_eq!((f.pid, f.comm.as_deref()), (Some(7), Some("srv")));
    assert_eq!(f.socket.unwrap().port, 5300);
}

#[test]
fn flows_group_by_local_endpoint_and_name_the_sender() {
    let q = flow("198.18.1.2", 4000, "198.18.1.1", 53);
    let a = flow("198.18.2.2", 53, "198.18.1.2", 4000);
    let mut tl = Timeline::default();
    let t0 = Instant::now();
    let mut s = step(1, 10, "net_dev_queue", Role::Transmit, q);
    s.pid = 31;
    s.comm = "dig".into();
    tl.push(s, 1, t0);
    let mut d = step(2, 20, "kfree_skb", Role::Free, a.clone());
    d.reason = Some("NO_SOCKET");
    d.location = Some(loc("__udp4_lib_rcv"));
    tl.push(step(2, 15, "netif_rx", Role::Receive, a.clone()), 1, t0);
    tl.push(d, 2, t0);
    // A third packet to the same local endpoint, queued on its socket.
    tl.push(step(3, 30, "netif_rx", Role::Receive, a.clone()), 1, t0);
    tl.push(step(3, 31, "sk_data_ready", Role::Queued, a), 2, t0);
    let packets = tl.drain();
    let flows = flows::group(&packets);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(
        (f.proto.as_str(), f.local.as_str()),
        ("udp", "198.18.1.2:4000")
    );
    let dirs: Vec<flows::Direction> = f.packets.iter().map(|p| p.direction).collect();
    use flows::Direction::{In, Out};
    assert_eq!(dirs, [Out, In, In]);
    assert_eq!(f.packets[1].remote, "198.18.2.2:53");
    assert_eq!(f.packets[1].fate.fate, FateKind::Dropped);
    let delivered = &f.packets[2].fate;
    assert_eq!(
        (delivered.pid, delivered.comm.as_deref()),
        (Some(31), Some("dig"))
    );
    let text = flows::render(&flows);
    assert!(
        text.starts_with("flow udp 198.18.1.2:4000: 3 packets, 1 dropped"),
        "{text}"
    );
    assert!(text.contains("<- 198.18.2.2:53"), "{text}");
    // Replies from where the socket never sent: NAT not reversed.
    let note = f.packets[1].note.as_deref().unwrap();
    assert!(
        note.contains("but this socket sent to 198.18.1.1:53"),
        "{note}"
    );
    assert!(f.packets[0].note.is_none());
    let x = f.packets[1]
        .explanation
        .as_ref()
        .expect("drops carry the diagnosis");
    assert_eq!(x.reason, "NO_SOCKET");
    assert!(!x.fixes.is_empty());
    // The flow is the evidence: the knowledge base's NAT diagnosis replaces
    // NO_SOCKET's generic one.
    assert_eq!(x.id, crate::diagnose::kb::specific::NAT_TUPLE_MISMATCH.id);
    assert!(
        text.contains("        fix: Make the server answer from the DNAT target"),
        "{text}"
    );
    assert!(f.packets[2].explanation.is_none());
}

#[test]
fn kfree_skb_is_a_drop_on_kernels_without_skb_consumed() {
    // 6.18: SKB_CONSUMED = 2 (after NOT_DROPPED_YET); reason 2 is no drop.
    assert!(!super::is_drop(2, 2));
    assert!(super::is_drop(3, 2));
    // 6.1: no SKB_CONSUMED; kfree_skb reasons start at NOT_SPECIFIED (1),
    // consume_skb steps carry 0.
    assert!(super::is_drop(1, u32::MAX));
    assert!(!super::is_drop(0, u32::MAX));
}

#[test]
fn function_steps_show_the_way_but_never_decide_the_fate() {
    let f0 = flow("198.18.0.1", 1, "198.18.0.2", 5300);
    // The driver took it, then TX completion ran through functions before
    // consume_skb: still transmitted, on the driver's device.
    let mut x = step(6, 20, "net_dev_xmit", Role::Transmitted, f0.clone());
    x.dev = Some("ens3".into());
    let mut func = step(6, 25, "napi_consume_skb", Role::Function, f0.clone());
    func.dev = Some("other".into());
    let s = vec![x, func, step(6, 30, "consume_skb", Role::Free, f0.clone())];
    let f = classify(6, &s);
    assert_eq!(
        (f.fate, f.dev.as_deref()),
        (FateKind::Transmitted, Some("ens3"))
    );
    assert_eq!((f.steps, f.last_hook.as_str()), (3, "consume_skb"));

    // A timeline whose last step is a function (fate not seen): unknown,
    // last seen in that function; the step count includes the functions.
    let s = vec![
        step(7, 10, "netif_receive_skb", Role::Receive, f0.clone()),
        step(7, 20, "ip_rcv", Role::Function, f0.clone()),
    ];
    let f = classify(7, &s);
    assert_eq!(
        (f.fate, f.steps, f.last_hook.as_str()),
        (FateKind::Unknown, 2, "ip_rcv")
    );
}

/// A bridge flooding packet 7 to two ports: skb_clone's step on 7 names
/// the copy, packet 8, whose steps and fate say whose copy it is and which
/// function made it, in JSON and text; originals carry no such field.
#[test]
fn a_copy_names_its_source_and_the_source_its_copy() {
    use crate::probe::path::STEP_FIRST;
    let f0 = flow("10.9.0.1", 4000, "10.9.0.2", 9999);
    let mut cloned = step(7, 20, "skb_clone", Role::Function, f0.clone());
    cloned.clone = Some(8);
    let orig = vec![
        step(7, 10, "netif_receive_skb", Role::Receive, f0.clone()),
        cloned,
        step(7, 30, "net_dev_xmit", Role::Transmitted, f0.clone()),
    ];
    let mut made = step(8, 20, "skb_clone", Role::Function, f0.clone());
    made.clone_of = Some(7);
    made.flags = STEP_FIRST;
    let mut drop = step(8, 40, "kfree_skb", Role::Free, f0.clone());
    drop.clone_of = Some(7);
    drop.reason = Some("OTHERHOST");
    drop.location = Some(loc("ip_rcv_core"));
    let copy = vec![made, drop];

    let f = classify(8, &copy);
    assert_eq!(f.fate, FateKind::Dropped);
    assert_eq!(f.clone_of, Some(7));
    assert_eq!(f.clone_via.as_deref(), Some("skb_clone"));
    let j = serde_json::to_value(&f).unwrap();
    assert_eq!(
        (j["clone_of"].as_u64(), j["clone_via"].as_str()),
        (Some(7), Some("skb_clone"))
    );
    let j = serde_json::to_value(&copy[1]).unwrap();
    assert_eq!(j["clone_of"], 7);
    assert!(j.get("clone").is_none(), "{j}");

    let of = classify(7, &orig);
    assert_eq!((of.clone_of, of.clone_via.as_deref()), (None, None));
    let j = serde_json::to_value(&of).unwrap();
    assert!(
        j.get("clone_of").is_none() && j.get("clone_via").is_none(),
        "{j}"
    );
    let j = serde_json::to_value(&orig[1]).unwrap();
    assert_eq!(j["clone"], 8);
    assert!(j.get("clone_of").is_none(), "{j}");

    let mut tl = Timeline::default();
    let now = Instant::now();
    for s in orig.into_iter().chain(copy) {
        let flags = if s.role == Some(Role::Free) {
            STEP_FATE
        } else {
            s.flags
        };
        tl.push(s, flags, now);
    }
    let p = tl.drain();
    let text: Vec<String> = p.iter().map(render::packet_block).collect();
    assert!(text[0].starts_with("packet 7  "), "{}", text[0]);
    assert!(text[0].contains("skb_clone"), "{}", text[0]);
    assert!(text[0].contains("  cloned -> packet 8\n"), "{}", text[0]);
    assert!(
        text[1].starts_with("packet 8 (clone of 7 via skb_clone)  10.9.0.1"),
        "{}",
        text[1]
    );
    assert!(text[1].contains("made here from packet 7"), "{}", text[1]);
    // pcapng comments say it too.
    assert_eq!(
        render::pcap_comment(&p[0], 1),
        "packet 7 step 2/3: skb_clone netns=ns(7) dev=eth0 cloned->packet 8"
    );
    assert_eq!(
        render::pcap_comment(&p[1], 1),
        "packet 8 step 2/2: kfree_skb netns=ns(7) dev=eth0 clone_of=7 fate=dropped \
         reason=OTHERHOST at ip_rcv_core+0x10"
    );
    assert!(
        text[1].contains("fate: dropped OTHERHOST at ip_rcv_core"),
        "{}",
        text[1]
    );
    // The copy's first step lost (ring buffer full): still a copy of 7.
    let mut later = step(9, 40, "kfree_skb", Role::Free, f0);
    later.clone_of = Some(7);
    let f = classify(9, &[later]);
    assert_eq!((f.clone_of, f.clone_via), (Some(7), None));
}

/// `--count 1` on a flooded datagram: the original and its clone print,
/// the next original does not; done once no copy is open (or after the
/// grace period).
#[test]
fn count_limits_originals_and_copies_come_along() {
    let f0 = flow("10.9.0.1", 4000, "10.9.0.2", 9999);
    let packet = |id: u64, clone_of: Option<u64>| {
        let mut s = step(id, 10, "kfree_skb", Role::Free, f0.clone());
        s.clone_of = clone_of;
        let fate = Some(classify(id, std::slice::from_ref(&s)));
        Packet {
            id,
            steps: vec![s],
            fate,
            last_event: Instant::now(),
        }
    };
    let t0 = Instant::now();
    let grace = Duration::from_secs(1);
    let mut l = Limit::new(1);
    let mut tl = Timeline::default();
    assert!(!l.done(&tl, t0, grace));
    assert!(l.admit(&packet(1, None), t0));
    // The clone is still on its way: not done.
    let mut open = step(2, 10, "net_dev_queue", Role::Transmit, f0.clone());
    open.clone_of = Some(1);
    tl.push(open, 0, t0);
    assert_eq!(tl.open_copies(), 1);
    assert!(!l.done(&tl, t0, grace));
    assert!(l.done(&tl, t0 + grace, grace), "grace bounds the wait");
    assert!(l.admit(&packet(2, Some(1)), t0));
    assert!(!l.admit(&packet(3, None), t0), "a second original");
    tl.drain();
    assert!(l.done(&tl, t0, grace));
}

#[test]
fn fate_names_round_trip() {
    use FateKind::*;
    for k in [Delivered, Transmitted, Dropped, Consumed, Unknown] {
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(j, format!("\"{}\"", k.as_str()));
        assert_eq!(serde_json::from_str::<FateKind>(&j).unwrap(), k);
    }
    for d in [flows::Direction::Out, flows::Direction::In] {
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<flows::Direction>(&j).unwrap(), d);
    }
    assert_eq!(
        serde_json::to_string(&flows::Direction::Out).unwrap(),
        "\"out\""
    );
}

/// A drop step becomes the drop event explain sees with the reason's
/// real value; its own JSON keeps the envelope first and no reason_code.
#[test]
fn drop_step_keeps_its_reason_code() {
    let mut d = step(
        1,
        10,
        "kfree_skb",
        Role::Free,
        flow("10.0.0.1", 1, "10.0.0.2", 2),
    );
    d.reason = Some("NO_SOCKET");
    d.reason_code = 3;
    d.location = Some(loc("__udp4_lib_rcv"));
    let e = d.as_drop().unwrap();
    assert_eq!((e.reason, e.reason_code), ("NO_SOCKET", 3));
    assert_eq!(e.ifindex, 2);
    let j = serde_json::to_string(&d).unwrap();
    assert!(
        j.starts_with(r#"{"type":"step","v":1,"packet":1,"time_ns":10,"#),
        "{j}"
    );
    assert!(!j.contains("reason_code"), "{j}");
    assert!(
        j.contains(r#""skb":"0x1","reason":"NO_SOCKET","location":{"#),
        "{j}"
    );
    let mut c = d.clone();
    c.role = Some(Role::Queued);
    assert!(c.as_drop().is_none());
}
