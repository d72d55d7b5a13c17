//! Writing revocations: each is applied to the local set at once, then
//! handed to the store; one the store does not take is journaled (when a
//! spool is configured), kept pending and retried until stored, never
//! dropped. Also the background sweep of expired entries.

use super::store::{self, Store as _};
use super::{Clock, Entry, Revocations, StoreError, WriteStatus};
use crate::claims::ClaimValue;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How often expired entries are swept from memory (30 s).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// First wait before a failed store write is retried (250 ms); doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between retries of a failed store write (5 s).
pub const RETRY_MAX: Duration = Duration::from_secs(5);

impl Revocations {
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
        if self.spool.set(Arc::new(spool)).is_err() {
            return Err(StoreError::Io(std::io::Error::other("spool already open")));
        }
        Ok(())
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
            // A token without `exp` is accepted until `iat` + max lifetime
            // + leeway, and its `iat` may lie up to leeway ahead of this
            // clock: its revocation lasts max lifetime + twice the leeway.
            (None, None) => now
                .saturating_add(self.lifetimes.max_token)
                .saturating_add(self.lifetimes.leeway.saturating_mul(2)),
        };
        self.record(Entry::Token {
            subject,
            token,
            until,
        })
        .await
    }

    /// Revokes every token naming identity-provider session `session`, kept
    /// `lifetime` seconds or max_token_lifetime (+ leeway): no token of it
    /// can outlive that.
    pub async fn revoke_session(&self, session: ClaimValue, lifetime: Option<i64>) -> WriteStatus {
        let until = self.cutoff_until(self.clock.now(), lifetime);
        self.record(Entry::Session { session, until }).await
    }

    /// Revokes every token whose token claim is `token`, of any subject,
    /// kept `lifetime` seconds or max_token_lifetime (+ leeway).
    pub async fn revoke_token_id(&self, token: ClaimValue, lifetime: Option<i64>) -> WriteStatus {
        let until = self.cutoff_until(self.clock.now(), lifetime);
        self.record(Entry::TokenId { token, until }).await
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

    /// Applies locally at once, then hands the entry to the store. Safe to
    /// cancel: a caller that stops waiting (its client went away) leaves the
    /// entry pending, so it is retried, never dropped.
    pub async fn record(&self, entry: Entry) -> WriteStatus {
        self.set.apply(&entry);
        let Some(store) = &self.store else {
            return WriteStatus::Stored;
        };
        let mut unsettled = Unsettled {
            entry: Some(entry.clone()),
            pending: &self.pending,
            wake: &self.wake_retry,
            spool: self.spool.get(),
        };
        let outcome = tokio::time::timeout(self.store_timeout, store.write(&entry)).await;
        match outcome {
            Ok(Ok(())) => {
                unsettled.entry = None;
                WriteStatus::Stored
            }
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
                // Pending from here on, also if the caller stopped waiting
                // while it was journaled (the guard pushes it then).
                unsettled.spool = None;
                if let Some(entry) = unsettled.entry.take() {
                    self.pending.lock().push(entry);
                    self.wake_retry.notify_one();
                }
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

/// A write the store has not answered yet: if its future is dropped
/// before the answer, the entry goes to the pending list for the retry loop.
struct Unsettled<'a> {
    entry: Option<Entry>,
    pending: &'a parking_lot::Mutex<Vec<Entry>>,
    wake: &'a Notify,
    /// `store.path`: where a dropped write is journaled (by a task of its
    /// own: a drop cannot wait).
    spool: Option<&'a Arc<store::file::FileStore>>,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        if let (Some(spool), Ok(runtime)) = (self.spool, tokio::runtime::Handle::try_current()) {
            let (spool, journaled) = (spool.clone(), entry.clone());
            runtime.spawn(async move {
                if let Err(e) = spool.write(&journaled).await {
                    tracing::error!(error = %e, "Cannot journal an unshared revocation");
                }
            });
        }
        self.pending.lock().push(entry);
        self.wake.notify_one();
    }
}

/// Sweeps expired entries and retries pending writes while the service lives.
pub(super) async fn maintain(this: Weak<Revocations>, wake: Arc<Notify>) {
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
        if notified {
            // A fresh failure: give the store a moment before the first
            // retry (holding no strong reference: the owner may close it).
            tokio::time::sleep(RETRY_FIRST).await;
        }
        since_sweep += started.elapsed();
        let Some(r) = this.upgrade() else { return };
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
