//! Signing keys and the algorithms they may verify: the proxy's own (`jwt`)
//! and each trusted identity provider's (`intake.issuers`). A [`KeySet`]
//! checks a compact JWS — JOSE header rules, the algorithm allow-list
//! (`none` is never on it), one key per algorithm family so a public key
//! can never serve as an HMAC secret — and hands back its header and
//! claims; what the claims must say is the caller's business.

use super::jwks::{Jwks, KeyLookup};
use super::AuthError;
use crate::config::{JwtSettings, Problem};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// The keys of one `jwt:`-style section.
pub struct KeySet {
    allowed: Vec<(Algorithm, Validation)>,
    keys: Keys,
    /// Keys for the public algorithms from `jwks_url`, when set.
    pub jwks: Option<Arc<Jwks>>,
}

impl KeySet {
    /// The keys of `jwt`; problems are reported under `at` (`jwt`, `intake.issuers[0]`).
    pub fn new(jwt: &JwtSettings, at: &str) -> Result<KeySet, Vec<Problem>> {
        let mut problems = Vec::new();
        let keys = Keys::read(jwt, at, &mut problems);
        let jwks = match &jwt.jwks_url {
            Some(url) => Jwks::new(url)
                .map_err(|e| problems.push(problem(&format!("{at}.jwks_url"), e)))
                .ok(),
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(KeySet {
            allowed: jwt
                .algorithms
                .iter()
                .map(|a| (*a, validation(*a)))
                .collect(),
            keys,
            jwks,
        })
    }

    /// Keys are available (always, unless a JWKS is still loading).
    pub fn ready(&self) -> bool {
        self.jwks.as_ref().is_none_or(|j| j.loaded())
    }

    /// The header and claims of `token` once its signature verifies.
    pub fn verify(&self, token: &str) -> Result<(Header, Map<String, Value>), AuthError> {
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
        Ok((data.header, data.claims))
    }
}

/// Keys a token may be verified with: each bound to its algorithm family,
/// so a public key can never serve as an HMAC secret (algorithm confusion).
struct Keys {
    hmac: Option<DecodingKey>,
    rsa: Option<DecodingKey>,
    ec: Option<DecodingKey>,
    ed: Option<DecodingKey>,
}

pub(super) fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Signature and algorithm only: every claim is checked by the caller,
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
    fn read(jwt: &JwtSettings, at: &str, problems: &mut Vec<Problem>) -> Keys {
        let families: HashSet<&str> = jwt.algorithms.iter().map(|a| family(*a)).collect();
        let public: Vec<&str> = families.iter().copied().filter(|f| *f != "hmac").collect();
        if public.len() > 1 && jwt.public_key_pem.is_some() {
            problems.push(problem(
                &format!("{at}.algorithms"),
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
            keys.read_public(pem, fam, jwt, at, problems);
        }
        keys
    }

    fn read_public(
        &mut self,
        pem: &[u8],
        fam: &str,
        jwt: &JwtSettings,
        at: &str,
        problems: &mut Vec<Problem>,
    ) {
        if fam == "rsa"
            && super::roca::modulus_from_pem(pem).is_some_and(|n| super::roca::fingerprinted(&n))
        {
            problems.push(problem(
                &format!("{at}.public_key_file"),
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
                &format!("{at}.public_key_file"),
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

pub(super) fn family(alg: Algorithm) -> &'static str {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => "hmac",
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "rsa",
        ES256 | ES384 => "ec",
        EdDSA => "ed",
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

/// A NumericDate claim (RFC 7519 §2) as whole seconds; absent or null is `None`.
pub fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AuthError> {
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

/// `aud` (a string or a list) holds one of `expected`.
pub fn audience_matches(aud: Option<&Value>, expected: &[String]) -> bool {
    match aud {
        Some(Value::String(s)) => expected.iter().any(|e| e == s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|s| expected.iter().any(|e| e == s)),
        _ => false,
    }
}

/// A `typ` header as a media type, compared as RFC 7515 §4.1.9 says: without
/// case, and with the `application/` prefix optional.
pub fn typ_matches<S: AsRef<str>>(typ: Option<&str>, accepted: &[S]) -> bool {
    let bare = |t: &str| {
        let t = t.trim();
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_string)
            .unwrap_or(lower)
    };
    match typ {
        None => false,
        Some(t) => accepted.iter().any(|a| bare(a.as_ref()) == bare(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_compares_as_a_media_type() {
        let ok = vec!["logout+jwt".to_string(), "JWT".to_string()];
        assert!(typ_matches(Some("logout+jwt"), &ok));
        assert!(typ_matches(Some("application/logout+JWT"), &ok));
        assert!(typ_matches(Some("jwt"), &ok));
        assert!(!typ_matches(Some("at+jwt"), &ok));
        assert!(!typ_matches(None, &ok));
    }
}
