//! What a replica keeps so that a Redis that comes back empty (no
//! persistence, a replacement, a failover to a replica that lagged) can be
//! given its revocations back through the write script.
//!
//! - [`Recent`]: the entries this replica applied or wrote in the last
//!   [`RECENT_FOR`] (at most [`RECENT_MAX`]), in memory, so that what only
//!   some replicas had seen when Redis lost it — a write acknowledged a
//!   millisecond before — is not lost. Every replica that notices the loss
//!   writes these back.
//! - [`LocalCopy`]: with `store.path`, the whole set as text in
//!   `<path>.copy` on local disk (the in-memory set holds digests, from
//!   which no key can be written back). A header line
//!   `revoke-proxy-copy v1 <epoch>` names the log the copy belongs to; one
//!   checksummed line per entry follows (the file store's line format). The
//!   copy is rewritten at every full load, appended to for every entry
//!   read from the log or written here, and rewritten without its expired
//!   lines when it has doubled. One replica at a time (a lease) writes its
//!   whole copy back when Redis's log is not the copy's.

use crate::revocation::model::Entry;
use crate::revocation::store::file::{decode_line, encode_line, replace_with};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How far back [`Recent`] reaches (1 min).
pub const RECENT_FOR: Duration = Duration::from_secs(60);
/// Most entries [`Recent`] holds.
pub const RECENT_MAX: usize = 10_000;
/// Entries per batch read back from the copy.
pub const READ_BATCH: usize = 1_000;
/// Below this many lines the copy is never rewritten for size.
const REWRITE_MIN_LINES: usize = 10_000;
const HEADER: &str = "revoke-proxy-copy v1 ";

/// The entries applied or written in the last [`RECENT_FOR`].
#[derive(Default)]
pub struct Recent {
    entries: Mutex<VecDeque<(u64, Entry)>>,
}

impl Recent {
    /// Remembers `batch`, seen at `now_ms`.
    pub fn push(&self, now_ms: u64, batch: &[Entry]) {
        if batch.is_empty() {
            return;
        }
        let Ok(mut q) = self.entries.lock() else {
            return;
        };
        let from = now_ms.saturating_sub(RECENT_FOR.as_millis() as u64);
        while q
            .front()
            .is_some_and(|(t, _)| *t < from || q.len() >= RECENT_MAX)
        {
            q.pop_front();
        }
        let skip = batch.len().saturating_sub(RECENT_MAX);
        for e in batch.iter().skip(skip) {
            if q.len() >= RECENT_MAX {
                q.pop_front();
            }
            q.push_back((now_ms, e.clone()));
        }
    }

    /// What was seen at or after `now_ms - RECENT_FOR`.
    pub fn since(&self, now_ms: u64) -> Vec<Entry> {
        let from = now_ms.saturating_sub(RECENT_FOR.as_millis() as u64);
        match self.entries.lock() {
            Ok(q) => q
                .iter()
                .filter(|(t, _)| *t >= from)
                .map(|(_, e)| e.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

enum Cmd {
    /// Start a new copy for the log of this epoch (a full load begins).
    Begin(String),
    Add(Vec<Entry>),
    /// The full load is complete: the new copy replaces the old.
    Commit,
    /// The full load failed: keep the old copy.
    Abort,
    /// Send the live entries, batch by batch.
    Read(tokio::sync::mpsc::Sender<Vec<Entry>>),
}

/// The on-disk copy; a thread owns the file.
pub struct LocalCopy {
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    epoch: Arc<Mutex<Option<String>>>,
    path: PathBuf,
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

impl LocalCopy {
    /// Opens (or creates) the copy at `path`.
    pub fn open(path: &Path) -> io::Result<LocalCopy> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        file.try_lock().map_err(|e| {
            io::Error::other(format!(
                "{} is in use by another process ({e})",
                path.display()
            ))
        })?;
        let (epoch, lines) = read_header(path)?;
        if epoch.is_none() && lines > 0 {
            tracing::warn!(path = %path.display(), "Ignoring a local copy without its header");
            file.set_len(0)?;
        }
        let epoch = Arc::new(Mutex::new(epoch));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            building: None,
            lines,
            lines_at_rewrite: lines,
            epoch: epoch.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("revocation-copy".into())
            .spawn(move || writer.run(rx))?;
        Ok(LocalCopy {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            epoch,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The epoch of the log the copy was last loaded from (`None`: empty).
    pub fn epoch(&self) -> Option<String> {
        self.epoch.lock().ok().and_then(|e| e.clone())
    }

    fn send(&self, cmd: Cmd) {
        if let Some(tx) = self.tx.lock().ok().and_then(|t| t.clone()) {
            let _ = tx.send(cmd);
        }
    }

    pub fn begin(&self, epoch: &str) {
        self.send(Cmd::Begin(epoch.to_string()));
    }

    pub fn add(&self, batch: &[Entry]) {
        if !batch.is_empty() {
            self.send(Cmd::Add(batch.to_vec()));
        }
    }

    pub fn commit(&self) {
        self.send(Cmd::Commit);
    }

    pub fn abort(&self) {
        self.send(Cmd::Abort);
    }

    /// The copy's live entries, in batches of at most [`READ_BATCH`].
    pub fn read(&self) -> tokio::sync::mpsc::Receiver<Vec<Entry>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        self.send(Cmd::Read(tx));
        rx
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    /// The copy a full load is writing, and its epoch.
    building: Option<(io::BufWriter<File>, String, usize)>,
    lines: usize,
    lines_at_rewrite: usize,
    epoch: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(cmd) = rx.recv() {
            if let Err(e) = self.handle(cmd) {
                tracing::warn!(error = %e, path = %self.path.display(),
                    "Could not write the local copy of the revocation set");
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) -> io::Result<()> {
        match cmd {
            Cmd::Begin(epoch) => {
                let mut f = io::BufWriter::new(File::create(self.new_path())?);
                f.write_all(format!("{HEADER}{epoch}\n").as_bytes())?;
                self.building = Some((f, epoch, 0));
            }
            Cmd::Add(batch) => {
                let now = crate::revocation::clock::unix_now();
                let mut text = String::new();
                for e in batch.iter().filter(|e| e.until() > now) {
                    text.push_str(&encode_line(e));
                }
                let n = text.matches('\n').count();
                match &mut self.building {
                    Some((f, _, lines)) => {
                        f.write_all(text.as_bytes())?;
                        *lines += n;
                    }
                    None => {
                        if self.epoch.lock().map(|e| e.is_none()).unwrap_or(true) {
                            // No full load yet: nothing to add to.
                            return Ok(());
                        }
                        self.file.write_all(text.as_bytes())?;
                        self.file.sync_data()?;
                        self.lines += n;
                        if self.lines > 2 * self.lines_at_rewrite + REWRITE_MIN_LINES {
                            self.rewrite()?;
                        }
                    }
                }
            }
            Cmd::Commit => {
                if let Some((f, epoch, lines)) = self.building.take() {
                    self.replaced(f, lines)?;
                    if let Ok(mut e) = self.epoch.lock() {
                        *e = Some(epoch);
                    }
                }
            }
            Cmd::Abort => {
                if self.building.take().is_some() {
                    let _ = std::fs::remove_file(self.new_path());
                }
            }
            Cmd::Read(tx) => {
                let now = crate::revocation::clock::unix_now();
                let mut batch = Vec::with_capacity(READ_BATCH);
                for line in BufReader::new(File::open(&self.path)?).lines().skip(1) {
                    let Some(e) = decode_line(&line?) else {
                        continue;
                    };
                    if e.until() <= now {
                        continue;
                    }
                    batch.push(e);
                    if batch.len() >= READ_BATCH
                        && tx.blocking_send(std::mem::take(&mut batch)).is_err()
                    {
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.blocking_send(batch);
                }
            }
        }
        Ok(())
    }

    fn new_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".new");
        PathBuf::from(p)
    }

    /// Makes `<path>.new`, written through `out`, the copy.
    fn replaced(&mut self, out: io::BufWriter<File>, lines: usize) -> io::Result<()> {
        self.file = replace_with(out, &self.new_path(), &self.path)?;
        self.lines = lines;
        self.lines_at_rewrite = lines;
        Ok(())
    }

    /// Rewrites the copy without its expired lines.
    fn rewrite(&mut self) -> io::Result<()> {
        let now = crate::revocation::clock::unix_now();
        let mut out = io::BufWriter::new(File::create(self.new_path())?);
        let mut kept = 0;
        for (i, line) in BufReader::new(File::open(&self.path)?).lines().enumerate() {
            let line = line?;
            let live = i == 0 || decode_line(&line).is_some_and(|e| e.until() > now);
            if live {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                kept += usize::from(i > 0);
            }
        }
        self.replaced(out, kept)
    }
}

/// The copy's epoch (from its header) and its entry line count.
fn read_header(path: &Path) -> io::Result<(Option<String>, usize)> {
    let mut lines = BufReader::new(File::open(path)?).lines();
    let epoch = match lines.next() {
        Some(first) => first?.strip_prefix(HEADER).map(str::to_string),
        None => return Ok((None, 0)),
    };
    let mut n = 0;
    for l in lines {
        if l.is_err() {
            break;
        }
        n += 1;
    }
    Ok((epoch, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::ClaimValue;

    fn token(i: usize, until: i64) -> Entry {
        Entry::Token {
            subject: ClaimValue::Str(format!("user-{i}").into()),
            token: ClaimValue::Str(format!("jti-{i}").into()),
            until,
        }
    }

    async fn read_all(c: &LocalCopy) -> Vec<Entry> {
        let mut rx = c.read();
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            assert!(b.len() <= READ_BATCH);
            out.extend(b);
        }
        out
    }

    #[tokio::test]
    async fn a_copy_survives_reopening_and_keeps_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revocations.copy");
        let later = crate::revocation::clock::unix_now() + 3600;
        {
            let c = LocalCopy::open(&path).unwrap();
            assert_eq!(c.epoch(), None);
            // Nothing is kept before a first full load names the log.
            c.add(&[token(0, later)]);
            c.begin("e1");
            c.add(&(1..2500).map(|i| token(i, later)).collect::<Vec<_>>());
            c.add(&[token(9999, 1)]);
            c.commit();
            c.add(&[token(2500, later)]);
            let got = read_all(&c).await;
            assert_eq!(got.len(), 2500);
            assert_eq!(c.epoch().as_deref(), Some("e1"));
        }
        let c = LocalCopy::open(&path).unwrap();
        assert_eq!(c.epoch().as_deref(), Some("e1"));
        assert_eq!(read_all(&c).await.len(), 2500);
        // A failed load keeps the old copy; a new one replaces it.
        c.begin("e2");
        c.add(&[token(1, later)]);
        c.abort();
        assert_eq!(read_all(&c).await.len(), 2500);
        assert_eq!(c.epoch().as_deref(), Some("e1"));
        c.begin("e2");
        c.add(&[token(1, later)]);
        c.commit();
        assert_eq!(read_all(&c).await, vec![token(1, later)]);
        assert_eq!(c.epoch().as_deref(), Some("e2"));
    }

    #[tokio::test]
    async fn a_copy_that_doubles_drops_its_expired_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let c = LocalCopy::open(&path).unwrap();
        let now = crate::revocation::clock::unix_now();
        c.begin("e");
        c.commit();
        // Entries that are live when written and expired by the rewrite,
        // which the next line (one past the threshold) starts.
        c.add(
            &(0..REWRITE_MIN_LINES)
                .map(|i| token(i, now + 2))
                .collect::<Vec<_>>(),
        );
        tokio::time::sleep(Duration::from_millis(2100)).await;
        c.add(&[token(1, now + 3600)]);
        c.add(&[token(2, now + 3600)]);
        assert_eq!(read_all(&c).await.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn recent_keeps_a_bounded_minute() {
        let r = Recent::default();
        let now = 1_000_000_000u64;
        r.push(now - 61_000, &[token(0, 1)]);
        r.push(now - 1_000, &[token(1, 1)]);
        assert_eq!(r.since(now), vec![token(1, 1)]);
        let many: Vec<_> = (0..RECENT_MAX + 5).map(|i| token(i, 1)).collect();
        r.push(now, &many);
        let got = r.since(now);
        assert_eq!(got.len(), RECENT_MAX);
        assert_eq!(got.last(), many.last());
    }
}
