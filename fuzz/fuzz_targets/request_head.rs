//! The fast path's request head: parsing, classification, the header policy
//! and the upstream head written from it. What is written must parse back
//! as exactly one request head, with no hop-by-hop or spoofable field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::config::{AuthorizationForward, Cidr, ForwardSettings, HostMode};
use revoke_proxy::proxy::hygiene::Policy;
use revoke_proxy::routes::normalize;
use revoke_proxy::server::h1::head;

fuzz_target!(|data: &[u8]| {
    let policy = Policy::new(&ForwardSettings {
        claims_to_headers: vec![("sub".into(), "X-Auth-Subject".into())],
        authorization: AuthorizationForward::Strip,
        host: HostMode::Preserve,
        trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        request_id: "x-request-id".into(),
    });
    let mut fields = head::fields();
    let mut req = httparse::Request::new(&mut []);
    let head::Check::Complete(plain) = head::check(&mut req, data, &mut fields) else {
        return;
    };
    assert!(plain.head_len <= data.len());
    let headers: &[httparse::Header<'_>] = req.headers;
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Ok(normalized) = normalize(path) else {
        return;
    };
    let peer = if data.len() % 2 == 0 {
        "10.1.2.3"
    } else {
        "192.0.2.1"
    };
    let rid = policy.request_id(headers);
    let Ok(mut view) = policy.view(headers, None, true, peer.parse().unwrap(), false, rid) else {
        return;
    };
    policy.verified(&mut view);
    let claims = [(
        http::HeaderName::from_static("x-auth-subject"),
        http::HeaderValue::from_static("alice"),
    )];
    let o = head::Outgoing {
        method: req.method.unwrap_or("GET"),
        base_path: "",
        path: &normalized.strict,
        query,
        headers,
        policy: &policy,
        view: &view,
        claims: &claims,
        authority: "127.0.0.1:3000",
    };
    let mut out = Vec::new();
    if head::write_request(&mut out, &o).is_err() {
        return;
    }
    let mut back = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut back);
    match parsed.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "one head, nothing after"),
        other => panic!("upstream head does not parse: {other:?}"),
    }
    let mut subjects = 0;
    let mut ids = 0;
    for h in parsed.headers.iter() {
        let n = h.name.to_ascii_lowercase().replace('_', "-");
        assert!(
            ![
                "connection",
                "upgrade",
                "te",
                "keep-alive",
                "x-original-url",
                "authorization"
            ]
            .contains(&n.as_str()),
            "{n} forwarded"
        );
        if n == "x-auth-subject" {
            subjects += 1;
            assert_eq!(h.value, b"alice");
        }
        if n == "x-request-id" {
            ids += 1;
            assert!(
                !h.value.is_empty() && h.value.len() <= 128,
                "request id {:?}",
                h.value
            );
        }
    }
    assert_eq!(subjects, 1);
    assert_eq!(ids, 1, "exactly one request id reaches the upstream");
});
