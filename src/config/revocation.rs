//! `revocation:` — claim names, lifetimes, failure policy and the store.

use super::reader::{Problems, Section};
use super::secret::{ser_duration, ser_opt_url, ser_urls};
use super::{one_of, resolve};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default longest accepted token lifetime and purge retention (24 h).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default store operation timeout (100 ms).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(100);
/// Default staleness a cut-off replica may serve (30 s).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);
/// Default key prefix in shared stores.
pub const DEFAULT_KEY_PREFIX: &str = "revoke-proxy:";

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
    #[serde(rename = "path", skip_serializing_if = "Option::is_none")]
    pub spool: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// The claim naming the identity provider's session (`sid`).
    pub session_claim: String,
    #[serde(serialize_with = "ser_duration")]
    pub max_token_lifetime: Duration,
    pub on_store_failure: OnStoreFailure,
    pub store: StoreSettings,
    #[serde(serialize_with = "ser_duration")]
    pub max_staleness: Duration,
    /// `compat`: also honour another library's records in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<Compat>,
}

/// `revocation.compat`: records a Node library keeps in the same Redis or
/// memcached, read on every request so both can run side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Compat {
    /// express-jwt-blacklist 1.x: a token is refused when its record
    /// (`key_prefix` + the `token_id` claim) lists its `index_by` claim, or
    /// holds a purge time at or after its `iat`.
    #[serde(rename = "express-jwt-blacklist")]
    Blacklist {
        key_prefix: String,
        token_id: String,
        index_by: String,
        /// A token without a record is refused (the library's `strict`).
        strict: bool,
    },
    /// jwt-redis 7.x: a token is accepted only while `key_prefix` + its
    /// `jti` exists (an allow-list).
    #[serde(rename = "jwt-redis")]
    JwtRedis { key_prefix: String },
}

impl Compat {
    /// The token claims its check reads: `[token_id, index_by]` or `[jti]`.
    pub fn claims(&self) -> Vec<String> {
        match self {
            Compat::Blacklist {
                token_id, index_by, ..
            } => vec![token_id.clone(), index_by.clone(), "iat".into()],
            Compat::JwtRedis { .. } => vec!["jti".into()],
        }
    }
}

/// `revocation.compat`, when present.
fn read_compat(mut s: Section<'_>, store: &StoreSettings, p: &mut Problems) -> Option<Compat> {
    if !s.is_present() {
        return None;
    }
    let kind = s.string("type", p);
    let prefix = s.string("key_prefix", p);
    let strict_path = s.child_path("strict");
    let strict = match s.get("strict") {
        None => false,
        Some(serde_yaml::Value::Bool(b)) => *b,
        Some(_) => {
            p.add(&strict_path, "expected true or false");
            false
        }
    };
    let token_id = s.string("token_id", p);
    let index_by = s.string("index_by", p);
    let on_redis = matches!(store.kind, StoreKind::Redis { .. });
    let on_memcached = matches!(store.kind, StoreKind::Memcached { .. });
    let compat = match kind.as_deref() {
        Some("express-jwt-blacklist") => {
            if !on_redis && !on_memcached {
                p.add(
                    s.path(),
                    "express-jwt-blacklist records live in redis or memcached: set revocation.store.type to the one the Node services use",
                );
            }
            Compat::Blacklist {
                key_prefix: prefix.unwrap_or_else(|| "jwt-blacklist:".into()),
                token_id: token_id.unwrap_or_else(|| "sub".into()),
                index_by: index_by.unwrap_or_else(|| "iat".into()),
                strict,
            }
        }
        Some("jwt-redis") => {
            if !on_redis {
                p.add(
                    s.path(),
                    "jwt-redis records live in redis: set revocation.store.type: redis",
                );
            }
            for (key, given) in [
                ("token_id", token_id.is_some()),
                ("index_by", index_by.is_some()),
            ] {
                if given {
                    p.add(&s.child_path(key), "only for type: express-jwt-blacklist");
                }
            }
            if s.get("strict").is_some() {
                p.add(&strict_path, "only for type: express-jwt-blacklist");
            }
            Compat::JwtRedis {
                key_prefix: prefix.unwrap_or_else(|| "jwt_label:".into()),
            }
        }
        other => {
            p.add(
                &s.child_path("type"),
                format!(
                    "expected express-jwt-blacklist or jwt-redis, got {}",
                    other.map_or("nothing".to_string(), |o| format!("{o:?}"))
                ),
            );
            s.finish(p);
            return None;
        }
    };
    if let Compat::Blacklist {
        token_id,
        index_by,
        key_prefix,
        ..
    } = &compat
    {
        if key_prefix.is_empty() {
            // The library ignores an empty keyPrefix and keeps its default.
            p.add(
                &s.child_path("key_prefix"),
                "must not be empty (express-jwt-blacklist would use its default, jwt-blacklist:)",
            );
        }
        for (key, v) in [("token_id", token_id), ("index_by", index_by)] {
            if v.is_empty() {
                p.add(&s.child_path(key), "must not be empty");
            }
        }
    }
    s.finish(p);
    Some(compat)
}

pub(super) fn read_store(mut s: Section<'_>, base: &Path, p: &mut Problems) -> StoreSettings {
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
        "redis" => redis_kind(&s, url, cluster, p),
        "memcached" => memcached_kind(&s, url, mode == StoreMode::Replica && mode_given, p),
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

fn redis_kind(
    s: &Section<'_>,
    url: Option<String>,
    cluster: Vec<String>,
    p: &mut Problems,
) -> StoreKind {
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

fn memcached_kind(
    s: &Section<'_>,
    url: Option<String>,
    replica: bool,
    p: &mut Problems,
) -> StoreKind {
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
    if replica {
        p.add(
            &s.child_path("mode"),
            "memcached cannot list its keys: only per_request is possible",
        );
    }
    StoreKind::Memcached {
        url: url.unwrap_or_default(),
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

pub(super) fn read_revocation(
    mut s: Section<'_>,
    base: &Path,
    p: &mut Problems,
) -> RevocationSettings {
    let subject_claim = s
        .string("subject_claim", p)
        .unwrap_or_else(|| "sub".to_string());
    let token_claim = s
        .string("token_claim", p)
        .unwrap_or_else(|| "jti".to_string());
    let session_claim = s
        .string("session_claim", p)
        .unwrap_or_else(|| "sid".to_string());
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
    // `compat: express-jwt-blacklist` is short for `compat: {type: …}`.
    let compat = match s.get("compat") {
        Some(serde_yaml::Value::String(kind)) => {
            let mut short = serde_yaml::Mapping::new();
            short.insert("type".into(), kind.as_str().into());
            let short = serde_yaml::Value::Mapping(short);
            let path = s.child_path("compat");
            read_compat(Section::open(Some(&short), &path, p), &store, p)
        }
        _ => read_compat(s.section("compat", p), &store, p),
    };
    let max_staleness = s
        .duration("max_staleness", p)
        .unwrap_or(DEFAULT_MAX_STALENESS);
    for (key, v) in [
        ("subject_claim", &subject_claim),
        ("token_claim", &token_claim),
        ("session_claim", &session_claim),
    ] {
        if v.is_empty() {
            p.add(&s.child_path(key), "must not be empty");
        }
    }
    s.finish(p);
    RevocationSettings {
        subject_claim,
        token_claim,
        session_claim,
        max_token_lifetime,
        on_store_failure,
        store,
        max_staleness,
        compat,
    }
}
