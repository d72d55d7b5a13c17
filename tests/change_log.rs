//! The redis change log under the events a fleet sees: a cut feed, a Redis
//! restart with its append-only file, a Redis that comes back empty, a
//! failover to a promoted replica, and a log trimmed past a replica's
//! position. After each, every revocation made before and during the event
//! is enforced by every replica; where the log allows it, catching up costs
//! what was missed (no `SCAN`, no full load), counted from Redis's own
//! `INFO commandstats`.

mod support;

use revoke_proxy::claims::{ClaimValue, KeyHashes};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::relay::Relay;
use support::servers::Redis;
use support::*;

fn config(url: &str) -> String {
    format!(
        "{BASIC}revocation:\n  max_staleness: 2s\n  store:\n    type: redis\n    url: {url}\n    \
         timeout: 300ms\n"
    )
}

struct Revoked {
    token: String,
    keys: KeyHashes,
}

/// Logs `sub` out through `via`; the revocation is at least held locally.
async fn revoke(via: &TestProxy, sub: &str) -> Revoked {
    let c = claims(sub);
    let token = hs256(&c);
    let resp = post(via.addr, "/logout", &token).await;
    assert_eq!(
        resp.status,
        200,
        "logout of {sub}: {:?} available {} lag {:?}",
        resp.body,
        via.app.revocations.available(),
        via.app.revocations.sync_lag()
    );
    let jti = c["jti"].as_str().unwrap().to_string();
    Revoked {
        token,
        keys: KeyHashes::new(&ClaimValue::Str(sub.into()), &ClaimValue::Str(jti.into())),
    }
}

async fn revoke_many(via: &TestProxy, prefix: &str, n: usize) -> Vec<Revoked> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(revoke(via, &format!("{prefix}-{i}")).await);
    }
    out
}

/// Every replica enforces every revocation: locally, and on a request.
async fn enforced_everywhere(replicas: &[&TestProxy], revoked: &[Revoked]) {
    for (i, p) in replicas.iter().enumerate() {
        let r = p.app.revocations.clone();
        for rv in revoked {
            let keys = rv.keys;
            let r = r.clone();
            wait_until(&format!("replica {i} enforces"), move || {
                r.check(&keys, None).is_some()
            })
            .await;
        }
        wait_until(&format!("replica {i} ready"), || {
            p.app.revocations.available()
        })
        .await;
        for rv in revoked.iter().take(3) {
            assert_eq!(get(p.addr, "/api", Some(&rv.token)).await.status, 401);
        }
    }
}

/// `(reason, count)` of a replica's full loads.
fn full_loads(p: &TestProxy) -> Vec<(&'static str, u64)> {
    p.app
        .revocations
        .sync
        .full_loads()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// An upstream and two replicas on the store at `url`; `n` revocations made
/// through the first and enforced by both.
async fn two_replicas(
    url: &str,
    n: usize,
) -> (TestUpstream, String, TestProxy, TestProxy, Vec<Revoked>) {
    let up = TestUpstream::start().await;
    let yaml = config(url);
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    let revoked = revoke_many(&a, "before", n).await;
    enforced_everywhere(&[&a, &b], &revoked).await;
    (up, yaml, a, b, revoked)
}

#[tokio::test]
async fn a_cut_feed_catches_up_with_only_what_it_missed() {
    let redis = Redis::start();
    let (_up, _yaml, a, b, mut revoked) = two_replicas(&redis.url(), 50).await;
    let scans = redis.calls("scan");
    let gets = redis.calls("get");
    let read_before = b.app.revocations.sync.log_entries();

    let killed = redis.kill_log_readers();
    assert!(killed >= 2, "killed {killed}");
    revoked.extend(revoke_many(&a, "during", 20).await);
    enforced_everywhere(&[&a, &b], &revoked).await;

    assert_eq!(redis.calls("scan"), scans, "no full load after a cut");
    assert_eq!(full_loads(&b), vec![("start", 1)]);
    let read = b.app.revocations.sync.log_entries() - read_before;
    assert!(read >= 20, "b read {read} log entries");
    // GETs during the catch-up: the writes' own (one per script run) and
    // the requests' nothing; no per-key reload.
    let extra_gets = redis.calls("get") - gets;
    assert!(
        extra_gets <= 20 + 5,
        "{extra_gets} GETs for 20 missed entries"
    );
    let lag = &b.app.revocations.sync.propagation_lag;
    assert!(lag.count() >= 70, "lag observed {} times", lag.count());
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_redis_restart_with_its_aof_is_read_on_from_the_position() {
    let mut redis = Redis::start_persistent();
    let (up, yaml, a, b, mut revoked) = two_replicas(&redis.url(), 10).await;

    redis.restart();
    revoked.extend(revoke_many(&a, "after", 10).await);
    enforced_everywhere(&[&a, &b], &revoked).await;
    // Redis's command counts start again at its restart: nothing scanned.
    assert_eq!(redis.calls("scan"), 0, "no full load after an AOF restart");
    assert_eq!(full_loads(&a), vec![("start", 1)]);
    assert_eq!(full_loads(&b), vec![("start", 1)]);
    // A replica starting now finds all of it in Redis.
    let c = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&c], &revoked).await;
    for p in [a, b, c] {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_redis_that_comes_back_empty_is_detected_and_loaded_again() {
    let mut redis = Redis::start();
    let (up, yaml, a, b, mut revoked) = two_replicas(&redis.url(), 10).await;

    redis.restart();
    revoked.extend(revoke_many(&a, "after", 10).await);
    // Kept locally by both, and the new ones reach b through the new log.
    enforced_everywhere(&[&a, &b], &revoked).await;
    for p in [&a, &b] {
        let loads = full_loads(p);
        assert!(loads.contains(&("new_epoch", 1)), "{loads:?}");
    }
    // Redis was given back what the replicas had seen in the last minute
    // (no local copy here): a replica starting now enforces the revocations
    // made before Redis lost them, and so does a per-request reader.
    let given = a.app.revocations.sync.given_back();
    assert!(given[0].1 >= 10, "{given:?}");
    assert_eq!(given[1].1, 0, "{given:?}");
    let c = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&c], &revoked).await;
    let per_request = yaml.replace("type: redis", "type: redis\n    mode: per_request");
    let d = TestProxy::start(&per_request, &up.url(), &[]).await;
    for rv in &revoked {
        assert_eq!(get(d.addr, "/api", Some(&rv.token)).await.status, 401);
    }
    for p in [a, b, c, d] {
        p.stop().await;
    }
}

/// `config` with `store.path` in `dir`: the spool, and beside it the copy.
fn config_with_copy(url: &str, dir: &std::path::Path) -> String {
    format!(
        "{}    path: {}\n",
        config(url),
        dir.join("revocations").display()
    )
}

/// Waits until a stopped in-process replica has let go of its copy's lock
/// (its tasks end within a log read).
async fn released(dir: &std::path::Path) {
    let copy = dir.join("revocations.copy");
    wait_until("the stopped replica released its copy", || {
        revoke_proxy::revocation::store::redis::copy::LocalCopy::open(&copy).is_ok()
    })
    .await;
    let spool = dir.join("revocations");
    wait_until("the stopped replica released its spool", || {
        revoke_proxy::revocation::store::file::FileStore::open(
            &spool,
            revoke_proxy::revocation::clock::Clock::system(),
        )
        .is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_redis_emptied_while_its_replicas_were_down_is_given_back_their_copy() {
    let mut redis = Redis::start();
    let up = TestUpstream::start().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let yamls: Vec<String> = dirs
        .iter()
        .map(|d| config_with_copy(&redis.url(), d.path()))
        .collect();
    let a = TestProxy::start(&yamls[0], &up.url(), &[]).await;
    let b = TestProxy::start(&yamls[1], &up.url(), &[]).await;
    let revoked = revoke_many(&a, "before", 30).await;
    enforced_everywhere(&[&a, &b], &revoked).await;
    a.stop().await;
    b.stop().await;
    for d in &dirs {
        released(d.path()).await;
    }

    // Redis comes back empty while both replicas are down; both restart.
    redis.restart();
    let a = TestProxy::start(&yamls[0], &up.url(), &[]).await;
    let b = TestProxy::start(&yamls[1], &up.url(), &[]).await;
    enforced_everywhere(&[&a, &b], &revoked).await;
    // One replica (the lease holder) wrote its copy back; nothing was in
    // either's last minute (new processes).
    let from_copy: u64 = [&a, &b]
        .iter()
        .map(|p| p.app.revocations.sync.given_back()[1].1)
        .sum();
    assert_eq!(from_copy, 30, "written back once, by one replica");
    let (evalsha, eval) = (redis.calls("evalsha"), redis.calls("eval"));
    assert!(evalsha + eval <= 30 + 5, "{evalsha} EVALSHA, {eval} EVAL");
    // A replica with no copy starting now finds all of it in Redis.
    let c = TestProxy::start(&config(&redis.url()), &up.url(), &[]).await;
    enforced_everywhere(&[&c], &revoked).await;
    // The copies now belong to the new log: a second restart writes
    // nothing back.
    a.stop().await;
    released(dirs[0].path()).await;
    let a = TestProxy::start(&yamls[0], &up.url(), &[]).await;
    enforced_everywhere(&[&a], &revoked).await;
    assert_eq!(a.app.revocations.sync.given_back()[1].1, 0);
    for p in [a, b, c] {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_failover_to_a_promoted_replica_loses_nothing() {
    let primary = Redis::start();
    let replica = Redis::start_replica_of(&primary);
    let relay = Relay::start(primary.port).await;
    let (up, yaml, a, b, mut revoked) = two_replicas(&relay.url(), 10).await;
    // The replica has caught up.
    let log = "revoke-proxy:{log}";
    wait_until("the Redis replica has the log", || {
        replica.cli(&["XLEN", log]) == primary.cli(&["XLEN", log])
    })
    .await;

    replica.cli(&["REPLICAOF", "NO", "ONE"]);
    relay.point_at(replica.port);
    relay.cut_all();
    revoked.extend(revoke_many(&a, "after", 10).await);
    enforced_everywhere(&[&a, &b], &revoked).await;
    assert_eq!(replica.calls("scan"), 0, "read on from the position");
    // A replica starting after the failover sees everything.
    let c = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&c], &revoked).await;
    for p in [a, b, c] {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_log_trimmed_past_a_replicas_position_makes_it_load_again() {
    let redis = Redis::start();
    let relay = Relay::start(redis.port).await;
    let up = TestUpstream::start().await;
    let a = TestProxy::start(&config(&redis.url()), &up.url(), &[]).await;
    let b = TestProxy::start(&config(&relay.url()), &up.url(), &[]).await;
    let mut revoked = revoke_many(&a, "before", 5).await;
    enforced_everywhere(&[&a, &b], &revoked).await;

    // b is cut off; meanwhile revocations are made and the log is trimmed.
    relay.refuse.store(true, Ordering::Relaxed);
    relay.cut_all();
    revoked.extend(revoke_many(&a, "away", 5).await);
    redis.cli(&["XTRIM", "revoke-proxy:{log}", "MAXLEN", "0"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.refuse.store(false, Ordering::Relaxed);
    enforced_everywhere(&[&a, &b], &revoked).await;
    let loads = full_loads(&b);
    assert!(loads.contains(&("trimmed", 1)), "{loads:?}");
    assert_eq!(full_loads(&a), vec![("start", 1)]);
    a.stop().await;
    b.stop().await;
}

/// `n` token revocations written as a backend would: `SET` plus the log entry.
fn backend_writes(redis: &Redis, prefix: &str, n: usize) -> Vec<(String, String)> {
    let until = (now() + 3600).to_string();
    let mut commands = Vec::new();
    let mut written = Vec::new();
    for i in 0..n {
        let (sub, jti) = (format!("{prefix}{i}"), format!("j{i}"));
        let key = format!("revoke-proxy:t:s{sub}:s{jti}");
        commands.push(vec![
            "SET".into(),
            key.clone(),
            until.clone(),
            "EXAT".into(),
            until.clone(),
        ]);
        commands.push(vec![
            "XADD".into(),
            "revoke-proxy:{log}".into(),
            "*".into(),
            "k".into(),
            key,
            "v".into(),
            until.clone(),
            "t".into(),
            "0".into(),
        ]);
        written.push((sub, jti));
    }
    redis.pipe(&commands);
    written
}

fn holds(p: &TestProxy, sub: &str, jti: &str) -> bool {
    let keys = KeyHashes::new(&ClaimValue::Str(sub.into()), &ClaimValue::Str(jti.into()));
    p.app.revocations.check(&keys, None).is_some()
}

fn manifest(redis: &Redis) -> String {
    redis
        .cli(&["GET", "revoke-proxy:{log}snap"])
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_new_replica_starts_from_the_snapshot_and_the_logs_tail() {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = config(&redis.url());
    let first = backend_writes(&redis, "bulk", 12_000);
    // a scans the keys; the set is large, so it writes the first snapshot.
    let a = TestProxy::start(&yaml, &up.url(), &[]).await;
    assert!(holds(&a, "bulk11999", "j11999"));
    wait_until("the first snapshot", || manifest(&redis).starts_with("v1 ")).await;
    let m1 = manifest(&redis);
    assert!(m1.contains(" 12000 "), "{m1}");
    // Written after the snapshot: only in the log's tail.
    let tail = revoke_many(&a, "tail", 5).await;

    redis.cli(&["CONFIG", "RESETSTAT"]);
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&b], &tail).await;
    for (sub, jti) in first.iter().step_by(997) {
        assert!(holds(&b, sub, jti), "{sub} from the snapshot");
    }
    assert_eq!(redis.calls("scan"), 0, "no key scan at start-up");
    let gets = redis.calls("get");
    assert!(gets <= 10, "{gets} GETs: the manifest and a few parts");
    let by_source = b.app.revocations.sync.full_loads_by_source();
    assert!(
        by_source.contains(&("start", "snapshot", 1)),
        "{by_source:?}"
    );

    // 10,000 more log entries: the next snapshot merges them into the old
    // one (no scan), and a replica started after it needs neither.
    let second = backend_writes(&redis, "more", 10_000);
    redis.cli(&["CONFIG", "RESETSTAT"]);
    wait_until("a merged snapshot", || {
        let m = manifest(&redis);
        m != m1 && m.starts_with("v1 ")
    })
    .await;
    assert_eq!(redis.calls("scan"), 0, "merged, not scanned");
    let c = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&c], &tail).await;
    for (sub, jti) in first.iter().chain(&second).step_by(991) {
        assert!(holds(&c, sub, jti), "{sub} in the merged snapshot");
    }
    assert_eq!(redis.calls("scan"), 0);
    for p in [a, b, c] {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_cluster_flushed_under_its_replicas_is_given_back_their_copy() {
    let cluster = support::servers::RedisCluster::start();
    let up = TestUpstream::start().await;
    let list: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!(
        "{BASIC}revocation:\n  max_staleness: 2s\n  store:\n    type: redis\n    \
         cluster: [{}]\n    timeout: 300ms\n",
        list.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let with_copy = format!(
        "{yaml}    path: {}\n",
        dir.path().join("revocations").display()
    );
    let a = TestProxy::start(&with_copy, &up.url(), &[]).await;
    let b = TestProxy::start(&yaml, &up.url(), &[]).await;
    let revoked = revoke_many(&a, "before", 20).await;
    enforced_everywhere(&[&a, &b], &revoked).await;

    // Every master loses everything (the epoch too) under live connections:
    // the replicas notice at their next check of the log.
    for n in &cluster.nodes {
        n.cli(&["FLUSHALL"]);
    }
    // The check runs every 10 s: allow two of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while a.app.revocations.sync.given_back()[1].1 < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never gave its copy back: {:?}",
            a.app.revocations.sync.given_back()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = TestProxy::start(&yaml, &up.url(), &[]).await;
    enforced_everywhere(&[&a, &b, &c], &revoked).await;
    for p in [a, b, c] {
        p.stop().await;
    }
}
