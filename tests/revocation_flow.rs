//! Revocation through intercepted routes, end to end: logout, purge,
//! sessions, route-bypass attempts and spoofed identity headers.

mod support;

use serde_json::json;
use support::*;

fn assert_revoked(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error_description=\"token revoked\""));
    assert_eq!(
        r.json(),
        json!({"error": "invalid_token", "error_description": "token revoked"})
    );
}

#[tokio::test]
async fn logout_then_reuse_gets_401_while_another_token_of_the_user_passes() {
    let (up, proxy) = basic().await;
    let first = hs256(&claims("alice"));
    let second = hs256(&claims("alice"));
    assert_eq!(get(proxy.addr, "/api", Some(&first)).await.status, 200);
    let r = post(proxy.addr, "/logout", &first).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_eq!(up.last().target, "/logout", "the app still sees its logout");
    assert_revoked(&get(proxy.addr, "/api", Some(&first)).await);
    assert_revoked(&post(proxy.addr, "/logout", &first).await);
    assert_eq!(get(proxy.addr, "/api", Some(&second)).await.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn logout_is_applied_only_when_the_upstream_agrees() {
    let up = TestUpstream::start().await;
    let yaml = BASIC.replace(
        "routes:\n",
        "routes:\n  - path: /status/*\n    methods: [POST]\n    action: revoke\n    apply_on: [2xx, 3xx]\n",
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let token = hs256(&claims("alice"));
    let r = post(proxy.addr, "/status/500", &token).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("revocation-status"), None);
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
    let r = post(proxy.addr, "/status/302", &token).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_revoked(&get(proxy.addr, "/api", Some(&token)).await);
    proxy.stop().await;
}

#[tokio::test]
async fn purge_on_password_change_revokes_older_tokens_of_that_user_only() {
    let (_up, proxy) = basic().await;
    let mut old = claims("alice");
    old["iat"] = json!(now() - 30);
    let old = hs256(&old);
    let presented = hs256(&claims("alice"));
    let bob = {
        let mut c = claims("bob");
        c["iat"] = json!(now() - 30);
        hs256(&c)
    };
    let r = send(
        proxy.addr,
        "PUT",
        "/account/password",
        &[("authorization", &format!("Bearer {presented}"))],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_revoked(&get(proxy.addr, "/api", Some(&old)).await);
    assert_revoked(&get(proxy.addr, "/api", Some(&presented)).await);
    assert_eq!(get(proxy.addr, "/api", Some(&bob)).await.status, 200);
    // The token the app hands out in its response is issued in the purge second or later.
    let fresh = hs256(&claims("alice"));
    assert_eq!(get(proxy.addr, "/api", Some(&fresh)).await.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn respond_routes_answer_without_calling_the_upstream() {
    let (up, proxy) = basic().await;
    let mut older = claims("alice");
    older["iat"] = json!(now() - 5);
    let older = hs256(&older);
    let token = hs256(&claims("alice"));
    let r = post(proxy.addr, "/logout/all", &token).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_eq!(up.count(), 0);
    assert_revoked(&get(proxy.addr, "/api", Some(&token)).await);
    assert_revoked(&get(proxy.addr, "/api", Some(&older)).await);
    proxy.stop().await;
}

#[tokio::test]
async fn session_revocation_covers_refreshed_tokens_but_not_another_users_session() {
    let up = TestUpstream::start().await;
    let yaml = format!("{BASIC}revocation:\n  token_claim: sid\n");
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let tok = |sub: &str, sid: &str| {
        let mut c = claims(sub);
        c["sid"] = json!(sid);
        hs256(&c)
    };
    let (a1, a2, b) = (tok("alice", "s-1"), tok("alice", "s-1"), tok("bob", "s-1"));
    let other_session = tok("alice", "s-2");
    assert_eq!(post(proxy.addr, "/logout", &a1).await.status, 200);
    assert_revoked(&get(proxy.addr, "/api", Some(&a1)).await);
    assert_revoked(&get(proxy.addr, "/api", Some(&a2)).await);
    assert_eq!(
        get(proxy.addr, "/api", Some(&b)).await.status,
        200,
        "bob's identical sid stays valid"
    );
    assert_eq!(
        get(proxy.addr, "/api", Some(&other_session)).await.status,
        200
    );
    proxy.stop().await;
}

#[tokio::test]
async fn numbers_and_strings_are_different_subjects() {
    let (_up, proxy) = basic().await;
    let mk = |sub: serde_json::Value| {
        let mut c = claims("x");
        c["sub"] = sub;
        c["jti"] = json!(7);
        hs256(&c)
    };
    let (num, text) = (mk(json!(42)), mk(json!("42")));
    assert_eq!(post(proxy.addr, "/logout", &num).await.status, 200);
    assert_revoked(&get(proxy.addr, "/api", Some(&num)).await);
    assert_eq!(get(proxy.addr, "/api", Some(&text)).await.status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn concurrent_logouts_of_one_user_all_stick() {
    let (_up, proxy) = basic().await;
    let tokens: Vec<String> = (0..24).map(|_| hs256(&claims("alice"))).collect();
    let mut tasks = Vec::new();
    for t in tokens.clone() {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            post(addr, "/logout", &t).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    for t in &tokens {
        assert_revoked(&get(proxy.addr, "/api", Some(t)).await);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn public_rules_cannot_be_used_to_reach_protected_paths() {
    let (up, proxy) = basic().await;
    assert_eq!(get(proxy.addr, "/login", None).await.status, 200);
    assert_eq!(get(proxy.addr, "/static/app.js", None).await.status, 200);
    for path in [
        "/static/../admin",
        "/static/%2e%2e/admin",
        "/static/%2E%2E/admin",
        "/static/..;/admin",
        "/static/./../admin",
        "//static/../admin",
        "/STATIC/app.js",
        "/Login",
        "/login/",
        "/login;x=1",
        "/loginx",
        "/static;x/app.js",
    ] {
        let r = get(proxy.addr, path, None).await;
        assert_eq!(r.status, 401, "{path} must need a token");
    }
    for path in [
        "/static%2f..%2fadmin",
        "/static/..%2Fadmin",
        "/static/..%5cadmin",
        "/static/%zz",
        "/..",
    ] {
        let r = get(proxy.addr, path, None).await;
        assert_eq!(r.status, 400, "{path} is refused");
    }
    assert_eq!(
        raw_status(
            proxy.addr,
            b"GET /static\\..\\admin HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .await,
        400
    );
    // The upstream receives exactly the path that was matched.
    let before = up.count();
    assert_eq!(
        get(proxy.addr, "/static/./css/../app.js?v=1", None)
            .await
            .status,
        200
    );
    assert_eq!(up.last().target, "/static/app.js?v=1");
    let token = hs256(&claims("a"));
    assert_eq!(
        get(proxy.addr, "/static/../admin/%2e/x", Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(up.last().target, "/admin/x");
    assert_eq!(up.count(), before + 2);
    proxy.stop().await;
}

#[tokio::test]
async fn logout_rules_cannot_be_dodged_by_spelling() {
    let (_up, proxy) = basic().await;
    for path in [
        "/LOGOUT",
        "/logout/",
        "/logout;jsessionid=1",
        "//logout",
        "/api/../logout",
        "/%6Cogout",
        "/./logout",
    ] {
        let token = hs256(&claims("alice"));
        let r = post(proxy.addr, path, &token).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("revocation-status"), Some("stored"), "{path}");
        assert_revoked(&get(proxy.addr, "/api", Some(&token)).await);
    }
    let token = hs256(&claims("alice"));
    let auth = format!("Bearer {token}");
    let r = send(
        proxy.addr,
        "post",
        "/logout",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(
        r.header("revocation-status"),
        Some("stored"),
        "lower-case method"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn client_sent_identity_headers_are_stripped_everywhere() {
    let (up, proxy) = basic().await;
    let token = hs256(&claims("alice"));
    let auth = format!("Bearer {token}");
    let spoof = [
        ("x-auth-subject", "admin"),
        ("X_Auth_Subject", "admin"),
        ("x_auth-subject", "admin"),
    ];
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(spoof);
    assert_eq!(
        send(proxy.addr, "GET", "/api", &headers, "").await.status,
        200
    );
    let seen = up.last();
    let values: Vec<_> = seen.headers.get_all("x-auth-subject").iter().collect();
    assert_eq!(values, vec!["alice"]);
    assert!(!seen.headers.keys().any(|k| k.as_str().contains('_')));

    assert_eq!(
        send(proxy.addr, "GET", "/login", &spoof, "").await.status,
        200
    );
    let seen = up.last();
    assert!(
        !seen.headers.contains_key("x-auth-subject"),
        "public routes too"
    );
    assert!(!seen.headers.keys().any(|k| k.as_str().contains('_')));
    proxy.stop().await;
}

#[tokio::test]
async fn authorization_can_be_stripped_before_forwarding() {
    let up = TestUpstream::start().await;
    let yaml = BASIC.replace(
        "    sub: X-Auth-Subject",
        "    sub: X-Auth-Subject\n  authorization: strip",
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    assert_eq!(
        get(proxy.addr, "/api", Some(&hs256(&claims("a"))))
            .await
            .status,
        200
    );
    assert!(!up.last().headers.contains_key("authorization"));
    proxy.stop().await;
}

#[tokio::test]
async fn revocation_keys_ignore_token_encoding() {
    // The same claims signed twice (different header order) are one token to revocation.
    let (_up, proxy) = basic().await;
    let c = claims("alice");
    let a = hs256(&c);
    let b = forge(
        &json!({"typ": "JWT", "alg": "HS256"}),
        &c,
        SECRET.as_bytes(),
    );
    assert_ne!(a, b);
    assert_eq!(post(proxy.addr, "/logout", &a).await.status, 200);
    assert_revoked(&get(proxy.addr, "/api", Some(&b)).await);
    proxy.stop().await;
}

/// `clear_cookie`: when a revoke or purge route's action applies, the
/// response also expires the token cookie (name, path, domain), on every
/// request path; when it does not apply, no cookie is touched.
#[tokio::test]
async fn an_applied_logout_expires_the_token_cookie_on_every_path() {
    use support::paths::{Paths, ALL};
    let up = TestUpstream::start().await;
    let yaml = "upstream: ${UPSTREAM}\njwt:\n  secret: ${SECRET}\n  token_from:\n    - header: Authorization\n    - cookie: access_token\nroutes:\n  - path: /logout\n    methods: [POST]\n    action: revoke\n    clear_cookie: true\n  - path: /status/500\n    methods: [POST]\n    action: revoke\n    clear_cookie: true\n  - path: /logout/all\n    methods: [POST]\n    action: purge\n    respond: 204\n    clear_cookie: {path: /app, domain: example.test}\n";
    let paths = Paths::start(yaml, &up.url(), &[]).await;
    for via in ALL {
        let send = |target: &'static str, token: String| {
            let paths = &paths;
            async move {
                let cookie = format!("access_token={token}");
                paths
                    .send(via, "POST", target, &[("cookie", cookie.as_bytes())], b"")
                    .await
            }
        };
        let r = send("/logout", hs256(&claims("cookie-user"))).await;
        assert_eq!(r.status, 200, "{via:?}: {}", r.body);
        assert_eq!(r.header("revocation-status"), Some("stored"), "{via:?}");
        let set = r
            .header("set-cookie")
            .unwrap_or_else(|| panic!("{via:?}: no Set-Cookie"));
        assert!(set.starts_with("access_token=;"), "{via:?}: {set}");
        assert!(
            set.contains("Path=/;") && set.contains("Max-Age=0"),
            "{via:?}: {set}"
        );

        let r = send("/logout/all", hs256(&claims("cookie-user-2"))).await;
        assert_eq!(r.status, 204, "{via:?}");
        let set = r.header("set-cookie").unwrap_or_default();
        assert!(
            set.contains("Path=/app") && set.contains("Domain=example.test"),
            "{via:?}: {set}"
        );

        // The upstream refused (500): nothing applied, no cookie cleared.
        let r = send("/status/500", hs256(&claims("cookie-user-3"))).await;
        assert_eq!(r.status, 500, "{via:?}");
        assert_eq!(r.header("set-cookie"), None, "{via:?}");
        assert_eq!(r.header("revocation-status"), None, "{via:?}");
    }
    paths.stop().await;
}
