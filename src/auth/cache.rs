//! Verification cache: a repeated token does not pay its signature again.
//!
//! Bounded by entries and bytes per shard; an entry ends at the token's `exp`.
//! Only successes are cached, keyed by the whole token text (never a short
//! hash: a collision must not let an unverified token through).

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const SHARDS: usize = 16;
/// Most cached tokens in all (65,536).
pub const MAX_ENTRIES: usize = 65_536;
/// Most bytes of cached token text in all (32 MiB).
pub const MAX_BYTES: usize = 32 << 20;

struct Shard<V> {
    map: HashMap<Box<str>, (Arc<V>, i64)>,
    bytes: usize,
}

/// Verified tokens (`V`, what verification says of one) by their text.
pub struct TokenCache<V> {
    shards: Vec<RwLock<Shard<V>>>,
    hasher: RandomState,
    hits: AtomicU64,
}

impl<V> Default for TokenCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> TokenCache<V> {
    pub fn new() -> TokenCache<V> {
        TokenCache {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::new(),
                        bytes: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            hits: AtomicU64::new(0),
        }
    }

    fn shard(&self, token: &str) -> Option<&RwLock<Shard<V>>> {
        self.shards
            .get((self.hasher.hash_one(token) as usize) % SHARDS)
    }

    pub fn get(&self, token: &str) -> Option<Arc<V>> {
        let found = self
            .shard(token)?
            .read()
            .map
            .get(token)
            .map(|(v, _)| v.clone());
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Caches `verified` for `token` until `until` (Unix seconds).
    pub fn insert(&self, token: &str, verified: Arc<V>, until: i64, now: i64) {
        let Some(shard) = self.shard(token) else {
            return;
        };
        let mut s = shard.write();
        let cost = token.len() + std::mem::size_of::<V>();
        if s.map.len() >= MAX_ENTRIES / SHARDS || s.bytes + cost > MAX_BYTES / SHARDS {
            s.map.retain(|_, (_, until)| *until > now);
            if s.map.len() >= MAX_ENTRIES / SHARDS / 2 || s.bytes + cost > MAX_BYTES / SHARDS / 2 {
                // Still full: drop about half, in the map's arbitrary order.
                let mut keep = true;
                s.map.retain(|_, _| {
                    keep = !keep;
                    keep
                });
            }
            s.bytes = s
                .map
                .keys()
                .map(|k| k.len() + std::mem::size_of::<V>())
                .sum();
        }
        if s.map.insert(token.into(), (verified, until)).is_none() {
            s.bytes += cost;
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
