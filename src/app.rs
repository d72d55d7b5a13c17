//! Wiring: from validated [`Settings`] to a running proxy and admin listener.
//! Everything that can fail is checked before any port is bound.

use crate::admin::Admin;
use crate::auth::Verifier;
use crate::config::{ConfigError, Settings};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::revocation::{Clock, Revocations, StoreError};
use crate::server::{self, ServerOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the revocation store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct App {
    pub settings: Settings,
    /// The proxy as built at start.
    pub proxy: Arc<Proxy>,
    /// The proxy in service (swapped by a configuration reload).
    pub live: crate::proxy::LiveProxy,
    pub admin: Arc<Admin>,
    /// The serving certificate when `tls:` is set (reloaded on change).
    pub certs: Option<Arc<crate::tls::CertReloader>>,
}

impl App {
    /// Builds keys, routes and the store; binds nothing.
    pub async fn build(settings: Settings, clock: Clock) -> Result<App, StartError> {
        let verifier = Verifier::new(&settings.jwt, &settings.revocation, &settings.forward)
            .map_err(ConfigError)?;
        if let Some(jwks) = &verifier.jwks {
            jwks.watch();
        }
        let certs = match &settings.tls {
            Some(t) => Some(
                crate::tls::CertReloader::new(&t.cert_file, &t.key_file).map_err(|message| {
                    ConfigError(vec![crate::config::Problem {
                        path: "tls".into(),
                        message,
                    }])
                })?,
            ),
            None => None,
        };
        let revocations =
            Revocations::open(&settings.revocation, settings.jwt.leeway, clock).await?;
        let metrics = Arc::new(Metrics::default());
        let proxy = Arc::new(
            Proxy::new(&settings, verifier, revocations.clone(), metrics.clone())
                .map_err(ConfigError)?,
        );
        let live: crate::proxy::LiveProxy = Arc::new(arc_swap::ArcSwap::new(proxy.clone()));
        let hits_from = live.clone();
        let token_digest = settings
            .admin
            .as_ref()
            .and_then(|a| a.token.as_ref())
            .map(|t| crate::admin::api::token_digest(&t.0));
        let admin = Arc::new(Admin {
            revocations,
            metrics,
            ready: true.into(),
            cache_hits: Box::new(move || hits_from.load().verifier.cache_hits()),
            live: live.clone(),
            token_digest,
            claim_names: (
                settings.revocation.subject_claim.clone(),
                settings.revocation.token_claim.clone(),
            ),
        });
        Ok(App {
            settings,
            proxy,
            live,
            admin,
            certs,
        })
    }

    /// Binds the proxy and (when configured) the admin listener.
    pub async fn bind(&self) -> Result<(TcpListener, Option<TcpListener>), StartError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let main = bind(self.settings.listen).await?;
        let admin = match &self.settings.admin {
            Some(a) => Some(bind(a.listen).await?),
            None => None,
        };
        Ok((main, admin))
    }

    /// Serves until `shutdown` resolves, then turns unready and drains.
    pub async fn run(
        self,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let t = &self.settings.timeouts;
        let mut options = ServerOptions {
            client_header: t.client_header,
            client_idle: t.client_idle,
            shutdown_grace: t.shutdown_grace,
            tls: None,
        };
        if let Some(l) = admin_listener {
            let mut rx = stop_rx.clone();
            let admin = self.admin.clone();
            let handle = move |req, remote| {
                let admin = admin.clone();
                async move { admin.handle(req, remote).await }
            };
            tokio::spawn(server::serve_admin(
                l,
                options.clone(),
                handle,
                async move {
                    // The admin listener outlives the drain so probes see "not ready".
                    let _ = rx.wait_for(|s| *s).await;
                },
            ));
        }
        options.tls = self.certs.as_ref().map(|c| {
            c.watch();
            crate::tls::acceptor(c.clone())
        });
        let admin = self.admin.clone();
        server::serve(listener, self.live.clone(), options, async move {
            shutdown.await;
            admin.ready.store(false, Ordering::Relaxed);
            tracing::info!("Shutting down: no longer ready, draining connections");
        })
        .await;
        let _ = stop_tx.send(true);
        drop(stop_rx);
    }
}
