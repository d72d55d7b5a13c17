//! The listeners and their neighbours: `listen`, `upstream`, `upstream_tls`,
//! `tls`, `timeouts`, `admin` and `log`.

use super::reader::{Problems, Section};
use super::secret::{ser_duration, Secret};
use super::{one_of, resolve, socket_addr};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default proxy listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default TCP connect timeout to the upstream (2 s).
pub const DEFAULT_UPSTREAM_CONNECT: Duration = Duration::from_secs(2);
/// Default wait for the upstream's response headers (30 s).
pub const DEFAULT_UPSTREAM_RESPONSE: Duration = Duration::from_secs(30);
/// Default time a client has to send a request head, and a new connection
/// its first request (h2: its first HEADERS frame) (10 s).
pub const DEFAULT_CLIENT_HEADER: Duration = Duration::from_secs(10);
/// Default time a keep-alive connection may sit idle between requests (60 s).
pub const DEFAULT_CLIENT_IDLE: Duration = Duration::from_secs(60);
/// Default drain time after SIGTERM (20 s).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeouts {
    #[serde(serialize_with = "ser_duration")]
    pub upstream_connect: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub upstream_response: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub client_header: Duration,
    /// How long a keep-alive connection may wait for its next request.
    #[serde(serialize_with = "ser_duration")]
    pub client_idle: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

pub(super) fn read_upstream(text: Option<String>, p: &mut Problems) -> String {
    let Some(text) = text else {
        p.add("upstream", "required (e.g. http://127.0.0.1:3000)");
        return String::new();
    };
    match text.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https"))
                && uri.authority().is_some() =>
        {
            if uri.query().is_some() {
                p.add("upstream", "must not carry a query string");
            }
            text.trim_end_matches('/').to_string()
        }
        _ => {
            p.add(
                "upstream",
                format!("{text:?} is not an http:// or https:// URL with a host"),
            );
            text
        }
    }
}

pub(super) fn read_server_tls(
    mut s: Section<'_>,
    base: &Path,
    p: &mut Problems,
) -> Option<ServerTls> {
    let present = s.is_present();
    let cert = s.string("cert_file", p);
    let key = s.string("key_file", p);
    let path = s.path().to_string();
    s.finish(p);
    if !present {
        return None;
    }
    match (cert, key) {
        (Some(c), Some(k)) => Some(ServerTls {
            cert_file: resolve(base, &c),
            key_file: resolve(base, &k),
        }),
        _ => {
            p.add(&path, "needs both cert_file and key_file");
            None
        }
    }
}

pub(super) fn read_timeouts(mut s: Section<'_>, p: &mut Problems) -> Timeouts {
    let t = Timeouts {
        upstream_connect: s
            .duration("upstream_connect", p)
            .unwrap_or(DEFAULT_UPSTREAM_CONNECT),
        upstream_response: s
            .duration("upstream_response", p)
            .unwrap_or(DEFAULT_UPSTREAM_RESPONSE),
        client_header: s
            .duration("client_header", p)
            .unwrap_or(DEFAULT_CLIENT_HEADER),
        client_idle: s.duration("client_idle", p).unwrap_or(DEFAULT_CLIENT_IDLE),
        shutdown_grace: s
            .duration("shutdown_grace", p)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
    };
    for (name, d) in [
        ("upstream_connect", t.upstream_connect),
        ("upstream_response", t.upstream_response),
        ("client_header", t.client_header),
        ("client_idle", t.client_idle),
    ] {
        if d.is_zero() {
            p.add(&s.child_path(name), "must be greater than 0");
        }
    }
    s.finish(p);
    t
}

pub(super) fn read_admin(
    mut s: Section<'_>,
    proxy_listen: SocketAddr,
    p: &mut Problems,
) -> Option<AdminSettings> {
    let present = s.is_present();
    let listen_path = s.child_path("listen");
    let listen = s.string("listen", p);
    let token = s.string("token", p).map(Secret);
    s.finish(p);
    if !present {
        return None;
    }
    let listen = socket_addr(listen, "127.0.0.1:9901", &listen_path, p);
    if listen == proxy_listen && listen.port() != 0 {
        p.add(
            &listen_path,
            "must differ from listen: the admin API is never proxied",
        );
    }
    if matches!(&token, Some(Secret(t)) if t.len() < 16) {
        p.add("admin.token", "must be at least 16 characters");
    }
    Some(AdminSettings { listen, token })
}

pub(super) fn read_log(mut s: Section<'_>, p: &mut Problems) -> LogSettings {
    let format = one_of(
        s.string("format", p),
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
        &s.child_path("format"),
        p,
    );
    let level = s.string("level", p).unwrap_or_else(|| "info".to_string());
    if !["trace", "debug", "info", "warn", "error", "off"].contains(&level.as_str()) {
        p.add(
            &s.child_path("level"),
            format!("{level:?} is not one of trace, debug, info, warn, error, off"),
        );
    }
    s.finish(p);
    LogSettings { format, level }
}
