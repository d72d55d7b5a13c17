//! Revocation: the model of SPEC §3, the in-memory set every request is
//! checked against, and the stores that keep or share it.
//!
//! [`Revocations`] is the one door: writes go to the local set first (so they
//! are enforced at once), then to the store; a write the store did not take is
//! kept and retried until it is stored, never dropped.

pub mod clock;
pub mod model;
pub mod set;
pub mod store;
pub mod sync;

pub use clock::Clock;
pub use model::{Entry, Reason};
pub use store::{Access, Store, StoreError};

use crate::claims::{ClaimValue, KeyHashes};
use crate::config::{RevocationSettings, StoreKind, StoreMode, DEFAULT_MAX_STALENESS};
use parking_lot::Mutex;
use set::RevocationSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, Weak};
use std::time::{Duration, Instant};
use store::Sink;
use tokio::sync::Notify;

/// Process-local origin of the health timestamps.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Seconds a client is told to wait (`Retry-After`) while the store is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Per-request stores are pinged this often to keep `/readyz` honest (1 s).
pub const HEALTH_PING_EVERY: Duration = Duration::from_secs(1);

/// The answer of the revocation check for one verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clear,
    Revoked(Reason),
    /// The store could not be consulted (per-request) or the replica is
    /// older than `max_staleness`: `on_store_failure` decides.
    Unavailable,
}

/// How often expired entries are swept from memory (30 s).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// First wait before a failed store write is retried (250 ms); doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between retries of a failed store write (5 s).
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether a revocation has reached the store (SPEC §4 `Revocation-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// The store has it (or there is no store beyond memory).
    Stored,
    /// Enforced here; the store has not taken it yet and it is being retried.
    Pending,
}

impl WriteStatus {
    pub fn label(self) -> &'static str {
        match self {
            WriteStatus::Stored => "stored",
            WriteStatus::Pending => "pending",
        }
    }
}

/// Lifetimes that shape entries, in whole seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// `revocation.max_token_lifetime`.
    pub max_token: i64,
    /// `jwt.leeway`.
    pub leeway: i64,
}

pub struct Revocations {
    set: RevocationSet,
    store: Option<Arc<dyn Store>>,
    /// Durable journal of writes the shared store has not taken yet.
    spool: OnceLock<store::file::FileStore>,
    access: Access,
    /// The store has answered (replica: loaded) at least once.
    synced: AtomicBool,
    /// When the store last proved healthy, in ms since [`EPOCH`].
    healthy_at: AtomicU64,
    /// A replica older than this is stale (`revocation.max_staleness`), in ms.
    max_staleness_ms: AtomicU64,
    pending: Mutex<Vec<Entry>>,
    wake_retry: Arc<Notify>,
    clock: Clock,
    lifetimes: Lifetimes,
    store_timeout: Duration,
    store_errors: AtomicU64,
    /// How the replica keeps up with its store (metrics).
    pub sync: sync::SyncStats,
}

impl Revocations {
    /// Opens the configured store and loads its live entries.
    pub async fn open(
        settings: &RevocationSettings,
        leeway: Duration,
        clock: Clock,
    ) -> Result<Arc<Revocations>, StoreError> {
        let st = &settings.store;
        let store: Option<Arc<dyn Store>> = match &st.kind {
            StoreKind::Memory => None,
            StoreKind::File { path } => {
                Some(Arc::new(store::file::FileStore::open(path, clock.clone())?))
            }
            StoreKind::Redis { url, cluster } => {
                let urls = if cluster.is_empty() {
                    url.iter().cloned().collect()
                } else {
                    cluster.clone()
                };
                Some(Arc::new(store::redis::RedisStore::new(
                    store::redis::RedisTarget {
                        urls,
                        cluster: !cluster.is_empty(),
                        ca_file: st.ca_file.clone(),
                        key_prefix: st.key_prefix.clone(),
                        timeout: st.timeout,
                        mode: match st.mode {
                            StoreMode::Replica => Access::Replica,
                            StoreMode::PerRequest => Access::PerRequest,
                        },
                        log_retention: settings.max_token_lifetime,
                    },
                )?))
            }
            StoreKind::Memcached { url } => Some(Arc::new(store::memcached::MemcachedStore::new(
                url,
                &st.key_prefix,
            )?)),
        };
        let lifetimes = Lifetimes {
            max_token: settings.max_token_lifetime.as_secs() as i64,
            leeway: leeway.as_secs() as i64,
        };
        let r = Revocations::new(store, lifetimes, st.timeout, clock.clone());
        r.set_max_staleness(settings.max_staleness);
        if let Some(path) = &st.spool {
            r.open_spool(path, clock).await?;
        }
        r.load().await?;
        r.start_sync();
        Ok(r)
    }

    /// Opens the journal of unshared writes and replays it: every entry is
    /// enforced here at once and queued for the store again (writes merge, so
    /// one that did reach the store before a crash is harmless to repeat).
    pub async fn open_spool(&self, path: &std::path::Path, clock: Clock) -> Result<(), StoreError> {
        let spool = store::file::FileStore::open(path, clock)?;
        let entries = spool.load().await?;
        if !entries.is_empty() {
            tracing::info!(
                entries = entries.len(),
                "Replaying revocations not yet shared"
            );
            for e in &entries {
                self.set.apply(e);
            }
            self.pending.lock().extend(entries);
            self.wake_retry.notify_one();
        }
        if self.spool.set(spool).is_err() {
            return Err(StoreError::Io(std::io::Error::other("spool already open")));
        }
        Ok(())
    }

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
    /// pings answer within that window.
    pub fn available(&self) -> bool {
        if self.access == Access::Loaded {
            return true;
        }
        self.synced.load(Ordering::Relaxed)
            && self.sync_lag()
                <= Duration::from_millis(self.max_staleness_ms.load(Ordering::Relaxed))
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

    /// The full check for one verified token: the local set, then (per-request
    /// stores) the store within `store.timeout`, or (replicas) the staleness
    /// window.
    pub async fn verdict(
        &self,
        subject: &ClaimValue,
        token: &ClaimValue,
        keys: &KeyHashes,
        iat: Option<i64>,
    ) -> Verdict {
        let local = self.check(keys, iat);
        // A per-request store may know a more specific reason than a cutoff
        // held here; everywhere else the local answer is final.
        if let Some(reason) = local {
            if reason == Reason::Token || self.access != Access::PerRequest {
                return Verdict::Revoked(reason);
            }
        }
        match (self.access, &self.store) {
            (Access::Loaded, _) | (_, None) => Verdict::Clear,
            (Access::Replica, Some(_)) => {
                if self.available() {
                    Verdict::Clear
                } else {
                    Verdict::Unavailable
                }
            }
            (Access::PerRequest, Some(store)) => {
                match tokio::time::timeout(self.store_timeout, store.lookup(subject, token)).await {
                    Ok(Ok(entries)) => {
                        self.healthy();
                        for e in &entries {
                            self.set.apply(e);
                        }
                        match self.check(keys, iat) {
                            Some(reason) => Verdict::Revoked(reason),
                            None => Verdict::Clear,
                        }
                    }
                    Ok(Err(e)) => {
                        self.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error.reason = e.reason(), error = %e, "Store lookup failed");
                        local.map_or(Verdict::Unavailable, Verdict::Revoked)
                    }
                    Err(_) => {
                        self.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("Store lookup timed out");
                        local.map_or(Verdict::Unavailable, Verdict::Revoked)
                    }
                }
            }
        }
    }

    fn healthy(&self) {
        self.healthy_at
            .store(EPOCH.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.synced.store(true, Ordering::Relaxed);
    }

    /// A service over `store` (none: memory only). Call [`Revocations::load`] next.
    pub fn new(
        store: Option<Arc<dyn Store>>,
        lifetimes: Lifetimes,
        store_timeout: Duration,
        clock: Clock,
    ) -> Arc<Revocations> {
        let access = store.as_ref().map_or(Access::Loaded, |s| s.access());
        let r = Arc::new(Revocations {
            set: RevocationSet::new(),
            store,
            spool: OnceLock::new(),
            access,
            synced: AtomicBool::new(false),
            healthy_at: AtomicU64::new(0),
            max_staleness_ms: AtomicU64::new(DEFAULT_MAX_STALENESS.as_millis() as u64),
            pending: Mutex::new(Vec::new()),
            wake_retry: Arc::new(Notify::new()),
            clock,
            lifetimes,
            store_timeout,
            store_errors: AtomicU64::new(0),
            sync: sync::SyncStats::default(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(maintain(Arc::downgrade(&r), r.wake_retry.clone()));
        }
        r
    }

    /// Fills the local set from the store; returns how many entries it holds.
    pub async fn load(&self) -> Result<usize, StoreError> {
        if let Some(store) = &self.store {
            for entry in store.load().await? {
                self.set.apply(&entry);
            }
        }
        Ok(self.set.len())
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// The store's name, `memory` when there is none.
    pub fn store_kind(&self) -> &'static str {
        self.store.as_ref().map_or("memory", |s| s.kind())
    }

    /// Whether the token is revoked now. Local memory only: no I/O.
    pub fn check(&self, keys: &KeyHashes, iat: Option<i64>) -> Option<Reason> {
        self.set.check(keys, iat, self.clock.now())
    }

    /// Revokes one token. Kept until `exp` + leeway, or `lifetime` seconds
    /// from now when given, or `max_token_lifetime` when the token has no `exp`.
    pub async fn revoke_token(
        &self,
        subject: ClaimValue,
        token: ClaimValue,
        exp: Option<i64>,
        lifetime: Option<i64>,
    ) -> WriteStatus {
        let now = self.clock.now();
        let until = match (lifetime, exp) {
            (Some(l), _) => now.saturating_add(l),
            (None, Some(exp)) => exp.saturating_add(self.lifetimes.leeway).max(now + 1),
            (None, None) => now.saturating_add(self.lifetimes.max_token),
        };
        self.record(Entry::Token {
            subject,
            token,
            until,
        })
        .await
    }

    /// Revokes every token of `subject` issued before this second.
    pub async fn purge_subject(&self, subject: ClaimValue, lifetime: Option<i64>) -> WriteStatus {
        self.purge_subject_at(subject, self.clock.now(), lifetime)
            .await
    }

    /// Revokes every token of `subject` issued before `cutoff` (never later
    /// than now: a cutoff in the future would revoke tokens not yet issued).
    pub async fn purge_subject_at(
        &self,
        subject: ClaimValue,
        cutoff: i64,
        lifetime: Option<i64>,
    ) -> WriteStatus {
        let now = self.clock.now();
        let cutoff = cutoff.min(now);
        let until = self.cutoff_until(now, lifetime);
        self.record(Entry::Subject {
            subject,
            cutoff,
            until,
        })
        .await
    }

    /// Revokes every token issued before this second.
    pub async fn purge_all(&self, lifetime: Option<i64>) -> WriteStatus {
        let now = self.clock.now();
        let until = self.cutoff_until(now, lifetime);
        self.record(Entry::Global { cutoff: now, until }).await
    }

    fn cutoff_until(&self, now: i64, lifetime: Option<i64>) -> i64 {
        let keep = lifetime.unwrap_or(self.lifetimes.max_token + self.lifetimes.leeway);
        now.saturating_add(keep)
    }

    /// Applies locally at once, then hands the entry to the store.
    pub async fn record(&self, entry: Entry) -> WriteStatus {
        self.set.apply(&entry);
        let Some(store) = &self.store else {
            return WriteStatus::Stored;
        };
        match tokio::time::timeout(self.store_timeout, store.write(&entry)).await {
            Ok(Ok(())) => WriteStatus::Stored,
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e,
                    _ => StoreError::Timeout,
                };
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = entry.kind(), error.reason = error.reason(), error = %error,
                    "Revocation not stored yet; enforced locally and retried");
                if let Some(spool) = self.spool.get() {
                    if let Err(e) = spool.write(&entry).await {
                        tracing::error!(error = %e, "Cannot journal an unshared revocation");
                    }
                }
                self.pending.lock().push(entry);
                self.wake_retry.notify_one();
                WriteStatus::Pending
            }
        }
    }

    /// Revocations enforced here that the store has not taken yet.
    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }

    /// Live entries in memory.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Tries every pending write once; returns how many are still pending.
    pub async fn retry_pending(&self) -> usize {
        let Some(store) = &self.store else { return 0 };
        let batch = std::mem::take(&mut *self.pending.lock());
        let mut failed = Vec::new();
        for entry in batch {
            match tokio::time::timeout(self.store_timeout, store.write(&entry)).await {
                Ok(Ok(())) => tracing::info!(kind = entry.kind(), "Pending revocation stored"),
                _ => {
                    self.store_errors.fetch_add(1, Ordering::Relaxed);
                    failed.push(entry);
                }
            }
        }
        let mut pending = self.pending.lock();
        pending.extend(failed);
        pending.len()
    }
}

impl Sink for Revocations {
    fn apply(&self, entries: &[Entry]) {
        for e in entries {
            self.set.apply(e);
        }
    }

    fn healthy(&self) {
        Revocations::healthy(self);
    }

    fn progress(&self, p: store::Progress<'_>) {
        self.sync.record(p);
    }
}

/// Sweeps expired entries and retries pending writes while the service lives.
async fn maintain(this: Weak<Revocations>, wake: Arc<Notify>) {
    let mut backoff = RETRY_FIRST;
    let mut since_sweep = Duration::ZERO;
    loop {
        let wait = {
            let Some(r) = this.upgrade() else { return };
            if r.pending() > 0 {
                backoff
            } else {
                SWEEP_EVERY.saturating_sub(since_sweep)
            }
        };
        // No strong reference is held while waiting, so the service can close.
        let started = tokio::time::Instant::now();
        let notified = tokio::select! {
            _ = wake.notified() => true,
            _ = tokio::time::sleep(wait) => false,
        };
        since_sweep += started.elapsed();
        let Some(r) = this.upgrade() else { return };
        if notified {
            // A fresh failure: give the store a moment before the first retry.
            tokio::time::sleep(RETRY_FIRST).await;
        }
        if r.pending() > 0 {
            backoff = if r.retry_pending().await == 0 {
                RETRY_FIRST
            } else {
                (backoff * 2).min(RETRY_MAX)
            };
        }
        if since_sweep >= SWEEP_EVERY {
            since_sweep = Duration::ZERO;
            let removed = r.set.sweep(r.clock.now());
            tracing::debug!(removed, "Swept expired revocations");
        }
    }
}
