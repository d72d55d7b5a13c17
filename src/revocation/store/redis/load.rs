//! Loading every key: `SCAN` on each master plus pipelined `GET`s. Runs at
//! start and when the change log no longer reaches back to a replica's
//! position; never periodically.

use super::snapshot::Pairs;
use super::{backend, log, RedisStore, LOAD_TIMEOUT, SCAN_BATCH};
use crate::revocation::model::Entry;
use crate::revocation::store::{keys, BoxFuture, StoreError};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, TlsCertificates};

impl RedisStore {
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
    pub(super) async fn load_all(
        &self,
        apply: &(dyn Fn(&[Entry]) + Sync),
    ) -> Result<usize, StoreError> {
        let mut to = Apply {
            prefix: &self.target.key_prefix,
            apply,
            total: 0,
            entries: Vec::with_capacity(SCAN_BATCH),
        };
        self.scan_all(&mut to).await?;
        Ok(to.total)
    }

    /// Every entry key under the prefix with its value, batch by batch.
    pub(super) async fn scan_all(&self, each: &mut dyn Pairs) -> Result<(), StoreError> {
        let prefix = &self.target.key_prefix;
        let pattern = format!("{}*", glob_escape(prefix));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(LOAD_TIMEOUT))
            .set_response_timeout(Some(LOAD_TIMEOUT));
        let mut pairs = Vec::with_capacity(SCAN_BATCH);
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
                    .filter(|k| !log::is_log_key(prefix, k))
                    .collect();
                if !names.is_empty() {
                    let mut pipe = redis::pipe();
                    for k in &names {
                        pipe.get(k);
                    }
                    let values: Vec<Option<String>> =
                        pipe.query_async(&mut conn).await.map_err(backend)?;
                    pairs.clear();
                    pairs.extend(
                        names
                            .into_iter()
                            .zip(values)
                            .filter_map(|(k, v)| Some((k, v?))),
                    );
                    each.take(&pairs).await?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Applies scanned pairs to the local set, counting entries.
struct Apply<'a> {
    prefix: &'a str,
    apply: &'a (dyn Fn(&[Entry]) + Sync),
    total: usize,
    entries: Vec<Entry>,
}

impl Pairs for Apply<'_> {
    fn take<'a>(
        &'a mut self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.entries.clear();
        let prefix = self.prefix;
        self.entries.extend(
            pairs
                .iter()
                .filter_map(|(k, v)| keys::entry_from(prefix, k, v)),
        );
        self.total += self.entries.len();
        (self.apply)(&self.entries);
        Box::pin(async { Ok(()) })
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
