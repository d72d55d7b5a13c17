//! Admission: where every 401 is decided. Extract the token, verify it, then
//! check the revocation set — in that order, so unsigned junk never costs a
//! revocation lookup.

use super::error::ProxyError;
use super::Proxy;
use crate::auth::{extract, AuthError, Verified};
use http::Request;
use hyper::body::Incoming;
use std::sync::Arc;

impl Proxy {
    /// Admits a request carrying a valid, unrevoked token; rejects the rest.
    pub fn admit(&self, req: &Request<Incoming>) -> Result<Arc<Verified>, ProxyError> {
        self.admit_parts(req.headers(), req.uri().query())
    }

    /// [`Proxy::admit`] on plain values, for benchmarks and tests.
    pub fn admit_parts(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<Verified>, ProxyError> {
        let token = extract(headers, query, &self.token_from)?.ok_or(AuthError::Missing)?;
        let now = self.revocations.clock().now();
        let verified = self.verifier.verify(&token, now)?;
        if let Some(reason) = self.revocations.check(&verified.keys, verified.iat) {
            return Err(ProxyError::Revoked(reason));
        }
        Ok(verified)
    }
}
