//! HTTP/1.1 on the wire through the fast path, against a scripted raw
//! upstream: keep-alive and pipelining, every body framing, interim
//! responses, hop-by-hop fields, a pooled connection the upstream closed,
//! answers that leave a request body unread (the proxy's own and an upstream's
//! early answer, with a lingering close), and hyper taking a connection
//! over mid-way for requests the fast path does not handle. Every case runs
//! twice: on the plain port and over TLS (http/1.1 by ALPN), where the same
//! fast path serves the TLS stream.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::servers::TlsFiles;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw upstream on 127.0.0.1:0 answering by path:
/// `/chunked`, `/close` (body until close), `/once` (closes after answering),
/// `/continue` (100 first), `/hop` (hop-by-hop fields), `/early` (413 to a
/// request whose body it never reads, then closes), `/early-open` (the same,
/// but the connection stays open, unread), else a Content-Length body naming
/// the connection and its request count.
struct RawUpstream {
    url: String,
    accepted: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let id = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve_raw(s, id));
            }
        });
        RawUpstream { url, accepted }
    }
}

async fn serve_raw(mut s: TcpStream, id: usize) {
    let mut buf = Vec::new();
    for n in 1..=1000 {
        let Some((head, _body)) = read_request(&mut s, &mut buf).await else {
            return;
        };
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        if path.starts_with("/early") {
            let _ = s
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
                .await;
            let hold = if path == "/early" { 100 } else { 3000 };
            tokio::time::sleep(Duration::from_millis(hold)).await;
            return;
        }
        if path == "/head-body" {
            // Declares a body for HEAD, then (wrongly) sends one, late.
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 84\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
            // 84 bytes that read as a whole response of their own.
            let stray = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 45\r\n\r\n{:45}",
                "STRAY"
            );
            assert_eq!(stray.len(), 84);
            let _ = s.write_all(stray.as_bytes()).await;
            continue;
        }
        let reply: Vec<u8> = match path.as_str() {
            "/extra" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY".to_vec(),
            "/chunked" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n".to_vec()
            }
            "/close" => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close".to_vec(),
            "/once" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce".to_vec(),
            "/continue" => {
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
            }
            "/hop" => b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            _ => {
                let body = format!("conn={id} n={n}");
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                if !head.starts_with("HEAD ") {
                    r.push_str(&body);
                }
                r.into_bytes()
            }
        };
        if s.write_all(&reply).await.is_err() || path == "/close" || path == "/once" {
            return;
        }
    }
}

/// Reads one request (head and Content-Length body) from a raw connection.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            if head
                .split(' ')
                .nth(1)
                .is_some_and(|p| p.starts_with("/early"))
            {
                return Some((head, Vec::new())); // answered without the body
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One response as a client sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A client's byte stream: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The proxy under test, on a plain port or a TLS one.
struct Front {
    proxy: TestProxy,
    tls: Option<(tokio_rustls::TlsConnector, TlsFiles)>,
}

impl Front {
    async fn start(yaml: &str, upstream: &str, tls: bool) -> Front {
        if !tls {
            let proxy = TestProxy::start(yaml, upstream, &[]).await;
            return Front { proxy, tls: None };
        }
        let files = TlsFiles::generate();
        let yaml = format!(
            "{yaml}\ntls:\n  cert_file: {}\n  key_file: {}\n",
            files.cert.display(),
            files.key.display()
        );
        let proxy = TestProxy::start(&yaml, upstream, &[]).await;
        let mut config = revoke_proxy::tls::client_config(Some(&files.ca)).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        Front {
            proxy,
            tls: Some((connector, files)),
        }
    }

    async fn stop(self) {
        self.proxy.stop().await;
    }
}

/// A raw client connection that keeps what it has read ahead.
struct Client {
    s: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(front: &Front) -> Client {
        let tcp = TcpStream::connect(front.proxy.addr).await.unwrap();
        let s: Box<dyn Io> = match &front.tls {
            None => Box::new(tcp),
            Some((connector, _)) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                Box::new(connector.connect(name, tcp).await.expect("TLS handshake"))
            }
        };
        Client { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn more(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk))
            .await
            .expect("proxy answered within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response, framed as RFC 9112 §6.3 says.
    async fn reply(&mut self, head_request: bool) -> Reply {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(self.more().await > 0, "closed before a response head");
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        self.buf.drain(..end + 4);
        let mut r = Reply {
            status: head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            head,
            body: Vec::new(),
        };
        if head_request || r.status == 204 || r.status == 304 {
            return r;
        }
        if r.header("transfer-encoding").is_some() {
            loop {
                let Some(line_end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                    assert!(self.more().await > 0, "closed inside a chunked body");
                    continue;
                };
                let line = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size =
                    usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
                if size == 0 {
                    // Trailers end with an empty line.
                    while !self.buf[line_end..].windows(4).any(|w| w == b"\r\n\r\n") {
                        assert!(self.more().await > 0);
                    }
                    let at = self.buf[line_end..]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .unwrap();
                    self.buf.drain(..line_end + at + 4);
                    return r;
                }
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.more().await > 0);
                }
                r.body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
            }
        }
        match r.header("content-length") {
            Some(len) => {
                let len: usize = len.parse().unwrap();
                while self.buf.len() < len {
                    assert!(self.more().await > 0, "closed inside a body");
                }
                r.body = self.buf.drain(..len).collect();
            }
            None => {
                while self.more().await > 0 {}
                r.body = std::mem::take(&mut self.buf);
            }
        }
        r
    }

    /// True once the proxy has closed the connection.
    async fn closed(&mut self) -> bool {
        self.more().await == 0
    }
}

fn get(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

async fn setup(tls: bool) -> (RawUpstream, Front, String) {
    let up = RawUpstream::start().await;
    let proxy = Front::start(BASIC, &up.url, tls).await;
    (up, proxy, hs256(&claims("alice")))
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_over_one_upstream_connection() {
    for tls in [false, true] {
        pipelined_requests_are_answered_in_order_over_one_upstream_connection_over(tls).await;
    }
}

async fn pipelined_requests_are_answered_in_order_over_one_upstream_connection_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    let mut both = get("/a", &token);
    both.extend_from_slice(&get("/b", &token));
    c.send(&both).await;
    let first = c.reply(false).await;
    let second = c.reply(false).await;
    assert_eq!((first.status, second.status), (200, 200));
    let first = String::from_utf8(first.body).unwrap();
    let second = String::from_utf8(second.body).unwrap();
    let conn = first.split(' ').next().unwrap();
    assert_eq!(second, format!("{conn} n=2"), "first: {first}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced() {
    for tls in [false, true] {
        a_pooled_connection_the_upstream_closed_is_replaced_over(tls).await;
    }
}

async fn a_pooled_connection_the_upstream_closed_is_replaced_over(tls: bool) {
    let (up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    for _ in 0..3 {
        c.send(&get("/once", &token)).await;
        let r = c.reply(false).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"once"[..]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn chunked_bodies_pass_through_and_close_delimited_ones_end_the_connection() {
    for tls in [false, true] {
        chunked_bodies_pass_through_and_close_delimited_ones_end_the_connection_over(tls).await;
    }
}

async fn chunked_bodies_pass_through_and_close_delimited_ones_end_the_connection_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    c.send(&get("/chunked", &token)).await;
    let r = c.reply(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    // Still usable afterwards.
    c.send(&get("/continue", &token)).await;
    let r = c.reply(false).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"ok"[..]),
        "interim 100 skipped"
    );
    c.send(&get("/close", &token)).await;
    let r = c.reply(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"until close"[..]));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    proxy.stop().await;
}

#[tokio::test]
async fn hop_by_hop_response_fields_are_dropped() {
    for tls in [false, true] {
        hop_by_hop_response_fields_are_dropped_over(tls).await;
    }
}

async fn hop_by_hop_response_fields_are_dropped_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    c.send(&get("/hop", &token)).await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-app").as_deref(), Some("1"));
    for gone in ["x-hop", "keep-alive", "connection"] {
        assert_eq!(r.header(gone), None, "{gone} in {}", r.head);
    }
    proxy.stop().await;
}

#[tokio::test]
async fn head_responses_carry_no_body_and_the_connection_goes_on() {
    for tls in [false, true] {
        head_responses_carry_no_body_and_the_connection_goes_on_over(tls).await;
    }
}

async fn head_responses_carry_no_body_and_the_connection_goes_on_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    c.send(
        format!("HEAD /x HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let r = c.reply(true).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    // A 401 to HEAD has no body either.
    c.send(b"HEAD /x HTTP/1.1\r\nHost: app\r\n\r\n").await;
    assert_eq!(c.reply(true).await.status, 401);
    c.send(&get("/y", &token)).await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 200);
    // The HEAD answer declared a body: that upstream connection was not
    // reused (bytes after it could be taken for the next answer).
    assert!(String::from_utf8(r.body).unwrap().ends_with("n=1"));
    proxy.stop().await;
}

#[tokio::test]
async fn stray_upstream_bytes_never_reach_the_next_client() {
    for tls in [false, true] {
        stray_upstream_bytes_never_reach_the_next_client_over(tls).await;
    }
}

async fn stray_upstream_bytes_never_reach_the_next_client_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    // `/head-body` wrongly writes its body after a HEAD answer, late;
    // `/extra` writes a second, unasked-for response after its own.
    for (method, path) in [("HEAD", "/head-body"), ("GET", "/extra")] {
        for round in 0..5 {
            let mut a = Client::connect(&proxy).await;
            a.send(
                format!("{method} {path} HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\n\r\n")
                    .as_bytes(),
            )
            .await;
            let r = a.reply(method == "HEAD").await;
            assert_eq!(r.status, 200, "{path}");
            tokio::time::sleep(Duration::from_millis(30)).await;
            // Another client on any worker gets its own answer.
            for other in 0..4 {
                let mut b = Client::connect(&proxy).await;
                b.send(&get(&format!("/mine-{round}-{other}"), &token))
                    .await;
                let r = b.reply(false).await;
                let body = String::from_utf8(r.body).unwrap();
                assert_eq!(r.status, 200, "{path}: {body}");
                assert!(
                    body.starts_with("conn="),
                    "{path}: got someone else's answer: {body}"
                );
                assert!(!body.contains("STRAY"), "{path}: {body}");
            }
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn rejected_requests_with_bodies_keep_the_connection_in_step() {
    for tls in [false, true] {
        rejected_requests_with_bodies_keep_the_connection_in_step_over(tls).await;
    }
}

async fn rejected_requests_with_bodies_keep_the_connection_in_step_over(tls: bool) {
    let upstream = TestUpstream::start().await;
    let proxy = Front::start(BASIC, &upstream.url(), tls).await;
    let token = hs256(&claims("alice"));
    let mut c = Client::connect(&proxy).await;
    c.send(b"POST /x HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    c.send(format!("POST /x HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nContent-Length: 3\r\n\r\nabc").as_bytes())
        .await;
    let r = c.reply(false).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"upstream saw 3 bytes"[..])
    );
    assert_eq!(upstream.last().body.as_ref(), b"abc");
    // A rejected body still on its way cannot be skipped: answer, then close.
    c.send(b"POST /x HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\npartial")
        .await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed().await);
    proxy.stop().await;
}

#[tokio::test]
async fn an_upstream_answering_before_the_body_is_sent_is_relayed_then_the_connection_closes() {
    for tls in [false, true] {
        an_upstream_answering_before_the_body_is_sent_is_relayed_then_the_connection_closes_over(
            tls,
        )
        .await;
    }
}

async fn an_upstream_answering_before_the_body_is_sent_is_relayed_then_the_connection_closes_over(
    tls: bool,
) {
    let (up, proxy, token) = setup(tls).await;
    for path in ["/early-open", "/early"] {
        // The client holds the rest of its body back until it has an answer:
        // only an answer relayed before the body is complete can reach it.
        let mut c = Client::connect(&proxy).await;
        c.send(
            format!("POST {path} HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\nfirst part")
                .as_bytes(),
        )
        .await;
        let r = c.reply(false).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (413, &b"too big!"[..]),
            "{path}"
        );
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{path}");
        assert!(
            c.closed().await,
            "{path}: the rest of the body can never be used"
        );
    }
    // The upstream connection that was cut short is not reused.
    let before = up.accepted.load(Ordering::SeqCst);
    let mut c = Client::connect(&proxy).await;
    c.send(&get("/after", &token)).await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), before + 1);
    proxy.stop().await;
}

#[tokio::test]
async fn an_early_answer_survives_a_client_that_keeps_sending() {
    for tls in [false, true] {
        an_early_answer_survives_a_client_that_keeps_sending_over(tls).await;
    }
}

async fn an_early_answer_survives_a_client_that_keeps_sending_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    // A client that writes its whole body before reading: the proxy stops
    // forwarding after the upstream's answer, and must drain the rest rather
    // than close on unread input (a reset that can destroy the answer).
    let c = Client::connect(&proxy).await;
    // It sends 512 KiB of a body declared far larger, so the proxy can never
    // have forwarded all of it, however fast the upstream reads.
    let body = vec![b'z'; 512 * 1024];
    let mut req = format!("POST /early-open HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n", 64 << 20).into_bytes();
    req.extend_from_slice(&body);
    let (mut rd, mut wr) = tokio::io::split(c.s);
    let writer = tokio::spawn(async move { wr.write_all(&req).await.is_ok() });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(_))), "tls {tls}: no reset: {read:?}");
    assert!(writer.await.unwrap(), "the whole body was taken");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.ends_with("too big!"), "{text}");
    proxy.stop().await;
}

#[tokio::test]
async fn large_bodies_are_streamed_both_ways() {
    for tls in [false, true] {
        large_bodies_are_streamed_both_ways_over(tls).await;
    }
}

async fn large_bodies_are_streamed_both_ways_over(tls: bool) {
    let upstream = TestUpstream::start().await;
    let proxy = Front::start(BASIC, &upstream.url(), tls).await;
    let token = hs256(&claims("alice"));
    let mut c = Client::connect(&proxy).await;
    let body = vec![b'x'; 3 * 1024 * 1024];
    c.send(format!("PUT /big HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await;
    c.send(&body).await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        format!("upstream saw {} bytes", body.len()).into_bytes()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn hyper_takes_over_requests_the_fast_path_does_not_handle() {
    for tls in [false, true] {
        hyper_takes_over_requests_the_fast_path_does_not_handle_over(tls).await;
    }
}

async fn hyper_takes_over_requests_the_fast_path_does_not_handle_over(tls: bool) {
    let upstream = TestUpstream::start().await;
    let proxy = Front::start(BASIC, &upstream.url(), tls).await;
    let token = hs256(&claims("alice"));
    let mut c = Client::connect(&proxy).await;
    c.send(&get("/plain", &token)).await;
    assert_eq!(c.reply(false).await.status, 200);
    // A chunked request body on the same connection: hyper from here on.
    c.send(format!("POST /chunked HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").as_bytes())
        .await;
    let r = c.reply(false).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"upstream saw 5 bytes"[..])
    );
    assert_eq!(upstream.last().body.as_ref(), b"hello");
    c.send(&get("/after", &token)).await;
    assert_eq!(c.reply(false).await.status, 200);
    // HTTP/1.0 and a revoked-token check work on a hyper-served connection too.
    let mut old = Client::connect(&proxy).await;
    old.send(format!("GET /old HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(old.reply(false).await.status, 200);
    assert_eq!(upstream.last().target, "/old");
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_asking_to_close_gets_its_answer_then_the_close() {
    for tls in [false, true] {
        a_client_asking_to_close_gets_its_answer_then_the_close_over(tls).await;
    }
}

async fn a_client_asking_to_close_gets_its_answer_then_the_close_over(tls: bool) {
    let (_up, proxy, token) = setup(tls).await;
    let mut c = Client::connect(&proxy).await;
    c.send(format!("GET /x HTTP/1.1\r\nHost: app\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes())
        .await;
    let r = c.reply(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed().await);
    proxy.stop().await;
}
