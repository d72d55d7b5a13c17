//! Every way a request can end without the upstream's answer, and the one
//! table that turns each into a response (the README's status table).

use crate::auth::AuthError;
use crate::metrics::Outcome;
use crate::revocation::Reason;
use crate::routes::PathError;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub use crate::revocation::RETRY_AFTER_SECS;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("token revoked ({})", .0.label())]
    Revoked(Reason),
    /// The token's status list says it is not valid.
    #[error("token status: {}", .0.description())]
    ListStatus(ListStatus),
    #[error("revocation store unavailable")]
    StoreUnavailable,
    /// The JWKS has not been loaded yet: 503, like a store outage.
    #[error("signing keys not loaded yet")]
    KeysUnavailable,
    #[error("bad request path: {0}")]
    BadPath(#[from] PathError),
    /// A request the proxy cannot read one way only (two `Host`s…): 400.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Something the request needs that the proxy does not do (a transfer
    /// coding other than chunked): 501 (RFC 9112 §6.1).
    #[error("not implemented: {0}")]
    Unsupported(&'static str),
    #[error("upstream failed: {0}")]
    UpstreamFailed(String),
    #[error("upstream timed out")]
    UpstreamTimeout,
}

/// The access-line reason of an `invalid_token` answer, from its description.
fn invalid_reason(why: &str) -> &'static str {
    match why {
        "token expired" => "expired",
        "token not yet valid" => "not_yet_valid",
        "token issued in the future" => "issued_in_future",
        "token older than max_token_lifetime" | "token lifetime exceeds max_token_lifetime" => {
            "too_old"
        }
        "signature invalid" => "bad_signature",
        "algorithm not allowed" | "key not valid for this algorithm" | "token has no kid" => {
            "bad_algorithm"
        }
        "issuer mismatch" => "bad_issuer",
        "audience mismatch" => "bad_audience",
        "token type (typ) not accepted" | "not an access token" => "bad_type",
        "malformed token" | "a header or claim member is given twice" => "malformed_token",
        w if w.starts_with("missing ") => "missing_claim",
        w if w.starts_with("claim ") => "bad_claim",
        w if w.contains("status") => "status_list",
        _ => "invalid_token",
    }
}

/// A status other than VALID in a token's status list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStatus {
    /// 1, INVALID: revoked for good.
    Invalid,
    /// 2, SUSPENDED: revoked for now.
    Suspended,
}

impl ListStatus {
    pub fn description(self) -> &'static str {
        match self {
            ListStatus::Invalid => "token revoked",
            ListStatus::Suspended => "token suspended",
        }
    }
}

/// `text` as an RFC 9110 quoted-string: `"` and `\\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl ProxyError {
    /// The outcome used in access logs and metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            ProxyError::Auth(AuthError::Missing) => Outcome::Missing,
            ProxyError::Auth(_)
            | ProxyError::BadPath(_)
            | ProxyError::BadRequest(_)
            | ProxyError::Unsupported(_) => Outcome::Invalid,
            ProxyError::Revoked(_) | ProxyError::ListStatus(_) => Outcome::Revoked,
            ProxyError::StoreUnavailable | ProxyError::KeysUnavailable => Outcome::StoreUnavailable,
            ProxyError::UpstreamFailed(_) | ProxyError::UpstreamTimeout => Outcome::UpstreamError,
        }
    }

    /// Why, as an access line says it: a short fixed label
    /// (`expired`, `bad_signature`, `revoked:session`, …), never input.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::Auth(AuthError::Missing) => "missing",
            ProxyError::Auth(AuthError::Malformed(_)) => "malformed_request",
            ProxyError::Auth(AuthError::UnknownKey) => "unknown_key",
            ProxyError::Auth(AuthError::Invalid(why)) => invalid_reason(why),
            ProxyError::Revoked(r) => match r {
                Reason::Token => "revoked:token",
                Reason::Subject => "revoked:subject",
                Reason::Session => "revoked:session",
                Reason::Global => "revoked:global",
                Reason::Compat => "revoked:compat",
            },
            ProxyError::ListStatus(ListStatus::Invalid) => "status_list:invalid",
            ProxyError::ListStatus(ListStatus::Suspended) => "status_list:suspended",
            ProxyError::StoreUnavailable => "store_unavailable",
            ProxyError::KeysUnavailable => "keys_unavailable",
            ProxyError::BadPath(_) => "bad_path",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Unsupported(_) => "not_implemented",
            ProxyError::UpstreamFailed(_) => "upstream_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Auth(AuthError::Missing)
            | ProxyError::Auth(AuthError::Invalid(_))
            | ProxyError::Auth(AuthError::UnknownKey)
            | ProxyError::Revoked(_)
            | ProxyError::ListStatus(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Auth(AuthError::Malformed(_))
            | ProxyError::BadPath(_)
            | ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::StoreUnavailable | ProxyError::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The synthetic response. Bodies are short JSON and never echo input.
    pub fn to_response(&self, realm: &str) -> Response<Full<Bytes>> {
        let (status, headers, body) = self.to_parts(realm);
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }

    /// [`ProxyError::to_response`] as status, fields and body.
    pub fn to_parts(&self, realm: &str) -> (StatusCode, HeaderMap, Bytes) {
        let (error, description): (&str, Option<&str>) = match self {
            ProxyError::Auth(AuthError::Missing) => ("unauthorized", None),
            ProxyError::Auth(AuthError::Malformed(d)) => ("invalid_request", Some(d)),
            ProxyError::Auth(AuthError::Invalid(d)) => ("invalid_token", Some(d)),
            ProxyError::Auth(AuthError::UnknownKey) => {
                ("invalid_token", Some("unknown signing key"))
            }
            ProxyError::Revoked(_) => ("invalid_token", Some("token revoked")),
            ProxyError::ListStatus(s) => ("invalid_token", Some(s.description())),
            ProxyError::KeysUnavailable => (
                "temporarily_unavailable",
                Some("signing keys not loaded yet"),
            ),
            ProxyError::StoreUnavailable => (
                "temporarily_unavailable",
                Some("revocation store unavailable"),
            ),
            ProxyError::BadPath(_) => ("invalid_request", Some("invalid request path")),
            ProxyError::BadRequest(d) => ("invalid_request", Some(d)),
            ProxyError::Unsupported(d) => ("not_implemented", Some(d)),
            ProxyError::UpstreamFailed(_) => ("bad_gateway", Some("upstream unavailable")),
            ProxyError::UpstreamTimeout => ("gateway_timeout", Some("upstream timed out")),
        };
        let body = match description {
            Some(d) => serde_json::json!({ "error": error, "error_description": d }),
            None => serde_json::json!({ "error": error }),
        };
        let mut headers = HeaderMap::new();
        let h = &mut headers;
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let realm = quoted(realm);
        let challenge = match self {
            ProxyError::Auth(AuthError::Missing) => Some(format!("Bearer realm={realm}")),
            ProxyError::Auth(AuthError::Malformed(d)) => Some(format!(
                "Bearer realm={realm}, error=\"invalid_request\", error_description={}",
                quoted(d)
            )),
            ProxyError::Auth(AuthError::Invalid(_) | AuthError::UnknownKey)
            | ProxyError::Revoked(_)
            | ProxyError::ListStatus(_) => Some(format!(
                "Bearer realm={realm}, error=\"invalid_token\", error_description={}",
                quoted(description.unwrap_or_default())
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if matches!(
            self,
            ProxyError::StoreUnavailable | ProxyError::KeysUnavailable
        ) {
            h.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        (self.status(), headers, Bytes::from(body.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_token_description_has_its_own_reason() {
        for (why, reason) in [
            ("token expired", "expired"),
            ("token lifetime exceeds max_token_lifetime", "too_old"),
            ("token older than max_token_lifetime", "too_old"),
            ("signature invalid", "bad_signature"),
            ("token has no kid", "bad_algorithm"),
            ("missing required claim sub", "missing_claim"),
            ("claim iat is not a number", "bad_claim"),
            ("token status is not valid", "status_list"),
        ] {
            let e = ProxyError::Auth(AuthError::Invalid(why.to_string().into()));
            assert_eq!(e.reason(), reason, "{why}");
        }
    }

    fn check(e: ProxyError, status: u16, challenge: Option<&str>) {
        let r = e.to_response("r");
        assert_eq!(r.status().as_u16(), status, "{e}");
        let got = r
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        match challenge {
            Some(c) => assert!(
                got.as_deref().is_some_and(|g| g.contains(c)),
                "{e}: {got:?}"
            ),
            None => assert_eq!(got, None, "{e}"),
        }
    }

    #[test]
    fn every_row_of_the_status_table() {
        check(
            ProxyError::Auth(AuthError::Missing),
            401,
            Some("Bearer realm=\"r\""),
        );
        check(
            ProxyError::Auth(AuthError::Malformed("x")),
            400,
            Some("error=\"invalid_request\""),
        );
        check(
            ProxyError::Auth(AuthError::invalid("token expired")),
            401,
            Some("error_description=\"token expired\""),
        );
        check(
            ProxyError::Revoked(Reason::Subject),
            401,
            Some("error_description=\"token revoked\""),
        );
        check(
            ProxyError::ListStatus(ListStatus::Invalid),
            401,
            Some("error_description=\"token revoked\""),
        );
        check(
            ProxyError::ListStatus(ListStatus::Suspended),
            401,
            Some("error_description=\"token suspended\""),
        );
        assert_eq!(
            ProxyError::ListStatus(ListStatus::Suspended).outcome(),
            Outcome::Revoked
        );
        check(ProxyError::StoreUnavailable, 503, None);
        check(ProxyError::BadPath(PathError::EncodedSlash), 400, None);
        check(ProxyError::BadRequest("bad Host"), 400, None);
        check(ProxyError::Unsupported("transfer coding"), 501, None);
        check(ProxyError::UpstreamFailed("refused".into()), 502, None);
        check(ProxyError::UpstreamTimeout, 504, None);
        let missing = ProxyError::Auth(AuthError::Missing).to_response("r");
        assert!(!missing.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error="));
        assert!(ProxyError::StoreUnavailable
            .to_response("r")
            .headers()
            .contains_key(RETRY_AFTER));
    }

    #[test]
    fn challenge_parameters_are_valid_quoted_strings() {
        let e = ProxyError::Auth(AuthError::Malformed(r#"must be "Bearer" \ then"#));
        let (_, headers, _) = e.to_parts(r#"app "x""#);
        assert_eq!(
            headers.get(WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="app \"x\"", error="invalid_request", error_description="must be \"Bearer\" \\ then""#
        );
    }
}
