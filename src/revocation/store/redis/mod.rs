//! The `redis` store: standalone (`redis://`, `rediss://`) or Cluster, shared
//! by any number of replicas. Key layout: [`super::keys`]; change log:
//! [`log`].
//!
//! - Writes run [`script::WRITE`]: read the key, keep the later of each
//!   time, `SET … EXAT until`, append the result to the change log (a
//!   stream). Atomic, so two replicas revoking for one user at once both stick.
//! - Replica mode: [`Store::replicate`] reads the log's epoch and position,
//!   loads the whole set ([`snapshot`], else every key: [`load`]) only when
//!   it has no position in this log or the log no longer reaches back to
//!   it, then follows the log with
//!   `XREAD BLOCK` from its position. After a disconnect it reads on from
//!   where it stopped: catching up costs what was missed, not the set.
//! - Per-request mode: [`Store::lookup`] reads the keys that could reject
//!   a token (token, subject, global, token-id, and session when named).
//! - A Redis that lost what it had acknowledged (it came back empty, or a
//!   lagging replica was promoted) is given it back from the replicas'
//!   [`copy`]es through the same write script.

pub mod copy;
mod load;
pub mod log;
mod script;
pub mod snapshot;

use super::keys;
use super::{Access, BoxFuture, Progress, Sink, Store, StoreError};
use crate::revocation::model::{Entry, TokenRef};
use log::{LogInfo, Position};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, TlsCertificates, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Keys per `SCAN` call and per pipelined `GET` batch while loading.
const SCAN_BATCH: usize = 5_000;
/// How long one `XREAD` waits for new entries; each answer, empty or not,
/// marks the replica current (1 s).
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Entries read from the log at once.
const READ_BATCH: usize = 1_000;
/// A log read unanswered this long past its block counts as a lost feed (2 s).
const FEED_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// While following, the log's epoch and reach are checked again this often
/// (three commands, whatever the set's size) to catch a Redis replaced under
/// a connection that reconnected by itself (10 s).
const LOG_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Wait before reconnecting a lost feed; doubles up to [`RECONNECT_MAX`] (100 ms).
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Time allowed for connecting and for each load batch (5 s).
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A health ping unanswered this long replaces the command connection (800 ms).
const PING_TIMEOUT: Duration = Duration::from_millis(800);
/// Writes in flight while giving Redis back its entries.
const GIVE_BACK_IN_FLIGHT: usize = 32;
/// How long the give-back lease lasts; while it does, no other replica
/// writes its whole copy back to this log (2 min).
const GIVE_BACK_LEASE: Duration = Duration::from_secs(120);
/// The client name of the log reader's connection (`CLIENT LIST`).
pub const READER_NAME: &str = "revoke-proxy-log";

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    /// One connection that never reconnects on its own (the log reader:
    /// a reconnect must re-check the log).
    Plain(redis::aio::MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Plain(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    async fn invoke(&self, inv: &redis::ScriptInvocation<'_>) -> Result<String, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Plain(mut c) => inv.invoke_async(&mut c).await,
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
    /// How far back the change log reaches (`max_token_lifetime`): a replica
    /// away for longer loads everything again.
    pub log_retention: Duration,
    /// Where this replica keeps its copy of the set as text (`<store.path>.copy`).
    pub copy: Option<PathBuf>,
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
    write: redis::Script,
    append: redis::Script,
    log: String,
    epoch: String,
    next_seed: std::sync::atomic::AtomicUsize,
    /// Entries this replica's last key scan found (a first snapshot is due
    /// when they are many).
    scanned: AtomicU64,
    snapshotting: AtomicBool,
    /// What this replica applied or wrote in the last minute.
    recent: copy::Recent,
    copy: Option<copy::LocalCopy>,
    /// This process's value for the give-back lease.
    me: String,
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
        let copy = match &target.copy {
            Some(p) if target.mode == Access::Replica => Some(copy::LocalCopy::open(p)?),
            _ => None,
        };
        Ok(RedisStore {
            log: log::log_key(&target.key_prefix),
            epoch: log::epoch_key(&target.key_prefix),
            target,
            ca,
            seeds,
            conn: arc_swap::ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            write: redis::Script::new(script::WRITE),
            append: redis::Script::new(script::APPEND),
            next_seed: 0.into(),
            scanned: AtomicU64::new(0),
            snapshotting: AtomicBool::new(false),
            recent: copy::Recent::default(),
            copy,
            me: new_epoch(),
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
                self.cluster(self.target.timeout.max(LOAD_TIMEOUT)).await
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

    /// A Cluster connection whose commands may take `response` to answer.
    async fn cluster(&self, response: Duration) -> Result<Conn, StoreError> {
        let mut b =
            redis::cluster::ClusterClientBuilder::new(self.target.urls.iter().map(String::as_str))
                .connection_timeout(self.target.timeout.max(LOAD_TIMEOUT))
                .response_timeout(response)
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
    }

    /// The log reader's own connection: a blocking `XREAD` must not hold up
    /// writes, and a lost connection must surface (to re-check the log).
    async fn reader(&self) -> Result<Conn, StoreError> {
        let answer_within = READ_BLOCK + FEED_PING_TIMEOUT;
        let connect = async {
            if self.target.cluster {
                return self.cluster(answer_within).await;
            }
            let seed = self.pick_seed().ok_or(StoreError::Closed)?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(LOAD_TIMEOUT))
                .set_response_timeout(Some(answer_within));
            let c = Conn::Plain(
                seed.get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(backend)?,
            );
            c.query::<Value>(redis::cmd("CLIENT").arg("SETNAME").arg(READER_NAME))
                .await
                .map_err(backend)?;
            Ok(c)
        };
        tokio::time::timeout(LOAD_TIMEOUT, connect)
            .await
            .map_err(|_| StoreError::Timeout)?
    }

    /// The log's epoch (set here if the log has none yet) and what Redis
    /// says of the stream.
    async fn log_state(&self, c: &Conn) -> Result<(String, LogInfo), StoreError> {
        let fresh = new_epoch();
        let before: Option<String> = c
            .query(
                redis::cmd("SET")
                    .arg(&self.epoch)
                    .arg(&fresh)
                    .arg("NX")
                    .arg("GET"),
            )
            .await
            .map_err(backend)?;
        let exists: i64 = c
            .query(redis::cmd("EXISTS").arg(&self.log))
            .await
            .map_err(backend)?;
        let info = if exists == 1 {
            let reply: Value = c
                .query(redis::cmd("XINFO").arg("STREAM").arg(&self.log))
                .await
                .map_err(backend)?;
            LogInfo::from_reply(&reply)
        } else {
            // No log yet: nothing was ever appended.
            LogInfo {
                added: Some(0),
                ..LogInfo::default()
            }
        };
        Ok((before.unwrap_or(fresh), info))
    }

    /// One session on the log: find this replica's place in it (loading
    /// everything only when it has none), then read on until an error.
    async fn follow(
        self: &Arc<Self>,
        sink: &Weak<dyn Sink>,
        pos: &mut Option<Position>,
    ) -> Result<(), StoreError> {
        let reader = self.reader().await?;
        self.find_place(&reader, sink, pos).await?;
        let Some(mut at) = pos.clone() else {
            return Err(StoreError::Closed);
        };
        let mut checked = tokio::time::Instant::now();
        loop {
            let Some(s) = sink.upgrade() else {
                return Ok(());
            };
            drop(s);
            let read = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_BATCH)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.log)
                .arg(at.id.to_string())
                .clone();
            let reply: Value =
                tokio::time::timeout(READ_BLOCK + FEED_PING_TIMEOUT, reader.query(&read))
                    .await
                    .map_err(|_| StoreError::Timeout)?
                    .map_err(backend)?;
            let Some(s) = sink.upgrade() else {
                return Ok(());
            };
            let entries = log::entries_of(&reply);
            if let Some(last) = entries.last() {
                at.id = last.id;
                at.seen = at.seen.map(|n| n + entries.len() as u64);
                *pos = Some(at.clone());
                self.apply_log(&*s, &entries, at.id.ms);
            }
            s.healthy();
            drop(s);
            if checked.elapsed() >= LOG_CHECK_EVERY {
                checked = tokio::time::Instant::now();
                let (epoch, info) = self.log_state(&reader).await?;
                if let Some(gap) = info.gap(Some(&at), &epoch) {
                    return Err(StoreError::Backend(format!(
                        "the change log changed under this replica ({})",
                        gap.label()
                    )));
                }
                self.start_snapshot(epoch, info);
            }
        }
    }

    /// Sets `pos` to where this replica can read on from: its old position
    /// if the log still reaches back to it, else the log's end after a full
    /// load (the end is read first, so a write made during the load is read
    /// again from the log; applying it twice changes nothing).
    async fn find_place(
        self: &Arc<Self>,
        reader: &Conn,
        sink: &Weak<dyn Sink>,
        pos: &mut Option<Position>,
    ) -> Result<(), StoreError> {
        let (epoch, info) = self.log_state(reader).await?;
        let Some(gap) = info.gap(pos.as_ref(), &epoch) else {
            tracing::info!(position = %pos.as_ref().map(|p| p.id).unwrap_or_default(),
                "Reading the redis change log on from this replica's position");
            return Ok(());
        };
        let copy_elsewhere = self
            .copy
            .as_ref()
            .and_then(|c| c.epoch())
            .is_some_and(|e| e != epoch);
        if gap.store_lost_data() || copy_elsewhere {
            tracing::warn!(
                reason = gap.label(),
                "Redis holds less than this replica knew (emptied, replaced or \
                 failed over to a replica that lagged); giving it back what this \
                 replica has, then loading"
            );
            self.give_back(sink, &epoch).await?;
        }
        let started = tokio::time::Instant::now();
        if let Some(c) = &self.copy {
            c.begin(&epoch);
        }
        let apply = |batch: &[Entry]| {
            if let Some(c) = &self.copy {
                c.add(batch);
            }
            apply_to(sink, batch)
        };
        let reserve = |n: usize| {
            if let Some(s) = sink.upgrade() {
                s.reserve(n);
            }
        };
        // The copy is replaced only by a complete load.
        let loaded = match self
            .load_snapshot(reader, &epoch, &info, &apply, &reserve)
            .await
        {
            Ok(Some((at, n))) => Ok((Some(at), n)),
            Ok(None) => self.load_all(&apply).await.map(|n| (None, n)),
            Err(e) => Err(e),
        };
        if let Some(c) = &self.copy {
            match &loaded {
                Ok(_) => c.commit(),
                Err(_) => c.abort(),
            }
        }
        let (source, loaded) = match loaded? {
            (Some(at), n) => {
                *pos = Some(at);
                ("snapshot", n)
            }
            (None, n) => {
                self.scanned.store(n as u64, Ordering::Relaxed);
                *pos = Some(Position {
                    epoch: epoch.clone(),
                    id: info.last,
                    seen: info.added,
                });
                // A large set and no usable snapshot: the next start-up
                // should not have to scan again.
                self.start_snapshot(epoch.clone(), info.clone());
                ("keys", n)
            }
        };
        let Some(s) = sink.upgrade() else {
            return Ok(());
        };
        s.progress(Progress::FullLoad {
            reason: gap.label(),
            source,
            entries: loaded,
        });
        s.healthy();
        tracing::info!(
            entries = loaded,
            reason = gap.label(),
            source,
            took_ms = started.elapsed().as_millis() as u64,
            "Revocations loaded from redis; following the change log"
        );
        Ok(())
    }

    /// Writes a snapshot in the background if one is due (one at a time per
    /// process; one replica of the fleet at a time through the lease).
    fn start_snapshot(self: &Arc<Self>, epoch: String, info: LogInfo) {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let loaded = this.scanned.load(Ordering::Relaxed);
            let started = tokio::time::Instant::now();
            match this.snapshot_if_due(&epoch, &info, loaded).await {
                Ok(Some(m)) => tracing::info!(
                    entries = m.entries,
                    parts = m.parts,
                    took_ms = started.elapsed().as_millis() as u64,
                    "Revocation snapshot written to redis"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error.reason = e.reason(), error = %e,
                    "Could not write a revocation snapshot; start-ups load keys meanwhile"),
            }
            this.snapshotting.store(false, Ordering::Release);
        });
    }

    /// Applies log entries; reports how long after their writes they arrived.
    fn apply_log(&self, sink: &dyn Sink, entries: &[log::LogEntry], position_ms: u64) {
        let prefix = &self.target.key_prefix;
        let now_ms = crate::revocation::clock::unix_now_ms();
        let mut batch = Vec::with_capacity(entries.len());
        let mut lags = Vec::with_capacity(entries.len());
        for e in entries {
            match keys::entry_from(prefix, &e.key, &e.value) {
                Some(entry) => batch.push(entry),
                None => tracing::warn!(id = %e.id, "Ignoring a malformed change log entry"),
            }
            if let Some(t) = e.written_ms {
                lags.push(Duration::from_millis(now_ms.saturating_sub(t)));
            }
        }
        sink.apply(&batch);
        self.keep(now_ms, &batch);
        sink.progress(Progress::Read {
            entries: entries.len(),
            lags: &lags,
            position_ms,
        });
    }

    /// Runs the write script for `entry` (and, on a Cluster, the log append).
    async fn put(&self, conn: &Conn, entry: &Entry) -> Result<(), StoreError> {
        let key = keys::key_of(&self.target.key_prefix, entry);
        let cutoff = match entry {
            Entry::Token { .. } | Entry::Session { .. } | Entry::TokenId { .. } => String::new(),
            Entry::Subject { cutoff, .. } | Entry::Global { cutoff, .. } => cutoff.to_string(),
        };
        let retention = self.target.log_retention.as_millis() as u64;
        let writer_ms = crate::revocation::clock::unix_now_ms();
        let mut inv = self.write.key(&key);
        if !self.target.cluster {
            inv.key(&self.log);
        }
        inv.arg(entry.until())
            .arg(cutoff)
            .arg(crate::revocation::clock::unix_now())
            .arg(writer_ms)
            .arg(retention);
        let merged = match conn.invoke(&inv).await {
            Ok(v) => v,
            Err(e) => {
                self.reset();
                return Err(backend(e));
            }
        };
        if self.target.cluster {
            let mut append = self.append.key(&self.log);
            append.arg(&key).arg(&merged).arg(writer_ms).arg(retention);
            if let Err(e) = conn.invoke(&append).await {
                self.reset();
                return Err(backend(e));
            }
        }
        Ok(())
    }

    /// [`Self::put`] for each entry, [`GIVE_BACK_IN_FLIGHT`] at a time.
    async fn put_all(&self, conn: &Conn, batch: &[Entry]) -> Result<usize, StoreError> {
        // The first alone: a Redis that lost its data lost the script too,
        // and one `NOSCRIPT` round loads it for all.
        let Some((first, rest)) = batch.split_first() else {
            return Ok(0);
        };
        self.put(conn, first).await?;
        for chunk in rest.chunks(GIVE_BACK_IN_FLIGHT) {
            futures_util::future::join_all(chunk.iter().map(|e| self.put(conn, e)))
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()?;
        }
        Ok(batch.len())
    }

    /// Remembers entries applied or written here, to give them back to a
    /// Redis that loses them.
    fn keep(&self, now_ms: u64, batch: &[Entry]) {
        self.recent.push(now_ms, batch);
        if let Some(c) = &self.copy {
            c.add(batch);
        }
    }

    /// Writes back what this replica has to a Redis that lost it: the
    /// entries of the last minute always, the whole local copy when this
    /// replica holds the fleet's give-back lease for this log. The write
    /// script merges, so writing back what Redis still has changes nothing.
    async fn give_back(&self, sink: &Weak<dyn Sink>, epoch: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let recent = self
            .put_all(
                &conn,
                &self.recent.since(crate::revocation::clock::unix_now_ms()),
            )
            .await?;
        let mut from_copy = 0;
        if let Some(c) = &self.copy {
            // The lease's value is this process's: a retry after an error
            // finds it still held by itself.
            let held: Option<String> = conn
                .query(
                    redis::cmd("SET")
                        .arg(log::give_back_lease_key(&self.target.key_prefix))
                        .arg(&self.me)
                        .arg("NX")
                        .arg("GET")
                        .arg("PX")
                        .arg(GIVE_BACK_LEASE.as_millis() as u64),
                )
                .await
                .map_err(backend)?;
            if held.as_deref().is_none_or(|h| h == self.me) {
                let mut batches = c.read();
                while let Some(batch) = batches.recv().await {
                    from_copy += self.put_all(&conn, &batch).await?;
                }
            } else {
                tracing::info!("Another replica is giving Redis back its copy");
            }
        }
        tracing::warn!(
            recent,
            from_copy,
            epoch,
            "Gave Redis back the revocations this replica had"
        );
        if let Some(s) = sink.upgrade() {
            s.progress(Progress::GivenBack { recent, from_copy });
        }
        Ok(())
    }

    /// The node to read the log from (standalone); each reconnect tries the
    /// next seed.
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
            self.put(&conn, entry).await?;
            // Until the log brings it back here (and into the copy).
            self.recent.push(
                crate::revocation::clock::unix_now_ms(),
                std::slice::from_ref(entry),
            );
            Ok(())
        })
    }

    fn lookup<'a>(&'a self, id: &'a TokenRef<'a>) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let p = &self.target.key_prefix;
            let names = keys::candidates(p, id);
            // One GET per key: on a Cluster they live in different slots.
            let got = futures_util::future::join_all(names.iter().map(|k| {
                let conn = conn.clone();
                let cmd = redis::cmd("GET").arg(k).clone();
                async move { conn.query::<Option<String>>(&cmd).await }
            }))
            .await;
            let mut out = Vec::new();
            for (k, v) in names.iter().zip(got) {
                if let Some(e) = v.map_err(backend)?.and_then(|v| keys::entry_from(p, k, &v)) {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    fn read_foreign<'a>(
        &'a self,
        read: &'a crate::revocation::compat::Read,
    ) -> BoxFuture<'a, Result<crate::revocation::compat::Foreign, StoreError>> {
        use crate::revocation::compat::Foreign;
        Box::pin(async move {
            let conn = self.conn().await?;
            let wrong_type = |e: &RedisError| e.code() == Some("WRONGTYPE");
            if read.hash {
                let fields: Result<std::collections::HashMap<Vec<u8>, Vec<u8>>, _> =
                    conn.query(redis::cmd("HGETALL").arg(&read.key)).await;
                let fields = match fields {
                    Err(e) if wrong_type(&e) => return Ok(Foreign::Other),
                    other => other.map_err(backend)?,
                };
                let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                Ok(if fields.is_empty() {
                    Foreign::Missing
                } else {
                    Foreign::Hash(
                        fields
                            .into_iter()
                            .map(|(k, v)| (text(k), text(v)))
                            .collect(),
                    )
                })
            } else {
                let value: Result<Option<Vec<u8>>, _> =
                    conn.query(redis::cmd("GET").arg(&read.key)).await;
                match value {
                    Err(e) if wrong_type(&e) => Ok(Foreign::Other),
                    other => Ok(other
                        .map_err(backend)?
                        .map_or(Foreign::Missing, Foreign::Value)),
                }
            }
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
            let mut pos = None;
            loop {
                if sink.strong_count() == 0 {
                    return;
                }
                let started = tokio::time::Instant::now();
                match self.follow(&sink, &mut pos).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error.reason = e.reason(), error = %e,
                            "Redis change log lost; reconnecting to read on from this replica's position");
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

/// A value no other replica will pick: the process's random hasher keys and
/// the time.
fn new_epoch() -> String {
    format!("{:016x}", crate::revocation::clock::unique_seed())
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
