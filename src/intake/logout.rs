//! OpenID Connect Back-Channel Logout 1.0: the identity provider POSTs
//! `logout_token=<jwt>` as a form; the token is checked like an ID token
//! plus the rules of the logout token (§2.4, §2.6), and becomes a session
//! entry (`sid`) or a subject cutoff at its `iat` (`sub` only).

use super::signal::{string_claim, typ_matches, Rejection, Signal};
use super::Change;
use crate::claims::ClaimValue;
use serde_json::Value;

/// The event a logout token must carry.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The `logout_token` of a form body: exactly one, non-empty.
pub fn token_of_form(body: &[u8]) -> Result<String, Rejection> {
    let text =
        std::str::from_utf8(body).map_err(|_| Rejection::request("the body is not UTF-8"))?;
    let mut found = None;
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(name)? != "logout_token" {
            continue;
        }
        if found.is_some() {
            return Err(Rejection::request("logout_token is given more than once"));
        }
        found = Some(form_decode(value)?);
    }
    match found {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(Rejection::request("the form has no logout_token")),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Result<String, Rejection> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Rejection::request("the form is not UTF-8"))
}

/// The logout token's own rules, after [`super::signal::verify`].
pub fn change(signal: &Signal, accept_typ: &[String]) -> Result<Change, Rejection> {
    if let Some(typ) = signal.header.typ.as_deref() {
        if !typ_matches(Some(typ), accept_typ) {
            return Err(Rejection::request(format!(
                "typ {typ:?} is not accepted for logout tokens"
            )));
        }
    }
    let claims = &signal.claims;
    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(Rejection::request("the logout event must be a JSON object")),
            None => {
                return Err(Rejection::request(
                    "events lacks the back-channel logout event",
                ))
            }
        },
        Some(_) => return Err(Rejection::request("events must be a JSON object")),
        None => return Err(Rejection::request("events is required")),
    }
    if claims.contains_key("nonce") {
        return Err(Rejection::request("a logout token must not contain nonce"));
    }
    if string_claim(claims, "jti")?.is_none() {
        return Err(Rejection::request("jti is required"));
    }
    let sid = string_claim(claims, "sid")?;
    let sub = match claims.get("sub") {
        None => None,
        Some(v) => Some(
            ClaimValue::from_json(v)
                .filter(|c| !c.as_text().is_empty())
                .ok_or_else(|| Rejection::request("sub must be a non-empty string"))?,
        ),
    };
    match (sid, sub) {
        (Some(sid), _) => Ok(Change::Session(ClaimValue::Str(sid.into()))),
        (None, Some(sub)) => Ok(Change::SubjectAt(sub, signal.iat)),
        (None, None) => Err(Rejection::request("a logout token needs sub or sid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_takes_exactly_one_token() {
        assert_eq!(token_of_form(b"logout_token=a.b.c").unwrap(), "a.b.c");
        assert_eq!(
            token_of_form(b"x=1&logout%5Ftoken=a%2Eb.c&y").unwrap(),
            "a.b.c"
        );
        assert!(token_of_form(b"logout_token=a&logout_token=b").is_err());
        assert!(token_of_form(b"logout_token=").is_err());
        assert!(token_of_form(b"other=1").is_err());
        assert!(token_of_form(b"logout_token=%ff").is_err());
        assert!(token_of_form(&[0xff, 0xfe]).is_err());
    }
}
