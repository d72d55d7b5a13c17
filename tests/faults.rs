//! Faults under load. Two proxies share one Redis — replica A (local copy +
//! change feed) and per-request B — behind a loopback relay that can delay
//! or cut every store connection. Constant load with rotating tokens runs
//! on both while tokens are revoked through A's logout route, and Redis is
//! paused, its feed connections killed, delayed past `store.timeout`, and
//! restarted (append-only file on). Then:
//!
//! - no token is accepted by either proxy later than the propagation window
//!   after its revocation was answered `stored`;
//! - no revocation is lost: once the faults end every revoked token is 401
//!   on both proxies (pending ones included, after their retry);
//! - no request waits past `store.timeout` plus a slack for the machine.
//!
//! A kernel with `sch_netem` could delay packets instead of the relay; this
//! one has none, so the relay delays each chunk it forwards.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::servers::Redis;
use support::*;

const STORE_TIMEOUT_MS: u64 = 100;
/// What a loaded two-core machine may add to a request (debug build).
const SLACK: Duration = Duration::from_millis(900);
/// A stored revocation must be enforced by every replica within this.
const WINDOW: Duration = Duration::from_millis(250);

struct Revoked {
    token: usize,
    answered: Instant,
    stored: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_store_faults_under_load() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,revoke_proxy=debug")
        .with_test_writer()
        .try_init();
    let mut redis = Redis::start_persistent();
    let relay = Relay::start(redis.port).await;
    let up = TestUpstream::start().await;
    let store = |mode: &str| {
        format!(
            "revocation:\n  on_store_failure: deny\n  max_staleness: 2s\n  store:\n    type: redis\n    url: redis://{}\n    mode: {mode}\n    timeout: {STORE_TIMEOUT_MS}ms\n",
            relay.addr
        )
    };
    let a = TestProxy::start(&format!("{BASIC}{}", store("replica")), &up.url(), &[]).await;
    let b = TestProxy::start(&format!("{BASIC}{}", store("per_request")), &up.url(), &[]).await;
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..400)
            .map(|i| hs256(&claims(&format!("user{i}"))))
            .collect(),
    );
    let revoked: Arc<Mutex<Vec<Revoked>>> = Arc::new(Mutex::new(Vec::new()));
    // (token, on A, sent, status, latency)
    type Sample = (usize, bool, Instant, u16, Duration);
    let results: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));

    // Load: 6 tasks, each rotating over the tokens on both proxies.
    let mut load = Vec::new();
    for w in 0..6usize {
        let (tokens, results, running) = (tokens.clone(), results.clone(), running.clone());
        let (pa, pb) = (a.addr, b.addr);
        load.push(tokio::spawn(async move {
            let mut i = w * 37;
            while running.load(Ordering::Relaxed) {
                i = (i + 7) % tokens.len();
                let on_a = i % 2 == 0;
                let sent = Instant::now();
                let r = get(if on_a { pa } else { pb }, "/api", Some(&tokens[i])).await;
                results
                    .lock()
                    .unwrap()
                    .push((i, on_a, sent, r.status, sent.elapsed()));
            }
        }));
    }
    // Revocations: one token every 40 ms through A's logout route.
    let revoker = {
        let (tokens, revoked, running) = (tokens.clone(), revoked.clone(), running.clone());
        let pa = a.addr;
        tokio::spawn(async move {
            let mut next = 0;
            while running.load(Ordering::Relaxed) && next < tokens.len() {
                let r = post(pa, "/logout", &tokens[next]).await;
                if r.status == 200 {
                    revoked.lock().unwrap().push(Revoked {
                        token: next,
                        answered: Instant::now(),
                        stored: r.header("revocation-status") == Some("stored"),
                    });
                }
                next += 3;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    let phase = |what: &str| eprintln!("faults: {what}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("Redis paused 1.5 s");
    redis.pause();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.resume();
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("feed connections killed");
    redis.kill_log_readers();
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("every store connection cut");
    relay.cut_all();
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("store delayed 250 ms a chunk for 1.5 s");
    relay.delay_ms.store(250, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.delay_ms.store(0, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("Redis restarted (append-only file)");
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.store(false, Ordering::Relaxed);
    let _ = revoker.await;
    for l in load {
        let _ = l.await;
    }

    // 1. Nothing accepted after the window of a stored revocation.
    let revoked = std::mem::take(&mut *revoked.lock().unwrap());
    let results = std::mem::take(&mut *results.lock().unwrap());
    let stored: std::collections::HashMap<usize, Instant> = revoked
        .iter()
        .filter(|r| r.stored)
        .map(|r| (r.token, r.answered))
        .collect();
    let mut late = Vec::new();
    let mut lag = Vec::new();
    for (token, on_a, sent, status, _) in &results {
        if let Some(at) = stored.get(token) {
            if *status == 200 && *sent > *at {
                lag.push(*sent - *at);
                if *sent > *at + WINDOW {
                    late.push((*token, *on_a, *sent - *at));
                }
            }
        }
    }
    // 2. No request waited past the store timeout plus slack.
    let slowest = results.iter().map(|r| r.4).max().unwrap_or_default();
    let count = |s: u16| results.iter().filter(|r| r.3 == s).count();
    eprintln!(
        "faults: {} requests (200: {}, 401: {}, 503: {}), {} revocations ({} stored, {} pending), \
         slowest request {slowest:?}, accepted after a stored revocation: {} (max {:?})",
        results.len(),
        count(200),
        count(401),
        count(503),
        revoked.len(),
        stored.len(),
        revoked.len() - stored.len(),
        lag.len(),
        lag.iter().max()
    );
    assert!(late.is_empty(), "accepted after the window: {late:?}");
    assert!(
        slowest <= Duration::from_millis(STORE_TIMEOUT_MS) + SLACK,
        "a request waited {slowest:?}"
    );
    assert!(
        revoked.len() > 50 && stored.len() > 20,
        "the run revoked too little"
    );
    assert!(
        revoked.len() > stored.len(),
        "no revocation ever went pending: the faults missed"
    );

    // 3. Nothing lost: once pending writes are retried, every revoked token
    //    is refused by both proxies.
    let everything = || {
        let revoked = &revoked;
        let tokens = tokens.clone();
        let (pa, pb) = (a.addr, b.addr);
        async move {
            let mut wrong = Vec::new();
            for r in revoked {
                for (name, p) in [("A", pa), ("B", pb)] {
                    let status = get(p, "/api", Some(&tokens[r.token])).await.status;
                    if status != 401 {
                        wrong.push((r.token, r.stored, name, status));
                    }
                }
            }
            wrong
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let wrong = everything().await;
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "revocations lost: {wrong:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Positive control: a token never revoked still passes on both.
    let never = 1; // only every third token is ever revoked
    for p in [a.addr, b.addr] {
        let r = get(p, "/api", Some(&tokens[never])).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    a.stop().await;
    b.stop().await;
}

/// A revocation whose caller stops waiting for the store (its client went
/// away) stays pending and is stored once the store answers again.
#[tokio::test]
async fn a_revocation_whose_caller_stops_waiting_is_still_stored() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let store = format!(
        "revocation:\n  store:\n    type: redis\n    url: {}\n    mode: per_request\n    timeout: 3s\n",
        redis.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spooled = format!("{store}    path: {}\n", spool.display());
    let a = TestProxy::start(&format!("{BASIC}{spooled}"), &up.url(), &[]).await;
    let token = hs256(&claims("frank"));
    let v = a.app.verifier.verify_uncached(&token, now()).unwrap();
    redis.pause();
    let write = a
        .app
        .revocations
        .revoke_token(v.subject.clone(), v.token_id.clone(), v.exp, None);
    // The caller gives up long before the store's 3 s timeout.
    assert!(tokio::time::timeout(Duration::from_millis(150), write)
        .await
        .is_err());
    assert_eq!(a.app.revocations.pending(), 1, "kept for the retry loop");
    // …and journaled in `store.path`, so a crash before the retry loses
    // nothing: a proxy that stops now (the store still away) leaves it there.
    a.stop().await;
    let journal = &spool;
    wait_for(
        "the write journaled and the spool released",
        || async move {
            use revoke_proxy::revocation::store::{file::FileStore, Store as _};
            match FileStore::open(journal, revoke_proxy::revocation::Clock::system()) {
                Ok(s) => s.load().await.is_ok_and(|entries| entries.len() == 1),
                Err(_) => false,
            }
        },
    )
    .await;
    // The store is back; the restarted proxy replays its journal and
    // stores what it held.
    redis.resume();
    let a = TestProxy::start(&format!("{BASIC}{spooled}"), &up.url(), &[]).await;
    assert!(
        a.app.revocations.check(&v.keys, None).is_some(),
        "enforced again from the spool"
    );
    let revocations = a.app.revocations.clone();
    wait_until("the pending revocation stored", move || {
        revocations.pending() == 0
    })
    .await;
    // Another replica that reads the store per request sees it.
    let b = TestProxy::start(&format!("{BASIC}{store}"), &up.url(), &[]).await;
    assert_eq!(get(b.addr, "/api", Some(&token)).await.status, 401);
    b.stop().await;
    a.stop().await;
}
