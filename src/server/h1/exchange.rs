//! One request on the fast path: its head read where it lies, routed and
//! admitted by the same [`Proxy`] methods as the hyper path, answered here
//! or forwarded, and the answer relayed with its framing unchanged.

use super::body::{put, relay, Framing};
use super::deadline::Deadline;
use super::head::{self, Check, Outgoing, Plain};
use super::upstream::{idempotent, send, Ask};
use super::{Client, Lane, Step};
use crate::proxy::error::ProxyError;
use crate::proxy::hygiene::{RequestId, RequestView};
use crate::proxy::{hygiene, Admitted, Outcome, Proxy};
use bytes::{Buf, BytesMut};
use http::{HeaderMap, StatusCode};
use httparse::Header;
use std::time::Instant;

/// One client connection's stream and buffers.
pub(super) struct Conn<'c, S> {
    pub stream: &'c mut S,
    /// Bytes read from the client and not used yet (a body, the next request).
    pub buf: &'c mut BytesMut,
    /// The upstream request head (kept for a retry).
    pub out: &'c mut Vec<u8>,
    /// The client response head.
    pub back: &'c mut Vec<u8>,
}

/// Where the request body stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyState {
    Unread,
    Consumed,
    /// Partly read: the connection is out of step.
    Broken,
}

enum Failure {
    /// Answer the client with this error.
    Answer(ProxyError),
    /// Nothing sensible can be sent any more: close the connection. The
    /// status already sent (or 502 when none was) and the outcome.
    Abort(u16, Outcome),
}

impl From<ProxyError> for Failure {
    fn from(e: ProxyError) -> Failure {
        Failure::Answer(e)
    }
}

/// One request's parsed head, borrowed from its bytes.
struct Request<'h> {
    method: &'h str,
    path: &'h str,
    query: Option<&'h str>,
    headers: &'h [Header<'h>],
    plain: Plain,
    head_request: bool,
    /// Close the connection after this exchange.
    close: bool,
}

/// One request on the fast path, from `data`, the bytes read so far (which
/// are not in `conn.buf`).
pub(super) async fn exchange<S: Client>(
    data: &[u8],
    conn: &mut Conn<'_, S>,
    timer: &mut Deadline,
    lane: &Lane<'_>,
) -> Step {
    let mut fields = head::fields();
    let mut parsed = httparse::Request::new(&mut []);
    let plain = match head::check(&mut parsed, data, &mut fields) {
        Check::Complete(p) => p,
        Check::Partial => return Step::Partial,
        Check::Hyper => return Step::Hyper,
    };
    let proxy = &*lane.live.load_full();
    let method = parsed.method.unwrap_or_default();
    let target = parsed.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if proxy.intake.is_some() && proxy.intake_endpoint(path).is_some() {
        // Identity-provider signals are answered by the hyper path, which
        // reads their bodies whole.
        return Step::Hyper;
    }
    // A body or the next request that came with the head.
    conn.buf
        .extend_from_slice(data.get(plain.head_len..).unwrap_or_default());
    let req = Request {
        method,
        path,
        query,
        headers: parsed.headers,
        plain,
        head_request: method == "HEAD",
        close: plain.close || *lane.stop.borrow(),
    };
    let rid = proxy.policy.request_id(req.headers);
    let mut access = proxy.access_line(method, lane.client, req.headers, rid);
    let mut body = if plain.content_length == 0 {
        BodyState::Consumed
    } else {
        BodyState::Unread
    };
    match forward(
        proxy,
        &req,
        conn,
        timer,
        lane,
        rid,
        access.as_mut(),
        &mut body,
    )
    .await
    {
        Ok((status, keep)) => {
            proxy.record(access, status, Outcome::Ok, None);
            Step::Done(keep)
        }
        Err(Failure::Answer(e)) => {
            let outcome = proxy.failed(&e);
            let status = e.status().as_u16();
            let keep = skip_body(&req, conn.buf, body) && !req.close;
            let (status_code, headers, text) = e.to_parts(proxy.realm());
            conn.back.clear();
            head::write_local(
                conn.back,
                status_code,
                &headers,
                &text,
                req.head_request,
                !keep,
            );
            let written = put(conn.stream, conn.back).await.is_ok();
            proxy.record(access, status, outcome, Some(e.reason()));
            Step::Done(written && keep)
        }
        Err(Failure::Abort(status, outcome)) => {
            proxy.record(access, status, outcome, Some("upstream_aborted"));
            Step::Done(false)
        }
    }
}

/// Drops an unread request body that is already here; `false` when the
/// connection cannot be used again because of it.
fn skip_body(req: &Request<'_>, buf: &mut BytesMut, body: BodyState) -> bool {
    match body {
        BodyState::Consumed => true,
        BodyState::Broken => false,
        BodyState::Unread => match usize::try_from(req.plain.content_length) {
            Ok(n) if n <= buf.len() => {
                buf.advance(n);
                true
            }
            _ => false,
        },
    }
}

/// Routes, admits and forwards one request; `Ok((status, keep_open))`.
#[allow(clippy::too_many_arguments)] // the parts of one exchange, each needed
async fn forward<S: Client>(
    proxy: &Proxy,
    req: &Request<'_>,
    conn: &mut Conn<'_, S>,
    timer: &mut Deadline,
    lane: &Lane<'_>,
    rid: RequestId,
    access: Option<&mut crate::proxy::AccessLine>,
    body: &mut BodyState,
) -> Result<(u16, bool), Failure> {
    let mut view = proxy
        .policy
        .view(req.headers, None, true, lane.client.ip(), lane.tls, rid)
        .map_err(|_| ProxyError::BadRequest("bad Host"))?;
    let admitted = proxy
        .route_and_admit(req.method, req.path, req.headers, req.query, access)
        .await?;
    if admitted.verified.is_some() {
        proxy.policy.verified(&mut view);
    }
    if admitted.unchecked_token {
        proxy.policy.unchecked(&mut view);
    }
    if let Some((status, written)) = proxy.respond_locally(&admitted).await {
        let mut fields = HeaderMap::new();
        hygiene::add_action_fields(&mut fields, admitted.rule, written);
        return answer_here(req, conn, *body, status, &fields).await;
    }
    let left = upstream_head(proxy, req, conn, lane, &admitted, &view, body)?;
    let sent = Instant::now();
    let ask = Ask {
        head: req.head_request,
        idempotent: idempotent(req.method),
        policy: &proxy.policy,
        sent,
    };
    timer.set(tokio::time::Instant::from_std(sent) + lane.target.response_timeout);
    let exchanged = tokio::select! {
        biased;
        r = send(lane.pool, conn, left, ask, body) => r.map_err(Some),
        () = timer.passed() => Err(None),
    };
    let answered = Instant::now();
    proxy
        .metrics
        .upstream_latency
        .observe(answered.saturating_duration_since(sent));
    let (up, reply) = match exchanged {
        Err(None) => return Err(ProxyError::UpstreamTimeout.into()),
        Err(Some(e)) => return Err(ProxyError::UpstreamFailed(e.to_string()).into()),
        Ok(r) => r,
    };
    relay_answer(
        proxy, req, conn, lane, &admitted, up, reply, *body, answered,
    )
    .await
}

/// A `respond:` route answers here, with its action's fields.
async fn answer_here<S: Client>(
    req: &Request<'_>,
    conn: &mut Conn<'_, S>,
    body: BodyState,
    status: StatusCode,
    fields: &HeaderMap,
) -> Result<(u16, bool), Failure> {
    let keep = skip_body(req, conn.buf, body) && !req.close;
    conn.back.clear();
    head::write_local(conn.back, status, fields, b"", req.head_request, !keep);
    put(conn.stream, conn.back)
        .await
        .map_err(|_| Failure::Abort(status.as_u16(), Outcome::Ok))?;
    Ok((status.as_u16(), keep))
}

/// Writes the upstream request head into `conn.out`, with the body when it
/// is already here; returns how many body bytes are still to come.
fn upstream_head<S: Client>(
    proxy: &Proxy,
    req: &Request<'_>,
    conn: &mut Conn<'_, S>,
    lane: &Lane<'_>,
    admitted: &Admitted<'_>,
    view: &RequestView<'_>,
    body: &mut BodyState,
) -> Result<u64, Failure> {
    conn.out.clear();
    let outgoing = Outgoing {
        method: req.method,
        base_path: &lane.target.base_path,
        path: &admitted.path.strict,
        query: req.query,
        headers: req.headers,
        policy: &proxy.policy,
        view,
        claims: admitted.verified.as_deref().map_or(&[], |v| &v.forwarded),
        authority: &lane.target.authority,
    };
    head::write_request(conn.out, &outgoing)
        .map_err(|_| ProxyError::UpstreamFailed("cannot build upstream URI".into()))?;
    // A body already here goes out with the head, and can be sent again.
    let left = req.plain.content_length;
    if let Ok(n) = usize::try_from(left) {
        if n > 0 && n <= conn.buf.len() {
            conn.out
                .extend_from_slice(conn.buf.get(..n).unwrap_or_default());
            conn.buf.advance(n);
            *body = BodyState::Consumed;
            return Ok(0);
        }
    }
    Ok(left)
}

/// Applies the route's action to the upstream's status, then relays the
/// answer to the client; the upstream connection goes back to the pool when
/// its exchange ended cleanly (idle since `answered`, when its answer came).
#[allow(clippy::too_many_arguments)] // the steps of one exchange, each needed
async fn relay_answer<S: Client>(
    proxy: &Proxy,
    req: &Request<'_>,
    conn: &mut Conn<'_, S>,
    lane: &Lane<'_>,
    admitted: &Admitted<'_>,
    mut up: super::pool::Upstream,
    reply: head::Final,
    body: BodyState,
    answered: Instant,
) -> Result<(u16, bool), Failure> {
    let status = StatusCode::from_u16(reply.status)
        .map_err(|_| Failure::Answer(ProxyError::UpstreamFailed("invalid status code".into())))?;
    let written = proxy.after_upstream(admitted, status).await;
    // An upstream that answered before the whole body was sent leaves the rest
    // of it unread on the client side: that connection cannot go on.
    let cut_short = body == BodyState::Broken;
    let close = req.close || reply.framing == Framing::UntilClose || cut_short;
    let mut fields = HeaderMap::new();
    if let Some(written) = written {
        hygiene::add_action_fields(&mut fields, admitted.rule, written);
    }
    head::end_response(conn.back, &fields, close);
    let relayed = relay(
        reply.framing,
        conn.back,
        &mut up.stream,
        &mut up.buf,
        conn.stream,
    )
    .await;
    if relayed.is_err() {
        return Err(Failure::Abort(reply.status, Outcome::UpstreamError));
    }
    if reply.reusable && !cut_short {
        lane.pool.put(up, answered);
    }
    Ok((reply.status, !close))
}
