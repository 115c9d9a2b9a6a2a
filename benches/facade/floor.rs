//! The floor (issue 16): the least a process can do for one
//! `GetPreparedPayment` and still do the facade's job on the wire. An HTTP/2
//! (h2c) server answers every unary gRPC call with one pooled HTTP/1.1 GET
//! to the same upstream and a fixed, gRPC-framed `GetPreparedPaymentResponse`
//! (status OK in the trailers): no validation, no JSON, no token, no
//! telemetry. Nothing that does this job can cost less on the same machine,
//! so the facade's figures are read as multiples of these.
//!
//! It runs as a process of its own, started by the bench from its own
//! executable (`<bench> bench-floor --upstream URL [--runtime current_thread]`),
//! on the facade's runtime shape: tokio's multi-thread runtime (which reads
//! `TOKIO_WORKER_THREADS` as the facade's does), or `current_thread`.

use std::{convert::Infallible, process::ExitCode, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use portone_facade::pb::{GetPreparedPaymentResponse, PreparedPayment};
use prost::Message;
use tokio::net::TcpListener;

/// The role's first argument.
pub const ROLE: &str = "bench-floor";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// `bench-floor --upstream http://HOST:PORT [--runtime multi_thread|current_thread]`.
pub fn main(args: &[String]) -> ExitCode {
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|i| args.get(i + 1))
    };
    let Some(upstream) = value("--upstream") else {
        eprintln!("{ROLE}: --upstream http://HOST:PORT is required");
        return ExitCode::from(2);
    };
    let mut builder = match value("--runtime").map(String::as_str) {
        None | Some("multi_thread") => tokio::runtime::Builder::new_multi_thread(),
        Some("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Some(other) => {
            eprintln!("{ROLE}: --runtime {other}: multi_thread or current_thread");
            return ExitCode::from(2);
        }
    };
    let served = builder
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|runtime| runtime.block_on(serve(upstream)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{ROLE}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(upstream: &str) -> Result<(), Error> {
    // The same registration the fixed upstream answers with.
    let uri: Uri = format!(
        "{}/payments/prepare/{}",
        upstream.trim_end_matches('/'),
        crate::load::read_uid(0)
    )
    .parse()?;
    let message = GetPreparedPaymentResponse {
        prepared_payment: Some(PreparedPayment {
            merchant_uid: crate::load::read_uid(0),
            amount: "10000".to_owned(),
            currency: "KRW".to_owned(),
        }),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    framed.extend_from_slice(&message);
    let framed = Bytes::from(framed);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new()).max_concurrent_streams(1024);

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "{}",
        serde_json::json!({"message": "listening", "local_addr": listener.local_addr()?.to_string()})
    );
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, uri, framed, trailers) = (
            client.clone(),
            uri.clone(),
            framed.clone(),
            trailers.clone(),
        );
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (client, uri, framed, trailers) = (
                client.clone(),
                uri.clone(),
                framed.clone(),
                trailers.clone(),
            );
            async move {
                request.into_body().collect().await?;
                client.get(uri).await?.into_body().collect().await?;
                // One DATA frame, then the trailers.
                let frames = [
                    Ok::<_, Infallible>(Frame::data(framed)),
                    Ok(Frame::trailers(trailers)),
                ];
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/grpc")
                    .body(StreamBody::new(tokio_stream::iter(frames)))
                    .map_err(Error::from)
            }
        });
        tokio::spawn(http2.serve_connection(TokioIo::new(stream), service));
    }
}
