//! Bodies are streamed through the proxy in both directions, never buffered
//! whole: each test holds back the second half of a body until the first half
//! has been seen on the far side, so a buffering proxy would time out.

mod support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const STEP: Duration = Duration::from_secs(5);

/// An upstream that streams: `GET` answers with a body fed by a sender it
/// hands to the test; `POST` reports each request-body chunk as it arrives.
struct DripUpstream {
    addr: SocketAddr,
    senders: mpsc::Receiver<Sender<Bytes>>,
    chunks: mpsc::Receiver<Bytes>,
}

async fn drip_upstream() -> DripUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender_tx, senders) = mpsc::channel(4);
    let (chunk_tx, chunks) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sender_tx = sender_tx.clone();
            let chunk_tx = chunk_tx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let sender_tx = sender_tx.clone();
                let chunk_tx = chunk_tx.clone();
                async move {
                    if req.method() == http::Method::POST {
                        let mut body = req.into_body();
                        let mut total = 0;
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data() {
                                total += data.len();
                                let _ = chunk_tx.send(data).await;
                            }
                        }
                        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
                        let _ = tx.send_data(Bytes::from(format!("got {total}"))).await;
                        return Ok::<_, Infallible>(Response::new(body));
                    }
                    let (tx, body) = Channel::<Bytes, Infallible>::new(1);
                    let _ = sender_tx.send(tx).await;
                    Ok(Response::new(body))
                }
            });
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned(),
            );
        }
    });
    DripUpstream {
        addr,
        senders,
        chunks,
    }
}

async fn proxy_for(up: &DripUpstream) -> TestProxy {
    TestProxy::start(BASIC, &format!("http://{}", up.addr), &[]).await
}

#[tokio::test]
async fn response_body_reaches_the_client_before_the_upstream_finishes() {
    let mut up = drip_upstream().await;
    let proxy = proxy_for(&up).await;
    let token = hs256(&claims("alice"));
    let req = Request::get(proxy.url("/download"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let client: Client<HttpConnector, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let pending = tokio::spawn(client.request(req));
    let mut tx = tokio::time::timeout(STEP, up.senders.recv())
        .await
        .expect("upstream saw the request")
        .unwrap();
    tx.send_data(Bytes::from_static(b"first half;"))
        .await
        .unwrap();
    let resp = tokio::time::timeout(STEP, pending)
        .await
        .expect("response head arrives while the upstream is still sending")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(STEP, body.frame())
        .await
        .expect("first chunk arrives before the upstream finishes")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first half;");
    tx.send_data(Bytes::from_static(b"second half"))
        .await
        .unwrap();
    drop(tx);
    let rest = tokio::time::timeout(STEP, body.collect())
        .await
        .expect("rest arrives")
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"second half");
    proxy.stop().await;
}

#[tokio::test]
async fn request_body_reaches_the_upstream_before_the_client_finishes() {
    let mut up = drip_upstream().await;
    let proxy = proxy_for(&up).await;
    let token = hs256(&claims("alice"));
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
    let req = Request::post(proxy.url("/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .unwrap();
    let client: Client<HttpConnector, Channel<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let pending = tokio::spawn(client.request(req));
    tx.send(Frame::data(Bytes::from_static(b"chunk-one")))
        .await
        .unwrap();
    let seen = tokio::time::timeout(STEP, up.chunks.recv())
        .await
        .expect("upstream receives the first chunk while the client still sends")
        .unwrap();
    assert_eq!(&seen[..], b"chunk-one");
    tx.send(Frame::data(Bytes::from_static(b"chunk-two")))
        .await
        .unwrap();
    drop(tx);
    let resp = tokio::time::timeout(STEP, pending)
        .await
        .expect("response")
        .unwrap()
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"got 18");
    proxy.stop().await;
}
