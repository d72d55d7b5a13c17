//! Wiring: from validated [`Settings`] to a running proxy and admin listener.
//!
//! [`prepare`] builds everything a configuration needs that can fail without
//! binding a port or reaching a store — keys, certificates, CA files, the
//! header policy, the store's local paths — and is what both `check` and
//! `run` call, so a file `check` accepts is a file `run` accepts. [`App::build`]
//! then opens the store; [`App::bind`] binds; [`serve`] runs until a signal.

use crate::admin::Admin;
use crate::auth::jwks::Fetch;
use crate::auth::Verifier;
use crate::config::{ConfigError, Problem, Settings, StoreKind};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::revocation::{Clock, Revocations, StoreError};
use crate::server::{self, ServerOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

impl StartError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => crate::exit::USAGE,
            StartError::Store(_) | StartError::Bind { .. } => crate::exit::UNAVAILABLE,
        }
    }
}

/// What [`prepare`] built from a configuration.
pub struct Prepared {
    pub settings: Settings,
    pub verifier: Verifier,
    pub certs: Option<Arc<crate::tls::CertReloader>>,
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

/// Reads the configuration file with every check there is, the header
/// policy's included: all problems at once, before anything starts.
pub fn load_settings(path: &std::path::Path) -> Result<Settings, ConfigError> {
    Settings::load_checked(path, &crate::proxy::hygiene::check_settings)
}

/// Everything but ports and stores, with every problem found.
pub fn prepare(settings: Settings) -> Result<Prepared, ConfigError> {
    let mut problems = Vec::new();
    let verifier = Verifier::new(&settings.jwt, &settings.revocation, &settings.forward)
        .map_err(|p| problems.extend(p))
        .ok();
    let certs = match &settings.tls {
        Some(t) => crate::tls::CertReloader::new(&t.cert_file, &t.key_file)
            .map_err(|m| problems.push(problem("tls", m)))
            .ok(),
        None => None,
    };
    if let Err(p) = crate::proxy::forward::Upstream::new(&settings) {
        let path = if settings
            .upstream_tls
            .as_ref()
            .is_some_and(|t| t.ca_file.is_some())
        {
            "upstream_tls.ca_file"
        } else {
            "upstream"
        };
        problems.push(problem(path, p));
    }
    problems.extend(crate::proxy::hygiene::check(&settings.forward));
    problems.extend(crate::intake::check(&settings));
    problems.extend(store_paths(&settings));
    match (verifier, problems.is_empty()) {
        (Some(verifier), true) => Ok(Prepared {
            settings,
            verifier,
            certs,
        }),
        _ => Err(ConfigError(problems)),
    }
}

/// The store's local files: the file store's log, the spool, the CA file.
fn store_paths(settings: &Settings) -> Vec<Problem> {
    let st = &settings.revocation.store;
    let mut out = Vec::new();
    let mut dir_of = |file: &Path, path: &str| {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if !dir.is_dir() {
            out.push(problem(
                path,
                format!("directory {} does not exist", dir.display()),
            ));
        }
    };
    if let StoreKind::File { path } = &st.kind {
        dir_of(path, "revocation.store.path");
    }
    if let Some(spool) = &st.spool {
        dir_of(spool, "revocation.store.path");
    }
    if let Some(ca) = &st.ca_file {
        if let Err(e) = std::fs::read(ca) {
            out.push(problem(
                "revocation.store.ca_file",
                format!("cannot read {}: {e}", ca.display()),
            ));
        }
    }
    out
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
    /// Fetches signing keys for this process (JWKS).
    pub fetcher: Arc<dyn Fetch>,
}

/// Starts what fetches on behalf of the signal and status-list checks:
/// the identity providers' JWKS kept fresh, the status lists' fetcher, and
/// (when configured) the SSF poller, which follows the configuration in force.
fn start_fetching(
    live: &crate::proxy::LiveProxy,
    fetcher: &Arc<dyn Fetch>,
    metrics: &Arc<Metrics>,
) {
    let proxy = live.load_full();
    for jwks in proxy.issuer_jwks() {
        jwks.watch(fetcher.clone());
    }
    proxy.use_fetcher(fetcher);
    // The poller idles while no configuration asks for it, so a reload can
    // add (or remove) SSF poll delivery.
    {
        use crate::intake::poll::{run, Current};
        let from = Arc::downgrade(live);
        let current = move || match from.upgrade() {
            None => Current::Gone,
            Some(live) => match live.load().intake.clone() {
                Some(i) if i.poll_settings().is_some() => Current::Poll(i),
                _ => Current::Idle,
            },
        };
        tokio::spawn(run(current, fetcher.clone(), metrics.clone()));
    }
}

impl App {
    /// Prepares, then opens the store; binds nothing.
    pub async fn build(settings: Settings, clock: Clock) -> Result<App, StartError> {
        let Prepared {
            settings,
            verifier,
            certs,
        } = prepare(settings)?;
        let fetcher: Arc<dyn Fetch> = Arc::new(crate::fetch::HttpFetcher::new());
        if let Some(jwks) = &verifier.keys.jwks {
            jwks.watch(fetcher.clone());
        }
        let revocations =
            Revocations::open(&settings.revocation, settings.jwt.leeway, clock).await?;
        let metrics = Arc::new(Metrics::default());
        let proxy = Arc::new(
            Proxy::new(&settings, verifier, revocations.clone(), metrics.clone())
                .map_err(ConfigError)?,
        );
        let live: crate::proxy::LiveProxy = Arc::new(arc_swap::ArcSwap::new(proxy.clone()));
        start_fetching(&live, &fetcher, &metrics);
        let token_digest = settings
            .admin
            .as_ref()
            .and_then(|a| a.token.as_ref())
            .map(|t| crate::admin::api::token_digest(&t.0));
        let from = live.clone();
        let upstream_of = live.clone();
        let about = crate::admin::About {
            upstream: Box::new(move || upstream_of.load().upstream().describe()),
            store: store_label(&settings.revocation.store),
            started: std::time::Instant::now(),
        };
        let admin = Arc::new(Admin {
            about,
            revocations,
            metrics,
            ready: true.into(),
            verifier: Box::new(move || from.load().verifier.clone()),
            token_digest,
            claim_names: crate::admin::ClaimNames {
                subject: settings.revocation.subject_claim.clone(),
                token: settings.revocation.token_claim.clone(),
                session: settings.revocation.session_claim.clone(),
            },
        });
        Ok(App {
            settings,
            proxy,
            live,
            admin,
            certs,
            fetcher,
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

/// Builds, binds and serves `settings` until SIGTERM or SIGINT; reloads from
/// `config` on SIGHUP and when it changes. Returns the exit code.
pub async fn serve(settings: Settings, config: Option<PathBuf>) -> i32 {
    let app = match App::build(settings, Clock::system()).await {
        Ok(app) => app,
        Err(e) => return report(&e),
    };
    let (listener, admin) = match app.bind().await {
        Ok(l) => l,
        Err(e) => return report(&e),
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| app.settings.listen.to_string(), |a| a.to_string());
    let admin_bound = admin
        .as_ref()
        .and_then(|a| a.local_addr().ok())
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    tracing::info!(
        listen = %bound,
        admin = %admin_bound,
        upstream = %app.settings.upstream,
        store = app.proxy.revocations.store_kind(),
        revocations = app.proxy.revocations.len(),
        "Proxy started"
    );
    let _reloader = config.map(|path| {
        let r = crate::reload::Reloader::new(
            path,
            app.live.clone(),
            app.settings.clone(),
            app.fetcher.clone(),
        );
        r.watch();
        r
    });
    app.run(listener, admin, shutdown_signal()).await;
    tracing::info!("Stopped: connections drained");
    crate::exit::OK
}

/// Prints a start failure and returns its exit code.
pub fn report(e: &StartError) -> i32 {
    match e {
        StartError::Config(c) => {
            eprintln!("revoke-proxy: invalid configuration:");
            for p in &c.0 {
                eprintln!("  {p}");
            }
        }
        other => eprintln!("revoke-proxy: {other}"),
    }
    e.exit_code()
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The store as the status page names it.
fn store_label(store: &crate::config::StoreSettings) -> String {
    use crate::config::{StoreKind, StoreMode};
    let mode = match store.mode {
        StoreMode::Replica => "replica",
        StoreMode::PerRequest => "per_request",
    };
    match &store.kind {
        StoreKind::Memory => "memory".into(),
        StoreKind::File { .. } => "file".into(),
        StoreKind::Redis { cluster, .. } if !cluster.is_empty() => {
            format!("redis cluster ({mode})")
        }
        StoreKind::Redis { .. } => format!("redis ({mode})"),
        StoreKind::Memcached { .. } => format!("memcached ({mode})"),
    }
}
