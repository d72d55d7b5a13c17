//! TLS in and out (rustls, ring).
//!
//! In: `tls.cert_file`/`tls.key_file`, ALPN `h2` and `http/1.1`. The files are
//! polled every [`RELOAD_POLL`]; a changed pair is loaded for new handshakes
//! (cert-manager rotation) without touching open connections, and a pair that
//! does not load keeps the previous certificate and is logged.
//!
//! Out: the client configuration for `https://` upstreams, trusting the
//! system roots or `upstream_tls.ca_file`.

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the certificate files are checked for changes (2 s).
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Makes ring the process-wide rustls provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Reads a certificate chain and its private key (PEM).
pub fn load_pair(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, String> {
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key_file.display()))?;
    let signing = any_supported_type(&key)
        .map_err(|e| format!("{}: unsupported private key: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Serves the current certificate; swapped by [`CertReloader::poll`].
#[derive(Debug)]
pub struct CertReloader {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<Option<(SystemTime, SystemTime)>>,
}

fn stamp(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

impl CertReloader {
    /// Loads the pair; an error here is a startup error.
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<Arc<CertReloader>, String> {
        let current = load_pair(cert_file, key_file)?;
        Ok(Arc::new(CertReloader {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(current),
            stamp: RwLock::new(stamp(cert_file, key_file)),
        }))
    }

    /// Reloads when either file changed; keeps the old pair if the new one is bad.
    pub fn poll(&self) {
        let now = stamp(&self.cert_file, &self.key_file);
        if now.is_none() || now == *self.stamp.read().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
                *self.stamp.write().unwrap_or_else(|e| e.into_inner()) = now;
                tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Not stamped: the next poll tries again (the writer may not be done).
                tracing::warn!(error = %e, "New TLS certificate not loaded; keeping the previous one");
            }
        }
    }

    /// Polls the files every [`RELOAD_POLL`] while `self` is alive elsewhere.
    pub fn watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_POLL).await;
                let Some(me) = weak.upgrade() else { return };
                me.poll();
            }
        });
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The acceptor for `tls:`: ALPN h2 and http/1.1, certificates from `certs`.
pub fn acceptor(certs: Arc<CertReloader>) -> tokio_rustls::TlsAcceptor {
    install_provider();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Client configuration for `https://` upstreams.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(f) => {
            for c in read_certs(f)? {
                roots.add(c).map_err(|e| format!("{}: {e}", f.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found; set upstream_tls.ca_file".into());
            }
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
