//! Revocations from the identity provider: OpenID Connect Back-Channel
//! Logout on the public listener. Logout tokens are signed here with the
//! fixture RSA key (the issuer's), the access tokens with the proxy's HMAC
//! secret; every bad-input row is answered 400 and revokes nothing.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::paths::{Paths, ALL};
use support::*;

const ISSUER: &str = "https://idp.test";
const LOGOUT: &str = "http://schemas.openid.net/event/backchannel-logout";
const PATH: &str = "/oidc/backchannel-logout";

const CONFIG: &str = r#"
upstream: ${UPSTREAM}
jwt:
  algorithms: [HS256]
  secret: ${SECRET}
  leeway: 5s
intake:
  issuers:
    - issuer: https://idp.test
      public_key_file: ${KEYS}/rsa.pub
      audience: [app]
  backchannel_logout:
    path: /oidc/backchannel-logout
"#;

fn access(sub: &str, sid: &str, iat: i64) -> String {
    let mut c = claims(sub);
    c["sid"] = json!(sid);
    c["iat"] = json!(iat);
    hs256(&c)
}

fn logout_claims() -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "iss": ISSUER, "aud": "app", "iat": now(), "exp": now() + 120,
        "jti": format!("logout-{n}"), "events": { LOGOUT: {} },
    })
}

fn logout_token(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.typ = Some("logout+jwt".into());
    jsonwebtoken::encode(&h, claims, &private_key(Algorithm::RS256, "rsa")).unwrap()
}

async fn post_logout(proxy: &TestProxy, token: &str) -> Resp {
    let body = format!("logout_token={token}");
    send(
        proxy.addr,
        "POST",
        PATH,
        &[("content-type", "application/x-www-form-urlencoded")],
        &body,
    )
    .await
}

#[tokio::test]
async fn a_logout_at_the_provider_revokes_that_session_only() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(CONFIG, &up.url(), &[]).await;
    let first = access("alice", "s1", now() - 10);
    let second = access("alice", "s2", now() - 10);
    assert_eq!(get(proxy.addr, "/api", Some(&first)).await.status, 200);

    let mut c = logout_claims();
    c["sid"] = json!("s1");
    c["sub"] = json!("alice");
    let token = logout_token(&c);
    let r = post_logout(&proxy, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(get(proxy.addr, "/api", Some(&first)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&second)).await.status, 200);
    assert_eq!(
        up.count(),
        2,
        "the logout itself never reached the upstream"
    );

    // The same logout token again: 200, nothing new written.
    let entries = proxy.app.revocations.len();
    assert_eq!(post_logout(&proxy, &token).await.status, 200);
    assert_eq!(proxy.app.revocations.len(), entries);
    let m = &proxy.app.metrics;
    assert_eq!(m.signals("backchannel_logout", "applied"), 1);
    assert_eq!(m.signals("backchannel_logout", "replayed"), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_logout_by_subject_cuts_at_the_tokens_own_time() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(CONFIG, &up.url(), &[]).await;
    let before = access("bob", "b1", now() - 100);
    let after = access("bob", "b2", now() - 20);
    let mut c = logout_claims();
    c["sub"] = json!("bob");
    c["iat"] = json!(now() - 50);
    assert_eq!(post_logout(&proxy, &logout_token(&c)).await.status, 200);
    // Issued before the event: revoked; after it (a delayed signal): served.
    assert_eq!(get(proxy.addr, "/api", Some(&before)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&after)).await.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn every_bad_logout_is_refused_and_revokes_nothing() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(CONFIG, &up.url(), &[]).await;
    let victim = access("carol", "c1", now() - 10);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = logout_claims();
        c["sid"] = json!("c1");
        c["sub"] = json!("carol");
        f(&mut c);
        c
    };
    let rsa = |c: &Value| logout_token(c);
    let other_key = |c: &Value| {
        let mut h = Header::new(Algorithm::RS256);
        h.typ = Some("logout+jwt".into());
        jsonwebtoken::encode(&h, c, &private_key(Algorithm::RS256, "rsa-other")).unwrap()
    };
    let typed = |typ: &str, c: &Value| {
        let mut h = Header::new(Algorithm::RS256);
        h.typ = Some(typ.into());
        jsonwebtoken::encode(&h, c, &private_key(Algorithm::RS256, "rsa")).unwrap()
    };
    let unsigned = |c: &Value| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"logout+jwt"}"#),
            b64.encode(c.to_string())
        )
    };
    let hmac_with_public_key = |c: &Value| {
        let pem = std::fs::read(fixtures().join("keys/rsa.pub")).unwrap();
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(&pem),
        )
        .unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        ("bad signature", other_key(&with(&|_| {}))),
        (
            "wrong iss",
            rsa(&with(&|c| c["iss"] = json!("https://evil.test"))),
        ),
        ("wrong aud", rsa(&with(&|c| c["aud"] = json!("other-app")))),
        (
            "no events",
            rsa(&with(&|c| {
                c.as_object_mut().unwrap().remove("events");
            })),
        ),
        (
            "other event",
            rsa(&with(&|c| c["events"] = json!({"urn:other": {}}))),
        ),
        (
            "event not an object",
            rsa(&with(&|c| c["events"] = json!({ LOGOUT: 1 }))),
        ),
        ("nonce", rsa(&with(&|c| c["nonce"] = json!("n")))),
        (
            "no sub or sid",
            rsa(&with(&|c| {
                let o = c.as_object_mut().unwrap();
                o.remove("sub");
                o.remove("sid");
            })),
        ),
        (
            "no jti",
            rsa(&with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })),
        ),
        (
            "no iat",
            rsa(&with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })),
        ),
        ("wrong typ", typed("at+jwt", &with(&|_| {}))),
        ("alg none", unsigned(&with(&|_| {}))),
        (
            "HS256 with the public key",
            hmac_with_public_key(&with(&|_| {})),
        ),
        ("expired", rsa(&with(&|c| c["exp"] = json!(now() - 60)))),
        ("future iat", rsa(&with(&|c| c["iat"] = json!(now() + 60)))),
        ("not a JWT", "abc".to_string()),
    ];
    for (name, token) in &cases {
        let r = post_logout(&proxy, token).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{name}");
        assert!(
            r.json()["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
        assert!(proxy.app.revocations.is_empty(), "{name} revoked something");
    }
    let good = rsa(&with(&|_| {}));
    let form = "application/x-www-form-urlencoded";
    let shapes: Vec<(&str, &str, String, u16)> = vec![
        (
            "two tokens",
            form,
            format!("logout_token={good}&logout_token={good}"),
            400,
        ),
        ("no token", form, "other=1".into(), 400),
        (
            "JSON body",
            "application/json",
            format!("{{\"logout_token\":\"{good}\"}}"),
            400,
        ),
        (
            "too large",
            form,
            format!("logout_token={}", "a".repeat(70_000)),
            413,
        ),
    ];
    for (name, ct, body, status) in &shapes {
        let r = send(proxy.addr, "POST", PATH, &[("content-type", ct)], body).await;
        assert_eq!(r.status, *status, "{name}: {}", r.body);
        assert!(proxy.app.revocations.is_empty(), "{name} revoked something");
    }
    let r = send(proxy.addr, "GET", PATH, &[], "").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(up.count(), 0, "no intake request was proxied");
    // The proxy kept serving, and the victim's token still works.
    assert_eq!(get(proxy.addr, "/api", Some(&victim)).await.status, 200);
    let rejected = proxy.app.metrics.signals("backchannel_logout", "rejected");
    assert_eq!(rejected as usize, cases.len() + 3);
    proxy.stop().await;
}

/// The endpoint is answered by the proxy down every request path, in every
/// spelling of its path, and never reaches the upstream.
#[tokio::test]
async fn the_endpoint_is_the_same_on_every_path() {
    let up = TestUpstream::start().await;
    let paths = Paths::start(CONFIG, &up.url(), &[]).await;
    for (i, via) in ALL.iter().enumerate() {
        for (j, target) in [
            PATH,
            "/oidc//backchannel-logout",
            "/OIDC/Backchannel-Logout/",
        ]
        .iter()
        .enumerate()
        {
            let sid = format!("p{i}-{j}");
            let mut c = logout_claims();
            c["sid"] = json!(sid);
            let body = format!("logout_token={}", logout_token(&c));
            let r = paths
                .send(
                    *via,
                    "POST",
                    target,
                    &[("content-type", b"application/x-www-form-urlencoded")],
                    body.as_bytes(),
                )
                .await;
            assert_eq!(r.status, 200, "{via:?} {target}: {}", r.body);
            assert_eq!(r.header("cache-control"), Some("no-store"), "{via:?}");
            let auth = format!("Bearer {}", access("dave", &sid, now() - 5));
            let r = paths
                .send(
                    *via,
                    "GET",
                    "/api",
                    &[("authorization", auth.as_bytes())],
                    b"",
                )
                .await;
            assert_eq!(r.status, 401, "{via:?} {target}: the session is revoked");
        }
    }
    assert_eq!(up.count(), 0, "nothing was proxied");
    paths.stop().await;
}

/// A keep-alive connection that sends an API request and then a logout on
/// the fast path goes on working.
#[tokio::test]
async fn a_logout_after_a_fast_path_request_on_one_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(CONFIG, &up.url(), &[]).await;
    let t = access("erin", "e1", now() - 5);
    let mut c = logout_claims();
    c["sid"] = json!("e1");
    let body = format!("logout_token={}", logout_token(&c));
    let req = format!(
        "GET /api HTTP/1.1\r\nhost: app\r\nauthorization: Bearer {t}\r\n\r\n\
         POST {PATH} HTTP/1.1\r\nhost: app\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}\
         GET /api HTTP/1.1\r\nhost: app\r\nauthorization: Bearer {t}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.get(..3).unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["200", "200", "401"], "{text}");
    proxy.stop().await;
}
