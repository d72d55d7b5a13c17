//! The fast path's upstream connections: one pool per worker thread, most
//! recently used first, so a few warm connections carry the load. At most
//! [`MAX_CONNECTING`] connections are being opened at once per worker; a
//! request that finds no idle connection and no free connect slot waits for
//! a slot or for a connection to come back, whichever is first, and returned
//! connections go to the longest waiter first. A burst of thousands of
//! clients then reuses connections as they free up instead of sending the
//! upstream thousands of SYNs at once (which overflow its listen backlog
//! and turn into connect timeouts and 502s).

use super::error::UpstreamError;
use crate::proxy::forward::POOL_IDLE;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};

/// Idle connections kept per worker (256); more are closed when returned.
pub const MAX_IDLE: usize = 256;
/// Connections being opened at once per worker (as on the hyper path).
pub const MAX_CONNECTING: usize = crate::proxy::forward::MAX_CONNECTING;

/// One upstream connection and the bytes read from it but not yet used.
pub struct Upstream {
    pub stream: TcpStream,
    pub buf: BytesMut,
    /// Taken from the pool rather than freshly connected.
    pub reused: bool,
    idle_since: Instant,
}

pub struct Pool {
    /// `host:port` to connect to.
    address: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Upstream>>,
    connecting: Semaphore,
    /// Requests waiting for a connection, oldest first (a closed one has
    /// given up or connected by itself).
    waiters: Mutex<VecDeque<oneshot::Sender<Upstream>>>,
}

impl Pool {
    pub fn new(address: String, connect_timeout: Duration) -> Pool {
        Pool {
            address,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            connecting: Semaphore::new(MAX_CONNECTING),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// A pooled connection still open and silent, or a new one. Every reuse
    /// is probed: a connection holding bytes nobody asked for (an extra
    /// response, a body after a HEAD answer) would hand them to the next
    /// client as its answer.
    pub async fn get(&self, now: Instant) -> Result<Upstream, UpstreamError> {
        loop {
            if let Some(conn) = self.take_idle(now) {
                return Ok(conn);
            }
            if let Ok(_slot) = self.connecting.try_acquire() {
                return self.connect().await;
            }
            let (tx, rx) = oneshot::channel();
            self.waiters.lock().push_back(tx);
            tokio::select! {
                biased;
                handed = rx => {
                    if let Some(conn) = handed.ok().and_then(|c| usable(c, now)) {
                        return Ok(conn);
                    }
                }
                permit = self.connecting.acquire() => {
                    let _slot = permit;
                    return self.connect().await;
                }
            }
        }
    }

    /// The most recently returned idle connection that is still usable.
    fn take_idle(&self, now: Instant) -> Option<Upstream> {
        loop {
            let conn = self.idle.lock().pop()?;
            if let Some(conn) = usable(conn, now) {
                return Some(conn);
            }
        }
    }

    /// A new connection, bypassing the pool.
    pub async fn connect(&self) -> Result<Upstream, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(self.address.clone()))?
            .map_err(|e| UpstreamError::Connect(self.address.clone(), e))?;
        let _ = stream.set_nodelay(true);
        Ok(Upstream {
            stream,
            buf: BytesMut::with_capacity(super::body::READ_SIZE),
            reused: false,
            idle_since: Instant::now(),
        })
    }

    /// Returns a connection whose last exchange ended cleanly, idle since
    /// `idle_since` (the caller's clock reading when its answer came).
    pub fn put(&self, mut conn: Upstream, idle_since: Instant) {
        if !conn.buf.is_empty() {
            return; // bytes nobody asked for: the connection is out of step
        }
        conn.idle_since = idle_since;
        loop {
            let Some(waiter) = self.waiters.lock().pop_front() else {
                break;
            };
            match waiter.send(conn) {
                Ok(()) => return,
                Err(back) => conn = back,
            }
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A pooled connection fit for reuse (probed, not idle too long), marked reused.
fn usable(mut conn: Upstream, now: Instant) -> Option<Upstream> {
    if now.saturating_duration_since(conn.idle_since) < POOL_IDLE && still_open(&conn.stream) {
        conn.reused = true;
        Some(conn)
    } else {
        None
    }
}

/// An idle connection is open when reading it would block; end of stream or
/// unexpected bytes mean it is not usable.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_opens_at_most_max_connecting_at_once_and_waiters_take_returned_connections() {
        // A listener that never accepts: once its accept queue (std's
        // backlog, 128) is full, further connects hang in SYN retries.
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = hole.local_addr().unwrap().to_string();
        let mut filler = Vec::new();
        for _ in 0..5000 {
            match tokio::time::timeout(Duration::from_millis(50), TcpStream::connect(&addr)).await {
                Ok(Ok(s)) => filler.push(s),
                _ => break,
            }
        }
        let pool = std::sync::Arc::new(Pool::new(addr, Duration::from_secs(30)));
        let mut waiting = Vec::new();
        for _ in 0..(MAX_CONNECTING + 8) {
            let pool = pool.clone();
            waiting.push(tokio::spawn(async move { pool.get(Instant::now()).await }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.connecting.available_permits(), 0);
        assert!(waiting.iter().all(|w| !w.is_finished()));
        // A live connection comes back: one waiter takes it at once.
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(live.local_addr().unwrap())
            .await
            .unwrap();
        let _peer = live.accept().await.unwrap();
        pool.put(
            Upstream {
                stream,
                buf: BytesMut::new(),
                reused: false,
                idle_since: Instant::now(),
            },
            Instant::now(),
        );
        let mut got = None;
        for _ in 0..100 {
            if let Some(i) = waiting.iter().position(|w| w.is_finished()) {
                got = Some(waiting.remove(i).await.unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let conn = got.expect("a waiter took the returned connection").unwrap();
        assert!(conn.reused);
        for w in waiting {
            w.abort();
        }
    }
}
