//! Revocation: the model (token entries, subject and global cutoffs), the in-memory set every request is
//! checked against, and the stores that keep or share it.
//!
//! [`Revocations`] is the one door: writes go to the local set first (so they
//! are enforced at once), then to the store; a write the store did not take is
//! kept and retried until it is stored, never dropped.
//!
//! Owns: the model, the in-memory set, the stores, sync statistics.
//! May import: config, claims, metrics.

pub mod clock;
pub mod compat;
mod health;
pub mod model;
pub mod set;
pub mod store;
pub mod sync;
mod writes;

pub use health::HEALTH_PING_EVERY;
pub use writes::{RETRY_FIRST, RETRY_MAX, SWEEP_EVERY};

pub use clock::Clock;
pub use model::{Entry, Reason, TokenRef};
pub use store::{Access, Store, StoreError};

use crate::claims::KeyHashes;
use crate::config::{RevocationSettings, StoreKind, StoreMode, DEFAULT_MAX_STALENESS};
use parking_lot::Mutex;
use set::RevocationSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use store::Sink;
use tokio::sync::Notify;

/// Seconds a client is told to wait (`Retry-After`) while the store is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The answer of the revocation check for one verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clear,
    Revoked(Reason),
    /// The store could not be consulted (per-request) or the replica is
    /// older than `max_staleness`: `on_store_failure` decides.
    Unavailable,
}

/// Whether a revocation has reached the store (the `Revocation-Status` header).
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
    spool: OnceLock<Arc<store::file::FileStore>>,
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
    /// `revocation.compat`, and whether the store is memcached.
    compat: OnceLock<(crate::config::Compat, bool)>,
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
                        copy: st.spool.as_ref().map(|p| {
                            let mut c = p.clone().into_os_string();
                            c.push(".copy");
                            std::path::PathBuf::from(c)
                        }),
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
        if let Some(c) = &settings.compat {
            let memcached = matches!(st.kind, StoreKind::Memcached { .. });
            let _ = r.compat.set((c.clone(), memcached));
        }
        if let Some(path) = &st.spool {
            r.open_spool(path, clock).await?;
        }
        r.load().await?;
        r.start_sync();
        Ok(r)
    }

    /// [`Revocations::verdict`], then what a `revocation.compat` library
    /// keeps for the token (`claims`: the token's values of
    /// [`crate::config::Compat::claims`]), read from the store within
    /// `store.timeout`.
    pub async fn verdict_with_compat(
        &self,
        id: TokenRef<'_>,
        keys: &KeyHashes,
        iat: Option<i64>,
        claims: &[Option<serde_json::Value>],
    ) -> Verdict {
        let verdict = self.verdict(id, keys, iat).await;
        let (Verdict::Clear | Verdict::Unavailable, Some((compat_config, memcached)), Some(store)) =
            (&verdict, self.compat.get(), &self.store)
        else {
            return verdict;
        };
        // Even when our own set cannot be vouched for, the library's record
        // can still refuse the token.
        let refused = match compat::read_for(compat_config, claims, *memcached) {
            Err(compat::Unusable::MissingClaim) => true,
            Err(compat::Unusable::NoRecord) => {
                compat::refused(compat_config, claims, &compat::Foreign::Missing)
            }
            Ok(read) => {
                match tokio::time::timeout(self.store_timeout, store.read_foreign(&read)).await {
                    Ok(Ok(found)) => {
                        // Only a per-request store's freshness is a read;
                        // a replica's is its change log.
                        if self.access == Access::PerRequest {
                            self.healthy();
                        }
                        compat::refused(compat_config, claims, &found)
                    }
                    Ok(Err(_)) | Err(_) => {
                        self.store_errors.fetch_add(1, Ordering::Relaxed);
                        return Verdict::Unavailable;
                    }
                }
            }
        };
        if refused {
            Verdict::Revoked(Reason::Compat)
        } else {
            verdict
        }
    }

    /// The full check for one verified token: the local set, then (per-request
    /// stores) the store within `store.timeout`, or (replicas) the staleness
    /// window.
    pub async fn verdict(&self, id: TokenRef<'_>, keys: &KeyHashes, iat: Option<i64>) -> Verdict {
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
                match tokio::time::timeout(self.store_timeout, store.lookup(&id)).await {
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
            compat: OnceLock::new(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(writes::maintain(Arc::downgrade(&r), r.wake_retry.clone()));
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

    /// Live entries in memory.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
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

    fn reserve(&self, entries: usize) {
        self.set.reserve(entries);
    }
}
