//! `jwt.jwks_url`: signing keys fetched from the issuer. Fetched at start (the
//! proxy is not ready until a set is loaded), refreshed every
//! [`REFRESH_EVERY`] and when a token names an unknown `kid` (at most once per
//! [`UNKNOWN_KID_MIN_INTERVAL`]); while the issuer is down the last good set
//! keeps serving. Each key is bound to its `alg` (or, without one, to what
//! its `kty`/`crv` can sign); symmetric (`oct`) keys are refused, so a public
//! JWKS can never be used as an HMAC secret.
//!
//! The fetching itself is not done here: whoever starts the proxy supplies a
//! [`Fetch`] (`crate::fetch::HttpFetcher`), so `auth` holds no HTTP client.

use bytes::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Periodic refresh (5 min).
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Refreshes triggered by unknown `kid`s are at least this far apart (5 s).
pub const UNKNOWN_KID_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Retry delay while no set has been loaded yet (1 s).
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(1);
/// Largest JWKS document accepted (1 MiB).
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// A boxed future, as the fetcher returns.
pub type FetchFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, FetchError>> + Send + 'a>>;

/// Why an outbound fetch (a JWKS, a status list, an SSF poll) gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not a usable URL")]
    BadUrl,
    #[error("the client could not be set up: {0}")]
    Setup(String),
    #[error("fetch failed: {0}")]
    Transport(String),
    #[error("answered {0}")]
    Status(u16),
    #[error("the answer could not be read (too large or cut short)")]
    Body,
    #[error("timed out")]
    Timeout,
    #[error("no fetcher installed")]
    NoFetcher,
}

/// Why a JWKS could not be refreshed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("not a JWKS: {0}")]
    Parse(String),
}

/// Outbound HTTP for the library: documents by URL (GET, at most
/// `max_bytes`, a bounded time) and the SSF poller's POSTs.
pub trait Fetch: Send + Sync {
    fn get<'a>(&'a self, url: &'a str, accept: &'a str, max_bytes: usize) -> FetchFuture<'a>;

    /// Sends one POST and reads a 2xx answer's body.
    fn post<'a>(&'a self, post: Post<'a>) -> FetchFuture<'a>;
}

/// One POST: body and headers, how long it may take, how much is read back.
pub struct Post<'a> {
    pub url: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: &'a str,
    pub accept: &'a str,
    pub body: Bytes,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// One usable key and the algorithms it may verify.
#[derive(Clone)]
pub struct JwksKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

pub struct Jwks {
    url: String,
    fetcher: std::sync::OnceLock<Arc<dyn Fetch>>,
    keys: RwLock<Arc<HashMap<String, JwksKey>>>,
    loaded: AtomicBool,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

/// What a key can sign, from its `alg`, else its `kty`/`crv`; `None` refuses it.
fn algorithms_of(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    use Algorithm::*;
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![EdDSA],
        // Symmetric keys never come from a JWKS here.
        AlgorithmParameters::OctetKey(_) | AlgorithmParameters::OctetKeyPair(_) => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(ka) => {
            let alg = match ka {
                KeyAlgorithm::RS256 => RS256,
                KeyAlgorithm::RS384 => RS384,
                KeyAlgorithm::RS512 => RS512,
                KeyAlgorithm::PS256 => PS256,
                KeyAlgorithm::PS384 => PS384,
                KeyAlgorithm::PS512 => PS512,
                KeyAlgorithm::ES256 => ES256,
                KeyAlgorithm::ES384 => ES384,
                KeyAlgorithm::EdDSA => EdDSA,
                _ => return None,
            };
            by_type.contains(&alg).then(|| vec![alg])
        }
    }
}

/// Why a key must not verify signatures: marked for encryption (`use`
/// other than `sig`, `key_ops` without `verify`, RFC 7517 §4.2–4.3), or an
/// RSA key with the ROCA fingerprint.
fn not_for_verifying(jwk: &Jwk) -> Option<&'static str> {
    use jsonwebtoken::jwk::{KeyOperations, PublicKeyUse};
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Some("use is not sig");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Some("key_ops lacks verify");
    }
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(rsa.n.trim_end_matches('='))
            .unwrap_or_default();
        if super::roca::fingerprinted(&n) {
            return Some("RSA modulus with the ROCA fingerprint (CVE-2017-15361)");
        }
    }
    None
}

/// Parses a JWKS document; keys that are unusable or symmetric are skipped.
pub fn parse(text: &[u8]) -> Result<HashMap<String, JwksKey>, String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut keys = HashMap::new();
    for (i, raw) in list.iter().enumerate() {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            tracing::warn!(index = i, "Skipping a JWKS entry that is not a valid JWK");
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        if let Some(why) = not_for_verifying(&jwk) {
            tracing::warn!(kid, reason = why, "Skipping a JWKS key");
            continue;
        }
        let Some(algorithms) = algorithms_of(&jwk) else {
            tracing::warn!(kid, "Skipping a JWKS key: symmetric or unsupported type");
            continue;
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => {
                keys.insert(kid, JwksKey { key, algorithms });
            }
            Err(e) => tracing::warn!(kid, error = %e, "Skipping an unreadable JWKS key"),
        }
    }
    if keys.is_empty() {
        return Err("no usable signing key".into());
    }
    Ok(keys)
}

impl Jwks {
    pub fn new(url: &str) -> Result<Arc<Jwks>, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err("jwks_url must be http:// or https://".into());
        }
        url.parse::<http::Uri>()
            .map_err(|e| format!("jwks_url: {e}"))?;
        Ok(Arc::new(Jwks {
            url: url.to_string(),
            fetcher: std::sync::OnceLock::new(),
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }))
    }

    /// A set has been loaded at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// The key named `kid` if it may verify `alg`; without a `kid`, the only
    /// key that may.
    pub fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, KeyLookup> {
        let keys = self.keys.read().clone();
        let found = match kid {
            Some(k) => keys.get(k).ok_or(KeyLookup::UnknownKid)?,
            None => {
                let mut fitting = keys.values().filter(|k| k.algorithms.contains(&alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => k,
                    _ => return Err(KeyLookup::NeedKid),
                }
            }
        };
        if !found.algorithms.contains(&alg) {
            return Err(KeyLookup::WrongAlgorithm);
        }
        Ok(found.key.clone())
    }

    /// Fetches and installs the set; keeps the old one on any failure.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _one_at_a_time = self.fetching.lock().await;
        *self.last_fetch.lock() = Some(Instant::now());
        let fetcher = self.fetcher.get().ok_or(FetchError::NoFetcher)?;
        let body = fetcher
            .get(
                &self.url,
                "application/jwk-set+json, application/json",
                MAX_JWKS_BYTES,
            )
            .await?;
        let keys = parse(&body).map_err(JwksError::Parse)?;
        let n = keys.len();
        *self.keys.write() = Arc::new(keys);
        self.loaded.store(true, Ordering::Relaxed);
        Ok(n)
    }

    /// A token named a `kid` we do not know: refresh, unless one ran recently.
    /// Returns whether a refresh happened.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let recent = self
            .last_fetch
            .lock()
            .is_some_and(|t| t.elapsed() < UNKNOWN_KID_MIN_INTERVAL);
        if recent {
            return false;
        }
        match self.refresh().await {
            Ok(n) => {
                tracing::info!(keys = n, "JWKS refreshed for an unknown kid");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good set");
                false
            }
        }
    }

    /// Installs the fetcher; then [`Jwks::refresh`] can run.
    pub fn use_fetcher(&self, fetcher: Arc<dyn Fetch>) {
        let _ = self.fetcher.set(fetcher);
    }

    /// First load (retried until it succeeds), then periodic refreshes.
    pub fn watch(self: &Arc<Self>, fetcher: Arc<dyn Fetch>) {
        self.use_fetcher(fetcher);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { return };
                let wait = match me.refresh().await {
                    Ok(n) => {
                        tracing::info!(keys = n, "JWKS loaded");
                        REFRESH_EVERY
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS not loaded; keeping the last good set");
                        if me.loaded() {
                            REFRESH_EVERY.min(Duration::from_secs(30))
                        } else {
                            FIRST_LOAD_RETRY
                        }
                    }
                };
                drop(me);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// Why no key was found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup {
    UnknownKid,
    NeedKid,
    WrongAlgorithm,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn symmetric_keys_are_refused_and_algorithms_bound() {
        let doc = json!({ "keys": [
            { "kty": "oct", "kid": "h", "k": "c2VjcmV0" },
            { "kty": "OKP", "kid": "e", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "OKP", "kid": "e2", "crv": "Ed25519", "alg": "ES256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "weird" }
        ]});
        let keys = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["e"].algorithms, vec![Algorithm::EdDSA]);
        assert!(parse(br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#).is_err());
        assert!(parse(b"[]").is_err());
    }

    #[test]
    fn encryption_keys_are_not_used_to_verify() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let doc = json!({ "keys": [
            { "kty": "OKP", "kid": "enc", "crv": "Ed25519", "use": "enc", "x": x },
            { "kty": "OKP", "kid": "wrap", "crv": "Ed25519", "key_ops": ["wrapKey"], "x": x },
            { "kty": "OKP", "kid": "sig", "crv": "Ed25519", "use": "sig", "key_ops": ["verify"], "x": x }
        ]});
        let keys = parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
    }
}
