//! How a replica keeps up with its shared store: full loads by reason,
//! entries read from the change log, the log position reached, and the
//! write-to-apply lag of each entry (exported as metrics).

use super::store::Progress;
use crate::metrics::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a replica loaded the whole set, as counted (bounded labels).
pub const LOAD_REASONS: [&str; 4] = ["start", "new_epoch", "log_behind", "trimmed"];
/// Where it loaded it from.
pub const LOAD_SOURCES: [&str; 2] = ["snapshot", "keys"];

#[derive(Default)]
pub struct SyncStats {
    full_loads: [AtomicU64; 8],
    log_entries: AtomicU64,
    position_ms: AtomicU64,
    given_back: [AtomicU64; 2],
    /// Time from an entry's write (its writer's clock) to its apply here.
    pub propagation_lag: Histogram,
}

impl SyncStats {
    pub fn record(&self, p: Progress<'_>) {
        match p {
            Progress::FullLoad { reason, source, .. } => {
                let r = LOAD_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
                let s = LOAD_SOURCES.iter().position(|s| *s == source).unwrap_or(1);
                if let Some(c) = self.full_loads.get(r * LOAD_SOURCES.len() + s) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            Progress::Read {
                entries,
                lags,
                position_ms,
            } => {
                self.log_entries
                    .fetch_add(entries as u64, Ordering::Relaxed);
                self.position_ms.fetch_max(position_ms, Ordering::Relaxed);
                for lag in lags {
                    self.propagation_lag.observe(*lag);
                }
            }
            Progress::GivenBack { recent, from_copy } => {
                let [r, c] = &self.given_back;
                r.fetch_add(recent as u64, Ordering::Relaxed);
                c.fetch_add(from_copy as u64, Ordering::Relaxed);
            }
        }
    }

    /// Full loads by reason (summed over sources), in [`LOAD_REASONS`] order.
    pub fn full_loads(&self) -> [(&'static str, u64); 4] {
        let mut out = [("", 0); 4];
        for (o, (r, c)) in out.iter_mut().zip(
            LOAD_REASONS
                .iter()
                .zip(self.full_loads.chunks(LOAD_SOURCES.len())),
        ) {
            *o = (r, c.iter().map(|n| n.load(Ordering::Relaxed)).sum());
        }
        out
    }

    /// Full loads by `(reason, source)`.
    pub fn full_loads_by_source(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (i, c) in self.full_loads.iter().enumerate() {
            let (r, s) = (i / LOAD_SOURCES.len(), i % LOAD_SOURCES.len());
            if let (Some(r), Some(s)) = (LOAD_REASONS.get(r), LOAD_SOURCES.get(s)) {
                out.push((*r, *s, c.load(Ordering::Relaxed)));
            }
        }
        out
    }

    /// Entries written back to a store that lost them, by source: `recent`
    /// (the last minute's) and `copy` (the local copy).
    pub fn given_back(&self) -> [(&'static str, u64); 2] {
        let [r, c] = &self.given_back;
        [
            ("recent", r.load(Ordering::Relaxed)),
            ("copy", c.load(Ordering::Relaxed)),
        ]
    }

    /// Entries read from the change log since start.
    pub fn log_entries(&self) -> u64 {
        self.log_entries.load(Ordering::Relaxed)
    }

    /// The time part of the last log id read, in Unix milliseconds (0: none).
    pub fn position_ms(&self) -> u64 {
        self.position_ms.load(Ordering::Relaxed)
    }
}
