use super::*;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fixture() -> Snapshot {
    let g = [
        ("reason", "NO_SOCKET"),
        ("location", "__udp4_lib_rcv"),
        ("netns", "blue"),
        ("dev", "lo"),
    ];
    let mut cause = l(&g);
    cause.push(("cause".into(), "udp-no-socket".into()));
    cause.push(("summary".into(), "nothing listens on \"udp/53\"".into()));
    Snapshot {
        drops: vec![(l(&g), 3, 252)],
        causes: vec![cause],
        doctor: vec![l(&[
            ("check", "rp-filter"),
            ("severity", "warning"),
            ("netns", "blue"),
            ("subject", "veth0"),
        ])],
        lost: vec![("ring", 0), ("aggregate_full", 2)],
        hidden: 7,
        folded_groups: 1,
        capped_total: 0,
        build: l(&[
            ("version", "0.1.0"),
            ("kernel", "6.18.0"),
            ("hook", "tp_btf"),
        ]),
        last_scrape_secs: 0.002,
    }
}

#[test]
fn text_format_has_typed_families_and_the_samples() {
    let t = encode(fixture(), Format::Text);
    for line in [
        "# TYPE netwhy_drops_total counter",
        "netwhy_drops_total{reason=\"NO_SOCKET\",location=\"__udp4_lib_rcv\",netns=\"blue\",dev=\"lo\"} 3",
        "# TYPE netwhy_drop_bytes_total counter",
        "netwhy_drop_bytes_total{reason=\"NO_SOCKET\",location=\"__udp4_lib_rcv\",netns=\"blue\",dev=\"lo\"} 252",
        "netwhy_lost_events_total{source=\"aggregate_full\"} 2",
        "netwhy_hidden_drops_total 7",
        "netwhy_folded_groups 1",
        "netwhy_build_info{version=\"0.1.0\",kernel=\"6.18.0\",hook=\"tp_btf\"} 1",
        "# TYPE netwhy_exporter_scrape_duration_seconds gauge",
        "netwhy_exporter_series 13",
    ] {
        assert!(t.lines().any(|x| x == line), "missing {line:?} in\n{t}");
    }
    // Quotes in label values are escaped by the encoder.
    assert!(
        t.contains(r#"summary="nothing listens on \"udp/53\"""#),
        "{t}"
    );
    assert!(!t.contains("# EOF"), "the 0.0.4 format has no EOF marker");
}

#[test]
fn openmetrics_ends_with_eof_and_declares_units() {
    let t = encode(fixture(), Format::OpenMetrics);
    assert!(t.ends_with("# EOF\n"), "{t}");
    assert!(t.contains("# UNIT netwhy_drop_bytes bytes"), "{t}");
    assert!(t.contains("# TYPE netwhy_drops counter"), "{t}");
}

#[test]
fn accept_header_picks_the_format() {
    assert_eq!(Format::from_accept(None), Format::Text);
    assert_eq!(
        Format::from_accept(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
        Format::Text
    );
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
    assert!(Format::OpenMetrics
        .content_type()
        .starts_with("application/openmetrics-text"));
}

/// Encoding cost at 10k groups (bench/export measures whole scrapes).
#[test]
#[ignore]
fn encode_10k_timing() {
    let mut s = fixture();
    s.drops = (0..10_000)
        .map(|i| {
            let mut lb = l(&[("reason", "NO_SOCKET"), ("netns", "4026531840"), ("dev", "eth0")]);
            lb.insert(1, ("location".into(), format!("function_number_{i}")));
            (lb, i as u64, 100 * i as u64)
        })
        .collect();
    for f in [Format::Text, Format::OpenMetrics] {
        let t = std::time::Instant::now();
        let out = encode(s.clone(), f);
        eprintln!("{f:?}: {} bytes in {:?}", out.len(), t.elapsed());
    }
}
