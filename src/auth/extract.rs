//! Finding the bearer token: `Authorization: Bearer`, another header, a
//! cookie or (only when configured) a query parameter, tried in order.

use super::AuthError;
use crate::config::TokenSource;
use http::header::{HeaderMap, AUTHORIZATION, COOKIE};
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// Longest token accepted (8 KiB); longer is a malformed request.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Request header fields as extraction reads them: every value of one name
/// (matched case-insensitively), in order. Implemented for hyper's
/// [`HeaderMap`] and for the raw fields of the HTTP/1.1 fast path.
pub trait Fields {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]>;
}

impl Fields for HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

impl Fields for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// A field value as text, under the rule of `HeaderValue::to_str`: visible
/// ASCII, spaces and tabs only.
pub fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Returns the first token found, `Ok(None)` when there is none.
pub fn extract<'a, F: Fields + ?Sized>(
    headers: &'a F,
    query: Option<&'a str>,
    sources: &[TokenSource],
) -> Result<Option<Cow<'a, str>>, AuthError> {
    for source in sources {
        let found = match source {
            TokenSource::Header(name) => from_header(headers, name)?.map(Cow::Borrowed),
            TokenSource::Cookie(name) => from_cookie(headers, name)?.map(Cow::Borrowed),
            TokenSource::Query(name) => from_query(query, name)?,
        };
        if let Some(token) = found {
            check_syntax(&token)?;
            return Ok(Some(token));
        }
    }
    Ok(None)
}

fn from_header<'a, F: Fields + ?Sized>(
    headers: &'a F,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.values(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one credentials header"));
    }
    let text =
        visible_ascii(value).ok_or(AuthError::Malformed("credentials header is not ASCII"))?;
    let is_authorization = name.eq_ignore_ascii_case(AUTHORIZATION.as_str());
    let (scheme, rest) = match text.split_once(' ') {
        Some((s, r)) => (s, Some(r)),
        None => (text, None),
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.unwrap_or("").trim_start_matches(' ');
        if token.is_empty() {
            return Err(AuthError::Malformed("Bearer scheme without a token"));
        }
        return Ok(Some(token.trim_end_matches(' ')));
    }
    if is_authorization {
        // Another scheme (Basic, Digest…) carries no bearer token (RFC 6750 §3).
        return Ok(None);
    }
    Ok(Some(text.trim()).filter(|t| !t.is_empty()))
}

fn from_cookie<'a, F: Fields + ?Sized>(
    headers: &'a F,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    for value in headers.values(COOKIE.as_str()) {
        let Some(text) = visible_ascii(value) else {
            continue;
        };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .unwrap_or(v);
                    return Ok(Some(v).filter(|t| !t.is_empty()));
                }
            }
        }
    }
    Ok(None)
}

fn from_query<'a>(query: Option<&'a str>, name: &str) -> Result<Option<Cow<'a, str>>, AuthError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode_str(k).decode_utf8().ok().as_deref() == Some(name) {
            let v = percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| AuthError::Malformed("query token is not UTF-8"))?;
            return Ok(Some(v).filter(|t| !t.is_empty()));
        }
    }
    Ok(None)
}

/// Bytes of an RFC 6750 `b64token` body: `[A-Za-z0-9-._~+/]`.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// RFC 6750 `b64token`: `[A-Za-z0-9-._~+/]+ "="*`, and not absurdly long.
fn check_syntax(token: &str) -> Result<(), AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token too long"));
    }
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)]);
    if ok {
        Ok(())
    } else {
        Err(AuthError::Malformed(
            "token contains characters not allowed in a bearer token",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn auth() -> Vec<TokenSource> {
        vec![TokenSource::Header("Authorization".into())]
    }

    #[test]
    fn bearer_header_is_read_case_insensitively() {
        let h = headers(&[("authorization", "bearer a.b.c")]);
        assert_eq!(
            extract(&h, None, &auth()).unwrap().as_deref(),
            Some("a.b.c")
        );
    }

    #[test]
    fn other_schemes_are_no_token_and_junk_is_malformed() {
        let h = headers(&[("authorization", "Basic dXNlcjpw")]);
        assert_eq!(extract(&h, None, &auth()), Ok(None));
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b"] {
            let h = headers(&[("authorization", bad)]);
            assert!(
                matches!(extract(&h, None, &auth()), Err(AuthError::Malformed(_))),
                "{bad}"
            );
        }
        let two = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(
            extract(&two, None, &auth()),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn cookie_and_query_follow_the_configured_order() {
        let sources = vec![
            TokenSource::Header("Authorization".into()),
            TokenSource::Cookie("access_token".into()),
            TokenSource::Query("access_token".into()),
        ];
        let h = headers(&[("cookie", "a=1; access_token=x.y.z; b=2")]);
        assert_eq!(
            extract(&h, Some("access_token=q.q.q"), &sources)
                .unwrap()
                .as_deref(),
            Some("x.y.z")
        );
        let none = HeaderMap::new();
        assert_eq!(
            extract(&none, Some("a=1&access_token=q.q%2Eq"), &sources)
                .unwrap()
                .as_deref(),
            Some("q.q.q")
        );
        assert_eq!(
            extract(&none, Some("access_token=q.q.q"), &auth()),
            Ok(None)
        );
    }

    #[test]
    fn oversize_tokens_are_malformed() {
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let h = headers(&[("authorization", &big)]);
        assert_eq!(
            extract(&h, None, &auth()),
            Err(AuthError::Malformed("token too long"))
        );
    }
}
