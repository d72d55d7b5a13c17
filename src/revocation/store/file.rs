//! `file` store: an append-only log on local disk, fsynced before a write is
//! acknowledged, so an acknowledged revocation survives `kill -9`.
//!
//! One line per entry (`T until sub tok <checksum>`, see [`Entry::to_line`]).
//! A single writer thread owns the file: concurrent writes are batched into
//! one fsync (group commit). A torn last line (a crash mid-write, never
//! acknowledged) is cut off at open. The log is rewritten with only live,
//! merged entries when it has grown to twice its live size, and when idle.

use super::{BoxFuture, Store, StoreError};
use crate::revocation::clock::Clock;
use crate::revocation::model::Entry;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use xxhash_rust::xxh3::xxh3_64;

/// Below this many lines the log is never rewritten for size.
const COMPACT_MIN_LINES: usize = 10_000;
/// An idle writer looks at the log this often (10 min).
const IDLE_COMPACT_EVERY: Duration = Duration::from_secs(600);
/// Most writes folded into one fsync.
const MAX_BATCH: usize = 1024;

enum Command {
    Write(Entry, oneshot::Sender<io::Result<()>>),
    Load(oneshot::Sender<io::Result<Vec<Entry>>>),
    Compact(oneshot::Sender<io::Result<usize>>),
}

pub struct FileStore {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for FileStore {
    /// Closes the log before returning, so the file can be reopened at once.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FileStore {
    /// Opens (or creates) the log at `path` and starts its writer thread.
    pub fn open(path: &Path, clock: Clock) -> Result<FileStore, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        file.try_lock().map_err(|e| {
            StoreError::Io(io::Error::other(format!(
                "{} is in use by another process ({e})",
                path.display()
            )))
        })?;
        cut_torn_tail(&file)?;
        sync_dir(path)?;
        let lines = count_lines(path)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            clock,
            lines,
            live_after_compact: 0,
            last_compact: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("revocation-file".into())
            .spawn(move || writer.run(rx))?;
        Ok(FileStore {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(cmd)
            .map_err(|_| StoreError::Closed)
    }

    /// Rewrites the log now with only live entries; returns how many remain.
    pub async fn compact(&self) -> Result<usize, StoreError> {
        let (ack, rx) = oneshot::channel();
        self.send(Command::Compact(ack))?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }
}

impl Store for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load(&self) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let (ack, rx) = oneshot::channel();
            self.send(Command::Load(ack))?;
            Ok(rx.await.map_err(|_| StoreError::Closed)??)
        })
    }

    fn write<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (ack, rx) = oneshot::channel();
            self.send(Command::Write(entry.clone(), ack))?;
            Ok(rx.await.map_err(|_| StoreError::Closed)??)
        })
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    clock: Clock,
    lines: usize,
    live_after_compact: usize,
    last_compact: Instant,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            let first = match rx.recv_timeout(IDLE_COMPACT_EVERY) {
                Ok(c) => c,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.lines > self.live_after_compact
                        && self.last_compact.elapsed() >= IDLE_COMPACT_EVERY
                    {
                        if let Err(e) = self.compact() {
                            tracing::warn!(error = %e, "Revocation log compaction failed");
                        }
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.handle(batch);
        }
    }

    fn handle(&mut self, batch: Vec<Command>) {
        let mut text = String::new();
        let mut acks = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Write(entry, ack) => {
                    text.push_str(&encode_line(&entry));
                    acks.push(ack);
                }
                Command::Load(ack) => {
                    self.flush(&mut text, &mut acks);
                    let _ = ack.send(
                        read_live(&self.path, self.clock.now()).map(|m| m.into_values().collect()),
                    );
                }
                Command::Compact(ack) => {
                    self.flush(&mut text, &mut acks);
                    let _ = ack.send(self.compact());
                }
            }
        }
        self.flush(&mut text, &mut acks);
        if self.lines >= COMPACT_MIN_LINES && self.lines > 2 * self.live_after_compact.max(1) {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "Revocation log compaction failed");
            }
        }
    }

    /// Appends and fsyncs the batch, then acknowledges every write in it.
    fn flush(&mut self, text: &mut String, acks: &mut Vec<oneshot::Sender<io::Result<()>>>) {
        if acks.is_empty() {
            return;
        }
        let result = self.append(text.as_bytes());
        for ack in acks.drain(..) {
            let _ = ack.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
        if result.is_ok() {
            self.lines += text.matches('\n').count();
        }
        text.clear();
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let before = self.file.metadata()?.len();
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if written.is_err() {
            // Leave no partial line behind for the next append to run into.
            let _ = self.file.set_len(before);
        }
        written
    }

    /// Rewrites the log with one line per live identity, its times merged.
    /// Two passes over the file: the first keeps only a digest and two times
    /// per identity, the second writes each identity's first line with the
    /// merged times. No claim text is held, so a compaction leaves no large
    /// freed heap behind (glibc keeps it in the thread's arena, and RSS would
    /// step up at the first compaction).
    fn compact(&mut self) -> io::Result<usize> {
        let now = self.clock.now();
        let mut merged = merged_times(&self.path, now)?;
        let tmp = self.path.with_extension("compacting");
        let mut live = 0;
        {
            let mut out = io::BufWriter::new(File::create(&tmp)?);
            each_line(&self.path, |mut entry| {
                if let Some((cutoff, until)) = merged.remove(&identity_digest(&entry)) {
                    entry.set_times(cutoff, until);
                    out.write_all(encode_line(&entry).as_bytes())?;
                    live += 1;
                }
                Ok(())
            })?;
            self.file = replace_with(out, &tmp, &self.path)?;
        }
        self.lines = live;
        self.live_after_compact = live;
        self.last_compact = Instant::now();
        Ok(live)
    }
}

/// Makes the rewritten file `tmp` (written through `out`) the log at
/// `path`, durably, and returns it open for appending and locked.
pub(crate) fn replace_with(out: io::BufWriter<File>, tmp: &Path, path: &Path) -> io::Result<File> {
    out.into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?
        .sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_dir(path)?;
    let file = OpenOptions::new().append(true).read(true).open(path)?;
    file.try_lock()
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(file)
}

pub(crate) fn encode_line(entry: &Entry) -> String {
    let body = entry.to_line();
    format!("{body} {:016x}\n", xxh3_64(body.as_bytes()))
}

pub(crate) fn decode_line(line: &str) -> Option<Entry> {
    let (body, sum) = line.rsplit_once(' ')?;
    let sum = u64::from_str_radix(sum, 16).ok()?;
    (xxh3_64(body.as_bytes()) == sum)
        .then(|| Entry::from_line(body))
        .flatten()
}

/// Calls `f` with each well-formed entry of the log, in order, reading
/// line by line (the file is never held whole in memory).
fn each_line(path: &Path, mut f: impl FnMut(Entry) -> io::Result<()>) -> io::Result<()> {
    use std::io::BufRead;
    let mut bad = 0usize;
    let mut reader = io::BufReader::new(File::open(path)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim_end_matches('\n');
        if text.is_empty() {
            continue;
        }
        match decode_line(text) {
            Some(entry) => f(entry)?,
            None => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(lines = bad, path = %path.display(), "Skipped damaged revocation log lines");
    }
    Ok(())
}

/// Every entry of the log still live at `now`, merged by identity.
fn read_live(path: &Path, now: i64) -> io::Result<HashMap<String, Entry>> {
    let mut live: HashMap<String, Entry> = HashMap::new();
    each_line(path, |entry| {
        if entry.until() > now {
            live.entry(entry.identity())
                .and_modify(|e| e.merge(&entry))
                .or_insert(entry);
        }
        Ok(())
    })?;
    Ok(live)
}

/// 128 bits of an entry's identity: compaction tells identities apart by
/// it (a collision, about 2^-128 per pair, would merge two entries' times,
/// which only lengthens a revocation).
fn identity_digest(entry: &Entry) -> u128 {
    xxhash_rust::xxh3::xxh3_128(entry.identity().as_bytes())
}

/// The merged `(cutoff, until)` of every identity still live at `now`.
fn merged_times(path: &Path, now: i64) -> io::Result<HashMap<u128, (i64, i64)>> {
    let mut times: HashMap<u128, (i64, i64)> = HashMap::new();
    each_line(path, |entry| {
        let (cutoff, until) = entry.times();
        let t = times
            .entry(identity_digest(&entry))
            .or_insert((cutoff, until));
        *t = (t.0.max(cutoff), t.1.max(until));
        Ok(())
    })?;
    times.retain(|_, (_, until)| *until > now);
    Ok(times)
}

fn count_lines(path: &Path) -> io::Result<usize> {
    Ok(std::fs::read(path)?.iter().filter(|b| **b == b'\n').count())
}

/// Cuts a last line that has no newline: it was never acknowledged.
fn cut_torn_tail(file: &File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = (pos - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        let chunk = buf
            .get_mut(..n)
            .ok_or_else(|| io::Error::other("bad chunk"))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
            }
            return Ok(());
        }
        pos = start;
    }
    file.set_len(0)
}

pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_lines_are_rejected_by_checksum() {
        let e = Entry::Global {
            cutoff: 1,
            until: 2,
        };
        let line = encode_line(&e);
        assert_eq!(decode_line(line.trim_end()), Some(e));
        assert_eq!(decode_line(&line.trim_end().replace("G 2", "G 3")), None);
    }

    #[tokio::test]
    async fn compaction_merges_each_identity_into_its_first_line() {
        use crate::claims::ClaimValue;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let clock = Clock::system();
        let now = clock.now();
        let sub = |s: &str| ClaimValue::Str(s.into());
        let lines = [
            Entry::Subject {
                subject: sub("alice"),
                cutoff: now - 5,
                until: now + 100,
            },
            Entry::Token {
                subject: sub("bob"),
                token: sub("j1"),
                until: now + 10,
            },
            Entry::Subject {
                subject: sub("alice"),
                cutoff: now - 9,
                until: now + 200,
            },
            Entry::Token {
                subject: sub("bob"),
                token: sub("j1"),
                until: now + 50,
            },
            Entry::Token {
                subject: sub("carol"),
                token: sub("j2"),
                until: now - 1,
            },
            Entry::Session {
                session: sub("s1"),
                until: now + 7,
            },
        ];
        let text: String = lines.iter().map(encode_line).collect();
        std::fs::write(&path, text).unwrap();
        let store = FileStore::open(&path, clock).unwrap();
        assert_eq!(store.compact().await.unwrap(), 3);
        let expected = [
            Entry::Subject {
                subject: sub("alice"),
                cutoff: now - 5,
                until: now + 200,
            },
            Entry::Token {
                subject: sub("bob"),
                token: sub("j1"),
                until: now + 50,
            },
            Entry::Session {
                session: sub("s1"),
                until: now + 7,
            },
        ];
        let want: String = expected.iter().map(encode_line).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        let mut loaded = store.load().await.unwrap();
        loaded.sort_by_key(Entry::identity);
        let mut expected = expected.to_vec();
        expected.sort_by_key(Entry::identity);
        assert_eq!(loaded, expected);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_compaction_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let clock = Clock::system();
        let now = clock.now();
        let live = Entry::Global {
            cutoff: now,
            until: now + 100,
        };
        let dead = Entry::Global {
            cutoff: now,
            until: now - 1,
        };
        std::fs::write(
            &path,
            format!("{}{}T 5 sa", encode_line(&dead), encode_line(&live)),
        )
        .unwrap();
        let store = FileStore::open(&path, clock).unwrap();
        assert_eq!(store.load().await.unwrap(), vec![live.clone()]);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));
        assert_eq!(store.compact().await.unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), encode_line(&live));
        store
            .write(&Entry::Global {
                cutoff: now,
                until: now + 5,
            })
            .await
            .unwrap();
        assert_eq!(store.load().await.unwrap(), vec![live]);
    }
}
