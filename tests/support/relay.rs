//! A TCP relay in front of a server the test started: it can delay every
//! chunk, cut every connection through it, refuse new ones, and point new
//! connections at another port (a failover).

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Relay {
    pub addr: std::net::SocketAddr,
    /// Added to every chunk, in milliseconds.
    pub delay_ms: Arc<AtomicU64>,
    /// New connections are closed at once while set.
    pub refuse: Arc<AtomicBool>,
    target: Arc<AtomicU16>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    pub async fn start(to: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let target = Arc::new(AtomicU16::new(to));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let (delay, refusing, port) = (delay_ms.clone(), refuse.clone(), target.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if refusing.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let to = port.load(Ordering::Relaxed);
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (delay, mut cuts) = (delay.clone(), cuts.clone());
                // Only cuts after this connection began end it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let d2 = delay.clone();
                    let up = pump(&mut cr, &mut sw, &delay);
                    let down = pump(&mut sr, &mut cw, &d2);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay {
            addr,
            delay_ms,
            refuse,
            target,
            cut,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Drops every connection made so far.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// New connections go to `port` from now on.
    pub fn point_at(&self, port: u16) {
        self.target.store(port, Ordering::Relaxed);
    }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    delay: &AtomicU64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let d = delay.load(Ordering::Relaxed);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
