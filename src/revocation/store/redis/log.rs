//! The change log: a Redis Stream every write appends to, that replicas read
//! on from their last position (`XREAD BLOCK`), and the checks that say
//! whether reading on from a position misses nothing.
//!
//! Keys (all in one Cluster slot, through the `{log}` hash tag):
//! - `{prefix}{log}`: the stream; entry fields `k` (key), `v` (merged value),
//!   `t` (the writer's Unix time in milliseconds).
//! - `{prefix}{log}epoch`: a random value set once, when a replica first
//!   meets the log. A Redis that comes back empty, or a different one, has
//!   another epoch (or none): positions in the old log mean nothing there.
//! - `{prefix}{log}giveback`: the lease of the one replica writing its whole
//!   copy back after such a loss ([`super::copy`]).

use redis::Value;
use std::fmt;

/// The stream under `prefix`.
pub fn log_key(prefix: &str) -> String {
    format!("{prefix}{{log}}")
}

/// The epoch key under `prefix`.
pub fn epoch_key(prefix: &str) -> String {
    format!("{prefix}{{log}}epoch")
}

/// The give-back lease under `prefix`: held by the replica writing its
/// whole copy back to a Redis that lost entries.
pub fn give_back_lease_key(prefix: &str) -> String {
    format!("{prefix}{{log}}giveback")
}

/// Whether a key under `prefix` is one of the log's own (not an entry).
pub fn is_log_key(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with("{log}"))
}

/// A stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogId {
    pub ms: u64,
    pub seq: u64,
}

impl LogId {
    pub fn parse(text: &str) -> Option<LogId> {
        let (ms, seq) = text.split_once('-')?;
        Some(LogId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Where a replica stands in one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub id: LogId,
    /// How many entries the log had ever been given up to `id` (from
    /// `entries-added` at the load, plus every entry read since).
    pub seen: Option<u64>,
}

/// What `XINFO STREAM` says of the log (or that there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogInfo {
    pub exists: bool,
    /// The last id ever generated (kept when entries are trimmed).
    pub last: LogId,
    /// The highest id trimmed or deleted (Redis ≥ 7.0).
    pub max_deleted: Option<LogId>,
    pub first: Option<LogId>,
    pub length: u64,
    /// Entries ever appended (Redis ≥ 7.0).
    pub added: Option<u64>,
}

/// Why a replica must load everything instead of reading on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// First load of this process.
    Start,
    /// Another log: Redis came back empty, or was replaced.
    NewEpoch,
    /// The log ends before the position: Redis lost its tail (a replica
    /// promoted before it had everything).
    Behind,
    /// Entries after the position were trimmed.
    Trimmed,
}

impl Gap {
    pub fn label(self) -> &'static str {
        match self {
            Gap::Start => "start",
            Gap::NewEpoch => "new_epoch",
            Gap::Behind => "log_behind",
            Gap::Trimmed => "trimmed",
        }
    }

    /// Redis holds less than this replica knew: what was acknowledged there
    /// may be gone from it.
    pub fn store_lost_data(self) -> bool {
        matches!(self, Gap::NewEpoch | Gap::Behind)
    }
}

impl LogInfo {
    /// `None` when reading on from `pos` in a log of epoch `epoch` misses
    /// nothing; otherwise why not.
    pub fn gap(&self, pos: Option<&Position>, epoch: &str) -> Option<Gap> {
        let Some(pos) = pos else {
            return Some(Gap::Start);
        };
        if pos.epoch != epoch {
            return Some(Gap::NewEpoch);
        }
        if !self.exists {
            // Never written, or deleted: only a replica that saw nothing is current.
            return (pos.id != LogId::default()).then_some(Gap::Behind);
        }
        if self.last < pos.id {
            return Some(Gap::Behind);
        }
        if self.max_deleted.is_some_and(|d| d > pos.id) {
            // An entry after the position was deleted (`XDEL`).
            return Some(Gap::Trimmed);
        }
        if let (Some(added), Some(seen)) = (self.added, pos.seen) {
            // Trimming takes the oldest entries and (in Redis 7.0) leaves
            // max-deleted-entry-id alone: the entries after the position
            // are all still there only if there are no more of them than
            // the log holds.
            return match added.checked_sub(seen) {
                None => Some(Gap::Behind),
                Some(after) => (after > self.length).then_some(Gap::Trimmed),
            };
        }
        let trimmed = match (self.max_deleted, self.first) {
            (Some(deleted), _) => deleted > pos.id,
            // Older Redis: entries between the position and the first one
            // may have been trimmed; only an unbroken log is trusted.
            (None, Some(first)) => first > pos.id,
            (None, None) => self.last != pos.id,
        };
        trimmed.then_some(Gap::Trimmed)
    }

    /// Reads an `XINFO STREAM` reply (RESP2 pairs or a RESP3 map).
    pub fn from_reply(v: &Value) -> LogInfo {
        let mut info = LogInfo {
            exists: true,
            ..LogInfo::default()
        };
        for (name, value) in pairs(v) {
            match name.as_str() {
                "last-generated-id" => info.last = id_of(value).unwrap_or_default(),
                "max-deleted-entry-id" => info.max_deleted = id_of(value),
                "length" => info.length = int_of(value).unwrap_or(0),
                "entries-added" => info.added = int_of(value),
                "first-entry" => {
                    info.first = match value {
                        Value::Array(e) => e.first().and_then(id_of),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// One entry read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: LogId,
    pub key: String,
    pub value: String,
    /// The writer's clock when it wrote, in Unix milliseconds.
    pub written_ms: Option<u64>,
}

/// The entries of an `XREAD` reply for one stream (nil: none yet). An entry
/// without `k` and `v` comes back with an empty key, so its id still moves
/// the position on.
pub fn entries_of(v: &Value) -> Vec<LogEntry> {
    let streams: Vec<&Value> = match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) => kv.get(1),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    streams.into_iter().flat_map(range_entries).collect()
}

/// The entries of an `XRANGE` reply (or of one stream in an `XREAD` reply).
pub fn range_entries(v: &Value) -> Vec<LogEntry> {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Array(parts) = e else { continue };
        let Some(id) = parts.first().and_then(id_of) else {
            continue;
        };
        let mut entry = LogEntry {
            id,
            key: String::new(),
            value: String::new(),
            written_ms: None,
        };
        if let Some(fields) = parts.get(1) {
            for (name, value) in pairs(fields) {
                match name.as_str() {
                    "k" => entry.key = text_of(value).unwrap_or_default(),
                    "v" => entry.value = text_of(value).unwrap_or_default(),
                    "t" => entry.written_ms = text_of(value).and_then(|t| t.parse().ok()),
                    _ => {}
                }
            }
        }
        out.push(entry);
    }
    out
}

/// `(name, value)` pairs of a flat RESP2 array or a RESP3 map.
fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| match c {
                [n, v] => Some((text_of(n)?, v)),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m
            .iter()
            .filter_map(|(n, v)| Some((text_of(n)?, v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text_of(other)?.parse().ok(),
    }
}

fn id_of(v: &Value) -> Option<LogId> {
    LogId::parse(&text_of(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn id(s: &str) -> LogId {
        LogId::parse(s).unwrap()
    }

    fn info(last: &str, deleted: Option<&str>, first: Option<&str>) -> LogInfo {
        LogInfo {
            exists: true,
            last: id(last),
            max_deleted: deleted.map(id),
            first: first.map(id),
            length: 1,
            added: None,
        }
    }

    fn at(epoch: &str, i: &str) -> Position {
        Position {
            epoch: epoch.into(),
            id: id(i),
            seen: None,
        }
    }

    #[test]
    fn ids_order_as_redis_orders_them() {
        assert!(id("10-2") < id("11-0"));
        assert!(id("9-9") < id("10-0"));
        assert_eq!(id("5-1").to_string(), "5-1");
        assert!(LogId::parse("5").is_none());
        assert!(LogId::parse("a-1").is_none());
    }

    #[test]
    fn reading_on_is_allowed_only_when_nothing_was_missed() {
        let log = info("100-0", Some("50-0"), Some("60-0"));
        assert_eq!(log.gap(None, "e"), Some(Gap::Start));
        assert_eq!(log.gap(Some(&at("e", "70-0")), "e"), None);
        assert_eq!(log.gap(Some(&at("e", "100-0")), "e"), None);
        assert_eq!(log.gap(Some(&at("e", "50-0")), "e"), None);
        assert_eq!(log.gap(Some(&at("e", "40-0")), "e"), Some(Gap::Trimmed));
        assert_eq!(log.gap(Some(&at("e", "101-0")), "e"), Some(Gap::Behind));
        assert_eq!(log.gap(Some(&at("old", "70-0")), "e"), Some(Gap::NewEpoch));
        let none = LogInfo::default();
        assert_eq!(none.gap(Some(&at("e", "0-0")), "e"), None);
        assert_eq!(none.gap(Some(&at("e", "3-0")), "e"), Some(Gap::Behind));
        // Without max-deleted-entry-id only an unbroken log is trusted.
        let old = info("100-0", None, Some("60-0"));
        assert_eq!(old.gap(Some(&at("e", "60-0")), "e"), None);
        assert_eq!(old.gap(Some(&at("e", "59-0")), "e"), Some(Gap::Trimmed));
        assert!(Gap::NewEpoch.store_lost_data() && !Gap::Trimmed.store_lost_data());
        // Redis 7.0 trims without moving max-deleted-entry-id: the count of
        // entries ever added tells. 10 added, 3 left; seen 7 → 3 after: fine.
        let counted = LogInfo {
            added: Some(10),
            length: 3,
            max_deleted: Some(id("0-0")),
            ..info("100-0", None, Some("90-0"))
        };
        let seen = |n| Position {
            seen: Some(n),
            ..at("e", "80-0")
        };
        assert_eq!(counted.gap(Some(&seen(7)), "e"), None);
        assert_eq!(counted.gap(Some(&seen(6)), "e"), Some(Gap::Trimmed));
        assert_eq!(counted.gap(Some(&seen(11)), "e"), Some(Gap::Behind));
    }

    #[test]
    fn xinfo_and_xread_replies_are_read() {
        let reply = Value::Array(vec![
            bulk("length"),
            Value::Int(2),
            bulk("last-generated-id"),
            bulk("7-1"),
            bulk("max-deleted-entry-id"),
            bulk("3-0"),
            bulk("first-entry"),
            Value::Array(vec![bulk("5-0"), Value::Array(vec![])]),
        ]);
        assert_eq!(
            LogInfo::from_reply(&reply),
            LogInfo {
                exists: true,
                last: id("7-1"),
                max_deleted: Some(id("3-0")),
                first: Some(id("5-0")),
                length: 2,
                added: None,
            }
        );
        let read = Value::Array(vec![Value::Array(vec![
            bulk("p{log}"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("5-0"),
                    Value::Array(vec![
                        bulk("k"),
                        bulk("pt:sa:sb"),
                        bulk("v"),
                        bulk("99"),
                        bulk("t"),
                        bulk("1234"),
                    ]),
                ]),
                Value::Array(vec![bulk("6-0"), Value::Array(vec![bulk("x"), bulk("y")])]),
            ]),
        ])]);
        let got = entries_of(&read);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "pt:sa:sb");
        assert_eq!(got[0].value, "99");
        assert_eq!(got[0].written_ms, Some(1234));
        assert_eq!(got[1].id, id("6-0"));
        assert!(got[1].key.is_empty());
        assert!(entries_of(&Value::Nil).is_empty());
        assert!(is_log_key("p", "p{log}") && is_log_key("p", "p{log}epoch"));
        assert!(!is_log_key("p", "pt:sa:sb"));
    }
}
