//! The key layout shared by the redis and memcached stores (documented in the
//! README so a backend can write revocations directly):
//!
//! | entry | key | value |
//! |---|---|---|
//! | token | `{prefix}t:{subject}:{token}` | `{until}` |
//! | subject cutoff | `{prefix}s:{subject}` | `{cutoff} {until}` |
//! | session | `{prefix}i:{session}` | `{until}` |
//! | token id (any subject) | `{prefix}j:{token}` | `{until}` |
//! | global cutoff | `{prefix}g` | `{cutoff} {until}` |
//!
//! `{subject}`, `{token}` and `{session}` are claim fragments (`s` + percent-encoded string,
//! or `n` + number), so they never contain `:` or a space. Times are Unix
//! seconds; each key expires at its `until`. The redis change log that
//! carries every write to the replicas is described in `redis::log`.

use crate::claims::ClaimValue;
use crate::revocation::model::{Entry, TokenRef};
use std::fmt::Write as _;

pub fn token_key(prefix: &str, subject: &ClaimValue, token: &ClaimValue) -> String {
    format!("{prefix}t:{}:{}", subject.fragment(), token.fragment())
}

pub fn subject_key(prefix: &str, subject: &ClaimValue) -> String {
    format!("{prefix}s:{}", subject.fragment())
}

pub fn session_key(prefix: &str, session: &ClaimValue) -> String {
    format!("{prefix}i:{}", session.fragment())
}

pub fn token_id_key(prefix: &str, token: &ClaimValue) -> String {
    format!("{prefix}j:{}", token.fragment())
}

pub fn global_key(prefix: &str) -> String {
    format!("{prefix}g")
}

/// The keys that could reject a token: its token entry, its token id's
/// entry, its subject's cutoff, the global cutoff and, when it names one,
/// its session's entry (per-request lookups read exactly these).
pub fn candidates(prefix: &str, id: &TokenRef<'_>) -> Vec<String> {
    let mut keys = vec![
        token_key(prefix, id.subject, id.token),
        subject_key(prefix, id.subject),
        global_key(prefix),
        token_id_key(prefix, id.token),
    ];
    if let Some(session) = id.session {
        keys.push(session_key(prefix, session));
    }
    keys
}

/// The key an entry is stored under.
pub fn key_of(prefix: &str, entry: &Entry) -> String {
    match entry {
        Entry::Token { subject, token, .. } => token_key(prefix, subject, token),
        Entry::Subject { subject, .. } => subject_key(prefix, subject),
        Entry::Session { session, .. } => session_key(prefix, session),
        Entry::TokenId { token, .. } => token_id_key(prefix, token),
        Entry::Global { .. } => global_key(prefix),
    }
}

/// The value an entry is stored as.
pub fn value_of(entry: &Entry) -> String {
    let mut v = String::new();
    match entry {
        Entry::Token { until, .. }
        | Entry::Session { until, .. }
        | Entry::TokenId { until, .. } => {
            let _ = write!(v, "{until}");
        }
        Entry::Subject { cutoff, until, .. } | Entry::Global { cutoff, until } => {
            let _ = write!(v, "{cutoff} {until}");
        }
    }
    v
}

/// The `(cutoff, until)` of a stored value; a token value has no cutoff.
pub fn parse_value(value: &str) -> Option<(Option<i64>, i64)> {
    let mut parts = value.trim().split(' ');
    let first: i64 = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((None, first)),
        Some(u) => {
            let until: i64 = u.parse().ok()?;
            parts.next().is_none().then_some((Some(first), until))
        }
    }
}

/// Reads an entry back from its key and value; `None` for foreign keys.
pub fn entry_from(prefix: &str, key: &str, value: &str) -> Option<Entry> {
    let rest = key.strip_prefix(prefix)?;
    let (cutoff, until) = parse_value(value)?;
    if rest == "g" {
        return Some(Entry::Global {
            cutoff: cutoff?,
            until,
        });
    }
    if let Some(subject) = rest.strip_prefix("s:") {
        return Some(Entry::Subject {
            subject: ClaimValue::from_fragment(subject)?,
            cutoff: cutoff?,
            until,
        });
    }
    if cutoff.is_some() {
        return None;
    }
    if let Some(session) = rest.strip_prefix("i:") {
        return Some(Entry::Session {
            session: ClaimValue::from_fragment(session)?,
            until,
        });
    }
    if let Some(token) = rest.strip_prefix("j:") {
        return Some(Entry::TokenId {
            token: ClaimValue::from_fragment(token)?,
            until,
        });
    }
    let (subject, token) = rest.strip_prefix("t:")?.split_once(':')?;
    Some(Entry::Token {
        subject: ClaimValue::from_fragment(subject)?,
        token: ClaimValue::from_fragment(token)?,
        until,
    })
}

/// Merges a stored value with a new entry's value: the later of each time.
pub fn merge_values(stored: Option<&str>, entry: &Entry) -> String {
    let Some((cutoff, until)) = stored.and_then(parse_value) else {
        return value_of(entry);
    };
    let mut merged = entry.clone();
    match &mut merged {
        Entry::Token { until: u, .. }
        | Entry::Session { until: u, .. }
        | Entry::TokenId { until: u, .. } => *u = (*u).max(until),
        Entry::Subject {
            cutoff: c,
            until: u,
            ..
        }
        | Entry::Global {
            cutoff: c,
            until: u,
        } => {
            *u = (*u).max(until);
            *c = (*c).max(cutoff.unwrap_or(i64::MIN));
        }
    }
    value_of(&merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_key_and_value() {
        let p = "rp:";
        let entries = [
            Entry::Token {
                subject: ClaimValue::Str("a:b c".into()),
                token: ClaimValue::Num("42".into()),
                until: 1_700_000_000,
            },
            Entry::Subject {
                subject: ClaimValue::Str("alice".into()),
                cutoff: 1_600_000_000,
                until: 1_700_000_000,
            },
            Entry::Session {
                session: ClaimValue::Str("sess/1".into()),
                until: 1_700_000_000,
            },
            Entry::TokenId {
                token: ClaimValue::Str("jti:9".into()),
                until: 1_700_000_000,
            },
            Entry::Global {
                cutoff: 5,
                until: 9,
            },
        ];
        for e in entries {
            let key = key_of(p, &e);
            assert_eq!(entry_from(p, &key, &value_of(&e)), Some(e.clone()), "{key}");
        }
        assert_eq!(entry_from(p, "other:g", "1 2"), None);
        assert_eq!(entry_from(p, "rp:t:sa:sb", "1 2"), None);
        assert_eq!(entry_from(p, "rp:s:sa", "1"), None);
        assert_eq!(entry_from(p, "rp:i:sa", "1 2"), None);
        assert_eq!(entry_from(p, "rp:t:sa:sb", "x"), None);
    }

    #[test]
    fn merged_values_never_shorten() {
        let e = Entry::Subject {
            subject: ClaimValue::Str("u".into()),
            cutoff: 50,
            until: 90,
        };
        assert_eq!(merge_values(Some("60 80"), &e), "60 90");
        assert_eq!(merge_values(None, &e), "50 90");
        assert_eq!(merge_values(Some("garbage"), &e), "50 90");
        let t = Entry::Token {
            subject: ClaimValue::Str("u".into()),
            token: ClaimValue::Str("j".into()),
            until: 10,
        };
        assert_eq!(merge_values(Some("20"), &t), "20");
    }
}
