//! Hot reload: on SIGHUP, and when the config file or a key file it names
//! (`secret_file`, `public_key_file`) changes (polled every [`POLL_EVERY`]),
//! the file is read again. A valid file swaps routes, keys,
//! claim-header mappings, token sources and the log level atomically —
//! requests in flight finish on the configuration they started with, and no
//! connection is dropped. An invalid file is refused with all its problems
//! logged, and the old configuration keeps serving. Settings that cannot
//! change in a running process are kept as they were and reported as needing
//! a restart.

use crate::auth::Verifier;
use crate::config::Settings;
use crate::proxy::LiveProxy;
use crate::proxy::Proxy;
use parking_lot::Mutex;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the config file's modification time is checked (2 s).
pub const POLL_EVERY: Duration = Duration::from_secs(2);

pub struct Reloader {
    path: PathBuf,
    live: LiveProxy,
    current: Mutex<Settings>,
    fetcher: Arc<dyn crate::auth::jwks::Fetch>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Swapped in; the listed settings changed but need a restart.
    Applied { needs_restart: Vec<&'static str> },
    /// Refused; the old configuration keeps serving.
    Refused(Vec<String>),
}

/// What a running process cannot change keeps its old value in `new`;
/// returns the names of those that were changed in the file.
fn keep_fixed(old: &Settings, new: &mut Settings) -> Vec<&'static str> {
    let mut needs_restart = Vec::new();
    macro_rules! fixed {
        ($($field:ident).+, $name:literal) => {
            if differs(&old.$($field).+, &new.$($field).+) {
                needs_restart.push($name);
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    fixed!(listen, "listen");
    fixed!(upstream, "upstream");
    fixed!(upstream_tls, "upstream_tls");
    fixed!(tls, "tls");
    fixed!(timeouts, "timeouts");
    fixed!(revocation, "revocation");
    fixed!(admin, "admin");
    fixed!(log.format, "log.format");
    needs_restart
}

fn differs<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        live: LiveProxy,
        current: Settings,
        fetcher: Arc<dyn crate::auth::jwks::Fetch>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            path,
            live,
            current: Mutex::new(current),
            fetcher,
        })
    }

    /// Reads the file again and swaps the configuration if it is valid.
    pub async fn reload(&self, why: &str) -> Outcome {
        match self.prepare().await {
            Ok((new, proxy, needs_restart)) => {
                self.live.store(Arc::new(proxy));
                // Logged once in service, at the old level (a new one could silence it).
                if needs_restart.is_empty() {
                    tracing::info!(trigger = why, "Configuration reloaded");
                } else {
                    tracing::warn!(trigger = why, needs_restart = %crate::logging::Json(&needs_restart),
                        "Configuration reloaded; these settings changed but only take effect after a restart");
                }
                if let Err(e) = crate::logging::set_level(&new.log.level) {
                    tracing::warn!(error = %e, "Log level not changed");
                }
                *self.current.lock() = new;
                Outcome::Applied { needs_restart }
            }
            Err(problems) => {
                tracing::error!(trigger = why, problems = %crate::logging::Json(&problems),
                    "New configuration refused; the old one keeps serving");
                Outcome::Refused(problems)
            }
        }
    }

    /// Reads the file and builds the proxy it describes (with its keys
    /// fetched), keeping the old value of what cannot change while running.
    async fn prepare(&self) -> Result<(Settings, Proxy, Vec<&'static str>), Vec<String>> {
        let strings = |p: &[crate::config::Problem]| -> Vec<String> {
            p.iter().map(ToString::to_string).collect()
        };
        let mut new = Settings::load_checked(&self.path, &crate::proxy::hygiene::check_settings)
            .map_err(|e| strings(&e.0))?;
        let needs_restart = keep_fixed(&self.current.lock(), &mut new);
        let old_proxy = self.live.load_full();
        let mut verifier =
            Verifier::new(&new.jwt, &new.revocation, &new.forward).map_err(|p| strings(&p))?;
        verifier.keep_cache_of(&old_proxy.verifier);
        if let Some(jwks) = &verifier.keys.jwks {
            // Keys first: the new configuration must not serve without them.
            jwks.use_fetcher(self.fetcher.clone());
            jwks.refresh()
                .await
                .map_err(|e| vec![format!("jwt.jwks_url: {e}")])?;
            jwks.watch(self.fetcher.clone());
        }
        let mut proxy = Proxy::new(
            &new,
            verifier,
            old_proxy.revocations.clone(),
            old_proxy.metrics.clone(),
        )
        .map_err(|p| strings(&p))?;
        proxy.keep_replay_of(&old_proxy);
        proxy.use_fetcher(&self.fetcher);
        for (i, jwks) in proxy.issuer_jwks().iter().enumerate() {
            jwks.use_fetcher(self.fetcher.clone());
            jwks.refresh()
                .await
                .map_err(|e| vec![format!("intake.issuers: JWKS {i}: {e}")])?;
            jwks.watch(self.fetcher.clone());
        }
        Ok((new, proxy, needs_restart))
    }

    /// The files whose change means a reload: the config file, then the
    /// key files of the configuration in service.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        files.extend(self.current.lock().key_files());
        files
    }

    /// Reloads on SIGHUP and whenever the modification time of the file or
    /// of a key file it names changes (a Kubernetes Secret volume swaps a
    /// symlink: the time read through it changes too).
    pub fn watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let mut files = self.watched();
        tokio::spawn(async move {
            let mtimes = |files: &[PathBuf]| -> Vec<Option<SystemTime>> {
                files
                    .iter()
                    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                    .collect()
            };
            let mut seen = mtimes(&files);
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                let why = tokio::select! {
                    () = hangup => "SIGHUP",
                    () = tokio::time::sleep(POLL_EVERY) => {
                        let now = mtimes(&files);
                        // A file that is gone for now (mid-rotation) is no reason.
                        let changed = now.iter().zip(&seen).position(|(n, s)| n.is_some() && n != s);
                        match changed {
                            None => continue,
                            Some(0) => "config file changed",
                            Some(_) => "key file changed",
                        }
                    }
                };
                let before = mtimes(&files);
                let Some(r) = me.upgrade() else { return };
                r.reload(why).await;
                let now_watched = r.watched();
                seen = if now_watched == files {
                    before
                } else {
                    mtimes(&now_watched)
                };
                files = now_watched;
            }
        });
    }
}
