//! TLS in (HTTP/1.1 and h2 by ALPN, certificate rotation without dropping
//! connections, a bad new file keeps the old certificate, bad files at start
//! are a clear error) and TLS out (`https://` upstreams with a CA file).

mod support;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use revoke_proxy::tls::{acceptor, client_config, CertReloader};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::servers::TlsFiles;
use support::*;
use tokio::net::TcpListener;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn https_client(ca: &Path, h2: bool) -> HttpsClient {
    // The connector builder sets ALPN (h2 or http/1.1) itself.
    let config = client_config(Some(ca)).unwrap();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut b = Client::builder(TokioExecutor::new());
    if h2 {
        b.http2_only(true);
    }
    b.build(connector)
}

/// GET over HTTPS; `Err` when the connection or handshake fails.
async fn https_get(
    client: &HttpsClient,
    addr: SocketAddr,
    token: &str,
) -> Result<(u16, Version, String), String> {
    let req = Request::get(format!("https://localhost:{}/api", addr.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.version,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

fn tls_config(cert: &Path, key: &Path) -> String {
    format!(
        "{BASIC}tls:\n  cert_file: {}\n  key_file: {}\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test]
async fn serves_https_with_alpn_and_rotates_certificates_without_dropping_connections() {
    let up = TestUpstream::start().await;
    let first = TlsFiles::generate();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let proxy = TestProxy::start(&tls_config(&cert, &key), &up.url(), &[]).await;
    let token = hs256(&claims("alice"));

    let h1 = https_client(&first.ca, false);
    let (status, version, _) = https_get(&h1, proxy.addr, &token).await.unwrap();
    assert_eq!((status, version), (200, Version::HTTP_11));
    assert_eq!(up.last().headers.get("x-forwarded-proto").unwrap(), "https");
    let h2 = https_client(&first.ca, true);
    let (status, version, _) = https_get(&h2, proxy.addr, &token).await.unwrap();
    assert_eq!((status, version), (200, Version::HTTP_2));
    assert_eq!(https_get(&h1, proxy.addr, "junk").await.unwrap().0, 401);

    // cert-manager style rotation: new files, signed by a new CA.
    let second = TlsFiles::generate();
    std::fs::copy(&second.key, &key).unwrap();
    std::fs::copy(&second.cert, &cert).unwrap();
    let fresh = https_client(&second.ca, false);
    wait_for("the new certificate is served", || async {
        https_get(&https_client(&second.ca, false), proxy.addr, &token)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(https_get(&fresh, proxy.addr, &token).await.unwrap().0, 200);
    // Connections opened before the rotation keep working.
    assert_eq!(
        https_get(&h1, proxy.addr, &token).await.unwrap().0,
        200,
        "h1 kept"
    );
    assert_eq!(
        https_get(&h2, proxy.addr, &token).await.unwrap().0,
        200,
        "h2 kept"
    );
    // A client trusting only the old CA cannot open a new connection.
    assert!(
        https_get(&https_client(&first.ca, false), proxy.addr, &token)
            .await
            .is_err()
    );

    // A bad new file: the previous certificate stays in service.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n").unwrap();
    tokio::time::sleep(revoke_proxy::tls::RELOAD_POLL * 2).await;
    let (status, _, _) = https_get(&https_client(&second.ca, false), proxy.addr, &token)
        .await
        .expect("still served with the second certificate");
    assert_eq!(status, 200);
    proxy.stop().await;
}

#[tokio::test]
async fn missing_or_bad_certificate_files_are_a_clear_startup_error() {
    let files = TlsFiles::generate();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    for (cert, key, says) in [
        (
            dir.path().join("missing.crt"),
            files.key.clone(),
            "cannot read",
        ),
        (garbage.clone(), files.key.clone(), "no certificate"),
        (files.cert.clone(), garbage.clone(), "private key"),
        (
            files.cert.clone(),
            TlsFiles::generate().key.clone(),
            "does not match",
        ),
    ] {
        let settings = parse_settings(&tls_config(&cert, &key), "http://127.0.0.1:9", &[]);
        let err = match revoke_proxy::app::App::build(
            settings,
            revoke_proxy::revocation::Clock::system(),
        )
        .await
        {
            Ok(_) => panic!("{} / {} accepted", cert.display(), key.display()),
            Err(e) => e.to_string(),
        };
        let problems = match revoke_proxy::app::App::build(
            parse_settings(&tls_config(&cert, &key), "http://127.0.0.1:9", &[]),
            revoke_proxy::revocation::Clock::system(),
        )
        .await
        {
            Err(revoke_proxy::app::StartError::Config(c)) => c.0,
            _ => panic!("{err}"),
        };
        assert!(
            problems
                .iter()
                .any(|p| p.path == "tls" && p.message.contains(says)),
            "{says}: {problems:?}"
        );
    }
}

/// An HTTPS upstream on 127.0.0.1:0 answering 200 "secure".
async fn https_upstream(files: &TlsFiles) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = acceptor(CertReloader::new(&files.cert, &files.key).unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"secure")),
                    ))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let files = TlsFiles::generate();
    let upstream = https_upstream(&files).await;
    let url = format!("https://localhost:{}", upstream.port());
    let token = hs256(&claims("alice"));

    let trusted = format!("{BASIC}upstream_tls:\n  ca_file: {}\n", files.ca.display());
    let proxy = TestProxy::start(&trusted, &url, &[]).await;
    let r = get(proxy.addr, "/api", Some(&token)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "secure"));
    proxy.stop().await;

    let other = TlsFiles::generate();
    let untrusted = format!("{BASIC}upstream_tls:\n  ca_file: {}\n", other.ca.display());
    let proxy = TestProxy::start(&untrusted, &url, &[]).await;
    assert_eq!(
        get(proxy.addr, "/api", Some(&token)).await.status,
        502,
        "untrusted upstream certificate"
    );
    proxy.stop().await;
}
