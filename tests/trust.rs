//! Request-path holes found by attack and peer testing, each closed and kept
//! closed on every path a request can take (the HTTP/1.1 fast path, and
//! hyper for HTTP/1.0, chunked bodies, h2c and TLS): one token per request,
//! routing and forwarding headers, h2c upgrades, idle and silent
//! connections on both listeners, requests never replayed, stray upstream
//! bytes, purge cutoffs taken at arrival, redirecting logouts, whole-body
//! admin validation and the JOSE header rules.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::paths::{Paths, Via, ALL};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// BASIC with every token source on, and the routes these tests use.
fn config(extra: &str) -> String {
    BASIC
        .replace(
            "  leeway: 5s\n",
            "  leeway: 5s\n  token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: access_token\n",
        )
        .replace(
            "routes:\n",
            "routes:\n  - path: /slow/*\n    methods: [POST]\n    action: purge\n  - path: /status/302\n    action: revoke\n  - path: /status/303\n    action: purge\n  - path: /public/*\n    auth: none\n  - path: /ws-public/*\n    auth: none\n    upgrades: [websocket]\n",
        )
        .replace(
            "admin:\n  listen: 127.0.0.1:0\n",
            &format!("admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n"),
        )
        + extra
}

fn bearer(t: &str) -> Vec<u8> {
    format!("Bearer {t}").into_bytes()
}

async fn revoke_everywhere(paths: &Paths, token: &str) {
    for p in [&paths.plain, &paths.tls] {
        let v = p.app.verifier.verify_uncached(token, now()).unwrap();
        p.app
            .revocations
            .revoke_token(v.subject, v.token_id, v.exp, None)
            .await;
    }
}

#[tokio::test]
async fn a_revoked_token_never_rides_along_a_valid_one() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let good = hs256(&claims("alice"));
    let revoked = hs256(&claims("mallory"));
    revoke_everywhere(&paths, &revoked).await;
    let cookie = |t: &str| format!("access_token={t}").into_bytes();
    let two_in_one = format!("access_token={good}; access_token={revoked}").into_bytes();
    let non_ascii = format!("x=\u{e9}t\u{e9}; access_token={revoked}").into_bytes();
    let tab = format!("Bearer\t{revoked}").into_bytes();
    type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, String);
    let cases: Vec<Case> = vec![
        (
            "bearer + cookie",
            vec![
                ("authorization", bearer(&good)),
                ("cookie", cookie(&revoked)),
            ],
            "/api".into(),
        ),
        (
            "one cookie twice",
            vec![("cookie", two_in_one)],
            "/api".into(),
        ),
        (
            "two Cookie fields",
            vec![("cookie", cookie(&good)), ("cookie", cookie(&revoked))],
            "/api".into(),
        ),
        (
            "non-ASCII cookie field",
            vec![("authorization", bearer(&good)), ("cookie", non_ascii)],
            "/api".into(),
        ),
        (
            "query twice",
            vec![],
            format!("/api?access_token={good}&access_token={revoked}"),
        ),
        (
            "query %5F",
            vec![],
            format!("/api?access_token={good}&access%5Ftoken={revoked}"),
        ),
        (
            "query case",
            vec![],
            format!("/api?access_token={good}&ACCESS_TOKEN={revoked}"),
        ),
        (
            "bearer + query",
            vec![("authorization", bearer(&good))],
            format!("/api?access_token={revoked}"),
        ),
        (
            "Bearer<TAB>",
            vec![("authorization", tab), ("cookie", cookie(&good))],
            "/api".into(),
        ),
        (
            "Basic + cookie",
            vec![
                ("authorization", b"Basic dXNlcjpw".to_vec()),
                ("cookie", cookie(&good)),
            ],
            "/api".into(),
        ),
    ];
    for via in ALL {
        for (what, headers, target) in &cases {
            let before = up.count();
            let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let r = paths.send(via, "GET", target, &h, b"").await;
            assert_eq!(r.status, 400, "{via:?} {what}: {}", r.body);
            assert_eq!(r.json()["error"], "invalid_request", "{via:?} {what}");
            assert_eq!(up.count(), before, "{via:?} {what}: reached the upstream");
        }
        // Positive controls: one token, in any one place or the same twice.
        let same_twice = [("authorization", bearer(&good)), ("cookie", cookie(&good))];
        for (what, headers, target) in [
            (
                "bearer",
                vec![("authorization", bearer(&good))],
                "/api".to_string(),
            ),
            (
                "cookie",
                vec![("cookie", cookie(&good))],
                "/api".to_string(),
            ),
            ("query", vec![], format!("/api?access_token={good}")),
            ("same token twice", same_twice.to_vec(), "/api".to_string()),
        ] {
            let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let r = paths.send(via, "GET", &target, &h, b"").await;
            assert_eq!(r.status, 200, "{via:?} {what}: {}", r.body);
            assert_eq!(
                up.last().headers["x-auth-subject"],
                "alice",
                "{via:?} {what}"
            );
        }
        let r = paths
            .send(via, "GET", "/api", &[("cookie", &cookie(&revoked))], b"")
            .await;
        assert_eq!(r.status, 401, "{via:?}: the revoked token alone");
    }
    paths.stop().await;
}

#[tokio::test]
async fn routing_and_forwarding_headers_from_clients_never_reach_the_app() {
    let up = TestUpstream::start().await;
    let spoofs: [(&str, &[u8]); 16] = [
        ("x-original-url", b"/admin"),
        ("X_Original_URL", b"/admin"),
        ("x-rewrite-url", b"/admin"),
        ("x-original-uri", b"/admin"),
        ("x-forwarded-uri", b"/admin"),
        ("x-http-method-override", b"DELETE"),
        ("x-http-method", b"DELETE"),
        ("x-method-override", b"DELETE"),
        ("forwarded", b"for=1.2.3.4;proto=https"),
        ("x-real-ip", b"1.2.3.4"),
        ("x-forwarded-for", b"1.2.3.4"),
        ("X_Forwarded_For", b"1.2.3.4"),
        ("x-forwarded-host", b"evil.example"),
        ("x-forwarded-proto", b"https"),
        ("x-forwarded-prefix", b"/admin"),
        ("x-forwarded-port", b"443"),
    ];
    let untrusted = Paths::start(&config(""), &up.url(), &[]).await;
    for via in ALL {
        let r = untrusted
            .send(via, "GET", "/public/page", &spoofs, b"")
            .await;
        assert_eq!(r.status, 200, "{via:?}");
        let seen = up.last().headers;
        for gone in [
            "x-original-url",
            "x_original_url",
            "x-rewrite-url",
            "x-original-uri",
            "x-forwarded-uri",
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
            "forwarded",
            "x-real-ip",
            "x_forwarded_for",
            "x-forwarded-prefix",
            "x-forwarded-port",
        ] {
            assert!(
                !seen.contains_key(gone),
                "{via:?}: {gone} reached the app: {seen:?}"
            );
        }
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{via:?}");
        assert_eq!(seen["x-forwarded-host"], "app", "{via:?}");
        let proto = if matches!(via, Via::Tls | Via::TlsChunked | Via::H2Tls) {
            "https"
        } else {
            "http"
        };
        assert_eq!(seen["x-forwarded-proto"], proto, "{via:?}");
        assert_eq!(seen.get_all("x-forwarded-for").iter().count(), 1, "{via:?}");
    }
    untrusted.stop().await;

    // From a peer in forward.trusted_proxies the forwarding fields are kept.
    let trusted = Paths::start(
        &config("").replace(
            "forward:\n",
            "forward:\n  trusted_proxies: [127.0.0.0/8, \"::1\"]\n",
        ),
        &up.url(),
        &[],
    )
    .await;
    for via in ALL {
        let r = trusted.send(via, "GET", "/public/page", &spoofs, b"").await;
        assert_eq!(r.status, 200, "{via:?}");
        let seen = up.last().headers;
        assert_eq!(seen["x-real-ip"], "1.2.3.4", "{via:?}");
        assert_eq!(seen["forwarded"], "for=1.2.3.4;proto=https", "{via:?}");
        assert_eq!(seen["x-forwarded-for"], "1.2.3.4, 127.0.0.1", "{via:?}");
        assert_eq!(seen["x-forwarded-proto"], "https", "{via:?}");
        assert_eq!(seen["x-forwarded-host"], "evil.example", "{via:?}");
        // Routing overrides never pass, whoever sends them.
        assert!(!seen.contains_key("x-original-url"), "{via:?}");
        assert!(!seen.contains_key("x-http-method-override"), "{via:?}");
    }
    trusted.stop().await;
}

#[tokio::test]
async fn h2c_upgrades_are_never_forwarded_and_only_listed_upgrades_are() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("alice"));
    let auth = bearer(&token);
    let h2c: [(&str, &[u8]); 3] = [
        ("connection", b"Upgrade, HTTP2-Settings"),
        ("upgrade", b"h2c"),
        ("http2-settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
    ];
    for via in [Via::Fast, Via::Http10, Via::Tls, Via::TlsChunked] {
        for (target, with_token) in [("/public/x", false), ("/api", true)] {
            let mut h: Vec<(&str, &[u8])> = h2c.to_vec();
            if with_token {
                h.push(("authorization", &auth));
            }
            let r = paths.send(via, "GET", target, &h, b"").await;
            assert_eq!(r.status, 200, "{via:?} {target}: {}", r.body);
            let seen = up.last().headers;
            for gone in ["upgrade", "http2-settings", "connection"] {
                assert!(
                    !seen.contains_key(gone),
                    "{via:?} {target}: {gone} forwarded"
                );
            }
        }
        // WebSocket: tunnelled behind a token, and on a public route only
        // where the route lists it.
        let ws: [(&str, &[u8]); 4] = [
            ("connection", b"Upgrade"),
            ("upgrade", b"websocket"),
            ("sec-websocket-version", b"13"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let _ = paths.send(via, "GET", "/public/ws", &ws, b"").await;
        assert!(
            !up.last().headers.contains_key("upgrade"),
            "{via:?}: public route"
        );
        if via != Via::Http10 {
            let _ = paths.send(via, "GET", "/ws-public/ws", &ws, b"").await;
            assert_eq!(up.last().headers["upgrade"], "websocket", "{via:?}: listed");
            let mut h = ws.to_vec();
            h.push(("authorization", &auth));
            let _ = paths.send(via, "GET", "/api/ws", &h, b"").await;
            assert_eq!(
                up.last().headers["upgrade"],
                "websocket",
                "{via:?}: token route"
            );
        }
    }
    paths.stop().await;
}

/// Reads until the peer closes; the time it took, or `None` past `limit`.
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    read.ok().map(|()| started.elapsed())
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test]
async fn silent_and_idle_connections_are_closed_on_every_protocol() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(
        &config("timeouts:\n  client_header: 1s\n  client_idle: 1s\n"),
        &up.url(),
        &[],
    )
    .await;
    let limit = Duration::from_secs(4);
    // h2c: the preface and an empty SETTINGS, then nothing.
    let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
    s.write_all(H2_PREFACE).await.unwrap();
    let took = closed_within(&mut s, limit)
        .await
        .expect("h2c with no HEADERS is closed");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // TLS, both ALPNs: a handshake, then nothing.
    for h2 in [false, true] {
        let mut t = paths.tls_stream(h2).await;
        if h2 {
            t.write_all(H2_PREFACE).await.unwrap();
        }
        assert!(closed_within(&mut t, limit).await.is_some(), "TLS h2={h2}");
    }
    // After one answered request, idle connections close on every path.
    let token = hs256(&claims("alice"));
    let get11 = format!("GET /api HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\n\r\n");
    let get10 = format!(
        "GET /api HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    for (what, req) in [("fast path", &get11), ("HTTP/1.0", &get10)] {
        let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains(" 200 "),
            "{what}"
        );
        let took = closed_within(&mut s, limit).await;
        assert!(took.is_some(), "{what}: idle connection still open");
    }
    // A busy keep-alive connection outlives the idle limit (positive control).
    let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        s.write_all(get11.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(limit, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed while in use after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // h2c: idle after a request, the connection goes too.
    let tcp = TcpStream::connect(paths.plain.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let ended = tokio::spawn(conn);
    let req = http::Request::get("http://app/api")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 200);
    let closed = tokio::time::timeout(limit, ended).await;
    assert!(closed.is_ok(), "idle h2c connection still open");
    paths.stop().await;
}

#[tokio::test]
async fn silent_connections_on_one_listener_never_starve_the_other() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config("timeouts:\n  client_header: 1s\n"), &up.url(), &[]).await;
    let admin = proxy.admin.unwrap();
    let token = hs256(&claims("alice"));
    // More silent connections than the admin listener takes at once.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(admin).await.unwrap());
    }
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
    // The silent ones are cut off after client_header; the admin answers again.
    let started = Instant::now();
    loop {
        let ok =
            tokio::time::timeout(Duration::from_millis(500), get(admin, "/healthz", None)).await;
        if matches!(ok, Ok(r) if r.status == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "admin never recovered"
        );
    }
    for s in &mut silent {
        assert!(closed_within(s, Duration::from_secs(4)).await.is_some());
    }
    // And the other way: the proxy port flooded with silent clients.
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    assert_eq!(get(admin, "/healthz", None).await.status, 200);
    assert_eq!(get(admin, "/readyz", None).await.status, 200);
    proxy.stop().await;
}

/// A raw upstream answering 200 to everything, except that a `POST` on a
/// connection that served a request before is read, counted, and the
/// connection closed without an answer; `/extra` answers and then sends a
/// second, unasked-for response.
struct Flaky {
    url: String,
    methods: Arc<Mutex<Vec<String>>>,
}

impl Flaky {
    async fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let methods = Arc::new(Mutex::new(Vec::new()));
        let seen = methods.clone();
        let conns = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                let id = conns.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 0..1000 {
                        let head = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                                let len: usize = head
                                    .lines()
                                    .find_map(|l| {
                                        l.to_ascii_lowercase()
                                            .strip_prefix("content-length:")
                                            .map(|v| v.trim().to_string())
                                    })
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(0);
                                while buf.len() < end + 4 + len {
                                    let mut chunk = [0u8; 4096];
                                    match s.read(&mut chunk).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                                    }
                                }
                                buf.drain(..end + 4 + len);
                                break head;
                            }
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        };
                        let method = head.split(' ').next().unwrap_or("").to_string();
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        seen.lock().unwrap().push(format!("{method} {path}"));
                        if n > 0 && method == "POST" {
                            return; // read, maybe acted on, never answered
                        }
                        let body = format!("conn={id}");
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if path == "/extra" {
                            r.push_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY");
                        }
                        if s.write_all(r.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Flaky { url, methods }
    }

    fn count(&self, what: &str) -> usize {
        self.methods
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == what)
            .count()
    }
}

#[tokio::test]
async fn a_request_the_upstream_may_have_acted_on_is_never_sent_twice() {
    let up = Flaky::start().await;
    let paths = Paths::start(&config(""), &up.url, &[]).await;
    let token = hs256(&claims("alice"));
    let auth = bearer(&token);
    let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
    for via in [Via::Fast, Via::Http10, Via::H2c, Via::Tls, Via::TlsChunked] {
        // Give every worker a pooled upstream connection, then POST: it
        // goes out on one of them, which the upstream closes unanswered.
        for _ in 0..4 {
            assert_eq!(
                paths.send(via, "GET", "/warm", &h, b"").await.status,
                200,
                "{via:?}"
            );
        }
        let target = format!("/pay-{via:?}");
        let r = paths.send(via, "POST", &target, &h, b"amount=5").await;
        assert_eq!(
            up.count(&format!("POST {target}")),
            1,
            "{via:?}: POST sent twice"
        );
        assert!(r.status == 502 || r.status == 200, "{via:?}: {}", r.status);
    }
    paths.stop().await;
}

#[tokio::test]
async fn stray_upstream_bytes_never_become_another_clients_answer() {
    let up = Flaky::start().await;
    let paths = Paths::start(&config(""), &up.url, &[]).await;
    let token = hs256(&claims("alice"));
    let auth = bearer(&token);
    let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
    for via in ALL {
        for _ in 0..3 {
            let r = paths.send(via, "GET", "/extra", &h, b"").await;
            assert!(r.body.starts_with("conn="), "{via:?}: {}", r.body);
            for _ in 0..3 {
                let r = paths.send(via, "GET", "/next", &h, b"").await;
                assert!(!r.body.contains("STRAY"), "{via:?}: another client's bytes");
            }
        }
    }
    paths.stop().await;
}

#[tokio::test]
async fn a_purge_cuts_off_at_the_request_s_arrival_not_at_the_answer() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    for via in [Via::Fast, Via::H2c] {
        let who = format!("bob-{via:?}");
        let mut old = claims(&who);
        old["iat"] = serde_json::json!(now() - 10);
        let old = hs256(&old);
        let arrived = now();
        // The token the app mints while it answers (issued in the arrival
        // second): the upstream answers only in a later second.
        let mut fresh = claims(&who);
        fresh["iat"] = serde_json::json!(arrived);
        let fresh = hs256(&fresh);
        let r = paths
            .send(
                via,
                "POST",
                "/slow/1100",
                &[("authorization", &bearer(&old))],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{via:?}");
        assert!(now() > arrived, "the answer came in a later second");
        let auth = bearer(&fresh);
        let r = paths
            .send(via, "GET", "/api", &[("authorization", &auth)], b"")
            .await;
        assert_eq!(
            r.status, 200,
            "{via:?}: the token minted during the purge survives"
        );
        let r = paths
            .send(via, "GET", "/api", &[("authorization", &bearer(&old))], b"")
            .await;
        assert_eq!(r.status, 401, "{via:?}: the older token is purged");
    }
    paths.stop().await;
}

#[tokio::test]
async fn a_logout_that_redirects_still_revokes_and_a_redirecting_purge_does_not() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    for via in ALL {
        let token = hs256(&claims("carol"));
        let auth = bearer(&token);
        let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
        let r = paths.send(via, "GET", "/status/302", &h, b"").await;
        assert_eq!(r.status, 302, "{via:?}");
        assert_eq!(r.header("revocation-status"), Some("stored"), "{via:?}");
        assert_eq!(
            paths.send(via, "GET", "/api", &h, b"").await.status,
            401,
            "{via:?}"
        );
        // A purge applies on 2xx only: a redirect leaves tokens alone.
        let mut c = claims("dave");
        c["iat"] = serde_json::json!(now() - 5);
        let other = bearer(&hs256(&c));
        let h: [(&str, &[u8]); 1] = [("authorization", &other)];
        assert_eq!(
            paths.send(via, "GET", "/status/303", &h, b"").await.status,
            303
        );
        assert_eq!(
            paths.send(via, "GET", "/api", &h, b"").await.status,
            200,
            "{via:?}"
        );
    }
    paths.stop().await;
    // The shipped legacy-app configuration revokes on GET and POST /logout.
    let legacy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/legacy-app.yaml");
    let text = std::fs::read_to_string(legacy).unwrap();
    let s = parse_settings(
        &text,
        "http://127.0.0.1:1",
        &[
            ("JWT_SECRET", SECRET.into()),
            ("REVOKE_PROXY_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ],
    );
    let logout = s.routes.iter().find(|r| r.path == "/logout").unwrap();
    let methods = logout.methods.clone().unwrap();
    assert!(methods.contains(&"GET".to_string()) && methods.contains(&"POST".to_string()));
    assert!(logout.apply_on.iter().any(|m| m.matches(302)));
}

async fn admin_call(admin: std::net::SocketAddr, path: &str, body: &str) -> Resp {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    send(
        admin,
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn an_admin_purge_answered_400_has_purged_nothing() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(""), &up.url(), &[]).await;
    let admin = proxy.admin.unwrap();
    let mut c = claims("x");
    c["iat"] = serde_json::json!(now() - 5);
    let token = hs256(&c);
    for body in [
        r#"{"sub":"x","liftime":60}"#,
        r#"{"all":true,"dry_run":true}"#,
        r#"{"all":true,"sub":"x"}"#,
        r#"{"sub":"x","lifetime":-1}"#,
    ] {
        let r = admin_call(admin, "/v1/purge", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(
            get(proxy.addr, "/api", Some(&token)).await.status,
            200,
            "{body}"
        );
    }
    // Positive control: a valid purge does purge.
    assert_eq!(
        admin_call(admin, "/v1/purge", r#"{"sub":"x"}"#)
            .await
            .status,
        200
    );
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 401);
    proxy.stop().await;
}

#[tokio::test]
async fn jose_headers_with_crit_or_twice_named_members_never_verify() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let c = claims("alice");
    let dup_claims = {
        let body = c.to_string();
        let dup = body.replacen(
            "\"sub\":\"alice\"",
            "\"sub\":\"alice\",\"sub\":\"admin\"",
            1,
        );
        assert_ne!(dup, body);
        forge_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &dup)
    };
    let forged = [
        (
            "crit",
            forge(
                &serde_json::json!({"alg":"HS256","crit":["exp"],"exp":1}),
                &c,
                SECRET.as_bytes(),
            ),
        ),
        (
            "empty crit",
            forge(
                &serde_json::json!({"alg":"HS256","crit":[]}),
                &c,
                SECRET.as_bytes(),
            ),
        ),
        (
            "alg twice",
            forge_raw(r#"{"alg":"HS256","alg":"HS256"}"#, &c.to_string()),
        ),
        ("sub twice", dup_claims),
    ];
    for via in ALL {
        for (what, token) in &forged {
            let r = paths
                .send(
                    via,
                    "GET",
                    "/api",
                    &[("authorization", &bearer(token))],
                    b"",
                )
                .await;
            assert_eq!(r.status, 401, "{via:?} {what}: {}", r.body);
            assert_eq!(r.json()["error"], "invalid_token", "{via:?} {what}");
        }
        let plain = forge(
            &serde_json::json!({"alg":"HS256","typ":"JWT"}),
            &c,
            SECRET.as_bytes(),
        );
        let r = paths
            .send(
                via,
                "GET",
                "/api",
                &[("authorization", &bearer(&plain))],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{via:?}: the same token without the trick");
    }
    paths.stop().await;
}

/// A token from raw header and claims JSON text, HMAC-signed with SECRET.
fn forge_raw(header: &str, claims: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{sig}")
}

#[tokio::test]
async fn keys_that_cannot_be_trusted_are_refused_at_start() {
    // A ROCA-fingerprinted RSA key: its private key can be computed.
    let yaml = "upstream: http://127.0.0.1:1\njwt:\n  algorithms: [RS256]\n  public_key_file: ${KEYS}/roca.pub\n";
    let s = parse_settings(yaml, "http://127.0.0.1:1", &[]);
    let problems = revoke_proxy::auth::Verifier::new(&s.jwt, &s.revocation, &s.forward)
        .err()
        .expect("refused");
    assert!(
        problems
            .iter()
            .any(|p| p.path == "jwt.public_key_file" && p.message.contains("ROCA")),
        "{problems:?}"
    );
    // The same file with an ordinary key is fine (positive control).
    let ok = yaml.replace("roca.pub", "rsa.pub");
    let s = parse_settings(&ok, "http://127.0.0.1:1", &[]);
    assert!(revoke_proxy::auth::Verifier::new(&s.jwt, &s.revocation, &s.forward).is_ok());
    // An HMAC secret shorter than the hash.
    let short = "upstream: http://127.0.0.1:1\njwt:\n  secret: too-short\n";
    let e = revoke_proxy::config::Settings::parse(short, std::path::Path::new("."), &|_| None)
        .expect_err("refused");
    assert!(
        e.0.iter()
            .any(|p| p.path == "jwt" && p.message.contains("at least 32")),
        "{:?}",
        e.0
    );
}

#[tokio::test]
async fn a_token_signed_with_a_roca_key_from_a_jwks_never_verifies() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pem = std::fs::read(fixtures().join("keys/roca.pub")).unwrap();
    let n = revoke_proxy::auth::roca::modulus_from_pem(&pem).unwrap();
    let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "roca", "alg": "RS256", "n": b64.encode(&n), "e": "AQAB"}]});
    assert!(
        revoke_proxy::auth::jwks::parse(doc.to_string().as_bytes()).is_err(),
        "no usable key"
    );
    let pem = std::fs::read(fixtures().join("keys/rsa.pub")).unwrap();
    let n = revoke_proxy::auth::roca::modulus_from_pem(&pem).unwrap();
    let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "ok", "alg": "RS256", "n": b64.encode(&n), "e": "AQAB"}]});
    assert_eq!(
        revoke_proxy::auth::jwks::parse(doc.to_string().as_bytes())
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_route_action_applies_even_when_the_client_gives_up_first() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    for via in ALL {
        let token = hs256(&claims(&format!("erin-{via:?}")));
        let auth = bearer(&token);
        let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
        // The app takes 600 ms to log the user out; the client closes its
        // connection (h2: resets the stream) after 150 ms.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(150),
            paths.send(via, "POST", "/slow/600", &h, b""),
        )
        .await;
        assert!(gave_up.is_err(), "{via:?}: answered before the app did");
        let (paths, h) = (&paths, &h);
        wait_for(
            &format!("{via:?}: the purge applied after the client left"),
            || async move { paths.send(via, "GET", "/api", h, b"").await.status == 401 },
        )
        .await;
    }
    assert!(up.count() >= ALL.len(), "the app got every logout");
    paths.stop().await;
}

#[tokio::test]
async fn a_claim_an_http_parser_would_read_differently_makes_the_token_invalid() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    for via in ALL {
        for sub in [
            " alice",
            "alice ",
            "al\tice\t",
            "al\u{1}ice",
            "a\r\nX-Admin: 1",
        ] {
            let auth = bearer(&hs256(&claims(sub)));
            let r = paths
                .send(via, "GET", "/api", &[("authorization", &auth)], b"")
                .await;
            assert_eq!(r.status, 401, "{via:?}: sub {sub:?}");
        }
        // Inner spaces and UTF-8 arrive byte for byte.
        let sub = "José de la Cruz";
        let auth = bearer(&hs256(&claims(sub)));
        let before = up.count();
        let r = paths
            .send(via, "GET", "/api", &[("authorization", &auth)], b"")
            .await;
        assert_eq!(r.status, 200, "{via:?}");
        assert_eq!(up.count(), before + 1);
        assert_eq!(
            up.last().headers.get("x-auth-subject").unwrap().as_bytes(),
            sub.as_bytes(),
            "{via:?}"
        );
    }
    paths.stop().await;
}

#[tokio::test]
async fn another_spelling_of_the_token_header_never_reaches_the_app() {
    let up = TestUpstream::start().await;
    let yaml = config("").replace(
        "    - header: Authorization\n",
        "    - header: X-Access-Token\n",
    );
    let paths = Paths::start(&yaml, &up.url(), &[]).await;
    let good = hs256(&claims("gina"));
    for via in ALL {
        let h: [(&str, &[u8]); 2] = [
            ("x-access-token", good.as_bytes()),
            ("x_access_token", b"garbage.never.verified"),
        ];
        let r = paths.send(via, "GET", "/api", &h, b"").await;
        assert_eq!(r.status, 200, "{via:?}");
        let seen = up.last().headers;
        assert_eq!(
            seen.get("x-access-token").unwrap().as_bytes(),
            good.as_bytes()
        );
        assert!(seen.get("x_access_token").is_none(), "{via:?}: {seen:?}");
    }
    paths.stop().await;
}

#[tokio::test]
async fn cookie_crumbs_reach_the_app_as_one_field_on_every_path() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("hugo"));
    let auth = bearer(&token);
    for via in ALL {
        let h: [(&str, &[u8]); 3] = [
            ("authorization", &auth),
            ("cookie", b"a=1"),
            ("cookie", b"b=2"),
        ];
        let r = paths.send(via, "GET", "/api", &h, b"").await;
        assert_eq!(r.status, 200, "{via:?}");
        let seen = up.last().headers;
        let cookies: Vec<_> = seen.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2"], "{via:?}");
    }
    paths.stop().await;
}

#[tokio::test]
async fn connect_is_never_proxied() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("ivy"));
    let auth = bearer(&token);
    // The paths that can carry CONNECT to a path (h2 refuses it in hyper).
    for via in [Via::Fast, Via::Http10, Via::Tls] {
        let before = up.count();
        let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
        let r = paths.send(via, "CONNECT", "/public/x", &h, b"").await;
        assert_eq!(r.status, 400, "{via:?}");
        let r = paths.send(via, "CONNECT", "/api", &h, b"").await;
        assert_eq!(r.status, 400, "{via:?}");
        assert_eq!(up.count(), before, "{via:?}: nothing reached the app");
    }
    paths.stop().await;
}

/// Writes `request` as is on a new connection (plain or TLS) and reads the
/// answer to the connection's end.
async fn raw_exchange(paths: &Paths, tls: bool, request: &[u8]) -> Resp {
    let all = tokio::time::timeout(Duration::from_secs(20), async {
        let mut all = Vec::new();
        if tls {
            let mut s = paths.tls_stream(false).await;
            s.write_all(request).await.unwrap();
            let _ = s.read_to_end(&mut all).await;
        } else {
            let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
            s.write_all(request).await.unwrap();
            let _ = s.read_to_end(&mut all).await;
        }
        all
    })
    .await
    .expect("an answer within 20 s");
    support::paths::parse_response(&all, false)
}

#[tokio::test]
async fn a_host_that_is_not_one_host_and_port_is_refused_on_every_path() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("jude"));
    let bad = [
        "Host: a b\r\n",
        "Host: app/admin\r\n",
        "Host: user@app\r\n",
        "Host: app:80:80\r\n",
        "Host: app?x\r\n",
        "Host: app\r\nHost: app\r\n",
        "Host: app\r\nhost: other\r\n",
        // HTTP/1.1 without a Host (RFC 9112 §3.2).
        "",
    ];
    let good = [
        "Host: app\r\n",
        "Host: app:8080\r\n",
        "Host: [::1]:8080\r\n",
    ];
    for tls in [false, true] {
        for chunked in [false, true] {
            let framing = if chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                ""
            };
            let body = if chunked { "0\r\n\r\n" } else { "" };
            let request = |host: &str, version: &str| {
                format!(
                    "GET /api HTTP/{version}\r\n{host}Authorization: Bearer {token}\r\n{framing}Connection: close\r\n\r\n{body}"
                )
            };
            for host in bad {
                let before = up.count();
                let r = raw_exchange(&paths, tls, request(host, "1.1").as_bytes()).await;
                assert_eq!(r.status, 400, "tls {tls}, chunked {chunked}: {host:?}");
                assert_eq!(up.count(), before, "{host:?} reached the app");
            }
            for host in good {
                let r = raw_exchange(&paths, tls, request(host, "1.1").as_bytes()).await;
                assert_eq!(r.status, 200, "tls {tls}, chunked {chunked}: {host:?}");
            }
            if !chunked {
                // HTTP/1.0 may go without a Host.
                let r = raw_exchange(&paths, tls, request("", "1.0").as_bytes()).await;
                assert_eq!(r.status, 200, "tls {tls}: HTTP/1.0 without Host");
            }
        }
    }
    paths.stop().await;
}

#[tokio::test]
async fn a_broken_chunked_request_body_is_the_client_s_error() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("kurt"));
    for tls in [false, true] {
        for broken in [
            "5\r\nhello\r\nzz\r\n\r\n",
            "5\r\nhelloXX\r\n0\r\n\r\n",
            "5\r\nhello\r\n0\n\r\n",
            "-1\r\nx\r\n0\r\n\r\n",
        ] {
            let request = format!(
                "POST /api HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{broken}"
            );
            let r = raw_exchange(&paths, tls, request.as_bytes()).await;
            assert_eq!(r.status, 400, "tls {tls}: {broken:?}");
            assert!(!r.body.contains("hello"), "nothing of the body is echoed");
        }
    }
    paths.stop().await;
}

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_not_implemented() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let token = hs256(&claims("lena"));
    for tls in [false, true] {
        for coding in ["gzip, chunked", "deflate,chunked", "x-custom, chunked"] {
            let before = up.count();
            let request = format!(
                "POST /api HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            );
            let r = raw_exchange(&paths, tls, request.as_bytes()).await;
            assert_eq!(r.status, 501, "tls {tls}: {coding:?}");
            assert_eq!(up.count(), before, "{coding:?} reached the app");
        }
        // Chunked alone, in any case, is framing the proxy does.
        let request = format!(
            "POST /api HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        assert_eq!(
            raw_exchange(&paths, tls, request.as_bytes()).await.status,
            200
        );
    }
    paths.stop().await;
}

#[tokio::test]
async fn a_204_made_here_carries_no_content_length_on_any_path() {
    let up = TestUpstream::start().await;
    let yaml = config("").replace(
        "routes:\n",
        "routes:\n  - path: /bye\n    action: revoke\n    respond: 204\n",
    );
    let paths = Paths::start(&yaml, &up.url(), &[]).await;
    for via in ALL {
        let token = hs256(&claims(&format!("mia-{via:?}")));
        let auth = bearer(&token);
        let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
        let r = paths.send(via, "POST", "/bye", &h, b"").await;
        assert_eq!(r.status, 204, "{via:?}");
        assert_eq!(r.header("content-length"), None, "{via:?}: RFC 9110 §8.6");
        assert_eq!(r.body, "", "{via:?}");
        // And the token it carried is revoked.
        let r = paths.send(via, "GET", "/api", &h, b"").await;
        assert_eq!(r.status, 401, "{via:?}");
    }
    paths.stop().await;
}

/// An upstream that answers every request with `size` bytes of body.
async fn big_upstream(size: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_client_idle() {
    const SIZE: usize = 64 << 20;
    let up = big_upstream(SIZE).await;
    let yaml = config("timeouts:\n  client_idle: 1s\n");
    let paths = Paths::start(&yaml, &format!("http://{up}"), &[]).await;
    let token = hs256(&claims("nora"));
    // HTTP/1.1 takes the fast path, HTTP/1.0 hyper; plain and over TLS.
    for tls in [false, true] {
        for version in ["1.1", "1.0"] {
            let request = format!(
                "GET /big HTTP/{version}\r\nHost: app\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            let read = async {
                let mut got = 0usize;
                let mut b = vec![0u8; 1 << 16];
                macro_rules! drain {
                    ($s:expr) => {{
                        $s.write_all(request.as_bytes()).await.unwrap();
                        // Reads nothing for four times client_idle.
                        tokio::time::sleep(Duration::from_secs(4)).await;
                        loop {
                            match $s.read(&mut b).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got += n,
                            }
                        }
                    }};
                }
                if tls {
                    let mut s = paths.tls_stream(false).await;
                    drain!(s);
                } else {
                    let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
                    drain!(s);
                }
                got
            };
            let got = tokio::time::timeout(Duration::from_secs(30), read)
                .await
                .expect("the connection ends");
            assert!(
                got < SIZE / 2,
                "tls {tls}, HTTP/{version}: {got} of {SIZE} bytes arrived: the stalled answer was not cut"
            );
        }
    }
    // A client that keeps reading gets every byte.
    let mut s = TcpStream::connect(paths.plain.addr).await.unwrap();
    let request =
        format!("GET /big HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut all))
        .await
        .expect("the whole answer within 60 s")
        .unwrap();
    assert!(all.len() > SIZE, "{} bytes", all.len());
    paths.stop().await;
}

#[tokio::test]
async fn a_token_that_does_not_pass_never_reaches_the_app_on_a_public_route() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(&config(""), &up.url(), &[]).await;
    let good = hs256(&claims("olga"));
    let revoked = hs256(&claims("piet"));
    revoke_everywhere(&paths, &revoked).await;
    let expired =
        hs256(&serde_json::json!({"sub": "quin", "exp": now() - 3600, "iat": now() - 7200}));
    for via in ALL {
        for bad in [revoked.as_str(), expired.as_str(), "not.a.token"] {
            // In the Authorization field: removed, the request still served.
            let auth = bearer(bad);
            let h: [(&str, &[u8]); 2] = [("authorization", &auth), ("cookie", b"theme=dark")];
            let r = paths.send(via, "GET", "/public/page", &h, b"").await;
            assert_eq!(r.status, 200, "{via:?}");
            let seen = up.last().headers;
            assert!(seen.get("authorization").is_none(), "{via:?}: {bad}");
            assert!(seen.get("x-auth-subject").is_none(), "{via:?}");
            assert_eq!(seen.get("cookie").unwrap(), "theme=dark", "{via:?}");
            // In a cookie: that cookie is left out, the others go on.
            let cookie = format!("theme=dark; access_token={bad}; lang=nl").into_bytes();
            let h: [(&str, &[u8]); 1] = [("cookie", &cookie)];
            let r = paths.send(via, "GET", "/public/page", &h, b"").await;
            assert_eq!(r.status, 200, "{via:?}");
            let seen = up.last();
            assert_eq!(
                seen.headers.get("cookie").unwrap(),
                "theme=dark; lang=nl",
                "{via:?}"
            );
            // In the query: that parameter is left out.
            let target = format!("/public/page?page=2&access_token={bad}&q=x");
            let r = paths.send(via, "GET", &target, &[], b"").await;
            assert_eq!(r.status, 200, "{via:?}");
            assert_eq!(up.last().target, "/public/page?page=2&q=x", "{via:?}");
            let target = format!("/public/page?access_token={bad}");
            paths.send(via, "GET", &target, &[], b"").await;
            assert_eq!(up.last().target, "/public/page", "{via:?}");
        }
        // A token that passes goes on, with its claim headers, as on a
        // protected route.
        let auth = bearer(&good);
        let h: [(&str, &[u8]); 1] = [("authorization", &auth)];
        let r = paths.send(via, "GET", "/public/page?x=1", &h, b"").await;
        assert_eq!(r.status, 200, "{via:?}");
        let seen = up.last();
        assert_eq!(
            seen.headers.get("authorization").unwrap().as_bytes(),
            &auth[..]
        );
        assert_eq!(
            seen.headers.get("x-auth-subject").unwrap(),
            "olga",
            "{via:?}"
        );
        assert_eq!(seen.target, "/public/page?x=1");
        // No token, or another scheme: left as sent.
        let h: [(&str, &[u8]); 2] = [("authorization", b"Basic YTpi"), ("cookie", b"a=1, b=2")];
        paths.send(via, "GET", "/public/page", &h, b"").await;
        let seen = up.last().headers;
        assert_eq!(seen.get("authorization").unwrap(), "Basic YTpi", "{via:?}");
        assert_eq!(seen.get("cookie").unwrap(), "a=1, b=2", "{via:?}");
    }
    paths.stop().await;
}
