//! The request path: route → admit (where every 401 is decided) → forward →
//! apply the route's revocation. [`Proxy::handle`] never fails: each error is
//! logged once and turned into a response in [`error`].

pub mod admit;
pub mod error;
pub mod forward;
pub mod h1;
pub mod upgrade;

use crate::auth::extract::Fields;
use crate::auth::{Verified, Verifier};
use crate::config::{Action, AuthorizationForward, Settings, TokenSource};
use crate::metrics::Metrics;
use crate::revocation::{Revocations, WriteStatus};
use crate::routes::{normalize, NormalizedPath, RouteTable, Rule};
use bytes::Bytes;
use error::ProxyError;
use forward::Upstream;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Response body: the upstream's, streamed, or a short synthetic one.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Response header telling the caller of a revoke/purge route whether the
/// revocation has reached the store (`stored`) or is held locally (`pending`).
pub const REVOCATION_STATUS: &str = "revocation-status";

/// What an access line reports about one request (never its query or token).
/// Built only while access lines are on: no per-request copies otherwise.
pub(crate) struct AccessLine {
    method: String,
    path: String,
    subject: Option<String>,
    started: Instant,
}

/// The route and admission decided for one request, before it goes anywhere.
pub(crate) struct Admitted<'p> {
    pub path: NormalizedPath,
    pub rule: &'p Rule,
    /// The verified token, for routes that require one.
    pub verified: Option<Arc<Verified>>,
}

pub struct Proxy {
    pub verifier: Verifier,
    pub routes: RouteTable,
    pub revocations: Arc<Revocations>,
    pub metrics: Arc<Metrics>,
    upstream: Upstream,
    token_from: Vec<TokenSource>,
    identity_headers: Vec<HeaderName>,
    strip_authorization: bool,
    realm: String,
    /// `revocation.on_store_failure: allow`.
    allow_on_store_failure: bool,
}

impl Proxy {
    pub fn new(
        settings: &Settings,
        verifier: Verifier,
        revocations: Arc<Revocations>,
        metrics: Arc<Metrics>,
    ) -> Result<Proxy, crate::config::Problem> {
        let upstream = Upstream::new(settings).map_err(|message| crate::config::Problem {
            path: "upstream".into(),
            message,
        })?;
        let identity_headers = settings
            .forward
            .claims_to_headers
            .iter()
            .filter_map(|(_, h)| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(Proxy {
            verifier,
            routes: RouteTable::new(&settings.routes),
            revocations,
            metrics,
            upstream,
            token_from: settings.jwt.token_from.clone(),
            identity_headers,
            strip_authorization: settings.forward.authorization == AuthorizationForward::Strip,
            realm: settings.jwt.realm.clone(),
            allow_on_store_failure: settings.revocation.on_store_failure
                == crate::config::OnStoreFailure::Allow,
        })
    }

    /// The upstream this proxy was built with.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Handles one request through `upstream` (the worker's pool); never fails.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
        upstream: &Upstream,
    ) -> Response<Body> {
        let mut access = self.access_line(req.method().as_str());
        let result = self
            .handle_inner(req, client, tls, upstream, access.as_mut())
            .await;
        let (resp, outcome) = match result {
            Ok(resp) => (resp, "ok"),
            Err(e) => {
                let outcome = self.failed(&e);
                (e.to_response(&self.realm).map(Either::Right), outcome)
            }
        };
        self.record(access, resp.status().as_u16(), outcome);
        resp
    }

    async fn handle_inner(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
        upstream: &Upstream,
        access: Option<&mut AccessLine>,
    ) -> Result<Response<Body>, ProxyError> {
        let admitted = self
            .route_and_admit(
                req.method().as_str(),
                req.uri().path(),
                req.headers(),
                req.uri().query(),
                access,
            )
            .await?;
        let verified = &admitted.verified;

        let wants_upgrade =
            upgrade::requested(req.headers()).filter(|_| req.version() == http::Version::HTTP_11);
        let headers = req.headers_mut();
        forward::strip_hop_by_hop(headers);
        if let Some(protocol) = &wants_upgrade {
            upgrade::restore(headers, protocol.clone());
        }
        forward::strip_identity(headers, &self.identity_headers);
        if let Some(v) = verified {
            for (name, value) in &v.forwarded {
                headers.insert(name.clone(), value.clone());
            }
            if self.strip_authorization {
                headers.remove(AUTHORIZATION);
            }
        }

        if let Some((status, written)) = self.respond_locally(&admitted).await {
            let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(REVOCATION_STATUS, HeaderValue::from_static(written.label()));
            return Ok(resp);
        }

        let client_upgrade = wants_upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let sent = Instant::now();
        let resp = upstream.send(req, &admitted.path.strict, client, tls).await;
        self.metrics.upstream_latency.observe(sent.elapsed());
        let mut resp = resp?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::UpstreamFailed(
                    "upstream switched protocols without being asked".into(),
                ));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            upgrade::tunnel(
                client_upgrade,
                upstream_upgrade,
                self.revocations.clone(),
                verified.clone(),
            );
            return Ok(resp);
        }
        if let Some(written) = self.after_upstream(&admitted, resp.status()).await {
            resp.headers_mut()
                .insert(REVOCATION_STATUS, HeaderValue::from_static(written.label()));
        }
        Ok(resp)
    }

    /// An access line for a request, when access lines are on.
    pub(crate) fn access_line(&self, method: &str) -> Option<AccessLine> {
        tracing::enabled!(target: "access", tracing::Level::INFO).then(|| AccessLine {
            method: method.to_string(),
            path: String::new(),
            subject: None,
            started: Instant::now(),
        })
    }

    /// Normalizes the path, finds its route and, when the route wants a token,
    /// admits the request (see [`admit`]).
    pub(crate) async fn route_and_admit<F: Fields + ?Sized>(
        &self,
        method: &str,
        raw_path: &str,
        fields: &F,
        query: Option<&str>,
        mut access: Option<&mut AccessLine>,
    ) -> Result<Admitted<'_>, ProxyError> {
        let path = normalize(raw_path)?;
        if let Some(a) = access.as_deref_mut() {
            a.path.clone_from(&path.strict);
        }
        let rule = self.routes.find(method, &path);
        let verified = if rule.auth {
            let v = self.admit_parts(fields, query).await?;
            if let Some(a) = access {
                a.subject = Some(v.subject.as_text().to_string());
            }
            Some(v)
        } else {
            None
        };
        Ok(Admitted {
            path,
            rule,
            verified,
        })
    }

    /// A `respond:` route carries out its action and answers by itself.
    pub(crate) async fn respond_locally(
        &self,
        a: &Admitted<'_>,
    ) -> Option<(StatusCode, WriteStatus)> {
        let (Some(code), Some(action), Some(v)) = (a.rule.respond, a.rule.action, &a.verified)
        else {
            return None;
        };
        let written = self.apply(action, v).await;
        Some((
            StatusCode::from_u16(code).unwrap_or(StatusCode::NO_CONTENT),
            written,
        ))
    }

    /// Once the upstream has answered: the route's action, when its status applies.
    pub(crate) async fn after_upstream(
        &self,
        a: &Admitted<'_>,
        status: StatusCode,
    ) -> Option<WriteStatus> {
        let (Some(action), Some(v)) = (a.rule.action, &a.verified) else {
            return None;
        };
        if !applies(a.rule, status) {
            return None;
        }
        Some(self.apply(action, v).await)
    }

    /// The outcome label of a failed request; upstream failures are logged here, once.
    pub(crate) fn failed(&self, e: &ProxyError) -> &'static str {
        if matches!(
            e,
            ProxyError::UpstreamFailed(_) | ProxyError::UpstreamTimeout
        ) {
            tracing::warn!(error = %e, "Upstream request failed");
        }
        e.outcome()
    }

    /// Counts the outcome and writes the access line, if any.
    pub(crate) fn record(&self, access: Option<AccessLine>, status: u16, outcome: &'static str) {
        self.metrics.outcome(outcome);
        if let Some(a) = access {
            tracing::info!(
                target: "access",
                method = %a.method,
                path = %a.path,
                status,
                outcome,
                subject = a.subject.as_deref().unwrap_or("-"),
                duration_us = a.started.elapsed().as_micros() as u64,
                "Request"
            );
        }
    }

    /// Carries out a route's action for the presented token.
    async fn apply(&self, action: Action, v: &Verified) -> WriteStatus {
        let r = &self.revocations;
        let token = r
            .revoke_token(v.subject.clone(), v.token_id.clone(), v.exp, None)
            .await;
        self.metrics.revocation("token");
        let status = if action == Action::Purge {
            self.metrics.revocation("subject");
            match r.purge_subject(v.subject.clone(), None).await {
                WriteStatus::Stored => token,
                WriteStatus::Pending => WriteStatus::Pending,
            }
        } else {
            token
        };
        tracing::info!(action = ?action, subject = v.subject.as_text(), status = status.label(), "Revocation applied");
        status
    }
}

fn applies(rule: &Rule, status: StatusCode) -> bool {
    rule.apply_on.iter().any(|m| m.matches(status.as_u16()))
}
