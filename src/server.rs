//! The gRPC server: our services beside health and reflection, a guard
//! layer (deadline, authorization, load limit, in-flight count) in front of
//! them, HTTP/2 connections (over TLS when configured), a plaintext
//! health-only listener beside them, and graceful shutdown.

mod connection;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::trace::FutureExt as _;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::Instant,
};
use tokio_util::task::TaskTracker;
use tonic::{body::Body, service::Routes};
use tonic_health::{
    ServingStatus,
    server::{HealthReporter, health_reporter},
};
use tower::Service;

use self::connection::{ConnectionOptions, serve_connection};
use crate::{
    api::{LinkApi, PrepareApi, VerificationApi},
    audit,
    authz::{Authorizer, PolicySettings},
    deadline::Deadline,
    error::{FacadeError, to_status},
    identity::Caller,
    pb::{
        self, payment_link_service_server::PaymentLinkServiceServer,
        payment_prepare_service_server::PaymentPrepareServiceServer,
        payment_verification_service_server::PaymentVerificationServiceServer,
    },
    portone::PortOneClient,
    telemetry::{Event, ServerCall, active_requests, count},
    tls::{TlsServer, TlsSettings},
};

/// Error type of server start-up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The gRPC paths of our own API; health and reflection are never refused.
const API_PATH_PREFIX: &str = "/portone.facade.v1.";
/// After the last API call finished, how long open streams (a health Watch)
/// may still hold the drain before connections are dropped.
const STREAM_LINGER: Duration = Duration::from_millis(300);
/// Streams one connection may have open. `MAX_IN_FLIGHT` bounds the process;
/// this keeps one client from taking all of it, and bounds what a burst of
/// opened-and-reset streams can cost.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;
/// Headers of one request: gRPC metadata plus W3C trace context is far less.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Streams reset by the client before they were accepted: above this the
/// connection is closed with GOAWAY (the rapid-reset attack, CVE-2023-44487).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams this server resets for protocol errors before it gives up on the
/// connection.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// How the server behaves, apart from what it calls.
#[derive(Debug)]
pub struct ServerOptions {
    /// Most API calls in flight; more are answered `RESOURCE_EXHAUSTED` / `OVERLOADED`.
    pub max_in_flight: usize,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// How long new calls are still taken after shutdown begins, with
    /// health already `NOT_SERVING`, so that endpoints stop routing here
    /// before the listener closes.
    pub shutdown_delay: Duration,
    /// Connections older than this (±10%) are sent GOAWAY, then given
    /// `shutdown_grace` to finish their calls.
    pub max_connection_age: Duration,
    /// Default `user_code` for payment links.
    pub default_user_code: Option<String>,
    /// TLS on the gRPC port, mutual when it has client CAs.
    pub tls: Option<TlsSettings>,
    /// Who may call what (with mutual TLS only).
    pub authz_policy: Option<PolicySettings>,
    /// Where to serve health alone, in plaintext.
    pub health_listen_addr: Option<SocketAddr>,
}

/// Serves on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    client: PortOneClient,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    let (health, health_service) = health_reporter();
    health
        .set_serving::<PaymentPrepareServiceServer<PrepareApi>>()
        .await;
    health
        .set_serving::<PaymentLinkServiceServer<LinkApi>>()
        .await;
    health
        .set_serving::<PaymentVerificationServiceServer<VerificationApi>>()
        .await;
    let routes = Routes::new(health_service.clone())
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            PaymentPrepareServiceServer::new(PrepareApi::new(client.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            PaymentVerificationServiceServer::new(VerificationApi::new(client.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            PaymentLinkServiceServer::new(LinkApi::new(client, options.default_user_code.clone()))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .prepare();
    let in_flight = InFlight::new(options.max_in_flight);
    let active = Arc::clone(&in_flight.count);
    let _active_requests = active_requests(move || active.load(Ordering::Relaxed));
    let tls = options.tls.map(TlsServer::start).transpose()?;
    let service = Guard {
        inner: routes,
        in_flight: in_flight.clone(),
        authz: options.authz_policy.map(Authorizer::start).map(Arc::new),
    };
    // Health alone, from the same reporter: it turns NOT_SERVING with the
    // main port's. Any other path is UNIMPLEMENTED there.
    let health_only = Routes::new(health_service).prepare();
    let health_listener = match options.health_listen_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|error| format!("cannot listen on HEALTH_LISTEN_ADDR {addr}: {error}"))?;
            tracing::info!(local_addr = %listener.local_addr()?, "serving grpc.health.v1 in plaintext");
            Some(listener)
        }
        None => None,
    };

    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    // Tells every connection to send GOAWAY and finish; the tracker says
    // when they all have.
    let (stop_connections, connections_stop) = watch::channel(false);
    let connections = TaskTracker::new();
    let connection_options = || ConnectionOptions {
        http2: http2.clone(),
        age: jittered(options.max_connection_age),
        grace: options.shutdown_grace,
        stop: connections_stop.clone(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    // Set when shutdown begins: the listeners close when it fires.
    let mut stop_accepting = Option::<std::pin::Pin<Box<tokio::time::Sleep>>>::None;
    tracing::info!(
        local_addr = %listener.local_addr()?,
        tls = tls.is_some(),
        mutual_tls = tls.as_ref().is_some_and(TlsServer::is_mutual),
        authz_policy = service.authz.is_some(),
        "listening"
    );
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown, if stop_accepting.is_none() => {
                set_not_serving(&health).await;
                if options.shutdown_delay.is_zero() {
                    break;
                }
                tracing::info!(delay = ?options.shutdown_delay, "not serving; still taking calls until the delay is over");
                stop_accepting = Some(Box::pin(tokio::time::sleep(options.shutdown_delay)));
            }
            () = async { if let Some(delay) = stop_accepting.as_mut() { delay.await } }, if stop_accepting.is_some() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let tls = tls.as_ref().map(TlsServer::acceptor);
                    connections.spawn(serve_connection(stream, tls, service.clone(), connection_options()));
                }
                Err(error) => accept_failed(error).await,
            },
            accepted = accept(health_listener.as_ref()) => match accepted {
                Ok(stream) => {
                    connections.spawn(serve_connection(stream, None, health_only.clone(), connection_options()));
                }
                Err(error) => accept_failed(error).await,
            },
        }
    }
    drop(health_listener);
    drop(listener);
    tracing::info!(in_flight = in_flight.count(), grace = ?options.shutdown_grace, "shutting down");
    let _ = stop_connections.send(true);
    connections.close();
    drain(&connections, &in_flight, options.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for connections to close: until every API call in flight has
/// finished (plus a short linger for other streams), or the grace runs out.
async fn drain(connections: &TaskTracker, in_flight: &InFlight, grace: Duration) {
    let all_closed = connections.wait();
    // A call may still arrive on a connection that has not yet seen the
    // GOAWAY: idle must hold through the whole linger. The grace bounds it.
    let api_calls_done = async {
        loop {
            in_flight.wait_idle().await;
            tokio::time::sleep(STREAM_LINGER).await;
            if in_flight.count() == 0 {
                return;
            }
        }
    };
    tokio::select! {
        () = all_closed => {}
        () = api_calls_done => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(in_flight = in_flight.count(), "shutdown grace ran out; dropping remaining calls");
        }
    }
}

async fn set_not_serving(health: &HealthReporter) {
    health
        .set_not_serving::<PaymentPrepareServiceServer<PrepareApi>>()
        .await;
    health
        .set_not_serving::<PaymentLinkServiceServer<LinkApi>>()
        .await;
    health
        .set_not_serving::<PaymentVerificationServiceServer<VerificationApi>>()
        .await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// Reflection over our contract, health, and the `google.rpc` error details
/// (so grpcurl can print them).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Counts API calls in flight and bounds them.
#[derive(Clone)]
struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
    count: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

/// Held for the life of one API call.
struct InFlightGuard {
    _permit: OwnedSemaphorePermit,
    count: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl InFlight {
    fn new(limit: usize) -> InFlight {
        InFlight {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            count: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        }
    }

    fn try_enter(&self) -> Option<InFlightGuard> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        self.count.fetch_add(1, Ordering::AcqRel);
        Some(InFlightGuard {
            _permit: permit,
            count: Arc::clone(&self.count),
            idle: Arc::clone(&self.idle),
        })
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Reads `grpc-timeout` into a [`Deadline`] for the handlers, answers
/// `DEADLINE_EXCEEDED` itself when it runs out (tonic's own timeout would
/// say `CANCELLED`), refuses API calls the policy does not allow their
/// caller, and refuses API calls beyond the in-flight limit.
#[derive(Clone)]
struct Guard<S> {
    inner: S,
    in_flight: InFlight,
    /// The policy, when `AUTHZ_POLICY_FILE` is set; without it every
    /// caller that passed the handshake may call everything.
    authz: Option<Arc<Authorizer>>,
}

type GuardFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = GuardFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> GuardFuture {
        let deadline = grpc_timeout(request.headers()).map_or_else(Deadline::none, |timeout| {
            Instant::now()
                .checked_add(timeout.saturating_sub(answer_margin(timeout)))
                .map_or_else(Deadline::none, Deadline::at)
        });
        request.extensions_mut().insert(deadline);
        let is_api = request.uri().path().starts_with(API_PATH_PREFIX);
        // Health and reflection are neither traced, authorized nor limited.
        let call = is_api.then(|| Call::start(&mut request));
        if let (true, Some(authz)) = (is_api, &self.authz) {
            let caller = Caller::of(&request);
            let rpc = request.uri().path().trim_start_matches('/');
            if !authz.allows(caller.as_str(), rpc) {
                count(Event::Denied {
                    caller: caller.as_str(),
                    rpc,
                });
                let response = to_status(FacadeError::CallerNotAllowed {
                    caller: caller.to_string(),
                    rpc: rpc.to_owned(),
                })
                .into_http();
                if let Some(call) = call {
                    call.finish(grpc_status(&response));
                }
                return Box::pin(async move { Ok(response) });
            }
        }
        let guard = if is_api {
            match self.in_flight.try_enter() {
                Some(guard) => Some(guard),
                None => {
                    let limit = self.in_flight.limit;
                    count(Event::Shed);
                    let response = to_status(FacadeError::Overloaded { limit }).into_http();
                    if let Some(call) = call {
                        call.finish(grpc_status(&response));
                    }
                    return Box::pin(async move { Ok(response) });
                }
            }
        } else {
            None
        };
        // The clone that was polled ready handles this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let context = call.as_ref().and_then(|call| call.span.context());
        let response = inner.call(request);
        let answer = async move {
            let _guard = guard;
            let response = match deadline.instant() {
                Some(at) => match tokio::time::timeout_at(at, response).await {
                    Ok(response) => response,
                    Err(_) => Ok(to_status(FacadeError::DeadlineExceeded).into_http()),
                },
                None => response.await,
            };
            if let (Some(call), Ok(response)) = (call, &response) {
                call.finish(grpc_status(response));
            }
            response
        };
        // The RPC's span is the current one while it runs, for the upstream
        // spans and the log lines made on its behalf.
        match context {
            Some(context) => Box::pin(answer.with_context(context)),
            None => Box::pin(answer),
        }
    }
}

/// What one API call leaves behind: its span and duration metric, and its
/// audit line (written with `CANCELLED` if the call is dropped unfinished).
struct Call {
    span: ServerCall,
    audit: Option<audit::Entry>,
}

impl Call {
    /// Starts both for the call in `request`; the audit record the handler
    /// fills goes into the request's extensions.
    fn start<B>(request: &mut Request<B>) -> Call {
        let span = ServerCall::start(request);
        let audit = audit::Entry::start(request, span.trace_id());
        Call { span, audit }
    }

    /// Records the call's outcome, its gRPC status code.
    fn finish(self, grpc_status: i32) {
        if let Some(audit) = self.audit {
            audit.finish(grpc_status);
        }
        self.span.finish(grpc_status);
    }
}

/// The next connection on `listener`, when there is one; else never.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _peer)| stream),
        None => std::future::pending().await,
    }
}

/// Out of file descriptors and the like: back off, keep serving.
async fn accept_failed(error: std::io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// `age` ±10%, so that connections opened together do not all reconnect
/// together.
fn jittered(age: Duration) -> Duration {
    let tenth = age / 10;
    age.saturating_sub(tenth)
        .saturating_add(tenth.saturating_mul(2 * u32::from(fastrand::u8(..=100))) / 100)
}

/// Most bytes of one request message (§7): the largest valid request, a
/// payment link with 64 KiB of `custom_data`, is far below it. tonic refuses
/// a larger one before decoding it.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The status of a unary response: in its headers when the call failed
/// (trailers-only), else OK, sent in the trailers after the message.
fn grpc_status<B>(response: &Response<B>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// How long before the caller's deadline the facade gives up and answers.
/// gRPC clients run their own timer from the same `grpc-timeout` and would
/// report a bare CANCELLED or DEADLINE_EXCEEDED without our details if our
/// answer arrived a moment after it: 5% of the timeout, 5 to 50 ms.
fn answer_margin(timeout: Duration) -> Duration {
    (timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(50))
}

/// Parses `grpc-timeout`: at most 8 digits and a unit (H M S m u n).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&headers)
    }

    proptest::proptest! {
        #[test]
        fn the_grpc_timeout_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..24)) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
                headers.insert("grpc-timeout", value);
            }
            let _ = grpc_timeout(&headers);
        }
    }

    #[test]
    fn grpc_timeout_units_are_read() {
        assert_eq!(timeout_of("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout_of("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout_of("3S"), Some(Duration::from_secs(3)));
        assert_eq!(timeout_of("999m"), Some(Duration::from_millis(999)));
        assert_eq!(timeout_of("5u"), Some(Duration::from_micros(5)));
        assert_eq!(
            timeout_of("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_grpc_timeouts_are_ignored() {
        for bad in ["", "S", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(timeout_of(bad), None, "{bad:?}");
        }
    }
}
