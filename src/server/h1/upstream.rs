//! The upstream side of one fast-path exchange: the request written over a
//! pooled connection (replaced once, for idempotent requests only, when a
//! reused one closed unanswered), the body relayed while the answer is
//! watched for, and the response head read.

use super::body::{self, READ_SIZE};
use super::error::UpstreamError;
use super::exchange::{BodyState, Conn};
use super::head::{self, Final, Reply};
use super::pool::{self, Pool};
use super::Client;
use crate::proxy::hygiene::Policy;
use crate::server::MAX_HEADER_BYTES;
use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why an exchange with the upstream failed.
enum Exchange {
    /// Nothing came back: the request may be sent again if it is idempotent.
    Unanswered(UpstreamError),
    /// Something came back, or the request body is gone: never repeated.
    Failed(UpstreamError),
}

impl Exchange {
    fn lost(message: UpstreamError, nothing_received: bool) -> Exchange {
        if nothing_received {
            Exchange::Unanswered(message)
        } else {
            Exchange::Failed(message)
        }
    }
}

/// What the upstream's answer is read for.
#[derive(Clone, Copy)]
pub(super) struct Ask<'a> {
    /// A HEAD request: the answer has no body.
    pub head: bool,
    /// The method may be sent again (RFC 9110 §9.2.2).
    pub idempotent: bool,
    pub policy: &'a Policy,
    /// When the request was handed to the upstream side.
    pub sent: std::time::Instant,
}

/// RFC 9110 §9.2.2; only these may be retried automatically (RFC 9112 §9.3.1).
pub(super) fn idempotent(method: &str) -> bool {
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
pub(super) async fn send<S: Client>(
    pool: &Pool,
    conn: &mut Conn<'_, S>,
    left: u64,
    ask: Ask<'_>,
    body: &mut BodyState,
) -> Result<(pool::Upstream, Final), UpstreamError> {
    let mut up = pool.get(ask.sent).await?;
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
async fn send_body<S: Client>(
    up: &mut pool::Upstream,
    conn: &mut Conn<'_, S>,
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
                return Err(Exchange::Failed(UpstreamError::ClientBody(e)))
            }
            // It may have answered and then stopped reading: read what it sent.
            Event::Sent(Err(Side::Upstream)) => return Ok(false),
            Event::Answer(Ok(0)) => return Err(Exchange::Failed(UpstreamError::ClosedDuringBody)),
            Event::Answer(Err(e)) => return Err(Exchange::Failed(UpstreamError::Io(e))),
            Event::Answer(Ok(_)) => {
                if answered_early(&mut up.buf, conn, ask)? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Whether the bytes the upstream sent while the body was still going out
/// hold its final answer (interim ones are skipped: keep sending).
fn answered_early<S: Client>(
    buf: &mut bytes::BytesMut,
    conn: &mut Conn<'_, S>,
    ask: Ask<'_>,
) -> Result<bool, Exchange> {
    loop {
        conn.back.clear();
        match head::read_response(buf, ask.head, ask.policy, conn.back) {
            Ok(Reply::Interim(n)) => buf.advance(n),
            Ok(Reply::Partial) if buf.len() >= MAX_HEADER_BYTES => {
                return Err(Exchange::Failed(UpstreamError::HeadTooLarge));
            }
            Ok(Reply::Partial) => return Ok(false),
            Ok(Reply::Final(_)) => return Ok(true),
            Err(e) => return Err(Exchange::Failed(e.into())),
        }
    }
}

/// Sends the request once and reads the response head.
async fn send_once<S: Client>(
    up: &mut pool::Upstream,
    conn: &mut Conn<'_, S>,
    left: u64,
    ask: Ask<'_>,
    body: &mut BodyState,
) -> Result<Final, Exchange> {
    let fresh = |e: std::io::Error| Exchange::Unanswered(UpstreamError::Io(e));
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
                    return Err(Exchange::Failed(UpstreamError::HeadTooLarge));
                }
                Ok(Reply::Partial) => {}
                Err(e) => return Err(Exchange::Failed(e.into())),
            }
        }
        up.buf.reserve(READ_SIZE);
        let nothing = up.buf.is_empty() && !interim;
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) => return Err(Exchange::lost(UpstreamError::Closed, nothing)),
            Ok(_) => {}
            Err(e) => return Err(Exchange::lost(UpstreamError::Io(e), nothing)),
        }
    }
}
