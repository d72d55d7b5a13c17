//! Connections: the listeners, serving HTTP/1.1 and HTTP/2 (h2c, or h2 and
//! http/1.1 by ALPN over TLS) on one port, the HTTP/1.1 fast path
//! ([`h1`], plain and over TLS), per-connection time limits ([`conn`]), and draining on
//! shutdown. The caller binds. Requests go to [`crate::proxy`]; nothing in
//! `proxy` imports this module.
//!
//! May import: config, proxy.
//!
//! Thread per core: one acceptor deals connections to one worker thread per
//! core in turn; each runs a single-threaded tokio runtime and owns its own
//! upstream connection pool, so a request, its upstream exchange and its
//! response are handled on one thread with no cross-thread wake-ups.
//!
//! The admin listener is served here too ([`serve_admin`]), with the same
//! time limits and a connection budget of its own, so a flood on one port
//! never starves the other.

pub mod conn;
pub mod h1;
pub mod paced;

use crate::proxy::forward::Upstream;
use crate::proxy::LiveProxy;
use conn::Limits;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Largest request head (request line + headers) accepted; bigger gets 431 (64 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most open client connections on the proxy listener, across all workers
/// (10,000, fewer when the file-descriptor limit is lower); beyond it new
/// connections wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Most open connections on the admin listener (256): its own budget.
pub const ADMIN_MAX_CONNECTIONS: usize = 256;
/// Pause after an accept error (e.g. out of file descriptors) before retrying (50 ms).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Descriptors kept back from the connection budget for upstream
/// connections, stores, files and the admin listener.
const FD_RESERVE: u64 = 512;

#[derive(Clone)]
pub struct ServerOptions {
    /// Time a client has to send a request head (and a new connection its
    /// first request).
    pub client_header: Duration,
    /// Time a keep-alive connection may sit idle between requests.
    pub client_idle: Duration,
    /// Longest wait for in-flight requests after shutdown begins.
    pub shutdown_grace: Duration,
    /// Serve HTTPS (`tls:`), ALPN h2 and http/1.1.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ServerOptions {
    fn limits(&self) -> Limits {
        Limits {
            first_request: self.client_header,
            idle: self.client_idle,
            closing: self.shutdown_grace,
        }
    }
}

/// One worker thread per available core (cgroup CPU limits included).
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Raises the soft file-descriptor limit to the hard one and returns the
/// proxy listener's connection budget: [`MAX_CONNECTIONS`], or fewer so
/// that client connections can never take the descriptors everything else
/// needs.
pub fn connection_budget() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = limit.saturating_sub(FD_RESERVE + ADMIN_MAX_CONNECTIONS as u64) / 2;
    usize::try_from(room)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(64, MAX_CONNECTIONS)
}

/// Accepts the next connection; an error (out of descriptors…) is logged
/// and retried after [`ACCEPT_BACKOFF`], never ending the loop.
async fn accept(listener: &TcpListener, which: &'static str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(a) => return a,
            Err(e) => {
                tracing::warn!(listener = which, error = %e, "Accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves the live proxy on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    proxy: LiveProxy,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let budget = connection_budget();
    let per_worker = budget.div_ceil(worker_count());
    let mut threads = Vec::new();
    let mut queues = Vec::new();
    for index in 0..worker_count() {
        let (tx, rx) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
        let worker = Worker {
            proxy: proxy.clone(),
            options: options.clone(),
            stop: stop_rx.clone(),
            slots: per_worker,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("proxy-worker-{index}"))
            .spawn(move || worker.run(rx));
        match spawned {
            Ok(t) => {
                threads.push(t);
                queues.push(tx);
            }
            Err(e) => tracing::error!(error = %e, "Cannot start a worker thread"),
        }
    }
    if threads.is_empty() {
        tracing::error!("No worker could start");
        return;
    }
    deal(&listener, &queues, shutdown).await;
    drop(listener);
    drop(queues);
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

/// One acceptor deals connections to the workers in turn, so each core
/// carries the same share (a shared accept queue lets one worker win most).
async fn deal(listener: &TcpListener, queues: &[Handoff], shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let (stream, addr) = tokio::select! {
            a = accept(listener, "proxy") => a,
            () = &mut shutdown => return,
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let Some(queue) = queues.get(next % queues.len()) else {
            return;
        };
        next = next.wrapping_add(1);
        // A full queue (every slot of that worker taken) holds the acceptor.
        if queue.send((stream, addr)).await.is_err() {
            tracing::error!("A worker is gone; no longer accepting");
            return;
        }
    }
}

/// Connections waiting for a worker to take them (per worker).
const HANDOFF_QUEUE: usize = 64;

type Handoff = tokio::sync::mpsc::Sender<(std::net::TcpStream, SocketAddr)>;
type Queue = tokio::sync::mpsc::Receiver<(std::net::TcpStream, SocketAddr)>;

/// One worker thread: its runtime, connections and upstream pool.
struct Worker {
    proxy: LiveProxy,
    options: ServerOptions,
    stop: watch::Receiver<bool>,
    slots: usize,
}

/// What every connection task of a worker shares.
struct Shared {
    proxy: LiveProxy,
    options: ServerOptions,
    limits: Limits,
    builder: auto::Builder<TokioExecutor>,
    /// This thread's pooled client for everything hyper forwards.
    upstream: Upstream,
    /// HTTP/1.1 in (plain or TLS) and plain HTTP/1.1 out takes the fast path.
    fast: Option<(h1::Target, h1::Pool)>,
    /// This worker's connection slots. A request that outlives its client
    /// holds one too while it runs on alone (it keeps an upstream
    /// connection): the descriptors stay within the budget, and the drain
    /// at shutdown waits for it.
    slots: Arc<Semaphore>,
}

impl Worker {
    fn run(self, incoming: Queue) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "Cannot start a worker runtime");
                return;
            }
        };
        runtime.block_on(self.accept_loop(incoming));
    }

    async fn accept_loop(self, mut incoming: Queue) {
        let shared = Arc::new(self.shared());
        let slots = shared.slots.clone();
        let mut stop = self.stop.clone();
        loop {
            // Bounded: with every slot taken, connections wait in the backlog.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            let handed = tokio::select! {
                handed = incoming.recv() => handed,
                _ = stop.wait_for(|s| *s) => break,
            };
            let Some((stream, addr)) = handed else { break };
            let stream = match TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Worker cannot take a connection");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let stop = self.stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match shared.options.tls.clone() {
                    None => serve_plain(&shared, stream, addr, stop).await,
                    Some(acceptor) => serve_tls(&shared, &acceptor, stream, addr, stop).await,
                }
            });
        }
        drop(incoming);
        // Drained when every connection has given its slot back.
        let all = u32::try_from(self.slots).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(self.options.shutdown_grace, slots.acquire_many(all));
        if drained.await.is_err() {
            tracing::warn!("Shutdown grace period over; closing remaining connections");
        } else {
            tracing::debug!("Worker drained");
        }
    }

    fn shared(&self) -> Shared {
        // Built on this thread, so its connections live on this thread's
        // runtime. The upstream is fixed for the process (a change needs a
        // restart).
        let upstream = self.proxy.load().upstream().fresh();
        let fast = upstream.fast_target().map(|t| {
            let pool = h1::Pool::new(t.address.clone(), t.connect_timeout);
            (h1::Target::from(t), pool)
        });
        let limits = self.options.limits();
        Shared {
            proxy: self.proxy.clone(),
            options: self.options.clone(),
            builder: conn::builder(&limits, MAX_HEADER_BYTES),
            limits,
            upstream,
            fast,
            slots: Arc::new(Semaphore::new(self.slots)),
        }
    }
}

/// A plain TCP connection: the fast path first, hyper for what it hands over.
async fn serve_plain(
    shared: &Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    // A client that sends nothing at all is cut off after the header
    // timeout too (hyper only times heads it has started to read).
    let mut probe = [0u8; 1];
    let header_timeout = shared.options.client_header;
    let first_byte = tokio::time::timeout(header_timeout, stream.peek(&mut probe)).await;
    if !matches!(first_byte, Ok(Ok(n)) if n > 0) {
        tracing::debug!(client.addr = %addr, "Client sent nothing; closed");
        return;
    }
    http1_first(shared, stream, addr, false, stop).await;
}

/// Serves `stream` (plain or TLS) on the fast path while its requests suit
/// it, then hands the rest of the connection to hyper with the bytes read.
async fn http1_first<S>(
    shared: &Arc<Shared>,
    stream: S,
    addr: SocketAddr,
    tls: bool,
    stop: watch::Receiver<bool>,
) where
    S: h1::Client + Send + 'static,
{
    // A client that stops reading its answer is cut off after `client_idle`.
    let mut stream = paced::Paced::new(stream, shared.options.client_idle);
    let read_ahead = match &shared.fast {
        Some((target, pool)) => {
            let lane = h1::Lane {
                live: &shared.proxy,
                pool,
                target,
                client: addr,
                tls,
                client_header: shared.options.client_header,
                client_idle: shared.options.client_idle,
                stop: stop.clone(),
            };
            match h1::serve(&mut stream, lane).await {
                h1::Ended::Closed => return,
                h1::Ended::Hyper(bytes) => bytes,
            }
        }
        None => bytes::Bytes::new(),
    };
    let io = h1::Rewind::new(read_ahead, stream);
    hyper_conn(shared, io, addr, tls, stop).await;
}

/// A TLS connection: the handshake counts against the header timeout.
async fn serve_tls(
    shared: &Arc<Shared>,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(shared.options.client_header, acceptor.accept(stream));
    let stream = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client.addr = %addr, "TLS handshake timed out");
            return;
        }
    };
    // HTTP/1.1 (by ALPN, or a client that offered none) takes the fast path
    // like a plain connection; h2 goes to hyper.
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        let stream = paced::Paced::new(stream, shared.options.client_idle);
        hyper_conn(shared, stream, addr, true, stop).await;
        return;
    }
    http1_first(shared, stream, addr, true, stop).await;
}

/// Serves one connection with hyper, each request on the configuration
/// current when it arrived.
async fn hyper_conn<I>(
    shared: &Arc<Shared>,
    io: I,
    addr: SocketAddr,
    tls: bool,
    stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let for_requests = shared.clone();
    let handle = move |req: Request<Incoming>| {
        let shared = for_requests.clone();
        async move {
            let proxy = shared.proxy.load_full();
            // With every slot taken (a flood of abandoned logouts), served
            // like any request: bounded before complete.
            let slot = if proxy.outlives_client(&req) {
                shared.slots.clone().try_acquire_owned().ok()
            } else {
                None
            };
            let Some(slot) = slot else {
                return proxy.handle(req, addr, tls, &shared.upstream).await;
            };
            // hyper drops this future when the client goes away; the task
            // goes on (dropping a JoinHandle does not cancel its task).
            let answering = proxy.clone();
            let task = tokio::spawn(async move {
                let _slot = slot;
                answering.handle(req, addr, tls, &shared.upstream).await
            });
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "Request task failed");
                proxy.task_failed()
            })
        }
    };
    let served = conn::serve(io, &shared.builder, shared.limits, stop, handle).await;
    if let Err(e) = served {
        tracing::debug!(client.addr = %addr, error = %e, "Connection ended with an error");
    }
}

/// Serves the admin listener with `handle` until `shutdown` resolves: the
/// same time limits as the proxy listener, [`ADMIN_MAX_CONNECTIONS`] at once.
pub async fn serve_admin<H, F, B>(
    listener: TcpListener,
    options: ServerOptions,
    handle: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = options.limits();
    let builder = Arc::new(conn::builder(&limits, MAX_HEADER_BYTES));
    let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let (stop_tx, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            a = accept(&listener, "admin") => a,
            () = &mut shutdown => break,
        };
        let handle = handle.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let per_request = move |req| handle(req, remote);
            let _ = conn::serve(stream, &builder, limits, stop, per_request).await;
        });
    }
    let _ = stop_tx.send(true);
}
