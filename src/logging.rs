//! Log output: `log.format` and `log.level` on a subscriber whose lines are
//! written to stdout by a background thread, so a request never waits on
//! stdout and never makes a system call to log.
//!
//! Formatting happens on the thread that logs; the finished line is appended
//! to one shared buffer (a short uncontended lock, no wake-up). The writer
//! thread swaps the buffer out every [`WRITE_INTERVAL`], or as soon as it
//! holds [`WAKE_BYTES`], and hands it to stdout in one write. A stalled reader
//! of stdout (a full pipe) costs the proxy nothing: past [`MAX_BYTES`]
//! waiting, new lines are dropped and counted ([`dropped_lines`]).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::config::{LogFormat, Settings};

/// Longest time a line waits in the buffer.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(20);
/// A buffer this full wakes the writer at once.
const WAKE_BYTES: usize = 64 * 1024;
/// Bytes that may wait for the writer before new lines are dropped.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// Lines waiting for the writer thread.
struct Sink {
    buf: Mutex<Queued>,
    wake: Condvar,
    /// Held while a batch is taken and written, so batches keep their order.
    out: Mutex<()>,
    dropped: AtomicU64,
}

/// The queued bytes, and whether the writer sleeps until there are any.
struct Queued {
    bytes: Vec<u8>,
    /// The writer found nothing queued and waits, without a timeout, for
    /// the first line: an idle proxy's writer does not wake on its own.
    writer_idle: bool,
}

impl Sink {
    fn new() -> Self {
        Sink {
            buf: Mutex::new(Queued {
                bytes: Vec::with_capacity(WAKE_BYTES),
                writer_idle: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues one whole line, or counts it as dropped.
    fn push(&self, line: &[u8]) {
        let Ok(mut buf) = self.buf.lock() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let before = buf.bytes.len();
        if before + line.len() > MAX_BYTES {
            drop(buf);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buf.bytes.extend_from_slice(line);
        if buf.writer_idle || (before < WAKE_BYTES && buf.bytes.len() >= WAKE_BYTES) {
            buf.writer_idle = false;
            self.wake.notify_one();
        }
    }

    /// Takes what is queued and writes it to `out`; `spare` is the buffer
    /// swapped in. With a `wait`, first sleeps until a line is queued (as
    /// long as it takes), then up to `wait` for more to join it.
    fn write_batch(&self, out: &mut impl Write, spare: &mut Vec<u8>, wait: Duration) {
        if !wait.is_zero() {
            // Waiting holds no lock but the queue's own (which the wait
            // releases), so `flush` at exit never waits for an idle writer.
            let Ok(mut buf) = self.buf.lock() else {
                return;
            };
            if buf.bytes.is_empty() {
                buf.writer_idle = true;
                buf = match self.wake.wait_while(buf, |b| b.writer_idle) {
                    Ok(buf) => buf,
                    Err(_) => return,
                };
            }
            if buf.bytes.len() < WAKE_BYTES {
                drop(self.wake.wait_timeout(buf, wait));
            }
        }
        let Ok(_order) = self.out.lock() else {
            return;
        };
        {
            let Ok(mut buf) = self.buf.lock() else {
                return;
            };
            std::mem::swap(&mut buf.bytes, spare);
        }
        if !spare.is_empty() {
            // A failed write (stdout closed) loses this batch; logging goes on.
            let _ = out.write_all(spare).and_then(|()| out.flush());
        }
        spare.clear();
        if spare.capacity() > 4 * WAKE_BYTES {
            spare.shrink_to(WAKE_BYTES);
        }
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Lines dropped because stdout could not keep up.
pub fn dropped_lines() -> u64 {
    SINK.get().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// Writes out every line logged so far; call before exiting.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.write_batch(&mut std::io::stdout(), &mut Vec::new(), Duration::ZERO);
    }
}

/// One formatted event, made by the fmt layer for each event and queued when
/// it is dropped (written straight to stdout if there is no writer thread).
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.is_empty() && buf.ends_with(b"\n") {
            // The fmt layer hands over each whole line in one write: queue
            // it from its buffer, without a copy of our own.
            queue(buf);
        } else {
            self.0.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            queue(&self.0);
        }
    }
}

/// Queues finished lines for the writer thread (or writes them if there is none).
fn queue(lines: &[u8]) {
    match SINK.get() {
        Some(sink) => sink.push(lines),
        None => {
            let _ = std::io::stdout().write_all(lines);
        }
    }
}

/// Starts the writer thread once.
fn start_sink() {
    if SINK.get().is_some() || SINK.set(Sink::new()).is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(|| {
            let Some(sink) = SINK.get() else {
                return;
            };
            let mut spare = Vec::with_capacity(WAKE_BYTES);
            let mut out = std::io::stdout();
            loop {
                sink.write_batch(&mut out, &mut spare, WRITE_INTERVAL);
            }
        });
}

/// Installs the log subscriber for `settings.log`.
pub fn init(settings: &Settings) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::new(&settings.log.level);
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    start_sink();
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(|| Line(Vec::new()));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match settings.log.format {
        LogFormat::Json => registry.with(fmt.event_format(JsonLines)).try_init(),
        LogFormat::Text => registry
            .with(fmt.event_format(TextLines {
                full: tracing_subscriber::fmt::format().with_target(false),
            }))
            .try_init(),
    };
    if installed.is_ok() {
        let _ = LOG_FILTER.set(handle);
    }
}

/// `log.format: text`: tracing's own line format. The access line — one per
/// request — is written here, to the same text, with a timestamp whose
/// date and time of day are formatted once a second and fields written
/// without going through `fmt::Debug` where the text needs no escaping;
/// every other event goes to tracing's formatter.
struct TextLines {
    full: tracing_subscriber::fmt::format::Format<
        tracing_subscriber::fmt::format::Full,
        tracing_subscriber::fmt::time::SystemTime,
    >,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for TextLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut out: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if meta.target() != "access" || out.has_ansi_escapes() || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, out, event);
        }
        write_timestamp(&mut out, std::time::SystemTime::now())?;
        out.write_str(match *meta.level() {
            tracing::Level::TRACE => " TRACE ",
            tracing::Level::DEBUG => " DEBUG ",
            tracing::Level::INFO => "  INFO ",
            tracing::Level::WARN => "  WARN ",
            tracing::Level::ERROR => " ERROR ",
        })?;
        let mut fields = TextFields {
            out: &mut out,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        out.write_char('\n')
    }
}

/// `2026-12-07T16:03:12.123456Z`, as tracing's `SystemTime` timer writes it.
fn write_timestamp(out: &mut impl std::fmt::Write, now: std::time::SystemTime) -> std::fmt::Result {
    use std::cell::RefCell;
    thread_local! {
        /// The last second formatted on this thread, and its text.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        return tracing_subscriber::fmt::time::FormatTime::format_time(
            &tracing_subscriber::fmt::time::SystemTime,
            &mut tracing_subscriber::fmt::format::Writer::new(out),
        );
    };
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            format_second(&mut cached.1, secs)?;
            cached.0 = secs;
        }
        out.write_str(&cached.1)
    })?;
    let mut micros = [b'0'; 6];
    let mut n = since.subsec_micros();
    for d in micros.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.write_char('.')?;
    out.write_str(std::str::from_utf8(&micros).map_err(|_| std::fmt::Error)?)?;
    out.write_char('Z')
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second (proleptic Gregorian, UTC).
fn format_second(out: &mut String, secs: u64) -> std::fmt::Result {
    use std::fmt::Write as _;
    let [year, month, day, hour, minute, second] = civil_utc(secs as i64);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    )
}

/// Year, month, day, hour, minute and second (UTC, proleptic Gregorian) of
/// Unix seconds; also the admin status page's dates.
pub fn civil_utc(secs: i64) -> [i64; 6] {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year, month, day, rest / 3600, rest % 3600 / 60, rest % 60]
}

/// An event's fields as tracing's default visitor writes them: the message
/// as is, then ` name=value`, strings quoted and escaped as `{:?}` does.
struct TextFields<'w, 'a> {
    out: &'w mut tracing_subscriber::fmt::format::Writer<'a>,
    first: bool,
    result: std::fmt::Result,
}

impl TextFields<'_, '_> {
    fn name(&mut self, field: &tracing::field::Field) -> std::fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(' ')?;
        }
        if field.name() == "message" {
            return Ok(());
        }
        let name = field.name();
        self.out
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.out.write_char('=')
    }

    fn put(&mut self, f: impl FnOnce(&mut Self) -> std::fmt::Result) {
        if self.result.is_ok() {
            self.result = f(self);
        }
    }
}

impl tracing::field::Visit for TextFields<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(|v| {
            v.name(field)?;
            if field.name() == "message" {
                v.out.write_str(value)
            } else if value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
            {
                v.out.write_char('"')?;
                v.out.write_str(value)?;
                v.out.write_char('"')
            } else {
                write!(v.out, "{value:?}")
            }
        });
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(|v| {
            v.name(field)?;
            v.out.write_str(itoa::Buffer::new().format(value))
        });
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(|v| {
            v.name(field)?;
            v.out.write_str(itoa::Buffer::new().format(value))
        });
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(|v| {
            v.name(field)?;
            v.out.write_str(if value { "true" } else { "false" })
        });
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(|v| {
            v.name(field)?;
            write!(v.out, "{value:?}")
        });
    }
}

/// A field value written as JSON: `problems = %Json(&list)` is an array
/// in a JSON line (and JSON text in a text line), never a string of JSON.
pub struct Json<'a, T: serde::Serialize>(pub &'a T);

impl<T: serde::Serialize> std::fmt::Display for Json<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// `log.format: json`: one object per line, `timestamp`, `level` and
/// `message` first, then the event's fields as JSON values: numbers and
/// booleans as such, a field whose text is a JSON array or object (see
/// [`Json`]) as that array or object, everything else as a string.
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut out: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
        let mut time = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        out.write_str("{\"timestamp\":")?;
        out.write_str(&json_string(&time))?;
        out.write_str(",\"level\":\"")?;
        out.write_str(event.metadata().level().as_str())?;
        out.write_str("\",\"target\":")?;
        out.write_str(&json_string(event.metadata().target()))?;
        out.write_str(",\"message\":")?;
        out.write_str(&json_string(&fields.message))?;
        out.write_str(&fields.rest)?;
        out.write_str("}\n")
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// An event's fields as `,"name":value` pairs, its message apart.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: String,
}

impl JsonFields {
    fn raw(&mut self, field: &tracing::field::Field, value: &str) {
        self.rest.push(',');
        self.rest.push_str(&json_string(field.name()));
        self.rest.push(':');
        self.rest.push_str(value);
    }
}

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.raw(field, &json_string(value));
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.raw(field, &value.to_string());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.raw(field, &value.to_string());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        match serde_json::Number::from_f64(value) {
            Some(n) => self.raw(field, &n.to_string()),
            None => self.raw(field, &json_string(&value.to_string())),
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else if let Some(value) = (text.starts_with('[') || text.starts_with('{'))
            .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
            .flatten()
        {
            // Written again by serde: one line, whatever the text's spacing.
            self.raw(field, &value.to_string());
        } else {
            self.raw(field, &json_string(&text));
        }
    }
}

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The live log filter, swapped by a configuration reload.
static LOG_FILTER: OnceLock<FilterHandle> = OnceLock::new();

/// Changes the log level (`log.level`) of a running process.
pub fn set_level(level: &str) -> Result<(), String> {
    let Some(handle) = LOG_FILTER.get() else {
        return Ok(());
    };
    handle
        .reload(tracing_subscriber::EnvFilter::new(level))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_formatted_as_utc_calendar_time() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_660_592, "2026-12-07T16:23:12"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ] {
            let mut out = String::new();
            format_second(&mut out, secs).unwrap();
            assert_eq!(out, text);
        }
    }

    /// Lines written through a subscriber using `ours` (else tracing's
    /// default text format), with their timestamps.
    fn lines(ours: bool, events: fn()) -> Vec<String> {
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Capture::default();
        let writer = {
            let out = out.clone();
            move || out.clone()
        };
        let layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .with_writer(writer);
        let dispatch = if ours {
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer.event_format(
                TextLines {
                    full: tracing_subscriber::fmt::format().with_target(false),
                },
            )))
        } else {
            tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
        };
        tracing::dispatcher::with_default(&dispatch, events);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn access_lines_are_tracings_own_text() {
        fn events() {
            let client = std::net::IpAddr::from([127, 0, 0, 1]);
            tracing::info!(target: "access", method = %"GET", path = %"/a%20b", status = 200u64,
                outcome = "ok", reason = Option::<&str>::None, subject = "alice",
                client = %client, request_id = Some("r-1"), duration_us = 17u64, "Request");
            tracing::info!(target: "access", method = %"POST", path = %"/x", status = 401u64,
                outcome = "revoked", reason = Some("token"), subject = "al\"ice\\ \t é \u{7f}",
                client = %client, request_id = Option::<&str>::None, duration_us = 0u64,
                signed = -3i64, flag = true, ratio = 0.5f64, r#type = "t", "Request");
            tracing::warn!(target: "access", list = ?["a", "b"], "Slow");
            tracing::info!(error = "not an access line", "Other");
            let span = tracing::info_span!("conn", id = 7u64);
            let _in = span.enter();
            tracing::info!(target: "access", status = 200u64, "Request");
        }
        let ours = lines(true, events);
        let theirs = lines(false, events);
        assert_eq!(ours.len(), 5, "{ours:?}");
        for (a, b) in ours.iter().zip(&theirs) {
            let (ta, ra) = a.split_once(' ').unwrap();
            let (tb, rb) = b.split_once(' ').unwrap();
            assert_eq!(ra, rb);
            assert_eq!(ta.len(), tb.len(), "{ta} {tb}");
            assert!(ta.ends_with('Z') && ta.as_bytes()[19] == b'.', "{ta}");
            // The same second, or the next one.
            assert!(tb[..19] >= ta[..19], "{ta} {tb}");
        }
    }

    /// Collects what is written, and how many writes it took.
    #[derive(Default)]
    struct Recorder(Vec<u8>, usize);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(buf);
            self.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_lines_come_out_in_order_in_one_write() {
        let sink = Sink::new();
        for i in 0..1000 {
            sink.push(format!("line {i}\n").as_bytes());
        }
        let mut out = Recorder::default();
        sink.write_batch(&mut out, &mut Vec::new(), Duration::ZERO);
        let text = String::from_utf8_lossy(&out.0).into_owned();
        let want: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want);
        assert_eq!(out.1, 1, "one write for the whole backlog");
        sink.write_batch(&mut out, &mut Vec::new(), Duration::ZERO);
        assert_eq!(out.1, 1, "nothing left, nothing written");
    }

    #[test]
    fn a_full_buffer_drops_and_counts_new_lines() {
        let sink = Sink::new();
        let line = vec![b'x'; 1023];
        let fits = MAX_BYTES / line.len();
        for _ in 0..fits + 10 {
            sink.push(&line);
        }
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 10);
        let mut out = Recorder::default();
        sink.write_batch(&mut out, &mut Vec::new(), Duration::ZERO);
        assert_eq!(out.0.len(), fits * line.len());
        sink.push(b"after\n");
        sink.write_batch(&mut out, &mut Vec::new(), Duration::ZERO);
        assert!(out.0.ends_with(b"after\n"), "room again once written");
    }

    #[test]
    fn an_idle_writer_sleeps_until_the_first_line() {
        let sink = std::sync::Arc::new(Sink::new());
        let writer = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut out = Recorder::default();
                sink.write_batch(&mut out, &mut Vec::new(), Duration::from_millis(1));
                out.0
            })
        };
        // Far longer than the interval: an idle writer writes nothing (and
        // does not return) until a line comes.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the idle writer woke on its own");
        // What is written at exit does not wait for the sleeping writer.
        let mut direct = Recorder::default();
        sink.write_batch(&mut direct, &mut Vec::new(), Duration::ZERO);
        assert!(direct.0.is_empty());
        sink.push(b"first\n");
        assert_eq!(writer.join().unwrap_or_default(), b"first\n");
    }

    #[test]
    fn a_filling_buffer_wakes_the_writer_before_the_interval() {
        let sink = std::sync::Arc::new(Sink::new());
        let writer = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut out = Recorder::default();
                let started = std::time::Instant::now();
                // Bounded: a spurious wake-up may end one wait early.
                for _ in 0..100 {
                    if out.0.len() >= WAKE_BYTES {
                        break;
                    }
                    sink.write_batch(&mut out, &mut Vec::new(), Duration::from_secs(30));
                }
                (out.0.len(), started.elapsed())
            })
        };
        let line = vec![b'y'; 1024];
        for _ in 0..(WAKE_BYTES / line.len()) {
            sink.push(&line);
        }
        let (written, waited) = writer.join().unwrap_or_default();
        assert_eq!(written, WAKE_BYTES);
        assert!(
            waited < Duration::from_secs(20),
            "woken by the fill, not by the 30 s interval"
        );
    }
}
