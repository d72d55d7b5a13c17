//! The HTTP/1.1 fast path. Plain requests (HTTP/1.1, origin-form target, no
//! body or a Content-Length one, no Upgrade or Expect) are parsed in place
//! with httparse and forwarded over a per-worker pool of raw upstream
//! connections, bodies relayed verbatim as they arrive. Everything else (h2c,
//! HTTP/1.0, chunked request bodies, upgrades, absolute-form targets, odd or
//! oversized heads) is handed to hyper with the bytes already read, for the
//! rest of that connection. Routes, admission (where every 401 is decided)
//! and revocations are the same [`Proxy`] methods on either path.

pub mod body;
pub mod head;
pub mod pool;
mod rewind;

pub use pool::Pool;
pub use rewind::Rewind;

use crate::proxy::error::ProxyError;
use crate::proxy::forward::FastTarget;
use crate::proxy::hygiene::Policy;
use crate::proxy::{LiveProxy, Outcome, Proxy, REVOCATION_STATUS};
use crate::server::MAX_HEADER_BYTES;
use body::{relay, Framing, READ_SIZE};
use bytes::{Buf, Bytes, BytesMut};
use head::{Check, Final, Outgoing, Plain, Reply};
use http::{HeaderMap, HeaderValue, StatusCode};
use httparse::Header;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The upstream as the fast path sees it: a plain `http://` address.
pub struct Target {
    /// `host:port`, also the `Host` sent when the client sent none.
    pub authority: String,
    pub base_path: String,
    pub response_timeout: Duration,
}

impl From<FastTarget> for Target {
    fn from(t: FastTarget) -> Target {
        Target {
            authority: t.authority,
            base_path: t.base_path,
            response_timeout: t.response_timeout,
        }
    }
}

/// What a fast-path connection works with.
pub struct Lane<'a> {
    pub live: &'a LiveProxy,
    pub pool: &'a Pool,
    pub target: &'a Target,
    pub client: SocketAddr,
    /// A request head, once started, must be complete within this.
    pub client_header: Duration,
    /// A kept-alive connection may wait this long for its next request.
    pub client_idle: Duration,
    pub stop: watch::Receiver<bool>,
}

/// How a fast-path connection ended.
pub enum Ended {
    Closed,
    /// Not for the fast path: hyper serves the rest, these bytes first.
    Hyper(Bytes),
}

/// Serves requests on `stream` until it closes or one needs hyper.
pub async fn serve(stream: &mut TcpStream, mut lane: Lane<'_>) -> Ended {
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    let mut back = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        // A connection's first request, or one already started: its head
        // within `client_header`. Between requests a connection may wait
        // `client_idle` for the next one to start; an idle connection also
        // ends when shutdown begins.
        let mut started = first || !buf.is_empty();
        first = false;
        let wait = if started {
            lane.client_header
        } else {
            lane.client_idle
        };
        let mut deadline = tokio::time::Instant::now() + wait;
        loop {
            if !buf.is_empty() {
                // The bytes read so far, parsed once where they lie; what
                // follows the head goes back into `buf`.
                let data = buf.split();
                let mut conn = Conn {
                    stream: &mut *stream,
                    buf: &mut buf,
                    out: &mut out,
                    back: &mut back,
                };
                match exchange(&data, &mut conn, &lane).await {
                    Step::Done(true) => break,
                    Step::Done(false) => {
                        linger(stream).await;
                        return Ended::Closed;
                    }
                    Step::Partial if data.len() < MAX_HEADER_BYTES => buf = data,
                    // hyper answers 431 to an oversized head.
                    Step::Partial | Step::Hyper => return Ended::Hyper(data.freeze()),
                }
            }
            if !read_more(stream, &mut buf, deadline, &mut lane).await {
                return Ended::Closed;
            }
            if !started {
                started = true;
                deadline = tokio::time::Instant::now() + lane.client_header;
            }
        }
    }
}

/// Reads more of a request head; false when the client closed, the deadline
/// passed, or shutdown began while the connection was idle.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
    lane: &mut Lane<'_>,
) -> bool {
    buf.reserve(READ_SIZE);
    let idle = buf.is_empty();
    let read = tokio::select! {
        biased;
        r = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => r,
        _ = lane.stop.wait_for(|s| *s), if idle => return false,
    };
    matches!(read, Ok(Ok(n)) if n > 0)
}

/// What became of the bytes handed to [`exchange`].
enum Step {
    /// A request was answered; whether the connection stays open.
    Done(bool),
    /// Not a whole head yet.
    Partial,
    /// Not for the fast path; nothing was consumed.
    Hyper,
}

/// Longest a closing connection is drained of what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained from a closing connection.
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Closes our side, then reads and discards what the client is still sending
/// (a request body the answer made unnecessary) until it closes too, for at
/// most [`LINGER`] and [`LINGER_BYTES`]. Closing a socket with unread input
/// sends a reset, which can destroy the answer before the client reads it.
async fn linger(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; READ_SIZE];
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// One client connection's stream and buffers.
struct Conn<'c> {
    stream: &'c mut TcpStream,
    /// Bytes read from the client and not used yet (a body, the next request).
    buf: &'c mut BytesMut,
    /// The upstream request head (kept for a retry).
    out: &'c mut Vec<u8>,
    /// The client response head.
    back: &'c mut Vec<u8>,
}

/// Where the request body stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
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
async fn exchange(data: &[u8], conn: &mut Conn<'_>, lane: &Lane<'_>) -> Step {
    let mut fields = head::fields();
    let mut parsed = httparse::Request::new(&mut []);
    let plain = match head::check(&mut parsed, data, &mut fields) {
        Check::Complete(p) => p,
        Check::Partial => return Step::Partial,
        Check::Hyper => return Step::Hyper,
    };
    // A body or the next request that came with the head.
    conn.buf
        .extend_from_slice(data.get(plain.head_len..).unwrap_or_default());
    let proxy = &*lane.live.load_full();
    let method = parsed.method.unwrap_or_default();
    let target = parsed.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let req = Request {
        method,
        path,
        query,
        headers: parsed.headers,
        plain,
        head_request: method == "HEAD",
        close: plain.close || *lane.stop.borrow(),
    };
    let mut access = proxy.access_line(method);
    let mut body = if plain.content_length == 0 {
        BodyState::Consumed
    } else {
        BodyState::Unread
    };
    match forward(proxy, &req, conn, lane, access.as_mut(), &mut body).await {
        Ok((status, keep)) => {
            proxy.record(access, status, Outcome::Ok);
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
            let written = conn.stream.write_all(conn.back).await.is_ok();
            proxy.record(access, status, outcome);
            Step::Done(written && keep)
        }
        Err(Failure::Abort(status, outcome)) => {
            proxy.record(access, status, outcome);
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
async fn forward(
    proxy: &Proxy,
    req: &Request<'_>,
    conn: &mut Conn<'_>,
    lane: &Lane<'_>,
    access: Option<&mut crate::proxy::AccessLine>,
    body: &mut BodyState,
) -> Result<(u16, bool), Failure> {
    let mut view = proxy
        .policy
        .view(req.headers, None, lane.client.ip(), false)
        .map_err(|_| ProxyError::BadRequest("ambiguous Host"))?;
    let admitted = proxy
        .route_and_admit(req.method, req.path, req.headers, req.query, access)
        .await?;
    if admitted.verified.is_some() {
        proxy.policy.verified(&mut view);
    }
    if let Some((status, written)) = proxy.respond_locally(&admitted).await {
        let keep = skip_body(req, conn.buf, *body) && !req.close;
        let mut fields = HeaderMap::new();
        fields.insert(REVOCATION_STATUS, HeaderValue::from_static(written.label()));
        conn.back.clear();
        head::write_local(conn.back, status, &fields, b"", req.head_request, !keep);
        conn.stream
            .write_all(conn.back)
            .await
            .map_err(|_| Failure::Abort(status.as_u16(), Outcome::Ok))?;
        return Ok((status.as_u16(), keep));
    }

    let verified = admitted.verified.as_deref();
    conn.out.clear();
    let outgoing = Outgoing {
        method: req.method,
        base_path: &lane.target.base_path,
        path: &admitted.path.strict,
        query: req.query,
        headers: req.headers,
        policy: &proxy.policy,
        view: &view,
        claims: verified.map_or(&[], |v| &v.forwarded),
        authority: &lane.target.authority,
    };
    head::write_request(conn.out, &outgoing)
        .map_err(|_| ProxyError::UpstreamFailed("cannot build upstream URI".into()))?;
    // A body already here goes out with the head, and can be sent again.
    let mut left = req.plain.content_length;
    if let Ok(n) = usize::try_from(left) {
        if n > 0 && n <= conn.buf.len() {
            conn.out
                .extend_from_slice(conn.buf.get(..n).unwrap_or_default());
            conn.buf.advance(n);
            *body = BodyState::Consumed;
            left = 0;
        }
    }

    let sent = Instant::now();
    let exchanged = tokio::time::timeout(
        lane.target.response_timeout,
        send(
            lane.pool,
            conn,
            left,
            Ask {
                head: req.head_request,
                idempotent: idempotent(req.method),
                policy: &proxy.policy,
            },
            body,
        ),
    )
    .await;
    proxy.metrics.upstream_latency.observe(sent.elapsed());
    let (mut up, reply) = match exchanged {
        Err(_) => return Err(ProxyError::UpstreamTimeout.into()),
        Ok(Err(message)) => return Err(ProxyError::UpstreamFailed(message).into()),
        Ok(Ok(r)) => r,
    };
    let status = StatusCode::from_u16(reply.status)
        .map_err(|_| Failure::Answer(ProxyError::UpstreamFailed("invalid status code".into())))?;
    let written = proxy.after_upstream(&admitted, status).await;
    // An upstream that answered before the whole body was sent leaves the rest
    // of it unread on the client side: that connection cannot go on.
    let cut_short = *body == BodyState::Broken;
    let close = req.close || reply.framing == Framing::UntilClose || cut_short;
    head::end_response(conn.back, written.map(|w| w.label()), close);
    if relay(
        reply.framing,
        conn.back,
        &mut up.stream,
        &mut up.buf,
        conn.stream,
    )
    .await
    .is_err()
    {
        return Err(Failure::Abort(reply.status, Outcome::UpstreamError));
    }
    if reply.reusable && !cut_short {
        lane.pool.put(up);
    }
    Ok((reply.status, !close))
}

/// Why an exchange with the upstream failed.
enum Exchange {
    /// Nothing came back: the request may be sent again if it is idempotent.
    Unanswered(String),
    /// Something came back, or the request body is gone: never repeated.
    Failed(String),
}

impl Exchange {
    fn lost(message: String, nothing_received: bool) -> Exchange {
        if nothing_received {
            Exchange::Unanswered(message)
        } else {
            Exchange::Failed(message)
        }
    }
}

/// What the upstream's answer is read for.
#[derive(Clone, Copy)]
struct Ask<'a> {
    /// A HEAD request: the answer has no body.
    head: bool,
    /// The method may be sent again (RFC 9110 §9.2.2).
    idempotent: bool,
    policy: &'a Policy,
}

/// RFC 9110 §9.2.2; only these may be retried automatically (RFC 9112 §9.3.1).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Sends the request head in `conn.out` (and `left` body bytes still to come
/// from the client) and reads the response head into `conn.back`. A pooled
/// connection the upstream had closed without answering is replaced once,
/// for an idempotent request that is all in `conn.out`: the upstream may
/// have acted on the first copy, so a `POST` is never sent twice.
async fn send(
    pool: &Pool,
    conn: &mut Conn<'_>,
    left: u64,
    ask: Ask<'_>,
    body: &mut BodyState,
) -> Result<(pool::Upstream, Final), String> {
    let mut up = pool.get().await?;
    loop {
        match send_once(&mut up, conn, left, ask, body).await {
            Ok(reply) => return Ok((up, reply)),
            Err(Exchange::Unanswered(_)) if up.reused && left == 0 && ask.idempotent => {
                up = pool.connect().await?;
            }
            Err(Exchange::Unanswered(m) | Exchange::Failed(m)) => return Err(m),
        }
    }
}

/// Relays `left` request body bytes from the client to the upstream while
/// watching the upstream: it may answer (an early 401 or 413) before it has
/// read the whole body, and may stop reading or close. `Ok(true)` when the
/// whole body was sent, `Ok(false)` when the upstream's answer is to be read
/// now with the body cut short.
async fn send_body(
    up: &mut pool::Upstream,
    conn: &mut Conn<'_>,
    mut left: u64,
    ask: Ask<'_>,
) -> Result<bool, Exchange> {
    enum Event {
        Answer(std::io::Result<usize>),
        Sent(Result<usize, Side>),
    }
    enum Side {
        Client(std::io::Error),
        Upstream,
    }
    let (mut rd, mut wr) = up.stream.split();
    while left > 0 {
        let event = {
            let buf = &mut *conn.buf;
            let client = &mut *conn.stream;
            let wr = &mut wr;
            let step = async move {
                if buf.is_empty() {
                    buf.reserve(READ_SIZE);
                    match client.read_buf(buf).await {
                        Ok(0) => {
                            return Err(Side::Client(std::io::ErrorKind::UnexpectedEof.into()))
                        }
                        Ok(_) => {}
                        Err(e) => return Err(Side::Client(e)),
                    }
                }
                let now = body::take(buf, left);
                let chunk = buf.get(..now).unwrap_or_default();
                wr.write_all(chunk).await.map_err(|_| Side::Upstream)?;
                Ok(now)
            };
            tokio::select! {
                biased;
                r = rd.read_buf(&mut up.buf) => Event::Answer(r),
                r = step => Event::Sent(r),
            }
        };
        match event {
            Event::Sent(Ok(now)) => {
                conn.buf.advance(now);
                left -= now as u64;
            }
            Event::Sent(Err(Side::Client(e))) => {
                return Err(Exchange::Failed(format!("request body: {e}")))
            }
            // It may have answered and then stopped reading: read what it sent.
            Event::Sent(Err(Side::Upstream)) => return Ok(false),
            Event::Answer(Ok(0)) => {
                return Err(Exchange::Failed(
                    "upstream closed the connection during the request body".into(),
                ))
            }
            Event::Answer(Err(e)) => {
                return Err(Exchange::Failed(format!("upstream connection: {e}")))
            }
            Event::Answer(Ok(_)) => loop {
                conn.back.clear();
                match head::read_response(&up.buf, ask.head, ask.policy, conn.back) {
                    // An interim answer (100 Continue): keep sending.
                    Ok(Reply::Interim(n)) => up.buf.advance(n),
                    Ok(Reply::Partial) if up.buf.len() >= MAX_HEADER_BYTES => {
                        return Err(Exchange::Failed("response head too large".into()));
                    }
                    Ok(Reply::Partial) => break,
                    Ok(Reply::Final(_)) => return Ok(false),
                    Err(e) => return Err(Exchange::Failed(e)),
                }
            },
        }
    }
    Ok(true)
}

/// Sends the request once and reads the response head.
async fn send_once(
    up: &mut pool::Upstream,
    conn: &mut Conn<'_>,
    left: u64,
    ask: Ask<'_>,
    body: &mut BodyState,
) -> Result<Final, Exchange> {
    let fresh = |e: std::io::Error| Exchange::Unanswered(format!("upstream connection: {e}"));
    up.stream.write_all(conn.out).await.map_err(fresh)?;
    if left > 0 {
        *body = BodyState::Broken;
        if send_body(up, conn, left, ask).await? {
            *body = BodyState::Consumed;
        }
    }
    let mut interim = false;
    loop {
        if !up.buf.is_empty() {
            conn.back.clear();
            match head::read_response(&up.buf, ask.head, ask.policy, conn.back) {
                Ok(Reply::Final(f)) => {
                    up.buf.advance(f.head_len);
                    return Ok(f);
                }
                Ok(Reply::Interim(n)) => {
                    up.buf.advance(n);
                    interim = true;
                    continue;
                }
                Ok(Reply::Partial) if up.buf.len() >= MAX_HEADER_BYTES => {
                    return Err(Exchange::Failed("response head too large".into()));
                }
                Ok(Reply::Partial) => {}
                Err(e) => return Err(Exchange::Failed(e)),
            }
        }
        up.buf.reserve(READ_SIZE);
        let nothing = up.buf.is_empty() && !interim;
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) => {
                return Err(Exchange::lost(
                    "upstream closed the connection".into(),
                    nothing,
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Exchange::lost(format!("upstream connection: {e}"), nothing)),
        }
    }
}
