//! One policy, every path: the same request sent over the HTTP/1.1 fast
//! path, HTTP/1.0, a chunked body, h2c, and TLS (http/1.1 and h2) reaches
//! the upstream with the same method, target and fields (framing aside), and
//! the same upstream answer reaches the client with the same fields —
//! spoofed identity headers, a `Connection: x-auth-subject` trick, and an
//! upstream that sends its own `Revocation-Status` included.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use support::paths::{Paths, Via, ALL};
use support::*;
use tokio::net::TcpListener;

/// An upstream that records each request and answers with fields a proxy
/// must filter: hop-by-hop ones, one named in `Connection`, and a
/// `Revocation-Status` of its own.
async fn upstream() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let rec = rec.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let rec = rec.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    rec.lock().unwrap().push(Received {
                        method: parts.method.to_string(),
                        target: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    });
                    let resp = Response::builder()
                        .header("x-app", "1")
                        .header("revocation-status", "stored-by-the-app")
                        .header("x-hop", "1")
                        .header("connection", "x-hop")
                        .header("keep-alive", "timeout=5")
                        .header("set-cookie", "a=1")
                        .header("set-cookie", "b=2")
                        .body(Full::new(Bytes::from_static(b"hello")))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .into_owned(),
            );
        }
    });
    (url, seen)
}

/// Fields as a sorted multimap, framing and per-transport fields aside.
fn view(h: &HeaderMap, skip: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in h {
        if skip.contains(&k.as_str()) {
            continue;
        }
        out.entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    out
}

const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "date",
    "x-forwarded-proto",
];

fn http1(via: Via) -> bool {
    matches!(
        via,
        Via::Fast | Via::Http10 | Via::Chunked | Via::Tls | Via::TlsChunked
    )
}

#[tokio::test]
async fn every_path_forwards_and_answers_alike() {
    let (url, seen) = upstream().await;
    let yaml = BASIC.replace(
        "    sub: X-Auth-Subject\n",
        "    sub: X-Auth-Subject\n    jti: X-Auth-Token-Id\n",
    );
    let paths = Paths::start(&yaml, &url, &[]).await;
    let mut upstream_views = Vec::new();
    let mut client_views = Vec::new();
    let token = hs256(&claims("alice"));
    for via in ALL {
        let auth = format!("Bearer {token}").into_bytes();
        let mut h: Vec<(&str, &[u8])> = vec![
            ("authorization", &auth),
            ("x-auth-subject", b"spoofed"),
            ("X_Auth_Subject", b"spoofed"),
            ("x-auth-token-id", b"spoofed"),
            ("accept", b"application/json"),
            ("x-request-id", b"r-1"),
            ("cookie", b"a=1"),
            ("te", b"trailers"),
        ];
        if http1(via) {
            // The client names the proxy's own header as hop-by-hop.
            h.push(("connection", b"x-auth-subject, x-drop-me"));
            h.push(("x-drop-me", b"1"));
            h.push(("keep-alive", b"timeout=5"));
        }
        let body: &[u8] = if via == Via::Http10 { b"" } else { b"payload" };
        let method = if via == Via::Http10 { "GET" } else { "POST" };
        let r = paths.send(via, method, "/api/items?q=1", &h, body).await;
        assert_eq!(r.status, 200, "{via:?}: {}", r.body);
        assert_eq!(r.body, "hello", "{via:?}");
        let got = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(got.target, "/api/items?q=1", "{via:?}");
        assert_eq!(
            got.headers.get_all("x-auth-subject").iter().count(),
            1,
            "{via:?}"
        );
        assert_eq!(got.headers["x-auth-subject"], "alice", "{via:?}");
        assert!(!got.headers.contains_key("x_auth_subject"), "{via:?}");
        assert_ne!(got.headers["x-auth-token-id"], "spoofed", "{via:?}");
        for gone in ["x-drop-me", "connection", "keep-alive", "te"] {
            assert!(!got.headers.contains_key(gone), "{via:?}: {gone} forwarded");
        }
        let proto = if matches!(via, Via::Tls | Via::TlsChunked | Via::H2Tls) {
            "https"
        } else {
            "http"
        };
        assert_eq!(got.headers["x-forwarded-proto"], proto, "{via:?}");
        if via != Via::Http10 {
            assert_eq!(got.body.as_ref(), b"payload", "{via:?}");
        }
        upstream_views.push((via, view(&got.headers, &FRAMING)));
        // The client's answer: the app's fields, never its hop-by-hop ones
        // nor its own Revocation-Status.
        assert_eq!(r.header("x-app"), Some("1"), "{via:?}");
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2, "{via:?}");
        for gone in ["x-hop", "keep-alive", "revocation-status"] {
            assert!(
                !r.headers.contains_key(gone),
                "{via:?}: {gone} reached the client"
            );
        }
        client_views.push((
            via,
            view(&r.headers, &[&FRAMING[..], &["connection"]].concat()),
        ));
    }
    let (first, up0) = &upstream_views[0];
    for (via, v) in &upstream_views[1..] {
        assert_eq!(v, up0, "upstream view of {via:?} differs from {first:?}");
    }
    let (first, c0) = &client_views[0];
    for (via, v) in &client_views[1..] {
        assert_eq!(v, c0, "client view of {via:?} differs from {first:?}");
    }

    // An intercepted route: the proxy's own Revocation-Status, once.
    for via in ALL {
        let token = hs256(&claims("bob"));
        let auth = format!("Bearer {token}").into_bytes();
        let r = paths
            .send(via, "POST", "/logout", &[("authorization", &auth)], b"")
            .await;
        assert_eq!(r.status, 200, "{via:?}");
        let values: Vec<_> = r.headers.get_all("revocation-status").iter().collect();
        assert_eq!(values, vec!["stored"], "{via:?}");
    }
    paths.stop().await;
}

#[test]
fn one_header_carries_one_claim() {
    for (a, b) in [
        ("X-User", "X-User"),
        ("X-User", "x_user"),
        ("X-User", "x-USER"),
    ] {
        let yaml = format!(
            "upstream: http://127.0.0.1:1\njwt:\n  secret: {SECRET}\nforward:\n  claims_to_headers:\n    sub: {a}\n    email: {b}\n"
        );
        let e = revoke_proxy::config::Settings::parse(&yaml, std::path::Path::new("."), &|_| None)
            .err()
            .unwrap_or_else(|| panic!("{a} and {b} accepted"));
        assert!(
            e.0.iter()
                .any(|p| p.path == "forward.claims_to_headers.email"),
            "{:?}",
            e.0
        );
    }
}

#[tokio::test]
async fn claims_cannot_be_mapped_to_headers_the_proxy_owns() {
    let up = TestUpstream::start().await;
    for reserved in [
        "X-Forwarded-For",
        "Revocation-Status",
        "X-Original-URL",
        "Host",
        "X_Real_IP",
    ] {
        let yaml = BASIC.replace(
            "    sub: X-Auth-Subject\n",
            &format!("    sub: {reserved}\n"),
        );
        let s = parse_settings(&yaml, &up.url(), &[]);
        let built =
            revoke_proxy::app::App::build(s, revoke_proxy::revocation::Clock::system()).await;
        let Err(revoke_proxy::app::StartError::Config(e)) = built else {
            panic!("{reserved} accepted");
        };
        assert!(
            e.0.iter()
                .any(|p| p.path == "forward.claims_to_headers.sub"),
            "{reserved}: {:?}",
            e.0
        );
    }
}

#[tokio::test]
async fn the_host_the_upstream_sees_follows_forward_host_on_every_path() {
    let (url, seen) = upstream().await;
    let authority = url.trim_start_matches("http://").to_string();
    let token = hs256(&claims("alice"));
    let auth = format!("Bearer {token}").into_bytes();
    for (mode, yaml) in [
        ("preserve", BASIC.to_string()),
        (
            "upstream",
            BASIC.replace("forward:\n", "forward:\n  host: upstream\n"),
        ),
    ] {
        let paths = Paths::start(&yaml, &url, &[]).await;
        for via in ALL {
            // The client's Host (or :authority) is `app` on every path.
            let h: Vec<(&str, &[u8])> = vec![("authorization", &auth)];
            let r = paths.send(via, "GET", "/api", &h, b"").await;
            assert_eq!(r.status, 200, "{mode} {via:?}: {}", r.body);
            let got = seen.lock().unwrap().last().cloned().unwrap();
            let host = got.headers.get("host").and_then(|v| v.to_str().ok());
            if mode == "upstream" {
                assert_eq!(host, Some(authority.as_str()), "{mode} {via:?}");
                assert_eq!(got.headers["x-forwarded-host"], "app", "{via:?}");
            } else {
                assert_eq!(host, Some("app"), "{mode} {via:?}");
            }
        }
        paths.stop().await;
    }
}

/// `forward.request_id`: on every path the upstream receives exactly one
/// request id — the client's when it sent one usable value, else one the
/// proxy made up (none, two, a quote in it, too long); `_` spellings never
/// pass. Turned off (`""`), the field is an ordinary one.
#[tokio::test]
async fn every_path_forwards_one_request_id() {
    let (url, seen) = upstream().await;
    let token = hs256(&claims("alice"));
    let auth = format!("Bearer {token}").into_bytes();
    let long = "r".repeat(129);
    let paths = Paths::start(BASIC, &url, &[]).await;
    type Fields<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: [(&str, Fields, Option<&str>); 7] = [
        ("none", vec![], None),
        (
            "usable",
            vec![("x-request-id", b"trace-1")],
            Some("trace-1"),
        ),
        (
            "two",
            vec![("x-request-id", b"a"), ("x-request-id", b"b")],
            None,
        ),
        ("quote", vec![("x-request-id", b"a\"b")], None),
        ("long", vec![("x-request-id", long.as_bytes())], None),
        (
            "underscore",
            vec![("x-request-id", b"trace-2"), ("X_Request_Id", b"evil")],
            Some("trace-2"),
        ),
        (
            "hop-by-hop",
            vec![
                ("x-request-id", b"trace-3"),
                ("connection", b"x-request-id"),
            ],
            None,
        ),
    ];
    let mut generated = Vec::new();
    for via in ALL {
        for (name, extra, want) in &cases {
            if *name == "hop-by-hop" && !http1(via) {
                continue; // h2 has no Connection field
            }
            let mut h: Vec<(&str, &[u8])> = vec![("authorization", &auth)];
            h.extend(extra.iter().cloned());
            let r = paths.send(via, "GET", "/api", &h, b"").await;
            assert_eq!(r.status, 200, "{name} {via:?}: {}", r.body);
            let got = seen.lock().unwrap().last().cloned().unwrap();
            let ids: Vec<_> = got.headers.get_all("x-request-id").iter().collect();
            assert_eq!(ids.len(), 1, "{name} {via:?}: {ids:?}");
            assert!(!got.headers.contains_key("x_request_id"), "{name} {via:?}");
            let id = ids[0].to_str().unwrap().to_string();
            match want {
                Some(w) => assert_eq!(&id, w, "{name} {via:?}"),
                None => {
                    assert_eq!(id.len(), 32, "{name} {via:?}: {id}");
                    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
                    generated.push(id);
                }
            }
        }
    }
    let n = generated.len();
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), n, "generated ids never repeat");
    paths.stop().await;

    let off = BASIC.replace("forward:\n", "forward:\n  request_id: \"\"\n");
    let paths = Paths::start(&off, &url, &[]).await;
    for via in ALL {
        let h: Vec<(&str, &[u8])> = vec![
            ("authorization", &auth),
            ("x-request-id", b"a"),
            ("x-request-id", b"b"),
        ];
        assert_eq!(paths.send(via, "GET", "/api", &h, b"").await.status, 200);
        let got = seen.lock().unwrap().last().cloned().unwrap();
        let ids: Vec<_> = got.headers.get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["a", "b"], "off: as sent ({via:?})");
        let r = paths.send(via, "GET", "/api", &h[..1], b"").await;
        assert_eq!(r.status, 200);
        let got = seen.lock().unwrap().last().cloned().unwrap();
        assert!(!got.headers.contains_key("x-request-id"), "off: none made");
    }
    paths.stop().await;
}

#[test]
fn request_id_must_name_a_header_the_proxy_does_not_own() {
    let up = "http://127.0.0.1:9";
    for (yaml, path) in [
        (
            BASIC.replace("forward:\n", "forward:\n  request_id: Host\n"),
            "forward.request_id",
        ),
        (
            BASIC.replace("forward:\n", "forward:\n  request_id: \"x request\"\n"),
            "forward.request_id",
        ),
        (
            BASIC.replace("    sub: X-Auth-Subject\n", "    sub: X-Request-Id\n"),
            "forward.claims_to_headers.sub",
        ),
    ] {
        let s = parse_settings(&yaml, up, &[]);
        let problems = revoke_proxy::proxy::hygiene::check(&s.forward);
        assert!(
            problems.iter().any(|p| p.path == path),
            "{path}: {problems:?}"
        );
    }
}
