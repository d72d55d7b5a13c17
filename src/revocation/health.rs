//! Whether the store can be relied on: a replica while it has synced within
//! `max_staleness`, a per-request store while its pings answer; the
//! background task that follows the store.

use super::{Access, Revocations, Sink};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Process-local origin of the health timestamps.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Per-request stores are pinged this often to keep `/readyz` honest (1 s).
pub const HEALTH_PING_EVERY: Duration = Duration::from_secs(1);

impl Revocations {
    /// How long a replica that lost its store keeps serving its set.
    pub fn set_max_staleness(&self, d: Duration) {
        self.max_staleness_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Starts following the store: the feed for a replica, a health ping
    /// for a per-request store. Nothing for local stores.
    pub fn start_sync(self: &Arc<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        match self.access {
            Access::Loaded => {}
            Access::Replica => {
                let strong: Arc<dyn Sink> = self.clone();
                tokio::spawn(store.replicate(Arc::downgrade(&strong)));
            }
            Access::PerRequest => {
                let weak = Arc::downgrade(self);
                tokio::spawn(async move {
                    loop {
                        let Some(r) = weak.upgrade() else { return };
                        let wait = r.store_timeout.max(HEALTH_PING_EVERY);
                        if let Ok(Ok(())) = tokio::time::timeout(wait, store.ping()).await {
                            r.healthy();
                        } else {
                            // Every request is failing over now: not ready at once,
                            // not after max_staleness (which is for replicas).
                            r.synced.store(false, Ordering::Relaxed);
                        }
                        drop(r);
                        tokio::time::sleep(HEALTH_PING_EVERY).await;
                    }
                });
            }
        }
    }

    /// Whether the store is usable: local stores always; a replica while it
    /// has synced within `max_staleness`; a per-request store while its
    /// pings answer (the last one answered, and within three ping periods).
    pub fn available(&self) -> bool {
        let window = match self.access {
            Access::Loaded => return true,
            Access::Replica => Duration::from_millis(self.max_staleness_ms.load(Ordering::Relaxed)),
            Access::PerRequest => 3 * HEALTH_PING_EVERY + self.store_timeout,
        };
        self.synced.load(Ordering::Relaxed) && self.sync_lag() <= window
    }

    /// Time since the store last proved healthy (zero for local stores).
    pub fn sync_lag(&self) -> Duration {
        if self.access == Access::Loaded {
            return Duration::ZERO;
        }
        if !self.synced.load(Ordering::Relaxed) {
            return EPOCH.elapsed();
        }
        let now = EPOCH.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.healthy_at.load(Ordering::Relaxed)))
    }

    /// How requests consult the store.
    pub fn access(&self) -> Access {
        self.access
    }

    pub(super) fn healthy(&self) {
        self.healthy_at
            .store(EPOCH.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.synced.store(true, Ordering::Relaxed);
    }
}
