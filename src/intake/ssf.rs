//! OpenID Shared Signals Framework 1.0 with CAEP 1.0: Security Event Tokens
//! (RFC 8417) pushed to us (RFC 8935). After [`super::signal::verify`], a
//! SET must be typed `secevent+jwt`, carry a `jti`, no top-level `sub` or
//! `exp`, and exactly one event; that event becomes at most one
//! revocation, at the event's own time (`event_timestamp`, else the SET's
//! `iat`). Events that ask for nothing we can enforce are accepted and
//! logged, never refused: a transmitter must not retry them forever.

use super::signal::{string_claim, typ_matches, Rejection, Signal};
use super::Change;
use crate::auth::keyset::numeric_date;
use crate::claims::ClaimValue;
use serde_json::{Map, Value};

/// CAEP: every token of a session (or of a user) must stop working.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a credential changed; a password change ends the user's tokens.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// SSF: the transmitter checks that the stream works.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The `typ` a SET must carry (RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// What one SET asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A revocation to write.
    Revoke(Change),
    /// Accepted, nothing to write; the words say why (for the log).
    Nothing(&'static str),
}

/// A checked SET: its `jti` and what its one event asks for.
#[derive(Debug)]
pub struct Set {
    pub jti: String,
    /// The event type URI (for the log).
    pub event_type: String,
    pub event: Event,
}

/// The SET rules of SSF/CAEP for a signal whose signature, `iss`, `aud` and
/// `iat` are already checked. `subject_issuer` is the `iss` the proxy's
/// own tokens carry (`jwt.issuer`), when it checks one.
pub fn read(
    signal: &Signal,
    now: i64,
    leeway: i64,
    subject_issuer: Option<&str>,
) -> Result<Set, Rejection> {
    if !typ_matches(signal.header.typ.as_deref(), &[SET_TYP]) {
        return Err(Rejection::request("typ must be secevent+jwt"));
    }
    let claims = &signal.claims;
    let jti = string_claim(claims, "jti")?
        .ok_or_else(|| Rejection::request("jti is required"))?
        .to_string();
    if claims.contains_key("sub") {
        return Err(Rejection::request(
            "a SET must not carry sub at the top level (use sub_id)",
        ));
    }
    if claims.contains_key("exp") {
        return Err(Rejection::request("a SET must not carry exp"));
    }
    let (event_type, payload) = one_event(claims)?;
    let at = match numeric_date(payload, "event_timestamp") {
        Ok(Some(t)) => t,
        Ok(None) => signal.iat,
        Err(_) => return Err(Rejection::request("event_timestamp must be a NumericDate")),
    };
    if at > now.saturating_add(leeway) {
        return Err(Rejection::request("event_timestamp is in the future"));
    }
    let subject = payload.get("subject").or_else(|| claims.get("sub_id"));
    let event = match event_type.as_str() {
        SESSION_REVOKED => on_subject(subject, at, subject_issuer),
        CREDENTIAL_CHANGE => match payload.get("credential_type").and_then(Value::as_str) {
            Some("password") => on_subject(subject, at, subject_issuer),
            Some(_) => Event::Nothing("a credential other than a password changed"),
            None => return Err(Rejection::request("credential_type is required")),
        },
        VERIFICATION => Event::Nothing("stream verification"),
        _ => Event::Nothing("event type not handled"),
    };
    Ok(Set {
        jti,
        event_type,
        event,
    })
}

/// The one member of `events`, which must be a JSON object.
fn one_event(claims: &Map<String, Value>) -> Result<(String, &Map<String, Value>), Rejection> {
    let events = match claims.get("events") {
        Some(Value::Object(events)) => events,
        Some(_) => return Err(Rejection::request("events must be a JSON object")),
        None => return Err(Rejection::request("events is required")),
    };
    let mut members = events.iter();
    match (members.next(), members.next()) {
        (Some((name, Value::Object(payload))), None) => Ok((name.clone(), payload)),
        (Some(_), None) => Err(Rejection::request("the event must be a JSON object")),
        (None, _) => Err(Rejection::request("events holds no event")),
        (Some(_), Some(_)) => Err(Rejection::request("a SET must hold exactly one event")),
    }
}

/// The revocation a subject identifier (RFC 9493) asks for: a session when
/// it names one, else the user's tokens issued before `at`.
fn on_subject(subject: Option<&Value>, at: i64, subject_issuer: Option<&str>) -> Event {
    let Some(Value::Object(subject)) = subject else {
        return Event::Nothing("the event names no subject");
    };
    if subject.get("format").and_then(Value::as_str) == Some("jwt_id") {
        return match token_id(subject, subject_issuer) {
            Ok(id) => Event::Revoke(Change::TokenId(id)),
            Err(why) => Event::Nothing(why),
        };
    }
    if let Some(Value::Object(session)) = subject.get("session") {
        return match simple(session, subject_issuer) {
            Ok(id) => Event::Revoke(Change::Session(id)),
            Err(why) => Event::Nothing(why),
        };
    }
    let user = match subject.get("user") {
        Some(Value::Object(user)) => user,
        _ => subject,
    };
    match simple(user, subject_issuer) {
        Ok(id) => Event::Revoke(Change::SubjectAt(id, at)),
        Err(why) => Event::Nothing(why),
    }
}

/// The claim value a simple subject identifier names: `opaque` `{id}`, or
/// `iss_sub` `{iss, sub}` when `iss` is the issuer of the proxy's tokens
/// (or the proxy checks none).
fn simple(
    id: &Map<String, Value>,
    subject_issuer: Option<&str>,
) -> Result<ClaimValue, &'static str> {
    let text = |name: &str| {
        id.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| ClaimValue::Str(s.into()))
    };
    match id.get("format").and_then(Value::as_str) {
        Some("opaque") => text("id").ok_or("an opaque subject needs id"),
        Some("iss_sub") => {
            let iss = id.get("iss").and_then(Value::as_str);
            if subject_issuer.is_some_and(|want| iss != Some(want)) {
                return Err("the subject's iss is not the issuer of the proxy's tokens");
            }
            text("sub").ok_or("an iss_sub subject needs sub")
        }
        Some("jwt_id") => Err("a jwt_id names a token, not a user or session"),
        _ => Err("subject format not handled"),
    }
}

/// The token id a `jwt_id` subject `{iss, jti}` names, when `iss` is the
/// issuer of the proxy's tokens (or the proxy checks none).
fn token_id(
    id: &Map<String, Value>,
    subject_issuer: Option<&str>,
) -> Result<ClaimValue, &'static str> {
    let iss = id.get("iss").and_then(Value::as_str);
    if iss.is_none() {
        return Err("a jwt_id subject needs iss");
    }
    if subject_issuer.is_some_and(|want| iss != Some(want)) {
        return Err("the subject's iss is not the issuer of the proxy's tokens");
    }
    id.get("jti")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| ClaimValue::Str(s.into()))
        .ok_or("a jwt_id subject needs jti")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signal(claims: Value, typ: Option<&str>) -> Signal {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = typ.map(str::to_string);
        let claims = match claims {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Signal {
            issuer: 0,
            header,
            iat: 1000,
            exp: None,
            claims,
        }
    }

    fn event(ty: &str, payload: Value) -> Value {
        json!({"iss": "i", "aud": "a", "iat": 1000, "jti": "j1", "events": { ty: payload }})
    }

    fn read_one(claims: Value) -> Result<Set, Rejection> {
        read(
            &signal(claims, Some("secevent+jwt")),
            2000,
            5,
            Some("https://idp"),
        )
    }

    #[test]
    fn session_revoked_maps_each_subject_format() {
        let at = |s: Value| {
            read_one(event(
                SESSION_REVOKED,
                json!({"subject": s, "event_timestamp": 1500}),
            ))
            .map(|s| s.event)
        };
        let s = |v: &str| ClaimValue::Str(v.into());
        assert_eq!(
            at(json!({"format": "opaque", "id": "u1"})),
            Ok(Event::Revoke(Change::SubjectAt(s("u1"), 1500)))
        );
        assert_eq!(
            at(json!({"format": "iss_sub", "iss": "https://idp", "sub": "u2"})),
            Ok(Event::Revoke(Change::SubjectAt(s("u2"), 1500)))
        );
        assert!(matches!(
            at(json!({"format": "iss_sub", "iss": "https://other", "sub": "u2"})),
            Ok(Event::Nothing(_))
        ));
        assert_eq!(
            at(
                json!({"format": "complex", "user": {"format": "opaque", "id": "u3"},
                "session": {"format": "opaque", "id": "s3"}})
            ),
            Ok(Event::Revoke(Change::Session(s("s3"))))
        );
        assert_eq!(
            at(json!({"format": "jwt_id", "iss": "https://idp", "jti": "t"})),
            Ok(Event::Revoke(Change::TokenId(s("t"))))
        );
        assert!(matches!(
            at(json!({"format": "jwt_id", "iss": "https://other", "jti": "t"})),
            Ok(Event::Nothing(_))
        ));
        assert!(matches!(
            at(json!({"format": "email", "email": "a@b"})),
            Ok(Event::Nothing(_))
        ));
    }

    #[test]
    fn event_time_defaults_to_iat_and_never_lies_ahead() {
        let sub = json!({"format": "opaque", "id": "u"});
        let set = read_one(event(SESSION_REVOKED, json!({"subject": sub}))).unwrap();
        assert_eq!(
            set.event,
            Event::Revoke(Change::SubjectAt(ClaimValue::Str("u".into()), 1000))
        );
        let ahead = event(
            SESSION_REVOKED,
            json!({"subject": sub, "event_timestamp": 2006}),
        );
        assert!(read_one(ahead).is_err());
    }

    #[test]
    fn credential_change_purges_only_for_passwords() {
        let sub = json!({"format": "opaque", "id": "u"});
        let pw = event(
            CREDENTIAL_CHANGE,
            json!({"subject": sub, "credential_type": "password", "change_type": "update",
                "event_timestamp": 1200}),
        );
        assert!(matches!(read_one(pw).unwrap().event, Event::Revoke(_)));
        let key = event(
            CREDENTIAL_CHANGE,
            json!({"subject": sub, "credential_type": "fido2-roaming", "change_type": "create"}),
        );
        assert!(matches!(read_one(key).unwrap().event, Event::Nothing(_)));
    }

    #[test]
    fn set_shape_rules() {
        let ok = event(VERIFICATION, json!({}));
        assert!(read_one(ok.clone()).is_ok());
        assert!(read(&signal(ok.clone(), Some("JWT")), 2000, 5, None).is_err());
        assert!(read(&signal(ok.clone(), None), 2000, 5, None).is_err());
        for bad in [
            json!({"sub": "x"}),
            json!({"exp": 5000}),
            json!({"jti": null}),
            json!({"events": {}}),
            json!({"events": {"a": {}, "b": {}}}),
            json!({"events": {"a": 1}}),
        ] {
            let mut c = ok.clone();
            for (k, v) in bad.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            assert!(read_one(c).is_err(), "{bad}");
        }
    }
}
