//! Finding the bearer token: `Authorization: Bearer`, another header, a
//! cookie or (only when configured) a query parameter.
//!
//! One token per request (RFC 6750 §2: a client MUST NOT send it in more
//! than one way). Every configured source is read, not only the first that
//! has something: two different token values anywhere — two sources, two
//! `Cookie` fields, a cookie twice, a query parameter twice or under a name
//! a framework would read as the same (`access%5Ftoken`, `ACCESS_TOKEN`,
//! `access.token`) — are a 400, and so is a source that is present but
//! cannot be read (`Bearer<TAB>…`, bytes a header may not carry). So the
//! token that is verified is the only token the upstream can find.

use super::AuthError;
use crate::config::TokenSource;
use http::header::{HeaderMap, AUTHORIZATION, COOKIE};
use percent_encoding::percent_decode;
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
    // Every byte is looked at (no early exit), which lets the compiler check
    // 32 at a time: a bearer token is read once per request.
    let ok = value.iter().fold(true, |ok, &b| {
        ok & ((b == b'\t') | (b.wrapping_sub(0x20) < 0x5f))
    });
    if ok {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The one token of a request, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub token: Cow<'a, str>,
    /// Index in the configured sources.
    pub source: usize,
}

/// What reading the configured sources gave.
struct Seen<'a> {
    first: Option<Found<'a>>,
    /// A credential that is not a bearer token (`Authorization: Basic …`).
    other_scheme: bool,
}

impl<'a> Seen<'a> {
    /// Records one token value; a second, different one is ambiguous.
    fn add(&mut self, token: Cow<'a, str>, source: usize) -> Result<(), AuthError> {
        check_syntax(&token)?;
        match &self.first {
            None => {
                self.first = Some(Found { token, source });
                Ok(())
            }
            Some(f) if f.token == token => Ok(()),
            Some(_) => Err(AuthError::Malformed("more than one token in the request")),
        }
    }
}

/// The request's one token: `Ok(None)` when there is none, 400 when there
/// are several different ones or a source cannot be read.
pub fn extract<'a, F: Fields + ?Sized>(
    headers: &'a F,
    query: Option<&'a str>,
    sources: &[TokenSource],
) -> Result<Option<Found<'a>>, AuthError> {
    let mut seen = Seen {
        first: None,
        other_scheme: false,
    };
    for (i, source) in sources.iter().enumerate() {
        match source {
            TokenSource::Header(name) => from_header(headers, name, i, &mut seen)?,
            TokenSource::Cookie(name) => from_cookie(headers, name, i, &mut seen)?,
            TokenSource::Query(name) => from_query(query, name, i, &mut seen)?,
        }
    }
    if seen.other_scheme && seen.first.is_some() {
        // Two credentials: which one the app believes is anyone's guess.
        return Err(AuthError::Malformed(
            "a bearer token and another credential in one request",
        ));
    }
    Ok(seen.first)
}

fn from_header<'a, F: Fields + ?Sized>(
    headers: &'a F,
    name: &str,
    index: usize,
    seen: &mut Seen<'a>,
) -> Result<(), AuthError> {
    let mut values = headers.values(name);
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("more than one credentials header"));
    }
    let text =
        visible_ascii(value).ok_or(AuthError::Malformed("credentials header is not ASCII"))?;
    let text = text.trim_matches([' ', '\t']);
    let is_authorization = name.eq_ignore_ascii_case(AUTHORIZATION.as_str());
    match bearer(text) {
        Scheme::Bearer(token) => seen.add(Cow::Borrowed(token), index),
        Scheme::BadBearer => Err(AuthError::Malformed(
            "Authorization must be Bearer, one space, then the token",
        )),
        Scheme::Other if is_authorization => {
            // Another scheme (Basic, Digest…) carries no bearer token (RFC 6750 §3).
            seen.other_scheme = true;
            Ok(())
        }
        // A custom header may carry the bare token.
        Scheme::Other if text.is_empty() => Err(AuthError::Malformed("empty credentials header")),
        Scheme::Other => seen.add(Cow::Borrowed(text), index),
    }
}

enum Scheme<'a> {
    Bearer(&'a str),
    /// Starts like the Bearer scheme but is not well-formed (`Bearer<TAB>x`,
    /// `Bearer`, `Bearerx`): refused, since some parsers would still read it.
    BadBearer,
    Other,
}

/// RFC 6750 §2.1: `"Bearer" 1*SP b64token`, the scheme in any case.
fn bearer(text: &str) -> Scheme<'_> {
    let Some(head) = text.get(..6) else {
        return if text.eq_ignore_ascii_case(&"bearer"[..text.len().min(6)]) && !text.is_empty() {
            Scheme::BadBearer
        } else {
            Scheme::Other
        };
    };
    if !head.eq_ignore_ascii_case("bearer") {
        return Scheme::Other;
    }
    let rest = text.get(6..).unwrap_or_default();
    let token = rest.trim_start_matches(' ');
    if token.len() == rest.len() || token.is_empty() {
        return Scheme::BadBearer;
    }
    Scheme::Bearer(token)
}

/// Two names a framework may read as one: percent-decoded, case folded,
/// `.`, ` `, `[` and `-` read as `_` (PHP, ASP.NET, WSGI habits).
pub fn same_name(raw: &[u8], configured: &str) -> bool {
    if raw == configured.as_bytes() {
        return true;
    }
    let fold = |b: u8| match b {
        b'.' | b' ' | b'[' | b'-' => b'_',
        b => b.to_ascii_lowercase(),
    };
    let decoded: Cow<'_, [u8]> = if raw.contains(&b'%') || raw.contains(&b'+') {
        let plus: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        Cow::Owned(percent_decode(&plus).collect())
    } else {
        Cow::Borrowed(raw)
    };
    let trimmed = decoded.trim_ascii();
    trimmed.len() == configured.len()
        && trimmed
            .iter()
            .zip(configured.bytes())
            .all(|(&a, b)| fold(a) == fold(b))
}

fn from_cookie<'a, F: Fields + ?Sized>(
    headers: &'a F,
    name: &str,
    index: usize,
    seen: &mut Seen<'a>,
) -> Result<(), AuthError> {
    for value in headers.values(COOKIE.as_str()) {
        // Pairs are read one by one: a stray byte elsewhere in the field
        // must not hide this cookie.
        for pair in value.split(|&b| b == b';' || b == b',') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (k, v) = (pair.get(..eq).unwrap_or_default(), pair.get(eq + 1..));
            if !same_name(k, name) {
                continue;
            }
            let v = visible_ascii(v.unwrap_or_default())
                .ok_or(AuthError::Malformed("token cookie is not ASCII"))?
                .trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            // An emptied cookie (`access_token=`) is how sign-out looks.
            if !v.is_empty() {
                seen.add(Cow::Borrowed(v), index)?;
            }
        }
    }
    Ok(())
}

fn from_query<'a>(
    query: Option<&'a str>,
    name: &str,
    index: usize,
    seen: &mut Seen<'a>,
) -> Result<(), AuthError> {
    let Some(query) = query else { return Ok(()) };
    for pair in query.split(['&', ';']) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !same_name(k.as_bytes(), name) {
            continue;
        }
        let v = percent_decode(v.as_bytes())
            .decode_utf8()
            .map_err(|_| AuthError::Malformed("query token is not UTF-8"))?;
        if !v.is_empty() {
            seen.add(v, index)?;
        }
    }
    Ok(())
}

/// A byte of an RFC 6750 `b64token` body: `[A-Za-z0-9-._~+/]`. Written
/// without branches so that a whole token is checked many bytes at a time.
fn b64token_byte(b: u8) -> bool {
    // `| 0x20` folds A-Z onto a-z and moves nothing else into a-z.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// RFC 6750 `b64token`: `[A-Za-z0-9-._~+/]+ "="*`, and not absurdly long.
fn check_syntax(token: &str) -> Result<(), AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("token too long"));
    }
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty() && body.bytes().fold(true, |ok, b| ok & b64token_byte(b));
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

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            let b64 = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(b64token_byte(b), b64, "b64token byte {b:#04x}");
            let visible = b == b'\t' || (0x20..0x7f).contains(&b);
            assert_eq!(
                visible_ascii(&[b]).is_some(),
                visible,
                "field byte {b:#04x}"
            );
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn auth() -> Vec<TokenSource> {
        vec![TokenSource::Header("Authorization".into())]
    }

    fn all() -> Vec<TokenSource> {
        vec![
            TokenSource::Header("Authorization".into()),
            TokenSource::Cookie("access_token".into()),
            TokenSource::Query("access_token".into()),
        ]
    }

    fn token<'a>(r: Result<Option<Found<'a>>, AuthError>) -> Result<Option<String>, AuthError> {
        r.map(|f| f.map(|f| f.token.into_owned()))
    }

    fn malformed(h: &HeaderMap, q: Option<&str>, s: &[TokenSource]) -> bool {
        matches!(extract(h, q, s), Err(AuthError::Malformed(_)))
    }

    #[test]
    fn bearer_header_is_read_case_insensitively() {
        let h = headers(&[("authorization", b"bearer a.b.c")]);
        assert_eq!(token(extract(&h, None, &auth())), Ok(Some("a.b.c".into())));
    }

    #[test]
    fn other_schemes_are_no_token_and_junk_is_malformed() {
        let h = headers(&[("authorization", b"Basic dXNlcjpw")]);
        assert_eq!(token(extract(&h, None, &auth())), Ok(None));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a,b",
            b"Bearer\ta.b.c",
            b"Bearera.b.c",
            b"bear",
        ] {
            let h = headers(&[("authorization", bad)]);
            assert!(malformed(&h, None, &auth()), "{bad:?}");
        }
        let two = headers(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ]);
        assert!(malformed(&two, None, &auth()));
    }

    #[test]
    fn cookie_and_query_are_read_when_alone() {
        let h = headers(&[("cookie", b"a=1; access_token=x.y.z; b=2")]);
        assert_eq!(token(extract(&h, None, &all())), Ok(Some("x.y.z".into())));
        let none = HeaderMap::new();
        assert_eq!(
            token(extract(&none, Some("a=1&access_token=q.q%2Eq"), &all())),
            Ok(Some("q.q.q".into()))
        );
        assert_eq!(
            token(extract(&none, Some("access_token=q.q.q"), &auth())),
            Ok(None),
            "query only when configured"
        );
        let found = extract(&h, None, &all()).unwrap().unwrap();
        assert_eq!(found.source, 1);
    }

    #[test]
    fn two_different_tokens_are_refused_wherever_they_are() {
        let none = HeaderMap::new();
        let cases: Vec<(HeaderMap, Option<&str>)> = vec![
            (
                headers(&[
                    ("authorization", b"Bearer a.a.a"),
                    ("cookie", b"access_token=b.b.b"),
                ]),
                None,
            ),
            (
                headers(&[("cookie", b"access_token=a.a.a; access_token=b.b.b")]),
                None,
            ),
            (
                headers(&[
                    ("cookie", b"access_token=a.a.a"),
                    ("cookie", b"access_token=b.b.b"),
                ]),
                None,
            ),
            // A byte no header may carry elsewhere must not hide the cookie.
            (
                headers(&[
                    ("cookie", b"x=\xff; access_token=b.b.b"),
                    ("authorization", b"Bearer a.a.a"),
                ]),
                None,
            ),
            (none.clone(), Some("access_token=a.a.a&access_token=b.b.b")),
            (
                none.clone(),
                Some("access_token=a.a.a&access%5Ftoken=b.b.b"),
            ),
            (none.clone(), Some("access_token=a.a.a&ACCESS_TOKEN=b.b.b")),
            (none.clone(), Some("access_token=a.a.a;access.token=b.b.b")),
            (
                headers(&[("authorization", b"Bearer a.a.a")]),
                Some("access_token=b.b.b"),
            ),
            // Another scheme next to a token: two credentials.
            (
                headers(&[
                    ("authorization", b"Basic dXNlcjpw"),
                    ("cookie", b"access_token=b.b.b"),
                ]),
                None,
            ),
            // A tab after Bearer is not "no token": the cookie is not used instead.
            (
                headers(&[
                    ("authorization", b"Bearer\ta.a.a"),
                    ("cookie", b"access_token=b.b.b"),
                ]),
                None,
            ),
        ];
        for (h, q) in cases {
            assert!(malformed(&h, q, &all()), "{h:?} {q:?}");
        }
    }

    #[test]
    fn the_same_token_sent_twice_is_one_token() {
        let h = headers(&[
            ("authorization", b"Bearer a.a.a"),
            ("cookie", b"access_token=a.a.a"),
        ]);
        assert_eq!(token(extract(&h, None, &all())), Ok(Some("a.a.a".into())));
    }

    #[test]
    fn a_token_cookie_that_cannot_be_read_is_malformed_and_an_empty_one_is_absent() {
        let bad = headers(&[("cookie", b"access_token=a\xffb")]);
        assert!(malformed(&bad, None, &all()));
        let bad = headers(&[("cookie", b"access_token=a b")]);
        assert!(malformed(&bad, None, &all()));
        let empty = headers(&[("cookie", b"access_token=; x=1")]);
        assert_eq!(token(extract(&empty, None, &all())), Ok(None));
    }

    #[test]
    fn oversize_tokens_are_malformed() {
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let h = headers(&[("authorization", big.as_bytes())]);
        assert_eq!(
            extract(&h, None, &auth()),
            Err(AuthError::Malformed("token too long"))
        );
    }
}
