//! Counters shared by the proxy and the admin listener. The hot path only
//! adds to atomics; a scrape reads them into the `prometheus-client` crate,
//! which writes the OpenMetrics text (counters end in `_total`, durations
//! and times are in seconds, every label is a fixed set of values).

use std::sync::atomic::{AtomicU64, Ordering};

/// How a request ended, for metrics and access lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Missing,
    Invalid,
    Revoked,
    StoreUnavailable,
    UpstreamError,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Missing,
        Outcome::Invalid,
        Outcome::Revoked,
        Outcome::StoreUnavailable,
        Outcome::UpstreamError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Missing => "missing",
            Outcome::Invalid => "invalid",
            Outcome::Revoked => "revoked",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus histogram with fixed [`BUCKETS`], lock-free.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The buckets as (upper bound, count in this bucket alone), the
    /// last one `+Inf`; with the sum and count, as an exposition takes them.
    pub fn read(&self) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let within: u64 = buckets.iter().map(|(_, c)| c).sum();
        buckets.push((f64::MAX, count.saturating_sub(within)));
        HistogramSnapshot {
            sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: count.max(within),
            buckets,
        }
    }
}

/// A histogram's values at one scrape.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

/// How many revocations the status page lists.
pub const RECENT: usize = 20;

/// A revocation as the status page lists it: who and how, never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    /// `route`, `admin` or the identity-provider endpoint.
    pub source: &'static str,
    /// `token`, `subject`, `session` or `global`.
    pub kind: &'static str,
    /// The subject, when the revocation names one.
    pub subject: Option<String>,
    /// `stored` or `pending`.
    pub status: &'static str,
}

#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 6],
    revocations: [AtomicU64; 4],
    /// Unix time of the last SSF poll the transmitter answered (0: none yet).
    poll_success: std::sync::atomic::AtomicI64,
    /// SSF polls that failed (transport, status, or an unreadable answer).
    poll_errors: AtomicU64,
    /// Token status lists: cache hits, fetches, failed fetches.
    status_lists: [AtomicU64; 3],
    /// Identity-provider signals by (endpoint, result, reason).
    signals: parking_lot::Mutex<
        std::collections::BTreeMap<(&'static str, &'static str, &'static str), u64>,
    >,
    /// The last [`RECENT`] revocations, for the status page.
    recent: parking_lot::Mutex<std::collections::VecDeque<AuditEvent>>,
    /// Time from sending a request upstream to its response head.
    pub upstream_latency: Histogram,
    /// Time to extract and verify a token (cache hits included).
    pub verify_latency: Histogram,
}

impl Metrics {
    pub fn outcome(&self, outcome: Outcome) {
        if let Some(c) = self.outcomes.get(outcome as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a revocation applied by kind (`token`, `subject`, `global`, `session`).
    pub fn revocation(&self, kind: &str) {
        let i = match kind {
            "token" => 0,
            "subject" => 1,
            "global" => 2,
            _ => 3,
        };
        if let Some(c) = self.revocations.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Remembers a revocation for the status page (the last [`RECENT`]).
    pub fn audit(&self, event: AuditEvent) {
        let mut recent = self.recent.lock();
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The last revocations, newest first.
    pub fn recent(&self) -> Vec<AuditEvent> {
        self.recent.lock().iter().rev().cloned().collect()
    }

    /// Counts a signal from an identity provider at `endpoint`: `applied`,
    /// `replayed` or `rejected` (with the rejection's `reason`, else "").
    pub fn signal(&self, endpoint: &'static str, result: &'static str, reason: &'static str) {
        *self
            .signals
            .lock()
            .entry((endpoint, result, reason))
            .or_default() += 1;
    }

    /// An SSF poll was answered at `now` (Unix seconds).
    pub fn poll_succeeded(&self, now: i64) {
        self.poll_success.store(now, Ordering::Relaxed);
    }

    /// A token status list event: `cache_hit`, `fetched` or `failed`.
    pub fn status_list(&self, event: &str) {
        let i = match event {
            "cache_hit" => 0,
            "fetched" => 1,
            _ => 2,
        };
        if let Some(c) = self.status_lists.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An SSF poll failed.
    pub fn poll_failed(&self) {
        self.poll_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Signals counted so far at `endpoint` with `result`.
    pub fn signals(&self, endpoint: &str, result: &str) -> u64 {
        self.signals
            .lock()
            .iter()
            .filter(|((e, r, _), _)| *e == endpoint && *r == result)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes
            .get(outcome as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The OpenMetrics text exposition (by the `prometheus-client`
    /// crate) of these counters and of `more`, read at this scrape.
    pub fn exposition(&self, more: Scrape) -> String {
        let family = Family {
            requests: Outcome::ALL
                .iter()
                .zip(&self.outcomes)
                .map(|(o, c)| (o.label(), c.load(Ordering::Relaxed)))
                .collect(),
            revocations: ["token", "subject", "global", "session"]
                .iter()
                .zip(&self.revocations)
                .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
                .collect(),
            signals: self.signals.lock().iter().map(|(k, n)| (*k, *n)).collect(),
            poll_success: self.poll_success.load(Ordering::Relaxed),
            poll_errors: self.poll_errors.load(Ordering::Relaxed),
            status_lists: ["cache_hit", "fetched", "failed"]
                .iter()
                .zip(&self.status_lists)
                .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
                .collect(),
            upstream_latency: self.upstream_latency.read(),
            verify_latency: self.verify_latency.read(),
            more,
        };
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(family));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for HistogramSnapshot {
    /// An empty histogram: every bucket, all zero.
    fn default() -> Self {
        Histogram::default().read()
    }
}

/// What the admin listener adds at a scrape: figures owned by the
/// revocation set, the store, the verifier and the log writer.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub revocations_live: u64,
    pub revocations_pending: u64,
    pub store_errors: u64,
    pub store_sync_lag_seconds: f64,
    pub store_available: bool,
    pub store_log_position_seconds: u64,
    pub store_log_entries: u64,
    /// (reason, source, loads).
    pub store_full_loads: Vec<(&'static str, &'static str, u64)>,
    pub store_given_back: [(&'static str, u64); 2],
    pub propagation_lag: HistogramSnapshot,
    pub verify_cache_hits: u64,
    pub log_lines_dropped: u64,
}

/// Every family of one scrape, encoded by the client library.
#[derive(Debug)]
struct Family {
    requests: Vec<(&'static str, u64)>,
    revocations: Vec<(&'static str, u64)>,
    signals: Vec<((&'static str, &'static str, &'static str), u64)>,
    poll_success: i64,
    poll_errors: u64,
    status_lists: Vec<(&'static str, u64)>,
    upstream_latency: HistogramSnapshot,
    verify_latency: HistogramSnapshot,
    more: Scrape,
}

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

type Fmt = Result<(), std::fmt::Error>;

/// A counter family with one label (`name` without `_total`: the
/// exposition adds it).
fn counters(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Fmt {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, n: u64) -> Fmt {
    ConstCounter::new(n).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> Fmt {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn histogram(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, h: &HistogramSnapshot) -> Fmt {
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum, h.count, &h.buckets, None,
        )
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl prometheus_client::collector::Collector for Family {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Fmt {
        let e = &mut e;
        counters(
            e,
            "revoke_proxy_requests",
            "Requests by outcome.",
            "outcome",
            &self.requests,
        )?;
        counters(
            e,
            "revoke_proxy_revocations",
            "Revocations applied by kind.",
            "kind",
            &self.revocations,
        )?;
        let mut m = e.encode_descriptor(
            "revoke_proxy_intake_signals",
            "Signals from identity providers by endpoint, result and reason.",
            None,
            MetricType::Counter,
        )?;
        for ((endpoint, result, reason), n) in &self.signals {
            let labels = [
                ("endpoint", *endpoint),
                ("result", *result),
                ("reason", *reason),
            ];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        gauge(
            e,
            "revoke_proxy_intake_poll_last_success_timestamp_seconds",
            "Unix time of the last SSF poll the transmitter answered (0: none yet).",
            self.poll_success,
        )?;
        counter(
            e,
            "revoke_proxy_intake_poll_errors",
            "SSF polls that failed.",
            self.poll_errors,
        )?;
        counters(
            e,
            "revoke_proxy_status_list_lookups",
            "Token status list lookups: answered from the cache, fetched, or failed fetches.",
            "result",
            &self.status_lists,
        )?;
        histogram(
            e,
            "revoke_proxy_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response head.",
            &self.upstream_latency,
        )?;
        histogram(
            e,
            "revoke_proxy_verify_latency_seconds",
            "Time to extract and verify a token (cache hits included).",
            &self.verify_latency,
        )?;
        self.more.encode(e)
    }
}

impl Scrape {
    fn encode(&self, e: &mut DescriptorEncoder<'_>) -> Fmt {
        gauge(
            e,
            "revoke_proxy_revocations_live",
            "Live revocation entries in memory.",
            clamp(self.revocations_live),
        )?;
        gauge(
            e,
            "revoke_proxy_revocations_pending",
            "Revocations not yet taken by the store.",
            clamp(self.revocations_pending),
        )?;
        counter(
            e,
            "revoke_proxy_store_errors",
            "Failed store operations since start.",
            self.store_errors,
        )?;
        ConstGauge::new(self.store_sync_lag_seconds).encode(e.encode_descriptor(
            "revoke_proxy_store_sync_lag_seconds",
            "Seconds since the store last proved healthy (0 for local stores).",
            None,
            MetricType::Gauge,
        )?)?;
        gauge(
            e,
            "revoke_proxy_store_available",
            "1 while the revocation store is usable, else 0.",
            i64::from(self.store_available),
        )?;
        gauge(
            e,
            "revoke_proxy_store_log_position_timestamp_seconds",
            "Unix time of the last change log entry read (0: none yet).",
            clamp(self.store_log_position_seconds),
        )?;
        counter(
            e,
            "revoke_proxy_store_log_entries",
            "Entries read from the change log.",
            self.store_log_entries,
        )?;
        let mut m = e.encode_descriptor(
            "revoke_proxy_store_full_loads",
            "Loads of every key from the store, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, source, n) in &self.store_full_loads {
            let labels = [("reason", *reason), ("source", *source)];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = e.encode_descriptor(
            "revoke_proxy_store_given_back_entries",
            "Entries written back to a store that had lost them, by source.",
            None,
            MetricType::Counter,
        )?;
        for (source, n) in &self.store_given_back {
            ConstCounter::new(*n).encode(m.encode_family(&[("source", *source)])?)?;
        }
        histogram(
            e,
            "revoke_proxy_propagation_lag_seconds",
            "Time from a revocation's write on any replica to its apply here.",
            &self.propagation_lag,
        )?;
        counter(
            e,
            "revoke_proxy_verify_cache_hits",
            "Tokens verified from the cache.",
            self.verify_cache_hits,
        )?;
        counter(
            e,
            "revoke_proxy_log_lines_dropped",
            "Log lines dropped because stdout could not keep up.",
            self.log_lines_dropped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_openmetrics_with_cumulative_buckets() {
        let m = Metrics::default();
        m.outcome(Outcome::Ok);
        m.outcome(Outcome::Ok);
        m.revocation("session");
        m.verify_latency
            .observe(std::time::Duration::from_micros(300));
        m.verify_latency.observe(std::time::Duration::from_secs(9));
        let text = m.exposition(Scrape {
            store_sync_lag_seconds: 1.5,
            ..Scrape::default()
        });
        for want in [
            "# TYPE revoke_proxy_requests counter\n",
            "revoke_proxy_requests_total{outcome=\"ok\"} 2\n",
            "revoke_proxy_revocations_total{kind=\"session\"} 1\n",
            "revoke_proxy_verify_latency_seconds_count 2\n",
            "revoke_proxy_verify_latency_seconds_bucket{le=\"+Inf\"} 2\n",
            "revoke_proxy_store_sync_lag_seconds 1.5\n",
            "# EOF\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        let le_5 = text
            .lines()
            .find(|l| l.starts_with("revoke_proxy_verify_latency_seconds_bucket{le=\"5"))
            .unwrap_or_default();
        assert!(
            le_5.ends_with(" 1"),
            "cumulative, the 9 s one outside: {le_5}"
        );
    }
}
