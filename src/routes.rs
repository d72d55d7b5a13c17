//! Route rules: path normalization and first-match-wins matching.
//!
//! Every ambiguity is resolved toward more protection. Dot segments (also
//! `%2e%2e` and `..;x`) are resolved and `//` collapsed before matching, and
//! the upstream receives that normalized path. Encoded slashes are refused.
//! Public (`auth: none`) rules match the normalized path exactly: case,
//! `;params` and a trailing slash must be as written, so they cannot widen
//! what is public. Every other rule (protected, revoke, purge) matches
//! loosely — ignoring case, `;params` and a trailing slash — so a logout
//! cannot be dodged by spelling it differently.

use crate::config::{Action, RouteSettings, StatusMatch};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with /")]
    NotAbsolute,
    #[error("encoded slash or backslash in path")]
    EncodedSlash,
    #[error("invalid percent-encoding in path")]
    BadEncoding,
    #[error("path climbs above the root")]
    AboveRoot,
}

/// A request path after normalization, in the two forms rules match against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// Dot segments resolved, `//` collapsed, unreserved characters decoded.
    /// This is what the upstream receives.
    pub strict: String,
    /// `strict` lower-cased, without `;params` and without a trailing slash.
    pub loose: String,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` of unreserved characters, upper-cases the rest, refuses
/// encoded `/` and `\`.
fn decode_unreserved(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let (h, l) = match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEncoding),
            };
            let c = h * 16 + l;
            if c == b'/' || c == b'\\' {
                return Err(PathError::EncodedSlash);
            }
            if is_unreserved(c) {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(
                    char::from_digit(u32::from(h), 16)
                        .unwrap_or('0')
                        .to_ascii_uppercase(),
                );
                out.push(
                    char::from_digit(u32::from(l), 16)
                        .unwrap_or('0')
                        .to_ascii_uppercase(),
                );
            }
            i += 3;
        } else {
            if b == b'\\' {
                return Err(PathError::EncodedSlash);
            }
            out.push(b as char);
            i += 1;
        }
    }
    Ok(out)
}

/// Normalizes a request path (without its query).
pub fn normalize(path: &str) -> Result<NormalizedPath, PathError> {
    if already_normal(path) {
        // What the general walk below gives for such a path, without
        // taking it apart.
        let mut loose = path.to_ascii_lowercase();
        if loose.len() > 1 && loose.ends_with('/') {
            loose.pop();
        }
        return Ok(NormalizedPath {
            strict: path.to_string(),
            loose,
        });
    }
    normalize_any(path)
}

/// A path the normalization leaves as it is: absolute, only unreserved
/// characters and single slashes, no `.` or `..` segment. Most request
/// paths are.
fn already_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes
            .iter()
            .fold(true, |ok, &b| ok & ((b == b'/') | is_unreserved(b)))
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..")
}

fn normalize_any(path: &str) -> Result<NormalizedPath, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if !path.is_ascii() {
        return Err(PathError::BadEncoding);
    }
    let trailing = path.len() > 1 && (path.ends_with('/') || ends_with_dot_segment(path));
    let mut out: Vec<String> = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = decode_unreserved(raw)?;
        // `..;x` is `..` to servlet containers: judge dot segments without params.
        let bare = seg.split(';').next().unwrap_or("");
        match bare {
            "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => out.push(seg),
        }
    }
    let mut strict = String::with_capacity(path.len());
    for seg in &out {
        strict.push('/');
        strict.push_str(seg);
    }
    if strict.is_empty() || trailing {
        strict.push('/');
    }
    let mut loose = String::with_capacity(strict.len());
    for seg in &out {
        // `/;x/logout` and `/logout/;` are `//logout` and `/logout/` to a
        // servlet container, which then collapses the empty segment: a
        // segment that is only `;params` is no segment at all here.
        let bare = seg.split(';').next().unwrap_or("");
        if bare.is_empty() {
            continue;
        }
        loose.push('/');
        loose.push_str(&bare.to_ascii_lowercase());
    }
    if loose.is_empty() {
        loose.push('/');
    }
    Ok(NormalizedPath { strict, loose })
}

fn ends_with_dot_segment(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let bare = last
        .split(';')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace("%2e", ".");
    bare == "." || bare == ".."
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `/static/*`: the base itself and everything below it.
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str, loose: bool) -> Pattern {
        let (base, prefix) = match text.strip_suffix("/*") {
            Some(b) => (b, true),
            None => (text, false),
        };
        let mut base = base.to_string();
        if loose {
            base = base.to_ascii_lowercase();
            while base.len() > 1 && base.ends_with('/') {
                base.pop();
            }
        }
        if prefix {
            Pattern::Prefix(base.trim_end_matches('/').to_string())
        } else {
            Pattern::Exact(if base.is_empty() { "/".into() } else { base })
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => path == p,
            Pattern::Prefix(base) => {
                base.is_empty()
                    || path == base
                    || (path.starts_with(base.as_str())
                        && path.as_bytes().get(base.len()) == Some(&b'/'))
            }
        }
    }
}

/// An escaped `;` (`%3B`) or `%` (`%25`): an app that decodes once more,
/// or cuts `;params` after decoding, would read another path than the one
/// matched (`/static/..%3B/admin`, `/static/%252e%252e/admin`). Such a path
/// never matches a public rule, so it needs a token; everything else about it
/// is left as sent.
fn reads_two_ways(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w.first() == Some(&b'%')
            && matches!(
                (w.get(1), w.get(2).map(u8::to_ascii_uppercase)),
                (Some(b'3'), Some(b'B')) | (Some(b'2'), Some(b'5'))
            )
    })
}

/// What a matched rule asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub auth: bool,
    pub action: Option<Action>,
    pub apply_on: Vec<StatusMatch>,
    pub respond: Option<u16>,
    /// Upgrade protocols tunnelled on this route (lower case).
    pub upgrades: Vec<String>,
    /// `Set-Cookie` value that expires the token cookie when the action applies.
    pub clear_cookie: Option<http::HeaderValue>,
    /// Index in `routes`, for logs.
    pub index: Option<usize>,
}

struct CompiledRoute {
    pattern: Pattern,
    methods: Option<Vec<String>>,
    rule: Rule,
}

pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    default: Rule,
}

impl RouteTable {
    pub fn new(routes: &[RouteSettings]) -> RouteTable {
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| CompiledRoute {
                pattern: Pattern::parse(&r.path, r.auth),
                methods: r.methods.clone(),
                rule: Rule {
                    auth: r.auth,
                    action: r.action,
                    apply_on: r.apply_on.clone(),
                    respond: r.respond,
                    upgrades: r.upgrades.clone(),
                    clear_cookie: r
                        .clear_cookie
                        .as_ref()
                        .and_then(|c| http::HeaderValue::from_str(&c.header).ok()),
                    index: Some(i),
                },
            })
            .collect();
        RouteTable {
            routes,
            default: Rule {
                auth: true,
                action: None,
                apply_on: Vec::new(),
                respond: None,
                upgrades: crate::config::DEFAULT_UPGRADES
                    .iter()
                    .map(|u| u.to_string())
                    .collect(),
                clear_cookie: None,
                index: None,
            },
        }
    }

    /// The first rule matching; the default (token required) otherwise.
    pub fn find(&self, method: &str, path: &NormalizedPath) -> &Rule {
        for r in &self.routes {
            let public = !r.rule.auth;
            let method_ok = match &r.methods {
                None => true,
                Some(list) if public => list.iter().any(|m| m == method),
                // Frameworks answer HEAD with the GET handler: a GET logout
                // reached by HEAD still revokes.
                Some(list) => list.iter().any(|m| {
                    m.eq_ignore_ascii_case(method)
                        || (m == "GET" && method.eq_ignore_ascii_case("HEAD"))
                }),
            };
            let path_ok = if public {
                r.pattern.matches(&path.strict) && !reads_two_ways(&path.strict)
            } else {
                r.pattern.matches(&path.loose)
            };
            if method_ok && path_ok {
                return &r.rule;
            }
        }
        &self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortcut_for_normal_paths_gives_what_the_general_walk_gives() {
        let alphabet = [
            "a", "B", "/", ".", "-", "%", "2", "e", "E", ";", "~", "_", "\\", "z9",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut shortcut = 0;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 1 + (seed % 10) as usize;
            let mut path = String::from("/");
            let mut r = seed;
            for _ in 0..len {
                path.push_str(alphabet[(r % alphabet.len() as u64) as usize]);
                r /= alphabet.len() as u64;
                if r == 0 {
                    r = seed.rotate_left(17);
                }
            }
            if already_normal(&path) {
                shortcut += 1;
            }
            assert_eq!(normalize(&path), normalize_any(&path), "{path}");
        }
        assert!(shortcut > 1000, "{shortcut} paths took the shortcut");
    }

    fn n(p: &str) -> NormalizedPath {
        normalize(p).unwrap()
    }

    #[test]
    fn dot_segments_and_double_slashes_are_resolved() {
        assert_eq!(n("/static/../admin").strict, "/admin");
        assert_eq!(n("/static/%2e%2e/admin").strict, "/admin");
        assert_eq!(n("/static/%2E%2e/admin").strict, "/admin");
        assert_eq!(n("/static/..;x/admin").strict, "/admin");
        assert_eq!(n("//static//./a").strict, "/static/a");
        assert_eq!(n("/a/b/..").strict, "/a/");
        assert_eq!(n("/").strict, "/");
        assert_eq!(n("/%41b").strict, "/Ab");
        assert_eq!(n("/a%3fb").strict, "/a%3Fb");
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(
            normalize("/static%2f..%2fadmin"),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a\\b"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("admin"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn loose_form_drops_case_params_and_trailing_slash() {
        let p = n("/LogOut;jsessionid=1/");
        assert_eq!(p.loose, "/logout");
        assert_eq!(p.strict, "/LogOut;jsessionid=1/");
    }

    fn table() -> RouteTable {
        let r = |path: &str, auth: bool, action: Option<Action>, methods: Option<Vec<&str>>| {
            RouteSettings {
                path: path.into(),
                methods: methods.map(|m| m.into_iter().map(String::from).collect()),
                auth,
                action,
                apply_on: vec![StatusMatch::Class(2)],
                respond: None,
                upgrades: Vec::new(),
                clear_cookie: None,
            }
        };
        RouteTable::new(&[
            r("/login", false, None, None),
            r("/static/*", false, None, None),
            r("/logout", true, Some(Action::Revoke), Some(vec!["POST"])),
            r("/signout", true, Some(Action::Revoke), Some(vec!["GET"])),
        ])
    }

    #[test]
    fn public_rules_match_exactly() {
        let t = table();
        assert!(!t.find("GET", &n("/login")).auth);
        assert!(t.find("GET", &n("/LOGIN")).auth);
        assert!(t.find("GET", &n("/login/")).auth);
        assert!(t.find("GET", &n("/login;x")).auth);
        assert!(!t.find("GET", &n("/static/app.js")).auth);
        assert!(!t.find("GET", &n("/static")).auth);
        assert!(t.find("GET", &n("/staticx")).auth);
        assert!(t.find("GET", &n("/static/../admin")).auth);
        assert!(t.find("GET", &n("/static;x/a")).auth);
        // Read another way by an app that decodes twice or cuts `;params`
        // after decoding: a token is needed.
        for p in [
            "/static/..%3B/admin",
            "/static/..%3b/admin",
            "/static/%252e%252e/admin",
            "/static/a%25",
            "/login%3B",
        ] {
            assert!(t.find("GET", &n(p)).auth, "{p}");
        }
        assert!(!t.find("GET", &n("/static/a%3Fb%20c")).auth);
    }

    #[test]
    fn action_rules_cannot_be_dodged() {
        let t = table();
        for p in [
            "/logout",
            "/LOGOUT",
            "/logout/",
            "/logout;a=b",
            "//logout",
            "/x/../logout",
            "/%6Cogout",
        ] {
            assert_eq!(t.find("POST", &n(p)).action, Some(Action::Revoke), "{p}");
        }
        assert_eq!(t.find("post", &n("/logout")).action, Some(Action::Revoke));
        // A segment that is only `;params` is none (servlet containers drop
        // the params, then collapse the empty segment).
        assert_eq!(t.find("HEAD", &n("/signout")).action, Some(Action::Revoke));
        assert_eq!(t.find("head", &n("/signout")).action, Some(Action::Revoke));
        assert_eq!(t.find("HEAD", &n("/logout")).action, None);
        for p in ["/;x/logout", "/logout/;", "/;/logout;a", "/;x/;y/LOGOUT/;z"] {
            assert_eq!(n(p).loose, "/logout", "{p}");
            assert_eq!(t.find("POST", &n(p)).action, Some(Action::Revoke), "{p}");
        }
        assert_eq!(t.find("GET", &n("/logout")).action, None);
    }
}
