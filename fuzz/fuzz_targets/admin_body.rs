//! Admin API bodies: purge bodies are accepted only whole and valid; form
//! bodies (RFC 7009) always decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::admin::api::{form_pairs, parse_purge, Purge};

fuzz_target!(|data: &[u8]| {
    let _ = form_pairs(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if let Ok((target, lifetime)) = parse_purge(v, "sub") {
        // Accepted bodies name nothing but what purge takes.
        assert!(keys
            .iter()
            .all(|k| ["sub", "all", "lifetime"].contains(&k.as_str())));
        assert!(lifetime.is_none_or(|l| l > 0));
        if target == Purge::All {
            assert!(!keys.contains(&"sub".to_string()));
        }
    }
});
