//! Revocations sent by the identity provider: OpenID Connect Back-Channel
//! Logout on a path of the public listener. Each request is read whole,
//! checked ([`signal`] for what every signal must be, [`logout`] for the
//! logout token's own rules) and turned into one revocation written through
//! the same store path as a route's, at the signal's own time. Plain
//! values in, an [`Answer`] out: the server decides nothing here.
//!
//! Owns: intake endpoints, signal verification, replay memory.
//! May import: config, claims, auth, revocation, metrics.

pub mod logout;
pub mod replay;
pub mod signal;

use crate::auth::jwks::Jwks;
use crate::claims::ClaimValue;
use crate::config::{BackchannelLogoutSettings, Problem, Settings};
use crate::metrics::Metrics;
use crate::revocation::Revocations;
use signal::{Issuer, Rejection};
use std::sync::Arc;

/// Largest body an intake endpoint reads (64 KiB): a logout token or a SET
/// is a few kilobytes.
pub const MAX_BODY: usize = 64 * 1024;

/// An intake endpoint on the public listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `intake.backchannel_logout.path`.
    BackchannelLogout,
}

impl Endpoint {
    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::BackchannelLogout => "backchannel_logout",
        }
    }
}

/// One request to an intake endpoint, its body read whole.
pub struct Delivery<'a> {
    pub method: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// What to answer: status, extra headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: vec![
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![("cache-control", "no-store")],
            body: Vec::new(),
        }
    }

    /// The answer to a body longer than [`MAX_BODY`].
    pub fn too_large() -> Answer {
        Answer::json(
            413,
            serde_json::json!({"error": "invalid_request",
                "error_description": "the body is larger than 64 KiB"}),
        )
    }
}

/// A revocation a signal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Every token of this identity-provider session.
    Session(ClaimValue),
    /// Every token of this subject issued before this time (the signal's).
    SubjectAt(ClaimValue, i64),
}

/// Every problem with the issuers' keys (a key file that is not a key, a
/// ROCA key, …), as configuration problems.
pub fn check(settings: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, s) in settings.intake.issuers.iter().enumerate() {
        if let Err(p) = Issuer::new(s, &format!("intake.issuers[{i}]")) {
            problems.extend(p);
        }
    }
    problems
}

/// The intake endpoints of one configuration.
pub struct Intake {
    issuers: Vec<Issuer>,
    logout: Option<BackchannelLogoutSettings>,
    /// `intake.backchannel_logout.path` lower-cased, as routes compare paths.
    logout_path: String,
    replay: replay::Replay,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
    leeway: i64,
    /// How long a signal is remembered when it has no `exp`.
    remember: i64,
}

impl Intake {
    /// The intake of `settings`, or `None` when it configures no endpoint.
    pub fn new(
        settings: &Settings,
        revocations: Arc<Revocations>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Intake>, Vec<Problem>> {
        let intake = &settings.intake;
        let Some(logout) = &intake.backchannel_logout else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let mut issuers = Vec::new();
        for (i, s) in intake.issuers.iter().enumerate() {
            match Issuer::new(s, &format!("intake.issuers[{i}]")) {
                Ok(issuer) => issuers.push(issuer),
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let leeway = settings.jwt.leeway.as_secs() as i64;
        Ok(Some(Intake {
            issuers,
            logout_path: logout.path.to_ascii_lowercase(),
            logout: Some(logout.clone()),
            replay: replay::Replay::default(),
            revocations,
            metrics,
            leeway,
            remember: settings.revocation.max_token_lifetime.as_secs() as i64 + leeway,
        }))
    }

    /// The endpoint at a path in its loose normal form (see
    /// [`crate::routes::NormalizedPath::loose`]): every spelling of an
    /// intake path is answered here, none is proxied.
    pub fn endpoint(&self, loose_path: &str) -> Option<Endpoint> {
        (self.logout.is_some() && loose_path == self.logout_path)
            .then_some(Endpoint::BackchannelLogout)
    }

    /// The JWKS of every issuer, to be kept fresh by the caller.
    pub fn jwks(&self) -> impl Iterator<Item = &Arc<Jwks>> {
        self.issuers.iter().filter_map(|i| i.keys.jwks.as_ref())
    }

    /// Answers one delivery; never fails.
    pub async fn answer(&self, endpoint: Endpoint, delivery: &Delivery<'_>) -> Answer {
        if delivery.method != "POST" {
            let mut a = Answer::json(
                405,
                serde_json::json!({"error": "invalid_request",
                    "error_description": "use POST"}),
            );
            a.headers.push(("allow", "POST"));
            return a;
        }
        match endpoint {
            Endpoint::BackchannelLogout => self.backchannel_logout(delivery).await,
        }
    }

    async fn backchannel_logout(&self, delivery: &Delivery<'_>) -> Answer {
        let kind = Endpoint::BackchannelLogout.label();
        match self.logout_change(delivery).await {
            Ok(Applied::Replayed) => {
                self.metrics.signal(kind, "replayed", "");
                Answer::empty(200)
            }
            Ok(Applied::Written) => {
                self.metrics.signal(kind, "applied", "");
                Answer::empty(200)
            }
            Err(rejection) => {
                self.metrics.signal(kind, "rejected", rejection.reason());
                tracing::warn!(intake = kind, reason = rejection.reason(),
                    description = %rejection.description(), "Signal refused");
                let status = if rejection == Rejection::KeysUnavailable {
                    503
                } else {
                    400
                };
                Answer::json(
                    status,
                    serde_json::json!({"error": "invalid_request",
                        "error_description": rejection.description()}),
                )
            }
        }
    }

    async fn logout_change(&self, delivery: &Delivery<'_>) -> Result<Applied, Rejection> {
        let Some(settings) = &self.logout else {
            return Err(Rejection::request("back-channel logout is not configured"));
        };
        if !media_type_is(delivery.content_type, "application/x-www-form-urlencoded") {
            return Err(Rejection::request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let token = logout::token_of_form(delivery.body)?;
        let now = self.revocations.clock().now();
        let signal = signal::verify(&self.issuers, &token, now, self.leeway).await?;
        let change = logout::change(&signal, &settings.accept_typ)?;
        let jti = signal::string_claim(&signal.claims, "jti")?.unwrap_or_default();
        self.apply(&signal, jti, change, now).await
    }

    /// Writes `change` unless this issuer's `jti` was applied before.
    async fn apply(
        &self,
        signal: &signal::Signal,
        jti: &str,
        change: Change,
        now: i64,
    ) -> Result<Applied, Rejection> {
        if self.replay.seen(signal.issuer, jti, now) {
            return Ok(Applied::Replayed);
        }
        let issuer = self
            .issuers
            .get(signal.issuer)
            .map_or("", |i| i.name.as_str());
        let written = match &change {
            Change::Session(sid) => {
                tracing::info!(target: "audit", issuer, signal = "backchannel_logout",
                    session = sid.as_text(), "Session revoked by the identity provider");
                self.revocations.revoke_session(sid.clone(), None).await
            }
            Change::SubjectAt(sub, at) => {
                tracing::info!(target: "audit", issuer, signal = "backchannel_logout",
                    subject = sub.as_text(), cutoff = at,
                    "Subject's tokens revoked by the identity provider");
                self.revocations
                    .purge_subject_at(sub.clone(), *at, None)
                    .await
            }
        };
        self.metrics
            .revocation(if matches!(change, Change::Session(_)) {
                "session"
            } else {
                "subject"
            });
        tracing::debug!(status = written.label(), "Signal written");
        let until = signal
            .exp
            .map_or(signal.iat.saturating_add(self.remember), |e| {
                e.saturating_add(self.leeway)
            })
            .max(now.saturating_add(self.leeway));
        self.replay.remember(signal.issuer, jti, until, now);
        Ok(Applied::Written)
    }
}

enum Applied {
    Written,
    Replayed,
}

/// `Content-Type` names `expected` (parameters and case aside).
fn media_type_is(content_type: Option<&[u8]>, expected: &str) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}
