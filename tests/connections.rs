//! HTTP/2 connections are bounded (DESIGN.md §7): a connection that never
//! speaks HTTP/2 is closed, an old one is sent GOAWAY, and half-open
//! connections do not slow other callers.

mod support;

use std::time::{Duration, Instant};

use portone_facade::{pb::PreparePaymentRequest, sandbox::Sandbox};
use support::{Facade, settings};
use tokio::{io::AsyncReadExt, net::TcpStream};

#[tokio::test]
async fn a_connection_that_never_sends_the_http2_preface_is_closed_after_ten_seconds() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let mut silent = TcpStream::connect(facade.addr).await.unwrap();
    let opened = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut byte))
        .await
        .expect("closed within 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let after = opened.elapsed();
    assert!(after >= Duration::from_secs(9), "closed after {after:?}");
}

#[tokio::test]
async fn a_connection_older_than_max_connection_age_is_sent_goaway_and_clients_reconnect() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.max_connection_age = Duration::from_secs(1);
    let facade = Facade::start(settings).await;

    let tcp = TcpStream::connect(facade.addr).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the server ends an idle connection older than its age");
    assert!(ended.is_ok(), "a graceful GOAWAY, not an error: {ended:?}");

    // A gRPC client simply reconnects.
    let mut client = facade.prepare_client();
    for n in 0..3 {
        client
            .prepare_payment(PreparePaymentRequest {
                merchant_uid: format!("aged-{n}"),
                amount: "1000".into(),
                currency: String::new(),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_half_open_connections_do_not_slow_an_ordinary_call() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let mut half_open = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(facade.addr).await.unwrap();
        // Part of the preface, and then nothing.
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"PRI * HTTP/2.0")
            .await
            .unwrap();
        half_open.push(stream);
    }
    let slowest = ordinary_calls(&facade, "beside-half-open").await;
    println!(
        "half-open: the slowest of 20 ordinary calls beside 200 half-open connections took {slowest:?}"
    );
    drop(half_open);
}

/// 20 ordinary prepares on a connection of their own, each under a 500 ms
/// deadline; the slowest one's time.
async fn ordinary_calls(facade: &Facade, prefix: &str) -> Duration {
    let mut client = facade.prepare_client();
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let mut request = tonic::Request::new(PreparePaymentRequest {
            merchant_uid: format!("{prefix}-{n}"),
            amount: "1000".into(),
            currency: String::new(),
        });
        request.set_timeout(Duration::from_millis(500));
        let started = Instant::now();
        client.prepare_payment(request).await.unwrap();
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

/// A raw HTTP/2 client on a fresh connection to `facade`.
async fn raw_http2(facade: &Facade) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(facade.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn grpc_request(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://facade{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_client_does_not_slow_an_ordinary_call() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let abuser = {
        let mut client = raw_http2(&facade).await;
        tokio::spawn(async move {
            // Open a stream and reset it at once, as fast as the connection
            // lets us, until the server gives up on the connection.
            for opened in 0..10_000 {
                let Ok(ready) = client.clone().ready().await else {
                    return opened;
                };
                client = ready;
                let Ok((_, mut stream)) = client.send_request(
                    grpc_request("/portone.facade.v1.PaymentPrepareService/GetPreparedPayment"),
                    false,
                ) else {
                    return opened;
                };
                stream.send_reset(h2::Reason::CANCEL);
            }
            10_000
        })
    };
    let slowest = ordinary_calls(&facade, "beside-rapid-reset").await;
    println!("rapid reset: the slowest of 20 ordinary calls took {slowest:?}");
    let opened = tokio::time::timeout(Duration::from_secs(20), abuser)
        .await
        .expect("the abusive client is stopped or done within 20 s")
        .unwrap();
    println!("rapid reset: the abusive client opened and reset {opened} streams");
}

#[tokio::test]
async fn junk_request_bytes_are_refused_and_never_answered_unknown() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let mut client = raw_http2(&facade).await.ready().await.unwrap();
    let (answer, mut body) = client
        .send_request(
            grpc_request("/portone.facade.v1.PaymentPrepareService/PreparePayment"),
            false,
        )
        .unwrap();
    // A gRPC frame of 16 bytes that are no protobuf message.
    let mut frame = vec![0u8, 0, 0, 0, 16];
    frame.extend_from_slice(&[0xff; 16]);
    body.send_data(bytes::Bytes::from(frame), true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .unwrap()
        .unwrap();
    let (head, mut rest) = answer.into_parts();
    let status = match head.headers.get("grpc-status") {
        Some(status) => status.to_str().unwrap().to_owned(),
        None => {
            while rest.data().await.is_some() {}
            let trailers = rest.trailers().await.unwrap().expect("trailers");
            trailers["grpc-status"].to_str().unwrap().to_owned()
        }
    };
    println!("junk request bytes: grpc-status {status}");
    assert_ne!(status, "0", "junk was accepted");
    assert_ne!(status, "2", "junk was answered UNKNOWN");
    assert_eq!(
        sandbox.calls(portone_facade::sandbox::Endpoint::PreparePayment),
        0
    );
}
