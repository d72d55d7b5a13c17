//! SSF poll delivery (RFC 8936): the proxy POSTs
//! `{"ack":[…],"setErrs":{…},"maxEvents":N,"returnImmediately":false}` to
//! the transmitter, applies each SET it gets back exactly as a pushed one,
//! and acknowledges what it applied (or ignored as harmless) on the next
//! poll. A SET that fails its checks is reported in `setErrs` and never
//! acknowledged; one that could not be checked yet (the issuer's keys are
//! still loading) is neither, so the transmitter sends it again. Errors
//! back off; a poll that brought nothing waits `interval`.

use super::Intake;
use crate::auth::jwks::{Fetch, FetchError, Post};
use crate::metrics::Metrics;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest one poll may take: the transmitter may hold a long poll open (60 s).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest back-off between failed polls (5 min).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Largest poll answer read (16 MiB).
pub const MAX_ANSWER: usize = 16 << 20;
/// Label of polled signals in metrics and logs.
pub const KIND: &str = "ssf_poll";

/// Why a poll brought nothing.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("unreadable answer: {0}")]
    Answer(&'static str),
}

/// What the next poll tells the transmitter.
#[derive(Default)]
struct Report {
    ack: Vec<String>,
    errors: Map<String, Value>,
}

/// What the configuration in force says of polling.
pub enum Current {
    /// The application is gone: stop.
    Gone,
    /// No intake, or no `ssf.poll`: wait.
    Idle,
    /// Poll with this intake.
    Poll(Arc<Intake>),
}

/// Polls while the application lives. `current` reads the configuration in
/// force on each round (reloads change keys and settings, and may add or
/// remove polling); the loop holds no reference to it between rounds.
pub async fn run(
    current: impl Fn() -> Current + Send,
    fetcher: Arc<dyn Fetch>,
    metrics: Arc<Metrics>,
) {
    let mut report = Report::default();
    let mut failures: u32 = 0;
    loop {
        let intake = match current() {
            Current::Gone => return,
            Current::Idle => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Current::Poll(intake) => intake,
        };
        let interval = intake
            .poll_settings()
            .map_or(Duration::from_secs(5), |p| p.interval);
        let wait = match poll_once(&intake, fetcher.as_ref(), &mut report).await {
            Ok(more) => {
                failures = 0;
                metrics.poll_succeeded(intake.revocations.clock().now());
                if more {
                    Duration::ZERO
                } else {
                    interval
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                metrics.poll_failed();
                tracing::warn!(intake = KIND, error = %e, failures, "Poll failed");
                backoff(interval, failures)
            }
        };
        drop(intake);
        tokio::time::sleep(wait).await;
    }
}

/// `interval` doubled per failure in a row, at most [`MAX_BACKOFF`].
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    interval
        .saturating_mul(1u32 << failures.min(10))
        .min(MAX_BACKOFF)
}

/// One poll: sends the report, applies what comes back. `Ok(true)` when
/// the next poll has something to report (acknowledgements, errors): poll
/// again at once, which also fetches what the transmitter has more of.
async fn poll_once(
    intake: &Intake,
    fetcher: &dyn Fetch,
    report: &mut Report,
) -> Result<bool, PollError> {
    let Some(settings) = intake.poll_settings() else {
        return Ok(false);
    };
    let answer = fetcher
        .post(Post {
            url: &settings.url,
            authorization: settings.authorization.as_ref().map(|a| a.0.as_str()),
            content_type: "application/json",
            accept: "application/json",
            body: request(report, settings.max_events).to_string().into(),
            timeout: POLL_TIMEOUT,
            max_bytes: MAX_ANSWER,
        })
        .await?;
    // The transmitter has the report: start the next one.
    *report = Report::default();
    let answer: Value =
        serde_json::from_slice(&answer).map_err(|_| PollError::Answer("the answer is not JSON"))?;
    let sets = match answer.get("sets") {
        Some(Value::Object(sets)) => sets.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(PollError::Answer("sets is not a JSON object")),
    };
    // At most what was asked for; the rest comes with the next poll.
    let max = usize::try_from(settings.max_events).unwrap_or(usize::MAX);
    for (jti, set) in sets.into_iter().take(max) {
        apply(intake, jti, &set, report).await;
    }
    // Again at once only when progress was made (something to acknowledge
    // or report): SETs that cannot be checked yet come straight back, and
    // a `moreAvailable` with nothing usable must not spin either.
    // With `moreAvailable` and progress, the next poll fetches the rest.
    Ok(!report.ack.is_empty() || !report.errors.is_empty())
}

/// The body of a poll request (RFC 8936 §2.4).
fn request(report: &Report, max_events: u64) -> Value {
    let mut body = Map::new();
    body.insert("ack".into(), json!(report.ack));
    if !report.errors.is_empty() {
        body.insert("setErrs".into(), Value::Object(report.errors.clone()));
    }
    body.insert("maxEvents".into(), json!(max_events));
    body.insert("returnImmediately".into(), json!(false));
    Value::Object(body)
}

/// Applies one polled SET and notes in `report` what to tell the transmitter.
async fn apply(intake: &Intake, jti: String, set: &Value, report: &mut Report) {
    let Some(token) = set.as_str() else {
        intake.metrics.signal(KIND, "rejected", "invalid_request");
        report.errors.insert(
            jti,
            json!({"err": "invalid_request", "description": "the SET is not a string"}),
        );
        return;
    };
    let now = intake.revocations.clock().now();
    match intake.apply_set(KIND, token.trim(), now).await {
        Ok(applied) => {
            intake.metrics.signal(KIND, applied.label(), "");
            report.ack.push(jti);
        }
        // Not acknowledged, not reported: the transmitter sends it again.
        Err(super::signal::Rejection::KeysUnavailable) => {
            intake.metrics.signal(KIND, "rejected", "keys_unavailable");
        }
        Err(rejection) => {
            intake.metrics.signal(KIND, "rejected", rejection.reason());
            tracing::warn!(intake = KIND, reason = rejection.reason(),
                description = %rejection.description(), "Signal refused");
            report.errors.insert(
                jti,
                json!({"err": rejection.reason(), "description": rejection.description()}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1), Duration::from_secs(2));
        assert_eq!(backoff(s, 3), Duration::from_secs(8));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }
}
