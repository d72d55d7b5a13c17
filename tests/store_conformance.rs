//! Every store passes the same conformance suite (`support/conformance.rs`).

mod support;

use revoke_proxy::revocation::store::file::FileStore;
use revoke_proxy::revocation::store::BoxFuture;
use revoke_proxy::revocation::{Clock, Lifetimes, Revocations};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::conformance::{self, Backing};
use support::servers::{Memcached, Redis, RedisCluster, TlsFiles};

const LIFETIMES: Lifetimes = Lifetimes {
    max_token: 3600,
    leeway: 5,
};

struct Memory;

impl Backing for Memory {
    fn durable(&self) -> bool {
        false
    }
    fn open(&self, clock: Clock) -> BoxFuture<'_, Arc<Revocations>> {
        Box::pin(async move { Revocations::new(None, LIFETIMES, Duration::from_secs(1), clock) })
    }
}

struct File(PathBuf);

impl Backing for File {
    fn durable(&self) -> bool {
        true
    }
    fn open(&self, clock: Clock) -> BoxFuture<'_, Arc<Revocations>> {
        Box::pin(async move {
            let store = FileStore::open(&self.0, clock.clone()).expect("file store opens");
            let r = Revocations::new(
                Some(Arc::new(store)),
                LIFETIMES,
                Duration::from_secs(5),
                clock,
            );
            r.load().await.expect("file store loads");
            r
        })
    }
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&Memory).await;
}

#[tokio::test]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&File(dir.path().join("revocations"))).await;
}

#[tokio::test]
async fn file_store_refuses_a_second_process_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revocations");
    let first = FileStore::open(&path, Clock::system()).unwrap();
    let second = FileStore::open(&path, Clock::system());
    assert!(second.is_err(), "the log is locked while open");
    drop(first);
    assert!(
        FileStore::open(&path, Clock::system()).is_ok(),
        "and free once closed"
    );
}

/// A shared store described by its `store:` YAML, opened through the same
/// config path as the proxy; each `open` is a new replica.
struct Shared(String);

impl Backing for Shared {
    fn durable(&self) -> bool {
        true
    }
    fn shared(&self) -> bool {
        true
    }
    fn open(&self, clock: Clock) -> BoxFuture<'_, Arc<Revocations>> {
        Box::pin(async move { open_shared(&self.0, clock).await })
    }
}

async fn open_shared(store_yaml: &str, clock: Clock) -> Arc<Revocations> {
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: ${{UPSTREAM}}\njwt:\n  algorithms: [HS256]\n  secret: ${{SECRET}}\n  leeway: 5s\nrevocation:\n  max_token_lifetime: 1h\n  store:\n{store_yaml}"
    );
    let settings = support::parse_settings(&yaml, "http://127.0.0.1:9", &[]);
    let r = Revocations::open(&settings.revocation, settings.jwt.leeway, clock)
        .await
        .expect("shared store opens");
    support::wait_until("store synced", || r.available()).await;
    r
}

#[tokio::test]
async fn redis_replica_store_conforms() {
    let redis = Redis::start();
    let yaml = format!("    type: redis\n    url: {}\n", redis.url());
    conformance::run(&Shared(yaml)).await;
}

#[tokio::test]
async fn redis_per_request_store_conforms() {
    let redis = Redis::start();
    let yaml = format!(
        "    type: redis\n    url: {}/3\n    mode: per_request\n    key_prefix: \"app:{{x}}*:\"\n",
        redis.url()
    );
    conformance::run(&Shared(yaml)).await;
}

#[tokio::test]
async fn redis_tls_store_conforms() {
    let tls = TlsFiles::generate();
    let redis = Redis::start_tls(&tls);
    let yaml = format!(
        "    type: redis\n    url: {}\n    ca_file: {}\n",
        redis.tls_url(),
        tls.ca.display()
    );
    conformance::run(&Shared(yaml)).await;
}

#[tokio::test]
async fn redis_tls_refuses_an_untrusted_server() {
    let tls = TlsFiles::generate();
    let other = TlsFiles::generate();
    let redis = Redis::start_tls(&tls);
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\njwt:\n  algorithms: [HS256]\n  secret: ${{SECRET}}\nrevocation:\n  store:\n    type: redis\n    url: {}\n    ca_file: {}\n",
        redis.tls_url(),
        other.ca.display()
    );
    let settings = support::parse_settings(&yaml, "http://127.0.0.1:9", &[]);
    let r = Revocations::open(&settings.revocation, settings.jwt.leeway, Clock::system())
        .await
        .expect("opens lazily");
    // Positive control, opened after it: the right CA syncs...
    let right = yaml.replace(
        &other.ca.display().to_string(),
        &tls.ca.display().to_string(),
    );
    let right = support::parse_settings(&right, "http://127.0.0.1:9", &[]);
    let ok = Revocations::open(&right.revocation, right.jwt.leeway, Clock::system())
        .await
        .expect("opens");
    support::wait_until("the trusted server syncs", || ok.available()).await;
    // ...while the untrusted one, which had longer, never does.
    assert!(
        !r.available(),
        "a server signed by another CA is never trusted"
    );
}

#[tokio::test]
async fn redis_cluster_store_conforms() {
    let cluster = RedisCluster::start();
    let list: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let yaml = format!("    type: redis\n    cluster: [{}]\n", list.join(", "));
    conformance::run(&Shared(yaml)).await;
}

#[tokio::test]
async fn memcached_store_conforms() {
    let mc = Memcached::start();
    let yaml = format!("    type: memcached\n    url: {}\n", mc.url());
    conformance::run(&Shared(yaml)).await;
}

#[tokio::test]
async fn redis_acl_user_from_the_url_and_password_from_the_environment() {
    let redis = Redis::start();
    // A user limited to revoke-proxy's keys and channel.
    let out = redis.cli(&[
        "ACL",
        "SETUSER",
        "proxy",
        "on",
        ">proxy-pass-123",
        "~revoke-proxy:*",
        "&revoke-proxy:*",
        "+@all",
        "-@dangerous",
        "+info",
    ]);
    assert!(out.contains("OK"), "{out}");
    redis.cli(&["CONFIG", "SET", "requirepass", "default-pass-456"]);
    let url = format!("redis://proxy:${{REDIS_PASSWORD}}@127.0.0.1:{}", redis.port);
    let yaml = |pw: &str| {
        format!(
            "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\njwt:\n  algorithms: [HS256]\n  secret: ${{SECRET}}\nrevocation:\n  store:\n    type: redis\n    url: {}\n",
            url.replace("${REDIS_PASSWORD}", pw)
        )
    };
    let settings = support::parse_settings(
        &format!(
            "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\njwt:\n  algorithms: [HS256]\n  secret: ${{SECRET}}\nrevocation:\n  store:\n    type: redis\n    url: {url}\n"
        ),
        "http://127.0.0.1:9",
        &[("REDIS_PASSWORD", "proxy-pass-123".to_string())],
    );
    assert!(
        !settings.describe().contains("proxy-pass-123"),
        "password masked"
    );
    // The wrong password first: it has longer to sync than the right one.
    let wrong = support::parse_settings(&yaml("not-the-password"), "http://127.0.0.1:9", &[]);
    let w = Revocations::open(&wrong.revocation, wrong.jwt.leeway, Clock::system())
        .await
        .unwrap();
    let r = Revocations::open(&settings.revocation, settings.jwt.leeway, Clock::system())
        .await
        .unwrap();
    support::wait_until("ACL user syncs", || r.available()).await;
    assert!(!w.available(), "a wrong password never syncs");
    let sub = revoke_proxy::claims::ClaimValue::Str("acl".into());
    let status = r
        .revoke_token(sub.clone(), sub.clone(), None, Some(60))
        .await;
    assert_eq!(status, revoke_proxy::revocation::WriteStatus::Stored);
    assert!(!w.available(), "still not synced");
}
