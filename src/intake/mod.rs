//! Revocations sent by the identity provider: OpenID Connect Back-Channel
//! Logout and Shared Signals (SSF/CAEP) push, each on a path of the public
//! listener. Each request is read whole, checked ([`signal`] for what every
//! signal must be, [`logout`] and [`ssf`] for each kind's own rules) and
//! turned into at most one revocation written through the same store path
//! as a route's, at the signal's own time. Plain values in, an [`Answer`]
//! out: the server decides nothing here.
//!
//! Owns: intake endpoints, signal verification, replay memory.
//! May import: config, claims, auth, revocation, metrics.

pub mod logout;
pub mod poll;
pub mod replay;
pub mod signal;
pub mod ssf;

use crate::auth::jwks::Jwks;
use crate::claims::ClaimValue;
use crate::config::{BackchannelLogoutSettings, Problem, Settings, SsfPollSettings, SsfSettings};
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
    /// `intake.ssf.push_path`.
    SsfPush,
}

impl Endpoint {
    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::BackchannelLogout => "backchannel_logout",
            Endpoint::SsfPush => "ssf_push",
        }
    }
}

/// One request to an intake endpoint, its body read whole.
pub struct Delivery<'a> {
    pub method: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
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
    /// The token with this token id (`revocation.token_claim`), whoever its subject.
    TokenId(ClaimValue),
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
    ssf: Option<SsfSettings>,
    /// The configured paths lower-cased, as routes compare paths.
    logout_path: Option<String>,
    push_path: Option<String>,
    /// Digest of `intake.ssf.authorization`, compared in constant time.
    push_authorization: [u8; 32],
    /// `jwt.issuer`: the `iss` an `iss_sub` subject must name, when set.
    subject_issuer: Option<String>,
    /// Kept across reloads (by issuer name), so a signal replayed after a
    /// reload is still a replay.
    replay: Arc<replay::Replay>,
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
        if intake.backchannel_logout.is_none() && intake.ssf.is_none() {
            return Ok(None);
        }
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
        let ssf = intake.ssf.clone();
        Ok(Some(Intake {
            issuers,
            logout_path: intake
                .backchannel_logout
                .as_ref()
                .map(|l| l.path.to_ascii_lowercase()),
            push_path: ssf
                .as_ref()
                .and_then(|s| s.push_path.as_ref())
                .map(|p| p.to_ascii_lowercase()),
            push_authorization: digest(
                ssf.as_ref()
                    .and_then(|s| s.authorization.as_ref())
                    .map_or(&[][..], |a| a.0.as_bytes()),
            ),
            logout: intake.backchannel_logout.clone(),
            ssf,
            subject_issuer: settings.jwt.issuer.clone(),
            replay: Arc::default(),
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
        if self.logout_path.as_deref() == Some(loose_path) {
            Some(Endpoint::BackchannelLogout)
        } else if self.push_path.as_deref() == Some(loose_path) {
            Some(Endpoint::SsfPush)
        } else {
            None
        }
    }

    /// `intake.ssf.poll`, when SETs are polled for.
    pub fn poll_settings(&self) -> Option<&SsfPollSettings> {
        self.ssf.as_ref().and_then(|s| s.poll.as_ref())
    }

    /// The JWKS of every issuer, to be kept fresh by the caller.
    pub fn jwks(&self) -> impl Iterator<Item = &Arc<Jwks>> {
        self.issuers.iter().filter_map(|i| i.keys.jwks.as_ref())
    }

    /// What is answered before the body is read: an SSF push without the
    /// exact `Authorization` (401, nothing read), then a method other than
    /// POST (405).
    pub fn answer_before_body(
        &self,
        endpoint: Endpoint,
        method: &str,
        authorization: Option<&[u8]>,
    ) -> Option<Answer> {
        if endpoint == Endpoint::SsfPush && self.push_path.is_some() {
            let given = digest(authorization.unwrap_or_default());
            if authorization.is_none() || !same(&given, &self.push_authorization) {
                let refused = Rejection::Unauthorized;
                self.metrics
                    .signal(endpoint.label(), "rejected", refused.reason());
                tracing::warn!(intake = endpoint.label(), reason = refused.reason(),
                    description = %refused.description(), "Signal refused");
                return Some(rejection_answer(endpoint, &refused));
            }
        }
        if method != "POST" {
            let mut a = Answer::json(
                405,
                serde_json::json!({"error": "invalid_request",
                    "error_description": "use POST"}),
            );
            a.headers.push(("allow", "POST"));
            return Some(a);
        }
        None
    }

    /// Takes over `old`'s memory of applied signals (a reload).
    pub fn keep_replay_of(&mut self, old: &Intake) {
        self.replay = old.replay.clone();
    }

    /// Answers one delivery; never fails.
    pub async fn answer(&self, endpoint: Endpoint, delivery: &Delivery<'_>) -> Answer {
        if let Some(early) =
            self.answer_before_body(endpoint, delivery.method, delivery.authorization)
        {
            return early;
        }
        let kind = endpoint.label();
        let result = match endpoint {
            Endpoint::BackchannelLogout => self.logout_change(delivery).await,
            Endpoint::SsfPush => self.push_change(delivery).await,
        };
        match result {
            Ok(applied) => {
                self.metrics.signal(kind, applied.label(), "");
                match endpoint {
                    Endpoint::BackchannelLogout => Answer::empty(200),
                    Endpoint::SsfPush => Answer::empty(202),
                }
            }
            Err(rejection) => {
                self.metrics.signal(kind, "rejected", rejection.reason());
                tracing::warn!(intake = kind, reason = rejection.reason(),
                    description = %rejection.description(), "Signal refused");
                rejection_answer(endpoint, &rejection)
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
        let kind = Endpoint::BackchannelLogout.label();
        self.apply(
            kind,
            replay::Family::LogoutToken,
            &signal,
            jti,
            Some(change),
            now,
        )
        .await
    }

    async fn push_change(&self, delivery: &Delivery<'_>) -> Result<Applied, Rejection> {
        if self.push_path.is_none() {
            return Err(Rejection::request("SSF push is not configured"));
        }
        // `Authorization` was checked by `answer_before_body`.
        if !media_type_is(delivery.content_type, "application/secevent+jwt") {
            return Err(Rejection::request(
                "the body must be application/secevent+jwt",
            ));
        }
        let token = std::str::from_utf8(delivery.body)
            .map_err(|_| Rejection::request("the body is not UTF-8"))?
            .trim();
        let now = self.revocations.clock().now();
        self.apply_set(Endpoint::SsfPush.label(), token, now).await
    }

    /// Verifies one SET (pushed or polled) and applies its event.
    pub async fn apply_set(
        &self,
        kind: &'static str,
        token: &str,
        now: i64,
    ) -> Result<Applied, Rejection> {
        let signal = signal::verify(&self.issuers, token, now, self.leeway).await?;
        // Subjects name users of `jwt.issuer`, else of the signal's issuer.
        let sender = self.issuers.get(signal.issuer).map(|i| i.name.as_str());
        let subject_issuer = self.subject_issuer.as_deref().or(sender);
        let set = ssf::read(&signal, now, self.leeway, subject_issuer)?;
        let change = match set.event {
            ssf::Event::Revoke(change) => Some(change),
            ssf::Event::Nothing(why) => {
                tracing::info!(intake = kind, event = %set.event_type, why,
                    "Signal accepted; nothing to revoke");
                None
            }
        };
        self.apply(
            kind,
            replay::Family::SecurityEvent,
            &signal,
            &set.jti,
            change,
            now,
        )
        .await
    }

    /// Writes `change` unless this issuer's `jti` was applied before.
    async fn apply(
        &self,
        kind: &'static str,
        family: replay::Family,
        signal: &signal::Signal,
        jti: &str,
        change: Option<Change>,
        now: i64,
    ) -> Result<Applied, Rejection> {
        let issuer = self
            .issuers
            .get(signal.issuer)
            .map_or("", |i| i.name.as_str());
        if self.replay.seen(issuer, family, jti, now) {
            return Ok(Applied::Replayed);
        }
        let written = match &change {
            None => None,
            Some(Change::Session(sid)) => {
                tracing::info!(target: "audit", issuer, signal = kind, kind = "session",
                    session = sid.as_text(), "Session revoked by the identity provider");
                self.metrics.revocation("session");
                Some(self.revocations.revoke_session(sid.clone(), None).await)
            }
            Some(Change::TokenId(id)) => {
                tracing::info!(target: "audit", issuer, signal = kind, kind = "token",
                    token_id = id.as_text(), "Token revoked by the identity provider");
                self.metrics.revocation("token");
                Some(self.revocations.revoke_token_id(id.clone(), None).await)
            }
            Some(Change::SubjectAt(sub, at)) => {
                tracing::info!(target: "audit", issuer, signal = kind, kind = "subject",
                    subject = sub.as_text(), cutoff = at,
                    "Subject's tokens revoked by the identity provider");
                self.metrics.revocation("subject");
                Some(
                    self.revocations
                        .purge_subject_at(sub.clone(), *at, None)
                        .await,
                )
            }
        };
        if let (Some(w), Some(c)) = (written, &change) {
            tracing::debug!(status = w.label(), "Signal written");
            let (what, subject) = match c {
                Change::Session(_) => ("session", None),
                Change::TokenId(_) => ("token", None),
                Change::SubjectAt(sub, _) => ("subject", Some(sub.as_text().to_string())),
            };
            self.metrics.audit(crate::metrics::AuditEvent {
                at: now,
                source: kind,
                kind: what,
                subject,
                status: w.label(),
            });
        }
        let until = signal
            .exp
            .map_or(signal.iat.saturating_add(self.remember), |e| {
                e.saturating_add(self.leeway)
            })
            .max(now.saturating_add(self.leeway));
        self.replay.remember(issuer, family, jti, until, now);
        Ok(if change.is_some() {
            Applied::Written
        } else {
            Applied::Ignored
        })
    }
}

/// What became of a valid signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its revocation was written.
    Written,
    /// Valid, but it asks for nothing this proxy enforces.
    Ignored,
    /// Its `jti` was applied before: nothing changed.
    Replayed,
}

impl Applied {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Applied::Written => "applied",
            Applied::Ignored => "ignored",
            Applied::Replayed => "replayed",
        }
    }
}

/// The answer to a refused signal: back-channel logout answers 400 with
/// an OAuth error; SSF push answers with RFC 8935's `err` codes.
fn rejection_answer(endpoint: Endpoint, rejection: &Rejection) -> Answer {
    let status = match rejection {
        Rejection::KeysUnavailable => 503,
        Rejection::Unauthorized => 401,
        _ => 400,
    };
    let body = match endpoint {
        Endpoint::BackchannelLogout => serde_json::json!({"error": "invalid_request",
            "error_description": rejection.description()}),
        Endpoint::SsfPush => serde_json::json!({"err": rejection.reason(),
            "description": rejection.description()}),
    };
    let mut answer = Answer::json(status, body);
    if status == 503 {
        answer.headers.push(("retry-after", "5"));
    }
    answer
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Constant-time equality of two digests.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `Content-Type` names `expected` (parameters and case aside).
fn media_type_is(content_type: Option<&[u8]>, expected: &str) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}
