//! Identity-provider signals once their signature verified: the logout
//! form, the logout token's rules, the SET rules and CAEP mapping, and the
//! status-list claim and list decoding. Never a panic; an accepted SET has
//! a jti, exactly one event and no top-level sub or exp.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::auth::status_list::{List, StatusClaim};
use revoke_proxy::intake::signal::Signal;
use revoke_proxy::intake::{logout, ssf};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let _ = logout::token_of_form(data);
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = StatusClaim::read(&claims);
    if let Some(Ok(list)) = claims.get("status_list").map(List::decode) {
        let n = list.len();
        assert!(list.get(n).is_none());
        if n > 0 {
            assert!(list.get(n - 1).is_some());
        }
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("secevent+jwt".into());
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    let signal = Signal {
        issuer: 0,
        header,
        iat,
        exp: None,
        claims: claims.clone(),
    };
    if let Ok(set) = ssf::read(&signal, 2_000_000_000, 30, Some("https://idp")) {
        assert!(!set.jti.is_empty());
        let events = claims.get("events").and_then(Value::as_object);
        assert_eq!(events.map(|e| e.len()), Some(1));
        assert!(!claims.contains_key("sub") && !claims.contains_key("exp"));
    }
    let _ = logout::change(&signal, &["logout+jwt".to_string()]);
});
