//! The fast path's upstream connections: one pool per worker thread, most
//! recently used first, so a few warm connections carry the load.

use super::error::UpstreamError;
use crate::proxy::forward::POOL_IDLE;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per worker (256); more are closed when returned.
pub const MAX_IDLE: usize = 256;

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
}

impl Pool {
    pub fn new(address: String, connect_timeout: Duration) -> Pool {
        Pool {
            address,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pooled connection still open and silent, or a new one. Every reuse
    /// is probed: a connection holding bytes nobody asked for (an extra
    /// response, a body after a HEAD answer) would hand them to the next
    /// client as its answer.
    pub async fn get(&self) -> Result<Upstream, UpstreamError> {
        loop {
            let Some(mut conn) = self.idle.lock().pop() else {
                break;
            };
            if conn.idle_since.elapsed() < POOL_IDLE && still_open(&conn.stream) {
                conn.reused = true;
                return Ok(conn);
            }
        }
        self.connect().await
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

    /// Returns a connection whose last exchange ended cleanly.
    pub fn put(&self, mut conn: Upstream) {
        if !conn.buf.is_empty() {
            return; // bytes nobody asked for: the connection is out of step
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// An idle connection is open when reading it would block; end of stream or
/// unexpected bytes mean it is not usable.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
