//! Shared-store figures for SPEC §7, against a real `redis-server` started
//! here on a free loopback port:
//!
//! 1. propagation: revoke on replica A, time until replica B enforces it
//!    (p50/p99/max over many revocations);
//! 2. 1,000,000 live revocations: time for a fresh `revoke-proxy` process to
//!    load them and report ready, and its RSS afterwards (against an idle
//!    memory-store process).
//!
//! Run: `cargo bench --bench shared_store` (REVOCATIONS=… to change the size).

use revoke_proxy::claims::{ClaimValue, KeyHashes};
use revoke_proxy::config::Settings;
use revoke_proxy::revocation::{Clock, Revocations};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROPAGATIONS: usize = 1000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_port(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..500 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on {port}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn settings(yaml: &str) -> Settings {
    Settings::parse(yaml, Path::new("."), &|_: &str| None).expect("bench config is valid")
}

fn store_yaml(port: u16) -> String {
    format!(
        "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\njwt:\n  algorithms: [HS256]\n  secret: bench-secret-0123456789-0123456789\nrevocation:\n  store:\n    type: redis\n    url: redis://127.0.0.1:{port}\n"
    )
}

async fn replica(port: u16) -> Arc<Revocations> {
    let s = settings(&store_yaml(port));
    let r = Revocations::open(&s.revocation, s.jwt.leeway, Clock::system())
        .await
        .expect("replica opens");
    for _ in 0..1000 {
        if r.available() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("replica never synced");
}

async fn propagation(port: u16) {
    let a = replica(port).await;
    let b = replica(port).await;
    let mut lags = Vec::with_capacity(PROPAGATIONS);
    for i in 0..PROPAGATIONS {
        let sub = ClaimValue::Str(format!("prop-{i}").into());
        let jti = ClaimValue::Str("j".into());
        let keys = KeyHashes::new(&sub, &jti);
        let started = Instant::now();
        a.revoke_token(
            sub,
            jti,
            Some(revoke_proxy::revocation::clock::unix_now() + 600),
            None,
        )
        .await;
        while b.check(&keys, None).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never propagated"
            );
            tokio::task::yield_now().await;
        }
        lags.push(started.elapsed());
    }
    lags.sort();
    let at = |q: usize| lags[(lags.len() * q / 100).min(lags.len() - 1)];
    println!(
        "propagation A -> B over {PROPAGATIONS} revocations: p50 {:?}  p99 {:?}  max {:?}  (SPEC: p99 <= 50 ms)",
        at(50),
        at(99),
        lags[lags.len() - 1]
    );
}

async fn fill(port: u16, n: usize) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let until = revoke_proxy::revocation::clock::unix_now() + 3600;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut pipe = redis::pipe();
        for j in i..(i + 10_000).min(n) {
            pipe.cmd("SET")
                .arg(format!("revoke-proxy:t:suser-{}:sjti-{j}", j % 50_000))
                .arg(until)
                .arg("EXAT")
                .arg(until)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("fill");
        i += 10_000;
    }
    println!(
        "filled {n} revocations into redis in {:?}",
        started.elapsed()
    );
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split(' ').nth(1)?.parse().ok()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts the real binary with `store` and returns (process, time to ready).
fn start_proxy(dir: &Path, name: &str, store: &str) -> (Killed, Duration) {
    let admin = free_port();
    let yaml = format!(
        "listen: 127.0.0.1:{}\nupstream: http://127.0.0.1:9\njwt:\n  algorithms: [HS256]\n  secret: bench-secret-0123456789-0123456789\nadmin:\n  listen: 127.0.0.1:{admin}\nlog:\n  level: warn\n{store}",
        free_port()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write config");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_revoke-proxy"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start revoke-proxy");
    let child = Killed(child);
    while http_status(admin, "/readyz") != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} never ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, started.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it briefly.
    let quick = std::env::args().all(|a| a != "--bench");
    let n: usize = std::env::var("REVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 10_000 } else { 1_000_000 });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let redis = Killed(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (install it: apt-get install redis-server)"),
    );
    wait_port(port);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(propagation(port));
    rt.block_on(fill(port, n));

    let (idle, idle_ready) = start_proxy(dir.path(), "memory", "");
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "memory store, idle: ready in {idle_ready:?}, RSS {} KiB (SPEC: <= 15 MB)",
        rss_kb(idle.0.id())
    );
    let store =
        format!("revocation:\n  store:\n    type: redis\n    url: redis://127.0.0.1:{port}\n");
    let (loaded, ready) = start_proxy(dir.path(), "redis", &store);
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "redis replica with {n} live revocations: ready in {ready:?} (SPEC: <= 5 s), RSS {} KiB (SPEC: <= 150 MB)",
        rss_kb(loaded.0.id())
    );
    drop(loaded);
    drop(idle);
    drop(redis);
}
