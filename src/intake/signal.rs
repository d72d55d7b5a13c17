//! What every signal from an identity provider must be before anything is
//! written: a compact JWS from a trusted issuer (chosen by its `iss`, then
//! verified with that issuer's keys only), addressed to us (`aud`), and
//! not from the future. The checks particular to logout tokens and SETs
//! are in their own files.

pub use crate::auth::keyset::typ_matches;
use crate::auth::keyset::{audience_matches, numeric_date, KeySet};
use crate::auth::AuthError;
use crate::config::{IssuerSettings, Problem};
use jsonwebtoken::Header;
use serde_json::{Map, Value};

/// One trusted identity provider: `intake.issuers[i]`.
pub struct Issuer {
    pub name: String,
    pub audience: Vec<String>,
    pub keys: KeySet,
}

impl Issuer {
    pub fn new(settings: &IssuerSettings, at: &str) -> Result<Issuer, Vec<Problem>> {
        Ok(Issuer {
            name: settings.issuer.clone(),
            audience: settings.audience.clone(),
            keys: KeySet::new(&settings.keys, at)?,
        })
    }
}

/// Why a signal was refused; each maps to the error codes of its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// `iss` is not one of `intake.issuers`.
    Issuer,
    /// `aud` holds none of the issuer's audience.
    Audience,
    /// The signature does not verify, or names a key the issuer does not have.
    Key(&'static str),
    /// Anything else: shape, `typ`, algorithm, claims, times.
    Request(String),
    /// The issuer's keys have not been loaded yet (its JWKS is unreachable).
    KeysUnavailable,
    /// A push without exactly the configured `Authorization`.
    Unauthorized,
}

impl Rejection {
    pub fn request(text: impl Into<String>) -> Rejection {
        Rejection::Request(text.into())
    }

    /// Words for the sender (never the token).
    pub fn description(&self) -> String {
        match self {
            Rejection::Issuer => "iss is not a trusted issuer".into(),
            Rejection::Audience => "aud does not name this receiver".into(),
            Rejection::Key(why) => (*why).into(),
            Rejection::Request(why) => why.clone(),
            Rejection::KeysUnavailable => "the issuer's signing keys are not available yet".into(),
            Rejection::Unauthorized => "the Authorization header is missing or wrong".into(),
        }
    }

    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Issuer => "invalid_issuer",
            Rejection::Audience => "invalid_audience",
            Rejection::Key(_) => "invalid_key",
            Rejection::Request(_) => "invalid_request",
            Rejection::KeysUnavailable => "keys_unavailable",
            Rejection::Unauthorized => "authentication_failed",
        }
    }
}

/// A signal whose signature, `iss`, `aud` and `iat` have been checked.
pub struct Signal {
    /// Index into the issuers.
    pub issuer: usize,
    pub header: Header,
    pub claims: Map<String, Value>,
    /// `iat`: the signal's own time.
    pub iat: i64,
    pub exp: Option<i64>,
}

/// Verifies `token` with the keys of the issuer it names, at `now`.
pub async fn verify(
    issuers: &[Issuer],
    token: &str,
    now: i64,
    leeway: i64,
) -> Result<Signal, Rejection> {
    crate::auth::jose::check(token).map_err(from_auth)?;
    let claimed = crate::auth::jose::unverified_issuer(token).ok_or(Rejection::Issuer)?;
    let (index, issuer) = issuers
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == claimed)
        .ok_or(Rejection::Issuer)?;
    if !issuer.keys.ready() {
        return Err(Rejection::KeysUnavailable);
    }
    let mut verified = issuer.keys.verify(token);
    if let (Err(AuthError::UnknownKey), Some(jwks)) = (&verified, &issuer.keys.jwks) {
        // Key rotation at the issuer: refresh once (rate-limited), retry.
        if jwks.refresh_for_unknown_kid().await {
            verified = issuer.keys.verify(token);
        }
    }
    let (header, claims) = verified.map_err(from_auth)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.name.as_str()) {
        return Err(Rejection::Issuer);
    }
    if !audience_matches(claims.get("aud"), &issuer.audience) {
        return Err(Rejection::Audience);
    }
    let time = |name| numeric_date(&claims, name).map_err(from_auth);
    let iat = time("iat")?.ok_or_else(|| Rejection::request("iat is required"))?;
    if iat > now.saturating_add(leeway) {
        return Err(Rejection::request("iat is in the future"));
    }
    let exp = time("exp")?;
    if exp.is_some_and(|exp| exp.saturating_add(leeway) <= now) {
        return Err(Rejection::request("the token has expired"));
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(Rejection::request("the token is not valid yet (nbf)"));
    }
    Ok(Signal {
        issuer: index,
        header,
        claims,
        iat,
        exp,
    })
}

fn from_auth(e: AuthError) -> Rejection {
    match e {
        AuthError::UnknownKey => Rejection::Key("unknown signing key"),
        AuthError::Invalid(why) if why == "signature invalid" => {
            Rejection::Key("the signature does not verify")
        }
        AuthError::Invalid(why) => Rejection::Request(why.into_owned()),
        AuthError::Malformed(why) => Rejection::request(why),
        AuthError::Missing => Rejection::request("no token"),
    }
}

/// A claim that must be a non-empty string, when present.
pub fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
) -> Result<Option<&'c str>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(Rejection::request(format!(
            "{name} must be a non-empty string"
        ))),
    }
}
