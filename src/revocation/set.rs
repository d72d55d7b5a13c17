//! The live revocation set in memory: what every request is checked against.
//!
//! Sharded maps keyed by 128-bit digests keep 1,000,000 entries small (about
//! 40 bytes each) and keep writers' locks short; a sweep drops expired
//! entries one shard at a time.

use super::model::{Entry, Reason};
use crate::claims::{subject_hash, token_hash, KeyHashes};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SHARDS: usize = 64;

/// The keys are already uniform digests: hashing them again is wasted work.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type Key = [u64; 2];
type Map<V> = HashMap<Key, V, BuildHasherDefault<DigestHasher>>;

fn key(h: u128) -> Key {
    [(h >> 64) as u64, h as u64]
}

fn shard_of(k: &Key) -> usize {
    (k[0] as usize) % SHARDS
}

struct Sharded<V> {
    shards: Vec<RwLock<Map<V>>>,
}

impl<V: Copy> Sharded<V> {
    fn new() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }

    fn get(&self, k: &Key) -> Option<V> {
        self.shards.get(shard_of(k))?.read().get(k).copied()
    }

    fn upsert(&self, k: Key, v: V, merge: impl Fn(V, V) -> V) {
        if let Some(shard) = self.shards.get(shard_of(&k)) {
            let mut map = shard.write();
            let merged = match map.get(&k) {
                Some(old) => merge(*old, v),
                None => v,
            };
            map.insert(k, merged);
        }
    }

    fn retain(&self, keep: impl Fn(&V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard.write();
            let before = map.len();
            map.retain(|_, v| keep(v));
            removed += before - map.len();
        }
        removed
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

/// Token entries, subject cutoffs and the global cutoff.
pub struct RevocationSet {
    tokens: Sharded<i64>,
    subjects: Sharded<(i64, i64)>,
    global: RwLock<Option<(i64, i64)>>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationSet {
    pub fn new() -> Self {
        RevocationSet {
            tokens: Sharded::new(),
            subjects: Sharded::new(),
            global: RwLock::new(None),
        }
    }

    /// Adds an entry; an existing one is only ever extended.
    pub fn apply(&self, entry: &Entry) {
        match entry {
            Entry::Token {
                subject,
                token,
                until,
            } => {
                self.tokens
                    .upsert(key(token_hash(subject, token)), *until, i64::max);
            }
            Entry::Subject {
                subject,
                cutoff,
                until,
            } => {
                self.subjects
                    .upsert(key(subject_hash(subject)), (*cutoff, *until), |a, b| {
                        (a.0.max(b.0), a.1.max(b.1))
                    });
            }
            Entry::Global { cutoff, until } => {
                let mut g = self.global.write();
                *g = Some(match *g {
                    Some((c, u)) => (c.max(*cutoff), u.max(*until)),
                    None => (*cutoff, *until),
                });
            }
        }
    }

    /// Whether a token with these keys, issued at `iat`, is revoked at `now`.
    pub fn check(&self, keys: &KeyHashes, iat: Option<i64>, now: i64) -> Option<Reason> {
        if matches!(self.tokens.get(&key(keys.token)), Some(until) if until > now) {
            return Some(Reason::Token);
        }
        let iat = iat?;
        if let Some((cutoff, until)) = self.subjects.get(&key(keys.subject)) {
            if until > now && iat < cutoff {
                return Some(Reason::Subject);
            }
        }
        match *self.global.read() {
            Some((cutoff, until)) if until > now && iat < cutoff => Some(Reason::Global),
            _ => None,
        }
    }

    /// Drops entries whose time is up; returns how many went.
    pub fn sweep(&self, now: i64) -> usize {
        let mut removed = self.tokens.retain(|until| *until > now)
            + self.subjects.retain(|(_, until)| *until > now);
        let mut g = self.global.write();
        if matches!(*g, Some((_, until)) if until <= now) {
            *g = None;
            removed += 1;
        }
        removed
    }

    /// Number of live entries (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len() + usize::from(self.global.read().is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::ClaimValue;

    fn s(v: &str) -> ClaimValue {
        ClaimValue::Str(v.into())
    }

    #[test]
    fn token_entry_expires_and_is_swept() {
        let set = RevocationSet::new();
        set.apply(&Entry::Token {
            subject: s("u"),
            token: s("j"),
            until: 100,
        });
        let k = KeyHashes::new(&s("u"), &s("j"));
        assert_eq!(set.check(&k, Some(1), 99), Some(Reason::Token));
        assert_eq!(set.check(&k, Some(1), 100), None);
        assert_eq!(set.sweep(100), 1);
        assert!(set.is_empty());
    }

    #[test]
    fn cutoffs_spare_tokens_issued_in_the_purge_second() {
        let set = RevocationSet::new();
        set.apply(&Entry::Subject {
            subject: s("u"),
            cutoff: 50,
            until: 1000,
        });
        let k = KeyHashes::new(&s("u"), &s("j"));
        assert_eq!(set.check(&k, Some(49), 60), Some(Reason::Subject));
        assert_eq!(set.check(&k, Some(50), 60), None);
        assert_eq!(set.check(&k, None, 60), None);
        set.apply(&Entry::Global {
            cutoff: 70,
            until: 1000,
        });
        assert_eq!(set.check(&k, Some(60), 80), Some(Reason::Global));
    }

    #[test]
    fn shorter_writes_do_not_shorten() {
        let set = RevocationSet::new();
        set.apply(&Entry::Token {
            subject: s("u"),
            token: s("j"),
            until: 100,
        });
        set.apply(&Entry::Token {
            subject: s("u"),
            token: s("j"),
            until: 10,
        });
        let k = KeyHashes::new(&s("u"), &s("j"));
        assert_eq!(set.check(&k, Some(1), 50), Some(Reason::Token));
    }
}
