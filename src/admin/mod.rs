//! The admin endpoints: `/` (a status page), `/healthz`, `/readyz`,
//! `/metrics` (open) and the
//! revocation API under `/v1/` ([`api`], admin token required). Served on a
//! listener of its own (`server::serve_admin`), never proxied.
//!
//! Owns: health, readiness, metrics text, the /v1/ API and its CLI client.
//! May import: config, claims, auth, revocation, metrics, logging, exit.

pub mod api;
pub mod body;
pub mod client;
pub mod status_page;

use crate::auth::Verifier;
use crate::metrics::Metrics;
use crate::revocation::Revocations;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Admin {
    pub revocations: Arc<Revocations>,
    pub metrics: Arc<Metrics>,
    /// False once shutdown has begun.
    pub ready: AtomicBool,
    /// The verifier in service now (a reload swaps it).
    pub verifier: Box<dyn Fn() -> Arc<Verifier> + Send + Sync>,
    /// SHA-256 of `admin.token`; `None` turns the `/v1/` API off.
    pub token_digest: Option<[u8; 32]>,
    pub claim_names: ClaimNames,
    /// What the status page says of the process.
    pub about: About,
}

/// Facts about the process for the status page, from the configuration.
pub struct About {
    /// The upstream in service now (a reload may change it).
    pub upstream: Box<dyn Fn() -> String + Send + Sync>,
    /// `memory`, `file`, `redis (replica)`…
    pub store: String,
    pub started: std::time::Instant,
}

/// The names of `revocation.subject_claim`, `token_claim` and
/// `session_claim`: the API's body members and query parameters follow them.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub subject: String,
    pub token: String,
    pub session: String,
}

impl Admin {
    /// The verifier in service now.
    pub fn verifier(&self) -> Arc<Verifier> {
        (self.verifier)()
    }

    pub async fn handle(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<Full<Bytes>> {
        if req.uri().path().starts_with("/v1/") {
            return self.api(req, remote).await;
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if !self.ready.load(Ordering::Relaxed) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: shutting down\n",
            ),
            "/readyz" if !self.verifier().keys_ready() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: signing keys (JWKS) not loaded\n",
            ),
            "/readyz" if !self.revocations.available() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: revocation store not synced\n",
            ),
            "/readyz" => text(StatusCode::OK, "ready\n"),
            "/metrics" => self.metrics(),
            "/" => self.status_page(),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// `/metrics`: the OpenMetrics text exposition.
    fn metrics(&self) -> Response<Full<Bytes>> {
        let r = &self.revocations;
        let body = self.metrics.exposition(crate::metrics::Scrape {
            revocations_live: r.len() as u64,
            revocations_pending: r.pending() as u64,
            store_errors: r.store_errors(),
            store_sync_lag_seconds: r.sync_lag().as_secs_f64(),
            store_available: r.available(),
            store_log_position_seconds: r.sync.position_ms() / 1000,
            store_log_entries: r.sync.log_entries(),
            store_full_loads: r.sync.full_loads_by_source(),
            store_given_back: r.sync.given_back(),
            propagation_lag: r.sync.propagation_lag.read(),
            verify_cache_hits: self.verifier().cache_hits(),
            log_lines_dropped: crate::logging::dropped_lines(),
        });
        let mut resp = text(StatusCode::OK, &body);
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        resp
    }
}

impl Admin {
    /// `/`: the status page, with headers that forbid scripts, framing and
    /// caching.
    fn status_page(&self) -> Response<Full<Bytes>> {
        let body = status_page::render(&self.facts());
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
        h.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        h.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        resp
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
