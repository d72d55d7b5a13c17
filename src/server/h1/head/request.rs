//! The request side: which requests the fast path takes (one parse, in
//! place) and the upstream request head written from it.

use super::{decimal, field};
use crate::proxy::hygiene::{tokens, Field, Policy, RequestView};
use http::{HeaderName, HeaderValue};
use httparse::{Header, Status};
use std::mem::MaybeUninit;

/// A request head the fast path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain {
    pub head_len: usize,
    pub content_length: u64,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Complete(Plain),
    Partial,
    /// Not for the fast path: hyper takes the connection from here.
    Hyper,
}

/// Parses the request head at the start of `buf` into `req` (its one parse)
/// and says whether the fast path takes it.
pub fn check<'h, 'b>(
    req: &mut httparse::Request<'h, 'b>,
    buf: &'b [u8],
    fields: &'h mut [MaybeUninit<Header<'b>>],
) -> Check {
    match req.parse_with_uninit_headers(buf, fields) {
        Ok(Status::Complete(head_len)) => {
            classify(req, head_len).map_or(Check::Hyper, Check::Complete)
        }
        Ok(Status::Partial) => Check::Partial,
        Err(_) => Check::Hyper,
    }
}

/// A plain request: HTTP/1.1, origin-form target, no body or a single
/// Content-Length one, no Transfer-Encoding, Expect, Upgrade or second Host.
fn classify(req: &httparse::Request<'_, '_>, head_len: usize) -> Option<Plain> {
    if req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    if !target.starts_with('/') || !target.bytes().all(target_byte) {
        return None;
    }
    let mut content_length = None;
    let mut close = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return None;
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return None;
            }
            content_length = Some(decimal(h.value)?);
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 {
                return None;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
            }
        }
    }
    Some(Plain {
        head_len,
        content_length: content_length.unwrap_or(0),
        close,
    })
}

/// Bytes a request target may carry on the fast path (RFC 3986 pchar, `/`,
/// `?`, `%`); anything else goes to hyper, which decides.
pub fn target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// What the upstream request head is built from.
pub struct Outgoing<'a> {
    pub method: &'a str,
    /// Upstream base path + normalized path.
    pub base_path: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [Header<'a>],
    pub policy: &'a Policy,
    pub view: &'a RequestView<'a>,
    /// The verified token's claim headers.
    pub claims: &'a [(HeaderName, HeaderValue)],
    /// The upstream's `host:port`.
    pub authority: &'a str,
}

/// The normalized path or query holds bytes a request target cannot carry.
#[derive(Debug)]
pub struct BadTarget;

/// Writes the upstream request head.
pub fn write_request(out: &mut Vec<u8>, o: &Outgoing<'_>) -> Result<(), BadTarget> {
    let query = o.policy.query(o.view, o.query);
    let target_ok = o.base_path.bytes().chain(o.path.bytes()).all(target_byte)
        && query.as_deref().is_none_or(|q| q.bytes().all(target_byte));
    if !target_ok {
        return Err(BadTarget);
    }
    out.extend_from_slice(o.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(o.base_path.as_bytes());
    out.extend_from_slice(o.path.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut cookies = 0;
    for h in o.headers {
        // Framing: only Content-Length reaches the fast path; it is kept.
        if o.policy.request_field(o.view, h.name) != Field::Drop {
            if h.name.eq_ignore_ascii_case("cookie") {
                cookies += 1;
                continue;
            }
            field(out, h.name.as_bytes(), h.value);
        }
    }
    if cookies > 0 && o.view.drops_tokens() {
        // The request's token did not pass: its cookie is left out.
        let values = o
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .map(|h| h.value);
        if let Some(kept) = o.policy.cookies(o.view, values) {
            field(out, b"cookie", &kept);
        }
    } else if cookies > 0 {
        // One `Cookie` field, its crumbs joined with "; " (as the hyper
        // path does for h2's one-field-per-cookie).
        out.extend_from_slice(b"cookie: ");
        let crumbs = o.headers.iter().filter(|h| {
            h.name.eq_ignore_ascii_case("cookie")
                && o.policy.request_field(o.view, h.name) != Field::Drop
        });
        for (i, h) in crumbs.enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(h.value);
        }
        out.extend_from_slice(b"\r\n");
    }
    o.policy
        .added_fields(o.view, o.claims, o.authority, |name, value| {
            field(out, name.as_str().as_bytes(), value)
        });
    out.extend_from_slice(b"\r\n");
    Ok(())
}
