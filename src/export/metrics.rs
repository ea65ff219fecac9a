//! The exposition: one scrape's figures into the Prometheus text format or
//! OpenMetrics, through prometheus-client (no hand-written format), as a
//! collector of constant metrics: every value is read from the kernel at
//! scrape time, and series that ended must not linger in a registry.
#![forbid(unsafe_code)]

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
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

/// Encodes `s` in `format`.
pub fn encode(s: Snapshot, format: Format) -> String {
    let mut out = String::with_capacity(256 + 200 * s.drops.len());
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Collect(s)));
    let res = match format {
        Format::Text => prometheus_text::encode(&mut out, &reg),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
    };
    // Writing into a String cannot fail; a label the encoder refuses would
    // be our bug, and half an exposition is worse than none.
    res.expect("encoding into a String");
    out
}

/// The snapshot as constant metrics, written straight from its rows: no
/// per-series atomics or label hashing, which dominate a 10k-series scrape
/// built from metric families.
#[derive(Debug)]
struct Collect(Snapshot);

fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl Iterator<Item = (&'a Labels, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (l, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(l)?)?;
    }
    Ok(())
}

fn gauges<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (&'a Labels, i64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(l)?)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        counters(
            &mut enc,
            "netwhy_drops",
            "Packets the kernel dropped, by reason, function, network namespace and device",
            None,
            s.drops.iter().map(|(l, c, _)| (l, *c)),
        )?;
        counters(
            &mut enc,
            "netwhy_drop",
            "Bytes of the packets the kernel dropped (skb->len)",
            Some(&Unit::Bytes),
            s.drops.iter().map(|(l, _, b)| (l, *b)),
        )?;
        gauges(
            &mut enc,
            "netwhy_drop_cause_info",
            "The diagnosis netwhy explain gives for a drop group, from live evidence (value 1)",
            s.causes.iter().map(|l| (l, 1)),
        )?;
        gauges(
            &mut enc,
            "netwhy_doctor_finding",
            "A trap netwhy doctor finds in live state, refreshed every --doctor-interval (value 1)",
            s.doctor.iter().map(|l| (l, 1)),
        )?;
        let lost: Vec<(Labels, u64)> = s
            .lost
            .iter()
            .map(|(src, n)| (vec![("source".to_string(), (*src).to_string())], *n))
            .collect();
        counters(
            &mut enc,
            "netwhy_lost_events",
            "Drops or samples netwhy could not record: ring = ring buffer full, aggregate_full = group map full, cause_queue = diagnosis queue full",
            None,
            lost.iter().map(|(l, n)| (l, *n)),
        )?;
        counter(
            &mut enc,
            "netwhy_hidden_drops",
            "Known-harmless drops counted but not reported (netwhy drops --all shows them)",
            s.hidden,
        )?;
        gauge(
            &mut enc,
            "netwhy_folded_groups",
            "Drop groups without a series of their own, counted in their reason's location=\"other\" series",
            s.folded_groups,
        )?;
        counter(
            &mut enc,
            "netwhy_series_capped",
            "Drop groups refused a series because --max-series was reached",
            s.capped_total,
        )?;
        gauges(
            &mut enc,
            "netwhy_build_info",
            "netwhy's version, the running kernel and the drop hook in use (value 1)",
            std::iter::once((&s.build, 1)),
        )?;
        ConstGauge::new(s.last_scrape_secs).encode(enc.encode_descriptor(
            "netwhy_exporter_scrape_duration",
            "Time the previous scrape took to read the kernel and encode",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?)?;
        gauge(
            &mut enc,
            "netwhy_exporter_series",
            "Series in this exposition",
            s.series() as u64,
        )
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
