//! Secrets and how settings are printed: secrets and URL passwords are
//! masked, durations written the way the file reads them.

use serde::Serialize;
use std::time::Duration;

/// A secret string; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

impl Serialize for Secret {
    /// Masked, at the secret's own length: the printed settings stay a
    /// valid configuration (length checks pass) without showing it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mask(self.0.len()))
    }
}

/// `*` repeated `len` times (at least 8).
fn mask(len: usize) -> String {
    "*".repeat(len.max(8))
}

/// A URL with its password (the part between `:` and `@`) masked.
pub fn mask_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:********@{host}")
            } else {
                format!("{scheme}://********@{host}")
            }
        }
        None => u.to_string(),
    }
}

pub(super) fn ser_opt_url<S: serde::Serializer>(
    u: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(&mask_url(u)),
        None => s.serialize_none(),
    }
}

pub(super) fn ser_url<S: serde::Serializer>(u: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url(u))
}

pub(super) fn ser_urls<S: serde::Serializer>(urls: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(|u| mask_url(u)))
}

pub(super) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Writes a duration the way the config reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Binary secret material (an HMAC key); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mask(self.0.len()))
    }
}
