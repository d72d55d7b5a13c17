//! `forward:` — what the upstream is told: claim headers, `Authorization`,
//! `Host`, and which peers' forwarding headers are believed.

use super::one_of;
use super::reader::{self, scalar_string, Problems, Section};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationForward {
    Keep,
    Strip,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardSettings {
    /// (claim name, header name), in file order.
    #[serde(serialize_with = "ser_pairs")]
    pub claims_to_headers: Vec<(String, String)>,
    pub authorization: AuthorizationForward,
    /// The `Host` the upstream receives.
    pub host: HostMode,
    /// Peers whose `Forwarded`, `X-Forwarded-*` and `X-Real-IP` are kept.
    pub trusted_proxies: Vec<Cidr>,
    /// The header carrying a request id (lower case), `""` for none.
    pub request_id: String,
}

/// `forward.host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    /// The client's `Host` (the default).
    Preserve,
    /// The upstream's `host:port`, as nginx sends by default.
    Upstream,
}

/// An address block (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address block like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

pub(super) fn read_forward(mut s: Section<'_>, p: &mut Problems) -> ForwardSettings {
    let map_path = s.child_path("claims_to_headers");
    let claims_to_headers = read_claim_headers(s.get("claims_to_headers"), &map_path, p);
    let authorization = one_of(
        s.string("authorization", p),
        &[
            ("keep", AuthorizationForward::Keep),
            ("strip", AuthorizationForward::Strip),
        ],
        AuthorizationForward::Keep,
        &s.child_path("authorization"),
        p,
    );
    let host = one_of(
        s.string("host", p),
        &[
            ("preserve", HostMode::Preserve),
            ("upstream", HostMode::Upstream),
        ],
        HostMode::Preserve,
        &s.child_path("host"),
        p,
    );
    let trusted_path = s.child_path("trusted_proxies");
    let trusted_proxies = s
        .string_list("trusted_proxies", p)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            Cidr::parse(t)
                .map_err(|e| p.add(&format!("{trusted_path}[{i}]"), e))
                .ok()
        })
        .collect();
    let request_id = s.string("request_id", p).map_or_else(
        || "x-request-id".to_string(),
        |r| r.trim().to_ascii_lowercase(),
    );
    s.finish(p);
    ForwardSettings {
        claims_to_headers,
        authorization,
        host,
        trusted_proxies,
        request_id,
    }
}

/// `claims_to_headers`: claim → header, one claim per header name.
fn read_claim_headers(
    value: Option<&serde_yaml::Value>,
    map_path: &str,
    p: &mut Problems,
) -> Vec<(String, String)> {
    let mut claims_to_headers = Vec::new();
    match value {
        None => {}
        Some(serde_yaml::Value::Mapping(m)) => {
            for (k, v) in m {
                let claim = k.as_str().unwrap_or_default().to_string();
                let path = reader::join(map_path, &claim);
                let Some(header) = scalar_string(v, &path, p) else {
                    continue;
                };
                if claim.is_empty() {
                    p.add(&path, "claim names must be non-empty strings");
                } else if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    p.add(&path, format!("{header:?} is not a valid header name"));
                } else if let Some((other, _)) = claims_to_headers
                    .iter()
                    .find(|(_, h): &&(String, String)| same_field_name(h, &header))
                {
                    p.add(
                        &path,
                        format!("{header} already carries claim {other:?}: one header, one claim"),
                    );
                } else {
                    claims_to_headers.push((claim, header));
                }
            }
        }
        Some(_) => p.add(map_path, "expected a mapping of claim: Header-Name"),
    }
    claims_to_headers
}

/// `claim: Header`, as the file writes it.
fn ser_pairs<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Header names a CGI-style app reads as one: any case, `_` for `-`.
fn same_field_name(a: &str, b: &str) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}
