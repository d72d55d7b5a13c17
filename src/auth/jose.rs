//! JOSE rules jsonwebtoken does not keep, checked on the token's own bytes
//! before its signature is verified:
//!
//! - a header with `crit` is refused (RFC 7515 §4.1.11: a recipient MUST
//!   reject a token whose critical extensions it does not understand; this
//!   proxy understands none, and an empty or malformed `crit` is invalid);
//! - a header or claims object that names a member twice is refused, rather
//!   than letting the last one win (RFC 7515 §4 / RFC 7519 §4: a parser that
//!   takes the first would see a different token).

use super::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// Checks the header and the claims of a compact JWS.
pub fn check(token: &str) -> Result<(), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::invalid("malformed token"));
    };
    let header = decode(header)?;
    if members(&header)?.iter().any(|m| m == "crit") {
        return Err(AuthError::invalid(
            "critical header extensions are not supported",
        ));
    }
    members(&decode(claims)?)?;
    Ok(())
}

/// The `iss` a compact JWS claims, read before anything is verified: only
/// to choose whose keys verify it; nothing else may rest on it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let claims = decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&claims).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

fn decode(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::invalid("malformed token"))
}

/// The member names of a JSON object; a name given twice is an error.
fn members(json: &[u8]) -> Result<Vec<String>, AuthError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let names = de.deserialize_map(Names).map_err(|e| {
        if e.to_string().starts_with(DUPLICATE) {
            AuthError::invalid("a header or claim member is given twice")
        } else {
            AuthError::invalid("malformed token")
        }
    })?;
    de.end()
        .map_err(|_| AuthError::invalid("malformed token"))?;
    Ok(names)
}

const DUPLICATE: &str = "duplicate member";

struct Names;

impl<'de> Visitor<'de> for Names {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut names: Vec<String> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if names.contains(&name) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}: {name}")));
            }
            map.next_value::<IgnoredAny>()?;
            names.push(name);
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn plain_tokens_pass() {
        assert_eq!(
            check(&token(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"sub":"a"}"#)),
            Ok(())
        );
    }

    #[test]
    fn crit_in_any_form_is_refused() {
        for h in [
            r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":"b64"}"#,
        ] {
            assert!(check(&token(h, "{}")).is_err(), "{h}");
        }
    }

    #[test]
    fn duplicated_members_are_refused() {
        assert!(check(&token(r#"{"alg":"HS256","alg":"none"}"#, "{}")).is_err());
        assert!(check(&token(r#"{"alg":"HS256"}"#, r#"{"sub":"a","sub":"b"}"#)).is_err());
        // Same name at different depths is fine.
        assert_eq!(
            check(&token(
                r#"{"alg":"HS256"}"#,
                r#"{"sub":"a","x":{"sub":"b"}}"#
            )),
            Ok(())
        );
    }

    #[test]
    fn junk_is_malformed() {
        for t in [
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            &token("[1]", "{}"),
            &token("{}", "{} x"),
        ] {
            assert!(check(t).is_err(), "{t}");
        }
    }
}
