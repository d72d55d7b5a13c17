//! One connection served by hyper (HTTP/1.1 and h2, plain or TLS, proxy or
//! admin listener), with the time limits hyper does not keep by itself:
//!
//! - a new connection must start its first request (an HTTP/1 head, an h2
//!   HEADERS frame) within `first_request` (`timeouts.client_header`); an h2
//!   client that sends only its preface and SETTINGS is closed then;
//! - between requests a connection may sit idle for `idle`
//!   (`timeouts.client_idle`), then it is closed gracefully (h2: GOAWAY);
//! - h2 connections are pinged every [`H2_PING_EVERY`] and closed when a
//!   ping goes unanswered for [`H2_PING_TIMEOUT`];
//! - when the server drains, the connection finishes what is in flight and
//!   closes.
//!
//! A request counts as in flight until its response body has been sent, so
//! a long download or a slow upload is never cut off as idle.

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Interval of h2 keep-alive pings (30 s).
pub const H2_PING_EVERY: Duration = Duration::from_secs(30);
/// An h2 ping unanswered this long closes the connection (20 s).
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// An idle connection asked to close gets this long to do so (1 s): an h2
/// peer that never acknowledges the GOAWAY ping cannot hold it open.
pub const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The time limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Until the first request starts (`timeouts.client_header`).
    pub first_request: Duration,
    /// Between requests (`timeouts.client_idle`).
    pub idle: Duration,
    /// Longest wait for a connection asked to close (drain, idle close).
    pub closing: Duration,
}

/// The hyper connection builder both listeners use: HTTP/1 heads timed and
/// bounded, h2 pinged and its header list bounded.
pub fn builder(limits: &Limits, max_head: usize) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.first_request)
        .max_buf_size(max_head);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX));
    builder
}

/// Requests in flight on one connection and when it last went quiet.
struct Activity {
    in_flight: AtomicUsize,
    /// A request has started on this connection.
    used: AtomicBool,
    quiet_since: parking_lot::Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            quiet_since: parking_lot::Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }

    /// The connection's deadline changes only when it goes from idle to
    /// busy and back, so only those wake its task (an h2 connection with
    /// many streams in flight is not woken twice per stream).
    fn begin(self: &Arc<Self>) -> InFlight {
        self.used.store(true, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_one();
        }
        InFlight(self.clone())
    }

    /// When the connection is to be closed as idle; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let limit = if self.used.load(Ordering::Relaxed) {
            limits.idle
        } else {
            limits.first_request
        };
        Some(*self.quiet_since.lock() + limit)
    }
}

/// One request in flight; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.quiet_since.lock() = Instant::now();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight.
    pub struct Tracked<B> {
        #[pin]
        body: B,
        guard: Option<InFlight>,
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves `io` with `handle` until the client is done, it idles out, or
/// `stop` turns true (then in-flight requests finish within `limits.closing`).
pub async fn serve<I, H, F, B>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    handle: H,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let counted = activity.clone();
    let handle = Arc::new(handle);
    let service = service_fn(move |req| {
        let guard = counted.begin();
        // Boxed where it is made: the request future is large, and hyper
        // moves the service future into each h2 stream task it spawns.
        let reply = Box::pin(handle(req));
        async move {
            let resp = reply.await;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                guard: Some(guard),
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    loop {
        let idle_at = activity.deadline(&limits);
        let wake = closing.or(idle_at);
        tokio::select! {
            done = conn.as_mut() => return done,
            () = activity.changed.notified() => {}
            () = sleep_until(wake) => {
                if closing.is_some() {
                    return Ok(()); // asked to close and still not done: drop it
                }
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + IDLE_CLOSE_GRACE);
                }
            }
            _ = stop.wait_for(|s| *s), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + limits.closing);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
