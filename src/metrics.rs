//! Counters shared by the proxy and the admin listener, rendered as
//! Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request outcomes, in the order they are rendered.
pub const OUTCOMES: [&str; 6] = [
    "ok",
    "missing",
    "invalid",
    "revoked",
    "store_unavailable",
    "upstream_error",
];

#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 6],
    revocations: [AtomicU64; 3],
}

impl Metrics {
    pub fn outcome(&self, label: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == label) {
            if let Some(c) = self.outcomes.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a revocation applied by kind (`token`, `subject`, `global`).
    pub fn revocation(&self, kind: &str) {
        let i = match kind {
            "token" => 0,
            "subject" => 1,
            _ => 2,
        };
        if let Some(c) = self.revocations.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count(&self, label: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == label)
            .and_then(|i| self.outcomes.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Prometheus text exposition; `extra` lines are appended as they are.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP revoke_proxy_requests_total Requests by outcome.\n# TYPE revoke_proxy_requests_total counter\n");
        for (label, c) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "revoke_proxy_requests_total{{outcome=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP revoke_proxy_revocations_total Revocations applied by kind.\n# TYPE revoke_proxy_revocations_total counter\n");
        for (label, c) in ["token", "subject", "global"].iter().zip(&self.revocations) {
            let _ = writeln!(
                out,
                "revoke_proxy_revocations_total{{kind=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
