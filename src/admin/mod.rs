//! The admin endpoints: `/healthz`, `/readyz`, `/metrics` (open) and the
//! revocation API under `/v1/` ([`api`], admin token required). Served on a
//! listener of its own (`server::serve_admin`), never proxied.
//!
//! Owns: health, readiness, metrics text, the /v1/ API and its CLI client.
//! May import: config, claims, auth, revocation, metrics, logging, exit.

pub mod api;
pub mod body;
pub mod client;

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
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// `/metrics`: the Prometheus text exposition.
    fn metrics(&self) -> Response<Full<Bytes>> {
        let r = &self.revocations;
        let body = self.metrics.render(&[
            (
                "revoke_proxy_revocations_live",
                "Live revocation entries in memory.",
                r.len() as u64,
            ),
            (
                "revoke_proxy_revocations_pending",
                "Revocations not yet taken by the store.",
                r.pending() as u64,
            ),
            (
                "revoke_proxy_store_errors",
                "Failed store operations since start.",
                r.store_errors(),
            ),
            (
                "revoke_proxy_store_sync_lag_ms",
                "Milliseconds since the store last proved healthy (0 for local stores).",
                r.sync_lag().as_millis() as u64,
            ),
            (
                "revoke_proxy_log_lines_dropped",
                "Log lines dropped because stdout could not keep up.",
                crate::logging::dropped_lines(),
            ),
            (
                "revoke_proxy_store_available",
                "1 while the revocation store is usable, else 0.",
                u64::from(r.available()),
            ),
            (
                "revoke_proxy_verify_cache_hits",
                "Tokens verified from the cache.",
                self.verifier().cache_hits(),
            ),
            (
                "revoke_proxy_store_log_position_seconds",
                "Unix time of the last change log entry read (0: none yet).",
                r.sync.position_ms() / 1000,
            ),
        ]);
        let body = sync_metrics(body, &r.sync);
        let mut resp = text(StatusCode::OK, &body);
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        resp
    }
}

/// The replica's change-log figures, appended to the exposition.
fn sync_metrics(mut out: String, s: &crate::revocation::sync::SyncStats) -> String {
    use std::fmt::Write as _;
    out.push_str(
        "# HELP revoke_proxy_store_full_loads_total Loads of every key from the store, by reason.\n\
         # TYPE revoke_proxy_store_full_loads_total counter\n",
    );
    for (reason, source, n) in s.full_loads_by_source() {
        let _ = writeln!(
            out,
            "revoke_proxy_store_full_loads_total{{reason=\"{reason}\",source=\"{source}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP revoke_proxy_store_log_entries_total Entries read from the change log.\n\
         # TYPE revoke_proxy_store_log_entries_total counter\n\
         revoke_proxy_store_log_entries_total {}",
        s.log_entries()
    );
    s.propagation_lag.render(
        &mut out,
        "revoke_proxy_propagation_lag_seconds",
        "Time from a revocation's write on any replica to its apply here.",
    );
    out
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
