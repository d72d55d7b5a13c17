//! Revocations from the identity provider: OpenID Connect Back-Channel
//! Logout and Shared Signals (SSF/CAEP) push on the public listener. Logout
//! tokens and SETs are signed here with the fixture RSA 2048 key (the
//! issuer's), the access tokens with the proxy's HMAC secret; every
//! bad-input row gets its written status and body and revokes nothing.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::paths::{Paths, ALL};
use support::*;

const ISSUER: &str = "https://idp.test";
const LOGOUT: &str = "http://schemas.openid.net/event/backchannel-logout";
const PATH: &str = "/oidc/backchannel-logout";

/// The proxy and the one trusted issuer; each test adds its endpoints.
const ISSUER_CONFIG: &str = r#"
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
"#;

/// Back-channel logout and SSF push.
fn config() -> String {
    format!(
        "{ISSUER_CONFIG}  backchannel_logout:\n    path: /oidc/backchannel-logout\n  ssf:\n    push_path: /ssf/events\n    authorization: Bearer ssf-push-secret-0123456789\n"
    )
}

const PUSH: &str = "/ssf/events";
const PUSH_AUTH: &str = "Bearer ssf-push-secret-0123456789";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

fn access(sub: &str, sid: &str, iat: i64) -> String {
    let mut c = claims(sub);
    c["sid"] = json!(sid);
    c["iat"] = json!(iat);
    hs256(&c)
}

/// The claims of a JWT, unverified (to read what the test itself signed).
fn payload_of(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
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
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
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

    // A reload builds a new proxy; it keeps the memory of applied signals.
    let settings = parse_settings(&config(), &up.url(), &[]);
    let verifier =
        revoke_proxy::auth::Verifier::new(&settings.jwt, &settings.revocation, &settings.forward)
            .unwrap();
    let mut reloaded = revoke_proxy::proxy::Proxy::new(
        &settings,
        verifier,
        proxy.app.revocations.clone(),
        proxy.app.metrics.clone(),
    )
    .unwrap();
    reloaded.keep_replay_of(&proxy.app);
    let (intake, endpoint) = reloaded.intake_endpoint(PATH).unwrap();
    let form = format!("logout_token={token}");
    let delivery = revoke_proxy::intake::Delivery {
        method: "POST",
        content_type: Some(b"application/x-www-form-urlencoded"),
        authorization: None,
        body: form.as_bytes(),
    };
    assert_eq!(intake.answer(endpoint, &delivery).await.status, 200);
    assert_eq!(m.signals("backchannel_logout", "replayed"), 2);
    assert_eq!(m.signals("backchannel_logout", "applied"), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_logout_by_subject_cuts_at_the_tokens_own_time() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
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
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
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
    let paths = Paths::start(&config(), &up.url(), &[]).await;
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
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
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

/// A SET as the CAEP interoperability profile writes it: `typ`
/// secevent+jwt, RS256, `sub_id` or a subject in the event, one event.
fn set_claims(event_type: &str, event: Value) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "iss": ISSUER, "aud": "app", "iat": now(), "jti": format!("set-{n}"),
        "events": { event_type: event },
    })
}

fn set_token(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.typ = Some("secevent+jwt".into());
    jsonwebtoken::encode(&h, claims, &private_key(Algorithm::RS256, "rsa")).unwrap()
}

async fn push(proxy: &TestProxy, auth: Option<&str>, set: &str) -> Resp {
    let mut headers = vec![("content-type", "application/secevent+jwt")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    send(proxy.addr, "POST", PUSH, &headers, set).await
}

#[tokio::test]
async fn pushed_caep_events_revoke_at_the_events_own_time() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;

    // session-revoked, complex subject with a session: that session only.
    let s1 = access("fay", "f1", now() - 10);
    let s2 = access("fay", "f2", now() - 10);
    let c = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "complex",
            "user": {"format": "iss_sub", "iss": ISSUER, "sub": "fay"},
            "session": {"format": "opaque", "id": "f1"}},
            "event_timestamp": now()}),
    );
    let set = set_token(&c);
    let r = push(&proxy, Some(PUSH_AUTH), &set).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(get(proxy.addr, "/api", Some(&s1)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&s2)).await.status, 200);
    // The same SET again: 202, nothing new.
    let entries = proxy.app.revocations.len();
    assert_eq!(push(&proxy, Some(PUSH_AUTH), &set).await.status, 202);
    assert_eq!(proxy.app.revocations.len(), entries);

    // credential-change (password) at a past event time: tokens issued
    // before it are revoked, tokens issued after it (a delayed SET) are not.
    let before = access("gus", "g1", now() - 100);
    let after = access("gus", "g2", now() - 20);
    let c = set_claims(
        CREDENTIAL_CHANGE,
        json!({"credential_type": "password", "change_type": "update",
            "event_timestamp": now() - 50}),
    );
    let mut c = c;
    c["sub_id"] = json!({"format": "opaque", "id": "gus"});
    assert_eq!(
        push(&proxy, Some(PUSH_AUTH), &set_token(&c)).await.status,
        202
    );
    assert_eq!(get(proxy.addr, "/api", Some(&before)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&after)).await.status, 200);

    // session-revoked for a user (iss_sub), no event_timestamp: the SET's iat.
    let hal = access("hal", "h1", now() - 10);
    let c = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "iss_sub", "iss": ISSUER, "sub": "hal"}}),
    );
    assert_eq!(
        push(&proxy, Some(PUSH_AUTH), &set_token(&c)).await.status,
        202
    );
    assert_eq!(get(proxy.addr, "/api", Some(&hal)).await.status, 401);

    // session-revoked for one token (jwt_id): that token only, any subject.
    let one = access("hal2", "h2", now() - 10);
    let sibling = access("hal2", "h2", now() - 10);
    let jti = payload_of(&one)["jti"].as_str().unwrap().to_string();
    let c = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "jwt_id", "iss": ISSUER, "jti": jti}}),
    );
    assert_eq!(
        push(&proxy, Some(PUSH_AUTH), &set_token(&c)).await.status,
        202
    );
    assert_eq!(get(proxy.addr, "/api", Some(&one)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&sibling)).await.status, 200);

    // Accepted, nothing written: verification, another credential type, an
    // unknown event type, an unhandled subject format.
    let entries = proxy.app.revocations.len();
    for c in [
        set_claims(VERIFICATION, json!({"state": "abc"})),
        set_claims(
            CREDENTIAL_CHANGE,
            json!({"subject": {"format": "opaque", "id": "ivy"},
                "credential_type": "fido2-roaming", "change_type": "create"}),
        ),
        set_claims("urn:example:unknown", json!({})),
        set_claims(
            SESSION_REVOKED,
            json!({"subject": {"format": "email", "email": "ivy@example.com"}}),
        ),
    ] {
        let r = push(&proxy, Some(PUSH_AUTH), &set_token(&c)).await;
        assert_eq!(r.status, 202, "{c}: {}", r.body);
    }
    assert_eq!(proxy.app.revocations.len(), entries);
    let m = &proxy.app.metrics;
    assert_eq!(m.signals("ssf_push", "applied"), 4);
    assert_eq!(m.signals("ssf_push", "replayed"), 1);
    assert_eq!(m.signals("ssf_push", "ignored"), 4);
    assert_eq!(
        up.count(),
        3,
        "only the three served API calls reached the upstream"
    );
    // An issuer numbers its logout tokens and its SETs apart: a SET with
    // the jti of a logout token applied before is a signal of its own.
    let mut lc = logout_claims();
    lc["sid"] = json!("w1");
    lc["sub"] = json!("gwen");
    lc["jti"] = json!("shared-jti");
    assert_eq!(post_logout(&proxy, &logout_token(&lc)).await.status, 200);
    let w2 = access("gwen", "w2", now() - 10);
    let mut c = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "complex",
            "user": {"format": "iss_sub", "iss": ISSUER, "sub": "gwen"},
            "session": {"format": "opaque", "id": "w2"}},
            "event_timestamp": now()}),
    );
    c["jti"] = json!("shared-jti");
    assert_eq!(
        push(&proxy, Some(PUSH_AUTH), &set_token(&c)).await.status,
        202
    );
    assert_eq!(get(proxy.addr, "/api", Some(&w2)).await.status, 401);
    proxy.stop().await;
}

#[tokio::test]
async fn every_bad_push_gets_its_rfc8935_error_and_revokes_nothing() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&config(), &up.url(), &[]).await;
    let victim = access("jay", "j1", now() - 10);
    let session = json!({"subject": {"format": "opaque", "id": "jay"}});
    let good = || set_claims(SESSION_REVOKED, session.clone());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        set_token(&c)
    };
    let header = |typ: Option<&str>, alg: Algorithm, key: &str, c: &Value| {
        let mut h = Header::new(alg);
        h.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&h, c, &private_key(alg, key)).unwrap()
    };
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"secevent+jwt"}"#),
            b64.encode(good().to_string())
        )
    };
    // Wrong or missing Authorization: 401 before anything is read.
    let set = set_token(&good());
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("bearer ssf-push-secret-0123456789"),
    ] {
        let r = push(&proxy, auth, &set).await;
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert_eq!(r.json()["err"], "authentication_failed");
    }
    // Whatever the body or the method: without the Authorization nothing
    // is read, not even to find it too large.
    let huge = "x".repeat(70 * 1024);
    let r = push(&proxy, None, &huge).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = send(
        proxy.addr,
        "PUT",
        PUSH,
        &[("content-type", "application/secevent+jwt")],
        &set,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong iss",
            with(&|c| c["iss"] = json!("https://evil.test")),
            "invalid_issuer",
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = json!("other")),
            "invalid_audience",
        ),
        (
            "other key",
            header(Some("secevent+jwt"), Algorithm::RS256, "rsa-other", &good()),
            "invalid_key",
        ),
        (
            "typ JWT",
            header(Some("JWT"), Algorithm::RS256, "rsa", &good()),
            "invalid_request",
        ),
        (
            "no typ",
            header(None, Algorithm::RS256, "rsa", &good()),
            "invalid_request",
        ),
        ("alg none", unsigned, "invalid_request"),
        (
            "two events",
            with(&|c| c["events"][VERIFICATION] = json!({})),
            "invalid_request",
        ),
        (
            "no events",
            with(&|c| {
                c.as_object_mut().unwrap().remove("events");
            }),
            "invalid_request",
        ),
        (
            "sub at the top",
            with(&|c| c["sub"] = json!("jay")),
            "invalid_request",
        ),
        (
            "exp at the top",
            with(&|c| c["exp"] = json!(now() + 60)),
            "invalid_request",
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "invalid_request",
        ),
        (
            "future iat",
            with(&|c| c["iat"] = json!(now() + 60)),
            "invalid_request",
        ),
        (
            "future event",
            with(&|c| c["events"][SESSION_REVOKED]["event_timestamp"] = json!(now() + 60)),
            "invalid_request",
        ),
        ("not a JWT", "abc".to_string(), "invalid_request"),
    ];
    for (name, set, err) in &cases {
        let r = push(&proxy, Some(PUSH_AUTH), set).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert_eq!(r.json()["err"], *err, "{name}: {}", r.body);
        assert!(r.json()["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        assert!(proxy.app.revocations.is_empty(), "{name} revoked something");
    }
    let r = send(
        proxy.addr,
        "POST",
        PUSH,
        &[
            ("content-type", "application/json"),
            ("authorization", PUSH_AUTH),
        ],
        &set,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["err"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(proxy.app.revocations.is_empty());
    assert_eq!(up.count(), 0, "no push was proxied");
    assert_eq!(get(proxy.addr, "/api", Some(&victim)).await.status, 200);
    proxy.stop().await;
}

/// A local RFC 8936 transmitter: answers each poll with every SET not yet
/// acknowledged or reported (at most `maxEvents`), records each poll's
/// body and Authorization, and fails the first `fail` polls with 503.
#[derive(Default)]
struct Transmitter {
    outstanding: Vec<(String, String)>,
    polls: Vec<(Value, Option<String>)>,
    fail: u32,
    /// Answer `moreAvailable: true` whatever is left.
    always_more: bool,
}

async fn start_transmitter(state: std::sync::Arc<std::sync::Mutex<Transmitter>>) -> String {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let mut t = state.lock().unwrap();
                        t.polls.push((body.clone(), auth));
                        if t.fail > 0 {
                            t.fail -= 1;
                            let mut r = http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"busy"),
                            ));
                            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        let done = |jti: &str| {
                            body["ack"]
                                .as_array()
                                .is_some_and(|a| a.iter().any(|x| x == jti))
                                || body["setErrs"].get(jti).is_some()
                        };
                        t.outstanding.retain(|(jti, _)| !done(jti));
                        let max = body["maxEvents"].as_u64().unwrap_or(0) as usize;
                        let sets: serde_json::Map<String, Value> = t
                            .outstanding
                            .iter()
                            .take(max)
                            .map(|(jti, set)| (jti.clone(), json!(set)))
                            .collect();
                        let more = t.always_more || t.outstanding.len() > max;
                        let answer = json!({"sets": sets, "moreAvailable": more});
                        let mut r = http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(answer.to_string()),
                        ));
                        r.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok(r)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    format!("http://{addr}/ssf/poll")
}

/// SSF poll delivery from `${POLL}`.
fn poll_config() -> String {
    format!(
        "{ISSUER_CONFIG}  ssf:\n    poll:\n      url: ${{POLL}}\n      authorization: Bearer poll-secret\n      interval: 100ms\n      max_events: 10\n"
    )
}

#[tokio::test]
async fn polled_sets_are_applied_acknowledged_or_reported() {
    let up = TestUpstream::start().await;
    let state = std::sync::Arc::new(std::sync::Mutex::new(Transmitter {
        fail: 1,
        ..Transmitter::default()
    }));
    let good = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "complex", "session": {"format": "opaque", "id": "k1"}}}),
    );
    let mut h = Header::new(Algorithm::RS256);
    h.typ = Some("secevent+jwt".into());
    let forged = jsonwebtoken::encode(
        &h,
        &set_claims(
            SESSION_REVOKED,
            json!({"subject": {"format": "opaque", "id": "kim"}}),
        ),
        &private_key(Algorithm::RS256, "rsa-other"),
    )
    .unwrap();
    state.lock().unwrap().outstanding = vec![
        ("good-1".into(), set_token(&good)),
        ("bad-1".into(), forged),
    ];
    let poll = start_transmitter(state.clone()).await;
    let first = access("kim", "k1", now() - 10);
    let other = access("kim", "k2", now() - 10);
    let proxy = TestProxy::start(&poll_config(), &up.url(), &[("POLL", poll)]).await;

    // After one failed poll (backed off), the SET is applied…
    wait_for("the polled session revocation", || async {
        get(proxy.addr, "/api", Some(&first)).await.status == 401
    })
    .await;
    assert_eq!(get(proxy.addr, "/api", Some(&other)).await.status, 200);
    // …acknowledged on the next poll, and the forged one reported, never acked.
    let acked = |jti: &'static str| {
        let state = state.clone();
        move || {
            state.lock().unwrap().polls.iter().any(|(b, _)| {
                b["ack"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == jti))
            })
        }
    };
    wait_until("good-1 acknowledged", acked("good-1")).await;
    wait_until("bad-1 reported", || {
        state
            .lock()
            .unwrap()
            .polls
            .iter()
            .any(|(b, _)| b["setErrs"]["bad-1"]["err"] == "invalid_key")
    })
    .await;

    // A SET queued later is picked up by a later poll.
    let later = access("lou", "l1", now() - 30);
    let mut c = set_claims(
        CREDENTIAL_CHANGE,
        json!({"credential_type": "password", "change_type": "update", "event_timestamp": now() - 5}),
    );
    c["sub_id"] = json!({"format": "opaque", "id": "lou"});
    state
        .lock()
        .unwrap()
        .outstanding
        .push(("good-2".into(), set_token(&c)));
    wait_for("the second polled SET", || async {
        get(proxy.addr, "/api", Some(&later)).await.status == 401
    })
    .await;
    wait_until("good-2 acknowledged", acked("good-2")).await;

    assert!(!acked("bad-1")(), "a forged SET was acknowledged");
    let polls = state.lock().unwrap().polls.clone();
    for (body, auth) in &polls {
        assert_eq!(auth.as_deref(), Some("Bearer poll-secret"));
        assert_eq!(body["maxEvents"], 10);
        assert_eq!(body["returnImmediately"], false);
    }
    let m = &proxy.app.metrics;
    assert_eq!(m.signals("ssf_poll", "applied"), 2);
    assert!(m.signals("ssf_poll", "rejected") >= 1);
    assert!(m
        .exposition(Default::default())
        .contains("revoke_proxy_intake_poll_errors_total 1"));

    // A transmitter that keeps saying `moreAvailable` with nothing to give
    // is polled at the interval (100 ms), never in a tight loop.
    state.lock().unwrap().always_more = true;
    let before = state.lock().unwrap().polls.len();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let polled = state.lock().unwrap().polls.len() - before;
    assert!(polled <= 15, "{polled} polls in one second");
    proxy.stop().await;
}

/// A signal received by one replica is enforced by every replica sharing
/// the store: it goes through the same write path as a logout route.
#[tokio::test]
async fn a_signal_to_one_replica_reaches_every_replica() {
    let redis = support::servers::Redis::start();
    let up = TestUpstream::start().await;
    let yaml = format!(
        "{}revocation:\n  store:\n    type: redis\n    url: {}\n    mode: replica\n",
        config(),
        redis.url()
    );
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    let by_logout = access("max", "m1", now() - 10);
    let by_set = access("ned", "n1", now() - 10);
    assert_eq!(get(b.addr, "/api", Some(&by_logout)).await.status, 200);
    assert_eq!(get(a.addr, "/api", Some(&by_set)).await.status, 200);

    let mut c = logout_claims();
    c["sid"] = json!("m1");
    assert_eq!(post_logout(&a, &logout_token(&c)).await.status, 200);
    let c = set_claims(
        SESSION_REVOKED,
        json!({"subject": {"format": "complex", "session": {"format": "opaque", "id": "n1"}}}),
    );
    assert_eq!(push(&b, Some(PUSH_AUTH), &set_token(&c)).await.status, 202);
    for (proxy, token) in [(&b, &by_logout), (&a, &by_set)] {
        wait_for("the signal reaches the other replica", || async {
            get(proxy.addr, "/api", Some(token)).await.status == 401
        })
        .await;
    }
    // Each replica's own copy too, and another session of the user lives on.
    assert_eq!(get(a.addr, "/api", Some(&by_logout)).await.status, 401);
    let other = access("max", "m2", now() - 10);
    assert_eq!(get(b.addr, "/api", Some(&other)).await.status, 200);
    a.stop().await;
    b.stop().await;
}
