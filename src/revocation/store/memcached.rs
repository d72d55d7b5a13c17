//! The `memcached` store (parity with express-jwt-blacklist's memcached
//! store): the same key layout as redis ([`super::keys`]), looked up on each
//! request, written with `gets`/`cas` (or `add` for a new key) so concurrent
//! writers never lose each other's update. Keys longer than memcached's 250
//! bytes are stored as `{prefix}h:{base64url(sha256(key))}`.
//!
//! Speaks the text protocol over a small pool of connections; a connection
//! is returned to the pool only after a complete exchange.

use super::keys;
use super::{Access, BoxFuture, Store, StoreError};
use crate::revocation::model::{Entry, TokenRef};
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// memcached's key length limit.
const MAX_KEY: usize = 250;
/// Idle connections kept for reuse.
const POOL_MAX: usize = 16;
/// `gets`/`cas` rounds before a contended write gives up (and is retried later).
const CAS_ROUNDS: usize = 32;
/// Largest value accepted from the server (ours are under 50 bytes).
const MAX_VALUE: usize = 4096;
/// Largest value of another library's record (`revocation.compat`):
/// memcached's own default item limit.
pub const MAX_FOREIGN_VALUE: usize = 1 << 20;

pub struct MemcachedStore {
    addr: String,
    prefix: String,
    pool: Mutex<Vec<Conn>>,
}

struct Conn {
    io: BufStream<TcpStream>,
}

/// One value of a `get`/`gets` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub value: String,
    pub cas: Option<u64>,
    /// The client flags stored with the value.
    pub flags: u32,
}

fn proto(msg: impl Into<String>) -> StoreError {
    StoreError::Backend(msg.into())
}

/// A retrieval answer so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Retrieved {
    /// Complete: the items, and how many bytes the answer took.
    Done(Vec<Item>, usize),
    /// More bytes are needed.
    Partial,
}

/// Parses a `get`/`gets` answer (`VALUE key flags bytes [cas]`, data,
/// … `END`) from the start of `buf`. Anything else is a protocol error.
pub fn parse_retrieval(buf: &[u8]) -> Result<Retrieved, StoreError> {
    parse_retrieval_up_to(buf, MAX_VALUE)
}

/// [`parse_retrieval`] with values of up to `max_value` bytes.
pub fn parse_retrieval_up_to(buf: &[u8], max_value: usize) -> Result<Retrieved, StoreError> {
    let mut items = Vec::new();
    let mut at = 0;
    loop {
        let rest = buf.get(at..).unwrap_or_default();
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            if rest.len() > MAX_VALUE {
                return Err(proto("answer line too long"));
            }
            return Ok(Retrieved::Partial);
        };
        let line = std::str::from_utf8(rest.get(..eol).unwrap_or_default())
            .map_err(|_| proto("answer line is not text"))?;
        let data_at = at + eol + 2;
        if line == "END" {
            return Ok(Retrieved::Done(items, data_at));
        }
        let mut f = line.split(' ');
        if f.next() != Some("VALUE") {
            return Err(proto("unexpected answer to a retrieval"));
        }
        let key = f
            .next()
            .ok_or_else(|| proto("VALUE without key"))?
            .to_string();
        let flags = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let len: usize = f
            .next()
            .and_then(|b| b.parse().ok())
            .filter(|&b| b <= max_value)
            .ok_or_else(|| proto("bad VALUE length"))?;
        let cas = f.next().and_then(|c| c.parse().ok());
        let Some(data) = buf.get(data_at..data_at + len + 2) else {
            return Ok(Retrieved::Partial);
        };
        if data.get(len..) != Some(b"\r\n".as_slice()) {
            return Err(proto("VALUE data not ended by CRLF"));
        }
        items.push(Item {
            key,
            value: String::from_utf8_lossy(data.get(..len).unwrap_or_default()).into_owned(),
            cas,
            flags,
        });
        at = data_at + len + 2;
    }
}

/// Most bytes a retrieval answer may take (three values and their lines).
const MAX_ANSWER: usize = 4 * (MAX_VALUE + 512);

impl Conn {
    async fn line(&mut self) -> Result<String, StoreError> {
        let mut line = String::new();
        let n = (&mut self.io)
            .take(MAX_VALUE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 || !line.ends_with("\r\n") {
            return Err(proto("memcached closed the connection"));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Sends a retrieval command and reads its items up to `END`.
    async fn retrieve(&mut self, cmd: &str, names: &[String]) -> Result<Vec<Item>, StoreError> {
        self.retrieve_up_to(cmd, names, MAX_VALUE).await
    }

    /// [`Conn::retrieve`] with values of up to `max_value` bytes.
    async fn retrieve_up_to(
        &mut self,
        cmd: &str,
        names: &[String],
        max_value: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut req = String::from(cmd);
        for n in names {
            req.push(' ');
            req.push_str(n);
        }
        req.push_str("\r\n");
        self.io.write_all(req.as_bytes()).await?;
        self.io.flush().await?;
        let mut buf = Vec::with_capacity(256);
        loop {
            let mut chunk = [0u8; 1024];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Err(proto("memcached closed the connection"));
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            match parse_retrieval_up_to(&buf, max_value)? {
                Retrieved::Done(items, used) if used == buf.len() => return Ok(items),
                Retrieved::Done(..) => return Err(proto("bytes after END")),
                Retrieved::Partial if buf.len() > MAX_ANSWER.max(max_value + 512) => {
                    return Err(proto("answer too long"))
                }
                Retrieved::Partial => {}
            }
        }
    }

    /// `add` or `cas`; returns the server's one-word answer.
    async fn store(
        &mut self,
        name: &str,
        value: &str,
        exptime: i64,
        cas: Option<u64>,
    ) -> Result<String, StoreError> {
        let req = match cas {
            Some(c) => format!("cas {name} 0 {exptime} {} {c}\r\n{value}\r\n", value.len()),
            None => format!("add {name} 0 {exptime} {}\r\n{value}\r\n", value.len()),
        };
        self.io.write_all(req.as_bytes()).await?;
        self.io.flush().await?;
        self.line().await
    }
}

impl MemcachedStore {
    /// `memcache://host:port` (also `memcached://` or a bare `host:port`).
    pub fn new(url: &str, prefix: &str) -> Result<MemcachedStore, StoreError> {
        let addr = url
            .strip_prefix("memcache://")
            .or_else(|| url.strip_prefix("memcached://"))
            .unwrap_or(url)
            .trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(proto("memcached URL must be memcache://host:port"));
        }
        if prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(proto(
                "key_prefix must not contain spaces or control characters",
            ));
        }
        Ok(MemcachedStore {
            addr: addr.to_string(),
            prefix: prefix.to_string(),
            pool: Mutex::new(Vec::new()),
        })
    }

    async fn take(&self) -> Result<Conn, StoreError> {
        if let Some(c) = self.pool.lock().pop() {
            return Ok(c);
        }
        let stream = TcpStream::connect(&self.addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            io: BufStream::new(stream),
        })
    }

    fn give_back(&self, conn: Conn) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL_MAX {
            pool.push(conn);
        }
    }

    /// The name a key is stored under (hashed when too long for memcached).
    fn wire_name(&self, key: &str) -> String {
        if key.len() <= MAX_KEY {
            return key.to_string();
        }
        let digest = Sha256::digest(key.as_bytes());
        format!(
            "{}h:{}",
            self.prefix,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        )
    }

    async fn write_entry(&self, entry: &Entry) -> Result<(), StoreError> {
        let key = keys::key_of(&self.prefix, entry);
        let name = self.wire_name(&key);
        let mut conn = self.take().await?;
        for _ in 0..CAS_ROUNDS {
            let current = conn.retrieve("gets", std::slice::from_ref(&name)).await?;
            let (stored, cas) = match current.into_iter().next() {
                Some(item) => (Some(item.value), item.cas),
                None => (None, None),
            };
            let merged = keys::merge_values(stored.as_deref(), entry);
            if stored.as_deref() == Some(merged.as_str()) {
                self.give_back(conn);
                return Ok(());
            }
            let until = keys::parse_value(&merged).map_or(entry.until(), |(_, u)| u);
            if until <= crate::revocation::clock::unix_now() {
                self.give_back(conn);
                return Ok(());
            }
            let answer = conn.store(&name, &merged, until, cas).await?;
            match answer.as_str() {
                "STORED" => {
                    self.give_back(conn);
                    return Ok(());
                }
                // Someone else wrote first: read again and merge with theirs.
                "EXISTS" | "NOT_FOUND" | "NOT_STORED" => continue,
                other => return Err(proto(format!("memcached refused the write: {other}"))),
            }
        }
        self.give_back(conn);
        Err(proto("write contended; will retry"))
    }
}

impl Store for MemcachedStore {
    fn kind(&self) -> &'static str {
        "memcached"
    }

    fn access(&self) -> Access {
        Access::PerRequest
    }

    fn load(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        // memcached cannot list its keys: every request looks up instead.
        Box::pin(async { Ok(Vec::new()) })
    }

    fn write<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write_entry(entry))
    }

    fn lookup<'a>(&'a self, id: &'a TokenRef<'a>) -> BoxFuture<'a, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let p = &self.prefix;
            let names = keys::candidates(p, id);
            let wire: Vec<String> = names.iter().map(|k| self.wire_name(k)).collect();
            let mut conn = self.take().await?;
            let items = conn.retrieve("get", &wire).await?;
            self.give_back(conn);
            Ok(items
                .iter()
                .filter_map(|item| {
                    let i = wire.iter().position(|w| *w == item.key)?;
                    keys::entry_from(p, names.get(i)?, &item.value)
                })
                .collect())
        })
    }

    fn read_foreign<'a>(
        &'a self,
        read: &'a crate::revocation::compat::Read,
    ) -> BoxFuture<'a, Result<crate::revocation::compat::Foreign, StoreError>> {
        use crate::revocation::compat::Foreign;
        Box::pin(async move {
            // The library's own key, as it wrote it: no prefix of ours.
            let wire = [read.key.clone()];
            let mut conn = self.take().await?;
            let items = conn.retrieve_up_to("get", &wire, MAX_FOREIGN_VALUE).await?;
            self.give_back(conn);
            Ok(items
                .into_iter()
                .find(|i| i.key == read.key)
                .map_or(Foreign::Missing, |i| {
                    Foreign::Flagged(i.flags, i.value.into_bytes())
                }))
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.take().await?;
            conn.io.write_all(b"version\r\n").await?;
            conn.io.flush().await?;
            let line = conn.line().await?;
            if !line.starts_with("VERSION") {
                return Err(proto("unexpected reply to version"));
            }
            self.give_back(conn);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_under_the_limit() {
        let s = MemcachedStore::new("memcache://127.0.0.1:11211", "rp:").unwrap();
        let long = format!("rp:t:s{}:sx", "a".repeat(400));
        let name = s.wire_name(&long);
        assert!(name.len() <= MAX_KEY && name.starts_with("rp:h:"));
        assert_eq!(s.wire_name("rp:g"), "rp:g");
        assert!(MemcachedStore::new("memcache://", "rp:").is_err());
        assert!(MemcachedStore::new("memcache://h:1", "a b").is_err());
    }

    #[test]
    fn retrieval_answers_parse_across_any_split() {
        let answer = b"VALUE rp:g 0 5 7\r\n10 20\r\nVALUE rp:s:sa 0 2\r\nab\r\nEND\r\n";
        let want = Retrieved::Done(
            vec![
                Item {
                    flags: 0,
                    key: "rp:g".into(),
                    value: "10 20".into(),
                    cas: Some(7),
                },
                Item {
                    flags: 0,
                    key: "rp:s:sa".into(),
                    value: "ab".into(),
                    cas: None,
                },
            ],
            answer.len(),
        );
        assert_eq!(parse_retrieval(answer).unwrap(), want);
        for cut in 0..answer.len() {
            assert_eq!(
                parse_retrieval(&answer[..cut]).unwrap(),
                Retrieved::Partial,
                "{cut}"
            );
        }
        for bad in [
            &b"ERROR\r\n"[..],
            b"VALUE k 0 x\r\n",
            b"VALUE k 0 2\r\nabcd\r\n",
            b"VALUE\r\n",
        ] {
            assert!(parse_retrieval(bad).is_err(), "{bad:?}");
        }
    }
}
