//! Every store passes the same conformance suite (`support/conformance.rs`).

mod support;

use revoke_proxy::revocation::store::file::FileStore;
use revoke_proxy::revocation::store::BoxFuture;
use revoke_proxy::revocation::{Clock, Lifetimes, Revocations};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::conformance::{self, Backing};

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
