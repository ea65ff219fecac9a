//! The exposition: one scrape's figures into the Prometheus text format or
//! OpenMetrics, through prometheus-client (no hand-written format). A
//! fresh registry per scrape: every value is read from the kernel at
//! scrape time, and series that ended must not linger in a registry.
#![forbid(unsafe_code)]

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Label pairs of one series, in exposition order.
pub type Labels = Vec<(String, String)>;

/// Everything one scrape exposes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per series: labels, drops, bytes.
    pub drops: Vec<(Labels, u64, u64)>,
    /// Group labels plus `cause`, `summary` and `subject`.
    pub causes: Vec<Labels>,
    /// `check`, `severity`, `netns`, `subject`.
    pub doctor: Vec<Labels>,
    /// (source, events lost).
    pub lost: Vec<(&'static str, u64)>,
    pub hidden: u64,
    pub folded_groups: u64,
    pub capped_total: u64,
    /// `version`, `kernel`, `hook`.
    pub build: Labels,
    /// How long the previous scrape took to collect and encode.
    pub last_scrape_secs: f64,
}

impl Snapshot {
    /// Series this exposition carries (the exporter's own gauge of it).
    pub fn series(&self) -> usize {
        // drops and bytes per group, one each for the scalar metrics.
        2 * self.drops.len() + self.causes.len() + self.doctor.len() + self.lost.len() + 7
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what every Prometheus understands.
    Text,
    /// `application/openmetrics-text`: asked for by Prometheus >= 2.5.
    OpenMetrics,
}

impl Format {
    /// From the request's Accept header: OpenMetrics only when asked for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

type FGauge = Gauge<f64, AtomicU64>;

/// Encodes `s` in `format`.
pub fn encode(s: &Snapshot, format: Format) -> String {
    let reg = registry(s);
    let mut out = String::with_capacity(256 + 160 * s.drops.len());
    let res = match format {
        Format::Text => prometheus_text::encode(&mut out, &reg),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
    };
    // Writing into a String cannot fail; a label the encoder refuses would
    // be our bug, and half an exposition is worse than none.
    res.expect("encoding into a String");
    out
}

fn registry(s: &Snapshot) -> Registry {
    let mut reg = Registry::default();
    let drops = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    for (l, c, b) in &s.drops {
        drops.get_or_create(l).inc_by(*c);
        bytes.get_or_create(l).inc_by(*b);
    }
    reg.register(
        "netwhy_drops",
        "Packets the kernel dropped, by reason, function, network namespace and device.",
        drops,
    );
    reg.register_with_unit(
        "netwhy_drop",
        "Bytes of the packets the kernel dropped (skb->len).",
        Unit::Bytes,
        bytes,
    );
    let causes = Family::<Labels, Gauge>::default();
    for l in &s.causes {
        causes.get_or_create(l).set(1);
    }
    reg.register(
        "netwhy_drop_cause_info",
        "The diagnosis netwhy explain gives for a drop group, from live evidence (value 1).",
        causes,
    );
    let doctor = Family::<Labels, Gauge>::default();
    for l in &s.doctor {
        doctor.get_or_create(l).set(1);
    }
    reg.register(
        "netwhy_doctor_finding",
        "A trap netwhy doctor finds in live state, refreshed every --doctor-interval (value 1).",
        doctor,
    );
    let lost = Family::<Labels, Counter>::default();
    for (src, n) in &s.lost {
        lost.get_or_create(&vec![("source".into(), (*src).into())])
            .inc_by(*n);
    }
    reg.register(
        "netwhy_lost_events",
        "Drops or samples netwhy could not record: ring = ring buffer full, aggregate_full = group map full, cause_queue = diagnosis queue full.",
        lost,
    );
    let hidden: Counter = Counter::default();
    hidden.inc_by(s.hidden);
    reg.register(
        "netwhy_hidden_drops",
        "Known-harmless drops counted but not reported (netwhy drops --all shows them).",
        hidden,
    );
    let folded: Gauge = Gauge::default();
    folded.set(i64::try_from(s.folded_groups).unwrap_or(i64::MAX));
    reg.register(
        "netwhy_folded_groups",
        "Drop groups without a series of their own, counted in their reason's location=\"other\" series.",
        folded,
    );
    let capped: Counter = Counter::default();
    capped.inc_by(s.capped_total);
    reg.register(
        "netwhy_series_capped",
        "Drop groups refused a series because --max-series was reached.",
        capped,
    );
    let build = Family::<Labels, Gauge>::default();
    build.get_or_create(&s.build).set(1);
    reg.register(
        "netwhy_build_info",
        "netwhy's version, the running kernel and the drop hook in use (value 1).",
        build,
    );
    let dur = FGauge::default();
    dur.set(s.last_scrape_secs);
    reg.register_with_unit(
        "netwhy_exporter_scrape_duration",
        "Time the previous scrape took to read the kernel and encode.",
        Unit::Seconds,
        dur,
    );
    let series: Gauge = Gauge::default();
    series.set(i64::try_from(s.series()).unwrap_or(i64::MAX));
    reg.register(
        "netwhy_exporter_series",
        "Series in this exposition.",
        series,
    );
    reg
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
