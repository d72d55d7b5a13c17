//! The `redis` store: standalone (`redis://`, `rediss://`) or Cluster, shared
//! by any number of replicas. Key layout and feed: [`super::keys`].
//!
//! - Writes are one Lua script per entry: read the key, keep the later of
//!   each time, `SET … EXAT until`, `PUBLISH` the result on the feed. Atomic,
//!   so two replicas revoking for one user at once both stick.
//! - Replica mode: [`Store::replicate`] subscribes to the feed first, then
//!   loads every key (`SCAN` on each master + pipelined `GET`), then applies
//!   feed messages; a `PING` every second proves the feed is alive. After any
//!   feed error it reconnects and loads again, so nothing published while it
//!   was cut off is missed. A full reload also runs every [`RESYNC_EVERY`] to
//!   pick up keys a backend wrote without publishing.
//! - Per-request mode: [`Store::lookup`] reads the three keys that could
//!   reject a token.

use super::keys;
use super::{Access, BoxFuture, Sink, Store, StoreError};
use crate::claims::ClaimValue;
use crate::revocation::model::Entry;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisError, TlsCertificates};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Keys per `SCAN` call and per pipelined `GET` batch while loading.
const SCAN_BATCH: usize = 5_000;
/// The feed is pinged this often; each answer marks the replica current (1 s).
const FEED_PING_EVERY: Duration = Duration::from_secs(1);
/// A feed ping unanswered this long counts as a lost feed (2 s).
const FEED_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Full reload even when the feed is healthy, for keys written without a
/// `PUBLISH` (5 min).
pub const RESYNC_EVERY: Duration = Duration::from_secs(300);
/// Wait before reconnecting a lost feed; doubles up to [`RECONNECT_MAX`] (100 ms).
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Time allowed for connecting and for each load batch (5 s).
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A health ping unanswered this long replaces the command connection (800 ms).
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// The write script: merge (never shorten), store with expiry, publish.
/// KEYS[1] key; ARGV: until, cutoff ("" for a token), channel, now.
const WRITE_SCRIPT: &str = r#"
local until_new = tonumber(ARGV[1])
local cutoff_new = tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur then
  local a, b = string.match(cur, '^(%-?%d+) (%-?%d+)$')
  if a then
    if cutoff_new and tonumber(a) > cutoff_new then cutoff_new = tonumber(a) end
    if tonumber(b) > until_new then until_new = tonumber(b) end
  else
    local u = tonumber(cur)
    if u and u > until_new then until_new = u end
  end
end
local value
if cutoff_new then
  value = string.format('%d %d', cutoff_new, until_new)
else
  value = string.format('%d', until_new)
end
if until_new > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[1], value, 'EXAT', until_new)
end
redis.call('PUBLISH', ARGV[3], KEYS[1] .. ' ' .. value)
return value
"#;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    async fn invoke(&self, inv: &redis::ScriptInvocation<'_>) -> Result<String, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }
}

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisTarget {
    /// `url`, or the cluster seed URLs.
    pub urls: Vec<String>,
    pub cluster: bool,
    pub ca_file: Option<PathBuf>,
    pub key_prefix: String,
    pub timeout: Duration,
    pub mode: Access,
}

pub struct RedisStore {
    target: RedisTarget,
    ca: Option<Vec<u8>>,
    seeds: Vec<Client>,
    /// The command connection, replaced by a fresh one when a health ping
    /// fails: redis-rs's ConnectionManager can stay broken after a restart
    /// (redis-rs #984).
    conn: arc_swap::ArcSwapOption<Conn>,
    connecting: tokio::sync::Mutex<()>,
    script: redis::Script,
    channel: String,
    next_seed: std::sync::atomic::AtomicUsize,
}

fn backend(e: RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::Backend(e.to_string())
    }
}

impl RedisStore {
    /// Checks the URLs and CA file; connects lazily, so a Redis that is down
    /// at start makes the proxy unready, not dead.
    pub fn new(target: RedisTarget) -> Result<RedisStore, StoreError> {
        let ca = match &target.ca_file {
            Some(f) => Some(std::fs::read(f)?),
            None => None,
        };
        let seeds = target
            .urls
            .iter()
            .map(|u| client_for(u.as_str(), ca.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        if seeds.is_empty() {
            return Err(StoreError::Backend("no redis URL".into()));
        }
        Ok(RedisStore {
            channel: keys::feed_channel(&target.key_prefix),
            target,
            ca,
            seeds,
            conn: arc_swap::ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            script: redis::Script::new(WRITE_SCRIPT),
            next_seed: 0.into(),
        })
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let c = self.connect().await;
        tracing::debug!(ok = c.is_ok(), "Redis command connection made");
        let c = c?;
        self.conn.store(Some(std::sync::Arc::new(c.clone())));
        Ok(c)
    }

    /// Forgets the command connection; the next command makes a new one.
    fn reset(&self) {
        self.conn.store(None);
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let connect = async {
            if self.target.cluster {
                let mut b = redis::cluster::ClusterClientBuilder::new(
                    self.target.urls.iter().map(String::as_str),
                )
                .connection_timeout(self.target.timeout.max(LOAD_TIMEOUT))
                .response_timeout(self.target.timeout.max(LOAD_TIMEOUT))
                .retries(2);
                if let Some(ca) = &self.ca {
                    b = b.certs(TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    });
                }
                let client = b.build().map_err(backend)?;
                client
                    .get_async_connection()
                    .await
                    .map(Conn::Cluster)
                    .map_err(backend)
            } else {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(LOAD_TIMEOUT))
                    .set_response_timeout(Some(LOAD_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(RECONNECT_MAX);
                let client = self.seeds.first().cloned().ok_or(StoreError::Closed)?;
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map(Conn::Single)
                    .map_err(backend)
            }
        };
        tokio::time::timeout(LOAD_TIMEOUT, connect)
            .await
            .map_err(|_| StoreError::Timeout)?
    }

    /// Clients for every master: the seed itself, or each master of the cluster.
    async fn masters(&self) -> Result<Vec<Client>, StoreError> {
        if !self.target.cluster {
            return Ok(self.seeds.clone());
        }
        let conn = self.conn().await?;
        let text: String = conn
            .query(redis::cmd("CLUSTER").arg("NODES"))
            .await
            .map_err(backend)?;
        let seed = self.seeds.first().ok_or(StoreError::Closed)?;
        let mut out = Vec::new();
        for (host, port) in cluster_masters(&text) {
            let info = seed.get_connection_info().clone();
            let addr = match info.addr() {
                ConnectionAddr::TcpTls { .. } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                },
                _ => ConnectionAddr::Tcp(host, port),
            };
            let info = info.set_addr(addr);
            out.push(match &self.ca {
                Some(ca) => Client::build_with_tls(
                    info,
                    TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                )
                .map_err(backend)?,
                None => Client::open(info).map_err(backend)?,
            });
        }
        if out.is_empty() {
            return Err(StoreError::Backend("cluster reports no master".into()));
        }
        Ok(out)
    }

    /// Every live entry on every master, handed to `apply` batch by batch
    /// (a million entries never sit in one vector); returns how many.
    async fn load_all(&self, apply: &(dyn Fn(&[Entry]) + Sync)) -> Result<usize, StoreError> {
        let prefix = &self.target.key_prefix;
        let pattern = format!("{}*", glob_escape(prefix));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(LOAD_TIMEOUT))
            .set_response_timeout(Some(LOAD_TIMEOUT));
        let mut total = 0;
        let mut entries = Vec::with_capacity(SCAN_BATCH);
        for node in self.masters().await? {
            let mut conn = node
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(backend)?;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query_async(&mut conn)
                    .await
                    .map_err(backend)?;
                let names: Vec<String> = batch
                    .into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .filter(|k| k != &self.channel)
                    .collect();
                if !names.is_empty() {
                    let mut pipe = redis::pipe();
                    for k in &names {
                        pipe.get(k);
                    }
                    let values: Vec<Option<String>> =
                        pipe.query_async(&mut conn).await.map_err(backend)?;
                    entries.clear();
                    for (k, v) in names.iter().zip(values) {
                        if let Some(e) = v.and_then(|v| keys::entry_from(prefix, k, &v)) {
                            entries.push(e);
                        }
                    }
                    total += entries.len();
                    apply(&entries);
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// One feed session: subscribe, load, then follow until an error.
    async fn follow(&self, sink: &Weak<dyn Sink>) -> Result<(), StoreError> {
        let seed = self.pick_seed().ok_or(StoreError::Closed)?;
        let pubsub = tokio::time::timeout(LOAD_TIMEOUT, seed.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(backend)?;
        let (mut control, mut messages) = pubsub.split();
        tokio::time::timeout(LOAD_TIMEOUT, control.subscribe(&self.channel))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(backend)?;
        // Subscribed before loading: nothing written in between is missed.
        let started = tokio::time::Instant::now();
        let loaded = self.load_all(&|batch| apply_to(sink, batch)).await?;
        match sink.upgrade() {
            Some(s) => s.healthy(),
            None => return Ok(()),
        }
        tracing::info!(
            entries = loaded,
            took_ms = started.elapsed().as_millis() as u64,
            "Revocations loaded from redis; following the feed"
        );
        let mut ping = tokio::time::interval(FEED_PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let resync = tokio::time::sleep(RESYNC_EVERY);
        tokio::pin!(resync);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(StoreError::Backend("feed connection closed".into()));
                    };
                    let Some(s) = sink.upgrade() else { return Ok(()) };
                    let payload: String = msg.get_payload().unwrap_or_default();
                    match payload
                        .split_once(' ')
                        .and_then(|(k, v)| keys::entry_from(&self.target.key_prefix, k, v))
                    {
                        Some(entry) => s.apply(std::slice::from_ref(&entry)),
                        None => tracing::warn!("Ignoring a malformed feed message"),
                    }
                }
                _ = ping.tick() => {
                    let Some(s) = sink.upgrade() else { return Ok(()) };
                    drop(s);
                    match tokio::time::timeout(FEED_PING_TIMEOUT, control.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {
                            if let Some(s) = sink.upgrade() {
                                s.healthy();
                            }
                        }
                        Ok(Err(e)) => return Err(backend(e)),
                        Err(_) => return Err(StoreError::Timeout),
                    }
                }
                () = &mut resync => {
                    self.load_all(&|batch| apply_to(sink, batch)).await?;
                    resync.as_mut().reset(tokio::time::Instant::now() + RESYNC_EVERY);
                }
            }
        }
    }

    /// The node to follow the feed on. Any node of a cluster delivers every
    /// `PUBLISH`; each reconnect tries the next seed.
    fn pick_seed(&self) -> Option<Client> {
        let n = self
            .next_seed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.seeds.get(n % self.seeds.len().max(1)).cloned()
    }
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn access(&self) -> Access {
        self.target.mode
    }

    fn load(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        // Replica mode loads inside `replicate`; per-request mode never loads.
        Box::pin(async { Ok(Vec::new()) })
    }

    fn write<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let key = keys::key_of(&self.target.key_prefix, entry);
            let cutoff = match entry {
                Entry::Token { .. } => String::new(),
                Entry::Subject { cutoff, .. } | Entry::Global { cutoff, .. } => cutoff.to_string(),
            };
            let mut inv = self.script.key(&key);
            inv.arg(entry.until())
                .arg(cutoff)
                .arg(&self.channel)
                .arg(crate::revocation::clock::unix_now());
            if let Err(e) = conn.invoke(&inv).await {
                self.reset();
                return Err(backend(e));
            }
            Ok(())
        })
    }

    fn lookup<'a>(
        &'a self,
        subject: &'a ClaimValue,
        token: &'a ClaimValue,
    ) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let p = &self.target.key_prefix;
            let names = keys::candidates(p, subject, token);
            let get = |k: &String| {
                let conn = conn.clone();
                let cmd = redis::cmd("GET").arg(k).clone();
                async move { conn.query::<Option<String>>(&cmd).await }
            };
            let (a, b, c) =
                futures_util::future::join3(get(&names[0]), get(&names[1]), get(&names[2])).await;
            let mut out = Vec::new();
            for (k, v) in names.iter().zip([a, b, c]) {
                if let Some(e) = v.map_err(backend)?.and_then(|v| keys::entry_from(p, k, &v)) {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let answered = tokio::time::timeout(PING_TIMEOUT, async {
                let conn = self.conn().await?;
                conn.query::<redis::Value>(&redis::cmd("PING"))
                    .await
                    .map_err(backend)
            })
            .await;
            match answered {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Redis ping failed; reconnecting");
                    self.reset();
                    Err(e)
                }
                Err(_) => {
                    tracing::warn!("Redis ping timed out; reconnecting");
                    self.reset();
                    Err(StoreError::Timeout)
                }
            }
        })
    }

    fn replicate(self: Arc<Self>, sink: Weak<dyn Sink>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut backoff = RECONNECT_FIRST;
            loop {
                if sink.strong_count() == 0 {
                    return;
                }
                let started = tokio::time::Instant::now();
                match self.follow(&sink).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error.reason = e.reason(), error = %e,
                            "Redis feed lost; reconnecting and resyncing");
                    }
                }
                if started.elapsed() > RECONNECT_MAX * 5 {
                    backoff = RECONNECT_FIRST;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        })
    }
}

fn apply_to(sink: &Weak<dyn Sink>, batch: &[Entry]) {
    if let Some(s) = sink.upgrade() {
        s.apply(batch);
    }
}

fn client_for(url: &str, ca: Option<&[u8]>) -> Result<Client, StoreError> {
    let client = match ca {
        Some(ca) => Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        ),
        None => Client::open(url),
    };
    client.map_err(|e| StoreError::Backend(format!("invalid redis URL: {}", e.kind_str())))
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for RedisError {
    /// The error without its detail, which may quote the URL and its password.
    fn kind_str(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// `(host, port)` of each healthy master in `CLUSTER NODES` output.
fn cluster_masters(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let addr = fields.get(1)?;
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let hostport = addr.split(['@', ',']).next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            (port != 0).then(|| (host.trim_matches(['[', ']']).to_string(), port))
        })
        .collect()
}

/// Escapes the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_parsed() {
        let text = "a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:30002@40002 master - 0 0 2 connected 5461-10922\n\
                    c3 127.0.0.1:30003@40003 slave b2 0 0 2 connected\n\
                    d4 127.0.0.1:30004@40004 master,fail - 0 0 3 connected\n";
        assert_eq!(
            cluster_masters(text),
            vec![
                ("127.0.0.1".to_string(), 30001),
                ("127.0.0.1".to_string(), 30002)
            ]
        );
    }

    #[test]
    fn scan_patterns_escape_globs() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
