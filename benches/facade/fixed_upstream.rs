//! The fixed-answer upstream (issue 16): PortOne as cheap as it can be, so
//! that the bench's figures are the facade's own cost beside the direct
//! path and the floor, not the sandbox's. Every `POST /users/getToken`
//! gets a token; every other GET, POST or PUT gets the same successful
//! prepare answer (`merchant_uid` = the bench's first read uid). No state,
//! no locks, no checks: the sandbox (`portone-facade sandbox`) stays the
//! emulator that behaves like PortOne.
//!
//! With `--delay-ms N`, every answer but getToken's waits N ms first (the
//! sandbox's `--latency` likewise spares getToken), for memory with many
//! calls in flight.
//!
//! It runs as a process of its own, started by the bench from its own
//! executable (`<bench> bench-upstream [--delay-ms N]`), and prints one JSON
//! line with its URL and credentials, as the sandbox does.

use std::{convert::Infallible, process::ExitCode, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The role's first argument.
pub const ROLE: &str = "bench-upstream";

/// getToken's answer. The facade reads the token's lifetime from
/// `expired_at − now` (30 minutes, as PortOne's), not from the clock.
const TOKEN: &str = r#"{"code":0,"message":null,"response":{"access_token":"bench-fixed-token","now":1700000000,"expired_at":1700001800}}"#;
/// Every other answer: the registration of `load::read_uid(0)`.
const PREPARED: &str = r#"{"code":0,"message":null,"response":{"merchant_uid":"bench-read-00000","amount":10000,"currency":"KRW"}}"#;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// `bench-upstream [--delay-ms N]`.
pub fn main(args: &[String]) -> ExitCode {
    let delay = match args.iter().position(|arg| arg == "--delay-ms") {
        None => Duration::ZERO,
        Some(i) => match args.get(i + 1).and_then(|ms| ms.parse().ok()) {
            Some(ms) => Duration::from_millis(ms),
            None => {
                eprintln!("{ROLE}: --delay-ms takes a number of milliseconds");
                return ExitCode::from(2);
            }
        },
    };
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|runtime| runtime.block_on(serve(delay)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{ROLE}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(delay: Duration) -> Result<(), Error> {
    // Enough backlog for 10,000 connections opened at once.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(([127, 0, 0, 1], 0).into())?;
    let listener: TcpListener = socket.listen(16_384)?;
    println!(
        "{}",
        serde_json::json!({
            "url": format!("http://{}", listener.local_addr()?),
            "imp_key": "bench-imp-key",
            "imp_secret": "bench-imp-secret",
        })
    );
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).keep_alive(true);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let service = hyper::service::service_fn(move |request| answer(request, delay));
        tokio::spawn(http1.serve_connection(TokioIo::new(stream), service));
    }
}

async fn answer(
    request: Request<Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let token = request.method() == Method::POST && request.uri().path() == "/users/getToken";
    // Read what was sent, as a server must; what it says does not matter.
    let _ = request.into_body().collect().await;
    if !token && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = if token { TOKEN } else { PREPARED };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}
