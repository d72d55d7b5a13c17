//! Counters shared by the proxy and the admin listener, rendered as
//! Prometheus text.

use std::fmt::Write;
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

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, b) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += b.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
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

    /// Identity-provider signals, the SSF poller and token status lists.
    fn render_intake(&self, out: &mut String) {
        out.push_str("# HELP revoke_proxy_intake_signals_total Signals from identity providers by endpoint, result and reason.\n# TYPE revoke_proxy_intake_signals_total counter\n");
        for ((endpoint, result, reason), n) in self.signals.lock().iter() {
            let _ = writeln!(
                out,
                "revoke_proxy_intake_signals_total{{endpoint=\"{endpoint}\",result=\"{result}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = write!(
            out,
            "# HELP revoke_proxy_intake_poll_last_success_timestamp_seconds Unix time of the last SSF poll the transmitter answered (0: none yet).\n# TYPE revoke_proxy_intake_poll_last_success_timestamp_seconds gauge\nrevoke_proxy_intake_poll_last_success_timestamp_seconds {}\n# HELP revoke_proxy_intake_poll_errors_total SSF polls that failed.\n# TYPE revoke_proxy_intake_poll_errors_total counter\nrevoke_proxy_intake_poll_errors_total {}\n",
            self.poll_success.load(Ordering::Relaxed),
            self.poll_errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP revoke_proxy_status_list_lookups_total Token status list lookups: answered from the cache, fetched, or failed fetches.\n# TYPE revoke_proxy_status_list_lookups_total counter\n");
        for (label, c) in ["cache_hit", "fetched", "failed"]
            .iter()
            .zip(&self.status_lists)
        {
            let _ = writeln!(
                out,
                "revoke_proxy_status_list_lookups_total{{result=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
    }

    /// Prometheus text exposition; `extra` lines are appended as they are.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP revoke_proxy_requests_total Requests by outcome.\n# TYPE revoke_proxy_requests_total counter\n");
        for (o, c) in Outcome::ALL.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "revoke_proxy_requests_total{{outcome=\"{}\"}} {}",
                o.label(),
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP revoke_proxy_revocations_total Revocations applied by kind.\n# TYPE revoke_proxy_revocations_total counter\n");
        for (label, c) in ["token", "subject", "global", "session"]
            .iter()
            .zip(&self.revocations)
        {
            let _ = writeln!(
                out,
                "revoke_proxy_revocations_total{{kind=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        self.render_intake(&mut out);
        self.upstream_latency.render(
            &mut out,
            "revoke_proxy_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response head.",
        );
        self.verify_latency.render(
            &mut out,
            "revoke_proxy_verify_latency_seconds",
            "Time to extract and verify a token (cache hits included).",
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
