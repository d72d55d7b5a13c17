//! The listener: accepts connections, serves HTTP/1.1 and HTTP/2 (h2c) on one
//! port, and drains in-flight requests on shutdown. The caller binds.
//!
//! Thread per core: one acceptor deals connections to `workers` threads in
//! turn; each runs a single-threaded tokio runtime and owns its own upstream
//! connection pool, so a request, its upstream exchange and its response are
//! handled on one thread with no cross-thread wake-ups.

use crate::proxy::{h1, Proxy};
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request head (request line + headers) accepted; bigger gets 431 (64 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Open client connections across all workers; beyond it new connections
/// wait in the listen backlog (10,000).
pub const MAX_CONNECTIONS: usize = 10_000;

/// Pause after an accept error (e.g. out of file descriptors) before retrying (50 ms).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct ServerOptions {
    /// Time a client has to send its request headers.
    pub client_header: Duration,
    /// Longest wait for in-flight requests after shutdown begins.
    pub shutdown_grace: Duration,
    /// Serve HTTPS (`tls:`), ALPN h2 and http/1.1.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// One worker thread per available core (cgroup CPU limits included).
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The proxy in service; a configuration reload swaps it atomically.
pub type LiveProxy = Arc<ArcSwap<Proxy>>;

/// Serves the live proxy on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    proxy: LiveProxy,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut threads = Vec::new();
    let mut queues = Vec::new();
    for index in 0..worker_count() {
        let (tx, rx) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
        let proxy = proxy.clone();
        let stop = stop_rx.clone();
        let options = options.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("proxy-worker-{index}"))
            .spawn(move || run_worker(rx, proxy, options, stop));
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
    // One acceptor deals connections to the workers in turn, so each core
    // carries the same share (a shared accept queue lets one worker win most).
    tokio::pin!(shutdown);
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(stream) = stream.into_std() else { continue };
                let Some(queue) = queues.get(next % queues.len()) else { break };
                next = next.wrapping_add(1);
                // A full queue (every slot of that worker taken) holds the acceptor.
                if queue.send((stream, addr)).await.is_err() {
                    tracing::error!("A worker is gone; no longer accepting");
                    break;
                }
            }
            () = &mut shutdown => break,
        }
    }
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

/// Connections waiting for a worker to take them (per worker).
const HANDOFF_QUEUE: usize = 64;

type Incoming = tokio::sync::mpsc::Receiver<(std::net::TcpStream, std::net::SocketAddr)>;

fn run_worker(
    incoming: Incoming,
    proxy: LiveProxy,
    options: ServerOptions,
    stop: watch::Receiver<bool>,
) {
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
    runtime.block_on(accept_loop(incoming, proxy, options, stop));
}

async fn accept_loop(
    mut incoming: Incoming,
    proxy: LiveProxy,
    options: ServerOptions,
    mut stop: watch::Receiver<bool>,
) {
    // Built on this thread, so its connections live on this thread's runtime.
    // The upstream is fixed for the process (a change needs a restart).
    let upstream = Arc::new(proxy.load().upstream().fresh());
    // Plain HTTP/1.1 in and out takes the fast path; hyper serves the rest.
    let fast = match (&options.tls, upstream.fast_target()) {
        (None, Some((target, address, connect))) => {
            Some(Arc::new((target, h1::Pool::new(address, connect))))
        }
        _ => None,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.client_header)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    let workers = worker_count();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        MAX_CONNECTIONS.div_ceil(workers),
    ));
    loop {
        // Bounded: with every slot taken, connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let conn_stop = stop.clone();
        tokio::select! {
            handed = incoming.recv() => {
                let Some((stream, addr)) = handed else { break };
                let stream = match tokio::net::TcpStream::from_std(stream) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "Worker cannot take a connection");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tls = options.tls.is_some();
                let live = proxy.clone();
                let proxy = proxy.clone();
                let upstream = upstream.clone();
                let service = service_fn(move |req| {
                    // Each request runs on the configuration current when it arrived.
                    let proxy = proxy.load_full();
                    let upstream = upstream.clone();
                    async move {
                        Ok::<_, Infallible>(proxy.handle(req, addr, tls, &upstream).await)
                    }
                });
                match &options.tls {
                    None => {
                        // A client that sends nothing at all is cut off after
                        // the header timeout too (hyper only times heads it
                        // has started to read).
                        let header_timeout = options.client_header;
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        let fast = fast.clone();
                        let stop = conn_stop;
                        tokio::spawn(async move {
                            let _slot = slot;
                            let mut stream = stream;
                            let mut probe = [0u8; 1];
                            let first_byte = tokio::time::timeout(header_timeout, stream.peek(&mut probe)).await;
                            if !matches!(first_byte, Ok(Ok(n)) if n > 0) {
                                tracing::debug!(client.addr = %addr, "Client sent nothing; closed");
                                return;
                            }
                            let read_ahead = match fast.as_deref() {
                                Some((target, pool)) => {
                                    let lane = h1::Lane {
                                        live: &live,
                                        pool,
                                        target,
                                        client: addr,
                                        client_header: header_timeout,
                                        stop,
                                    };
                                    match h1::serve(&mut stream, lane).await {
                                        h1::Ended::Closed => return,
                                        h1::Ended::Hyper(bytes) => bytes,
                                    }
                                }
                                None => bytes::Bytes::new(),
                            };
                            let io = TokioIo::new(h1::Rewind::new(read_ahead, stream));
                            let conn = builder.serve_connection_with_upgrades(io, service);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::debug!(client.addr = %addr, error = %e, "Connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake counts against the header timeout.
                        let handshake = tokio::time::timeout(options.client_header, acceptor.accept(stream));
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let _slot = slot;
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
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::debug!(client.addr = %addr, error = %e, "Connection ended with an error");
                            }
                        });
                    }
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    drop(incoming);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("Worker drained"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!("Shutdown grace period over; closing remaining connections");
        }
    }
}
