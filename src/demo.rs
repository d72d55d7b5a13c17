//! `revoke-proxy demo`: the proxy on the memory store in front of a built-in
//! echo upstream, with a fresh token and the curl lines that show a logout
//! turning 200 into 401.

use crate::config::Settings;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The demo's configuration template (`config/demo.yaml`).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

/// Settings for the demo, from the embedded template.
pub fn settings(
    listen: SocketAddr,
    upstream: SocketAddr,
    secret: &str,
) -> Result<Settings, crate::config::ConfigError> {
    let env = |name: &str| match name {
        "DEMO_LISTEN" => Some(listen.to_string()),
        "DEMO_UPSTREAM" => Some(upstream.to_string()),
        "DEMO_SECRET" => Some(secret.to_string()),
        _ => None,
    };
    Settings::parse(DEMO_CONFIG, std::path::Path::new("."), &env)
}

/// An upstream that answers every request with what it received, as JSON.
pub async fn echo_upstream(listener: TcpListener) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let conn = builder
            .serve_connection(TokioIo::new(stream), service_fn(echo))
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let answer = json!({
        "upstream": "echo",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "x-auth-subject": header("x-auth-subject"),
        "body_bytes": body.len(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{answer}\n"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A random hex string from the OS's generator.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if filled.is_err() {
        // No /dev/urandom: fall back on the std hasher's random keys.
        use std::hash::{BuildHasher, RandomState};
        for (i, b) in buf.iter_mut().enumerate() {
            *b = RandomState::new().hash_one(i) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs an HS256 token for `sub` valid for an hour.
pub fn mint(secret: &str, sub: &str, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = json!({ "sub": sub, "jti": random_hex(8), "iat": now, "exp": now + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Runs the demo until Ctrl-C; returns the exit code.
pub async fn run(listen: SocketAddr) -> i32 {
    let (listen, upstream) = match bind(listen).await {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("revoke-proxy demo: {e}");
            return crate::exit::UNAVAILABLE;
        }
    };
    let upstream_addr = match upstream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("revoke-proxy demo: {e}");
            return crate::exit::UNAVAILABLE;
        }
    };
    tokio::spawn(echo_upstream(upstream));
    let secret = random_hex(32);
    let settings = match settings(listen, upstream_addr, &secret) {
        Ok(s) => s,
        Err(e) => {
            for p in &e.0 {
                eprintln!("revoke-proxy demo: {p}");
            }
            return crate::exit::USAGE;
        }
    };
    crate::logging::init(&settings);
    let Some(banner) = banner(&secret, listen, upstream_addr) else {
        eprintln!("revoke-proxy demo: cannot sign demo tokens");
        return crate::exit::SOFTWARE;
    };
    {
        use std::io::Write;
        // Not println!: a closed stdout must not stop the demo.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{banner}").and_then(|()| out.flush());
    }
    crate::app::serve(settings, None).await
}

/// The proxy's address (a free port picked now when 0, so the printed curl
/// lines are right) and the echo upstream's listener.
async fn bind(mut listen: SocketAddr) -> Result<(SocketAddr, TcpListener), String> {
    if listen.port() == 0 {
        listen = std::net::TcpListener::bind(listen)
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    }
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the echo upstream: {e}"))?;
    Ok((listen, upstream))
}

/// Three demo tokens and the curl lines that use them.
fn banner(secret: &str, listen: SocketAddr, upstream_addr: SocketAddr) -> Option<String> {
    let now = crate::revocation::clock::unix_now();
    let alice = mint(secret, "alice", now).ok()?;
    let alice2 = mint(secret, "alice", now).ok()?;
    let bob = mint(secret, "bob", now).ok()?;
    let base = format!("http://{listen}");
    Some(format!(
        "revoke-proxy demo: proxy on {base}, echo upstream on {upstream_addr}, memory store.\n\n\
         TOKEN={alice}\n\
         TOKEN2={alice2}\n\
         BOB={bob}\n\n\
         curl -i -H \"Authorization: Bearer $TOKEN\" {base}/hello             # 200, upstream sees X-Auth-Subject: alice\n\
         curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {base}/logout    # 200, Revocation-Status: stored\n\
         curl -i -H \"Authorization: Bearer $TOKEN\" {base}/hello             # 401 token revoked\n\
         curl -i -H \"Authorization: Bearer $TOKEN2\" {base}/hello            # 200: alice's other token still works\n\
         curl -i -X POST -H \"Authorization: Bearer $TOKEN2\" {base}/logout/all  # 204: purge every token of alice\n\
         curl -i -H \"Authorization: Bearer $BOB\" {base}/hello               # 200: bob is untouched\n\
         curl -i {base}/hello                                              # 401 no token\n"
    ))
}
