//! Outbound HTTP on behalf of `auth` (a JWKS) and `intake` (SSF polls),
//! with TLS to the system roots, a time bound and a size bound. It
//! implements [`crate::auth::jwks::Fetch`], so neither holds an HTTP client.

use crate::auth::jwks::{Fetch, FetchError, FetchFuture, Post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// One fetch may take this long (5 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// http:// and https:// (system roots, read at the first fetch).
#[derive(Default)]
pub struct HttpFetcher {
    client: std::sync::OnceLock<Result<HttpsClient, String>>,
}

impl HttpFetcher {
    pub fn new() -> HttpFetcher {
        HttpFetcher::default()
    }

    fn client(&self) -> Result<&HttpsClient, FetchError> {
        self.client
            .get_or_init(|| {
                let tls = crate::tls::client_config(None)?;
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(Some(FETCH_TIMEOUT));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .as_ref()
            .map_err(|e| FetchError::Setup(e.clone()))
    }
}

impl HttpFetcher {
    /// Sends `req`; a 2xx answer's body (at most `max_bytes`) within `timeout`.
    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        let fetch = async {
            let resp = self
                .client()?
                .request(req)
                .await
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(FetchError::Status(resp.status().as_u16()));
            }
            Limited::new(resp.into_body(), max_bytes)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|_| FetchError::Body)
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

impl Fetch for HttpFetcher {
    fn get<'a>(&'a self, url: &'a str, accept: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            let uri: http::Uri = url.parse().map_err(|_| FetchError::BadUrl)?;
            let req = http::Request::get(uri)
                .header(http::header::ACCEPT, accept)
                .body(Full::new(Bytes::new()))
                .map_err(|_| FetchError::BadUrl)?;
            self.send(req, FETCH_TIMEOUT, max_bytes).await
        })
    }

    fn post<'a>(&'a self, post: Post<'a>) -> FetchFuture<'a> {
        Box::pin(async move {
            let uri: http::Uri = post.url.parse().map_err(|_| FetchError::BadUrl)?;
            let mut req = http::Request::post(uri)
                .header(http::header::ACCEPT, post.accept)
                .header(http::header::CONTENT_TYPE, post.content_type);
            if let Some(a) = post.authorization {
                req = req.header(http::header::AUTHORIZATION, a);
            }
            let req = req
                .body(Full::new(post.body))
                .map_err(|_| FetchError::BadUrl)?;
            self.send(req, post.timeout, post.max_bytes).await
        })
    }
}
