//! `routes:` — the rules, their methods, actions, statuses and upgrades.

use super::one_of;
use super::reader::{scalar_string, Problems, Section};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Revoke,
    Purge,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Revoke => "revoke",
            Action::Purge => "purge",
        }
    }
}

/// Which upstream statuses apply a route's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// `2xx`: a whole class, given by its first digit.
    Class(u16),
    /// `204`: one status.
    Exact(u16),
}

impl Serialize for StatusMatch {
    /// As the file writes it: `2xx` or `204`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusMatch::Class(c) => s.serialize_str(&format!("{c}xx")),
            StatusMatch::Exact(code) => s.serialize_str(&code.to_string()),
        }
    }
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Class(c) => status / 100 == c,
            StatusMatch::Exact(s) => status == s,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteSettings {
    /// The pattern as written: `/logout` (exact) or `/static/*` (prefix).
    pub path: String,
    /// Upper-case method names; `None` = every method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// `false` for `auth: none`.
    #[serde(serialize_with = "ser_auth")]
    pub auth: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apply_on: Vec<StatusMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<u16>,
    /// Upgrade protocols (`Upgrade:` tokens, lower case) this route tunnels.
    pub upgrades: Vec<String>,
    /// `clear_cookie`: expire the token cookie when the action applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_cookie: Option<ClearCookie>,
}

/// Where the token cookie lives, to expire it (`clear_cookie: true`, or
/// `{path: /app, domain: example.com}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearCookie {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The `Set-Cookie` value, once the cookie's name is known (`jwt.token_from`).
    #[serde(skip)]
    pub header: String,
}

fn ser_auth<S: serde::Serializer>(auth: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *auth { "required" } else { "none" })
}

fn read_route_path(text: Option<String>, path: &str, p: &mut Problems) -> String {
    let Some(text) = text else {
        p.add(path, "required");
        return "/".to_string();
    };
    let body = text.strip_suffix("/*").unwrap_or(&text);
    let lower = body.to_ascii_lowercase();
    if !text.starts_with('/') {
        p.add(path, format!("{text:?} must start with /"));
    } else if body.contains('*') {
        p.add(path, "only a trailing /* is allowed as a wildcard");
    } else if body.contains(['?', '#', '\\', ';']) || lower.contains("%2f") || lower.contains("%5c")
    {
        p.add(
            path,
            "must be a plain path without ?, #, ;, \\ or encoded slashes",
        );
    } else if body.split('/').any(|seg| seg == "." || seg == "..") || body.contains("//") {
        p.add(
            path,
            "must be a normalized path (no ., .. or empty segments)",
        );
    }
    text
}

pub(super) fn read_routes(v: Option<&serde_yaml::Value>, p: &mut Problems) -> Vec<RouteSettings> {
    let Some(v) = v else { return Vec::new() };
    let serde_yaml::Value::Sequence(items) = v else {
        p.add("routes", "expected a list of rules");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read_route(item, &format!("routes[{i}]"), p))
        .collect()
}

fn read_route(item: &serde_yaml::Value, rp: &str, p: &mut Problems) -> RouteSettings {
    let mut s = Section::open(Some(item), rp, p);
    let path = read_route_path(s.string("path", p), &s.child_path("path"), p);
    let methods = read_methods(s.string_list("methods", p), rp, p);
    let auth = one_of(
        s.string("auth", p),
        &[("none", false), ("required", true)],
        true,
        &s.child_path("auth"),
        p,
    );
    let action = s.string("action", p).and_then(|a| match a.as_str() {
        "revoke" => Some(Action::Revoke),
        "purge" => Some(Action::Purge),
        other => {
            p.add(
                &format!("{rp}.action"),
                format!("{other:?} is not one of revoke, purge"),
            );
            None
        }
    });
    let apply_on = match s.string_list("apply_on", p) {
        None => default_apply_on(action),
        Some(list) => read_apply_on(&list, rp, p),
    };
    let upgrades = read_upgrades(&mut s, auth, rp, p);
    let clear_cookie = s
        .get("clear_cookie")
        .and_then(|v| read_clear_cookie(v, &format!("{rp}.clear_cookie"), p));
    if clear_cookie.is_some() && action.is_none() {
        p.add(
            &format!("{rp}.clear_cookie"),
            "only routes with an action (revoke, purge) clear the token cookie",
        );
    }
    let respond = s
        .get("respond")
        .and_then(|v| read_respond(v, &format!("{rp}.respond"), p));
    if !auth && action.is_some() {
        p.add(
            rp,
            "auth: none cannot be combined with an action (the action needs a verified token)",
        );
    }
    if respond.is_some() && action.is_none() {
        p.add(
            &format!("{rp}.respond"),
            "only routes with an action can answer by themselves",
        );
    }
    s.finish(p);
    RouteSettings {
        path,
        methods,
        auth,
        action,
        apply_on,
        respond,
        upgrades,
        clear_cookie,
    }
}

/// `true` (path `/`), `false`, or `{path, domain}`.
fn read_clear_cookie(v: &serde_yaml::Value, at: &str, p: &mut Problems) -> Option<ClearCookie> {
    let visible = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && b != b';');
    match v {
        serde_yaml::Value::Bool(false) => None,
        serde_yaml::Value::Bool(true) => Some(ClearCookie {
            path: "/".into(),
            domain: None,
            header: String::new(),
        }),
        serde_yaml::Value::Mapping(_) => {
            let mut s = Section::open(Some(v), at, p);
            let path = s.string("path", p).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || !visible(&path) {
                p.add(&s.child_path("path"), "must be a path like / or /app");
            }
            let domain = s.string("domain", p);
            if domain.as_deref().is_some_and(|d| !visible(d)) {
                p.add(
                    &s.child_path("domain"),
                    "must be a host name like example.com",
                );
            }
            s.finish(p);
            Some(ClearCookie {
                path,
                domain,
                header: String::new(),
            })
        }
        _ => {
            p.add(at, "expected true, false or {path: /, domain: example.com}");
            None
        }
    }
}

/// Fills in each `clear_cookie`'s `Set-Cookie` value from the one cookie
/// the token is read from; a route that clears a cookie no token comes
/// from is a problem.
pub(super) fn name_cleared_cookies(
    routes: &mut [RouteSettings],
    cookie: Option<&str>,
    p: &mut Problems,
) {
    for (i, r) in routes.iter_mut().enumerate() {
        let Some(c) = r.clear_cookie.as_mut() else {
            continue;
        };
        let Some(name) = cookie else {
            p.add(
                &format!("routes[{i}].clear_cookie"),
                "jwt.token_from has no cookie to clear: add {cookie: <name>}",
            );
            continue;
        };
        let domain = c
            .domain
            .as_deref()
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        c.header = format!(
            "{name}=; Path={}{domain}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            c.path
        );
    }
}

/// Upper-cased; a name outside [`METHODS`] is a problem (a typo would make
/// the rule match nothing, and a logout revoke nothing).
fn read_methods(list: Option<Vec<String>>, rp: &str, p: &mut Problems) -> Option<Vec<String>> {
    let list = list?;
    if list.is_empty() {
        p.add(
            &format!("{rp}.methods"),
            "must list at least one method (omit it for all)",
        );
    }
    Some(
        list.iter()
            .enumerate()
            .map(|(j, m)| {
                let up = m.to_ascii_uppercase();
                if up == "CONNECT" {
                    p.add(
                        &format!("{rp}.methods[{j}]"),
                        "CONNECT is refused (400) on every path before routing; a rule cannot match it",
                    );
                } else if !METHODS.contains(&up.as_str()) {
                    p.add(
                        &format!("{rp}.methods[{j}]"),
                        format!(
                            "{m:?} is not a method this proxy knows ({}); a typo here would make the rule match nothing",
                            METHODS.join(", ")
                        ),
                    );
                }
                up
            })
            .collect(),
    )
}

fn read_apply_on(list: &[String], rp: &str, p: &mut Problems) -> Vec<StatusMatch> {
    list.iter()
        .enumerate()
        .filter_map(|(j, t)| {
            parse_status_match(t).or_else(|| {
                p.add(
                    &format!("{rp}.apply_on[{j}]"),
                    format!("{t:?} is not a status class (2xx) or a status (204)"),
                );
                None
            })
        })
        .collect()
}

fn read_respond(v: &serde_yaml::Value, path: &str, p: &mut Problems) -> Option<u16> {
    let text = scalar_string(v, path, p)?;
    match text.parse::<u16>() {
        Ok(code) if (200..600).contains(&code) => Some(code),
        _ => {
            p.add(
                path,
                format!("{text:?} is not a status code between 200 and 599"),
            );
            None
        }
    }
}

fn parse_status_match(t: &str) -> Option<StatusMatch> {
    let t = t.trim().to_ascii_lowercase();
    if let Some(class) = t.strip_suffix("xx") {
        return match class.parse::<u16>() {
            Ok(c) if (1..=5).contains(&c) => Some(StatusMatch::Class(c)),
            _ => None,
        };
    }
    match t.parse::<u16>() {
        Ok(s) if (100..600).contains(&s) => Some(StatusMatch::Exact(s)),
        _ => None,
    }
}

/// Methods a rule may name: RFC 9110 §9 (CONNECT aside: it is refused
/// before routing), PATCH (RFC 5789) and WebDAV's.
pub const METHODS: [&str; 19] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "MKCALENDAR",
    "QUERY",
];

/// Upgrades a route tunnels when it names none: WebSocket behind a token;
/// nothing on a public route (its tunnel could never be re-checked).
pub const DEFAULT_UPGRADES: [&str; 1] = ["websocket"];

/// Logouts apply on 2xx and 3xx (a web app's logout redirects to its login
/// page; a logout applied wrongly costs nothing); purges on 2xx only.
fn default_apply_on(action: Option<Action>) -> Vec<StatusMatch> {
    match action {
        Some(Action::Revoke) => vec![StatusMatch::Class(2), StatusMatch::Class(3)],
        _ => vec![StatusMatch::Class(2)],
    }
}

fn read_upgrades(s: &mut Section<'_>, auth: bool, rp: &str, p: &mut Problems) -> Vec<String> {
    let Some(list) = s.string_list("upgrades", p) else {
        return if auth {
            DEFAULT_UPGRADES.iter().map(|u| u.to_string()).collect()
        } else {
            Vec::new()
        };
    };
    let mut out = Vec::new();
    for (j, u) in list.iter().enumerate() {
        let lower = u.trim().to_ascii_lowercase();
        let path = format!("{rp}.upgrades[{j}]");
        if lower.starts_with("h2c") || lower.starts_with("http/2") {
            p.add(
                &path,
                "h2c upgrades are hop-by-hop (RFC 9113 §3.1) and never tunnelled",
            );
        } else if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            p.add(&path, format!("{u:?} is not an Upgrade protocol name"));
        } else {
            out.push(lower);
        }
    }
    out
}
