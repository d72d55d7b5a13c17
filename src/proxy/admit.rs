//! Admission: where every 401 is decided. Extract the token, verify it, then
//! check the revocation set — in that order, so unsigned junk never costs a
//! revocation lookup. A store that cannot answer is `on_store_failure`'s call:
//! 503 (`deny`) or let the verified token through (`allow`); never a 401.

use super::error::{ListStatus, ProxyError};
use super::Proxy;
use crate::auth::extract::Fields;
use crate::auth::status_list::{ListError, StatusClaim, StatusLists};
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
        self.admit_noting(headers, query, None, self.revocations.clock().now())
            .await
    }

    /// [`Proxy::admit_parts`], noting the subject in `subject` as soon as
    /// the token verifies: an access line names whose revoked token it was.
    /// `now` is the proxy's clock when the request arrived.
    pub(crate) async fn admit_noting<F: Fields + ?Sized>(
        &self,
        headers: &F,
        query: Option<&str>,
        subject: Option<&mut Option<String>>,
        now: i64,
    ) -> Result<Arc<Verified>, ProxyError> {
        let started = std::time::Instant::now();
        let found = extract(headers, query, &self.token_from)?.ok_or(AuthError::Missing)?;
        let token = found.token;
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
        if let Some(s) = subject {
            *s = Some(verified.subject.as_text().to_string());
        }
        let verdict = self
            .revocations
            .verdict_with_compat(
                verified.token_ref(),
                &verified.keys,
                verified.iat,
                &verified.compat,
            )
            .await;
        match verdict {
            Verdict::Clear => {}
            Verdict::Revoked(reason) => return Err(ProxyError::Revoked(reason)),
            Verdict::Unavailable if self.allow_on_store_failure => {}
            Verdict::Unavailable => return Err(ProxyError::StoreUnavailable),
        }
        self.check_status_list(&verified, now).await?;
        Ok(verified)
    }
    /// The token's entry in its status list, when lists are checked and
    /// it names one: after the signature and the local set, never before,
    /// so an unverified token never causes a fetch.
    async fn check_status_list(&self, v: &Verified, now: i64) -> Result<(), ProxyError> {
        match &self.status_lists {
            Some(lists) => status_list_verdict(lists, v, now, self.allow_on_store_failure).await,
            None => Ok(()),
        }
    }
}

/// What `lists` say of a verified token at `now`: the one rule of
/// admission and of upgraded connections' re-checks.
pub async fn status_list_verdict(
    lists: &Arc<StatusLists>,
    v: &Verified,
    now: i64,
    allow_on_store_failure: bool,
) -> Result<(), ProxyError> {
    let (uri, idx) = match &v.status {
        StatusClaim::None => return Ok(()),
        StatusClaim::Malformed => return Err(AuthError::invalid("malformed status claim").into()),
        StatusClaim::List { uri, idx } => (uri, *idx),
    };
    match lists.status(uri, idx, now).await {
        Ok(0) => Ok(()),
        Ok(1) => Err(ProxyError::ListStatus(ListStatus::Invalid)),
        Ok(2) => Err(ProxyError::ListStatus(ListStatus::Suspended)),
        Ok(_) => Err(AuthError::invalid("token status is not valid").into()),
        Err(ListError::NotAllowed) => Err(AuthError::invalid("status list not allowed").into()),
        Err(ListError::OutOfRange) => {
            Err(AuthError::invalid("status index outside the list").into())
        }
        Err(ListError::Unavailable) if allow_on_store_failure => Ok(()),
        Err(ListError::Unavailable) => Err(ProxyError::StoreUnavailable),
    }
}
