//! Intake endpoints on the public listener (hyper path; the fast path hands
//! these requests to hyper): the body is read whole, bounded in size and
//! time, and [`crate::intake`] decides the answer. Never proxied, no token.

use super::{Body, Proxy};
use crate::intake::{Answer, Delivery, Endpoint, Intake, MAX_BODY};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

impl Proxy {
    /// The intake endpoint `path` names, if any (every spelling that
    /// normalizes to it).
    pub fn intake_endpoint(&self, path: &str) -> Option<(&Intake, Endpoint)> {
        let intake = self.intake.as_deref()?;
        let path = crate::routes::normalize(path).ok()?;
        intake.endpoint(&path.loose).map(|e| (intake, e))
    }

    /// Reads the body of an intake request and answers it.
    pub(super) async fn answer_intake(
        &self,
        intake: &Intake,
        endpoint: Endpoint,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let authorization = only_one(&parts.headers, AUTHORIZATION);
        if let Some(early) =
            intake.answer_before_body(endpoint, parts.method.as_str(), authorization)
        {
            return to_response(early);
        }
        let read = tokio::time::timeout(
            self.intake_body_timeout,
            Limited::new(body, MAX_BODY).collect(),
        )
        .await;
        let answer = match read {
            Ok(Ok(collected)) => {
                let body = collected.to_bytes();
                let delivery = Delivery {
                    method: parts.method.as_str(),
                    content_type: only_one(&parts.headers, CONTENT_TYPE),
                    authorization: only_one(&parts.headers, AUTHORIZATION),
                    body: &body,
                };
                intake.answer(endpoint, &delivery).await
            }
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Answer::too_large(),
            Ok(Err(_)) | Err(_) => Answer {
                status: 408,
                headers: vec![("connection", "close")],
                body: Vec::new(),
            },
        };
        to_response(answer)
    }
}

/// A header's value when it is sent exactly once; two are ambiguous and
/// count as none.
fn only_one(headers: &http::HeaderMap, name: http::HeaderName) -> Option<&[u8]> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v.as_bytes()),
        _ => None,
    }
}

fn to_response(answer: Answer) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(answer.body))));
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}
