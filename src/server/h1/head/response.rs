//! The response side: an upstream response head read (framing, reuse) and
//! the client's copy written; the answers the proxy makes itself.

use super::super::body::Framing;
use super::{decimal, field, fields};
use crate::proxy::hygiene::{tokens, Field, Policy};
use http::{HeaderMap, StatusCode};
use httparse::{Header, Status};
use std::io::Write;

/// Why an upstream response head cannot be relayed (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("invalid response head: {0}")]
    Invalid(httparse::Error),
    #[error("response head without a status")]
    NoStatus,
    #[error("upstream switched protocols without being asked")]
    UnaskedSwitch,
    #[error("empty Transfer-Encoding")]
    EmptyTransferEncoding,
    #[error("invalid Content-Length")]
    InvalidLength,
    #[error("conflicting Content-Length")]
    ConflictingLength,
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
) -> Result<Reply, HeadError> {
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
        Err(e) => return Err(HeadError::Invalid(e)),
    };
    let status = resp.code.ok_or(HeadError::NoStatus)?;
    if status == 101 {
        return Err(HeadError::UnaskedSwitch);
    }
    if (100..200).contains(&status) {
        return Ok(Reply::Interim(head_len));
    }
    let headers: &[Header<'_>] = resp.headers;
    let f = Framed::read(headers)?;
    let bodiless = head_request || status == 204 || status == 304;
    let framing = if bodiless {
        Framing::Empty
    } else {
        f.framing()
    };
    // A bodiless answer that still declares a body (RFC 9112 §6.3) may be
    // followed by bytes nobody asked for: such a connection is not reused.
    let reusable = !f.close
        && framing != Framing::UntilClose
        && !(bodiless && f.declares_body())
        && (resp.version == Some(1) || f.keep_alive);
    copy_head(
        out,
        status,
        resp.reason.unwrap_or(""),
        headers,
        f.chunked.is_some(),
        policy,
    );
    Ok(Reply::Final(Final {
        head_len,
        status,
        framing,
        reusable,
    }))
}

/// What a response head says of its body and its connection.
struct Framed {
    /// The last transfer coding is chunked (`Some(false)`: another one).
    chunked: Option<bool>,
    length: Option<u64>,
    close: bool,
    keep_alive: bool,
}

impl Framed {
    fn read(headers: &[Header<'_>]) -> Result<Framed, HeadError> {
        let mut f = Framed {
            chunked: None,
            length: None,
            close: false,
            keep_alive: false,
        };
        for h in headers {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides; only chunked frames the body. A
                // field without a coding frames nothing we could relay.
                let last = tokens(h.value)
                    .last()
                    .ok_or(HeadError::EmptyTransferEncoding)?;
                f.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let n = decimal(h.value).ok_or(HeadError::InvalidLength)?;
                if f.length.is_some_and(|l| l != n) {
                    return Err(HeadError::ConflictingLength);
                }
                f.length = Some(n);
            } else if h.name.eq_ignore_ascii_case("connection") {
                for t in tokens(h.value) {
                    f.close |= t.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        Ok(f)
    }

    /// RFC 9112 §6.3 for a response that may have a body.
    fn framing(&self) -> Framing {
        match (self.chunked, self.length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
        }
    }

    fn declares_body(&self) -> bool {
        self.chunked.is_some() || self.length.is_some_and(|n| n > 0)
    }
}

/// The client's copy of the head: status line and the fields the policy keeps.
fn copy_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[Header<'_>],
    chunked: bool,
    policy: &Policy,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    match u8::try_from(status / 100) {
        // A parsed status has three digits.
        Ok(hundreds @ 1..=9) => out.extend_from_slice(&[
            b'0' + hundreds,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]),
        _ => {
            let _ = write!(out, "{status:03}");
        }
    }
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let connection = policy.response_connection(headers);
    for h in headers {
        let keep = match policy.response_field(&connection, h.name) {
            Field::Keep => true,
            Field::Drop => false,
            // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
            Field::Framing => !(chunked && h.name.eq_ignore_ascii_case("content-length")),
        };
        if keep {
            field(out, h.name.as_bytes(), h.value);
        }
    }
}

/// Ends a response head: the revocation status, `Connection: close`, blank line.
pub fn end_response(out: &mut Vec<u8>, fields: &HeaderMap, close: bool) {
    for (name, value) in fields {
        field(out, name.as_str().as_bytes(), value.as_bytes());
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
    // RFC 9110 §8.6: never in a 204; in a 304 only the length a 200 would
    // have had, which a route answering here does not know. hyper's answer
    // to the same request has none either.
    if !matches!(status.as_u16(), 204 | 304) {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
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

    #[test]
    fn the_status_line_has_three_digits_and_the_reason_as_sent() {
        let policy = Policy::new(&crate::config::ForwardSettings {
            claims_to_headers: Vec::new(),
            authorization: crate::config::AuthorizationForward::Keep,
            host: crate::config::HostMode::Preserve,
            trusted_proxies: Vec::new(),
            request_id: String::new(),
        });
        for (status, reason, line) in [
            (200, "OK", "HTTP/1.1 200 OK\r\n"),
            (404, "Not Found", "HTTP/1.1 404 Not Found\r\n"),
            (599, "", "HTTP/1.1 599 \r\n"),
            (
                101,
                "Switching Protocols",
                "HTTP/1.1 101 Switching Protocols\r\n",
            ),
            (42, "odd", "HTTP/1.1 042 odd\r\n"),
        ] {
            let mut out = Vec::new();
            copy_head(&mut out, status, reason, &[], false, &policy);
            assert_eq!(String::from_utf8(out).unwrap(), line);
        }
    }
}
