//! Limits against abuse: slow clients are cut off after
//! `timeouts.client_header`, oversize heads get 431 and oversize tokens 400,
//! and afterwards the proxy still serves normal traffic.

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> String {
    format!("{BASIC}timeouts:\n  client_header: 1s\n")
}

/// Reads until the peer closes (or answers); returns what arrived and when.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Err(_) => panic!(
                "connection still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    started.elapsed(),
                )
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_normal_traffic_continues() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
    let token = hs256(&claims("alice"));

    // Slowloris: a few header bytes at a time, never finishing.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // A silent connection that never sends a byte.
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let dribble = async {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for s in &mut slow {
                let _ = s.write_all(b"X-Slow: 1\r\n").await;
            }
        }
    };
    // Meanwhile, normal requests are served.
    let normal = async {
        for _ in 0..5 {
            assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::join!(dribble, normal);
    for s in &mut slow {
        let (answer, took) = until_closed(s, Duration::from_secs(3)).await;
        assert!(took < Duration::from_secs(3));
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    let (_, took) = until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(3), "idle connection closed");
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn oversize_heads_get_431_and_oversize_tokens_400() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
    let token = hs256(&claims("alice"));

    let big = "a".repeat(70 * 1024);
    let req = format!("GET /api HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    assert_eq!(raw_status(proxy.addr, req.as_bytes()).await, 431);
    let many: String = (0..2000).map(|i| format!("X-H{i}: {i:032}\r\n")).collect();
    let req = format!("GET /api HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(raw_status(proxy.addr, req.as_bytes()).await, 431);

    let long_token = format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c");
    let r = get(proxy.addr, "/api", Some(&long_token)).await;
    assert_eq!(r.status, 400);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_request"));
    assert_eq!(up.count(), 0, "nothing oversize reached the upstream");
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
    proxy.stop().await;
}
