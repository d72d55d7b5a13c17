//! WebSockets through the proxy with a real client and server
//! (tokio-tungstenite): the handshake needs a valid token, messages flow both
//! ways, and the connection is closed within a second once the token is
//! revoked (here, elsewhere via the store, by purge) or reaches `exp`.

#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::servers::Redis;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HandshakeRequest,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket echo server on 127.0.0.1:0. Its first message is `hello`
/// followed by the identity header the handshake carried; a handshake
/// `accept` refuses (given the request and the server's own address) gets 400.
async fn ws_server(accept: fn(&HandshakeRequest, SocketAddr) -> bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut subject = String::new();
                let callback = |req: &HandshakeRequest, resp| {
                    if !accept(req, addr) {
                        let mut refuse = ErrorResponse::new(None);
                        *refuse.status_mut() = http::StatusCode::BAD_REQUEST;
                        return Err(refuse);
                    }
                    subject = req
                        .headers()
                        .get("x-auth-subject")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let _ = ws.send(Message::text(format!("hello {subject}"))).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Accepts every handshake and reports the identity header it saw.
async fn echo_server() -> SocketAddr {
    ws_server(|_, _| true).await
}

async fn connect(proxy: SocketAddr, token: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("ws://{proxy}/ws").into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req.headers_mut()
        .insert("x-auth-subject", "spoofed".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo arrives")
        .unwrap()
        .unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), text);
}

/// Waits for the proxy to close the connection; returns how long it took.
async fn closed_within(ws: &mut Ws, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), ws.next()).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(None) | Ok(Some(Err(_))) => return started.elapsed(),
            Ok(Some(Ok(Message::Close(_)))) => return started.elapsed(),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn revoke(proxy: &TestProxy, claims: &serde_json::Value) {
    let value = |k: &str| revoke_proxy::claims::ClaimValue::from_json(&claims[k]).unwrap();
    proxy
        .app
        .revocations
        .revoke_token(value("sub"), value("jti"), claims["exp"].as_i64(), None)
        .await;
}

#[tokio::test]
async fn a_websocket_lives_only_as_long_as_its_token() {
    let upstream = echo_server().await;
    let proxy = TestProxy::start(BASIC, &format!("http://{upstream}"), &[]).await;

    assert_eq!(
        connect(proxy.addr, None).await.err(),
        Some(401),
        "no token, no upgrade"
    );

    // Revoked while the socket is open (the echo upstream has no /logout,
    // so the revocation goes through the same door the routes use).
    let alice = claims("alice");
    let t = hs256(&alice);
    let mut ws = connect(proxy.addr, Some(&t)).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(
        hello.into_text().unwrap().as_str(),
        "hello alice",
        "identity header from the token, not the client"
    );
    echo(&mut ws, "ping").await;
    revoke(&proxy, &alice).await;
    let took = closed_within(&mut ws, Duration::from_millis(1500)).await;
    println!("closed {took:?} after the revocation");
    assert_eq!(connect(proxy.addr, Some(&t)).await.err(), Some(401));

    // A purge of the subject closes every older socket of that user only.
    let bob_old = hs256(&issued_before("bob"));
    let carol = hs256(&claims("carol"));
    let mut bob_ws = connect(proxy.addr, Some(&bob_old)).await.unwrap();
    let mut carol_ws = connect(proxy.addr, Some(&carol)).await.unwrap();
    assert_eq!(
        post(proxy.addr, "/logout/all", &hs256(&claims("bob")))
            .await
            .status,
        204
    );
    closed_within(&mut bob_ws, Duration::from_millis(1500)).await;
    let _ = carol_ws.next().await; // hello
    echo(&mut carol_ws, "still here").await;

    // A token reaching exp + leeway (5 s in BASIC, as for admission) closes
    // its socket: one past exp by 3 s is still admitted, and lives 2 s more.
    let mut c = claims("dave");
    c["exp"] = serde_json::json!(now() - 3);
    let short = hs256(&c);
    let mut ws = connect(proxy.addr, Some(&short)).await.unwrap();
    let started = Instant::now();
    closed_within(&mut ws, Duration::from_secs(4)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before exp + leeway"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_revocation_on_another_replica_closes_the_socket() {
    let redis = Redis::start();
    let upstream = echo_server().await;
    let yaml = format!(
        "{BASIC}revocation:\n  store:\n    type: redis\n    url: {}\n",
        redis.url()
    );
    let a = TestProxy::start(&yaml, &format!("http://{upstream}"), &[]).await;
    let b = TestProxy::start(&yaml, &format!("http://{upstream}"), &[]).await;
    let erin = claims("erin");
    let t = hs256(&erin);
    let mut ws = connect(b.addr, Some(&t)).await.unwrap();
    let _ = ws.next().await;
    echo(&mut ws, "hi").await;
    revoke(&a, &erin).await;
    let took = closed_within(&mut ws, Duration::from_millis(1500)).await;
    println!("closed {took:?} after a logout on the other replica");
    a.stop().await;
    b.stop().await;
}

/// The tunnel follows `on_store_failure` like admission: with `deny`, a
/// store that stops answering (past `max_staleness`) closes it; with
/// `allow`, it lives on.
#[tokio::test]
async fn a_store_outage_closes_the_tunnel_only_under_deny() {
    let redis = Redis::start();
    let upstream = echo_server().await;
    let yaml = |policy: &str| {
        format!(
            "{BASIC}revocation:\n  on_store_failure: {policy}\n  max_staleness: 1s\n  store:\n    type: redis\n    url: {}\n    timeout: 200ms\n",
            redis.url()
        )
    };
    let deny = TestProxy::start(&yaml("deny"), &format!("http://{upstream}"), &[]).await;
    let allow = TestProxy::start(&yaml("allow"), &format!("http://{upstream}"), &[]).await;
    let t = hs256(&claims("gil"));
    let mut denied = connect(deny.addr, Some(&t)).await.unwrap();
    let mut allowed = connect(allow.addr, Some(&t)).await.unwrap();
    let _ = denied.next().await;
    let _ = allowed.next().await;
    echo(&mut denied, "before").await;
    redis.pause();
    let took = closed_within(&mut denied, Duration::from_secs(8)).await;
    println!("closed {took:?} after the store stopped answering");
    // The same outage, as long again: the `allow` tunnel still echoes.
    echo(&mut allowed, "still here").await;
    redis.resume();
    deny.stop().await;
    allow.stop().await;
}

#[tokio::test]
async fn the_handshake_token_may_come_from_a_cookie_or_the_query_when_configured() {
    let upstream = echo_server().await;
    let yaml = BASIC.replace(
        "  leeway: 5s\n",
        "  leeway: 5s\n  token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: access_token\n",
    );
    let proxy = TestProxy::start(&yaml, &format!("http://{upstream}"), &[]).await;
    let t = hs256(&claims("frank"));
    for (url, cookie) in [
        (format!("ws://{}/ws?access_token={t}", proxy.addr), None),
        (
            format!("ws://{}/ws", proxy.addr),
            Some(format!("access_token={t}")),
        ),
    ] {
        let mut req = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("admitted");
        let hello = ws.next().await.unwrap().unwrap();
        assert_eq!(hello.into_text().unwrap().as_str(), "hello frank");
        echo(&mut ws, "via query or cookie").await;
    }
    let bad = format!("ws://{}/ws?access_token=not.a.token", proxy.addr);
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    proxy.stop().await;
}

/// A WebSocket server that, like the Autobahn test server, refuses a
/// handshake whose `Host` is not its own address.
async fn strict_host_server() -> SocketAddr {
    ws_server(|req, own| {
        req.headers().get("host").and_then(|v| v.to_str().ok()) == Some(own.to_string().as_str())
    })
    .await
}

#[tokio::test]
async fn forward_host_upstream_lets_a_host_checking_websocket_server_accept() {
    let server = strict_host_server().await;
    let upstream = format!("http://{server}");
    let token = hs256(&claims("alice"));
    // preserve (the default): the client's Host reaches the server, which refuses.
    let preserve = TestProxy::start(BASIC, &upstream, &[]).await;
    assert_eq!(connect(preserve.addr, Some(&token)).await.err(), Some(400));
    preserve.stop().await;
    // upstream: the server sees its own address and accepts.
    let yaml = BASIC.replace("forward:\n", "forward:\n  host: upstream\n");
    assert_ne!(yaml, BASIC, "BASIC has a forward section");
    let rewrite = TestProxy::start(&yaml, &upstream, &[]).await;
    let mut ws = connect(rewrite.addr, Some(&token))
        .await
        .expect("handshake accepted with the upstream's Host");
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "hello alice"),
        other => panic!("{other:?}"),
    }
    echo(&mut ws, "ping").await;
    rewrite.stop().await;
}
