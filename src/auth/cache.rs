//! Verification cache: a repeated token does not pay its signature again.
//!
//! Bounded by entries and bytes per shard; an entry ends at the token's `exp`.
//! Only successes are cached. Entries are found by a 64-bit keyed hash of the
//! token (xxh3 with a random per-process seed, computed once per lookup) and
//! the whole token text is compared: a collision is a miss, never an
//! unverified token let through. A flood of distinct tokens evicts about half
//! a shard at a time (amortized O(1) per insert) and never grows the cache
//! past its bounds; a shard is locked for writing only to insert.

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

struct Entry<V> {
    token: Box<str>,
    verified: Arc<V>,
    until: i64,
}

struct Shard<V> {
    map: HashMap<u64, Entry<V>>,
    bytes: usize,
    /// Lookups answered from this shard (next to its lock: one cache line
    /// touched per lookup, none shared by all workers).
    hits: AtomicU64,
}

/// Verified tokens (`V`, what verification says of one) by their text.
pub struct TokenCache<V> {
    shards: Vec<RwLock<Shard<V>>>,
    seed: u64,
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
                        hits: AtomicU64::new(0),
                    })
                })
                .collect(),
            seed: RandomState::new().hash_one(0x7265_766f_6b65_u64),
        }
    }

    /// The token's hash and its shard.
    fn place(&self, token: &str) -> (u64, Option<&RwLock<Shard<V>>>) {
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(token.as_bytes(), self.seed);
        (hash, self.shards.get((hash >> 60) as usize % SHARDS))
    }

    pub fn get(&self, token: &str) -> Option<Arc<V>> {
        let (hash, shard) = self.place(token);
        let s = shard?.read();
        let e = s.map.get(&hash).filter(|e| &*e.token == token)?;
        s.hits.fetch_add(1, Ordering::Relaxed);
        Some(e.verified.clone())
    }

    /// Caches `verified` for `token` until `until` (Unix seconds).
    pub fn insert(&self, token: &str, verified: Arc<V>, until: i64, now: i64) {
        let (hash, Some(shard)) = self.place(token) else {
            return;
        };
        let mut s = shard.write();
        let cost = token.len() + std::mem::size_of::<Entry<V>>();
        if s.map.len() >= MAX_ENTRIES / SHARDS || s.bytes + cost > MAX_BYTES / SHARDS {
            s.map.retain(|_, e| e.until > now);
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
                .values()
                .map(|e| e.token.len() + std::mem::size_of::<Entry<V>>())
                .sum();
        }
        let entry = Entry {
            token: token.into(),
            verified,
            until,
        };
        // A colliding token replaces the other: both stay correct, one misses.
        match s.map.insert(hash, entry) {
            None => s.bytes += cost,
            Some(old) => s.bytes = s.bytes.saturating_sub(old.token.len()) + token.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hits(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().hits.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_is_found_by_its_whole_text_only() {
        let cache = TokenCache::new();
        cache.insert("a.b.c", Arc::new(1), 100, 0);
        assert_eq!(cache.get("a.b.c").as_deref(), Some(&1));
        assert!(cache.get("a.b.d").is_none());
        assert!(cache.get("a.b.c ").is_none());
        assert_eq!(cache.hits(), 1);
    }

    #[test]
    fn a_flood_of_distinct_tokens_stays_within_the_bounds() {
        let cache = TokenCache::new();
        for n in 0..(4 * MAX_ENTRIES) {
            cache.insert(&format!("token-{n}"), Arc::new(n), 100, 0);
            assert!(cache.len() <= MAX_ENTRIES, "{} after {n}", cache.len());
        }
        // Recent tokens are still there more often than not.
        let found = (4 * MAX_ENTRIES - 1000..4 * MAX_ENTRIES)
            .filter(|n| cache.get(&format!("token-{n}")).is_some())
            .count();
        assert!(found > 500, "{found} of the last 1,000");
        for shard in &cache.shards {
            let s = shard.read();
            let bytes: usize = s
                .map
                .values()
                .map(|e| e.token.len() + std::mem::size_of::<Entry<usize>>())
                .sum();
            assert_eq!(s.bytes, bytes);
        }
    }

    #[test]
    fn long_tokens_are_bounded_by_bytes() {
        let cache = TokenCache::new();
        let pad = "x".repeat(16 * 1024);
        for n in 0..4096 {
            cache.insert(&format!("{pad}{n}"), Arc::new(()), 100, 0);
        }
        let bytes: usize = cache.shards.iter().map(|s| s.read().bytes).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
    }

    #[test]
    fn expired_entries_go_first_when_a_shard_is_full() {
        let cache = TokenCache::new();
        for n in 0..MAX_ENTRIES {
            cache.insert(&format!("old-{n}"), Arc::new(0), 10, 0);
        }
        // At time 20 every old entry has expired: a full shard drops them all.
        for n in 0..MAX_ENTRIES {
            cache.insert(&format!("new-{n}"), Arc::new(1), 100, 20);
        }
        let new = (0..MAX_ENTRIES)
            .filter(|n| cache.get(&format!("new-{n}")).is_some())
            .count();
        assert!(new > MAX_ENTRIES / 2, "{new}");
    }
}
