//! Test support shared by the integration tests: a recording upstream, the
//! proxy on free loopback ports, a plain HTTP client, and token minting.
#![allow(dead_code)]

pub mod conformance;
pub mod paths;
pub mod peers;
pub mod relay;
pub mod servers;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use revoke_proxy::app::App;
use revoke_proxy::config::Settings;
use revoke_proxy::revocation::Clock;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn now() -> i64 {
    revoke_proxy::revocation::clock::unix_now()
}

/// Waits (bounded: 15 s) until `cond` holds; panics naming `what` otherwise.
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded: 10 s) until the async `probe` holds; panics naming `what`.
pub async fn wait_for<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A recording upstream and a proxy in front of it with [`BASIC`].
pub async fn basic() -> (TestUpstream, TestProxy) {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(BASIC, &up.url(), &[]).await;
    (up, proxy)
}

// ---------------------------------------------------------------- upstream

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, exactly as sent upstream.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real HTTP upstream on 127.0.0.1:0 that records every request.
/// `/status/NNN` answers NNN; `/slow/MS` waits MS milliseconds; anything else 200.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                let svc = service_fn(move |req| upstream_answer(req, rec.clone()));
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                tokio::spawn(conn);
            }
        });
        TestUpstream { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last(&self) -> Received {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream received nothing")
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn upstream_answer(
    req: Request<Incoming>,
    rec: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    rec.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let mut status = StatusCode::OK;
    if let Some(code) = target.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap_or(StatusCode::OK);
    }
    if let Some(ms) = target.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "upstream saw {} bytes",
        body.len()
    ))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("x-upstream", "1".parse().unwrap());
    Ok(resp)
}

// ---------------------------------------------------------------- proxy

pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub app: Arc<revoke_proxy::proxy::Proxy>,
    pub clock: Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Variables every test config can use: `${UPSTREAM}`, `${SECRET}`, `${KEYS}`.
pub fn test_env(upstream: &str, extra: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let mut vars: Vec<(String, String)> = vec![
        ("UPSTREAM".into(), upstream.to_string()),
        ("SECRET".into(), SECRET.to_string()),
        ("KEYS".into(), fixtures().join("keys").display().to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

pub fn parse_settings(yaml: &str, upstream: &str, extra: &[(&str, String)]) -> Settings {
    let env = test_env(upstream, extra);
    match Settings::parse(yaml, &fixtures(), &env) {
        Ok(s) => s,
        Err(e) => panic!("test config invalid: {:#?}", e.0),
    }
}

impl TestProxy {
    /// Starts the proxy in this process with `yaml` (listen is forced to 127.0.0.1:0).
    pub async fn start(yaml: &str, upstream: &str, extra: &[(&str, String)]) -> TestProxy {
        TestProxy::start_on(0, yaml, upstream, extra).await
    }

    /// Starts the proxy listening on 127.0.0.1:`port` (0: any free port),
    /// for a peer that must know the proxy's address before it starts.
    pub async fn start_on(
        port: u16,
        yaml: &str,
        upstream: &str,
        extra: &[(&str, String)],
    ) -> TestProxy {
        let mut settings = parse_settings(yaml, upstream, extra);
        settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Some(a) = settings.admin.as_mut() {
            a.listen = "127.0.0.1:0".parse().unwrap();
        }
        let clock = Clock::system();
        let app = App::build(settings, clock.clone())
            .await
            .expect("proxy builds");
        let (listener, admin) = app.bind().await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.as_ref().map(|a| a.local_addr().unwrap());
        let proxy = app.proxy.clone();
        let revocations = proxy.revocations.clone();
        wait_until("revocation store synced", || revocations.available()).await;
        let keys = proxy.clone();
        wait_until("signing keys loaded", || keys.verifier.keys_ready()).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run(listener, admin, async move {
                let _ = rx.await;
            })
            .await;
        });
        TestProxy {
            addr,
            admin: admin_addr,
            app: proxy,
            clock,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the proxy and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

// ---------------------------------------------------------------- client

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends one request over HTTP/1.1 to `addr` with `target` as the raw path.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{target}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client().request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(addr: SocketAddr, target: &str, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    send(addr, "GET", target, &headers, "").await
}

pub async fn post(addr: SocketAddr, target: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    send(addr, "POST", target, &[("authorization", &auth)], "").await
}

/// Writes raw bytes on a fresh connection and returns the response head's status.
pub async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).to_string();
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- tokens

/// Standard claims: `sub`, a unique `jti`, issued now, valid for ten minutes.
pub fn claims(sub: &str) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({ "sub": sub, "jti": format!("jti-{n}-{}", now()), "iat": now(), "exp": now() + 600 })
}

/// [`claims`] issued two seconds ago: older than a purge made now, with no
/// waiting for the clock's next second.
pub fn issued_before(sub: &str) -> Value {
    let mut c = claims(sub);
    c["iat"] = json!(now() - 2);
    c
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

pub fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

/// The private key in `tests/fixtures/keys/<name>.key`, for `alg`.
pub fn private_key(alg: Algorithm, name: &str) -> EncodingKey {
    let pem = std::fs::read(fixtures().join("keys").join(format!("{name}.key"))).unwrap();
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_secret(&pem),
    }
}

/// A token with an arbitrary header and payload, signed with HMAC-SHA256 over
/// `secret` — for tokens the library would refuse to produce.
pub fn forge(header: &Value, payload: &Value, secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(payload.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{sig}")
}

/// A plain proxy config over `${UPSTREAM}` with HS256 and the usual routes.
pub const BASIC: &str = r#"
listen: 127.0.0.1:0
upstream: ${UPSTREAM}
jwt:
  algorithms: [HS256]
  secret: ${SECRET}
  leeway: 5s
routes:
  - path: /login
    auth: none
  - path: /static/*
    auth: none
  - path: /logout
    methods: [POST]
    action: revoke
  - path: /account/password
    methods: [POST, PUT]
    action: purge
  - path: /logout/all
    methods: [POST]
    action: purge
    respond: 204
forward:
  claims_to_headers:
    sub: X-Auth-Subject
admin:
  listen: 127.0.0.1:0
log:
  level: warn
"#;
