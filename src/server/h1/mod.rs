//! The HTTP/1.1 fast path, on a plain socket or a TLS stream (ALPN
//! http/1.1, or none). Plain requests (HTTP/1.1, origin-form target, no
//! body or a Content-Length one, no Upgrade or Expect) are parsed in place
//! with httparse and forwarded over a per-worker pool of raw upstream
//! connections, bodies relayed verbatim as they arrive. Everything else (h2c,
//! HTTP/1.0, chunked request bodies, upgrades, absolute-form targets, odd or
//! oversized heads) is handed to hyper with the bytes already read, for the
//! rest of that connection. Routes, admission (where every 401 is decided)
//! and revocations are the same [`Proxy`] methods on either path.
//!
//! Owns: heads ([`head`]), bodies ([`body`]), the raw upstream pool ([`pool`]),
//! exchanges and their typed failures ([`error`]).
//! May import: config, proxy (as the rest of `server`).

pub mod body;
mod deadline;
pub mod error;
mod exchange;
pub mod head;
pub mod pool;
mod rewind;
mod upstream;

pub use pool::Pool;
pub use rewind::Rewind;

use crate::proxy::forward::FastTarget;
use crate::proxy::LiveProxy;
use crate::server::MAX_HEADER_BYTES;
use body::READ_SIZE;
use bytes::{Bytes, BytesMut};
use deadline::Deadline;
use exchange::{exchange, Conn};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    /// The client connection is TLS (`tls:`), which the forwarded headers say.
    pub tls: bool,
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

/// A client connection the fast path can serve: a plain socket or a TLS
/// stream over one.
pub trait Client: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> Client for S {}

/// Serves requests on `stream` (plain TCP, or TLS once the handshake chose
/// HTTP/1.1) until it closes or one needs hyper.
pub async fn serve<S: Client>(stream: &mut S, mut lane: Lane<'_>) -> Ended {
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    let mut back = Vec::with_capacity(1024);
    let mut first = true;
    let mut timer = Deadline::new(tokio::time::Instant::now() + lane.client_header);
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
        timer.set(tokio::time::Instant::now() + wait);
        // Once a request has started, its head deadline is set when a read
        // finds it incomplete (most heads come whole in their first read).
        let mut deadline_set = true;
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
                match exchange(&data, &mut conn, &mut timer, &lane).await {
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
            if !deadline_set {
                timer.set(tokio::time::Instant::now() + lane.client_header);
                deadline_set = true;
            }
            if !read_more(stream, &mut buf, &mut timer, &mut lane).await {
                return Ended::Closed;
            }
            if !started {
                started = true;
                deadline_set = false;
            }
        }
    }
}

/// Reads more of a request head; false when the client closed, the deadline
/// passed, or shutdown began while the connection was idle.
async fn read_more<S: Client>(
    stream: &mut S,
    buf: &mut BytesMut,
    timer: &mut Deadline,
    lane: &mut Lane<'_>,
) -> bool {
    buf.reserve(READ_SIZE);
    let idle = buf.is_empty();
    tokio::select! {
        biased;
        r = stream.read_buf(buf) => matches!(r, Ok(n) if n > 0),
        () = timer.passed() => false,
        _ = lane.stop.wait_for(|s| *s), if idle => false,
    }
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
async fn linger<S: Client>(stream: &mut S) {
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
