//! `revoke-proxy demo`: the proxy on the memory store in front of a built-in
//! echo upstream, with an admin listener, fresh tokens, and the curl and CLI
//! lines that show a logout, a purge and an admin revocation turning 200
//! into 401.

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

/// Where the demo listens and what it signs with.
pub struct DemoSetup {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
    pub secret: String,
    pub admin_token: String,
}

/// Settings for the demo, from the embedded template.
pub fn settings(d: &DemoSetup) -> Result<Settings, crate::config::ConfigError> {
    let env = |name: &str| match name {
        "DEMO_LISTEN" => Some(d.listen.to_string()),
        "DEMO_ADMIN" => Some(d.admin.to_string()),
        "DEMO_UPSTREAM" => Some(d.upstream.to_string()),
        "DEMO_SECRET" => Some(d.secret.clone()),
        "DEMO_ADMIN_TOKEN" => Some(d.admin_token.clone()),
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
    let (setup, upstream) = match bind(listen).await {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("revoke-proxy demo: {e}");
            return crate::exit::UNAVAILABLE;
        }
    };
    tokio::spawn(echo_upstream(upstream));
    let settings = match settings(&setup) {
        Ok(s) => s,
        Err(e) => {
            for p in &e.0 {
                eprintln!("revoke-proxy demo: {p}");
            }
            return crate::exit::USAGE;
        }
    };
    crate::logging::init(&settings);
    let Some(banner) = banner(&setup) else {
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

/// Picks the addresses (a free port now for a 0 port, so the printed lines
/// are right) and starts the echo upstream's listener.
async fn bind(listen: SocketAddr) -> Result<(DemoSetup, TcpListener), String> {
    let pick = |addr: SocketAddr| -> Result<SocketAddr, String> {
        if addr.port() != 0 {
            return Ok(addr);
        }
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let listen = pick(listen)?;
    let admin = pick(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the echo upstream: {e}"))?;
    let upstream_addr = upstream
        .local_addr()
        .map_err(|e| format!("cannot start the echo upstream: {e}"))?;
    let setup = DemoSetup {
        listen,
        admin,
        upstream: upstream_addr,
        secret: random_hex(32),
        admin_token: random_hex(16),
    };
    Ok((setup, upstream))
}

/// Three demo tokens and the curl and CLI lines that use them.
fn banner(d: &DemoSetup) -> Option<String> {
    // Issued a second ago: a purge typed at once (same second) still
    // catches them (purges cut off tokens issued before their second).
    let now = crate::revocation::clock::unix_now() - 1;
    let alice = mint(&d.secret, "alice", now).ok()?;
    let alice2 = mint(&d.secret, "alice", now).ok()?;
    let bob = mint(&d.secret, "bob", now).ok()?;
    let base = format!("http://{}", d.listen);
    let admin = format!("http://{}", d.admin);
    let upstream = d.upstream;
    let admin_token = &d.admin_token;
    Some(format!(
        "revoke-proxy demo: proxy on {base}, admin API on {admin}, echo upstream on {upstream}, memory store.\n\n\
         TOKEN={alice}\n\
         TOKEN2={alice2}\n\
         BOB={bob}\n\
         export REVOKE_PROXY_ADMIN_TOKEN={admin_token}\n\n\
         curl -i -H \"Authorization: Bearer $TOKEN\" {base}/hello             # 200, upstream sees X-Auth-Subject: alice\n\
         curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {base}/logout    # 200, Revocation-Status: stored\n\
         curl -i -H \"Authorization: Bearer $TOKEN\" {base}/hello             # 401 token revoked\n\
         curl -i -H \"Authorization: Bearer $TOKEN2\" {base}/hello            # 200: alice's other token still works\n\
         curl -i -X POST -H \"Authorization: Bearer $TOKEN2\" {base}/logout/all  # 204: purge every token of alice\n\
         curl -i -H \"Authorization: Bearer $TOKEN2\" {base}/hello            # 401: purged with the rest of alice's tokens\n\
         curl -i -H \"Authorization: Bearer $BOB\" {base}/hello               # 200: bob is untouched\n\
         curl -i {base}/hello                                              # 401 no token\n\n\
         # The admin API and its CLI (the token is exported above):\n\
         revoke-proxy purge --admin {admin} --sub bob                   # purge bob from the outside\n\
         curl -i -H \"Authorization: Bearer $BOB\" {base}/hello               # 401 token revoked\n\
         echo \"$BOB\" | revoke-proxy status --admin {admin} --jwt-file -    # {{\"revoked\":true,\"reason\":\"subject\"}}\n\
         curl -s {admin}/metrics | grep revocations_total                 # revocations by kind\n"
    ))
}
