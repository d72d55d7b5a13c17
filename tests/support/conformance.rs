//! The store conformance suite: every revocation store runs these cases
//! through [`Revocations`], the same door the proxy and admin API use.

use revoke_proxy::claims::{ClaimValue, KeyHashes};
use revoke_proxy::revocation::store::BoxFuture;
use revoke_proxy::revocation::{Clock, Entry, Reason, Revocations, TokenRef, Verdict, WriteStatus};
use std::sync::Arc;

/// A store under test. `open` may be called again to model a restart.
pub trait Backing: Sync {
    /// Whether entries survive a reopen.
    fn durable(&self) -> bool;
    /// Whether several instances can be open at once (replicas of one store).
    fn shared(&self) -> bool {
        false
    }
    fn open(&self, clock: Clock) -> BoxFuture<'_, Arc<Revocations>>;
}

fn s(v: &str) -> ClaimValue {
    ClaimValue::Str(v.into())
}

/// The full check a request gets (local set, then a per-request store).
async fn check_iat(
    r: &Revocations,
    sub: &ClaimValue,
    jti: &ClaimValue,
    iat: Option<i64>,
) -> Option<Reason> {
    check_session(r, sub, jti, None, iat).await
}

/// The same for a token that names an identity-provider session.
async fn check_session(
    r: &Revocations,
    sub: &ClaimValue,
    jti: &ClaimValue,
    session: Option<&ClaimValue>,
    iat: Option<i64>,
) -> Option<Reason> {
    let keys = KeyHashes::new(sub, jti).with_session(session);
    let id = TokenRef {
        subject: sub,
        token: jti,
        session,
    };
    match r.verdict(id, &keys, iat).await {
        Verdict::Clear => None,
        Verdict::Revoked(reason) => Some(reason),
        Verdict::Unavailable => panic!("store unavailable during the conformance run"),
    }
}

async fn check(r: &Revocations, sub: &ClaimValue, jti: &ClaimValue, iat: i64) -> Option<Reason> {
    check_iat(r, sub, jti, Some(iat)).await
}

/// Runs every case; panics naming the first that fails.
pub async fn run(b: &dyn Backing) {
    let clock = Clock::system();
    let r = b.open(clock.clone()).await;
    let now = clock.now();

    // A revoked (subject, token) pair is rejected; nothing else is.
    assert_eq!(
        r.revoke_token(s("u1"), s("j1"), Some(now + 600), None)
            .await,
        WriteStatus::Stored
    );
    assert_eq!(
        check(&r, &s("u1"), &s("j1"), now).await,
        Some(Reason::Token),
        "revoke"
    );
    assert_eq!(
        check(&r, &s("u1"), &s("j2"), now).await,
        None,
        "other token of the user"
    );
    assert_eq!(
        check(&r, &s("u2"), &s("j1"), now).await,
        None,
        "same jti, other user"
    );

    // Keys are collision-free and numbers are not strings.
    r.revoke_token(s("a:b"), s("c"), Some(now + 600), None)
        .await;
    assert_eq!(
        check(&r, &s("a"), &s("b:c"), now).await,
        None,
        "separator collision"
    );
    let n42 = ClaimValue::from_json(&serde_json::json!(42)).unwrap();
    r.revoke_token(n42.clone(), s("j"), Some(now + 600), None)
        .await;
    assert_eq!(
        check(&r, &s("42"), &s("j"), now).await,
        None,
        "number vs string"
    );
    assert_eq!(check(&r, &n42, &s("j"), now).await, Some(Reason::Token));

    // A subject cutoff revokes older tokens; the purge second survives.
    // Read before the purge: if the second turns in between, the purge's
    // cutoff is one later and both checks below still hold.
    let cutoff = clock.now();
    r.purge_subject(s("u3"), None).await;
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff - 1).await,
        Some(Reason::Subject),
        "purge"
    );
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff + 1).await,
        None,
        "issued after purge"
    );
    assert_eq!(
        check(&r, &s("u4"), &s("x"), cutoff - 1).await,
        None,
        "other subject"
    );
    assert_eq!(
        check_iat(&r, &s("u3"), &s("x"), None).await,
        None,
        "no iat: cannot be purged"
    );

    // A session entry revokes every token naming that session, whatever its
    // subject or iat; other sessions, tokens without one and a subject of
    // the same value are untouched.
    assert_eq!(
        r.revoke_session(s("sid-1"), None).await,
        WriteStatus::Stored
    );
    for (sub, jti, sid, iat, want, what) in [
        (
            "u8",
            "a",
            Some("sid-1"),
            Some(now),
            Some(Reason::Session),
            "session",
        ),
        (
            "u9",
            "b",
            Some("sid-1"),
            Some(now + 5),
            Some(Reason::Session),
            "any subject, later iat",
        ),
        (
            "u8",
            "c",
            Some("sid-1"),
            None,
            Some(Reason::Session),
            "no iat",
        ),
        ("u8", "d", Some("sid-2"), Some(now), None, "other session"),
        ("u8", "e", None, Some(now), None, "no session claim"),
        (
            "sid-1",
            "f",
            None,
            Some(now),
            None,
            "a subject is not a session",
        ),
    ] {
        let sid = sid.map(s);
        assert_eq!(
            check_session(&r, &s(sub), &s(jti), sid.as_ref(), iat).await,
            want,
            "{what}"
        );
    }
    let n7 = ClaimValue::from_json(&serde_json::json!(7)).unwrap();
    r.revoke_session(n7.clone(), Some(600)).await;
    assert_eq!(
        check_session(&r, &s("u8"), &s("g"), Some(&s("7")), Some(now)).await,
        None,
        "session number vs string"
    );
    assert_eq!(
        check_session(&r, &s("u8"), &s("g"), Some(&n7), Some(now)).await,
        Some(Reason::Session),
        "numeric session"
    );

    // A token-id entry (a CAEP jwt_id subject) revokes the token with that
    // id whoever its subject; other ids, and a subject or session of the
    // same value, are untouched.
    assert_eq!(
        r.revoke_token_id(s("tid-1"), None).await,
        WriteStatus::Stored
    );
    assert_eq!(
        check(&r, &s("u10"), &s("tid-1"), now).await,
        Some(Reason::Token),
        "token id"
    );
    assert_eq!(
        check(&r, &s("u11"), &s("tid-1"), now + 5).await,
        Some(Reason::Token),
        "any subject"
    );
    assert_eq!(
        check(&r, &s("u10"), &s("tid-2"), now).await,
        None,
        "other token id"
    );
    assert_eq!(
        check(&r, &s("tid-1"), &s("x"), now).await,
        None,
        "a subject is not a token id"
    );
    assert_eq!(
        check_session(&r, &s("u10"), &s("y"), Some(&s("tid-1")), Some(now)).await,
        None,
        "a session is not a token id"
    );

    // A later, shorter write never shortens an entry.
    r.revoke_token(s("u5"), s("j"), None, Some(1000)).await;
    r.revoke_token(s("u5"), s("j"), None, Some(2)).await;
    // Entries end when their time is up.
    r.revoke_token(s("u6"), s("j"), None, Some(2)).await;

    // Concurrent writes for one user all stick.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.revoke_token(s("u7"), s(&format!("j{i}")), Some(now + 600), None)
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), WriteStatus::Stored, "concurrent write");
    }
    for i in 0..64 {
        assert_eq!(
            check(&r, &s("u7"), &s(&format!("j{i}")), now).await,
            Some(Reason::Token),
            "concurrent {i}"
        );
    }

    clock.advance(10);
    let later = clock.now();
    assert_eq!(
        check(&r, &s("u5"), &s("j"), later).await,
        Some(Reason::Token),
        "never shortened"
    );
    assert_eq!(check(&r, &s("u6"), &s("j"), later).await, None, "expired");

    // The global cutoff revokes every older token.
    // The cutoff lies between these two readings of the clock.
    let before = clock.now();
    r.purge_all(None).await;
    let global = clock.now();
    assert_eq!(
        check(&r, &s("zz"), &s("x"), before - 1).await,
        Some(Reason::Global),
        "purge all"
    );
    assert_eq!(
        check(&r, &s("zz"), &s("x"), global).await,
        None,
        "purge-all second survives"
    );

    if b.shared() {
        racing_replicas(b, &clock).await;
    }
    if !b.durable() {
        return;
    }
    drop(r);
    let r = b.open(clock.clone()).await;
    assert_eq!(
        check(&r, &s("u1"), &s("j1"), later).await,
        Some(Reason::Token),
        "after reopen: token"
    );
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff - 1).await,
        Some(Reason::Subject),
        "after reopen: subject"
    );
    assert_eq!(
        check(&r, &s("u5"), &s("j"), later).await,
        Some(Reason::Token),
        "after reopen: never shortened"
    );
    assert_eq!(
        check_session(&r, &s("u9"), &s("z"), Some(&s("sid-1")), Some(later)).await,
        Some(Reason::Session),
        "after reopen: session"
    );
    assert_eq!(
        check(&r, &s("u12"), &s("tid-1"), later).await,
        Some(Reason::Token),
        "after reopen: token id"
    );
    assert_eq!(
        check(&r, &s("u6"), &s("j"), later).await,
        None,
        "after reopen: expired stays gone"
    );
    for i in 0..64 {
        assert_eq!(
            check(&r, &s("u7"), &s(&format!("j{i}")), now).await,
            Some(Reason::Token),
            "after reopen: concurrent {i}"
        );
    }
    assert_eq!(
        check(&r, &s("zz"), &s("x"), global - 1).await,
        Some(Reason::Global),
        "after reopen: global"
    );
}

/// Two replicas writing cutoffs for one subject at the same moment: a third,
/// fresh replica sees the latest cutoff and the longest lifetime of them all.
async fn racing_replicas(b: &dyn Backing, clock: &Clock) {
    let a = b.open(clock.clone()).await;
    let c = b.open(clock.clone()).await;
    let base = clock.now();
    let mut tasks = Vec::new();
    for i in 0..32i64 {
        for r in [a.clone(), c.clone()] {
            tasks.push(tokio::spawn(async move {
                r.record(Entry::Subject {
                    subject: s("racer"),
                    cutoff: base + (i * 13) % 32,
                    until: base + 600 + (i * 7) % 32,
                })
                .await
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), WriteStatus::Stored, "racing write");
    }
    let fresh = b.open(clock.clone()).await;
    assert_eq!(
        check(&fresh, &s("racer"), &s("t"), base + 30).await,
        Some(Reason::Subject),
        "racing replicas: the latest cutoff (base + 31) won"
    );
    assert_eq!(
        check(&fresh, &s("racer"), &s("t"), base + 31).await,
        None,
        "racing replicas: a token of the cutoff second survives"
    );
    clock.advance(620);
    assert_eq!(
        check(&fresh, &s("racer"), &s("t"), base + 30).await,
        Some(Reason::Subject),
        "racing replicas: the longest lifetime (base + 631) won"
    );
    clock.advance(-620);
}
