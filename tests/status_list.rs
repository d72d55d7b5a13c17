//! Token Status Lists (draft-ietf-oauth-status-list) against lists built by
//! the npm reference library `@sd-jwt/jwt-status-list`
//! (`tests/peers/statuslist/server.mjs`), signed RS256 with the issuer's
//! fixture key and served on loopback: statuses 0/1/2 in 1- and 2-bit
//! lists, an index outside the list, a list changed between fetches, the
//! cache, the origin allow-list, bad lists, a list server that never
//! answers, and `on_store_failure`.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::peers::{call, NodePeer};
use support::*;

const CONFIG: &str = r#"
upstream: ${UPSTREAM}
jwt:
  algorithms: [HS256]
  secret: ${SECRET}
  leeway: 5s
revocation:
  on_store_failure: ${ON_FAILURE}
intake:
  issuers:
    - issuer: ${LISTS}
      public_key_file: ${KEYS}/rsa.pub
      audience: [app]
  status_list:
    enabled: true
    min_ttl: 1s
    max_ttl: 1s
    timeout: 300ms
    allowed_uris: ["${HANG}"]
"#;

fn lists() -> NodePeer {
    let keys = fixtures().join("keys");
    NodePeer::start(
        "statuslist",
        "server.mjs",
        "@sd-jwt/jwt-status-list",
        &[
            ("KEY_FILE", keys.join("rsa.key").display().to_string()),
            (
                "OTHER_KEY_FILE",
                keys.join("rsa-other.key").display().to_string(),
            ),
        ],
    )
}

/// Creates or replaces list `name`; its URI.
async fn list(base: &str, name: &str, spec: Value) -> String {
    let r = call(base, &format!("/_test/lists/{name}"), &spec).await;
    r["uri"].as_str().expect("uri").to_string()
}

async fn fetches(base: &str, name: &str) -> Value {
    let addr = base.strip_prefix("http://").unwrap().parse().unwrap();
    send(addr, "GET", &format!("/_test/fetches/{name}"), &[], "")
        .await
        .json()
}

fn token(sub: &str, uri: &str, idx: u64) -> String {
    let mut c = claims(sub);
    c["status"] = json!({"status_list": {"idx": idx, "uri": uri}});
    hs256(&c)
}

/// A loopback port that accepts connections and never answers.
async fn silent_server() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    format!("http://{addr}/lists/slow")
}

async fn start(up: &TestUpstream, base: &str, hang: &str, on_failure: &str) -> TestProxy {
    TestProxy::start(
        CONFIG,
        &up.url(),
        &[
            ("LISTS", base.to_string()),
            ("HANG", hang.to_string()),
            ("ON_FAILURE", on_failure.to_string()),
        ],
    )
    .await
}

fn description(r: &Resp) -> String {
    r.json()["error_description"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn statuses_from_reference_lists_decide_admission() {
    let up = TestUpstream::start().await;
    let peer = lists();
    let base = peer.get("base");
    let hang = silent_server().await;
    let proxy = start(&up, &base, &hang, "deny").await;

    let one = list(
        &base,
        "one",
        json!({"bits": 1, "size": 16, "statuses": {"3": 1}, "ttl": 1}),
    )
    .await;
    let two = list(
        &base,
        "two",
        json!({"bits": 2, "size": 12, "statuses": {"1": 2, "2": 1, "5": 3}, "ttl": 1}),
    )
    .await;
    // VALID passes; INVALID is revoked; SUSPENDED is suspended.
    assert_eq!(
        get(proxy.addr, "/api", Some(&token("a", &one, 0)))
            .await
            .status,
        200
    );
    let r = get(proxy.addr, "/api", Some(&token("a", &one, 3))).await;
    assert_eq!((r.status, description(&r).as_str()), (401, "token revoked"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(
        get(proxy.addr, "/api", Some(&token("b", &two, 0)))
            .await
            .status,
        200
    );
    let r = get(proxy.addr, "/api", Some(&token("b", &two, 1))).await;
    assert_eq!(
        (r.status, description(&r).as_str()),
        (401, "token suspended")
    );
    let r = get(proxy.addr, "/api", Some(&token("b", &two, 2))).await;
    assert_eq!((r.status, description(&r).as_str()), (401, "token revoked"));
    let r = get(proxy.addr, "/api", Some(&token("b", &two, 5))).await;
    assert_eq!(r.status, 401, "an application-specific status is not VALID");
    // 16 one-bit entries fill two bytes: index 16 is outside the list.
    let r = get(proxy.addr, "/api", Some(&token("a", &one, 16))).await;
    assert_eq!(
        (r.status, description(&r).as_str()),
        (401, "status index outside the list")
    );

    // Cached: twenty requests cost at most a fetch or two, asked for as a
    // status list token.
    let before = fetches(&base, "one").await["count"].as_u64().unwrap();
    for _ in 0..20 {
        assert_eq!(
            get(proxy.addr, "/api", Some(&token("a", &one, 0)))
                .await
                .status,
            200
        );
    }
    let seen = fetches(&base, "one").await;
    assert!(seen["count"].as_u64().unwrap() - before <= 2, "{seen}");
    assert_eq!(seen["accept"], "application/statuslist+jwt");

    // The list changes: once its ttl lapses, the proxy sees the new status.
    list(
        &base,
        "one",
        json!({"bits": 1, "size": 16, "statuses": {"0": 1, "3": 1}, "ttl": 1}),
    )
    .await;
    let now_revoked = token("a", &one, 0);
    wait_for("the changed list", || async {
        get(proxy.addr, "/api", Some(&now_revoked)).await.status == 401
    })
    .await;
    // …and back: a token stays usable only while its list says so.
    list(
        &base,
        "one",
        json!({"bits": 1, "size": 16, "statuses": {}, "ttl": 1}),
    )
    .await;
    wait_for("the list changed back", || async {
        get(proxy.addr, "/api", Some(&now_revoked)).await.status == 200
    })
    .await;
    assert!(proxy
        .app
        .metrics
        .exposition(Default::default())
        .contains("revoke_proxy_status_list_lookups_total{result=\"cache_hit\"}"));
    proxy.stop().await;
}

#[tokio::test]
async fn lists_from_elsewhere_or_unverified_tokens_fetch_nothing() {
    let up = TestUpstream::start().await;
    let peer = lists();
    let base = peer.get("base");
    let hang = silent_server().await;
    let proxy = start(&up, &base, &hang, "deny").await;
    let uri = list(&base, "own", json!({"bits": 1, "size": 8, "statuses": {}})).await;

    // Another origin (127.0.0.2 is not the issuer's host; nor is userinfo).
    let elsewhere = uri.replace("127.0.0.1", "127.0.0.2");
    for other in [
        elsewhere,
        uri.replace("http://", "http://user@"),
        "https://evil.test/l".into(),
    ] {
        let r = get(proxy.addr, "/api", Some(&token("c", &other, 0))).await;
        assert_eq!(
            (r.status, description(&r).as_str()),
            (401, "status list not allowed"),
            "{other}"
        );
    }
    // A token that does not verify never causes a fetch.
    let mut c = claims("c");
    c["status"] = json!({"status_list": {"idx": 0, "uri": uri}});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789-0123456789-ab"),
    )
    .unwrap();
    assert_eq!(get(proxy.addr, "/api", Some(&forged)).await.status, 401);
    // Malformed status claims are invalid tokens.
    let mut bad = claims("c");
    bad["status"] = json!({"status_list": {"idx": "0", "uri": uri}});
    let r = get(proxy.addr, "/api", Some(&hs256(&bad))).await;
    assert_eq!(
        (r.status, description(&r).as_str()),
        (401, "malformed status claim")
    );
    assert_eq!(
        fetches(&base, "own").await["count"],
        0,
        "nothing was fetched"
    );
    // The positive control: a verified token fetches it.
    assert_eq!(
        get(proxy.addr, "/api", Some(&token("c", &uri, 0)))
            .await
            .status,
        200
    );
    assert_eq!(fetches(&base, "own").await["count"], 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_list_that_cannot_be_had_follows_on_store_failure() {
    let up = TestUpstream::start().await;
    let peer = lists();
    let base = peer.get("base");
    let hang = silent_server().await;
    let good = list(&base, "good", json!({"bits": 1, "size": 8, "statuses": {}})).await;
    let bad: Vec<(&str, String)> = vec![
        (
            "wrong typ",
            list(&base, "typ", json!({"bits": 1, "size": 8, "typ": "JWT"})).await,
        ),
        (
            "other key",
            list(
                &base,
                "key",
                json!({"bits": 1, "size": 8, "sign_with": "other"}),
            )
            .await,
        ),
        (
            "sub is another list",
            list(&base, "sub", json!({"bits": 1, "size": 8, "sub": good})).await,
        ),
        (
            "expired",
            list(&base, "exp", json!({"bits": 1, "size": 8, "exp_in": -60})).await,
        ),
        (
            "no iat",
            list(
                &base,
                "noiat",
                json!({"bits": 1, "size": 8, "no_iat": true}),
            )
            .await,
        ),
        ("no such list", format!("{base}/lists/missing")),
        ("never answers", hang.clone()),
    ];
    let deny = start(&up, &base, &hang, "deny").await;
    for (name, uri) in &bad {
        let started = Instant::now();
        let r = get(deny.addr, "/api", Some(&token("d", uri, 0))).await;
        assert_eq!(r.status, 503, "{name}: {}", r.body);
        assert!(r.header("retry-after").is_some(), "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: waited {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        get(deny.addr, "/api", Some(&token("d", &good, 0)))
            .await
            .status,
        200
    );
    deny.stop().await;

    let allow = start(&up, &base, &hang, "allow").await;
    for (name, uri) in &bad {
        let r = get(allow.addr, "/api", Some(&token("d", uri, 0))).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
    allow.stop().await;
}

/// A WebSocket tunnel is re-checked against its token's list like every
/// request: when the entry turns INVALID, the tunnel closes.
#[tokio::test]
async fn an_upgraded_connection_closes_when_its_list_entry_turns_invalid() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    // A WebSocket echo server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let peer = lists();
    let base = peer.get("base");
    let hang = silent_server().await;
    let uri = list(
        &base,
        "ws",
        json!({"bits": 1, "size": 8, "statuses": {}, "ttl": 1}),
    )
    .await;
    let up_url = format!("http://{ws_addr}");
    let proxy = TestProxy::start(
        CONFIG,
        &up_url,
        &[
            ("LISTS", base.clone()),
            ("HANG", hang),
            ("ON_FAILURE", "deny".to_string()),
        ],
    )
    .await;
    let mut req = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    let auth = format!("Bearer {}", token("w", &uri, 0));
    req.headers_mut()
        .insert("authorization", auth.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    ws.send(Message::text("ping")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(echoed, Ok(Some(Ok(m))) if m.is_text()),
        "the tunnel works"
    );

    list(
        &base,
        "ws",
        json!({"bits": 1, "size": 8, "statuses": {"0": 1}, "ttl": 1}),
    )
    .await;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the tunnel stayed open"
        );
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("the tunnel stayed open"),
        }
    }
    proxy.stop().await;
}
