//! The request path: route → admit (where every 401 is decided) → forward →
//! apply the route's revocation. [`Proxy::handle`] never fails: each error is
//! logged once and turned into a response in [`error`].
//!
//! Owns: admission, actions, the header policy ([`hygiene`]), the error
//! table, the hyper-path upstream client, upgrades.
//! May import: config, claims, auth, routes, revocation, intake, metrics, tls.

pub mod admit;
pub mod error;
pub mod forward;
pub mod hygiene;
mod intake;
pub mod upgrade;

use crate::auth::extract::Fields;
use crate::auth::{Verified, Verifier};
use crate::config::{Action, Settings, TokenSource};
use crate::metrics::Metrics;
pub use crate::metrics::Outcome;
use crate::revocation::{Revocations, WriteStatus};
use crate::routes::{normalize, NormalizedPath, RouteTable, Rule};
use bytes::Bytes;
use error::ProxyError;
use forward::Upstream;
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hygiene::{Field, Policy};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The proxy in service; a configuration reload swaps it atomically.
pub type LiveProxy = Arc<arc_swap::ArcSwap<Proxy>>;

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
    /// The verified token's subject, also on a denial that came after
    /// verification (revoked, store unavailable).
    subject: Option<String>,
    client: std::net::IpAddr,
    request_id: Option<String>,
    started: Instant,
}

/// The route and admission decided for one request, before it goes anywhere.
pub(crate) struct Admitted<'p> {
    pub path: NormalizedPath,
    pub rule: &'p Rule,
    /// The verified token: on routes that require one, and on public
    /// routes whose request carries one that passes.
    pub verified: Option<Arc<Verified>>,
    /// A public route's request carried a token that did not pass (invalid,
    /// revoked, unreadable): served, but without it.
    pub unchecked_token: bool,
    /// The proxy's clock when the request arrived: a purge's cutoff, so a
    /// token the app mints while answering it is never caught by it.
    pub arrived: i64,
}

pub struct Proxy {
    pub verifier: Arc<Verifier>,
    pub routes: RouteTable,
    pub revocations: Arc<Revocations>,
    pub metrics: Arc<Metrics>,
    upstream: Upstream,
    token_from: Vec<TokenSource>,
    /// The one header policy of both request paths.
    pub policy: Policy,
    realm: String,
    /// `revocation.on_store_failure: allow`.
    allow_on_store_failure: bool,
    /// Revocations from identity providers (`intake:`), when configured.
    pub intake: Option<Arc<crate::intake::Intake>>,
    /// Longest an intake request may take to send its body.
    intake_body_timeout: std::time::Duration,
    /// Token status lists (`intake.status_list.enabled`).
    pub status_lists: Option<Arc<crate::auth::status_list::StatusLists>>,
}

impl Proxy {
    pub fn new(
        settings: &Settings,
        verifier: Verifier,
        revocations: Arc<Revocations>,
        metrics: Arc<Metrics>,
    ) -> Result<Proxy, Vec<crate::config::Problem>> {
        let mut problems = hygiene::check(&settings.forward);
        let intake = crate::intake::Intake::new(settings, revocations.clone(), metrics.clone())
            .map_err(|p| problems.extend(p))
            .ok()
            .flatten()
            .map(Arc::new);
        let status_lists = settings.intake.status_lists().and_then(|lists| {
            crate::auth::status_list::StatusLists::new(
                lists,
                &settings.intake.issuers,
                verifier.keys.clone(),
                metrics.clone(),
                {
                    let clock = revocations.clock().clone();
                    Arc::new(move || clock.now())
                },
            )
            .map_err(|p| problems.extend(p))
            .ok()
            .map(Arc::new)
        });
        let upstream = Upstream::new(settings).map_err(|message| crate::config::Problem {
            path: "upstream".into(),
            message,
        });
        let upstream = match upstream {
            Ok(u) if problems.is_empty() => u,
            Ok(_) => return Err(problems),
            Err(p) => {
                problems.push(p);
                return Err(problems);
            }
        };
        Ok(Proxy {
            verifier: Arc::new(verifier),
            routes: RouteTable::new(&settings.routes),
            revocations,
            metrics,
            upstream,
            token_from: settings.jwt.token_from.clone(),
            policy: Policy::new(&settings.forward).with_token_headers(&settings.jwt.token_from),
            realm: settings.jwt.realm.clone(),
            allow_on_store_failure: settings.revocation.on_store_failure
                == crate::config::OnStoreFailure::Allow,
            intake,
            intake_body_timeout: settings.timeouts.client_header,
            status_lists,
        })
    }

    /// The JWKS of the identity providers (intake signals and status
    /// lists), to be kept fresh by the caller.
    pub fn issuer_jwks(&self) -> Vec<Arc<crate::auth::jwks::Jwks>> {
        let intake = self.intake.iter().flat_map(|i| i.jwks());
        let lists = self.status_lists.iter().flat_map(|l| l.jwks());
        intake.chain(lists).cloned().collect()
    }

    /// Gives the status lists their fetcher.
    pub fn use_fetcher(&self, fetcher: &Arc<dyn crate::auth::jwks::Fetch>) {
        if let Some(lists) = &self.status_lists {
            lists.use_fetcher(fetcher.clone());
        }
    }

    /// Takes over `old`'s memory of applied identity-provider signals, so
    /// a reload does not make a replayed one new again.
    pub fn keep_replay_of(&mut self, old: &Proxy) {
        if let (Some(new), Some(old)) = (
            self.intake.as_mut().and_then(Arc::get_mut),
            old.intake.as_deref(),
        ) {
            new.keep_replay_of(old);
        }
    }

    /// The realm of `WWW-Authenticate` challenges (`jwt.realm`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The upstream this proxy was built with.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// A request whose effect must not depend on the client staying: a
    /// route with an action (the app logs the user out whatever the client
    /// does meanwhile) or an intake endpoint. The hyper path serves these in
    /// a task of their own, so a client that resets its stream or closes
    /// the connection does not cancel the exchange or the revocation.
    pub fn outlives_client<B>(&self, req: &Request<B>) -> bool {
        // One normalization for both questions: this runs for every request
        // the hyper path serves.
        normalize(req.uri().path()).is_ok_and(|p| {
            let intake = self.intake.as_deref();
            intake.is_some_and(|i| i.endpoint(&p.loose).is_some())
                || self.routes.find(req.method().as_str(), &p).action.is_some()
        })
    }

    /// The answer when a request's own task failed (it cannot: nothing on
    /// the request path panics; a 502 rather than a dropped connection).
    pub fn task_failed(&self) -> Response<Body> {
        ProxyError::UpstreamFailed("request task failed".into())
            .to_response(&self.realm)
            .map(Either::Right)
    }

    /// Handles one request through `upstream` (the worker's pool); never fails.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
        upstream: &Upstream,
    ) -> Response<Body> {
        let rid = self.policy.request_id(req.headers());
        let mut access = self.access_line(req.method().as_str(), client, req.headers(), rid);
        if hygiene::unknown_transfer_coding(req.headers()) {
            // hyper takes the chunking off and the rest would reach the app
            // (or an intake endpoint) as if it were the body itself.
            let e = ProxyError::Unsupported("transfer coding other than chunked");
            self.record(access, 501, self.failed(&e), Some(e.reason()));
            return e.to_response(&self.realm).map(Either::Right);
        }
        if let Some((intake, endpoint)) = self.intake_endpoint(req.uri().path()) {
            if let Some(a) = access.as_mut() {
                a.path = req.uri().path().to_string();
            }
            let resp = self.answer_intake(intake, endpoint, req).await;
            self.record(access, resp.status().as_u16(), Outcome::Ok, None);
            return resp;
        }
        let result = self
            .handle_inner(req, client, tls, upstream, rid, access.as_mut())
            .await;
        let (resp, outcome, reason) = match result {
            Ok(resp) => (resp, Outcome::Ok, None),
            Err(e) => {
                let outcome = self.failed(&e);
                let resp = e.to_response(&self.realm).map(Either::Right);
                (resp, outcome, Some(e.reason()))
            }
        };
        self.record(access, resp.status().as_u16(), outcome, reason);
        resp
    }

    async fn handle_inner(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
        tls: bool,
        upstream: &Upstream,
        rid: hygiene::RequestId,
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
        let protocol = upgrade::allowed(admitted.rule, req.headers(), req.version());
        let at = Hop { client, tls, rid };
        let query = self.rewrite_request(&mut req, at, verified.as_deref(), &admitted, upstream)?;
        if let Some(p) = &protocol {
            upgrade::restore(req.headers_mut(), p.clone());
        }

        if let Some((status, written)) = self.respond_locally(&admitted).await {
            let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
            *resp.status_mut() = status;
            hygiene::add_action_fields(resp.headers_mut(), admitted.rule, written);
            return Ok(resp);
        }

        let client_upgrade = protocol.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let sent = Instant::now();
        let resp = upstream.send(req, &admitted.path.strict, query).await;
        self.metrics.upstream_latency.observe(sent.elapsed());
        let mut resp = resp?;
        let switched_to = resp.headers().get(UPGRADE).cloned();
        self.rewrite_response(resp.headers_mut());
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_upgrade), Some(to)) = (client_upgrade, switched_to) else {
                return Err(ProxyError::UpstreamFailed(
                    "upstream switched protocols without being asked".into(),
                ));
            };
            return Ok(self.tunnel(resp, client_upgrade, to, verified.clone()));
        }
        let mut resp = resp.map(Either::Left);
        if let Some(written) = self.after_upstream(&admitted, resp.status()).await {
            hygiene::add_action_fields(resp.headers_mut(), admitted.rule, written);
        }
        Ok(resp)
    }

    /// Joins the client's and the upstream's upgraded connections in a
    /// tunnel that closes when the token stops being admissible.
    fn tunnel(
        &self,
        mut resp: Response<Incoming>,
        client_upgrade: hyper::upgrade::OnUpgrade,
        to: HeaderValue,
        verified: Option<Arc<crate::auth::Verified>>,
    ) -> Response<Body> {
        upgrade::restore(resp.headers_mut(), to);
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        upgrade::tunnel(
            client_upgrade,
            upstream_upgrade,
            self.revocations.clone(),
            self.status_lists.clone(),
            verified,
            self.verifier.leeway(),
            self.allow_on_store_failure,
        );
        resp.map(Either::Left)
    }

    /// The request's fields as the header policy has them: dropped, kept,
    /// and the proxy's own added; returns the query the upstream receives.
    fn rewrite_request(
        &self,
        req: &mut Request<Incoming>,
        at: Hop,
        verified: Option<&Verified>,
        admitted: &Admitted<'_>,
        upstream: &Upstream,
    ) -> Result<Option<String>, ProxyError> {
        let (drop, added, query, cookie) = {
            let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
            let mut view = self
                .policy
                .view(
                    req.headers(),
                    authority,
                    req.version() == http::Version::HTTP_11,
                    at.client.ip(),
                    at.tls,
                    at.rid,
                )
                .map_err(|_| ProxyError::BadRequest("bad Host"))?;
            if verified.is_some() {
                self.policy.verified(&mut view);
            }
            if admitted.unchecked_token {
                self.policy.unchecked(&mut view);
            }
            let query = self
                .policy
                .query(&view, req.uri().query())
                .map(|q| q.into_owned());
            // h2 cookie crumbs are joined below; a token cookie that did
            // not pass is left out first.
            let cookie = admitted.unchecked_token.then(|| {
                self.policy.cookies(
                    &view,
                    req.headers()
                        .get_all(http::header::COOKIE)
                        .iter()
                        .map(|v| v.as_bytes()),
                )
            });
            let drop: Vec<HeaderName> = req
                .headers()
                .keys()
                .filter(|k| match self.policy.request_field(&view, k.as_str()) {
                    Field::Keep => false,
                    Field::Drop => true,
                    // hyper frames the upstream body itself.
                    Field::Framing => *k == TRANSFER_ENCODING,
                })
                .cloned()
                .collect();
            let mut added = Vec::with_capacity(8);
            let claims = verified.map_or(&[][..], |v| &v.forwarded);
            self.policy
                .added_fields(&view, claims, upstream.authority(), |name, value| {
                    if let Ok(v) = HeaderValue::from_bytes(value) {
                        added.push((name.to_header_name(), v));
                    }
                });
            (drop, added, query, cookie)
        };
        let h = req.headers_mut();
        for name in drop {
            h.remove(name);
        }
        for (name, value) in added {
            h.append(name, value);
        }
        match cookie {
            None => join_cookies(h),
            Some(kept) => {
                h.remove(http::header::COOKIE);
                if let Some(v) = kept.and_then(|k| HeaderValue::from_bytes(&k).ok()) {
                    h.insert(http::header::COOKIE, v);
                }
            }
        }
        Ok(query)
    }

    /// Drops the upstream response fields the header policy refuses.
    fn rewrite_response(&self, headers: &mut http::HeaderMap) {
        let drop: Vec<HeaderName> = {
            let connection = self.policy.response_connection(&*headers);
            headers
                .keys()
                .filter(|k| self.policy.response_field(&connection, k.as_str()) == Field::Drop)
                .cloned()
                .collect()
        };
        for name in drop {
            headers.remove(name);
        }
    }

    /// An access line for a request, when access lines are on.
    pub(crate) fn access_line<F: Fields + ?Sized>(
        &self,
        method: &str,
        client: SocketAddr,
        fields: &F,
        rid: hygiene::RequestId,
    ) -> Option<AccessLine> {
        tracing::enabled!(target: "access", tracing::Level::INFO).then(|| AccessLine {
            method: method.to_string(),
            path: String::new(),
            subject: None,
            client: client.ip(),
            request_id: self.policy.request_id_text(fields, rid),
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
        // A tunnel to wherever the client names is not a reverse proxy's
        // to open, on either path (nginx answers 400 too).
        if method == "CONNECT" {
            return Err(ProxyError::BadRequest("CONNECT is not proxied"));
        }
        let arrived = self.revocations.clock().now();
        let path = normalize(raw_path)?;
        if let Some(a) = access.as_deref_mut() {
            a.path.clone_from(&path.strict);
        }
        let rule = self.routes.find(method, &path);
        let (verified, unchecked_token) = if rule.auth {
            let admitted = self
                .admit_noting(fields, query, access.map(|a| &mut a.subject), arrived)
                .await?;
            (Some(admitted), false)
        } else {
            self.public_token(fields, query, arrived).await
        };
        Ok(Admitted {
            path,
            rule,
            verified,
            unchecked_token,
            arrived,
        })
    }

    /// A public route's token, when its request carries one: checked like
    /// any other. One that passes goes on as on a protected route (claim
    /// headers, `forward.authorization`); one that does not is taken out of
    /// the request, which is still served: the app never reads a token that
    /// did not pass (a revoked session cookie on a public page, say).
    async fn public_token<F: Fields + ?Sized>(
        &self,
        fields: &F,
        query: Option<&str>,
        now: i64,
    ) -> (Option<Arc<Verified>>, bool) {
        match self.admit_noting(fields, query, None, now).await {
            Ok(v) => (Some(v), false),
            Err(ProxyError::Auth(crate::auth::AuthError::Missing)) => (None, false),
            Err(_) => (None, true),
        }
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
        let written = self.apply(action, v, a.arrived).await;
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
        Some(self.apply(action, v, a.arrived).await)
    }

    /// The outcome label of a failed request; upstream failures are logged here, once.
    pub(crate) fn failed(&self, e: &ProxyError) -> Outcome {
        if matches!(
            e,
            ProxyError::UpstreamFailed(_) | ProxyError::UpstreamTimeout
        ) {
            tracing::warn!(error = %e, "Upstream request failed");
        }
        e.outcome()
    }

    /// Counts the outcome and writes the access line, if any; `reason`
    /// says why a request was refused or failed.
    pub(crate) fn record(
        &self,
        access: Option<AccessLine>,
        status: u16,
        outcome: Outcome,
        reason: Option<&'static str>,
    ) {
        self.metrics.outcome(outcome);
        if let Some(a) = access {
            tracing::info!(
                target: "access",
                method = %a.method,
                path = %a.path,
                status,
                outcome = outcome.label(),
                reason,
                subject = a.subject.as_deref().unwrap_or("-"),
                client = %a.client,
                request_id = a.request_id.as_deref(),
                duration_us = a.started.elapsed().as_micros() as u64,
                "Request"
            );
        }
    }

    /// Carries out a route's action for the presented token; a purge's
    /// cutoff is `arrived`, the second the request came in.
    async fn apply(&self, action: Action, v: &Verified, arrived: i64) -> WriteStatus {
        let r = &self.revocations;
        let token = r
            .revoke_token(v.subject.clone(), v.token_id.clone(), v.exp, None)
            .await;
        self.metrics.revocation("token");
        let status = if action == Action::Purge {
            self.metrics.revocation("subject");
            match r.purge_subject_at(v.subject.clone(), arrived, None).await {
                WriteStatus::Stored => token,
                WriteStatus::Pending => WriteStatus::Pending,
            }
        } else {
            token
        };
        let kind = if action == Action::Purge {
            "subject"
        } else {
            "token"
        };
        self.metrics.audit(crate::metrics::AuditEvent {
            at: arrived,
            source: "route",
            kind,
            subject: Some(v.subject.as_text().to_string()),
            status: status.label(),
        });
        tracing::info!(
            target: "audit",
            action = action.label(),
            kind,
            subject = v.subject.as_text(),
            token_id = v.token_id.as_text(),
            status = status.label(),
            "Revocation applied"
        );
        status
    }
}

/// Cookie crumbs (h2 sends each cookie as its own field) joined into one
/// `Cookie` field with `"; "` before they go to an HTTP/1.1 upstream
/// (RFC 9113 §8.2.3): an app that joins repeated fields with `,` would
/// otherwise read one garbled cookie.
fn join_cookies(h: &mut http::HeaderMap) {
    let mut crumbs = h.get_all(http::header::COOKIE).iter();
    if crumbs.nth(1).is_none() {
        return;
    }
    let mut joined = Vec::new();
    for crumb in h.get_all(http::header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(http::header::COOKIE, v);
    }
}

/// Where a request came from, as the header policy needs it.
#[derive(Clone, Copy)]
struct Hop {
    client: SocketAddr,
    tls: bool,
    rid: hygiene::RequestId,
}

fn applies(rule: &Rule, status: StatusCode) -> bool {
    rule.apply_on.iter().any(|m| m.matches(status.as_u16()))
}
