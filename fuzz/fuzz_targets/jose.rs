//! JOSE header and claims parsing and the claim checks behind a valid HMAC
//! signature: arbitrary header and claims JSON are signed, then verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::auth::Verifier;
use revoke_proxy::config::Settings;
use std::sync::OnceLock;

const SECRET: &str = "fuzz-secret-0123456789-0123456789-abcdef";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let yaml = format!("upstream: http://127.0.0.1:1\njwt:\n  secret: {SECRET}\n");
        let s = Settings::parse(&yaml, std::path::Path::new("."), &|_| None).unwrap();
        Verifier::new(&s.jwt, &s.revocation, &s.forward).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let v = verifier();
    // As a token the proxy was sent.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = revoke_proxy::auth::jose::check(text);
        let _ = v.verify_uncached(text, 1_700_000_000);
    }
    // As header and claims JSON, correctly signed.
    let (header, claims) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{\"alg\":\"HS256\"}"[..], data),
    };
    use base64::Engine;
    use jsonwebtoken::{crypto, Algorithm, EncodingKey};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!("{}.{}", b64(header), b64(claims));
    let Ok(sig) = crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    ) else {
        return;
    };
    let token = format!("{input}.{sig}");
    if let Ok(ok) = v.verify_uncached(&token, 1_700_000_000) {
        // A verified token has one subject and one token id, as JSON says.
        let parsed: serde_json::Value = serde_json::from_slice(claims).expect("claims were JSON");
        assert!(parsed.get("sub").is_some() && parsed.get("jti").is_some());
        let _ = ok;
    }
});
