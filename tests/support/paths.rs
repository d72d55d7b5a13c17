//! The same request down every request path the proxy has: the HTTP/1.1
//! fast path, and hyper for HTTP/1.0, chunked HTTP/1.1, h2c, and TLS
//! (http/1.1 and h2 by ALPN). Raw paths are written byte for byte, so a test
//! can send what a browser library would not (duplicate fields, odd bytes).

use super::servers::TlsFiles;
use super::{Resp, TestProxy};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One way a request reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// HTTP/1.1 with a Content-Length body or none: the fast path.
    Fast,
    /// HTTP/1.0: hyper.
    Http10,
    /// HTTP/1.1 with a chunked body: hyper.
    Chunked,
    /// HTTP/2 with prior knowledge on the plain port: hyper.
    H2c,
    /// HTTP/1.1 over TLS with a Content-Length body or none: the fast path
    /// over the TLS stream.
    Tls,
    /// HTTP/1.1 over TLS with a chunked body: hyper over the TLS stream,
    /// after the fast path handed it over.
    TlsChunked,
    /// h2 over TLS (ALPN): hyper.
    H2Tls,
}

pub const ALL: [Via; 7] = [
    Via::Fast,
    Via::Http10,
    Via::Chunked,
    Via::H2c,
    Via::Tls,
    Via::TlsChunked,
    Via::H2Tls,
];

/// A proxy on a plain port and the same configuration on a TLS port.
pub struct Paths {
    pub plain: TestProxy,
    pub tls: TestProxy,
    connector: tokio_rustls::TlsConnector,
    _files: TlsFiles,
}

impl Paths {
    pub async fn start(yaml: &str, upstream: &str, extra: &[(&str, String)]) -> Paths {
        let files = TlsFiles::generate();
        let plain = TestProxy::start(yaml, upstream, extra).await;
        let with_tls = format!(
            "{yaml}\ntls:\n  cert_file: {}\n  key_file: {}\n",
            files.cert.display(),
            files.key.display()
        );
        let tls = TestProxy::start(&with_tls, upstream, extra).await;
        let config = revoke_proxy::tls::client_config(Some(&files.ca)).expect("client TLS");
        Paths {
            plain,
            tls,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            _files: files,
        }
    }

    pub async fn stop(self) {
        self.plain.stop().await;
        self.tls.stop().await;
    }

    /// Sends one request down `via`; `Host` is `app` on every path
    /// (`:authority` on h2), `headers` are sent as given, in order.
    pub async fn send(
        &self,
        via: Via,
        method: &str,
        target: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Resp {
        let sent = async {
            match via {
                Via::Fast | Via::Http10 | Via::Chunked | Via::H2c => {
                    send_plain(self.plain.addr, via, method, target, headers, body).await
                }
                Via::H2Tls => {
                    let tls = self.tls_stream(true).await;
                    over_hyper(tls, true, method, target, headers, body).await
                }
                Via::Tls | Via::TlsChunked => {
                    let tls = self.tls_stream(false).await;
                    raw(tls, via, method, target, headers, body).await
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), sent)
            .await
            .unwrap_or_else(|_| panic!("{via:?}: no answer within 20 s"))
    }

    /// A TLS connection to the TLS proxy, offering h2 or http/1.1.
    pub async fn tls_stream(&self, h2: bool) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.tls.addr).await.unwrap();
        let mut config = (**self.connector.config()).clone();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.expect("TLS handshake")
    }
}

/// Sends one request to a plain port down `via` (not a TLS one).
pub async fn send_plain(
    addr: std::net::SocketAddr,
    via: Via,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Resp {
    match via {
        Via::H2c => {
            let tcp = TcpStream::connect(addr).await.unwrap();
            over_hyper(tcp, true, method, target, headers, body).await
        }
        Via::Tls | Via::TlsChunked | Via::H2Tls => panic!("send_plain cannot speak TLS"),
        raw_via => {
            let tcp = TcpStream::connect(addr).await.unwrap();
            raw(tcp, raw_via, method, target, headers, body).await
        }
    }
}

/// Writes the request byte for byte (`Connection: close`) on `s` and reads
/// the answer.
async fn raw<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    via: Via,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Resp {
    let version = if via == Via::Http10 { "1.0" } else { "1.1" };
    let mut req = format!("{method} {target} HTTP/{version}\r\nHost: app\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    if matches!(via, Via::Chunked | Via::TlsChunked) {
        req.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        if !body.is_empty() {
            req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            req.extend_from_slice(body);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
    } else {
        if !body.is_empty() || method == "POST" || method == "PUT" {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"Connection: close\r\n\r\n");
        req.extend_from_slice(body);
    }
    s.write_all(&req).await.unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all).await;
    parse_response(&all, method == "HEAD")
}

/// An HTTP/1.x response read to the connection's end.
pub fn parse_response(all: &[u8], head_request: bool) -> Resp {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut fields);
    let head_len = match resp.parse(all) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => panic!(
            "no response head in {:?}",
            String::from_utf8_lossy(&all[..all.len().min(300)])
        ),
    };
    let mut headers = HeaderMap::new();
    for h in resp.headers.iter() {
        headers.append(
            HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    let status = resp.code.unwrap_or(0);
    let rest = &all[head_len..];
    let body = if head_request || status == 204 || status == 304 {
        Vec::new()
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        dechunk(rest)
    } else if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let line = String::from_utf8_lossy(&rest[..end]).to_string();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
}

/// One request over hyper's client connection (HTTP/1.1 or h2) on `io`.
async fn over_hyper<I>(
    io: I,
    h2: bool,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Resp
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let uri = if h2 {
        format!("http://app{target}")
    } else {
        target.to_string()
    };
    let mut req = Request::builder().method(method).uri(uri);
    if !h2 {
        req = req.header("host", "app");
    }
    for (k, v) in headers {
        req = req.header(*k, HeaderValue::from_bytes(v).unwrap());
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(req).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .expect("http1 handshake");
        tokio::spawn(conn.with_upgrades());
        send.send_request(req).await
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Resp {
                status: 0,
                headers: HeaderMap::new(),
                body: format!("request failed: {e}"),
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
