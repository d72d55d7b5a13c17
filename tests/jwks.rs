//! `jwt.jwks_url` against a local JWKS server whose keys rotate: not ready
//! until loaded, refresh on an unknown `kid` (rate-limited), the last good
//! set while the issuer is down, HMAC keys from a JWKS never used.

mod support;

use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;

struct Issuer {
    addr: SocketAddr,
    /// The JWKS served; `None` answers 503.
    doc: Arc<Mutex<Option<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doc: Arc<Mutex<Option<Value>>> = Arc::new(Mutex::new(None));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (doc.clone(), fetches.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (d, f) = (d.clone(), f.clone());
            let svc = service_fn(move |_req| {
                f.fetch_add(1, Ordering::SeqCst);
                let current = d.lock().unwrap().clone();
                async move {
                    let mut resp = Response::new(Full::new(Bytes::from(
                        current.as_ref().map(Value::to_string).unwrap_or_default(),
                    )));
                    if current.is_none() {
                        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned(),
            );
        }
    });
    Issuer { addr, doc, fetches }
}

/// An Ed25519 signing key and its public JWK under `kid`.
fn ed_key(kid: &str) -> (EncodingKey, Value) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let enc = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.public_key_raw());
    (
        enc,
        json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": x }),
    )
}

fn signed(key: &EncodingKey, kid: &str, sub: &str) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, &claims(sub), key).unwrap()
}

#[tokio::test]
async fn keys_come_from_a_rotating_jwks() {
    let iss = issuer().await;
    let (k1, jwk1) = ed_key("k1");
    let (k2, jwk2) = ed_key("k2");
    let (k3, _) = ed_key("k3");
    // The JWKS also publishes an HMAC key: it must never verify anything.
    let oct = json!({ "kty": "oct", "kid": "shared", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"jwks-hmac-key") });
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: ${{UPSTREAM}}\njwt:\n  algorithms: [EdDSA, HS256]\n  secret: ${{SECRET}}\n  jwks_url: http://{}/.well-known/jwks.json\nadmin:\n  listen: 127.0.0.1:0\n",
        iss.addr
    );
    let up = TestUpstream::start().await;

    // Issuer down at start: the proxy waits (not ready), retrying.
    let starting = {
        let (yaml, url) = (yaml.clone(), up.url());
        tokio::spawn(async move { TestProxy::start(&yaml, &url, &[]).await })
    };
    let fetches = iss.fetches.clone();
    wait_until("first fetch attempts", || {
        fetches.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(
        !starting.is_finished(),
        "not ready before the JWKS is loaded"
    );
    *iss.doc.lock().unwrap() = Some(json!({ "keys": [jwk1, oct] }));
    let proxy = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .expect("ready once loaded")
        .unwrap();
    assert_eq!(get(proxy.admin.unwrap(), "/readyz", None).await.status, 200);
    assert_eq!(
        get(proxy.addr, "/api", Some(&signed(&k1, "k1", "alice")))
            .await
            .status,
        200
    );

    // An HS256 token naming the JWKS's HMAC key: the JWKS key is never used.
    let forged = forge(
        &json!({ "alg": "HS256", "kid": "shared", "typ": "JWT" }),
        &claims("mallory"),
        b"jwks-hmac-key",
    );
    assert_eq!(get(proxy.addr, "/api", Some(&forged)).await.status, 401);

    // Rotation: the issuer now publishes k2 only; a k2 token triggers a refresh.
    tokio::time::sleep(revoke_proxy::auth::jwks::UNKNOWN_KID_MIN_INTERVAL).await;
    *iss.doc.lock().unwrap() = Some(json!({ "keys": [jwk2] }));
    assert_eq!(
        get(proxy.addr, "/api", Some(&signed(&k2, "k2", "bob")))
            .await
            .status,
        200
    );
    let r = get(proxy.addr, "/api", Some(&signed(&k1, "k1", "alice"))).await;
    assert_eq!(r.status, 401, "retired key");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("unknown signing key"));

    // Issuer down: the last good set keeps serving; unknown kids are refused
    // without hammering the issuer.
    *iss.doc.lock().unwrap() = None;
    tokio::time::sleep(revoke_proxy::auth::jwks::UNKNOWN_KID_MIN_INTERVAL).await;
    let before = iss.fetches.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(
            get(proxy.addr, "/api", Some(&signed(&k3, "k3", "eve")))
                .await
                .status,
            401
        );
    }
    let extra = iss.fetches.load(Ordering::SeqCst) - before;
    assert!(extra <= 1, "{extra} fetches for 20 unknown-kid requests");
    assert_eq!(
        get(proxy.addr, "/api", Some(&signed(&k2, "k2", "bob")))
            .await
            .status,
        200
    );
    proxy.stop().await;
}
