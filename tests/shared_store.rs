//! Several replicas sharing one real Redis (or memcached): propagation, feed
//! loss and resync, store outages and `on_store_failure`.

mod support;

use revoke_proxy::claims::{ClaimValue, KeyHashes};
use revoke_proxy::revocation::Clock;
use std::time::{Duration, Instant};
use support::servers::{Memcached, Redis};
use support::*;

/// BASIC with a shared store and a short staleness window.
fn config(store: &str, extra: &str) -> String {
    format!("{BASIC}revocation:\n  max_staleness: 1s\n{extra}  store:\n{store}    timeout: 200ms\n")
}

fn redis_store(redis: &Redis, mode: &str) -> String {
    format!(
        "    type: redis\n    url: {}\n    mode: {mode}\n",
        redis.url()
    )
}

fn keys_of(sub: &str, jti: &str) -> KeyHashes {
    KeyHashes::new(&ClaimValue::Str(sub.into()), &ClaimValue::Str(jti.into()))
}

fn jti(claims: &serde_json::Value) -> String {
    claims["jti"].as_str().unwrap().to_string()
}

async fn readyz(p: &TestProxy) -> u16 {
    get(p.admin.expect("admin listener"), "/readyz", None)
        .await
        .status
}

#[tokio::test]
async fn logout_through_one_replica_is_enforced_by_the_other() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = config(&redis_store(&redis, "replica"), "");
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;

    let mut lags = Vec::new();
    for i in 0..40 {
        let c = claims(&format!("user-{i}"));
        let t = hs256(&c);
        assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 200);
        let other = hs256(&claims(&format!("user-{i}")));
        // From the logout request on replica a to enforcement on replica b.
        let started = Instant::now();
        let resp = post(a.addr, "/logout", &t).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("revocation-status"), Some("stored"));
        let keys = keys_of(&format!("user-{i}"), &jti(&c));
        let rb = b.app.revocations.clone();
        wait_until("revocation reaches replica b", || {
            rb.check(&keys, None).is_some()
        })
        .await;
        lags.push(started.elapsed());
        assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 401);
        assert_eq!(
            get(b.addr, "/api", Some(&other)).await.status,
            200,
            "other token"
        );
    }
    lags.sort();
    let p50 = lags[lags.len() / 2];
    let p99 = lags[lags.len() * 99 / 100];
    println!(
        "propagation a -> b over {} revocations: p50 {p50:?}, p99 {p99:?}",
        lags.len()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_new_replica_loads_what_is_already_revoked() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = config(&redis_store(&redis, "replica"), "");
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let t = hs256(&claims("carol"));
    assert_eq!(post(a.addr, "/logout", &t).await.status, 200);
    let old = hs256(&issued_before("dave"));
    assert_eq!(
        post(a.addr, "/logout/all", &hs256(&claims("dave")))
            .await
            .status,
        204
    );
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 401, "token");
    assert_eq!(get(b.addr, "/api", Some(&old)).await.status, 401, "purge");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_revocation_made_while_the_feed_is_cut_is_enforced_after_resync() {
    let mut redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = config(&redis_store(&redis, "replica"), "");
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;

    // CLIENT KILL of every log reader, then revoke at once: b is reconnecting.
    let c = claims("erin");
    let t = hs256(&c);
    let killed = redis.kill_log_readers();
    assert!(killed >= 2, "killed {killed}");
    assert_eq!(post(a.addr, "/logout", &t).await.status, 200);
    let keys = keys_of("erin", &jti(&c));
    let rb = b.app.revocations.clone();
    wait_until("b resyncs after CLIENT KILL", || {
        rb.check(&keys, None).is_some()
    })
    .await;
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 401);

    // A Redis restart (data gone): a revocation made afterwards still reaches b.
    redis.restart();
    let c2 = claims("frank");
    let t2 = hs256(&c2);
    let resp = post(a.addr, "/logout", &t2).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        get(a.addr, "/api", Some(&t2)).await.status,
        401,
        "at once on a"
    );
    let keys2 = keys_of("frank", &jti(&c2));
    let rb = b.app.revocations.clone();
    wait_until("b sees a revocation made after the restart", || {
        rb.check(&keys2, None).is_some()
    })
    .await;
    let ra = a.app.revocations.clone();
    wait_until("a has nothing pending", || ra.pending() == 0).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_paused_redis_denies_after_the_staleness_window_and_loses_nothing() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = config(&redis_store(&redis, "replica"), "");
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    let alice = hs256(&claims("alice"));
    let c = claims("bob");
    let bob = hs256(&c);
    assert_eq!(readyz(&b).await, 200);

    redis.pause();
    // Inside the window the replica serves its last known set.
    assert_eq!(get(b.addr, "/api", Some(&alice)).await.status, 200);
    // A logout while Redis is down: enforced here at once, reported pending.
    let started = Instant::now();
    let resp = post(a.addr, "/logout", &bob).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "logout waited {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("revocation-status"), Some("pending"));
    assert_eq!(get(a.addr, "/api", Some(&bob)).await.status, 401);

    // Beyond the window: 503 with Retry-After, never 401; unready.
    let bb = b.app.revocations.clone();
    wait_until("b goes stale", || !bb.available()).await;
    let resp = get(b.addr, "/api", Some(&alice)).await;
    assert_eq!(resp.status, 503);
    assert!(resp.header("retry-after").is_some());
    assert_eq!(readyz(&b).await, 503);

    redis.resume();
    wait_until("b recovers", || bb.available()).await;
    assert_eq!(readyz(&b).await, 200);
    assert_eq!(get(b.addr, "/api", Some(&alice)).await.status, 200);
    let keys = keys_of("bob", &jti(&c));
    wait_until("the pending logout reaches b", || {
        bb.check(&keys, None).is_some()
    })
    .await;
    assert_eq!(get(b.addr, "/api", Some(&bob)).await.status, 401);
    let ra = a.app.revocations.clone();
    wait_until("a has nothing pending", || ra.pending() == 0).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn per_request_mode_answers_within_the_store_timeout() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let deny = config(&redis_store(&redis, "per_request"), "");
    let allow = config(
        &redis_store(&redis, "per_request"),
        "  on_store_failure: allow\n",
    );
    let a = TestProxy::start(&deny, &up.url(), &[]).await;
    let b = TestProxy::start(&allow, &up.url(), &[]).await;
    let t = hs256(&claims("gina"));
    let revoked = hs256(&claims("hank"));
    assert_eq!(post(a.addr, "/logout", &revoked).await.status, 200);
    assert_eq!(
        get(b.addr, "/api", Some(&revoked)).await.status,
        401,
        "seen by b"
    );
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 200);

    redis.pause();
    for (proxy, want) in [(&a, 503), (&b, 200)] {
        let started = Instant::now();
        let resp = get(proxy.addr, "/api", Some(&t)).await;
        let took = started.elapsed();
        assert_eq!(resp.status, want);
        assert!(
            took < Duration::from_millis(1200),
            "request waited {took:?}"
        );
    }
    // Known locally: still 401 on b even with the store down.
    assert_eq!(get(b.addr, "/api", Some(&revoked)).await.status, 401);
    redis.resume();
    assert_eq!(get(a.addr, "/api", Some(&t)).await.status, 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_per_request_store_that_stops_answering_is_not_ready_at_once() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    // The default max_staleness (30 s) is for replicas; per-request
    // readiness follows the store's pings.
    let yaml = format!(
        "{BASIC}revocation:\n  store:\n{}    timeout: 200ms\n",
        redis_store(&redis, "per_request")
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let p = &proxy;
    wait_for("ready", || async move { readyz(p).await == 200 }).await;
    redis.pause();
    let paused = Instant::now();
    wait_for("not ready", || async move { readyz(p).await == 503 }).await;
    assert!(
        paused.elapsed() < Duration::from_secs(5),
        "{:?}",
        paused.elapsed()
    );
    redis.resume();
    wait_for("ready again", || async move { readyz(p).await == 200 }).await;
    proxy.stop().await;
}

#[tokio::test]
async fn memcached_replicas_share_revocations_and_fail_per_policy() {
    let mc = Memcached::start();
    let up = TestUpstream::start().await;
    let store = format!("    type: memcached\n    url: {}\n", mc.url());
    let a = TestProxy::start(&config(&store, ""), &up.url(), &[]).await;
    let b = TestProxy::start(&config(&store, ""), &up.url(), &[]).await;
    let t = hs256(&claims("ivan"));
    let other = hs256(&claims("ivan"));
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 200);
    let resp = post(a.addr, "/logout", &t).await;
    assert_eq!(resp.header("revocation-status"), Some("stored"));
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 401);
    assert_eq!(get(b.addr, "/api", Some(&other)).await.status, 200);
    // Purge through b reaches a's per-request lookups.
    let old = hs256(&issued_before("judy"));
    assert_eq!(
        post(b.addr, "/logout/all", &hs256(&claims("judy")))
            .await
            .status,
        204
    );
    assert_eq!(get(a.addr, "/api", Some(&old)).await.status, 401);

    mc.pause();
    let resp = get(a.addr, "/api", Some(&other)).await;
    assert_eq!(resp.status, 503);
    assert!(resp.header("retry-after").is_some());
    mc.resume();
    assert_eq!(get(a.addr, "/api", Some(&other)).await.status, 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_revocation_the_store_never_took_survives_a_proxy_restart_via_the_spool() {
    let mut redis = Redis::start();
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spooled = format!(
        "{}    path: {}\n",
        redis_store(&redis, "replica"),
        dir.path().join("spool").display()
    );
    let a = TestProxy::start(&config(&spooled, ""), &up.url(), &[]).await;
    let b = TestProxy::start(&config(&redis_store(&redis, "replica"), ""), &up.url(), &[]).await;
    let c = claims("kate");
    let t = hs256(&c);

    redis.stop();
    let resp = post(a.addr, "/logout", &t).await;
    assert_eq!(resp.header("revocation-status"), Some("pending"));
    a.stop().await;
    // In-process stand-in for the process exiting: wait until its tasks are
    // gone and the spool's file lock is free.
    let spool = dir.path().join("spool");
    wait_until("replica a released its spool", || {
        revoke_proxy::revocation::store::file::FileStore::open(&spool, Clock::system()).is_ok()
    })
    .await;
    let copy = dir.path().join("spool.copy");
    wait_until("replica a released its copy of the set", || {
        revoke_proxy::revocation::store::redis::copy::LocalCopy::open(&copy).is_ok()
    })
    .await;

    // Redis comes back empty; the restarted replica replays its spool.
    redis.restart();
    let a2 = TestProxy::start(&config(&spooled, ""), &up.url(), &[]).await;
    assert_eq!(
        get(a2.addr, "/api", Some(&t)).await.status,
        401,
        "replayed locally"
    );
    let keys = keys_of("kate", &jti(&c));
    let rb = b.app.revocations.clone();
    wait_until("the spooled logout reaches b", || {
        rb.check(&keys, None).is_some()
    })
    .await;
    assert_eq!(get(b.addr, "/api", Some(&t)).await.status, 401);
    a2.stop().await;
    b.stop().await;
}
