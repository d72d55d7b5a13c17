//! Admission: where every 401 is decided. Extract the token, verify it, then
//! check the revocation set — in that order, so unsigned junk never costs a
//! revocation lookup. A store that cannot answer is `on_store_failure`'s call:
//! 503 (`deny`) or let the verified token through (`allow`); never a 401.

use super::error::ProxyError;
use super::Proxy;
use crate::auth::extract::Fields;
use crate::auth::{extract, AuthError, Verified};
use crate::revocation::Verdict;
use std::sync::Arc;

impl Proxy {
    /// Admits a request carrying one valid, unrevoked token; rejects the rest.
    pub async fn admit_parts<F: Fields + ?Sized>(
        &self,
        headers: &F,
        query: Option<&str>,
    ) -> Result<Arc<Verified>, ProxyError> {
        let started = std::time::Instant::now();
        let found = extract(headers, query, &self.token_from)?.ok_or(AuthError::Missing)?;
        let token = found.token;
        let now = self.revocations.clock().now();
        if !self.verifier.keys_ready() {
            return Err(ProxyError::KeysUnavailable);
        }
        let mut verified = self.verifier.verify(&token, now);
        if let (Err(AuthError::UnknownKey), Some(jwks)) = (&verified, &self.verifier.keys.jwks) {
            // Key rotation at the issuer: refresh once (rate-limited), retry.
            if jwks.refresh_for_unknown_kid().await {
                verified = self.verifier.verify(&token, now);
            }
        }
        self.metrics.verify_latency.observe(started.elapsed());
        let verified = verified?;
        let verdict = self
            .revocations
            .verdict(verified.token_ref(), &verified.keys, verified.iat)
            .await;
        match verdict {
            Verdict::Clear => Ok(verified),
            Verdict::Revoked(reason) => Err(ProxyError::Revoked(reason)),
            Verdict::Unavailable if self.allow_on_store_failure => Ok(verified),
            Verdict::Unavailable => Err(ProxyError::StoreUnavailable),
        }
    }
}
