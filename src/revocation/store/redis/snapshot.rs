//! Snapshots: the whole set as a few large strings, so a replica starting up
//! reads a handful of values plus the log's tail instead of one key each.
//!
//! Keys (in the log's slot):
//! - `{prefix}{log}snap`: the manifest, `v1 <epoch> <log id> <entries added
//!   at that id> <generation> <parts> <entries> <last key scan, Unix ms>`;
//! - `{prefix}{log}snap:<generation>:<i>`: the parts, lines `<key> <value>`,
//!   at most [`PART_BYTES`] each;
//! - `{prefix}{log}snaplease`: held (`SET NX PX`) by the one replica writing.
//!
//! A snapshot covers every entry of the log up to its id. A replica writes a
//! new one when the log has grown by [`SNAPSHOT_EVERY`] entries since the
//! last: the old parts merged with the log after them (cost: what changed),
//! or, when there is no usable snapshot or the last key scan is older than
//! [`SCAN_EVERY`], from a scan of every key (so keys a backend wrote without
//! a log entry reach later start-ups). Old parts expire a minute after.

use super::log::{self, LogId, LogInfo, Position};
use super::{backend, Conn, RedisStore};
use crate::revocation::model::Entry;
use crate::revocation::store::{keys, BoxFuture, StoreError};
use redis::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Largest part written (256 KiB): small enough that reading one leaves no
/// large freed buffer for the allocator to keep, large enough that a
/// million entries are under 200 reads.
pub const PART_BYTES: usize = 256 << 10;
/// Log entries since the last snapshot (or live entries, for a first one)
/// that make a new snapshot due.
pub const SNAPSHOT_EVERY: u64 = 10_000;
/// A snapshot is rebuilt from a key scan at least this often (1 h).
pub const SCAN_EVERY: Duration = Duration::from_secs(3600);
/// How long the writer's lease lasts (2 min).
const LEASE: Duration = Duration::from_secs(120);
/// Replaced parts stay readable this long for replicas still reading them.
const OLD_PARTS_KEPT: Duration = Duration::from_secs(60);
/// Log entries read per `XRANGE` while merging.
const RANGE_BATCH: usize = 10_000;

pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}{{log}}snap")
}

fn part_key(prefix: &str, generation: u64, i: u32) -> String {
    format!("{prefix}{{log}}snap:{generation}:{i}")
}

fn lease_key(prefix: &str) -> String {
    format!("{prefix}{{log}}snaplease")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub epoch: String,
    pub id: LogId,
    pub seen: u64,
    pub generation: u64,
    pub parts: u32,
    pub entries: u64,
    pub scanned_ms: u64,
}

impl Manifest {
    pub fn parse(text: &str) -> Option<Manifest> {
        let mut f = text.split(' ');
        if f.next()? != "v1" {
            return None;
        }
        let m = Manifest {
            epoch: f.next()?.to_string(),
            id: LogId::parse(f.next()?)?,
            seen: f.next()?.parse().ok()?,
            generation: f.next()?.parse().ok()?,
            parts: f.next()?.parse().ok()?,
            entries: f.next()?.parse().ok()?,
            scanned_ms: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(m)
    }

    pub fn render(&self) -> String {
        format!(
            "v1 {} {} {} {} {} {} {}",
            self.epoch,
            self.id,
            self.seen,
            self.generation,
            self.parts,
            self.entries,
            self.scanned_ms
        )
    }

    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            id: self.id,
            seen: Some(self.seen),
        }
    }

    /// Belongs to this log, and the log still holds everything after it.
    fn usable(&self, epoch: &str, info: &LogInfo) -> bool {
        self.epoch == epoch && info.gap(Some(&self.position()), epoch).is_none()
    }
}

/// What a due snapshot is built from.
struct Plan {
    /// The manifest in Redis now (its parts expire once replaced).
    old: Option<Manifest>,
    /// A usable snapshot to merge the log into; none: scan the keys.
    merge_from: Option<Manifest>,
}

/// Receives `(key, value)` pairs batch by batch (a key scan's output).
pub(super) trait Pairs: Send {
    fn take<'a>(
        &'a mut self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Writes snapshot parts as lines arrive, dropping expired entries.
struct PartWriter {
    conn: Conn,
    prefix: String,
    generation: u64,
    now: i64,
    buf: Vec<u8>,
    parts: u32,
    entries: u64,
}

impl PartWriter {
    async fn line(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        match keys::parse_value(value) {
            Some((_, until)) if until > self.now => {}
            _ => return Ok(()),
        }
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(b'\n');
        self.entries += 1;
        if self.buf.len() >= PART_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let key = part_key(&self.prefix, self.generation, self.parts);
        self.conn
            .query::<Value>(redis::cmd("SET").arg(&key).arg(&self.buf))
            .await
            .map_err(backend)?;
        self.buf.clear();
        self.parts += 1;
        Ok(())
    }
}

impl Pairs for PartWriter {
    fn take<'a>(
        &'a mut self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for (k, v) in pairs {
                self.line(k, v).await?;
            }
            Ok(())
        })
    }
}

impl RedisStore {
    /// Applies the snapshot if it is usable for this log; returns the
    /// position it covers and how many entries it held. `None`: load keys.
    pub(super) async fn load_snapshot(
        &self,
        c: &Conn,
        epoch: &str,
        info: &LogInfo,
        apply: &(dyn Fn(&[Entry]) + Sync),
        reserve: &(dyn Fn(usize) + Sync),
    ) -> Result<Option<(Position, usize)>, StoreError> {
        let prefix = &self.target.key_prefix;
        let text: Option<String> = c
            .query(redis::cmd("GET").arg(manifest_key(prefix)))
            .await
            .map_err(backend)?;
        let Some(m) = text.as_deref().and_then(Manifest::parse) else {
            return Ok(None);
        };
        if !m.usable(epoch, info) {
            return Ok(None);
        }
        reserve(usize::try_from(m.entries).unwrap_or(0));
        let mut total = 0;
        let mut batch = Vec::with_capacity(5_000);
        for i in 0..m.parts {
            // Replaced (and expired) while we read: load the keys instead.
            let Some(part) = read_part(c, prefix, &m, i).await? else {
                return Ok(None);
            };
            for (k, v) in lines(&part) {
                if let Some(e) = keys::entry_from(prefix, k, v) {
                    batch.push(e);
                }
                if batch.len() >= 5_000 {
                    total += batch.len();
                    apply(&batch);
                    batch.clear();
                }
            }
        }
        total += batch.len();
        apply(&batch);
        Ok(Some((m.position(), total)))
    }

    /// Writes a new snapshot if one is due and no other replica is writing
    /// one. `loaded` is how many entries this replica's last key scan found.
    pub(super) async fn snapshot_if_due(
        &self,
        epoch: &str,
        info: &LogInfo,
        loaded: u64,
    ) -> Result<Option<Manifest>, StoreError> {
        let c = self.conn().await?;
        let Some(plan) = self.plan(&c, epoch, info, loaded).await? else {
            return Ok(None);
        };
        let lease = lease_key(&self.target.key_prefix);
        let taken: Option<String> = c
            .query(
                redis::cmd("SET")
                    .arg(&lease)
                    .arg(epoch)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE.as_millis() as u64),
            )
            .await
            .map_err(backend)?;
        if taken.is_none() {
            return Ok(None);
        }
        let built = self.build(&c, epoch, info, &plan).await;
        let _ = c.query::<Value>(redis::cmd("DEL").arg(&lease)).await;
        let m = built?;
        if let Some(old) = plan.old {
            self.expire_parts(&c, &old).await;
        }
        Ok(Some(m))
    }

    /// Whether a snapshot is due, and from what it would be built.
    async fn plan(
        &self,
        c: &Conn,
        epoch: &str,
        info: &LogInfo,
        loaded: u64,
    ) -> Result<Option<Plan>, StoreError> {
        let text: Option<String> = c
            .query(redis::cmd("GET").arg(manifest_key(&self.target.key_prefix)))
            .await
            .map_err(backend)?;
        let old = text.as_deref().and_then(Manifest::parse);
        let usable = old.clone().filter(|m| m.usable(epoch, info));
        let added = info.added.unwrap_or(0);
        let now_ms = crate::revocation::clock::unix_now_ms();
        let scan_due =
            |m: &Manifest| now_ms.saturating_sub(m.scanned_ms) >= SCAN_EVERY.as_millis() as u64;
        let due = match &usable {
            Some(m) => added.saturating_sub(m.seen) >= SNAPSHOT_EVERY || scan_due(m),
            None => added >= SNAPSHOT_EVERY || loaded >= SNAPSHOT_EVERY,
        };
        Ok(due.then(|| Plan {
            merge_from: usable.filter(|m| !scan_due(m)),
            old,
        }))
    }

    /// Writes the parts and the manifest: merged from the old snapshot and
    /// the log, or from a key scan.
    async fn build(
        &self,
        c: &Conn,
        epoch: &str,
        info: &LogInfo,
        plan: &Plan,
    ) -> Result<Manifest, StoreError> {
        let now_ms = crate::revocation::clock::unix_now_ms();
        let mut w = PartWriter {
            conn: c.clone(),
            prefix: self.target.key_prefix.clone(),
            generation: now_ms,
            now: crate::revocation::clock::unix_now(),
            buf: Vec::with_capacity(PART_BYTES + 4096),
            parts: 0,
            entries: 0,
        };
        let (id, seen, scanned_ms) = match &plan.merge_from {
            Some(m) => self.merge_into(c, m, &mut w).await?,
            None => {
                // The log's end before the scan: entries written during it
                // are in the log after this position, and applying them
                // again changes nothing.
                self.scan_all(&mut w).await?;
                (info.last, info.added.unwrap_or(0), now_ms)
            }
        };
        self.publish(c, &mut w, epoch, id, seen, scanned_ms).await
    }

    /// Lets a replaced snapshot's parts expire once readers are done.
    async fn expire_parts(&self, c: &Conn, old: &Manifest) {
        for i in 0..old.parts {
            let _ = c
                .query::<Value>(
                    redis::cmd("PEXPIRE")
                        .arg(part_key(&self.target.key_prefix, old.generation, i))
                        .arg(OLD_PARTS_KEPT.as_millis() as u64),
                )
                .await;
        }
    }

    /// Writes the last part and then the manifest that makes them current.
    async fn publish(
        &self,
        c: &Conn,
        w: &mut PartWriter,
        epoch: &str,
        id: LogId,
        seen: u64,
        scanned_ms: u64,
    ) -> Result<Manifest, StoreError> {
        w.flush().await?;
        let m = Manifest {
            epoch: epoch.to_string(),
            id,
            seen,
            generation: w.generation,
            parts: w.parts,
            entries: w.entries,
            scanned_ms,
        };
        c.query::<Value>(
            redis::cmd("SET")
                .arg(manifest_key(&self.target.key_prefix))
                .arg(m.render()),
        )
        .await
        .map_err(backend)?;
        Ok(m)
    }

    /// The old snapshot with the log after it merged in, into `w`; returns
    /// the position the new one covers.
    async fn merge_into(
        &self,
        c: &Conn,
        m: &Manifest,
        w: &mut PartWriter,
    ) -> Result<(LogId, u64, u64), StoreError> {
        let prefix = &self.target.key_prefix;
        let log_key = log::log_key(prefix);
        let mut tail: HashMap<String, String> = HashMap::new();
        let (mut at, mut seen) = (m.id, m.seen);
        loop {
            let reply: Value = c
                .query(
                    redis::cmd("XRANGE")
                        .arg(&log_key)
                        .arg(format!("({at}"))
                        .arg("+")
                        .arg("COUNT")
                        .arg(RANGE_BATCH),
                )
                .await
                .map_err(backend)?;
            let entries = log::range_entries(&reply);
            let Some(last) = entries.last() else { break };
            at = last.id;
            seen += entries.len() as u64;
            for e in entries {
                merge_text(prefix, &mut tail, e.key, e.value);
            }
        }
        for i in 0..m.parts {
            let part = read_part(c, prefix, m, i)
                .await?
                .ok_or_else(|| StoreError::Backend("snapshot part gone".into()))?;
            for (k, v) in lines(&part) {
                match tail.remove(k) {
                    Some(newer) => {
                        let merged = merged_value(prefix, k, v, &newer);
                        w.line(k, &merged).await?;
                    }
                    None => w.line(k, v).await?,
                }
            }
        }
        for (k, v) in tail {
            w.line(&k, &v).await?;
        }
        Ok((at, seen, m.scanned_ms))
    }
}

/// Part `i` of snapshot `m` (`None`: gone, replaced by a newer one).
async fn read_part(
    c: &Conn,
    prefix: &str,
    m: &Manifest,
    i: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    c.query(redis::cmd("GET").arg(part_key(prefix, m.generation, i)))
        .await
        .map_err(backend)
}

/// The `(key, value)` lines of a part; unreadable lines are skipped.
fn lines(part: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    part.split(|&b| b == b'\n').filter_map(|line| {
        std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(' '))
    })
}

/// Adds one log entry to `tail`, merged with what it holds for the key.
fn merge_text(prefix: &str, tail: &mut HashMap<String, String>, key: String, value: String) {
    match tail.get_mut(&key) {
        Some(old) => *old = merged_value(prefix, &key, old, &value),
        None => {
            tail.insert(key, value);
        }
    }
}

/// The later of each time of two values of one key (the stored one if the
/// newer does not parse).
fn merged_value(prefix: &str, key: &str, stored: &str, newer: &str) -> String {
    match keys::entry_from(prefix, key, newer) {
        Some(entry) => keys::merge_values(Some(stored), &entry),
        None => stored.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_refuse_anything_else() {
        let m = Manifest {
            epoch: "abc".into(),
            id: LogId { ms: 5, seq: 1 },
            seen: 9,
            generation: 77,
            parts: 2,
            entries: 1000,
            scanned_ms: 123,
        };
        assert_eq!(Manifest::parse(&m.render()), Some(m.clone()));
        assert!(Manifest::parse("v2 abc 5-1 9 77 2 1000 123").is_none());
        assert!(Manifest::parse(&format!("{} x", m.render())).is_none());
        assert!(Manifest::parse("v1 abc 5-1 9 77 2").is_none());
    }

    #[test]
    fn merged_values_keep_the_later_times() {
        let p = "p:";
        assert_eq!(merged_value(p, "p:t:sa:sb", "100", "90"), "100");
        assert_eq!(merged_value(p, "p:t:sa:sb", "100", "200"), "200");
        assert_eq!(merged_value(p, "p:s:sa", "10 100", "20 90"), "20 100");
        assert_eq!(merged_value(p, "p:s:sa", "10 100", "junk"), "10 100");
        let mut tail = HashMap::new();
        merge_text(p, &mut tail, "p:g".into(), "5 50".into());
        merge_text(p, &mut tail, "p:g".into(), "4 60".into());
        assert_eq!(tail.get("p:g").map(String::as_str), Some("5 60"));
    }
}
