//! `intake:` — revocations sent by the identity provider: which issuers are
//! trusted (each with its own keys, read as `jwt` reads them) and where the
//! proxy receives OpenID Back-Channel Logout and Shared Signals (SSF/CAEP)
//! push deliveries.

use super::jwt::{read_issuer_keys, JwtSettings};
use super::reader::{Problems, Section};
use super::secret::{ser_duration, Secret};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The `typ` values a logout token may carry by default (Keycloak sends `JWT`).
pub const DEFAULT_LOGOUT_TYP: [&str; 2] = ["logout+jwt", "JWT"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct IntakeSettings {
    pub issuers: Vec<IssuerSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout: Option<BackchannelLogoutSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssf: Option<SsfSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_list: Option<StatusListSettings>,
}

impl IntakeSettings {
    /// No intake endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
            && self.backchannel_logout.is_none()
            && self.ssf.is_none()
            && self.status_list.is_none()
    }

    /// Token status lists are checked (`status_list.enabled`).
    pub fn status_lists(&self) -> Option<&StatusListSettings> {
        self.status_list.as_ref().filter(|s| s.enabled)
    }
}

/// Default shortest time a status list is cached (10 s).
pub const DEFAULT_STATUS_MIN_TTL: Duration = Duration::from_secs(10);
/// Default longest time a status list is cached (1 h).
pub const DEFAULT_STATUS_MAX_TTL: Duration = Duration::from_secs(3600);
/// Default longest a request waits for a status list (500 ms).
pub const DEFAULT_STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// `intake.status_list`: Token Status Lists (draft-ietf-oauth-status-list).
#[derive(Debug, Clone, Serialize)]
pub struct StatusListSettings {
    pub enabled: bool,
    #[serde(serialize_with = "ser_duration")]
    pub min_ttl: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_ttl: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// List URIs allowed beside the issuers' origins, compared exactly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_uris: Vec<String>,
}

/// One trusted identity provider.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// `iss` of its signals must equal this exactly.
    pub issuer: String,
    /// `aud` of its signals must hold one of these.
    pub audience: Vec<String>,
    /// Its keys and algorithms, in the form of a `jwt:` section.
    pub keys: JwtSettings,
}

impl Serialize for IssuerSettings {
    /// As the file writes it: the issuer, its audience and its keys (masked).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let k = &self.keys;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("issuer", &self.issuer)?;
        m.serialize_entry("audience", &self.audience)?;
        m.serialize_entry("algorithms", &k.algorithms)?;
        if let Some(secret) = &k.secret {
            m.serialize_entry("secret", secret)?;
        }
        if let Some(f) = &k.public_key_file {
            m.serialize_entry("public_key_file", f)?;
        }
        if let Some(u) = &k.jwks_url {
            m.serialize_entry("jwks_url", &super::mask_url(u))?;
        }
        m.end()
    }
}

/// `intake.backchannel_logout`: OpenID Connect Back-Channel Logout 1.0.
#[derive(Debug, Clone, Serialize)]
pub struct BackchannelLogoutSettings {
    /// Path on the public listener the identity provider posts to.
    pub path: String,
    /// Accepted header `typ` values (compared without case and without an
    /// `application/` prefix); a logout token without `typ` is accepted too.
    pub accept_typ: Vec<String>,
}

/// Default pause between polls that brought nothing (5 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default most SETs asked for in one poll.
pub const DEFAULT_POLL_MAX_EVENTS: u64 = 100;
/// Largest `max_events` accepted.
pub const MAX_POLL_MAX_EVENTS: u64 = 1000;

/// `intake.ssf`: Shared Signals Framework delivery, push (RFC 8935) and/or
/// poll (RFC 8936).
#[derive(Debug, Clone, Serialize)]
pub struct SsfSettings {
    /// Path on the public listener the transmitter posts SETs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_path: Option<String>,
    /// The exact `Authorization` header the transmitter sends with a push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<SsfPollSettings>,
}

/// `intake.ssf.poll`: where and how often the proxy polls for SETs.
#[derive(Debug, Clone, Serialize)]
pub struct SsfPollSettings {
    #[serde(serialize_with = "super::secret::ser_url")]
    pub url: String,
    /// The `Authorization` header sent with each poll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Secret>,
    /// Pause after a poll that brought nothing; also the first back-off step.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Most SETs asked for in one poll (`maxEvents`).
    pub max_events: u64,
}

pub(super) fn read_intake(mut s: Section<'_>, base: &Path, p: &mut Problems) -> IntakeSettings {
    let issuers = read_issuers(s.get("issuers"), &s.child_path("issuers"), base, p);
    let backchannel_logout = read_backchannel(s.section("backchannel_logout", p), p);
    let ssf = read_ssf(s.section("ssf", p), p);
    let status_list = read_status_list(s.section("status_list", p), p);
    let present = s.is_present();
    let at = s.path().to_string();
    s.finish(p);
    let endpoints = backchannel_logout.is_some() || ssf.is_some();
    if present && endpoints && issuers.is_empty() {
        p.add(
            &format!("{at}.issuers"),
            "list at least one issuer whose signals are trusted",
        );
    }
    if let Some(lists) = status_list.as_ref().filter(|l| l.enabled) {
        if issuers.is_empty() && lists.allowed_uris.is_empty() {
            p.add(
                &format!("{at}.status_list"),
                "no list could ever be fetched: list intake.issuers (their origins) or allowed_uris",
            );
        }
    }
    if let (Some(b), Some(Some(push))) = (&backchannel_logout, ssf.as_ref().map(|f| &f.push_path)) {
        if b.path.eq_ignore_ascii_case(push) {
            p.add(
                &format!("{at}.ssf.push_path"),
                "must differ from backchannel_logout.path",
            );
        }
    }
    IntakeSettings {
        issuers,
        backchannel_logout,
        ssf,
        status_list,
    }
}

fn read_issuers(
    v: Option<&serde_yaml::Value>,
    path: &str,
    base: &Path,
    p: &mut Problems,
) -> Vec<IssuerSettings> {
    let items = match v {
        None | Some(serde_yaml::Value::Null) => return Vec::new(),
        Some(serde_yaml::Value::Sequence(items)) => items,
        Some(_) => {
            p.add(
                path,
                "expected a list like [{issuer: https://idp.example.com, jwks_url: …, audience: [my-app]}]",
            );
            return Vec::new();
        }
    };
    let mut out: Vec<IssuerSettings> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let mut s = Section::open(Some(item), &at, p);
        let issuer = s.string("issuer", p).unwrap_or_default();
        if issuer.is_empty() {
            p.add(
                &s.child_path("issuer"),
                "required: the exact iss of its signals",
            );
        } else if out.iter().any(|o| o.issuer == issuer) {
            p.add(
                &s.child_path("issuer"),
                format!("{issuer:?} is listed twice"),
            );
        }
        let audience = s.string_list("audience", p).unwrap_or_default();
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            p.add(
                &s.child_path("audience"),
                "required: the audience (client id) its signals are addressed to",
            );
        }
        let mut keys = read_issuer_keys(&mut s, base, p);
        keys.issuer = Some(issuer.clone());
        keys.audience = audience.clone();
        s.finish(p);
        out.push(IssuerSettings {
            issuer,
            audience,
            keys,
        });
    }
    out
}

/// An intake path: absolute, already in normal form, not `/`.
fn check_path(path: &str, at: &str, p: &mut Problems) {
    let normal = path.starts_with('/')
        && path.len() > 1
        && !path.contains("//")
        && !path.contains('?')
        && !path.contains('#')
        && !path.contains('%')
        && !path.ends_with('/')
        && path.split('/').all(|seg| seg != "." && seg != "..")
        && path.bytes().all(|b| b.is_ascii_graphic());
    if !normal {
        p.add(
            at,
            "must be an absolute path in normal form, like /oidc/backchannel-logout (no //, . or .. segments, %, ?, # or trailing /)",
        );
    }
}

fn read_backchannel(mut s: Section<'_>, p: &mut Problems) -> Option<BackchannelLogoutSettings> {
    if !s.is_present() {
        return None;
    }
    let path = s.string("path", p).unwrap_or_default();
    check_path(&path, &s.child_path("path"), p);
    let accept_typ = s
        .string_list("accept_typ", p)
        .unwrap_or_else(|| DEFAULT_LOGOUT_TYP.iter().map(|t| t.to_string()).collect());
    if accept_typ.iter().any(String::is_empty) {
        p.add(&s.child_path("accept_typ"), "empty typ value");
    }
    s.finish(p);
    Some(BackchannelLogoutSettings { path, accept_typ })
}

fn read_ssf(mut s: Section<'_>, p: &mut Problems) -> Option<SsfSettings> {
    if !s.is_present() {
        return None;
    }
    let push_path = s.string("push_path", p);
    if let Some(path) = &push_path {
        check_path(path, &s.child_path("push_path"), p);
    }
    let authorization = s.string("authorization", p);
    match (&push_path, &authorization) {
        (Some(_), Some(a)) if a.len() < 16 => p.add(
            &s.child_path("authorization"),
            "the exact Authorization header the transmitter sends: 16 characters or more",
        ),
        (Some(_), None) => p.add(
            &s.child_path("authorization"),
            "required with push_path: the exact Authorization header the transmitter sends",
        ),
        (None, Some(_)) => p.add(
            &s.child_path("authorization"),
            "only used with push_path (a poll has its own poll.authorization)",
        ),
        _ => {}
    }
    let poll = read_poll(s.section("poll", p), p);
    if push_path.is_none() && poll.is_none() {
        p.add(s.path(), "give push_path, poll, or both");
    }
    s.finish(p);
    Some(SsfSettings {
        push_path,
        authorization: authorization.map(Secret),
        poll,
    })
}

fn read_poll(mut s: Section<'_>, p: &mut Problems) -> Option<SsfPollSettings> {
    if !s.is_present() {
        return None;
    }
    let url = s.string("url", p).unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        p.add(&s.child_path("url"), "required: an http:// or https:// URL");
    }
    let authorization = s.string("authorization", p).map(Secret);
    let interval = s.duration("interval", p).unwrap_or(DEFAULT_POLL_INTERVAL);
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        p.add(&s.child_path("interval"), "must be between 100ms and 1h");
    }
    let max_events = match s.get("max_events") {
        None => DEFAULT_POLL_MAX_EVENTS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_POLL_MAX_EVENTS).contains(&n) => n,
            _ => {
                p.add(
                    &s.child_path("max_events"),
                    format!("a whole number from 1 to {MAX_POLL_MAX_EVENTS}"),
                );
                DEFAULT_POLL_MAX_EVENTS
            }
        },
    };
    s.finish(p);
    Some(SsfPollSettings {
        url,
        authorization,
        interval,
        max_events,
    })
}

fn read_status_list(mut s: Section<'_>, p: &mut Problems) -> Option<StatusListSettings> {
    if !s.is_present() {
        return None;
    }
    let enabled = match s.get("enabled") {
        None => false,
        Some(serde_yaml::Value::Bool(b)) => *b,
        Some(_) => {
            p.add(&s.child_path("enabled"), "expected true or false");
            false
        }
    };
    let min_ttl = s.duration("min_ttl", p).unwrap_or(DEFAULT_STATUS_MIN_TTL);
    let max_ttl = s.duration("max_ttl", p).unwrap_or(DEFAULT_STATUS_MAX_TTL);
    if max_ttl > Duration::from_secs(7 * 24 * 3600) {
        p.add(&s.child_path("max_ttl"), "must be at most 7 days (168h)");
    }
    if min_ttl.is_zero() || min_ttl > max_ttl {
        p.add(
            &s.child_path("min_ttl"),
            "must be above 0 and at most max_ttl",
        );
    }
    let timeout = s.duration("timeout", p).unwrap_or(DEFAULT_STATUS_TIMEOUT);
    if timeout.is_zero() || timeout > Duration::from_secs(30) {
        p.add(&s.child_path("timeout"), "must be above 0 and at most 30s");
    }
    let allowed_uris = s.string_list("allowed_uris", p).unwrap_or_default();
    for (i, u) in allowed_uris.iter().enumerate() {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.add(
                &format!("{}[{i}]", s.child_path("allowed_uris")),
                "must be an http:// or https:// URL",
            );
        }
    }
    s.finish(p);
    Some(StatusListSettings {
        enabled,
        min_ttl,
        max_ttl,
        timeout,
        allowed_uris,
    })
}
