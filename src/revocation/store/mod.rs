//! Where revocations are kept beyond this process: one small trait that every
//! store implements and the conformance suite in `tests/` runs against.
//!
//! The in-memory set in [`super::set`] is always the first copy; a store adds
//! durability (`file`) or sharing between replicas. `memory` has no store.

pub mod file;

use super::model::Entry;
use std::future::Future;
use std::pin::Pin;

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
}

impl StoreError {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Io(_) => "io",
            StoreError::Timeout => "timeout",
            StoreError::Closed => "closed",
            StoreError::Corrupt(_) => "corrupt",
        }
    }
}

/// A revocation store. Writes are atomic and never shorten an existing entry.
pub trait Store: Send + Sync + 'static {
    /// `file`, `redis`, … for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Every live entry, to fill the in-memory set at start.
    fn load(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>>;

    /// Stores one entry; returns once it is durable or shared.
    fn write<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), StoreError>>;
}
