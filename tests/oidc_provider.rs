//! End to end against a real OpenID Provider: the npm `oidc-provider` (v9,
//! `tests/peers/oidc/idp.mjs`, installed by `scripts/test.sh`) signs a user
//! in twice through its own authorization-code flow, issues RFC 9068 JWT
//! access tokens carrying the session's `sid`, and on an RP-initiated
//! logout sends its own back-channel logout token to the proxy. That one
//! session's tokens turn into 401s; the user's other session keeps working.

mod support;

use serde_json::{json, Value};
use support::peers::{call, NodePeer};
use support::servers::free_port;
use support::*;

const RESOURCE: &str = "http://api.test/";
const LOGOUT_PATH: &str = "/oidc/backchannel-logout";

const CONFIG: &str = r#"
upstream: ${UPSTREAM}
jwt:
  algorithms: [RS256]
  jwks_url: ${IDP}/jwks
  issuer: ${IDP}
  audience: [http://api.test/]
  typ: [at+jwt, application/at+jwt]
intake:
  issuers:
    - issuer: ${IDP}
      jwks_url: ${IDP}/jwks
      audience: [app]
  backchannel_logout:
    path: /oidc/backchannel-logout
"#;

/// The provider: `tests/peers/oidc/idp.mjs` around the npm `oidc-provider`.
fn provider(backchannel_logout_uri: &str) -> NodePeer {
    NodePeer::start(
        "oidc",
        "idp.mjs",
        "oidc-provider",
        &[
            ("BACKCHANNEL_LOGOUT_URI", backchannel_logout_uri.to_string()),
            ("RESOURCE", RESOURCE.to_string()),
        ],
    )
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn a_logout_at_oidc_provider_revokes_that_session_at_the_proxy() {
    let up = TestUpstream::start().await;
    let port = free_port();
    let idp = provider(&format!("http://127.0.0.1:{port}{LOGOUT_PATH}"));
    let issuer = idp.get("issuer");
    let proxy = TestProxy::start_on(port, CONFIG, &up.url(), &[("IDP", issuer.clone())]).await;

    // Two sign-ins of one user: two provider sessions.
    let first = call(&issuer, "/_test/login", &json!({"account": "alice"})).await;
    let second = call(&issuer, "/_test/login", &json!({"account": "alice"})).await;
    let (a, b) = (
        first["access_token"].as_str().expect("access token"),
        second["access_token"].as_str().expect("access token"),
    );
    assert_ne!(payload(a)["sid"], payload(b)["sid"], "two sessions");
    assert_eq!(payload(a)["sid"], first["sid"]);
    assert_eq!(get(proxy.addr, "/api", Some(a)).await.status, 200);
    assert_eq!(get(proxy.addr, "/api", Some(b)).await.status, 200);
    // RFC 9068 profile: the provider's ID token (typ JWT) is no access token.
    let id_token = first["id_token"].as_str().expect("id token");
    assert_eq!(get(proxy.addr, "/api", Some(id_token)).await.status, 401);

    // The user logs out of the first session at the provider; the provider
    // itself posts its logout token to the proxy and must get a 200.
    let out = call(&issuer, "/_test/logout", &json!({"login": first["login"]})).await;
    assert_eq!(out["backchannel"], "success", "{out}");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(get(proxy.addr, "/api", Some(a)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(b)).await.status, 200);
    assert_eq!(
        proxy.app.metrics.signals("backchannel_logout", "applied"),
        1
    );

    // The provider's logout token sent again: 200, nothing new.
    let entries = proxy.app.revocations.len();
    let token = out["logout_token"].as_str().expect("logout token");
    let r = send(
        proxy.addr,
        "POST",
        LOGOUT_PATH,
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("logout_token={token}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(proxy.app.revocations.len(), entries);
    assert_eq!(up.count(), 3, "the three served API calls, nothing else");
    proxy.stop().await;
}
