//! Forwarding to the upstream on the hyper path: the pooled keep-alive
//! client with its timeouts. Which fields go is [`super::hygiene`]'s call.

use super::error::ProxyError;
use crate::config::Settings;
use http::{Request, Response, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Idle upstream connections are kept this long (90 s).
pub const POOL_IDLE: Duration = Duration::from_secs(90);

/// Upstream connections being opened at once per pool (32): a burst of
/// requests (hundreds of h2 streams arriving together) waits for a slot, or
/// for a connection to come back to the pool, instead of sending thousands
/// of SYNs that overflow the upstream's listen backlog. The fast path's
/// pool has the same bound.
pub const MAX_CONNECTING: usize = 32;

type Connector = Capped<HttpsConnector<HttpConnector>>;

/// A connector that opens at most [`MAX_CONNECTING`] connections at once.
#[derive(Clone)]
pub struct Capped<C> {
    inner: C,
    slots: Arc<tokio::sync::Semaphore>,
}

impl<C> tower_service::Service<Uri> for Capped<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = C::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<C::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The clone is ready too: the HTTP connector always is.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let slots = self.slots.clone();
        Box::pin(async move {
            let _slot = slots.acquire_owned().await?;
            inner.call(uri).await.map_err(Into::into)
        })
    }
}

/// A plain `http://` upstream as the HTTP/1.1 fast path sees it.
#[derive(Debug, Clone)]
pub struct FastTarget {
    /// `host:port` as configured (the `Host` of `forward.host: upstream`).
    pub authority: String,
    pub base_path: String,
    /// `host:port` to connect to.
    pub address: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

/// The client's body on its way up, noting whether reading it failed
/// (broken chunked framing, a client gone mid-body): that failure is the
/// client's, answered 400, not the upstream's 502.
pub struct Watched {
    inner: Incoming,
    /// `None` for a request that has no body to read.
    broke: Option<Arc<AtomicBool>>,
}

impl http_body::Body for Watched {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Err(_))), Some(broke)) = (&polled, &self.broke) {
            broke.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pub struct Upstream {
    client: Client<Connector, Watched>,
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

    /// For a plain `http://` upstream: what the HTTP/1.1 fast path needs.
    pub fn fast_target(&self) -> Option<FastTarget> {
        if self.scheme != "http" {
            return None;
        }
        let uri: Uri = format!("http://{}/", self.authority).parse().ok()?;
        let host = uri.host()?;
        let address = match uri.port_u16() {
            Some(_) => self.authority.clone(),
            None => format!("{host}:80"),
        };
        Some(FastTarget {
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            address,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
        })
    }

    /// The upstream as a URL without credentials, for people.
    pub fn describe(&self) -> String {
        let host = self.authority.rsplit('@').next().unwrap_or_default();
        format!("{}://{host}{}", self.scheme, self.base_path)
    }

    /// `host:port` of the upstream (the `Host` of `forward.host: upstream`).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends the request, whose fields the header policy has already set,
    /// to `path` (normalized) and `query` (as the header policy has it).
    pub async fn send(
        &self,
        mut req: Request<Incoming>,
        path: &str,
        query: Option<String>,
    ) -> Result<Response<Incoming>, ProxyError> {
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
        let broke = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let req = req.map(|inner| Watched {
            inner,
            broke: broke.clone(),
        });
        tokio::time::timeout(self.response_timeout, self.client.request(req))
            .await
            .map_err(|_| ProxyError::UpstreamTimeout)?
            .map_err(|e| {
                if broke.is_some_and(|b| b.load(Ordering::Relaxed)) {
                    ProxyError::BadRequest("request body framing")
                } else {
                    ProxyError::UpstreamFailed(describe_client_error(&e))
                }
            })
    }
}

fn pooled_client(
    connect_timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Client<Connector, Watched> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let connector = Capped {
        inner: hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((**tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector),
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTING)),
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_service::Service;

    /// A connector that takes 20 ms and records how many connects overlap.
    #[derive(Clone, Default)]
    struct Slow {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<Uri> for Slow {
        type Response = ();
        type Error = std::io::Error;
        type Future =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Uri) -> Self::Future {
            let (now, most) = (self.now.clone(), self.most.clone());
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_burst_of_connects_opens_at_most_the_cap_at_once() {
        let slow = Slow::default();
        let mut capped = Capped {
            inner: slow.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTING)),
        };
        let uri: Uri = "http://127.0.0.1:1/".parse().unwrap();
        let all: Vec<_> = (0..200).map(|_| capped.call(uri.clone())).collect();
        for r in futures_util::future::join_all(all).await {
            r.unwrap();
        }
        assert_eq!(slow.most.load(Ordering::SeqCst), MAX_CONNECTING);
        assert_eq!(slow.now.load(Ordering::SeqCst), 0);
    }
}
