//! Claim values as revocation keys: a string and a number stay distinct, and
//! every value has one collision-free text form usable inside a store key.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::sync::LazyLock;
use xxhash_rust::xxh3::xxh3_128_with_secret;

/// Everything but `A-Z a-z 0-9 - . _ ~` is percent-encoded, so a fragment
/// never contains the `:` that separates key parts, nor a space.
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The value of a subject or token-id claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClaimValue {
    Str(Box<str>),
    /// A JSON number in its canonical text (`42`, `-7`, `1.5`).
    Num(Box<str>),
}

impl ClaimValue {
    /// Strings and numbers are usable as identifiers; other JSON types are not.
    pub fn from_json(v: &Value) -> Option<ClaimValue> {
        match v {
            Value::String(s) => Some(ClaimValue::Str(s.as_str().into())),
            Value::Number(n) => Some(ClaimValue::Num(n.to_string().into())),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ClaimValue::Str(s) => Value::String(s.to_string()),
            ClaimValue::Num(n) => serde_json::from_str(n).unwrap_or(Value::Null),
        }
    }

    /// `s<percent-encoded string>` or `n<number>`: the form used in store keys.
    pub fn fragment(&self) -> String {
        match self {
            ClaimValue::Str(s) => format!("s{}", utf8_percent_encode(s, FRAGMENT)),
            ClaimValue::Num(n) => format!("n{}", utf8_percent_encode(n, FRAGMENT)),
        }
    }

    /// Reads a [`ClaimValue::fragment`] back.
    pub fn from_fragment(f: &str) -> Option<ClaimValue> {
        let (tag, rest) = (f.get(..1)?, f.get(1..)?);
        if rest
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"-._~%".contains(&b)))
        {
            return None;
        }
        let text: Box<str> = percent_decode_str(rest).decode_utf8().ok()?.into();
        match tag {
            "s" => Some(ClaimValue::Str(text)),
            "n" => {
                let n: serde_json::Number = serde_json::from_str(&text).ok()?;
                Some(ClaimValue::Num(n.to_string().into()))
            }
            _ => None,
        }
    }

    /// The value as header text (strings as they are, numbers written out).
    pub fn as_text(&self) -> &str {
        match self {
            ClaimValue::Str(s) | ClaimValue::Num(s) => s,
        }
    }
}

/// What names one verified token to the set and the stores: its subject,
/// its token id and, when it carries `revocation.session_claim`, its session.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    pub subject: &'a ClaimValue,
    pub token: &'a ClaimValue,
    pub session: Option<&'a ClaimValue>,
}

/// Hashed identity of one token for the in-memory set: 128-bit digests of the
/// subject fragment, of the (subject, token) pair and of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHashes {
    pub subject: u128,
    pub token: u128,
    /// The token id alone (entries that revoke a token id of any subject).
    pub token_id: u128,
    /// Absent for a token without the session claim.
    pub session: Option<u128>,
}

impl KeyHashes {
    pub fn new(subject: &ClaimValue, token: &ClaimValue) -> KeyHashes {
        KeyHashes {
            subject: subject_hash(subject),
            token: token_hash(subject, token),
            token_id: token_id_hash(token),
            session: None,
        }
    }

    /// The same with a session.
    pub fn with_session(mut self, session: Option<&ClaimValue>) -> KeyHashes {
        self.session = session.map(session_hash);
        self
    }
}

/// The key of the digests: random per process, drawn from the operating
/// system's generator (through std's `RandomState`). Digests never leave
/// the process — stores and the change log hold claim text — so no replica
/// needs another's, and nobody outside can choose values that collide.
static DIGEST_SECRET: LazyLock<[u8; 192]> = LazyLock::new(|| {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut secret = [0u8; 192];
    for (i, chunk) in secret.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    secret
});

fn digest(bytes: &[u8]) -> u128 {
    xxh3_128_with_secret(bytes, &DIGEST_SECRET[..])
}

/// A keyed 128-bit digest of a subject's identity.
pub fn subject_hash(subject: &ClaimValue) -> u128 {
    digest(subject.fragment().as_bytes())
}

/// A keyed 128-bit digest of a session's identity (`i:` keeps it apart
/// from a subject of the same value).
pub fn session_hash(session: &ClaimValue) -> u128 {
    digest(format!("i:{}", session.fragment()).as_bytes())
}

/// A keyed 128-bit digest of a token id alone (`j:` keeps it apart from a
/// pair, whose text starts with the subject's `s` or `n`).
pub fn token_id_hash(token: &ClaimValue) -> u128 {
    digest(format!("j:{}", token.fragment()).as_bytes())
}

/// A keyed 128-bit digest of a (subject, token id) pair.
pub fn token_hash(subject: &ClaimValue, token: &ClaimValue) -> u128 {
    digest(format!("{}:{}", subject.fragment(), token.fragment()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_numbers_are_distinct() {
        let s = ClaimValue::from_json(&json!("42")).unwrap();
        let n = ClaimValue::from_json(&json!(42)).unwrap();
        assert_ne!(s.fragment(), n.fragment());
        assert_ne!(subject_hash(&s), subject_hash(&n));
    }

    #[test]
    fn separators_in_values_cannot_collide() {
        let a = token_hash(&ClaimValue::Str("a:b".into()), &ClaimValue::Str("c".into()));
        let b = token_hash(&ClaimValue::Str("a".into()), &ClaimValue::Str("b:c".into()));
        assert_ne!(a, b);
        let f = ClaimValue::Str("x: y%z/ü".into()).fragment();
        assert!(!f.contains(':') && !f.contains(' '));
    }

    #[test]
    fn fragments_round_trip() {
        for v in [
            json!("a:b c%"),
            json!(""),
            json!(-12),
            json!(1.5),
            json!("ünï"),
        ] {
            let c = ClaimValue::from_json(&v).unwrap();
            assert_eq!(ClaimValue::from_fragment(&c.fragment()), Some(c.clone()));
            assert_eq!(c.to_json(), v);
        }
        assert_eq!(ClaimValue::from_fragment("x1"), None);
        assert_eq!(ClaimValue::from_fragment("sa:b"), None);
    }

    #[test]
    fn large_numbers_keep_one_text_form() {
        // Found by fuzzing: a float that did not survive its own text.
        let n: Value = serde_json::from_str("6.666666666666667e152").unwrap();
        let c = ClaimValue::from_json(&n).unwrap();
        assert_eq!(ClaimValue::from_fragment(&c.fragment()), Some(c));
    }

    #[test]
    fn other_json_types_are_not_identifiers() {
        for v in [json!(null), json!(true), json!([1]), json!({"a": 1})] {
            assert_eq!(ClaimValue::from_json(&v), None);
        }
    }
}
