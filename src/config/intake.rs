//! `intake:` — revocations sent by the identity provider: which issuers are
//! trusted (each with its own keys, read as `jwt` reads them) and where the
//! proxy receives OpenID Back-Channel Logout and Shared Signals (SSF/CAEP)
//! push deliveries.

use super::jwt::{read_issuer_keys, JwtSettings};
use super::reader::{Problems, Section};
use super::secret::Secret;
use serde::Serialize;
use std::path::Path;

/// The `typ` values a logout token may carry by default (Keycloak sends `JWT`).
pub const DEFAULT_LOGOUT_TYP: [&str; 2] = ["logout+jwt", "JWT"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct IntakeSettings {
    pub issuers: Vec<IssuerSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout: Option<BackchannelLogoutSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssf: Option<SsfSettings>,
}

impl IntakeSettings {
    /// No intake endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty() && self.backchannel_logout.is_none() && self.ssf.is_none()
    }
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

/// `intake.ssf`: Shared Signals Framework push delivery (RFC 8935).
#[derive(Debug, Clone, Serialize)]
pub struct SsfSettings {
    /// Path on the public listener the transmitter posts SETs to.
    pub push_path: String,
    /// The exact `Authorization` header the transmitter sends.
    pub authorization: Secret,
}

pub(super) fn read_intake(mut s: Section<'_>, base: &Path, p: &mut Problems) -> IntakeSettings {
    let issuers = read_issuers(s.get("issuers"), &s.child_path("issuers"), base, p);
    let backchannel_logout = read_backchannel(s.section("backchannel_logout", p), p);
    let ssf = read_ssf(s.section("ssf", p), p);
    let status_list = s.section("status_list", p);
    if status_list.is_present() {
        p.add(
            status_list.path(),
            "token status lists are not supported by this version; remove this section",
        );
    }
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
    if let (Some(b), Some(f)) = (&backchannel_logout, &ssf) {
        if b.path == f.push_path {
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
    let push_path = s.string("push_path", p).unwrap_or_default();
    check_path(&push_path, &s.child_path("push_path"), p);
    let authorization = s.string("authorization", p).unwrap_or_default();
    if authorization.len() < 16 {
        p.add(
            &s.child_path("authorization"),
            "required: the exact Authorization header the transmitter sends (16 characters or more)",
        );
    }
    let poll = s.section("poll", p);
    if poll.is_present() {
        p.add(
            poll.path(),
            "poll delivery (RFC 8936) is not supported by this version; use push_path",
        );
    }
    s.finish(p);
    Some(SsfSettings {
        push_path,
        authorization: Secret(authorization),
    })
}
