//! Per-request cost of admission (extract + verify + revocation check), to
//! decide whether the verification cache and the digest-keyed revocation set
//! keep the proxy's own work far below a loopback round trip. Reports cached
//! and uncached tokens, HS256 and RS256, with 1 and 1,000,000 revocations.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use revoke_proxy::app::App;
use revoke_proxy::claims::ClaimValue;
use revoke_proxy::config::Settings;
use revoke_proxy::proxy::Proxy;
use revoke_proxy::revocation::{Clock, Entry};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

const SECRET: &str = "bench-secret-0123456789-0123456789";

fn keys_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

fn proxy(rt: &tokio::runtime::Runtime, alg: &str) -> Arc<Proxy> {
    let key = if alg == "RS256" {
        format!("public_key_file: {}/rsa.pub", keys_dir().display())
    } else {
        format!("secret: {SECRET}")
    };
    let yaml = format!(
        "upstream: http://127.0.0.1:9\njwt:\n  algorithms: [{alg}]\n  {key}\nlog:\n  level: off\n"
    );
    let settings = Settings::parse(&yaml, Path::new("."), &|_| None).expect("bench config");
    rt.block_on(async {
        App::build(settings, Clock::system())
            .await
            .expect("app")
            .proxy
    })
}

fn token(alg: Algorithm, n: u64) -> String {
    let now = revoke_proxy::revocation::clock::unix_now();
    let claims = json!({"sub": format!("user-{n}"), "jti": format!("jti-{n}"), "iat": now, "exp": now + 3600});
    let key = match alg {
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(keys_dir().join("rsa.key")).unwrap()).unwrap()
        }
        _ => EncodingKey::from_secret(SECRET.as_bytes()),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

fn headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn admission(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (name, alg) in [("HS256", Algorithm::HS256), ("RS256", Algorithm::RS256)] {
        let p = proxy(&rt, name);
        let h = headers(&token(alg, 1));
        p.admit_parts(&h, None)
            .now_or_never()
            .expect("ready")
            .expect("valid");
        c.bench_function(&format!("admit/{name}/cached"), |b| {
            b.iter(|| {
                p.admit_parts(&h, None)
                    .now_or_never()
                    .is_some_and(|r| r.is_ok())
            })
        });
        let fresh: Vec<String> = (0..64).map(|i| token(alg, 1000 + i)).collect();
        let mut i = 0usize;
        c.bench_function(&format!("admit/{name}/uncached"), |b| {
            b.iter(|| {
                i = (i + 1) % fresh.len();
                let t = &fresh[i];
                p.verifier
                    .verify_uncached(t, revoke_proxy::revocation::clock::unix_now())
                    .is_ok()
            })
        });
    }

    let p = proxy(&rt, "HS256");
    let h = headers(&token(Algorithm::HS256, 7));
    let until = revoke_proxy::revocation::clock::unix_now() + 3600;
    for (label, count) in [("1", 1u64), ("1000000", 1_000_000)] {
        let have = p.revocations.len() as u64;
        rt.block_on(async {
            for n in have..count {
                p.revocations
                    .record(Entry::Token {
                        subject: ClaimValue::Str(format!("other-{n}").into()),
                        token: ClaimValue::Str(format!("j-{n}").into()),
                        until,
                    })
                    .await;
            }
        });
        c.bench_function(&format!("admit/HS256/cached/revocations={label}"), |b| {
            b.iter(|| {
                p.admit_parts(&h, None)
                    .now_or_never()
                    .is_some_and(|r| r.is_ok())
            })
        });
    }
    let headers_only = headers("x");
    c.bench_function("extract/header", |b| {
        b.iter_batched(
            || headers_only.clone(),
            |h| {
                revoke_proxy::auth::extract(
                    &h,
                    None,
                    &[revoke_proxy::config::TokenSource::Header(
                        "Authorization".into(),
                    )],
                )
                .is_ok()
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("normalize/path", |b| {
        b.iter(|| revoke_proxy::routes::normalize("/api/v1/users/42/orders?x").is_ok())
    });
}

/// The fast path's own per-request work on a typical head: check the request
/// head, write the upstream head, parse the reply head into the client's.
fn fast_path_heads(c: &mut Criterion) {
    use revoke_proxy::server::h1::head;
    let token = token(Algorithm::HS256, 1);
    let request = format!(
        "GET /api/v1/users/42/orders?page=2 HTTP/1.1\r\nHost: app.internal\r\n\
         User-Agent: bench/1.0\r\nAccept: application/json\r\n\
         Authorization: Bearer {token}\r\nX-Request-Id: 0123456789abcdef\r\n\r\n"
    );
    c.bench_function("h1/request-head/check", |b| {
        b.iter(|| {
            let mut fields = head::fields();
            let mut req = httparse::Request::new(&mut []);
            matches!(
                head::check(&mut req, request.as_bytes(), &mut fields),
                head::Check::Complete(_)
            )
        })
    });
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut fields);
    let _ = req.parse(request.as_bytes());
    let headers: &[httparse::Header<'_>] = req.headers;
    let mut out = Vec::with_capacity(1024);
    let policy =
        revoke_proxy::proxy::hygiene::Policy::new(&revoke_proxy::config::ForwardSettings {
            claims_to_headers: vec![("sub".into(), "X-Auth-Subject".into())],
            authorization: revoke_proxy::config::AuthorizationForward::Keep,
            host: revoke_proxy::config::HostMode::Preserve,
            trusted_proxies: Vec::new(),
            request_id: "x-request-id".into(),
        });
    let peer: std::net::IpAddr = "127.0.0.1".parse().expect("address");
    c.bench_function("h1/request-head/write-upstream", |b| {
        b.iter(|| {
            out.clear();
            let rid = policy.request_id(headers);
            let Ok(mut view) = policy.view(headers, None, true, peer, false, rid) else {
                return false;
            };
            policy.verified(&mut view);
            let o = head::Outgoing {
                method: "GET",
                base_path: "",
                path: "/api/v1/users/42/orders",
                query: Some("page=2"),
                headers,
                policy: &policy,
                view: &view,
                claims: &[],
                authority: "127.0.0.1:8081",
            };
            head::write_request(&mut out, &o).is_ok()
        })
    });
    let reply = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 19:00:00 GMT\r\n\
        Content-Type: application/json\r\nContent-Length: 42\r\nConnection: keep-alive\r\n\r\n";
    c.bench_function("h1/response-head/read", |b| {
        b.iter(|| {
            out.clear();
            head::read_response(reply, false, &policy, &mut out).is_ok()
        })
    });
}

criterion_group!(benches, admission, fast_path_heads);
criterion_main!(benches);
