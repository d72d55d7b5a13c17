//! Message heads on the fast path: which requests it takes, the request head
//! the upstream receives, and the response head the client receives. Which
//! fields go and come is [`Policy`]'s call, as on the hyper path.

use super::body::Framing;
use crate::proxy::hygiene::{tokens, Field, Policy, RequestView};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use httparse::{Header, Status};
use std::io::Write;
use std::mem::MaybeUninit;

/// Most header fields in one head (100, as hyper); more goes to hyper, which answers 431.
pub const MAX_HEADERS: usize = 100;

pub type Fields = [MaybeUninit<Header<'static>>; MAX_HEADERS];

/// Uninitialised room for a head's fields (nothing to clear).
pub fn fields() -> Fields {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

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

fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
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
    let target_ok = o.base_path.bytes().chain(o.path.bytes()).all(target_byte)
        && o.query.is_none_or(|q| q.bytes().all(target_byte));
    if !target_ok {
        return Err(BadTarget);
    }
    out.extend_from_slice(o.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(o.base_path.as_bytes());
    out.extend_from_slice(o.path.as_bytes());
    if let Some(q) = o.query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in o.headers {
        // Framing: only Content-Length reaches the fast path; it is kept.
        if o.policy.request_field(o.view, h.name) != Field::Drop {
            field(out, h.name.as_bytes(), h.value);
        }
    }
    o.policy
        .added_fields(o.view, o.claims, o.authority, |name, value| {
            field(out, name.as_str().as_bytes(), value)
        });
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An upstream response head, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A final response; its head (without the closing blank line) is in the output.
    Final(Final),
    /// A 1xx other than 101: consumed and skipped, as hyper's client does.
    Interim(usize),
    Partial,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Final {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream lets the connection be used again.
    pub reusable: bool,
}

/// Parses an upstream response head from `buf` and writes the client's copy
/// (status line and end-to-end fields, no final blank line) to `out`.
pub fn read_response(
    buf: &[u8],
    head_request: bool,
    policy: &Policy,
    out: &mut Vec<u8>,
) -> Result<Reply, String> {
    let mut fields = fields();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let head_len = match parsed {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => return Ok(Reply::Partial),
        Err(e) => return Err(format!("invalid response head: {e}")),
    };
    let status = resp.code.ok_or("no status")?;
    if status == 101 {
        return Err("upstream switched protocols without being asked".into());
    }
    if (100..200).contains(&status) {
        return Ok(Reply::Interim(head_len));
    }
    let headers: &[Header<'_>] = resp.headers;
    let mut chunked = None;
    let mut length = None;
    let mut close = false;
    let mut keep_alive = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides; only chunked frames the body.
            chunked = tokens(h.value)
                .last()
                .map(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = decimal(h.value).ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let bodiless = head_request || status == 204 || status == 304;
    let framing = if bodiless {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    // A bodiless answer that still declares a body (RFC 9112 §6.3) may be
    // followed by bytes nobody asked for: such a connection is not reused.
    let declares_body = chunked.is_some() || length.is_some_and(|n| n > 0);
    let reusable = !close
        && framing != Framing::UntilClose
        && !(bodiless && declares_body)
        && (resp.version == Some(1) || keep_alive);

    let reason = resp.reason.unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {status:03} {reason}\r\n");
    let connection = policy.response_connection(headers);
    for h in headers {
        let keep = match policy.response_field(&connection, h.name) {
            Field::Keep => true,
            Field::Drop => false,
            // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
            Field::Framing => !(chunked.is_some() && h.name.eq_ignore_ascii_case("content-length")),
        };
        if keep {
            field(out, h.name.as_bytes(), h.value);
        }
    }
    Ok(Reply::Final(Final {
        head_len,
        status,
        framing,
        reusable,
    }))
}

/// Ends a response head: the revocation status, `Connection: close`, blank line.
pub fn end_response(out: &mut Vec<u8>, revocation: Option<&'static str>, close: bool) {
    if let Some(label) = revocation {
        field(
            out,
            crate::proxy::REVOCATION_STATUS.as_bytes(),
            label.as_bytes(),
        );
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A response made here (an error, or a `respond:` route), complete with body.
pub fn write_local(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    head_request: bool,
    close: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in headers {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let _ = write!(out, "content-length: {}\r\n", body.len());
    date(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(body);
    }
}

/// `date: <IMF-fixdate>`, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        field(out, b"date", c.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(head: &str) -> Check {
        let mut fields = fields();
        let mut req = httparse::Request::new(&mut []);
        check(&mut req, head.as_bytes(), &mut fields)
    }

    #[test]
    fn plain_requests_are_taken_and_the_rest_goes_to_hyper() {
        assert_eq!(
            plain("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Check::Complete(Plain {
                head_len: 32,
                content_length: 0,
                close: false
            })
        );
        assert!(matches!(
            plain("POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
            Check::Complete(Plain {
                content_length: 5,
                close: true,
                ..
            })
        ));
        assert_eq!(plain("GET / HTTP/1.1\r\nHost: x\r\n"), Check::Partial);
        for hyper in [
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /a#b HTTP/1.1\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            assert_eq!(plain(hyper), Check::Hyper, "{hyper:?}");
        }
    }

    fn policy(strip: bool, trusted: &[&str]) -> Policy {
        Policy::new(&crate::config::ForwardSettings {
            claims_to_headers: vec![("sub".into(), "x-user".into())],
            authorization: if strip {
                crate::config::AuthorizationForward::Strip
            } else {
                crate::config::AuthorizationForward::Keep
            },
            host: crate::config::HostMode::Preserve,
            trusted_proxies: trusted
                .iter()
                .map(|c| crate::config::Cidr::parse(c).unwrap())
                .collect(),
        })
    }

    fn outgoing(head: &str, policy: &Policy, query: Option<&str>) -> String {
        let mut fields = [httparse::EMPTY_HEADER; 24];
        let mut req = httparse::Request::new(&mut fields);
        req.parse(head.as_bytes()).unwrap();
        let claims = [(
            HeaderName::from_static("x-user"),
            HeaderValue::from_static("alice"),
        )];
        let headers: &[Header<'_>] = req.headers;
        let mut view = policy
            .view(headers, None, "10.0.0.9".parse().unwrap(), false)
            .unwrap();
        policy.verified(&mut view);
        let o = Outgoing {
            method: req.method.unwrap(),
            base_path: "/base",
            path: "/p",
            query,
            headers,
            policy,
            view: &view,
            claims: &claims,
            authority: "up:80",
        };
        let mut out = Vec::new();
        write_request(&mut out, &o).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn upstream_heads_carry_no_hop_by_hop_spoofed_or_forged_fields() {
        let sent = outgoing(
            "GET /x HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: 5\r\nTE: trailers\r\nX_USER: mallory\r\nx-user: eve\r\n\
             X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\
             X-Original-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nX_Real_IP: 1.1.1.1\r\n\
             Forwarded: for=1.1.1.1\r\nRevocation-Status: stored\r\n\
             Authorization: Bearer t\r\nAccept: */*\r\n\r\n",
            &policy(false, &[]),
            Some("q=1"),
        );
        assert_eq!(
            sent,
            "GET /base/p?q=1 HTTP/1.1\r\nRevocation-Status: stored\r\nAuthorization: Bearer t\r\n\
             Accept: */*\r\nx-user: alice\r\nhost: app\r\nx-forwarded-host: app\r\n\
             x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
        let stripped = outgoing(
            "GET / HTTP/1.1\r\nauthorization: Bearer t\r\n\r\n",
            &policy(true, &[]),
            None,
        );
        assert_eq!(
            stripped,
            "GET /base/p HTTP/1.1\r\nx-user: alice\r\nhost: up:80\r\nx-forwarded-for: 10.0.0.9\r\n\
             x-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn a_trusted_peer_keeps_its_forwarding_fields() {
        let sent = outgoing(
            "GET / HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\
             X-Real-IP: 1.2.3.4\r\n\r\n",
            &policy(false, &["10.0.0.0/8"]),
            None,
        );
        assert_eq!(
            sent,
            "GET /base/p HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 1.2.3.4\r\n\
             x-user: alice\r\nhost: app\r\nx-forwarded-host: app\r\n\
             x-forwarded-for: 1.2.3.4, 10.0.0.9\r\n\r\n"
        );
    }

    fn reply(head: &str, head_request: bool) -> (Result<Reply, String>, String) {
        let mut out = Vec::new();
        let r = read_response(head.as_bytes(), head_request, &policy(false, &[]), &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |head: &str, head_request| match reply(head, head_request).0 {
            Ok(Reply::Final(f)) => (f.framing, f.reusable),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            (Framing::Length(3), true)
        );
        // A HEAD answer declaring a body may be followed by one (apps do
        // it): no body is relayed and the connection is not reused.
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true),
            (Framing::Empty, false)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (Framing::Empty, false)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", false),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\n\r\n", false),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                false
            ),
            (Framing::Empty, false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            (Framing::Length(1), false)
        );
        assert_eq!(
            reply("HTTP/1.1 100 Continue\r\n\r\n", false).0,
            Ok(Reply::Interim(25))
        );
        assert!(reply(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .0
        .is_err());
        assert!(reply("HTTP/1.1 101 Switching Protocols\r\n\r\n", false)
            .0
            .is_err());
        assert_eq!(
            reply("HTTP/1.1 200 OK\r\nServer: x", false).0,
            Ok(Reply::Partial)
        );
    }

    #[test]
    fn client_response_heads_drop_hop_by_hop_fields() {
        let (_, out) = reply(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
             Content-Length: 2\r\nX-App: 1\r\n\r\n",
            false,
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: 1\r\n");
    }
}
