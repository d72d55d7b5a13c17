//! SPEC §5 end to end: every status row, each algorithm family with real
//! keys, algorithm confusion, time claims, iss/aud, malformed input.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use support::*;

#[tokio::test]
async fn valid_token_is_forwarded_with_identity_headers() {
    let (up, proxy) = basic().await;
    let token = hs256(&claims("alice"));
    let r = get(proxy.addr, "/api/items?page=2&q=a%20b", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-upstream"), Some("1"));
    let seen = up.last();
    assert_eq!(seen.target, "/api/items?page=2&q=a%20b");
    assert_eq!(seen.headers["x-auth-subject"], "alice");
    assert!(seen.headers["x-forwarded-for"]
        .to_str()
        .unwrap()
        .contains("127.0.0.1"));
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert!(seen.headers.contains_key("x-forwarded-host"));
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {token}").as_str()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn missing_token_gets_401_without_error_code() {
    let (up, proxy) = basic().await;
    let r = get(proxy.addr, "/api", None).await;
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
    assert_eq!(r.json()["error"], "unauthorized");
    // Another scheme carries no bearer token.
    let r = send(
        proxy.addr,
        "GET",
        "/api",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(up.count(), 0, "nothing reaches the upstream");
    proxy.stop().await;
}

#[tokio::test]
async fn malformed_authorization_header_gets_400_invalid_request() {
    let (up, proxy) = basic().await;
    for bad in ["Bearer", "Bearer a b c", "Bearer a\"b", "Bearer {}"] {
        let r = send(proxy.addr, "GET", "/api", &[("authorization", bad)], "").await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_request\""),
            "{bad}"
        );
        assert_eq!(r.json()["error"], "invalid_request");
    }
    let huge = format!("Bearer {}", "a".repeat(10_000));
    let r = send(proxy.addr, "GET", "/api", &[("authorization", &huge)], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(up.count(), 0);
    proxy.stop().await;
}

fn assert_invalid(r: &Resp, description: &str) {
    assert_eq!(r.status, 401, "{description}: {}", r.body);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(description),
        "wanted {description:?} in {challenge}"
    );
    assert_eq!(r.json()["error"], "invalid_token");
}

#[tokio::test]
async fn malformed_tokens_get_401_and_the_proxy_keeps_serving() {
    let (up, proxy) = basic().await;
    let good = hs256(&claims("alice"));
    let truncated = &good[..good.len() - 10];
    let no_sig: String = good.rsplit_once('.').unwrap().0.to_string();
    let forged_types = forge(
        &json!({"alg":"HS256","typ":"JWT"}),
        &json!({"sub": "a", "jti": "j", "iat": "yesterday", "exp": now() + 60}),
        SECRET.as_bytes(),
    );
    let sub_object = forge(
        &json!({"alg":"HS256"}),
        &json!({"sub": {"a": 1}, "jti": "j", "iat": now(), "exp": now() + 60}),
        SECRET.as_bytes(),
    );
    let cases = [
        truncated.to_string(),
        no_sig,
        "abc.def.ghi".to_string(),
        "a.b".to_string(),
        "not-a-jwt".to_string(),
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln".to_string(), // payload "not json"
        "!!!!.@@@@.####".replace(['!', '@', '#'], "A"),
        forged_types,
        sub_object,
        "a".repeat(8000),
    ];
    for token in &cases {
        let r = get(proxy.addr, "/api", Some(token)).await;
        assert!(r.status == 401 || r.status == 400, "{token}: {}", r.status);
        assert!(
            !r.body.contains(token.as_str()),
            "the body never echoes the token"
        );
    }
    assert_eq!(up.count(), 0);
    let r = get(proxy.addr, "/api", Some(&good)).await;
    assert_eq!(r.status, 200, "still serving after junk");
    proxy.stop().await;
}

#[tokio::test]
async fn bad_signature_expired_and_not_yet_valid_are_invalid_token() {
    let (_up, proxy) = basic().await;
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-entirely-000000000"),
        &claims("a"),
    );
    assert_invalid(
        &get(proxy.addr, "/api", Some(&other)).await,
        "signature invalid",
    );

    let mut c = claims("a");
    c["exp"] = json!(now() - 60);
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "token expired",
    );
    // Within the 5 s leeway an expired token still passes.
    let mut c = claims("a");
    c["exp"] = json!(now() - 2);
    assert_eq!(get(proxy.addr, "/api", Some(&hs256(&c))).await.status, 200);

    let mut c = claims("a");
    c["nbf"] = json!(now() + 120);
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "token not yet valid",
    );
    let mut c = claims("a");
    c["nbf"] = json!(now() + 2);
    assert_eq!(get(proxy.addr, "/api", Some(&hs256(&c))).await.status, 200);

    let mut c = claims("a");
    c["iat"] = json!(now() + 3600);
    c["exp"] = json!(now() + 4000);
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "issued in the future",
    );

    let mut c = claims("a");
    c["exp"] = json!(now() + 48 * 3600);
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "max_token_lifetime",
    );
    proxy.stop().await;
}

#[tokio::test]
async fn required_and_revocation_claims_must_be_present() {
    let (_up, proxy) = basic().await;
    for (claim, description) in [
        ("exp", "missing required claim exp"),
        ("iat", "missing required claim iat"),
        ("sub", "missing sub claim"),
        ("jti", "missing jti claim"),
    ] {
        let mut c = claims("a");
        c.as_object_mut().unwrap().remove(claim);
        assert_invalid(
            &get(proxy.addr, "/api", Some(&hs256(&c))).await,
            description,
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let up = TestUpstream::start().await;
    let yaml = BASIC.replace(
        "  leeway: 5s",
        "  leeway: 5s\n  issuer: https://auth.example\n  audience: [app-a, app-b]",
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let mut c = claims("a");
    c["iss"] = json!("https://auth.example");
    c["aud"] = json!(["other", "app-b"]);
    assert_eq!(get(proxy.addr, "/api", Some(&hs256(&c))).await.status, 200);
    c["aud"] = json!("app-a");
    assert_eq!(get(proxy.addr, "/api", Some(&hs256(&c))).await.status, 200);
    c["aud"] = json!("app-c");
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "audience mismatch",
    );
    c["aud"] = json!("app-a");
    c["iss"] = json!("https://evil.example");
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "issuer mismatch",
    );
    c.as_object_mut().unwrap().remove("iss");
    assert_invalid(
        &get(proxy.addr, "/api", Some(&hs256(&c))).await,
        "issuer mismatch",
    );
    proxy.stop().await;
}

/// RFC 9068 with `jwt.typ`: only tokens typed as access tokens pass (an
/// ID token or a logout token of the same issuer is no access token).
#[tokio::test]
async fn access_token_profile_requires_its_typ() {
    let up = TestUpstream::start().await;
    let yaml = BASIC.replace("  leeway: 5s", "  leeway: 5s\n  typ: [at+jwt]");
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let typed = |typ: Option<&str>| {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&h, &claims("t"), &key).unwrap()
    };
    for ok in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let r = get(proxy.addr, "/api", Some(&typed(Some(ok)))).await;
        assert_eq!(r.status, 200, "{ok}: {}", r.body);
    }
    for bad in [Some("JWT"), Some("logout+jwt"), None] {
        assert_invalid(
            &get(proxy.addr, "/api", Some(&typed(bad))).await,
            "token type (typ) not accepted",
        );
    }
    proxy.stop().await;
}

/// Documents the identity provider signs with the same keys — a logout
/// token, a SET, a status list — are never access tokens, even without
/// `jwt.typ`.
#[tokio::test]
async fn signed_signals_are_not_access_tokens() {
    let (_up, proxy) = basic().await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let typed = |typ: &str, c: &serde_json::Value| {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.typ = Some(typ.to_string());
        jsonwebtoken::encode(&h, c, &key).unwrap()
    };
    for typ in ["logout+jwt", "application/secevent+jwt", "statuslist+jwt"] {
        assert_invalid(
            &get(proxy.addr, "/api", Some(&typed(typ, &claims("s")))).await,
            "not an access token",
        );
    }
    let mut with_events = claims("s");
    with_events["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    assert_invalid(
        &get(proxy.addr, "/api", Some(&typed("JWT", &with_events))).await,
        "not an access token",
    );
    // The positive control: the same claims as an access token pass.
    let r = get(proxy.addr, "/api", Some(&typed("JWT", &claims("s")))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    proxy.stop().await;
}

fn public_key_config(algs: &str, key: &str) -> String {
    BASIC.replace(
        "  algorithms: [HS256]\n  secret: ${SECRET}",
        &format!("  algorithms: [{algs}]\n  public_key_file: ${{KEYS}}/{key}"),
    )
}

#[tokio::test]
async fn every_algorithm_family_verifies_with_real_keys() {
    let up = TestUpstream::start().await;
    let families: [(&str, &str, &[Algorithm]); 4] = [
        (
            "RS256, RS384, RS512, PS256, PS384, PS512",
            "rsa",
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        ("ES256", "ec256", &[Algorithm::ES256]),
        ("ES384", "ec384", &[Algorithm::ES384]),
        ("EdDSA", "ed25519", &[Algorithm::EdDSA]),
    ];
    for (list, key, algs) in families {
        let proxy = TestProxy::start(
            &public_key_config(list, &format!("{key}.pub")),
            &up.url(),
            &[],
        )
        .await;
        for alg in algs {
            let token = sign(*alg, &private_key(*alg, key), &claims("alice"));
            let r = get(proxy.addr, "/api", Some(&token)).await;
            assert_eq!(r.status, 200, "{alg:?}: {}", r.body);
        }
        // HS256 is not in the allow-list here.
        let r = get(proxy.addr, "/api", Some(&hs256(&claims("a")))).await;
        assert_invalid(&r, "algorithm not allowed");
        proxy.stop().await;
    }
    // HS384 and HS512 with a secret as long as HS512's hash (RFC 7518 §3.2).
    let long = "0123456789abcdef".repeat(4);
    let proxy = TestProxy::start(
        &BASIC
            .replace("[HS256]", "[HS384, HS512]")
            .replace("${SECRET}", &long),
        &up.url(),
        &[],
    )
    .await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(
            alg,
            &EncodingKey::from_secret(long.as_bytes()),
            &claims("a"),
        );
        assert_eq!(
            get(proxy.addr, "/api", Some(&token)).await.status,
            200,
            "{alg:?}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn a_key_from_another_pair_is_rejected() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&public_key_config("RS256", "rsa.pub"), &up.url(), &[]).await;
    let token = sign(
        Algorithm::RS256,
        &private_key(Algorithm::RS256, "rsa-other"),
        &claims("a"),
    );
    assert_invalid(
        &get(proxy.addr, "/api", Some(&token)).await,
        "signature invalid",
    );
    proxy.stop().await;
}

#[tokio::test]
async fn algorithm_confusion_and_alg_none_never_verify() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(&public_key_config("RS256", "rsa.pub"), &up.url(), &[]).await;
    // HS256 "signed" with the RSA public key as the HMAC secret.
    let public_pem = std::fs::read(fixtures().join("keys/rsa.pub")).unwrap();
    let confused = forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims("mallory"),
        &public_pem,
    );
    assert_invalid(
        &get(proxy.addr, "/api", Some(&confused)).await,
        "algorithm not allowed",
    );
    // alg: none with an empty signature.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{}.",
            b64.encode(json!({"alg": alg}).to_string()),
            b64.encode(claims("mallory").to_string())
        );
        let r = get(proxy.addr, "/api", Some(&unsigned)).await;
        assert_eq!(r.status, 401, "{alg}");
    }
    assert_eq!(up.count(), 0);
    proxy.stop().await;

    // With both HS256 and RS256 allowed, the public key still never serves as a secret.
    let yaml = public_key_config("RS256", "rsa.pub").replace(
        "  algorithms: [RS256]",
        "  algorithms: [RS256, HS256]\n  secret: ${SECRET}",
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    assert_invalid(
        &get(proxy.addr, "/api", Some(&confused)).await,
        "signature invalid",
    );
    assert_eq!(
        get(proxy.addr, "/api", Some(&hs256(&claims("a"))))
            .await
            .status,
        200
    );
    proxy.stop().await;
}

#[tokio::test]
async fn tokens_are_found_in_cookie_and_query_only_when_configured() {
    let up = TestUpstream::start().await;
    let token = hs256(&claims("alice"));
    let proxy = TestProxy::start(BASIC, &up.url(), &[]).await;
    assert_eq!(
        get(proxy.addr, &format!("/api?access_token={token}"), None)
            .await
            .status,
        401
    );
    proxy.stop().await;

    let yaml = BASIC.replace(
        "  leeway: 5s",
        "  leeway: 5s\n  token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: access_token",
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let cookie = format!("theme=dark; access_token={token}");
    assert_eq!(
        send(proxy.addr, "GET", "/api", &[("cookie", &cookie)], "")
            .await
            .status,
        200
    );
    assert_eq!(
        get(proxy.addr, &format!("/api?x=1&access_token={token}"), None)
            .await
            .status,
        200
    );
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_refusal_is_502_and_timeout_is_504() {
    // A port held by a socket that is bound but never listens: connections
    // to it are refused, and no other test can take the port meanwhile.
    let holder = tokio::net::TcpSocket::new_v4().unwrap();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = holder.local_addr().unwrap();
    let proxy = TestProxy::start(BASIC, &format!("http://{dead}"), &[]).await;
    let r = get(proxy.addr, "/api", Some(&hs256(&claims("a")))).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    proxy.stop().await;

    let up = TestUpstream::start().await;
    let yaml = format!("{BASIC}timeouts:\n  upstream_response: 300ms\n");
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let r = get(proxy.addr, "/slow/3000", Some(&hs256(&claims("a")))).await;
    assert_eq!(r.status, 504);
    let r = get(proxy.addr, "/slow/10", Some(&hs256(&claims("a")))).await;
    assert_eq!(r.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn bodies_methods_and_http2_pass_through() {
    let (up, proxy) = basic().await;
    let token = hs256(&claims("a"));
    let auth = format!("Bearer {token}");
    let big = "x".repeat(3 * 1024 * 1024);
    let r = send(
        proxy.addr,
        "PUT",
        "/upload",
        &[("authorization", &auth)],
        &big,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, format!("upstream saw {} bytes", big.len()));
    assert_eq!(up.last().method, "PUT");

    // h2c with prior knowledge on the same port.
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = http::Request::builder()
        .uri(proxy.url("/h2"))
        .header("authorization", &auth)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")))
        .unwrap();
    let resp = h2.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(up.last().target, "/h2");
    proxy.stop().await;
}
