//! Token extraction from header fields, cookies and the query: never a
//! panic, and a token found is a syntactically valid bearer token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::auth::extract::extract;
use revoke_proxy::config::TokenSource;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let query = lines.next().and_then(|q| std::str::from_utf8(q).ok());
    let owned: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&l[..colon]).ok()?.to_string();
            Some((name, l[colon + 1..].to_vec()))
        })
        .collect();
    let headers: Vec<httparse::Header<'_>> = owned
        .iter()
        .map(|(n, v)| httparse::Header { name: n, value: v })
        .collect();
    let sources = [
        TokenSource::Header("Authorization".into()),
        TokenSource::Cookie("access_token".into()),
        TokenSource::Query("access_token".into()),
    ];
    if let Ok(Some(found)) = extract(headers.as_slice(), query, &sources) {
        let t = found.token.trim_end_matches('=');
        assert!(!t.is_empty());
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
    }
});
