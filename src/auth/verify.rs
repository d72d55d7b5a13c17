//! Token verification: algorithm allow-list, one key per algorithm family,
//! signature, then the claims (`exp`, `nbf`, `iat`, `iss`, `aud`, required
//! claims, lifetime, subject and token id). Synchronous and CPU-only.

use super::cache::TokenCache;
use super::keyset::{audience_matches, numeric_date, KeySet};
use super::status_list::StatusClaim;
use super::AuthError;
use crate::claims::{ClaimValue, KeyHashes, TokenRef};
use crate::config::{ForwardSettings, JwtSettings, Problem, RevocationSettings};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a valid token says, kept per distinct token in the cache.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: ClaimValue,
    pub token_id: ClaimValue,
    /// The `revocation.session_claim` value, when the token carries one.
    pub session: Option<ClaimValue>,
    pub keys: KeyHashes,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    /// `forward.claims_to_headers` filled from this token's claims.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
    /// Where the token's status list entry is, if it names one.
    pub status: StatusClaim,
    /// The claims `revocation.compat` reads, as the token carries them
    /// (`None`: absent), in [`crate::config::Compat::claims`] order.
    pub compat: Vec<Option<Value>>,
}

impl Verified {
    /// What names this token to the revocation set and the stores.
    pub fn token_ref(&self) -> TokenRef<'_> {
        TokenRef {
            subject: &self.subject,
            token: &self.token_id,
            session: self.session.as_ref(),
        }
    }
}

/// Header `typ` values of the signed documents that are never access tokens.
const NOT_ACCESS_TOKENS: [&str; 3] = ["logout+jwt", "secevent+jwt", "statuslist+jwt"];

pub struct Verifier {
    /// The `jwt` section's keys.
    pub keys: Arc<KeySet>,
    issuer: Option<String>,
    audience: Vec<String>,
    require: Vec<String>,
    /// `jwt.typ`: accepted header `typ` values; empty: any.
    typ: Vec<String>,
    leeway: i64,
    max_lifetime: i64,
    subject_claim: String,
    token_claim: String,
    session_claim: String,
    /// Claims kept for `revocation.compat`.
    compat_claims: Vec<String>,
    forward: Vec<(String, HeaderName)>,
    /// A digest of everything a cached result depends on (keys, algorithms,
    /// claim rules and names, forwarded claims): two verifiers with the same
    /// one give the same answer for every token.
    rules: u128,
    cache: Arc<TokenCache<Verified>>,
}

impl Verifier {
    pub fn new(
        jwt: &JwtSettings,
        revocation: &RevocationSettings,
        forward: &ForwardSettings,
    ) -> Result<Verifier, Vec<Problem>> {
        let keys = Arc::new(KeySet::new(jwt, "jwt")?);
        let rules = {
            let mut text = format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|",
                jwt.algorithms,
                jwt.jwks_url,
                jwt.issuer,
                jwt.audience,
                jwt.require,
                jwt.typ,
                jwt.leeway,
                revocation.max_token_lifetime,
                (
                    &revocation.subject_claim,
                    &revocation.token_claim,
                    &revocation.session_claim
                ),
                revocation
                    .compat
                    .as_ref()
                    .map(crate::config::Compat::claims),
                forward.claims_to_headers,
                jwt.public_key_pem,
            )
            .into_bytes();
            if let Some(secret) = &jwt.secret {
                text.extend_from_slice(&secret.0);
            }
            xxhash_rust::xxh3::xxh3_128(&text)
        };
        Ok(Verifier {
            rules,
            keys,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            require: jwt.require.clone(),
            typ: jwt.typ.clone(),
            leeway: jwt.leeway.as_secs() as i64,
            max_lifetime: revocation.max_token_lifetime.as_secs() as i64,
            subject_claim: revocation.subject_claim.clone(),
            token_claim: revocation.token_claim.clone(),
            session_claim: revocation.session_claim.clone(),
            compat_claims: revocation
                .compat
                .as_ref()
                .map(crate::config::Compat::claims)
                .unwrap_or_default(),
            forward: forward
                .claims_to_headers
                .iter()
                .filter_map(|(claim, header)| {
                    Some((
                        claim.clone(),
                        HeaderName::from_bytes(header.as_bytes()).ok()?,
                    ))
                })
                .collect(),
            cache: Arc::new(TokenCache::new()),
        })
    }

    /// Takes over `old`'s verification cache when it verifies exactly as
    /// this one does (a reload that changed nothing it depends on), so a
    /// reload does not send every client's token through its signature
    /// again. Not with a JWKS: its keys are fetched anew.
    pub fn keep_cache_of(&mut self, old: &Verifier) {
        if self.rules == old.rules && self.keys.jwks.is_none() && old.keys.jwks.is_none() {
            self.cache = old.cache.clone();
        }
    }

    /// Verifies `token` at `now` (Unix seconds). A token seen before skips the
    /// signature; its time claims are checked again on every call.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        if let Some(v) = self.cache.get(token) {
            self.check_time(&v, now)?;
            return Ok(v);
        }
        let v = Arc::new(self.verify_uncached(token, now)?);
        self.check_time(&v, now)?;
        let until = v.exp.unwrap_or(i64::MAX);
        self.cache.insert(token, v.clone(), until, now);
        Ok(v)
    }

    /// `jwt.issuer`, when set.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `jwt.leeway` in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Signing keys are available (always, unless a JWKS is still loading).
    pub fn keys_ready(&self) -> bool {
        self.keys.ready()
    }

    /// Tokens verified without paying the signature again.
    pub fn cache_hits(&self) -> u64 {
        self.cache.hits()
    }

    /// Signature and every claim check that does not depend on the clock.
    pub fn verify_uncached(&self, token: &str, now: i64) -> Result<Verified, AuthError> {
        let (header, claims) = self.keys.verify(token)?;
        if !self.typ.is_empty() && !super::keyset::typ_matches(header.typ.as_deref(), &self.typ) {
            return Err(AuthError::invalid("token type (typ) not accepted"));
        }
        // A logout token, a SET or a status list signed by the same keys is
        // never an access token, whatever `jwt.typ` says.
        if super::keyset::typ_matches(header.typ.as_deref(), &NOT_ACCESS_TOKENS)
            || claims.contains_key("events")
        {
            return Err(AuthError::invalid("not an access token"));
        }
        self.check_claims(claims, now)
    }

    fn check_claims(&self, claims: Map<String, Value>, now: i64) -> Result<Verified, AuthError> {
        for name in &self.require {
            if claims.get(name).is_none_or(Value::is_null) {
                return Err(AuthError::Invalid(
                    format!("missing required claim {name}").into(),
                ));
            }
        }
        let exp = numeric_date(&claims, "exp")?;
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        if let Some(expected) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(expected.as_str()) {
                return Err(AuthError::invalid("issuer mismatch"));
            }
        }
        if !self.audience.is_empty() && !audience_matches(claims.get("aud"), &self.audience) {
            return Err(AuthError::invalid("audience mismatch"));
        }
        if let Some(exp) = exp {
            if exp.saturating_sub(iat.unwrap_or(now)) > self.max_lifetime {
                return Err(AuthError::invalid(
                    "token lifetime exceeds max_token_lifetime",
                ));
            }
        }
        let subject = claim_id(&claims, &self.subject_claim)?;
        let token_id = claim_id(&claims, &self.token_claim)?;
        let session = match claims.get(&self.session_claim) {
            None | Some(Value::Null) => None,
            Some(_) => Some(claim_id(&claims, &self.session_claim)?),
        };
        let keys = KeyHashes::new(&subject, &token_id).with_session(session.as_ref());
        let mut forwarded = Vec::with_capacity(self.forward.len());
        for (claim, header) in &self.forward {
            let Some(claim) = claims.get(claim) else {
                continue;
            };
            if let Some(value) = header_value(claim)? {
                forwarded.push((header.clone(), value));
            }
        }
        Ok(Verified {
            subject,
            token_id,
            session,
            keys,
            iat,
            exp,
            nbf,
            forwarded,
            status: StatusClaim::read(&claims),
            compat: self
                .compat_claims
                .iter()
                .map(|c| claims.get(c).cloned())
                .collect(),
        })
    }

    /// `exp`, `nbf` and `iat` against the clock, with leeway.
    pub fn check_time(&self, v: &Verified, now: i64) -> Result<(), AuthError> {
        if matches!(v.exp, Some(exp) if now >= exp.saturating_add(self.leeway)) {
            return Err(AuthError::invalid("token expired"));
        }
        if matches!(v.nbf, Some(nbf) if now.saturating_add(self.leeway) < nbf) {
            return Err(AuthError::invalid("token not yet valid"));
        }
        // A token "issued" in the future would outlive every purge cutoff.
        if matches!(v.iat, Some(iat) if iat > now.saturating_add(self.leeway)) {
            return Err(AuthError::invalid("token issued in the future"));
        }
        if v.exp.is_none() {
            if let Some(iat) = v.iat {
                // Purges are kept for max_token_lifetime: an older token without
                // exp could otherwise come back to life once they lapse.
                if now.saturating_sub(iat) > self.max_lifetime.saturating_add(self.leeway) {
                    return Err(AuthError::invalid("token older than max_token_lifetime"));
                }
            }
        }
        Ok(())
    }
}

fn claim_id(claims: &Map<String, Value>, name: &str) -> Result<ClaimValue, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(AuthError::Invalid(format!("missing {name} claim").into())),
        Some(v) => ClaimValue::from_json(v).ok_or_else(|| {
            AuthError::Invalid(format!("claim {name} must be a string or number").into())
        }),
    }
}

/// A claim as the header the app receives (`None`: null, nothing sent). A
/// value an HTTP parser would read differently — surrounding spaces or
/// tabs, control bytes — makes the token invalid: the app must see exactly
/// the value revocations are keyed on, or nothing at all.
fn header_value(v: &Value) -> Result<Option<HeaderValue>, AuthError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => return Ok(None),
        other => other.to_string(),
    };
    let padded = text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']);
    match HeaderValue::from_bytes(text.as_bytes()) {
        Ok(value) if !padded => Ok(Some(value)),
        _ => Err(AuthError::invalid(
            "claim forwarded as a header has surrounding whitespace or control bytes",
        )),
    }
}
