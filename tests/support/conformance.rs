//! The store conformance suite: every revocation store runs these cases
//! through [`Revocations`], the same door the proxy and admin API use.

use revoke_proxy::claims::{ClaimValue, KeyHashes};
use revoke_proxy::revocation::store::BoxFuture;
use revoke_proxy::revocation::{Clock, Reason, Revocations, WriteStatus};
use std::sync::Arc;

/// A store under test. `open` may be called again to model a restart.
pub trait Backing: Sync {
    /// Whether entries survive a reopen.
    fn durable(&self) -> bool;
    fn open(&self, clock: Clock) -> BoxFuture<'_, Arc<Revocations>>;
}

fn s(v: &str) -> ClaimValue {
    ClaimValue::Str(v.into())
}

fn check(r: &Revocations, sub: &ClaimValue, jti: &ClaimValue, iat: i64) -> Option<Reason> {
    r.check(&KeyHashes::new(sub, jti), Some(iat))
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
        check(&r, &s("u1"), &s("j1"), now),
        Some(Reason::Token),
        "revoke"
    );
    assert_eq!(
        check(&r, &s("u1"), &s("j2"), now),
        None,
        "other token of the user"
    );
    assert_eq!(
        check(&r, &s("u2"), &s("j1"), now),
        None,
        "same jti, other user"
    );

    // Keys are collision-free and numbers are not strings.
    r.revoke_token(s("a:b"), s("c"), Some(now + 600), None)
        .await;
    assert_eq!(
        check(&r, &s("a"), &s("b:c"), now),
        None,
        "separator collision"
    );
    let n42 = ClaimValue::from_json(&serde_json::json!(42)).unwrap();
    r.revoke_token(n42.clone(), s("j"), Some(now + 600), None)
        .await;
    assert_eq!(check(&r, &s("42"), &s("j"), now), None, "number vs string");
    assert_eq!(check(&r, &n42, &s("j"), now), Some(Reason::Token));

    // A subject cutoff revokes older tokens; the purge second survives.
    r.purge_subject(s("u3"), None).await;
    let cutoff = clock.now();
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff - 1),
        Some(Reason::Subject),
        "purge"
    );
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff + 1),
        None,
        "issued after purge"
    );
    assert_eq!(
        check(&r, &s("u4"), &s("x"), cutoff - 1),
        None,
        "other subject"
    );
    assert_eq!(
        r.check(&KeyHashes::new(&s("u3"), &s("x")), None),
        None,
        "no iat: cannot be purged"
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
            check(&r, &s("u7"), &s(&format!("j{i}")), now),
            Some(Reason::Token),
            "concurrent {i}"
        );
    }

    clock.advance(10);
    let later = clock.now();
    assert_eq!(
        check(&r, &s("u5"), &s("j"), later),
        Some(Reason::Token),
        "never shortened"
    );
    assert_eq!(check(&r, &s("u6"), &s("j"), later), None, "expired");

    // The global cutoff revokes every older token.
    r.purge_all(None).await;
    let global = clock.now();
    assert_eq!(
        check(&r, &s("zz"), &s("x"), global - 1),
        Some(Reason::Global),
        "purge all"
    );
    assert_eq!(
        check(&r, &s("zz"), &s("x"), global),
        None,
        "purge-all second survives"
    );

    if !b.durable() {
        return;
    }
    drop(r);
    let r = b.open(clock.clone()).await;
    assert_eq!(
        check(&r, &s("u1"), &s("j1"), later),
        Some(Reason::Token),
        "after reopen: token"
    );
    assert_eq!(
        check(&r, &s("u3"), &s("x"), cutoff - 1),
        Some(Reason::Subject),
        "after reopen: subject"
    );
    assert_eq!(
        check(&r, &s("u5"), &s("j"), later),
        Some(Reason::Token),
        "after reopen: never shortened"
    );
    assert_eq!(
        check(&r, &s("u6"), &s("j"), later),
        None,
        "after reopen: expired stays gone"
    );
    for i in 0..64 {
        assert_eq!(
            check(&r, &s("u7"), &s(&format!("j{i}")), now),
            Some(Reason::Token),
            "after reopen: concurrent {i}"
        );
    }
    assert_eq!(
        check(&r, &s("zz"), &s("x"), global - 1),
        Some(Reason::Global),
        "after reopen: global"
    );
}
