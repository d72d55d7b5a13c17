//! Forwarding to the upstream: header hygiene (hop-by-hop, identity,
//! `X-Forwarded-*`) and the pooled keep-alive client with its timeouts.

use super::error::ProxyError;
use super::Body;
use crate::config::Settings;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Idle upstream connections are kept this long (90 s).
pub const POOL_IDLE: Duration = Duration::from_secs(90);

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection`): meaningful for one connection only, never forwarded.
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop fields and every field named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        // Framing and routing fields are not the client's to drop.
        .filter(|n| n != CONTENT_LENGTH && n != HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes client-sent copies of identity headers, in any case and with `_`
/// in place of `-` (many stacks map both to the same variable).
pub fn strip_identity(headers: &mut HeaderMap, identity: &[HeaderName]) {
    if identity.is_empty() {
        return;
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_identity(k.as_str(), identity))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// `name` is one of the identity headers, in any case, `_` standing for `-`.
pub(crate) fn is_identity(name: &str, identity: &[HeaderName]) -> bool {
    identity.iter().any(|i| {
        let i = i.as_str().as_bytes();
        i.len() == name.len()
            && name.bytes().zip(i).all(|(a, &b)| {
                let a = if a == b'_' {
                    b'-'
                } else {
                    a.to_ascii_lowercase()
                };
                a == b
            })
    })
}

type Connector = HttpsConnector<HttpConnector>;

pub struct Upstream {
    client: Client<Connector, Incoming>,
    connect_timeout: Duration,
    /// Client TLS for `https://` upstreams (system roots or `upstream_tls.ca_file`).
    tls: Arc<rustls::ClientConfig>,
    scheme: String,
    authority: String,
    base_path: String,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(settings: &Settings) -> Result<Upstream, String> {
        let uri: Uri = settings
            .upstream
            .parse()
            .map_err(|e| format!("upstream: {e}"))?;
        let authority = uri.authority().ok_or("upstream: no host")?.to_string();
        let connect_timeout = settings.timeouts.upstream_connect;
        let tls = if uri.scheme_str() == Some("https") {
            crate::tls::client_config(
                settings
                    .upstream_tls
                    .as_ref()
                    .and_then(|t| t.ca_file.as_deref()),
            )?
        } else {
            crate::tls::install_provider();
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let tls = Arc::new(tls);
        Ok(Upstream {
            client: pooled_client(connect_timeout, &tls),
            connect_timeout,
            tls,
            scheme: uri.scheme_str().unwrap_or("http").to_string(),
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            response_timeout: settings.timeouts.upstream_response,
        })
    }

    /// The same upstream with a pool of its own (one per worker thread).
    pub fn fresh(&self) -> Upstream {
        Upstream {
            client: pooled_client(self.connect_timeout, &self.tls),
            connect_timeout: self.connect_timeout,
            tls: self.tls.clone(),
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            response_timeout: self.response_timeout,
        }
    }

    /// For a plain `http://` upstream: where the HTTP/1.1 fast path connects
    /// (`host:port`) and its view of the upstream.
    pub fn fast_target(&self) -> Option<(super::h1::Target, String, Duration)> {
        if self.scheme != "http" {
            return None;
        }
        let uri: Uri = format!("http://{}/", self.authority).parse().ok()?;
        let host = uri.host()?;
        let address = match uri.port_u16() {
            Some(_) => self.authority.clone(),
            None => format!("{host}:80"),
        };
        let target = super::h1::Target {
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            response_timeout: self.response_timeout,
        };
        Some((target, address, self.connect_timeout))
    }

    /// Sends the request with `path` (normalized) and its original query.
    pub async fn send(
        &self,
        mut req: Request<Incoming>,
        path: &str,
        client_addr: SocketAddr,
        tls: bool,
    ) -> Result<Response<Body>, ProxyError> {
        let query = req.uri().query().map(str::to_owned);
        let host = req.headers().get(HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let target = match &query {
            Some(q) => format!(
                "{}://{}{}{}?{}",
                self.scheme, self.authority, self.base_path, path, q
            ),
            None => format!(
                "{}://{}{}{}",
                self.scheme, self.authority, self.base_path, path
            ),
        };
        *req.uri_mut() = target
            .parse()
            .map_err(|_| ProxyError::UpstreamFailed("cannot build upstream URI".into()))?;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        match &host {
            Some(host) => {
                h.insert(HOST, host.clone());
                h.insert("x-forwarded-host", host.clone());
            }
            None => {
                h.remove("x-forwarded-host");
            }
        }
        append_forwarded_for(h, client_addr);
        h.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
        // HTTP/2 carries no Transfer-Encoding; hyper frames the body itself.
        h.remove(TRANSFER_ENCODING);

        let resp = tokio::time::timeout(self.response_timeout, self.client.request(req))
            .await
            .map_err(|_| ProxyError::UpstreamTimeout)?
            .map_err(|e| ProxyError::UpstreamFailed(describe_client_error(&e)))?;
        let (mut parts, body) = resp.into_parts();
        let switched = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
        let protocol = parts.headers.get(http::header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if let (true, Some(p)) = (switched, protocol) {
            super::upgrade::restore(&mut parts.headers, p);
        }
        Ok(Response::from_parts(parts, Either::Left(body)))
    }
}

fn pooled_client(
    connect_timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Client<Connector, Incoming> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((**tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
}

fn append_forwarded_for(h: &mut HeaderMap, client: SocketAddr) {
    let ip = client.ip().to_string();
    let value = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("x-forwarded-for", v);
    }
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret, content-length"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-length", "x-keep"]);
    }

    #[test]
    fn identity_headers_are_removed_in_every_spelling() {
        let mut h = HeaderMap::new();
        h.insert("X-Auth-Subject", HeaderValue::from_static("a"));
        h.insert("x_auth_subject", HeaderValue::from_static("b"));
        h.insert("X_AUTH-SUBJECT", HeaderValue::from_static("c"));
        h.insert("x-other", HeaderValue::from_static("d"));
        strip_identity(&mut h, &[HeaderName::from_static("x-auth-subject")]);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-other"]);
    }
}
