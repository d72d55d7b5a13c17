//! Differential test of the two request paths: generated requests — methods,
//! targets with path tricks, header sets with duplicates and spoofs, tokens
//! valid, revoked, malformed or doubled, bodies under every framing — are
//! sent over the HTTP/1.1 fast path to one proxy and over hyper (a chunked
//! body, HTTP/1.0 or h2c) to a twin with the same configuration. Both must
//! answer the same status, and the upstream must see the same request.

mod support;

use std::collections::BTreeMap;
use support::paths::{send_plain, Via};
use support::*;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const CONFIG_EXTRA: &str = "  token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: access_token\n";

/// What the upstream saw, framing and per-connection fields aside.
fn seen(r: &Received) -> (String, String, BTreeMap<String, Vec<Vec<u8>>>, bytes::Bytes) {
    let mut h: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (k, v) in &r.headers {
        if ["content-length", "transfer-encoding"].contains(&k.as_str()) {
            continue;
        }
        // A request id the proxy made up differs per request; its shape
        // (one value of 32 hex digits) must not.
        let generated =
            k == "x-request-id" && v.len() == 32 && v.as_bytes().iter().all(u8::is_ascii_hexdigit);
        let value = if generated {
            b"<generated>".to_vec()
        } else {
            v.as_bytes().to_vec()
        };
        h.entry(k.to_string()).or_default().push(value);
    }
    (r.method.clone(), r.target.clone(), h, r.body.clone())
}

#[tokio::test]
async fn generated_requests_fare_alike_on_both_paths() {
    let yaml = BASIC.replace("  leeway: 5s\n", &format!("  leeway: 5s\n{CONFIG_EXTRA}"));
    let up_a = TestUpstream::start().await;
    let up_b = TestUpstream::start().await;
    let a = TestProxy::start(&yaml, &up_a.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up_b.url(), &[]).await;
    let revoked = hs256(&claims("mallory"));
    for p in [&a, &b] {
        let v = p.app.verifier.verify_uncached(&revoked, now()).unwrap();
        p.app
            .revocations
            .revoke_token(v.subject, v.token_id, v.exp, None)
            .await;
    }
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];
    let paths = [
        "/api/items",
        "/login",
        "/LOGIN",
        "/static/app.js",
        "/static/../api",
        "/a/./b//c",
        "/logout",
        "/LogOut;jsessionid=1/",
        "/%2e%2e/etc",
        "/a%2fb",
        "/x%41y",
        "/account/password",
        "/logout/all",
        "/status/404",
        "/status/302",
        "/",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut compared = 0;
    for i in 0..160 {
        let good = hs256(&claims(&format!("user{i}")));
        let token = match rng.next() % 6 {
            0 => None,
            1 => Some(revoked.clone()),
            2 => Some("not.a.token".to_string()),
            _ => Some(good.clone()),
        };
        let method = *rng.pick(&methods);
        let mut target = rng.pick(&paths).to_string();
        let mut h: Vec<(String, Vec<u8>)> = Vec::new();
        match (token.as_ref(), rng.next() % 4) {
            (Some(t), 0) => target.push_str(&format!("?access_token={t}")),
            (Some(t), 1) => h.push((
                "cookie".into(),
                format!("a=1; access_token={t}").into_bytes(),
            )),
            (Some(t), _) => h.push(("authorization".into(), format!("Bearer {t}").into_bytes())),
            (None, _) => {}
        }
        if rng.chance(15) {
            // A second, different token somewhere.
            h.push((
                "cookie".into(),
                format!("access_token={revoked}").into_bytes(),
            ));
        }
        let spoofs: [(&str, &[u8]); 13] = [
            ("x-request-id", b"trace-1"),
            ("x-request-id", b"bad\"id"),
            ("X_Request_Id", b"evil"),
            ("x-auth-subject", b"admin"),
            ("X_Auth_Subject", b"admin"),
            ("x-original-url", b"/admin"),
            ("x-http-method-override", b"DELETE"),
            ("x-forwarded-for", b"1.2.3.4"),
            ("x-forwarded-host", b"evil"),
            ("forwarded", b"for=1.2.3.4"),
            ("accept", b"*/*"),
            ("accept", b"text/html"),
            ("revocation-status", b"stored"),
        ];
        for (k, v) in spoofs {
            if rng.chance(30) {
                h.push((k.into(), v.to_vec()));
            }
        }
        let connection_trick = rng.chance(20);
        if connection_trick {
            h.push(("connection".into(), b"x-auth-subject, accept".to_vec()));
        }
        let body: &[u8] = if method == "GET" || method == "HEAD" || rng.chance(40) {
            b""
        } else {
            b"payload=1"
        };
        // Which hyper path: chunked always works; h2c cannot carry
        // Connection; HTTP/1.0 only without a body.
        let other = match rng.next() % 3 {
            0 if !connection_trick => Via::H2c,
            1 if body.is_empty() && method != "HEAD" => Via::Http10,
            _ => Via::Chunked,
        };
        let hdrs: Vec<(&str, &[u8])> = h.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let (na, nb) = (up_a.count(), up_b.count());
        let ra = send_plain(a.addr, Via::Fast, method, &target, &hdrs, body).await;
        let rb = send_plain(b.addr, other, method, &target, &hdrs, body).await;
        let case = format!("#{i} {method} {target} via {other:?} {hdrs:?}");
        assert_eq!(ra.status, rb.status, "{case}: {} / {}", ra.body, rb.body);
        let answer = |r: &Resp| {
            let mut h: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
            for (k, v) in &r.headers {
                if !["content-length", "transfer-encoding", "date", "connection"]
                    .contains(&k.as_str())
                {
                    h.entry(k.to_string())
                        .or_default()
                        .push(v.as_bytes().to_vec());
                }
            }
            (h, r.body.clone())
        };
        if method != "HEAD" {
            assert_eq!(
                answer(&ra),
                answer(&rb),
                "{case}: the client's answers differ"
            );
        }
        assert_eq!(
            up_a.count() - na,
            up_b.count() - nb,
            "{case}: forwarded on one path only"
        );
        if up_a.count() > na {
            let (sa, sb) = (seen(&up_a.last()), seen(&up_b.last()));
            assert_eq!(sa, sb, "{case}");
            compared += 1;
        }
        assert!(ra.status != 0, "{case}: no answer");
    }
    assert!(
        compared > 40,
        "too few forwarded requests compared: {compared}"
    );
    a.stop().await;
    b.stop().await;
}
