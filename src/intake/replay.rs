//! Signals seen before: a logout token or SET whose `jti` was already
//! applied is answered as a success again and changes nothing. Bounded:
//! entries leave when the signal could no longer be valid, and when the
//! memory bound is reached the oldest half is forgotten (applying a signal
//! twice is harmless — writes merge — so forgetting costs only a write).

use parking_lot::Mutex;
use std::collections::HashMap;

/// Most `jti`s remembered at once.
pub const MAX_REMEMBERED: usize = 100_000;

/// Which `jti` space a signal is in: an issuer numbers its logout tokens
/// and its security event tokens independently, so one value may name one
/// of each (and a SET pushed and polled is the same SET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    LogoutToken,
    SecurityEvent,
}

#[derive(Default)]
pub struct Replay {
    seen: Mutex<HashMap<(String, Family, String), i64>>,
}

impl Replay {
    /// `jti` of `issuer` (its configured name) was applied before and is
    /// still remembered.
    pub fn seen(&self, issuer: &str, family: Family, jti: &str, now: i64) -> bool {
        let seen = self.seen.lock();
        seen.get(&(issuer.to_string(), family, jti.to_string()))
            .is_some_and(|until| *until > now)
    }

    /// Remembers `jti` until `until` (Unix seconds).
    pub fn remember(&self, issuer: &str, family: Family, jti: &str, until: i64, now: i64) {
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, u| *u > now);
        }
        if seen.len() >= MAX_REMEMBERED {
            let mut times: Vec<i64> = seen.values().copied().collect();
            let mid = times.len() / 2;
            let (_, median, _) = times.select_nth_unstable(mid);
            let median = *median;
            seen.retain(|_, u| *u > median);
        }
        seen.insert((issuer.to_string(), family, jti.to_string()), until);
    }

    pub fn len(&self) -> usize {
        self.seen.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_per_issuer() {
        let r = Replay::default();
        r.remember("i", Family::SecurityEvent, "a", 100, 10);
        assert!(r.seen("i", Family::SecurityEvent, "a", 99));
        assert!(!r.seen("i", Family::LogoutToken, "a", 99));
        assert!(!r.seen("i", Family::SecurityEvent, "a", 100));
        assert!(!r.seen("j", Family::SecurityEvent, "a", 50));
    }

    #[test]
    fn stays_bounded() {
        let r = Replay::default();
        for i in 0..(MAX_REMEMBERED + 10) {
            r.remember(
                "i",
                Family::SecurityEvent,
                &i.to_string(),
                1000 + i as i64,
                0,
            );
        }
        assert!(r.len() <= MAX_REMEMBERED);
        // The newest are kept.
        assert!(r.seen(
            "i",
            Family::SecurityEvent,
            &(MAX_REMEMBERED + 9).to_string(),
            0
        ));
    }
}
