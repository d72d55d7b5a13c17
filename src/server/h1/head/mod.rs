//! Message heads on the fast path: which requests it takes and the request
//! head the upstream receives ([`request`]), the response head the client
//! receives and the answers made here ([`response`]). Which fields go and
//! come is [`Policy`](crate::proxy::hygiene::Policy)'s call, as on the hyper
//! path.

mod request;
mod response;

pub use request::*;
pub use response::*;

use httparse::Header;
use std::mem::MaybeUninit;

pub const MAX_HEADERS: usize = 100;

pub type Fields = [MaybeUninit<Header<'static>>; MAX_HEADERS];

/// Uninitialised room for a head's fields (nothing to clear).
pub fn fields() -> Fields {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A decimal field value (`Content-Length`), digits only.
pub(crate) fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Writes one `name: value` line.
pub(crate) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::body::Framing;
    use super::*;
    use crate::proxy::hygiene::Policy;
    use http::{HeaderName, HeaderValue};

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
            request_id: String::new(),
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
            .view(
                headers,
                None,
                false,
                "10.0.0.9".parse().unwrap(),
                false,
                policy.request_id(headers),
            )
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

    fn reply(head: &str, head_request: bool) -> (Result<Reply, HeadError>, String) {
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
        // Found by fuzzing: an empty Transfer-Encoding after a Content-Length
        // sent both framings to the client.
        for empty in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n\r\n",
        ] {
            assert!(reply(empty, false).0.is_err(), "{empty:?}");
        }
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
        // An underscore spelling of a framing field frames nothing here and
        // is not passed on to a client that might read it as framing.
        let (_, out) = reply(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent_Length: 2\r\n\r\n",
            false,
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n");
    }
}
