//! Where revocations are kept beyond this process: one small trait that every
//! store implements and the conformance suite in `tests/` runs against.
//!
//! The in-memory set in [`super::set`] is always the first copy; a store adds
//! durability (`file`) or sharing between replicas. `memory` has no store.
//!
//! Owns: the Store trait, file, memcached and redis stores, the key layout.
//! May import: its parent (`revocation`), config, claims.

pub mod file;
pub mod keys;
pub mod memcached;
pub mod redis;

use super::model::{Entry, TokenRef};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("store did not answer within its timeout")]
    Timeout,
    #[error("store is closed")]
    Closed,
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Io(_) => "io",
            StoreError::Timeout => "timeout",
            StoreError::Closed => "closed",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Backend(_) => "backend",
        }
    }
}

/// How requests consult a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Loaded once at start; this process is the only writer (`file`).
    Loaded,
    /// A local replica kept current by [`Store::replicate`] (`redis`, mode replica).
    Replica,
    /// Looked up on each request with [`Store::lookup`] (`redis` per_request, `memcached`).
    PerRequest,
}

/// Where a replicating store delivers what it learns.
pub trait Sink: Send + Sync {
    /// Entries read from the store (a batch of a full load, or of the log).
    fn apply(&self, entries: &[Entry]);
    /// The store answered and the log is being read: the replica is current.
    fn healthy(&self);
    /// How the replica keeps up, for metrics.
    fn progress(&self, _progress: Progress<'_>) {}
    /// About `entries` are about to be applied at once (a snapshot).
    fn reserve(&self, _entries: usize) {}
}

/// What a replicating store reports besides entries.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The whole set was loaded; `reason` says why (`start`, `trimmed`, …),
    /// `source` from where (`snapshot` or `keys`).
    FullLoad {
        reason: &'static str,
        source: &'static str,
        entries: usize,
    },
    /// `entries` were read from the change log; `lags` are write-to-apply
    /// times of those that carry their writer's time; `position_ms` is the
    /// time part of the last id read.
    Read {
        entries: usize,
        lags: &'a [Duration],
        position_ms: u64,
    },
    /// Entries written back to a store that had lost them: from the last
    /// minute's, and from the local copy.
    GivenBack { recent: usize, from_copy: usize },
}

/// A revocation store. Writes are atomic and never shorten an existing entry.
pub trait Store: Send + Sync + 'static {
    /// `file`, `redis`, … for logs and metrics.
    fn kind(&self) -> &'static str;

    fn access(&self) -> Access {
        Access::Loaded
    }

    /// Every live entry, to fill the in-memory set at start.
    fn load(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>>;

    /// Stores one entry; returns once it is durable or shared.
    fn write<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The entries that could reject this token (token entry, subject
    /// cutoff, session entry, global cutoff), for per-request stores.
    fn lookup<'a>(
        &'a self,
        _id: &'a TokenRef<'a>,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What another library keeps at `read.key` (`revocation.compat`);
    /// stores that cannot hold such records say so.
    fn read_foreign<'a>(
        &'a self,
        _read: &'a super::compat::Read,
    ) -> BoxFuture<'a, Result<super::compat::Foreign, StoreError>> {
        Box::pin(async {
            Err(StoreError::Backend(
                "revocation.compat needs a redis or memcached store".into(),
            ))
        })
    }

    /// A cheap round trip proving the store answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// For [`Access::Replica`] stores: loads everything into `sink`, then keeps
    /// it current (feed, resync after a disconnect) until `sink` is gone.
    fn replicate(self: Arc<Self>, _sink: Weak<dyn Sink>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
