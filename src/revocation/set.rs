//! The live revocation set in memory: what every request is checked against.
//!
//! Sharded maps keyed by 96 bits of each identity's keyed digest (see
//! [`crate::claims`]), with times as 32-bit Unix seconds: a token
//! entry is 16 bytes in its table, so 1,000,000 entries take about 35 bytes
//! each with the tables' free room. A collision of two identities (about
//! n / 2^96 per lookup: 10^-22 at ten million entries) could only make a
//! token look revoked, never miss a revocation. Writers' locks are short; a
//! sweep drops expired entries one shard at a time.

use super::model::{Entry, Reason};
use crate::claims::{session_hash, subject_hash, token_hash, token_id_hash, KeyHashes};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

const SHARDS: usize = 64;

/// A Unix time as stored: 32 bits, clamped to 1970 … 2106 (tokens live at
/// most `max_token_lifetime`, so no entry needs to outlast 2106).
fn pack(t: i64) -> u32 {
    t.clamp(0, i64::from(u32::MAX)) as u32
}

fn unpack(t: u32) -> i64 {
    i64::from(t)
}

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

/// 96 bits of a digest, 4-byte aligned so a table slot stays small.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u32; 3]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // The first 64 bits pick the slot; the shard comes from the rest.
        h.write_u64((u64::from(self.0[0]) << 32) | u64::from(self.0[1]));
    }
}

type Map<V> = HashMap<Key, V, BuildHasherDefault<DigestHasher>>;

fn key(h: u128) -> Key {
    Key([(h >> 96) as u32, (h >> 64) as u32, (h >> 32) as u32])
}

fn shard_of(k: &Key) -> usize {
    (k.0[2] as usize) % SHARDS
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

    /// Room for `more` entries in all, spread over the shards (a load that
    /// knows its size grows each table once instead of doubling it).
    fn reserve(&self, more: usize) {
        let each = more / SHARDS + more / SHARDS / 16 + 1;
        for shard in &self.shards {
            shard.write().reserve(each);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

/// Token entries, subject cutoffs, session entries and the global cutoff.
pub struct RevocationSet {
    /// Until.
    tokens: Sharded<u32>,
    /// Until.
    sessions: Sharded<u32>,
    /// (Cutoff, until).
    subjects: Sharded<(u32, u32)>,
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
            sessions: Sharded::new(),
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
                    .upsert(key(token_hash(subject, token)), pack(*until), u32::max);
            }
            Entry::Subject {
                subject,
                cutoff,
                until,
            } => {
                self.subjects.upsert(
                    key(subject_hash(subject)),
                    (pack(*cutoff), pack(*until)),
                    |a, b| (a.0.max(b.0), a.1.max(b.1)),
                );
            }
            Entry::Session { session, until } => {
                self.sessions
                    .upsert(key(session_hash(session)), pack(*until), u32::max);
            }
            Entry::TokenId { token, until } => {
                self.tokens
                    .upsert(key(token_id_hash(token)), pack(*until), u32::max);
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
        let live = |until: Option<u32>| until.is_some_and(|u| unpack(u) > now);
        if live(self.tokens.get(&key(keys.token))) || live(self.tokens.get(&key(keys.token_id))) {
            return Some(Reason::Token);
        }
        if let Some(session) = keys.session {
            if matches!(self.sessions.get(&key(session)), Some(until) if unpack(until) > now) {
                return Some(Reason::Session);
            }
        }
        let iat = iat?;
        if let Some((cutoff, until)) = self.subjects.get(&key(keys.subject)) {
            if unpack(until) > now && iat < unpack(cutoff) {
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
        let mut removed = self.tokens.retain(|until| unpack(*until) > now)
            + self.sessions.retain(|until| unpack(*until) > now)
            + self.subjects.retain(|(_, until)| unpack(*until) > now);
        let mut g = self.global.write();
        if matches!(*g, Some((_, until)) if until <= now) {
            *g = None;
            removed += 1;
        }
        removed
    }

    /// Makes room for about `entries` more token entries at once.
    pub fn reserve(&self, entries: usize) {
        self.tokens.reserve(entries);
    }

    /// Number of live entries (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.tokens.len()
            + self.sessions.len()
            + self.subjects.len()
            + usize::from(self.global.read().is_some())
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
    fn times_are_held_in_32_bits_and_clamped() {
        assert_eq!(unpack(pack(1_767_225_600)), 1_767_225_600);
        assert_eq!(unpack(pack(-5)), 0);
        assert_eq!(unpack(pack(i64::MAX)), i64::from(u32::MAX));
        // A slot: 12-byte key + 4-byte time.
        assert_eq!(std::mem::size_of::<(Key, u32)>(), 16);
        let set = RevocationSet::new();
        set.reserve(10_000);
        set.apply(&Entry::Token {
            subject: s("u"),
            token: s("j"),
            until: i64::MAX,
        });
        let k = KeyHashes::new(&s("u"), &s("j"));
        assert_eq!(set.check(&k, None, 4_000_000_000), Some(Reason::Token));
    }

    #[test]
    fn session_entries_revoke_only_tokens_naming_that_session() {
        let set = RevocationSet::new();
        set.apply(&Entry::Session {
            session: s("sid-1"),
            until: 100,
        });
        let base = KeyHashes::new(&s("u"), &s("j"));
        let same = base.with_session(Some(&s("sid-1")));
        let other = base.with_session(Some(&s("sid-2")));
        // A session is not a subject of the same value.
        let subject_named_alike = KeyHashes::new(&s("sid-1"), &s("j"));
        assert_eq!(set.check(&same, None, 50), Some(Reason::Session));
        assert_eq!(set.check(&same, Some(99), 50), Some(Reason::Session));
        assert_eq!(set.check(&other, Some(1), 50), None);
        assert_eq!(set.check(&base, Some(1), 50), None);
        assert_eq!(set.check(&subject_named_alike, Some(1), 50), None);
        assert_eq!(set.check(&same, None, 100), None);
        assert_eq!(set.sweep(100), 1);
        assert!(set.is_empty());
    }

    #[test]
    fn token_id_entries_revoke_that_id_for_any_subject() {
        let set = RevocationSet::new();
        set.apply(&Entry::TokenId {
            token: s("t1"),
            until: 100,
        });
        assert_eq!(
            set.check(&KeyHashes::new(&s("a"), &s("t1")), None, 50),
            Some(Reason::Token)
        );
        assert_eq!(
            set.check(&KeyHashes::new(&s("b"), &s("t1")), Some(1), 50),
            Some(Reason::Token)
        );
        assert_eq!(
            set.check(&KeyHashes::new(&s("a"), &s("t2")), None, 50),
            None
        );
        // Neither a pair with that subject nor a session of that value.
        assert_eq!(
            set.check(&KeyHashes::new(&s("t1"), &s("x")), None, 50),
            None
        );
        let sess = KeyHashes::new(&s("a"), &s("x")).with_session(Some(&s("t1")));
        assert_eq!(set.check(&sess, None, 50), None);
        assert_eq!(
            set.check(&KeyHashes::new(&s("a"), &s("t1")), None, 100),
            None
        );
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
