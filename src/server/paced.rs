//! A client connection whose writes may stall for a limited time only: a
//! client that stops reading an answer (a "slow read") would otherwise hold
//! its connection, its upstream connection and their buffers for as long as
//! it likes. Like nginx's `send_timeout`, the limit runs between two writes
//! that make progress, so a long download that keeps moving is never cut.
//!
//! The timer is armed only when a write cannot proceed (the socket's send
//! buffer is full), which an answer that fits in the buffer never meets: no
//! timer per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct Paced<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first found no room; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Paced<S> {
    pub fn new(inner: S, limit: Duration) -> Paced<S> {
        Paced {
            inner,
            limit,
            stalled: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Passes a ready answer on (and disarms the timer); a pending one
    /// waits, up to the limit since the first write that found no room.
    fn pace<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.pace(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.pace(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.pace(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.pace(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_cut_off_after_the_limit() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut paced = Paced::new(near, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let chunk = [7u8; 4096];
        let e = loop {
            if let Err(e) = paced.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // A reader that keeps taking bytes, however slowly, is never cut.
        let mut paced = Paced::new(paced.inner, Duration::from_secs(5));
        let mut sink = vec![0u8; 1024];
        // The 1 KiB left from above, then everything written below.
        let total = 1024 + 8 * chunk.len();
        let reader = async {
            let mut got = 0;
            while got < total {
                tokio::time::sleep(Duration::from_secs(4)).await;
                got += far.read(&mut sink).await.unwrap_or(0);
            }
        };
        let writer = async {
            for _ in 0..8 {
                paced.write_all(&chunk).await?;
            }
            io::Result::Ok(())
        };
        let (_, written) = tokio::join!(reader, writer);
        assert!(written.is_ok(), "{written:?}");
    }
}
