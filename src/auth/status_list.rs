//! Token Status Lists (draft-ietf-oauth-status-list): a verified token that
//! carries `status.status_list {idx, uri}` is also looked up in the list
//! at `uri`. Lists are fetched only from an allowed origin (an
//! `intake.issuers` issuer's, or a URI listed exactly), verified as a
//! `statuslist+jwt` signed by the proxy's own keys or that issuer's, cached
//! for their `ttl` (else until `exp`) clamped to `[min_ttl, max_ttl]`, and
//! refreshed in the background before they lapse. A request waits for a
//! list at most `timeout`; a list that cannot be had is the caller's
//! `on_store_failure` call. Fetching goes through the injected [`Fetch`].

use super::jwks::{Fetch, FetchError};
use super::keyset::{numeric_date, typ_matches, KeySet};
use crate::config::{IssuerSettings, Problem, StatusListSettings};
use crate::metrics::Metrics;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// `Accept` of a list fetch.
pub const ACCEPT: &str = "application/statuslist+jwt";
/// The `typ` of a Status List Token.
pub const TYP: &str = "statuslist+jwt";
/// Largest list token fetched (4 MiB).
pub const MAX_TOKEN_BYTES: usize = 4 << 20;
/// Largest decompressed list (16 MiB: 134 million 1-bit entries).
pub const MAX_LIST_BYTES: u64 = 16 << 20;
/// After a failed fetch, requests are answered "unavailable" without a new
/// fetch for this long (1 s), so a down list server is not hammered.
pub const RETRY_AFTER_FAILURE: i64 = 1;
/// Most lists cached at once.
pub const MAX_LISTS: usize = 10_000;

/// A token's reference into a status list (`status.status_list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusClaim {
    /// No `status.status_list` in the token.
    None,
    List {
        idx: u64,
        uri: Box<str>,
    },
    /// `status.status_list` is there but not `{idx: integer, uri: string}`.
    Malformed,
}

impl StatusClaim {
    /// Reads the `status` claim of verified claims.
    pub fn read(claims: &Map<String, Value>) -> StatusClaim {
        let Some(status) = claims.get("status") else {
            return StatusClaim::None;
        };
        let Some(list) = status.get("status_list") else {
            return match status {
                Value::Object(_) => StatusClaim::None,
                _ => StatusClaim::Malformed,
            };
        };
        match (
            list.get("idx").and_then(Value::as_u64),
            list.get("uri").and_then(Value::as_str),
        ) {
            (Some(idx), Some(uri)) if !uri.is_empty() => StatusClaim::List {
                idx,
                uri: uri.into(),
            },
            _ => StatusClaim::Malformed,
        }
    }
}

/// Why a token's status could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListError {
    /// The URI's origin is not allowed: nothing was fetched.
    NotAllowed,
    /// The index lies outside the list.
    OutOfRange,
    /// The list cannot be had now (fetch failed, timed out, invalid list).
    Unavailable,
}

/// Why a list could not be had (logged; the request sees `Unavailable`).
#[derive(Debug, thiserror::Error)]
enum ListFailure {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the list token does not verify: {0}")]
    Token(#[from] super::AuthError),
    #[error("the list is not valid: {0}")]
    Invalid(&'static str),
}

impl ListFailure {
    fn invalid(why: &'static str) -> ListFailure {
        ListFailure::Invalid(why)
    }
}

/// A decoded list: `bits` per status, packed from the least significant bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    bits: u8,
    bytes: Vec<u8>,
}

impl List {
    /// Decodes `status_list {bits, lst}`: `lst` is base64url of ZLIB data.
    pub fn decode(status_list: &Value) -> Result<List, &'static str> {
        use base64::Engine;
        let bits = match status_list.get("bits").and_then(Value::as_u64) {
            Some(b @ (1 | 2 | 4 | 8)) => b as u8,
            _ => return Err("bits must be 1, 2, 4 or 8"),
        };
        let lst = status_list
            .get("lst")
            .and_then(Value::as_str)
            .ok_or("lst must be a string")?;
        let compressed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(lst.trim_end_matches('='))
            .map_err(|_| "lst is not base64url")?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(MAX_LIST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| "lst is not ZLIB data")?;
        if bytes.len() as u64 > MAX_LIST_BYTES {
            return Err("the list is too large");
        }
        Ok(List { bits, bytes })
    }

    /// How many statuses the list holds.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8 / u64::from(self.bits)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The status at `idx`, if the list holds it.
    pub fn get(&self, idx: u64) -> Option<u8> {
        let bits = u64::from(self.bits);
        let bit = idx.checked_mul(bits)?;
        let byte = *self.bytes.get(usize::try_from(bit / 8).ok()?)?;
        let mask = ((1u16 << bits) - 1) as u8;
        Some((byte >> (bit % 8)) & mask)
    }
}

/// One cached list, or the memory of a failed fetch.
struct Cached {
    list: Option<Arc<List>>,
    /// Use it until then (Unix seconds).
    until: i64,
    /// Fetch a fresh copy in the background from then on.
    refresh_at: i64,
}

/// The lists of one configuration.
pub struct StatusLists {
    settings: StatusListSettings,
    /// The proxy's own keys (`jwt`), which may sign lists too.
    own_keys: Arc<KeySet>,
    /// Each trusted issuer's origin and keys.
    issuers: Vec<(String, KeySet)>,
    cache: Mutex<HashMap<Box<str>, Cached>>,
    in_flight: Mutex<HashMap<Box<str>, Arc<Notify>>>,
    fetcher: OnceLock<Arc<dyn Fetch>>,
    metrics: Arc<Metrics>,
    /// The proxy's clock (Unix seconds), the one requests are judged by.
    clock: Now,
}

/// A clock: Unix seconds.
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Removes a finished fetch from the in-flight map and wakes its waiters,
/// whatever way the fetch ends.
struct InFlight<'a> {
    lists: &'a StatusLists,
    uri: &'a str,
    done: Arc<Notify>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.lists.in_flight.lock().remove(self.uri);
        self.done.notify_waiters();
    }
}

impl StatusLists {
    pub fn new(
        settings: &StatusListSettings,
        issuers: &[IssuerSettings],
        own_keys: Arc<KeySet>,
        metrics: Arc<Metrics>,
        clock: Now,
    ) -> Result<StatusLists, Vec<Problem>> {
        let mut keyed = Vec::new();
        let mut problems = Vec::new();
        for (i, s) in issuers.iter().enumerate() {
            match KeySet::new(&s.keys, &format!("intake.issuers[{i}]")) {
                Ok(keys) => keyed.push((origin(&s.issuer).unwrap_or_default(), keys)),
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(StatusLists {
            settings: settings.clone(),
            own_keys,
            issuers: keyed,
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            fetcher: OnceLock::new(),
            metrics,
            clock,
        })
    }

    /// Installs the fetcher; until then every list is unavailable.
    pub fn use_fetcher(&self, fetcher: Arc<dyn Fetch>) {
        let _ = self.fetcher.set(fetcher);
    }

    /// The issuers' JWKS, to be kept fresh by the caller.
    pub fn jwks(&self) -> impl Iterator<Item = &Arc<super::jwks::Jwks>> {
        self.issuers.iter().filter_map(|(_, k)| k.jwks.as_ref())
    }

    /// The status at `idx` of the list at `uri`, at `now`.
    pub async fn status(self: &Arc<Self>, uri: &str, idx: u64, now: i64) -> Result<u8, ListError> {
        if !self.allowed(uri) {
            return Err(ListError::NotAllowed);
        }
        let list = match self.cached(uri, now) {
            Some(Ok(list)) => {
                self.metrics.status_list("cache_hit");
                list
            }
            Some(Err(e)) => return Err(e),
            None => self.wait_for(uri, now).await?,
        };
        list.get(idx).ok_or(ListError::OutOfRange)
    }

    /// A usable cached list (starting a background refresh when it is
    /// due), a recent failure, or `None`: nothing usable is cached.
    fn cached(self: &Arc<Self>, uri: &str, now: i64) -> Option<Result<Arc<List>, ListError>> {
        let cache = self.cache.lock();
        let entry = cache.get(uri).filter(|c| now < c.until)?;
        let Some(list) = entry.list.clone() else {
            return Some(Err(ListError::Unavailable));
        };
        let due = now >= entry.refresh_at;
        drop(cache);
        if due {
            self.start_fetch(uri);
        }
        Some(Ok(list))
    }

    /// Starts a fetch (unless one is under way) and waits for it, at most
    /// `timeout`; the fetch goes on after a timeout and serves later requests.
    async fn wait_for(self: &Arc<Self>, uri: &str, now: i64) -> Result<Arc<List>, ListError> {
        let notify = self.start_fetch(uri);
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(done) = self.cached(uri, now) {
            return done;
        }
        let _ = tokio::time::timeout(self.settings.timeout, notified).await;
        self.cached(uri, now).unwrap_or(Err(ListError::Unavailable))
    }

    /// The fetch of `uri` under way, or a new one.
    fn start_fetch(self: &Arc<Self>, uri: &str) -> Arc<Notify> {
        let mut in_flight = self.in_flight.lock();
        if let Some(n) = in_flight.get(uri) {
            return n.clone();
        }
        let notify = Arc::new(Notify::new());
        in_flight.insert(uri.into(), notify.clone());
        drop(in_flight);
        let (me, uri, done) = (self.clone(), uri.to_string(), notify.clone());
        tokio::spawn(async move {
            let _finished = InFlight {
                lists: &me,
                uri: &uri,
                done,
            };
            let result = me.fetch(&uri).await;
            me.store(&uri, result);
        });
        notify
    }

    /// Fetches and checks the list at `uri`; its lifetime in seconds.
    async fn fetch(&self, uri: &str) -> Result<(List, i64), ListFailure> {
        let fetcher = self.fetcher.get().ok_or(FetchError::NoFetcher)?;
        let body = fetcher.get(uri, ACCEPT, MAX_TOKEN_BYTES).await?;
        let token = std::str::from_utf8(&body)
            .map_err(|_| ListFailure::invalid("the list is not text"))?
            .trim();
        let origin = origin(uri);
        let by_issuer = self
            .issuers
            .iter()
            .find(|(o, _)| origin.as_deref() == Some(o.as_str()));
        // Signed by the proxy's own keys, or by the keys of the issuer
        // whose origin the list has.
        let verified = match (self.own_keys.verify(token), by_issuer) {
            (Ok(v), _) => v,
            (Err(_), Some((_, k))) => k.verify(token)?,
            (Err(e), None) => return Err(e.into()),
        };
        let (header, claims) = verified;
        if !typ_matches(header.typ.as_deref(), &[TYP]) {
            return Err(ListFailure::invalid("typ is not statuslist+jwt"));
        }
        if claims.get("sub").and_then(Value::as_str) != Some(uri) {
            return Err(ListFailure::invalid("sub is not the list's URI"));
        }
        let now = self.now();
        if numeric_date(&claims, "iat")?.is_none() {
            return Err(ListFailure::invalid("the list has no iat"));
        }
        let exp = numeric_date(&claims, "exp")?;
        if exp.is_some_and(|e| e <= now) {
            return Err(ListFailure::invalid("the list has expired"));
        }
        let ttl = claims.get("ttl").and_then(Value::as_i64).filter(|t| *t > 0);
        let list = List::decode(claims.get("status_list").unwrap_or(&Value::Null))
            .map_err(ListFailure::invalid)?;
        let left = exp.map(|e| e.saturating_sub(now));
        let min = self.settings.min_ttl.as_secs() as i64;
        let max = self.settings.max_ttl.as_secs() as i64;
        let wanted = ttl.or(left).unwrap_or(max);
        let mut life = wanted.clamp(min, max.max(min));
        if let Some(left) = left {
            life = life.min(left);
        }
        Ok((list, life.max(1)))
    }

    fn store(&self, uri: &str, result: Result<(List, i64), ListFailure>) {
        let now = self.now();
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_LISTS && !cache.contains_key(uri) {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_LISTS {
                cache.clear();
            }
        }
        match result {
            Ok((list, life)) => {
                self.metrics.status_list("fetched");
                cache.insert(
                    uri.into(),
                    Cached {
                        list: Some(Arc::new(list)),
                        until: now.saturating_add(life),
                        // Refresh at four fifths of its life.
                        refresh_at: now.saturating_add((life / 5).saturating_mul(4).max(1)),
                    },
                );
            }
            Err(e) => {
                self.metrics.status_list("failed");
                tracing::warn!(error = %e, "Status list could not be had");
                // A list still usable stays (its refresh is tried again in a
                // second, not on every request); otherwise remember the failure.
                if let Some(c) = cache
                    .get_mut(uri)
                    .filter(|c| c.list.is_some() && c.until > now)
                {
                    c.refresh_at = now.saturating_add(RETRY_AFTER_FAILURE);
                } else {
                    cache.insert(
                        uri.into(),
                        Cached {
                            list: None,
                            until: now.saturating_add(RETRY_AFTER_FAILURE),
                            refresh_at: now,
                        },
                    );
                }
            }
        }
    }

    /// A list URI may be fetched: its origin is an issuer's, or it is
    /// listed exactly in `allowed_uris`.
    pub fn allowed(&self, uri: &str) -> bool {
        if self.settings.allowed_uris.iter().any(|u| u == uri) {
            return true;
        }
        origin(uri).is_some_and(|o| self.issuers.iter().any(|(i, _)| *i == o))
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// `scheme://host:port` of an http(s) URL, lower-cased with the default
/// port written out; `None` for anything else or a URL with userinfo.
pub fn origin(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = match (authority.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "http") => 80,
        (None, "https") => 443,
        _ => return None,
    };
    Some(format!(
        "{scheme}://{}:{port}",
        authority.host().to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(bits: u64, lst: &str) -> List {
        List::decode(&json!({"bits": bits, "lst": lst})).unwrap()
    }

    /// The draft's examples (section "Status List").
    #[test]
    fn draft_test_vectors_decode() {
        let one = decode(1, "eNrbuRgAAhcBXQ");
        let want = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
        assert_eq!(one.len(), 16);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(one.get(i as u64), Some(*w), "1-bit index {i}");
        }
        assert_eq!(one.get(16), None);
        let two = decode(2, "eNo76fITAAPfAgc");
        let want = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(two.get(i as u64), Some(*w), "2-bit index {i}");
        }
        assert_eq!(two.get(u64::MAX), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in [
            json!({"bits": 3, "lst": "eNrbuRgAAhcBXQ"}),
            json!({"bits": 1}),
            json!({"bits": 1, "lst": "!!"}),
            json!({"bits": 1, "lst": "AAAA"}),
        ] {
            assert!(List::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_status_claim_is_read_strictly() {
        let read = |v: Value| StatusClaim::read(v.as_object().unwrap());
        assert_eq!(read(json!({})), StatusClaim::None);
        assert_eq!(
            read(json!({"status": {"status_list": {"idx": 3, "uri": "https://a/l"}}})),
            StatusClaim::List {
                idx: 3,
                uri: "https://a/l".into()
            }
        );
        for bad in [
            json!({"status": 1}),
            json!({"status": {"status_list": {"idx": -1, "uri": "https://a"}}}),
            json!({"status": {"status_list": {"idx": 1}}}),
            json!({"status": {"status_list": {"idx": "1", "uri": "https://a"}}}),
        ] {
            assert_eq!(read(bad.clone()), StatusClaim::Malformed, "{bad}");
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://IdP.example/x").as_deref(),
            Some("https://idp.example:443")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/l/1").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("https://user@idp.example/x"), None);
        assert_eq!(origin("ftp://idp.example/x"), None);
        assert_ne!(
            origin("https://idp.example:8443/"),
            origin("https://idp.example/")
        );
    }
}
