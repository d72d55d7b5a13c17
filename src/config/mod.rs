//! Configuration: the YAML file of SPEC §2 read into validated [`Settings`].
//!
//! Reading walks the YAML tree once, collecting every problem with its path
//! (`routes[2].methods`), so an operator sees the whole list at once. Nothing
//! here binds a port or imports another module of this crate.

mod reader;

use reader::{expand_env, scalar_string, Problems, Section};
pub use reader::{parse_duration, Problem};

use jsonwebtoken::Algorithm;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Default proxy listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default TCP connect timeout to the upstream (2 s).
pub const DEFAULT_UPSTREAM_CONNECT: Duration = Duration::from_secs(2);
/// Default wait for the upstream's response headers (30 s).
pub const DEFAULT_UPSTREAM_RESPONSE: Duration = Duration::from_secs(30);
/// Default time a client has to send its request headers (10 s).
pub const DEFAULT_CLIENT_HEADER: Duration = Duration::from_secs(10);
/// Default drain time after SIGTERM (20 s).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Default clock leeway for `exp`/`nbf` (30 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default longest accepted token lifetime and purge retention (24 h).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default store operation timeout (100 ms).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(100);
/// Default staleness a cut-off replica may serve (30 s).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);
/// Default realm in `WWW-Authenticate`.
pub const DEFAULT_REALM: &str = "revoke-proxy";
/// Default key prefix in shared stores.
pub const DEFAULT_KEY_PREFIX: &str = "revoke-proxy:";
/// Exit code for a bad configuration (EX_CONFIG-style usage error, sysexits 64).
pub const EXIT_CONFIG: i32 = 64;

/// A secret string; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("********")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
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

fn ser_opt_url<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(&mask_url(u)),
        None => s.serialize_none(),
    }
}

fn ser_urls<S: serde::Serializer>(urls: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(|u| mask_url(u)))
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
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

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub listen: SocketAddr,
    pub upstream: String,
    pub upstream_tls: Option<UpstreamTls>,
    pub tls: Option<ServerTls>,
    pub timeouts: Timeouts,
    pub jwt: JwtSettings,
    pub revocation: RevocationSettings,
    pub routes: Vec<RouteSettings>,
    pub forward: ForwardSettings,
    pub admin: Option<AdminSettings>,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamTls {
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
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_grace: Duration,
}

/// Where a token is looked for, tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    Header(String),
    Cookie(String),
    Query(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct JwtSettings {
    pub algorithms: Vec<Algorithm>,
    /// HMAC secret, from `secret` or the contents of `secret_file`.
    pub secret: Option<Secret>,
    pub public_key_file: Option<PathBuf>,
    /// The PEM read from `public_key_file`.
    #[serde(skip)]
    pub public_key_pem: Option<Vec<u8>>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub leeway: Duration,
    pub require: Vec<String>,
    pub token_from: Vec<TokenSource>,
    pub realm: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreFailure {
    Deny,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreMode {
    Replica,
    PerRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    File {
        path: PathBuf,
    },
    Redis {
        #[serde(serialize_with = "ser_opt_url")]
        url: Option<String>,
        #[serde(serialize_with = "ser_urls")]
        cluster: Vec<String>,
    },
    Memcached {
        url: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreSettings {
    #[serde(flatten)]
    pub kind: StoreKind,
    /// redis/memcached: local journal of revocations the store has not taken
    /// yet (`path`), replayed at start. Without it they live in memory only.
    pub spool: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub mode: StoreMode,
    pub key_prefix: String,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevocationSettings {
    pub subject_claim: String,
    pub token_claim: String,
    #[serde(serialize_with = "ser_duration")]
    pub max_token_lifetime: Duration,
    pub on_store_failure: OnStoreFailure,
    pub store: StoreSettings,
    #[serde(serialize_with = "ser_duration")]
    pub max_staleness: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Revoke,
    Purge,
}

/// Which upstream statuses apply a route's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatusMatch {
    /// `2xx`: a whole class, given by its first digit.
    Class(u16),
    /// `204`: one status.
    Exact(u16),
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
    pub methods: Option<Vec<String>>,
    /// `false` for `auth: none`.
    pub auth: bool,
    pub action: Option<Action>,
    pub apply_on: Vec<StatusMatch>,
    pub respond: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationForward {
    Keep,
    Strip,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardSettings {
    /// (claim name, header name), in file order.
    pub claims_to_headers: Vec<(String, String)>,
    pub authorization: AuthorizationForward,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminSettings {
    pub listen: SocketAddr,
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

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration ({} problem(s))", .0.len())]
pub struct ConfigError(pub Vec<Problem>);

impl ConfigError {
    fn single(path: &str, message: impl Into<String>) -> Self {
        ConfigError(vec![Problem {
            path: path.to_string(),
            message: message.into(),
        }])
    }
}

impl Settings {
    /// Reads and validates the file at `path`, expanding `${VAR}` from the
    /// process environment.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::parse(&text, base, &|name| std::env::var(name).ok())
    }

    /// Parses YAML text; relative file paths resolve against `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::single("", format!("not valid YAML: {e}")))?;
        let mut problems = Problems::default();
        expand_env(&mut doc, "", env, &mut problems);
        let settings = read_settings(&doc, base, &mut problems);
        if problems.0.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(problems.0))
        }
    }

    /// The effective settings as YAML, secrets masked.
    pub fn describe(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("(cannot render settings: {e})"))
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn socket_addr(text: Option<String>, default: &str, path: &str, p: &mut Problems) -> SocketAddr {
    let text = text.unwrap_or_else(|| default.to_string());
    match text.parse() {
        Ok(a) => a,
        Err(_) => {
            p.add(
                path,
                format!("invalid address {text:?} (write host:port, e.g. 127.0.0.1:8080)"),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    }
}

fn one_of<T: Copy>(
    text: Option<String>,
    choices: &[(&str, T)],
    default: T,
    path: &str,
    p: &mut Problems,
) -> T {
    let Some(text) = text else { return default };
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, v)) => *v,
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            p.add(path, format!("{text:?} is not one of {}", names.join(", ")));
            default
        }
    }
}

fn read_settings(doc: &serde_yaml::Value, base: &Path, p: &mut Problems) -> Settings {
    let mut top = Section::open(Some(doc), "", p);
    if !top.is_present() {
        p.add("", "the configuration is empty");
    }
    let listen = socket_addr(top.string("listen", p), DEFAULT_LISTEN, "listen", p);
    let upstream = read_upstream(top.string("upstream", p), p);
    let upstream_tls = {
        let mut s = top.section("upstream_tls", p);
        let present = s.is_present();
        let ca = s.string("ca_file", p).map(|f| resolve(base, &f));
        s.finish(p);
        present.then_some(UpstreamTls { ca_file: ca })
    };
    let tls = read_server_tls(top.section("tls", p), base, p);
    let timeouts = read_timeouts(top.section("timeouts", p), p);
    let jwt = read_jwt(top.section("jwt", p), base, p);
    let revocation = read_revocation(top.section("revocation", p), base, p);
    let routes = read_routes(top.get("routes"), p);
    let forward = read_forward(top.section("forward", p), p);
    let admin = read_admin(top.section("admin", p), listen, p);
    let log = read_log(top.section("log", p), p);
    top.finish(p);

    if upstream_tls.is_some() && !upstream.starts_with("https://") {
        p.add("upstream_tls", "only used with an https:// upstream");
    }
    Settings {
        listen,
        upstream,
        upstream_tls,
        tls,
        timeouts,
        jwt,
        revocation,
        routes,
        forward,
        admin,
        log,
    }
}

fn read_upstream(text: Option<String>, p: &mut Problems) -> String {
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

fn read_server_tls(mut s: Section<'_>, base: &Path, p: &mut Problems) -> Option<ServerTls> {
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

fn read_timeouts(mut s: Section<'_>, p: &mut Problems) -> Timeouts {
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
        shutdown_grace: s
            .duration("shutdown_grace", p)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
    };
    for (name, d) in [
        ("upstream_connect", t.upstream_connect),
        ("upstream_response", t.upstream_response),
        ("client_header", t.client_header),
    ] {
        if d.is_zero() {
            p.add(&s.child_path(name), "must be greater than 0");
        }
    }
    s.finish(p);
    t
}

fn read_algorithms(list: Option<Vec<String>>, path: &str, p: &mut Problems) -> Vec<Algorithm> {
    let list = list.unwrap_or_else(|| vec!["HS256".to_string()]);
    if list.is_empty() {
        p.add(path, "must name at least one algorithm");
    }
    let mut algs = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let item = format!("{path}[{i}]");
        if name.eq_ignore_ascii_case("none") {
            p.add(
                &item,
                "\"none\" is never accepted: unsigned tokens cannot be verified",
            );
            continue;
        }
        match Algorithm::from_str(name) {
            Ok(a) if !algs.contains(&a) => algs.push(a),
            Ok(_) => p.add(&item, format!("{name} is listed twice")),
            Err(_) => p.add(
                &item,
                format!("unknown algorithm {name:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"),
            ),
        }
    }
    algs
}

fn read_token_sources(
    v: Option<&serde_yaml::Value>,
    path: &str,
    p: &mut Problems,
) -> Vec<TokenSource> {
    let Some(v) = v else {
        return vec![TokenSource::Header("Authorization".to_string())];
    };
    let serde_yaml::Value::Sequence(items) = v else {
        p.add(
            path,
            "expected a list like [{header: Authorization}, {cookie: access_token}]",
        );
        return Vec::new();
    };
    if items.is_empty() {
        p.add(path, "must list at least one place to find the token");
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let mut s = Section::open(Some(item), &item_path, p);
        let found = [
            ("header", s.string("header", p)),
            ("cookie", s.string("cookie", p)),
            ("query", s.string("query", p)),
        ];
        let given: Vec<_> = found
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        match given.as_slice() {
            [(kind, name)] if !name.is_empty() => out.push(match *kind {
                "header" => {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        p.add(&item_path, format!("{name:?} is not a valid header name"));
                    }
                    TokenSource::Header(name.clone())
                }
                "cookie" => TokenSource::Cookie(name.clone()),
                _ => TokenSource::Query(name.clone()),
            }),
            _ => p.add(
                &item_path,
                "needs exactly one of header, cookie or query, with a name",
            ),
        }
        s.finish(p);
    }
    out
}

fn read_jwt(mut s: Section<'_>, base: &Path, p: &mut Problems) -> JwtSettings {
    let algorithms = read_algorithms(
        s.string_list("algorithms", p),
        &s.child_path("algorithms"),
        p,
    );
    let secret = s.string("secret", p);
    let secret_file = s.string("secret_file", p);
    let public_key_file = s.string("public_key_file", p).map(|f| resolve(base, &f));
    let jwks_url = s.string("jwks_url", p);
    let issuer = s.string("issuer", p);
    let audience = s.string_list("audience", p).unwrap_or_default();
    let leeway = s.duration("leeway", p).unwrap_or(DEFAULT_LEEWAY);
    let require = s
        .string_list("require", p)
        .unwrap_or_else(|| vec!["exp".to_string(), "iat".to_string()]);
    let token_path = s.child_path("token_from");
    let token_from = read_token_sources(s.get("token_from"), &token_path, p);
    let realm = s
        .string("realm", p)
        .unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.contains('"') || realm.contains('\\') || realm.chars().any(char::is_control) {
        p.add(
            &s.child_path("realm"),
            "must not contain quotes, backslashes or control characters",
        );
    }

    let secret = match (secret, secret_file) {
        (Some(_), Some(_)) => {
            p.add(s.path(), "give secret or secret_file, not both");
            None
        }
        (Some(v), None) => Some(Secret(v)),
        (None, Some(f)) => match std::fs::read_to_string(resolve(base, &f)) {
            Ok(text) => Some(Secret(text.trim_end_matches(['\r', '\n']).to_string())),
            Err(e) => {
                p.add(
                    &s.child_path("secret_file"),
                    format!("cannot read {f}: {e}"),
                );
                None
            }
        },
        (None, None) => None,
    };
    if matches!(&secret, Some(Secret(v)) if v.is_empty()) {
        p.add(&s.child_path("secret"), "must not be empty");
    }
    let public_key_pem = public_key_file
        .as_ref()
        .and_then(|f| match std::fs::read(f) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                p.add(
                    &s.child_path("public_key_file"),
                    format!("cannot read {}: {e}", f.display()),
                );
                None
            }
        });
    if let Some(u) = &jwks_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.add(
                &s.child_path("jwks_url"),
                "must be an http:// or https:// URL",
            );
        }
        if public_key_file.is_some() {
            p.add(s.path(), "give public_key_file or jwks_url, not both");
        }
    }
    let uses_hmac = algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let uses_public = algorithms
        .iter()
        .any(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    if uses_hmac && secret.is_none() {
        p.add(s.path(), "HS* algorithms need secret or secret_file");
    }
    if uses_public && public_key_file.is_none() && jwks_url.is_none() {
        p.add(
            s.path(),
            "RS*/PS*/ES*/EdDSA algorithms need public_key_file or jwks_url",
        );
    }
    if !uses_hmac && secret.is_some() {
        p.add(s.path(), "secret is set but no HS* algorithm is allowed");
    }
    for (i, claim) in require.iter().enumerate() {
        if claim.is_empty() {
            p.add(
                &format!("{}[{i}]", s.child_path("require")),
                "empty claim name",
            );
        }
    }
    s.finish(p);
    JwtSettings {
        algorithms,
        secret,
        public_key_file,
        public_key_pem,
        jwks_url,
        issuer,
        audience,
        leeway,
        require,
        token_from,
        realm,
    }
}

fn read_store(mut s: Section<'_>, base: &Path, p: &mut Problems) -> StoreSettings {
    let kind_name = s.string("type", p).unwrap_or_else(|| "memory".to_string());
    let path = s.string("path", p);
    let url = s.string("url", p);
    let cluster = s.string_list("cluster", p).unwrap_or_default();
    let ca_file = s.string("ca_file", p).map(|f| resolve(base, &f));
    let mode_text = s.string("mode", p);
    let mode_given = mode_text.is_some();
    let mode = one_of(
        mode_text,
        &[
            ("replica", StoreMode::Replica),
            ("per_request", StoreMode::PerRequest),
        ],
        StoreMode::Replica,
        &s.child_path("mode"),
        p,
    );
    let key_prefix = s
        .string("key_prefix", p)
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    let timeout = s.duration("timeout", p).unwrap_or(DEFAULT_STORE_TIMEOUT);
    if timeout.is_zero() {
        p.add(&s.child_path("timeout"), "must be greater than 0");
    }
    let kind = match kind_name.as_str() {
        "memory" => StoreKind::Memory,
        "file" => match path.clone() {
            Some(f) => StoreKind::File {
                path: resolve(base, &f),
            },
            None => {
                p.add(&s.child_path("path"), "required for type: file");
                StoreKind::Memory
            }
        },
        "redis" => {
            match (&url, cluster.is_empty()) {
                (None, true) => p.add(s.path(), "type: redis needs url or cluster"),
                (Some(_), false) => p.add(s.path(), "give either url or cluster, not both"),
                _ => {}
            }
            if let Some(u) = &url {
                check_redis_url(u, &s.child_path("url"), p);
            }
            for (i, u) in cluster.iter().enumerate() {
                check_redis_url(u, &format!("{}[{i}]", s.child_path("cluster")), p);
            }
            StoreKind::Redis { url, cluster }
        }
        "memcached" => {
            match &url {
                None => p.add(&s.child_path("url"), "required for type: memcached"),
                Some(u) => {
                    let addr = u
                        .strip_prefix("memcache://")
                        .or_else(|| u.strip_prefix("memcached://"));
                    if !addr.is_some_and(|a| a.trim_end_matches('/').contains(':')) {
                        p.add(&s.child_path("url"), "must look like memcache://host:port");
                    }
                }
            }
            if mode == StoreMode::Replica && mode_given {
                p.add(
                    &s.child_path("mode"),
                    "memcached cannot list its keys: only per_request is possible",
                );
            }
            StoreKind::Memcached {
                url: url.unwrap_or_default(),
            }
        }
        other => {
            p.add(
                &s.child_path("type"),
                format!("{other:?} is not one of memory, file, redis, memcached"),
            );
            StoreKind::Memory
        }
    };
    s.finish(p);
    let spool = match &kind {
        StoreKind::Redis { .. } | StoreKind::Memcached { .. } => path.map(|f| resolve(base, &f)),
        _ => None,
    };
    StoreSettings {
        kind,
        spool,
        ca_file,
        mode,
        key_prefix,
        timeout,
    }
}

/// `redis://` or `rediss://` with a host; the password is never echoed.
fn check_redis_url(u: &str, path: &str, p: &mut Problems) {
    let rest = u
        .strip_prefix("redis://")
        .or_else(|| u.strip_prefix("rediss://"));
    let host = rest
        .map(|r| r.rsplit_once('@').map_or(r, |(_, h)| h))
        .map(|h| h.split('/').next().unwrap_or(""));
    if host.is_none_or(str::is_empty) {
        p.add(
            path,
            "must look like redis://host:port/db or rediss://host:port/db",
        );
    }
}

fn read_revocation(mut s: Section<'_>, base: &Path, p: &mut Problems) -> RevocationSettings {
    let subject_claim = s
        .string("subject_claim", p)
        .unwrap_or_else(|| "sub".to_string());
    let token_claim = s
        .string("token_claim", p)
        .unwrap_or_else(|| "jti".to_string());
    let max_token_lifetime = s
        .duration("max_token_lifetime", p)
        .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME);
    if max_token_lifetime < Duration::from_secs(1) {
        p.add(&s.child_path("max_token_lifetime"), "must be at least 1s");
    }
    let on_store_failure = one_of(
        s.string("on_store_failure", p),
        &[
            ("deny", OnStoreFailure::Deny),
            ("allow", OnStoreFailure::Allow),
        ],
        OnStoreFailure::Deny,
        &s.child_path("on_store_failure"),
        p,
    );
    let store = read_store(s.section("store", p), base, p);
    let max_staleness = s
        .duration("max_staleness", p)
        .unwrap_or(DEFAULT_MAX_STALENESS);
    for (key, v) in [
        ("subject_claim", &subject_claim),
        ("token_claim", &token_claim),
    ] {
        if v.is_empty() {
            p.add(&s.child_path(key), "must not be empty");
        }
    }
    s.finish(p);
    RevocationSettings {
        subject_claim,
        token_claim,
        max_token_lifetime,
        on_store_failure,
        store,
        max_staleness,
    }
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

fn read_routes(v: Option<&serde_yaml::Value>, p: &mut Problems) -> Vec<RouteSettings> {
    let Some(v) = v else { return Vec::new() };
    let serde_yaml::Value::Sequence(items) = v else {
        p.add("routes", "expected a list of rules");
        return Vec::new();
    };
    let mut routes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rp = format!("routes[{i}]");
        let mut s = Section::open(Some(item), &rp, p);
        let path = read_route_path(s.string("path", p), &s.child_path("path"), p);
        let methods = s.string_list("methods", p).map(|list| {
            list.iter()
                .enumerate()
                .map(|(j, m)| {
                    let up = m.to_ascii_uppercase();
                    if http::Method::from_bytes(up.as_bytes()).is_err() || up.is_empty() {
                        p.add(
                            &format!("{rp}.methods[{j}]"),
                            format!("{m:?} is not an HTTP method"),
                        );
                    }
                    up
                })
                .collect::<Vec<_>>()
        });
        if matches!(&methods, Some(m) if m.is_empty()) {
            p.add(
                &format!("{rp}.methods"),
                "must list at least one method (omit it for all)",
            );
        }
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
            None => vec![StatusMatch::Class(2)],
            Some(list) => list
                .iter()
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
                .collect(),
        };
        let respond = s.get("respond").and_then(|v| {
            let text = scalar_string(v, &format!("{rp}.respond"), p)?;
            match text.parse::<u16>() {
                Ok(code) if (200..600).contains(&code) => Some(code),
                _ => {
                    p.add(
                        &format!("{rp}.respond"),
                        format!("{text:?} is not a status code between 200 and 599"),
                    );
                    None
                }
            }
        });
        if !auth && action.is_some() {
            p.add(
                &rp,
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
        routes.push(RouteSettings {
            path,
            methods,
            auth,
            action,
            apply_on,
            respond,
        });
    }
    routes
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

fn read_forward(mut s: Section<'_>, p: &mut Problems) -> ForwardSettings {
    let mut claims_to_headers = Vec::new();
    let map_path = s.child_path("claims_to_headers");
    match s.get("claims_to_headers") {
        None => {}
        Some(serde_yaml::Value::Mapping(m)) => {
            for (k, v) in m {
                let claim = k.as_str().unwrap_or_default().to_string();
                let path = reader::join(&map_path, &claim);
                let Some(header) = scalar_string(v, &path, p) else {
                    continue;
                };
                if claim.is_empty() {
                    p.add(&path, "claim names must be non-empty strings");
                } else if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    p.add(&path, format!("{header:?} is not a valid header name"));
                } else if is_reserved_header(&header) {
                    p.add(&path, format!("{header} cannot carry claims"));
                } else {
                    claims_to_headers.push((claim, header));
                }
            }
        }
        Some(_) => p.add(&map_path, "expected a mapping of claim: Header-Name"),
    }
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
    s.finish(p);
    ForwardSettings {
        claims_to_headers,
        authorization,
    }
}

fn is_reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn read_admin(
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

fn read_log(mut s: Section<'_>, p: &mut Problems) -> LogSettings {
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

#[cfg(test)]
mod tests;
