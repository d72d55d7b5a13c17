//! The fast path's upstream response head: framing and the client's copy.
//! The copy must parse back as one response head with at most one framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::config::{AuthorizationForward, ForwardSettings, HostMode};
use revoke_proxy::proxy::hygiene::Policy;
use revoke_proxy::server::h1::head::{self, Reply};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let policy = Policy::new(&ForwardSettings {
        claims_to_headers: Vec::new(),
        authorization: AuthorizationForward::Keep,
        host: HostMode::Preserve,
        trusted_proxies: Vec::new(),
        request_id: String::new(),
    });
    let mut out = Vec::new();
    let Ok(Reply::Final(f)) = head::read_response(data, flags & 1 == 1, &policy, &mut out) else {
        return;
    };
    assert!(f.head_len <= data.len());
    out.extend_from_slice(b"\r\n");
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut fields);
    assert!(matches!(parsed.parse(&out), Ok(httparse::Status::Complete(n)) if n == out.len()));
    let framings = parsed
        .headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
        })
        .map(|h| h.name.to_ascii_lowercase())
        .collect::<std::collections::HashSet<_>>();
    assert!(framings.len() <= 1, "both framings reach the client");
    assert!(!parsed
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("revocation-status")));
});
