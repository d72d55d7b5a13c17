//! The revocation API under `/v1/` (README, "Admin API and CLI"): revoke, purge, status. Every
//! call needs `Authorization: Bearer <admin.token>` (compared in constant
//! time); every change is logged as an audit line (remote address, kind,
//! subject; never a token) and goes through the same [`Revocations`] door as
//! intercepted routes, so it reaches every replica.

use super::body::{claim, object_and_lifetime};
pub use super::body::{form_pairs, parse_purge, Purge};
use super::Admin;
use crate::auth::Verified;
use crate::claims::{ClaimValue, KeyHashes};
use crate::revocation::{TokenRef, Verdict, WriteStatus};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// Every answer under `/v1/` carries this field, so a client can tell the
/// admin listener from the proxy port.
pub const ADMIN_HEADER: &str = "revoke-proxy-admin";

/// Largest request body the API reads (64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Digest of the admin token; requests are compared digest to digest.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two digests.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn bad_request(message: impl Into<String>) -> Reply {
    reply(
        StatusCode::BAD_REQUEST,
        json!({ "error": "invalid_request", "error_description": message.into() }),
    )
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "error": "method_not_allowed", "error_description": format!("use {allow}") }),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

impl Admin {
    /// Answers one `/v1/…` request.
    pub(super) async fn api(&self, req: Request<Incoming>, remote: SocketAddr) -> Reply {
        let mut resp = self.api_inner(req, remote).await;
        resp.headers_mut()
            .insert(ADMIN_HEADER, HeaderValue::from_static("v1"));
        resp
    }

    async fn api_inner(&self, req: Request<Incoming>, remote: SocketAddr) -> Reply {
        let Some(expected) = &self.token_digest else {
            return reply(
                StatusCode::FORBIDDEN,
                json!({ "error": "disabled", "error_description": "the admin API is off: set admin.token" }),
            );
        };
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 9110 §11.1).
                let scheme = v.get(..7)?;
                scheme.eq_ignore_ascii_case("bearer ").then(|| v.get(7..))?
            })
            .map(|t| token_digest(t.trim()));
        if !given.is_some_and(|g| same(&g, expected)) {
            tracing::warn!(target: "audit", remote = %remote, path = req.uri().path(), "Admin API call refused: bad or missing admin token");
            let why = if given.is_some() {
                "admin token refused: it is not this proxy's admin.token"
            } else {
                "admin token required: send Authorization: Bearer <admin.token>"
            };
            let mut r = reply(
                StatusCode::UNAUTHORIZED,
                json!({ "error": "unauthorized", "error_description": why }),
            );
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"revoke-proxy-admin\""),
            );
            return r;
        }
        let path = req.uri().path().to_string();
        match (path.as_str(), req.method()) {
            ("/v1/revoke", &Method::POST) => match read_body(req).await {
                Ok(Body::Json(v)) => self.revoke_json(v, remote).await,
                Ok(Body::Form(f)) => self.revoke_form(&f, remote).await,
                Err(r) => r,
            },
            ("/v1/purge", &Method::POST) => match read_body(req).await {
                Ok(Body::Json(v)) => self.purge(v, remote).await,
                Ok(Body::Form(_)) => bad_request("purge takes a JSON body"),
                Err(r) => r,
            },
            ("/v1/global-token-revocation", &Method::POST) => match read_body(req).await {
                Ok(Body::Json(v)) => self.global_token_revocation(v, remote).await,
                Ok(Body::Form(_)) => bad_request("global token revocation takes a JSON body"),
                Err(r) => r,
            },
            ("/v1/status", &Method::GET) => self.status(req.uri().query().unwrap_or("")).await,
            ("/v1/revoke" | "/v1/purge" | "/v1/global-token-revocation", _) => {
                method_not_allowed("POST")
            }
            ("/v1/status", _) => method_not_allowed("GET"),
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({ "error": "not_found", "error_description": "no such admin endpoint" }),
            ),
        }
    }

    fn verify_token(&self, token: &str) -> Result<Verified, String> {
        let now = self.revocations.clock().now();
        self.verifier()
            .verify_uncached(token, now)
            .map_err(|e| e.to_string())
    }

    async fn revoke_json(&self, body: Value, remote: SocketAddr) -> Reply {
        let (obj, lifetime) = match object_and_lifetime(body) {
            Ok(v) => v,
            Err(e) => return bad_request(e),
        };
        let r = &self.revocations;
        let names = &self.claim_names;
        // A session alone; with a subject it is a token's id (token_claim may
        // be the session claim itself).
        if obj.contains_key(&names.session)
            && !obj.contains_key("token")
            && !obj.contains_key(&names.subject)
        {
            return self.revoke_session(obj, lifetime, remote).await;
        }
        let (subject, token_id, exp) = match self.token_target(obj) {
            Ok(t) => t,
            Err(e) => return bad_request(e),
        };
        // A token past its `exp` (and leeway) is refused anyway: there is
        // nothing to keep, and saying "stored" would promise what status
        // would then deny.
        let lifetimes = r.lifetimes();
        if lifetime.is_none()
            && exp.is_some_and(|e| e.saturating_add(lifetimes.leeway) <= r.clock().now())
        {
            return reply(
                StatusCode::OK,
                json!({
                    "revoked": false,
                    "reason": "expired",
                    "detail": "the token is past its exp and refused anyway; nothing was kept"
                }),
            );
        }
        let status = r
            .revoke_token(subject.clone(), token_id.clone(), exp, lifetime)
            .await;
        self.audit(remote, "token", Some(&subject), Some(&token_id), status);
        reply(
            StatusCode::OK,
            json!({ "revoked": true, "kind": "token", "status": status.label() }),
        )
    }

    /// The token a revoke body names: `{"token": …}` (verified), or the
    /// claims skeleton `{sub, jti, exp?}` (names follow the claim settings).
    fn token_target(
        &self,
        mut obj: serde_json::Map<String, Value>,
    ) -> Result<(ClaimValue, ClaimValue, Option<i64>), String> {
        let names = &self.claim_names;
        if let Some(token) = obj.remove("token") {
            if let Some(k) = obj.keys().next() {
                return Err(format!("unexpected field {k:?} next to \"token\""));
            }
            let Value::String(token) = token else {
                return Err("\"token\" must be a string".into());
            };
            let v = self
                .verify_token(&token)
                .map_err(|e| format!("token not accepted: {e}"))?;
            return Ok((v.subject.clone(), v.token_id.clone(), v.exp));
        }
        let subject = claim(&mut obj, &names.subject)?;
        let token_id = claim(&mut obj, &names.token)?;
        let exp = match obj.remove("exp") {
            None => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(_) => return Err("\"exp\" must be a whole number of Unix seconds".into()),
        };
        if let Some(k) = obj.keys().next() {
            return Err(format!(
                "unknown field {k:?} (give \"token\", or {:?}, {:?}, \"exp\", \"lifetime\", or {:?})",
                names.subject, names.token, names.session
            ));
        }
        Ok((subject, token_id, exp))
    }

    /// `{"sid": …}` (the member follows `session_claim`): every token of
    /// that identity-provider session, kept `lifetime` or max_token_lifetime.
    async fn revoke_session(
        &self,
        mut obj: serde_json::Map<String, Value>,
        lifetime: Option<i64>,
        remote: SocketAddr,
    ) -> Reply {
        let name = &self.claim_names.session;
        let session = match claim(&mut obj, name) {
            Ok(v) => v,
            Err(e) => return bad_request(e),
        };
        if let Some(k) = obj.keys().next() {
            return bad_request(format!(
                "unknown field {k:?} next to {name:?} (only \"lifetime\" may go with it)"
            ));
        }
        let status = self
            .revocations
            .revoke_session(session.clone(), lifetime)
            .await;
        self.metrics.revocation("session");
        tracing::info!(target: "audit", remote = %remote, kind = "session",
            session = session.as_text(), status = status.label(), "Admin revocation");
        reply(
            StatusCode::OK,
            json!({ "revoked": true, "kind": "session", "status": status.label() }),
        )
    }

    /// Global Token Revocation (draft-parecki-oauth-global-token-revocation):
    /// `{"sub_id": {"format": "iss_sub", "iss", "sub"}}` or `{"format":
    /// "opaque", "id"}` → every token of that subject issued before now; 204.
    async fn global_token_revocation(&self, body: Value, remote: SocketAddr) -> Reply {
        let subject = match super::body::parse_global_revocation(body, self.verifier().issuer()) {
            Ok(s) => s,
            Err(e) => return bad_request(e),
        };
        let status = self.revocations.purge_subject(subject.clone(), None).await;
        self.audit(remote, "subject", Some(&subject), None, status);
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r
    }

    /// RFC 7009: `token=…`; unknown or invalid tokens also get 200.
    async fn revoke_form(&self, form: &[(String, String)], remote: SocketAddr) -> Reply {
        let Some((_, token)) = form.iter().find(|(k, _)| k == "token") else {
            return bad_request("missing token parameter (RFC 7009)");
        };
        match self.verify_token(token) {
            Ok(v) => {
                let status = self
                    .revocations
                    .revoke_token(v.subject.clone(), v.token_id.clone(), v.exp, None)
                    .await;
                self.audit(remote, "token", Some(&v.subject), Some(&v.token_id), status);
                reply(
                    StatusCode::OK,
                    json!({ "revoked": true, "kind": "token", "status": status.label() }),
                )
            }
            Err(_) => {
                tracing::info!(target: "audit", remote = %remote, kind = "token",
                    "RFC 7009 revocation of a token this proxy does not accept: nothing to do");
                reply(StatusCode::OK, json!({ "revoked": false }))
            }
        }
    }

    async fn purge(&self, body: Value, remote: SocketAddr) -> Reply {
        // The whole body is checked before anything is written: a request
        // answered 400 has changed nothing.
        let (target, lifetime) = match parse_purge(body, &self.claim_names.subject) {
            Ok(p) => p,
            Err(e) => return bad_request(e),
        };
        let r = &self.revocations;
        let (kind, subject, status) = match target {
            Purge::All => ("global", None, r.purge_all(lifetime).await),
            Purge::Subject(subject) => {
                let status = r.purge_subject(subject.clone(), lifetime).await;
                ("subject", Some(subject), status)
            }
        };
        self.audit(remote, kind, subject.as_ref(), None, status);
        reply(
            StatusCode::OK,
            json!({ "revoked": true, "kind": kind, "status": status.label(),
                    "cutoff": r.clock().now() }),
        )
    }

    async fn status(&self, query: &str) -> Reply {
        let params: Vec<(String, String)> = form_pairs(query.as_bytes());
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let names = &self.claim_names;
        // A token's own claims also answer for `revocation.compat` records.
        let mut compat_claims = Vec::new();
        let (subject, token_id, session, iat) = if let Some(token) = get("token") {
            match self.verify_token(&token) {
                Ok(v) => {
                    compat_claims = v.compat;
                    (
                        vec![v.subject],
                        vec![v.token_id],
                        v.session.map(|s| vec![s]),
                        v.iat,
                    )
                }
                Err(e) => return bad_request(format!("token not accepted: {e}")),
            }
        } else {
            let (sn, tn) = (&names.subject, &names.token);
            let Some(sub) = get(sn).or_else(|| get("sub")) else {
                return bad_request(format!(
                    "give token=…, or {sn}=…&{tn}=…[&iat=…][&{}=…]",
                    names.session
                ));
            };
            let Some(jti) = get(tn).or_else(|| get("jti")) else {
                return bad_request(format!("missing {tn}"));
            };
            let iat = match get("iat") {
                None => None,
                Some(t) => match t.parse::<i64>() {
                    Ok(v) => Some(v),
                    Err(_) => return bad_request("iat must be whole Unix seconds"),
                },
            };
            (
                query_claim(&sub),
                query_claim(&jti),
                get(&names.session).map(|s| query_claim(&s)),
                iat,
            )
        };
        // Every reading of the values (a query cannot say string or
        // number): revoked when one of them is.
        let sessions: Vec<Option<&ClaimValue>> = match &session {
            Some(all) => all.iter().map(Some).collect(),
            None => vec![None],
        };
        let mut readings = Vec::new();
        for s in &subject {
            for t in &token_id {
                for x in &sessions {
                    readings.push((s, t, *x));
                }
            }
        }
        let mut verdict = Verdict::Clear;
        for (subject, token_id, session) in readings {
            let keys = KeyHashes::new(subject, token_id).with_session(session);
            let id = TokenRef {
                subject,
                token: token_id,
                session,
            };
            let this = if compat_claims.is_empty() {
                self.revocations.verdict(id, &keys, iat).await
            } else {
                self.revocations
                    .verdict_with_compat(id, &keys, iat, &compat_claims)
                    .await
            };
            match this {
                Verdict::Revoked(_) => {
                    verdict = this;
                    break;
                }
                Verdict::Unavailable => verdict = this,
                Verdict::Clear => {}
            }
        }
        match verdict {
            Verdict::Clear => reply(StatusCode::OK, json!({ "revoked": false })),
            Verdict::Revoked(reason) => reply(
                StatusCode::OK,
                json!({ "revoked": true, "reason": reason.label() }),
            ),
            Verdict::Unavailable => {
                let mut r = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "error": "store_unavailable", "error_description": "the revocation store cannot be consulted" }),
                );
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(crate::revocation::RETRY_AFTER_SECS),
                );
                r
            }
        }
    }

    fn audit(
        &self,
        remote: SocketAddr,
        kind: &'static str,
        subject: Option<&ClaimValue>,
        token_id: Option<&ClaimValue>,
        status: WriteStatus,
    ) {
        self.metrics.revocation(kind);
        self.metrics.audit(crate::metrics::AuditEvent {
            at: self.revocations.clock().now(),
            source: "admin",
            kind,
            subject: subject.map(|s| s.as_text().to_string()),
            status: status.label(),
        });
        tracing::info!(
            target: "audit",
            remote = %remote,
            kind,
            subject = subject.map_or("-", |s| s.as_text()),
            token_id = token_id.map(|t| t.as_text()),
            status = status.label(),
            "Admin revocation"
        );
    }
}

enum Body {
    Json(Value),
    Form(Vec<(String, String)>),
}

async fn read_body(req: Request<Incoming>) -> Result<Body, Reply> {
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": "too_large", "error_description": format!("body over {MAX_BODY} bytes") }),
            ))
        }
        Err(_) => return Err(bad_request("body could not be read")),
    };
    // `curl -d '{…}'` labels JSON as a form: a body that opens a JSON object
    // is read as JSON whatever its label (no form field starts with `{`).
    if form && bytes.trim_ascii_start().first() != Some(&b'{') {
        return Ok(Body::Form(form_pairs(&bytes)));
    }
    serde_json::from_slice(&bytes)
        .map(Body::Json)
        .map_err(|e| bad_request(format!("body is not valid JSON: {e}")))
}

/// A claim value given in a query string: the string, and also the number
/// when it reads as one (`42`), since a query cannot say which it is.
fn query_claim(text: &str) -> Vec<ClaimValue> {
    let mut readings = vec![ClaimValue::Str(text.into())];
    if let Ok(Value::Number(n)) = serde_json::from_str::<Value>(text) {
        readings.push(ClaimValue::Num(n.to_string().into()));
    }
    readings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_equal_only_for_equal_tokens() {
        let a = token_digest("secret-admin-token");
        assert!(same(&a, &token_digest("secret-admin-token")));
        assert!(!same(&a, &token_digest("secret-admin-tokeN")));
    }
}
