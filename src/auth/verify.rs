//! Token verification: algorithm allow-list, one key per algorithm family,
//! signature, then the claims (`exp`, `nbf`, `iat`, `iss`, `aud`, required
//! claims, lifetime, subject and token id). Synchronous and CPU-only.

use super::cache::TokenCache;
use super::AuthError;
use crate::claims::{ClaimValue, KeyHashes};
use crate::config::{ForwardSettings, JwtSettings, Problem, RevocationSettings};
use http::{HeaderName, HeaderValue};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// What a valid token says, kept per distinct token in the cache.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: ClaimValue,
    pub token_id: ClaimValue,
    pub keys: KeyHashes,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    /// `forward.claims_to_headers` filled from this token's claims.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
}

/// Keys a token may be verified with: each bound to its algorithm family,
/// so a public key can never serve as an HMAC secret (algorithm confusion).
struct Keys {
    hmac: Option<DecodingKey>,
    rsa: Option<DecodingKey>,
    ec: Option<DecodingKey>,
    ed: Option<DecodingKey>,
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Signature and algorithm only: every claim is checked by [`Verifier`],
/// against the proxy's clock, so cached tokens are judged alike.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

impl Keys {
    /// The secret and the public key file, each bound to its family.
    fn read(jwt: &JwtSettings, problems: &mut Vec<Problem>) -> Keys {
        let families: HashSet<&str> = jwt.algorithms.iter().map(|a| family(*a)).collect();
        let public: Vec<&str> = families.iter().copied().filter(|f| *f != "hmac").collect();
        if public.len() > 1 && jwt.public_key_pem.is_some() {
            problems.push(problem(
                "jwt.algorithms",
                "one public_key_file holds one key type: allow RS*/PS*, ES* or EdDSA, not several",
            ));
        }
        let mut keys = Keys {
            hmac: jwt.secret.as_ref().map(|s| DecodingKey::from_secret(&s.0)),
            rsa: None,
            ec: None,
            ed: None,
        };
        if let (Some(pem), [fam]) = (&jwt.public_key_pem, public.as_slice()) {
            keys.read_public(pem, fam, jwt, problems);
        }
        keys
    }

    fn read_public(
        &mut self,
        pem: &[u8],
        fam: &str,
        jwt: &JwtSettings,
        problems: &mut Vec<Problem>,
    ) {
        if fam == "rsa"
            && super::roca::modulus_from_pem(pem).is_some_and(|n| super::roca::fingerprinted(&n))
        {
            problems.push(problem(
                "jwt.public_key_file",
                "this RSA key has the ROCA fingerprint (CVE-2017-15361): its private key can be \
                 computed from it; replace the key",
            ));
        }
        let parsed = match fam {
            "rsa" => DecodingKey::from_rsa_pem(pem).map(|k| self.rsa = Some(k)),
            "ec" => DecodingKey::from_ec_pem(pem).map(|k| self.ec = Some(k)),
            _ => DecodingKey::from_ed_pem(pem).map(|k| self.ed = Some(k)),
        };
        if let Err(e) = parsed {
            problems.push(problem(
                "jwt.public_key_file",
                format!(
                    "not a PEM {} public key for {:?}: {e}",
                    fam.to_uppercase(),
                    jwt.algorithms
                ),
            ));
        }
    }

    fn for_alg(&self, alg: Algorithm) -> Option<&DecodingKey> {
        use Algorithm::*;
        match alg {
            HS256 | HS384 | HS512 => self.hmac.as_ref(),
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self.rsa.as_ref(),
            ES256 | ES384 => self.ec.as_ref(),
            EdDSA => self.ed.as_ref(),
        }
    }
}

pub struct Verifier {
    allowed: Vec<(Algorithm, Validation)>,
    keys: Keys,
    /// Keys for the public algorithms from `jwt.jwks_url`, when set.
    pub jwks: Option<Arc<super::jwks::Jwks>>,
    issuer: Option<String>,
    audience: Vec<String>,
    require: Vec<String>,
    leeway: i64,
    max_lifetime: i64,
    subject_claim: String,
    token_claim: String,
    forward: Vec<(String, HeaderName)>,
    cache: TokenCache<Verified>,
}

fn family(alg: Algorithm) -> &'static str {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => "hmac",
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "rsa",
        ES256 | ES384 => "ec",
        EdDSA => "ed",
    }
}

impl Verifier {
    pub fn new(
        jwt: &JwtSettings,
        revocation: &RevocationSettings,
        forward: &ForwardSettings,
    ) -> Result<Verifier, Vec<Problem>> {
        let mut problems = Vec::new();
        let keys = Keys::read(jwt, &mut problems);
        let jwks = match &jwt.jwks_url {
            Some(url) => super::jwks::Jwks::new(url)
                .map_err(|e| problems.push(problem("jwt.jwks_url", e)))
                .ok(),
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Verifier {
            allowed: jwt
                .algorithms
                .iter()
                .map(|a| (*a, validation(*a)))
                .collect(),
            keys,
            jwks,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            require: jwt.require.clone(),
            leeway: jwt.leeway.as_secs() as i64,
            max_lifetime: revocation.max_token_lifetime.as_secs() as i64,
            subject_claim: revocation.subject_claim.clone(),
            token_claim: revocation.token_claim.clone(),
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
            cache: TokenCache::new(),
        })
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

    /// `jwt.leeway` in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Signing keys are available (always, unless a JWKS is still loading).
    pub fn keys_ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(|j| j.loaded())
    }

    /// Tokens verified without paying the signature again.
    pub fn cache_hits(&self) -> u64 {
        self.cache.hits()
    }

    /// Signature and every claim check that does not depend on the clock.
    pub fn verify_uncached(&self, token: &str, now: i64) -> Result<Verified, AuthError> {
        super::jose::check(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(map_jwt_error)?;
        let (alg, validation) = self
            .allowed
            .iter()
            .find(|(a, _)| *a == header.alg)
            .ok_or(AuthError::invalid("algorithm not allowed"))?;
        let from_jwks;
        let key = match (&self.jwks, family(*alg)) {
            (Some(jwks), f) if f != "hmac" => {
                use super::jwks::KeyLookup;
                from_jwks = jwks.key(header.kid.as_deref(), *alg).map_err(|e| match e {
                    KeyLookup::UnknownKid => AuthError::UnknownKey,
                    KeyLookup::NeedKid => AuthError::invalid("token has no kid"),
                    KeyLookup::WrongAlgorithm => {
                        AuthError::invalid("key not valid for this algorithm")
                    }
                })?;
                &from_jwks
            }
            _ => self
                .keys
                .for_alg(*alg)
                .ok_or(AuthError::invalid("algorithm not allowed"))?,
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(map_jwt_error)?;
        self.check_claims(data.claims, now)
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
        let keys = KeyHashes::new(&subject, &token_id);
        let forwarded = self
            .forward
            .iter()
            .filter_map(|(claim, header)| Some((header.clone(), header_value(claims.get(claim)?)?)))
            .collect();
        Ok(Verified {
            subject,
            token_id,
            keys,
            iat,
            exp,
            nbf,
            forwarded,
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

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::invalid("signature invalid"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::invalid("algorithm not allowed")
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::invalid("malformed token"),
        _ => AuthError::invalid("token could not be verified"),
    }
}

fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }) {
            Some(t) => Ok(Some(t)),
            None => Err(AuthError::Invalid(
                format!("claim {name} is not a valid time").into(),
            )),
        },
        Some(_) => Err(AuthError::Invalid(
            format!("claim {name} is not a number").into(),
        )),
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

fn audience_matches(aud: Option<&Value>, expected: &[String]) -> bool {
    match aud {
        Some(Value::String(s)) => expected.iter().any(|e| e == s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|s| expected.iter().any(|e| e == s)),
        _ => false,
    }
}

fn header_value(v: &Value) -> Option<HeaderValue> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    HeaderValue::from_str(&text).ok()
}
