//! `/` on the admin listener: a status page for people. One self-contained
//! HTML document — no script, no external asset (the Content-Security-Policy
//! forbids both), every value HTML-escaped — that reloads itself every
//! [`REFRESH_SECS`]. It shows what an operator looks at first: version,
//! upstream, store and its health, live and pending revocations, request
//! outcomes, and the last revocations (subjects, never tokens).

use super::Admin;
use crate::metrics::{AuditEvent, Outcome};
use std::fmt::Write;

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 5;

/// What the page says about the process, read at each request.
pub struct Facts {
    pub version: &'static str,
    pub upstream: String,
    pub store: String,
    pub store_available: bool,
    pub ready: bool,
    pub live: usize,
    pub pending: usize,
    pub uptime_secs: u64,
    pub outcomes: Vec<(&'static str, u64)>,
    pub recent: Vec<AuditEvent>,
    pub now: i64,
}

impl Admin {
    /// The facts the page shows, now.
    pub fn facts(&self) -> Facts {
        let r = &self.revocations;
        Facts {
            version: env!("CARGO_PKG_VERSION"),
            upstream: (self.about.upstream)(),
            store: self.about.store.clone(),
            store_available: r.available(),
            ready: self.ready.load(std::sync::atomic::Ordering::Relaxed),
            live: r.len(),
            pending: r.pending(),
            uptime_secs: self.about.started.elapsed().as_secs(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.label(), self.metrics.count(*o)))
                .collect(),
            recent: self.metrics.recent(),
            now: r.clock().now(),
        }
    }
}

/// `<`, `>`, `&`, `"` and `'` as entities: nothing a subject holds can
/// become markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-07 11:18:43 UTC` from Unix seconds.
fn utc(secs: i64) -> String {
    let [year, month, day, hour, minute, second] = crate::logging::civil_utc(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}\
th{font-weight:600}.ok{color:#176117}.bad{color:#a11}.num{text-align:right;font-variant-numeric:tabular-nums}\
footer{margin-top:2em;color:#666;font-size:.85em}";

/// The page.
pub fn render(f: &Facts) -> String {
    let mut h = String::with_capacity(4096);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>revoke-proxy status</title><style>{STYLE}</style></head><body>\
         <h1>revoke-proxy {}</h1><table>",
        escape(f.version)
    );
    let health = |good: bool, yes: &str, no: &str| {
        if good {
            format!("<span class=\"ok\">{yes}</span>")
        } else {
            format!("<span class=\"bad\">{no}</span>")
        }
    };
    let rows = [
        ("Upstream", escape(&f.upstream)),
        (
            "Ready",
            health(f.ready, "ready", "not ready (shutting down)"),
        ),
        (
            "Store",
            format!(
                "{} — {}",
                escape(&f.store),
                health(f.store_available, "available", "unavailable")
            ),
        ),
        ("Live revocations", f.live.to_string()),
        ("Pending writes", f.pending.to_string()),
        ("Up for", format!("{} s", f.uptime_secs)),
    ];
    for (name, value) in rows {
        let _ = write!(h, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    h.push_str("</table><h2>Requests by outcome</h2><table>");
    for (outcome, n) in &f.outcomes {
        let _ = write!(h, "<tr><th>{outcome}</th><td class=\"num\">{n}</td></tr>");
    }
    h.push_str("</table><h2>Last revocations</h2>");
    if f.recent.is_empty() {
        h.push_str("<p>None since start.</p>");
    } else {
        h.push_str(
            "<table><tr><th>When</th><th>From</th><th>Kind</th><th>Subject</th><th>Store</th></tr>",
        );
        for e in &f.recent {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                utc(e.at),
                escape(e.source),
                escape(e.kind),
                e.subject.as_deref().map_or_else(|| "—".to_string(), escape),
                escape(e.status)
            );
        }
        h.push_str("</table>");
    }
    let _ = writeln!(
        h,
        "<footer>As of {}; this page reloads every {REFRESH_SECS} s. \
         Metrics: <a href=\"/metrics\">/metrics</a>.</footer></body></html>",
        utc(f.now)
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_642_323), "2026-12-07 11:18:43 UTC");
    }

    #[test]
    fn nothing_from_a_subject_becomes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\u{fffd}"
        );
    }
}
