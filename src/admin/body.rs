//! The API's request bodies read whole into typed requests before anything
//! is written: a body with an unknown field, a wrong type or a bad lifetime
//! is refused as a whole (400), never half applied. Plain values in, no I/O.

use crate::claims::ClaimValue;
use serde_json::{Map, Value};

/// What is wrong with a body, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<&str> for Invalid {
    fn from(s: &str) -> Invalid {
        Invalid(s.to_string())
    }
}

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.0
    }
}

/// What a valid `/v1/purge` body asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Purge {
    Subject(ClaimValue),
    All,
}

/// Reads a whole `/v1/purge` body (`subject_name` is `revocation.subject_claim`):
/// the target and the optional lifetime, or what is wrong with it.
pub fn parse_purge(body: Value, subject_name: &str) -> Result<(Purge, Option<i64>), Invalid> {
    let (mut obj, lifetime) = object_and_lifetime(body)?;
    let all = obj.remove("all");
    let target = match (all, obj.contains_key(subject_name)) {
        (Some(Value::Bool(true)), false) => Purge::All,
        (Some(Value::Bool(true)), true) => {
            return Err(format!("give {subject_name:?} or \"all\": true, not both").into())
        }
        (Some(_), _) => return Err("\"all\" must be true".into()),
        (None, true) => Purge::Subject(claim(&mut obj, subject_name)?),
        (None, false) => return Err(format!("give {subject_name:?} or \"all\": true").into()),
    };
    if let Some(k) = obj.keys().next() {
        return Err(format!(
            "unknown field {k:?} (give {subject_name:?} or \"all\", and \"lifetime\")"
        )
        .into());
    }
    Ok((target, lifetime))
}

/// Reads a Global Token Revocation body: `{"sub_id": {"format": "iss_sub",
/// "iss": …, "sub": …}}` or `{"sub_id": {"format": "opaque", "id": …}}`
/// (RFC 9493 subject identifiers); the subject whose tokens go. With
/// `issuer` (`jwt.issuer`) set, an `iss_sub` of another issuer names
/// someone else and is refused.
pub fn parse_global_revocation(body: Value, issuer: Option<&str>) -> Result<ClaimValue, Invalid> {
    let Value::Object(mut obj) = body else {
        return Err("body must be a JSON object".into());
    };
    let Some(Value::Object(mut id)) = obj.remove("sub_id") else {
        return Err("give \"sub_id\": {\"format\": \"iss_sub\", \"iss\": …, \"sub\": …}".into());
    };
    if let Some(k) = obj.keys().next() {
        return Err(format!("unknown field {k:?} next to \"sub_id\"").into());
    }
    let format = match id.remove("format") {
        Some(Value::String(f)) => f,
        _ => return Err("sub_id needs a \"format\" string".into()),
    };
    let subject = match format.as_str() {
        "iss_sub" => {
            match id.remove("iss") {
                Some(Value::String(i)) if issuer.is_some_and(|mine| mine != i) => {
                    return Err(
                        "iss is not this proxy's jwt.issuer: that subject is another issuer's"
                            .into(),
                    )
                }
                Some(Value::String(i)) if !i.is_empty() => {}
                _ => return Err("an iss_sub identifier needs \"iss\"".into()),
            }
            string_member(&mut id, "sub", "an iss_sub identifier")?
        }
        "opaque" => string_member(&mut id, "id", "an opaque identifier")?,
        other => {
            return Err(format!(
                "subject identifier format {other:?} is not supported (use iss_sub or opaque)"
            )
            .into())
        }
    };
    if let Some(k) = id.keys().next() {
        return Err(format!("unknown member {k:?} in a {format} identifier").into());
    }
    Ok(ClaimValue::Str(subject.into()))
}

fn string_member(obj: &mut Map<String, Value>, name: &str, what: &str) -> Result<String, Invalid> {
    match obj.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(format!("{what} needs a non-empty {name:?} string").into()),
    }
}

/// `application/x-www-form-urlencoded` pairs (also query strings).
pub fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = decode_form(it.next().unwrap_or_default());
            let v = decode_form(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn decode_form(raw: &[u8]) -> String {
    let plus: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// The body as a JSON object, with its optional `lifetime` taken out.
pub(super) fn object_and_lifetime(
    body: Value,
) -> Result<(Map<String, Value>, Option<i64>), Invalid> {
    let Value::Object(mut obj) = body else {
        return Err("body must be a JSON object".into());
    };
    let lifetime = take_lifetime(&mut obj)?;
    Ok((obj, lifetime))
}

/// Removes and checks the optional `lifetime` (positive whole seconds).
fn take_lifetime(obj: &mut Map<String, Value>) -> Result<Option<i64>, Invalid> {
    let bad = || Invalid("\"lifetime\" must be a positive whole number of seconds".into());
    match obj.remove("lifetime") {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) if secs > 0 && secs <= i64::MAX as u64 => Ok(Some(secs as i64)),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// Removes a required claim value (string or number).
pub(super) fn claim(obj: &mut Map<String, Value>, name: &str) -> Result<ClaimValue, Invalid> {
    match obj.remove(name) {
        None => Err(format!("missing {name:?}").into()),
        // An empty value names nobody: a caller's mistake, never a write.
        Some(Value::String(s)) if s.is_empty() => Err(format!("{name:?} is empty").into()),
        Some(v) => ClaimValue::from_json(&v)
            .ok_or_else(|| format!("{name:?} must be a string or a number").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_pairs(b"token=a%2Eb+c&token_type_hint=access_token"),
            vec![
                ("token".to_string(), "a.b c".to_string()),
                ("token_type_hint".to_string(), "access_token".to_string())
            ]
        );
    }

    #[test]
    fn purge_bodies_are_checked_whole() {
        assert_eq!(
            parse_purge(json!({"sub": "x", "lifetime": 60}), "sub"),
            Ok((Purge::Subject(ClaimValue::Str("x".into())), Some(60)))
        );
        assert_eq!(
            parse_purge(json!({"all": true}), "sub"),
            Ok((Purge::All, None))
        );
        for bad in [
            json!({"sub": "x", "liftime": 60}),
            json!({"all": true, "dry_run": true}),
            json!({"all": false}),
            json!({"all": true, "sub": "x"}),
            json!({}),
            json!([1]),
            json!({"sub": "x", "lifetime": -1}),
        ] {
            assert!(parse_purge(bad.clone(), "sub").is_err(), "{bad}");
        }
    }

    #[test]
    fn global_revocation_bodies_name_one_subject() {
        let alice = Ok(ClaimValue::Str("alice".into()));
        assert_eq!(
            parse_global_revocation(
                json!({"sub_id": {"format": "iss_sub", "iss": "https://idp", "sub": "alice"}}),
                Some("https://idp")
            ),
            alice
        );
        assert_eq!(
            parse_global_revocation(json!({"sub_id": {"format": "opaque", "id": "alice"}}), None),
            alice
        );
        // Another issuer's subject of the same name is someone else.
        assert!(parse_global_revocation(
            json!({"sub_id": {"format": "iss_sub", "iss": "https://other", "sub": "alice"}}),
            Some("https://idp")
        )
        .is_err());
        for bad in [
            json!({"sub_id": {"format": "email", "email": "a@example.com"}}),
            json!({"sub_id": {"format": "iss_sub", "sub": "alice"}}),
            json!({"sub_id": {"format": "iss_sub", "iss": "i", "sub": ""}}),
            json!({"sub_id": {"format": "opaque", "id": 7}}),
            json!({"sub_id": {"format": "opaque", "id": "a", "x": 1}}),
            json!({"sub_id": {"id": "a"}}),
            json!({"sub_id": "alice"}),
            json!({"sub": "alice"}),
            json!({"sub_id": {"format": "opaque", "id": "a"}, "extra": 1}),
        ] {
            assert!(parse_global_revocation(bad.clone(), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn lifetimes_must_be_positive_whole_seconds() {
        for (v, ok) in [
            (json!(60), true),
            (json!(0), false),
            (json!(-5), false),
            (json!(1.5), false),
            (json!("60"), false),
        ] {
            let mut m = Map::new();
            m.insert("lifetime".into(), v.clone());
            assert_eq!(take_lifetime(&mut m).is_ok(), ok, "{v}");
        }
    }
}
