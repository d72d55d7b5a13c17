//! Outbound HTTP fetches on behalf of `auth` (a JWKS), with TLS to the
//! system roots, a time bound and a size bound. It implements
//! [`crate::auth::jwks::Fetch`], so `auth` itself holds no HTTP client.

use crate::auth::jwks::{Fetch, FetchFuture};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// One fetch may take this long (5 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// http:// and https:// (system roots, read at the first fetch).
#[derive(Default)]
pub struct HttpFetcher {
    client: std::sync::OnceLock<Result<HttpsClient, String>>,
}

impl HttpFetcher {
    pub fn new() -> HttpFetcher {
        HttpFetcher::default()
    }

    fn client(&self) -> Result<&HttpsClient, String> {
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
            .map_err(Clone::clone)
    }
}

impl Fetch for HttpFetcher {
    fn get<'a>(&'a self, url: &'a str, accept: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
            let req = http::Request::get(uri)
                .header(http::header::ACCEPT, accept)
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let fetch = async {
                let resp = self
                    .client()?
                    .request(req)
                    .await
                    .map_err(|e| format!("fetch failed: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("answered {}", resp.status()));
                }
                Limited::new(resp.into_body(), max_bytes)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .map_err(|e| format!("body: {e}"))
            };
            tokio::time::timeout(FETCH_TIMEOUT, fetch)
                .await
                .map_err(|_| "fetch timed out".to_string())?
        })
    }
}
