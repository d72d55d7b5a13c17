//! `revocation.compat`: the records two Node libraries keep in Redis or
//! memcached, read as those libraries read them, so a team can put the
//! proxy in front of services that still use them and retire the library
//! later, without a flag day. Read-only: the proxy never writes them.
//!
//! * **express-jwt-blacklist 1.x** — a record per `key_prefix` + the
//!   token's `token_id` claim (default `jwt-blacklist:` + `sub`): in Redis a
//!   hash with `revoke` (the revoked `index_by` values, default `iat`, joined
//!   by commas) and `purge` (Unix seconds); in memcached the same as JSON.
//!   A token is refused when its `index_by` value is listed, or when the
//!   purge time is at or after its `iat`. A purge stores the second before it was made, so a token
//!   issued in the purge's own second stays valid (the library's rule).
//! * **jwt-redis 7.x** — an allow-list: the key `key_prefix` + `jti`
//!   (default `jwt_label:`) exists with a non-empty value while the token is
//!   live; `destroy` deletes it.
//!
//! Values are compared with JavaScript's rules (what the library does): a
//! Redis `revoke` part is a number when it reads as one (`parseInt`), else a
//! string, and matches only a claim of the same type.

use crate::config::Compat;
use serde_json::Value;

/// What the store holds at a compat key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    Missing,
    /// A Redis string.
    Value(Vec<u8>),
    /// A memcached value with its client flags (the Node client's: 2 JSON,
    /// 8 number, anything else a string).
    Flagged(u32, Vec<u8>),
    /// A Redis hash's fields.
    Hash(Vec<(String, String)>),
    /// A key of another Redis type than the library reads (`WRONGTYPE`).
    Other,
}

/// What a compat check needs from the store: a key and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub key: String,
    /// Read a Redis hash (`HGETALL`) rather than a string.
    pub hash: bool,
}

/// Why a token cannot be looked up the library's way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// The `token_id` / `index_by` / `jti` claim is missing or falsy: the
    /// library fails the request, so the proxy refuses the token.
    MissingClaim,
    /// A memcached key with whitespace: the library's read fails and it
    /// answers as for a token without a record (`strict`).
    NoRecord,
}

/// JavaScript's `String(value)` for a claim, `None` for what the library
/// treats as absent (missing, `null`, `false`, `0`, `""`).
fn js_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => {
            let f = n.as_f64()?;
            (f != 0.0).then(|| js_number_text(n))
        }
        Value::Bool(true) => Some("true".into()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    other => js_string(Some(other)).unwrap_or_else(|| match other {
                        Value::Bool(false) => "false".into(),
                        Value::Number(_) => "0".into(),
                        _ => String::new(),
                    }),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some("[object Object]".into()),
        _ => None,
    }
}

/// A JSON number as JavaScript prints it (integers without `.0`).
fn js_number_text(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// The key and read for this token, or why it cannot be checked.
pub fn read_for(
    compat: &Compat,
    claims: &[Option<Value>],
    memcached: bool,
) -> Result<Read, Unusable> {
    let (prefix, id, hash) = match compat {
        Compat::Blacklist { key_prefix, .. } => (key_prefix, claims.first(), !memcached),
        Compat::JwtRedis { key_prefix } => (key_prefix, claims.first(), false),
    };
    let id = js_string(id.and_then(Option::as_ref)).ok_or(Unusable::MissingClaim)?;
    if let Compat::Blacklist { .. } = compat {
        // The library also needs the index claim to be present.
        js_string(claims.get(1).and_then(Option::as_ref)).ok_or(Unusable::MissingClaim)?;
    }
    let mut key = format!("{prefix}{id}");
    if memcached {
        if key.chars().any(js_space) {
            return Err(Unusable::NoRecord);
        }
        // The Node memcached client reads a key over 250 characters (UTF-16
        // units) under the MD5 of the key.
        if key.encode_utf16().count() > 250 {
            use md5::{Digest, Md5};
            key = Md5::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        }
    }
    Ok(Read { key, hash })
}

/// JavaScript's `\s`: what the memcached client refuses in a key.
fn js_space(c: char) -> bool {
    c.is_whitespace() && c != '\u{85}' || c == '\u{feff}'
}

/// A leading sign, as a factor, and the rest.
fn split_sign(t: &str) -> (f64, &str) {
    if let Some(rest) = t.strip_prefix('-') {
        (-1.0, rest)
    } else {
        (1.0, t.strip_prefix('+').unwrap_or(t))
    }
}

/// JavaScript's `Number(text)` (NaN as `None`).
fn js_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    let (sign, digits) = split_sign(t);
    if digits == "Infinity" {
        return Some(sign * f64::INFINITY);
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return u64::from_str_radix(rest, radix).ok().map(|n| n as f64);
        }
    }
    let decimal = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !decimal || !digits.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<f64>().ok().map(|f| sign * f)
}

/// JavaScript's `parseInt(text, 10)` (NaN as `None`).
fn js_parse_int(text: &str) -> Option<f64> {
    let t = text.trim_start();
    let (sign, rest) = split_sign(t);
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let digits = rest.get(..end).filter(|d| !d.is_empty())?;
    digits.parse::<f64>().ok().map(|f| sign * f)
}

/// One listed value, typed as the library reads it back.
#[derive(Debug, Clone, PartialEq)]
enum Listed {
    Num(f64),
    Str(String),
    Bool(bool),
}

impl Listed {
    /// The library's `isNaN(p) ? p : parseInt(p, 10)`.
    fn from_redis(part: &str) -> Listed {
        match js_number(part) {
            None => Listed::Str(part.to_string()),
            Some(_) => Listed::Num(js_parse_int(part).unwrap_or(f64::NAN)),
        }
    }

    fn from_json(v: &Value) -> Option<Listed> {
        match v {
            Value::Number(n) => n.as_f64().map(Listed::Num),
            Value::String(s) => Some(Listed::Str(s.clone())),
            Value::Bool(b) => Some(Listed::Bool(*b)),
            _ => None,
        }
    }

    /// `===` against a claim.
    fn is(&self, claim: &Value) -> bool {
        match (self, claim) {
            (Listed::Num(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Listed::Str(a), Value::String(b)) => a == b,
            (Listed::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// JavaScript's `purge >= iat` for a purge read from the store (`null`
/// counts as 0, booleans as 0 and 1, a missing `iat` never compares).
fn purged(purge: Option<f64>, iat: Option<&Value>) -> bool {
    let iat = match iat {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => js_number(s),
        Some(Value::Null) => Some(0.0),
        Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    matches!((purge, iat), (Some(p), Some(i)) if p >= i)
}

/// The library's view of a memcached value: `None` when it is falsy (no
/// record), else the record object when it is one (other values list and
/// purge nothing).
fn memcached_record(flags: u32, bytes: &[u8]) -> Option<Option<serde_json::Map<String, Value>>> {
    let value = match flags {
        2 => serde_json::from_slice::<Value>(bytes).ok()?,
        8 => Value::from(js_number(&String::from_utf8_lossy(bytes)).unwrap_or(0.0)),
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    };
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) if n.as_f64().is_none_or(|f| f == 0.0) => None,
        Value::Object(m) => Some(Some(m)),
        _ => Some(None),
    }
}

/// Whether the token is refused, from what the store holds.
pub fn refused(compat: &Compat, claims: &[Option<Value>], found: &Foreign) -> bool {
    match compat {
        Compat::JwtRedis { .. } => !matches!(found, Foreign::Value(v) if !v.is_empty()),
        Compat::Blacklist { strict, .. } => {
            let index = claims.get(1).and_then(Option::as_ref);
            let iat = claims.get(2).and_then(Option::as_ref);
            let (listed, purge): (Vec<Listed>, Option<f64>) = match found {
                Foreign::Missing => return *strict,
                Foreign::Hash(fields) if fields.is_empty() => return *strict,
                Foreign::Hash(fields) => {
                    let field = |name: &str| {
                        fields
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.as_str())
                    };
                    let listed = field("revoke")
                        .filter(|r| !r.is_empty())
                        .map(|r| r.split(',').map(Listed::from_redis).collect())
                        .unwrap_or_default();
                    (listed, field("purge").and_then(js_number))
                }
                Foreign::Other => return *strict,
                Foreign::Value(bytes) | Foreign::Flagged(_, bytes) => {
                    let flags = match found {
                        Foreign::Flagged(f, _) => *f,
                        _ => 2,
                    };
                    let Some(record) = memcached_record(flags, bytes) else {
                        return *strict;
                    };
                    let Some(record) = record else {
                        return false;
                    };
                    let listed = record
                        .get("revoke")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Listed::from_json).collect())
                        .unwrap_or_default();
                    let purge = match record.get("purge") {
                        Some(Value::Number(n)) => n.as_f64(),
                        Some(Value::String(s)) => js_number(s),
                        Some(Value::Null) => Some(0.0),
                        Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
                        _ => None,
                    };
                    (listed, purge)
                }
            };
            let revoked = index.is_some_and(|i| listed.iter().any(|l| l.is(i)));
            revoked || purged(purge, iat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blacklist() -> Compat {
        Compat::Blacklist {
            key_prefix: "jwt-blacklist:".into(),
            token_id: "sub".into(),
            index_by: "iat".into(),
            strict: false,
        }
    }

    fn hash(revoke: &str, purge: &str) -> Foreign {
        let mut f = Vec::new();
        if !revoke.is_empty() {
            f.push(("revoke".to_string(), revoke.to_string()));
        }
        if !purge.is_empty() {
            f.push(("purge".to_string(), purge.to_string()));
        }
        Foreign::Hash(f)
    }

    #[test]
    fn keys_follow_javascript_string_conversion() {
        let c = blacklist();
        let read = read_for(&c, &[Some(json!("alice")), Some(json!(5)), None], false);
        assert_eq!(read.map(|r| r.key), Ok("jwt-blacklist:alice".into()));
        let read = read_for(&c, &[Some(json!(42)), Some(json!(5)), None], false);
        assert_eq!(read.map(|r| r.key), Ok("jwt-blacklist:42".into()));
        for missing in [None, Some(json!("")), Some(json!(0)), Some(json!(null))] {
            assert_eq!(
                read_for(&c, &[missing, Some(json!(5)), None], false),
                Err(Unusable::MissingClaim)
            );
        }
        let long = "x".repeat(300);
        let hashed = read_for(&c, &[Some(json!(long)), Some(json!(5)), None], true);
        assert_eq!(
            hashed.map(|r| r.key.len()),
            Ok(32),
            "MD5 hex, as the Node client"
        );
        assert_eq!(
            read_for(&c, &[Some(json!("a b")), Some(json!(5)), None], true),
            Err(Unusable::NoRecord)
        );
        let arr = read_for(&c, &[Some(json!(["x", 1])), Some(json!(5)), None], false);
        assert_eq!(arr.map(|r| r.key), Ok("jwt-blacklist:x,1".into()));
    }

    #[test]
    fn the_same_second_rule_and_typed_matches() {
        let c = blacklist();
        let claims = |iat: Value| vec![Some(json!("a")), Some(iat.clone()), Some(iat)];
        // purge stored as the second before: iat == purge refused, +1 kept.
        assert!(refused(&c, &claims(json!(100)), &hash("", "100")));
        assert!(!refused(&c, &claims(json!(101)), &hash("", "100")));
        assert!(refused(&c, &claims(json!(7)), &hash("5,7", "")));
        assert!(!refused(&c, &claims(json!(8)), &hash("5,7", "")));
        // "123" reads back as the number 123: a string claim never matches.
        let c2 = Compat::Blacklist {
            key_prefix: "p:".into(),
            token_id: "sub".into(),
            index_by: "jti".into(),
            strict: false,
        };
        let with_jti = |jti: Value| vec![Some(json!("a")), Some(jti), Some(json!(1))];
        assert!(!refused(&c2, &with_jti(json!("123")), &hash("123", "")));
        assert!(refused(&c2, &with_jti(json!(123)), &hash("123", "")));
        assert!(refused(&c2, &with_jti(json!("ab-1")), &hash("x,ab-1", "")));
        // memcached keeps JSON types.
        let json_record = Foreign::Flagged(2, br#"{"revoke":["123"],"purge":50}"#.to_vec());
        assert!(refused(&c2, &with_jti(json!("123")), &json_record));
        assert!(refused(&c, &claims(json!(50)), &json_record));
        assert!(!refused(&c, &claims(json!(51)), &json_record));
        // A falsy memcached value is no record; a string one lists nothing.
        assert!(!refused(
            &c,
            &claims(json!(1)),
            &Foreign::Flagged(2, b"null".to_vec())
        ));
        assert!(!refused(
            &c,
            &claims(json!(1)),
            &Foreign::Flagged(0, b"text".to_vec())
        ));
        // iat null compares as 0.
        assert!(refused(
            &c2,
            &[Some(json!("a")), Some(json!("z")), Some(json!(null))],
            &hash("", "5")
        ));
        // No record: strict decides.
        assert!(!refused(&c, &claims(json!(1)), &Foreign::Missing));
        let strict = Compat::Blacklist {
            key_prefix: "p:".into(),
            token_id: "sub".into(),
            index_by: "iat".into(),
            strict: true,
        };
        assert!(refused(&strict, &claims(json!(1)), &Foreign::Missing));
        assert!(refused(
            &strict,
            &claims(json!(1)),
            &Foreign::Flagged(2, b"0".to_vec())
        ));
        assert!(refused(&strict, &claims(json!(1)), &Foreign::Other));
    }

    #[test]
    fn jwt_redis_is_an_allow_list() {
        let c = Compat::JwtRedis {
            key_prefix: "jwt_label:".into(),
        };
        assert_eq!(
            read_for(&c, &[Some(json!("k1"))], false).map(|r| r.key),
            Ok("jwt_label:k1".into())
        );
        assert_eq!(read_for(&c, &[None], false), Err(Unusable::MissingClaim));
        assert!(!refused(&c, &[], &Foreign::Value(b"true".to_vec())));
        assert!(!refused(&c, &[], &Foreign::Value(b"0".to_vec())));
        assert!(refused(&c, &[], &Foreign::Value(Vec::new())));
        assert!(refused(&c, &[], &Foreign::Missing));
    }

    #[test]
    fn javascript_number_rules() {
        assert_eq!(Listed::from_redis("123"), Listed::Num(123.0));
        assert_eq!(Listed::from_redis("1.5"), Listed::Num(1.0));
        assert_eq!(Listed::from_redis("12abc"), Listed::Str("12abc".into()));
        assert_eq!(js_number(" 42 "), Some(42.0));
        assert_eq!(js_number("0x10"), Some(16.0));
        assert_eq!(js_number("inf"), None);
        assert_eq!(js_number("nan"), None);
    }
}
