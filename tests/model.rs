//! Model-based test of the revocation model: random sequences of token
//! revocations, subject purges, global purges, clock moves (the test clock)
//! and restarts run against a reference model written from the rules —
//! a later write never shortens an earlier one, cutoffs are whole seconds
//! and spare the purge's own second, entries live until their `until`.
//! The memory, file and redis stores must agree with the model (memory
//! forgetting everything at a restart) and so with each other.

mod support;

use proptest::prelude::*;
use revoke_proxy::claims::{ClaimValue, KeyHashes};
use revoke_proxy::revocation::store::file::FileStore;
use revoke_proxy::revocation::{Clock, Lifetimes, Reason, Revocations, TokenRef, Verdict};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::servers::Redis;

const MAX_TOKEN: i64 = 600;
const LEEWAY: i64 = 5;
const LIFETIMES: Lifetimes = Lifetimes {
    max_token: MAX_TOKEN,
    leeway: LEEWAY,
};

#[derive(Debug, Clone)]
enum Op {
    Revoke {
        sub: u8,
        jti: u8,
        ttl: i64,
    },
    Purge {
        sub: u8,
    },
    RevokeSession {
        sid: u8,
    },
    PurgeAll,
    Advance(i64),
    Restart,
    /// `sid` 3 is a token without the session claim.
    Check {
        sub: u8,
        jti: u8,
        sid: u8,
        age: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3, 1i64..120).prop_map(|(sub, jti, ttl)| Op::Revoke { sub, jti, ttl }),
        2 => (0u8..3).prop_map(|sub| Op::Purge { sub }),
        2 => (0u8..3).prop_map(|sid| Op::RevokeSession { sid }),
        1 => Just(Op::PurgeAll),
        3 => prop_oneof![0i64..3, 50i64..700].prop_map(Op::Advance),
        1 => Just(Op::Restart),
        // Ages near zero hit the purge's own second; large ones old tokens.
        6 => (0u8..3, 0u8..3, 0u8..4, prop_oneof![-3i64..4, 0i64..900])
            .prop_map(|(sub, jti, sid, age)| Op::Check { sub, jti, sid, age }),
    ]
}

/// The rules, written plainly.
#[derive(Default, Clone)]
struct Model {
    tokens: HashMap<(u8, u8), i64>,
    subjects: HashMap<u8, (i64, i64)>,
    sessions: HashMap<u8, i64>,
    global: Option<(i64, i64)>,
}

impl Model {
    fn check(&self, sub: u8, jti: u8, sid: Option<u8>, iat: i64, now: i64) -> Option<Reason> {
        if self.tokens.get(&(sub, jti)).is_some_and(|u| *u > now) {
            return Some(Reason::Token);
        }
        if sid.is_some_and(|s| self.sessions.get(&s).is_some_and(|u| *u > now)) {
            return Some(Reason::Session);
        }
        if self
            .subjects
            .get(&sub)
            .is_some_and(|(c, u)| *u > now && iat < *c)
        {
            return Some(Reason::Subject);
        }
        if self.global.is_some_and(|(c, u)| u > now && iat < c) {
            return Some(Reason::Global);
        }
        None
    }
}

fn name(n: u8) -> ClaimValue {
    // Separators and a number, so encodings are exercised too.
    match n {
        0 => ClaimValue::Str("alice".into()),
        1 => ClaimValue::Str("b:o b%".into()),
        _ => ClaimValue::Num("42".into()),
    }
}

/// One store under test and how to reopen it.
enum Kind {
    Memory,
    File(std::path::PathBuf),
    Redis(String, String),
}

async fn open(kind: &Kind, clock: &Clock) -> Arc<Revocations> {
    match kind {
        Kind::Memory => Revocations::new(None, LIFETIMES, Duration::from_secs(1), clock.clone()),
        Kind::File(path) => {
            let store = FileStore::open(path, clock.clone()).expect("file store opens");
            let r = Revocations::new(
                Some(Arc::new(store)),
                LIFETIMES,
                Duration::from_secs(5),
                clock.clone(),
            );
            r.load().await.expect("file store loads");
            r
        }
        Kind::Redis(url, prefix) => {
            let yaml = format!(
                "upstream: http://127.0.0.1:9\njwt:\n  secret: ${{SECRET}}\n  leeway: {LEEWAY}s\nrevocation:\n  max_token_lifetime: {MAX_TOKEN}s\n  store:\n    type: redis\n    url: {url}\n    key_prefix: \"{prefix}\"\n    timeout: 2s\n"
            );
            let s = support::parse_settings(&yaml, "http://127.0.0.1:9", &[]);
            let r = Revocations::open(&s.revocation, s.jwt.leeway, clock.clone())
                .await
                .expect("redis opens");
            support::wait_until("redis synced", || r.available()).await;
            r
        }
    }
}

/// Checks answered "revoked" and "clear", so the run provably compared both.
static REVOKED_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CLEAR_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn run(ops: &[Op], redis_url: &str, case: u64) -> Result<(), TestCaseError> {
    let clock = Clock::system();
    let dir = tempfile::tempdir().unwrap();
    let kinds = [
        Kind::Memory,
        Kind::File(dir.path().join("log")),
        Kind::Redis(redis_url.to_string(), format!("model{case}:")),
    ];
    let mut live = Vec::new();
    for k in &kinds {
        live.push(open(k, &clock).await);
    }
    let mut model = Model::default();
    let mut memory_model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let now = clock.now();
        match *op {
            Op::Revoke { sub, jti, ttl } => {
                let exp = now + ttl;
                for r in &live {
                    r.revoke_token(name(sub), name(jti), Some(exp), None).await;
                }
                let until = (exp + LEEWAY).max(now + 1);
                for m in [&mut model, &mut memory_model] {
                    let e = m.tokens.entry((sub, jti)).or_insert(until);
                    *e = (*e).max(until);
                }
            }
            Op::Purge { sub } => {
                for r in &live {
                    r.purge_subject(name(sub), None).await;
                }
                let entry = (now, now + MAX_TOKEN + LEEWAY);
                for m in [&mut model, &mut memory_model] {
                    let e = m.subjects.entry(sub).or_insert(entry);
                    *e = (e.0.max(entry.0), e.1.max(entry.1));
                }
            }
            Op::RevokeSession { sid } => {
                for r in &live {
                    r.revoke_session(name(sid), None).await;
                }
                let until = now + MAX_TOKEN + LEEWAY;
                for m in [&mut model, &mut memory_model] {
                    let e = m.sessions.entry(sid).or_insert(until);
                    *e = (*e).max(until);
                }
            }
            Op::PurgeAll => {
                for r in &live {
                    r.purge_all(None).await;
                }
                let entry = (now, now + MAX_TOKEN + LEEWAY);
                for m in [&mut model, &mut memory_model] {
                    m.global = Some(match m.global {
                        Some((c, u)) => (c.max(entry.0), u.max(entry.1)),
                        None => entry,
                    });
                }
            }
            Op::Advance(secs) => clock.advance(secs),
            Op::Restart => {
                live.clear();
                for k in &kinds {
                    live.push(open(k, &clock).await);
                }
                memory_model = Model::default();
            }
            Op::Check { sub, jti, sid, age } => {
                let iat = now - age;
                let sid = (sid < 3).then_some(sid);
                let (subject, token, session) = (name(sub), name(jti), sid.map(name));
                let keys = KeyHashes::new(&subject, &token).with_session(session.as_ref());
                let id = TokenRef {
                    subject: &subject,
                    token: &token,
                    session: session.as_ref(),
                };
                for (k, r) in kinds.iter().zip(&live) {
                    let want = match k {
                        Kind::Memory => memory_model.check(sub, jti, sid, iat, now),
                        _ => model.check(sub, jti, sid, iat, now),
                    };
                    let got = match r.verdict(id, &keys, Some(iat)).await {
                        Verdict::Clear => None,
                        Verdict::Revoked(reason) => Some(reason),
                        Verdict::Unavailable => panic!("store unavailable"),
                    };
                    let which = match k {
                        Kind::Memory => "memory",
                        Kind::File(_) => "file",
                        Kind::Redis(..) => "redis",
                    };
                    prop_assert_eq!(got, want, "{} at step {}: {:?}", which, step, op);
                    let counter = if got.is_some() {
                        &REVOKED_SEEN
                    } else {
                        &CLEAR_SEEN
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn every_store_agrees_with_the_model() {
    let redis = Redis::start();
    let url = redis.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let case = std::sync::atomic::AtomicU64::new(0);
    let config = ProptestConfig {
        cases: 128,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..40))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(run(&ops, &url, n))?;
    });
    let (revoked, clear) = (
        REVOKED_SEEN.load(std::sync::atomic::Ordering::Relaxed),
        CLEAR_SEEN.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        revoked > 100 && clear > 100,
        "revoked {revoked}, clear {clear}"
    );
}
