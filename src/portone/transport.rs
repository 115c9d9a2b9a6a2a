//! One upstream call: its attempts, retries with backoff inside the
//! deadline, and turning each answer into success or an [`UpstreamError`].

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tower::retry::budget::{Budget, TpsBudget};

use super::{
    error::{UpstreamError, UpstreamErrorKind},
    wire::LenientError,
};
use crate::{
    deadline::Deadline,
    telemetry::{ClientAttempt, Event, count},
};

/// Most attempts of one call.
const MAX_ATTEMPTS: u32 = 3;
/// First backoff; doubled per attempt, with jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(50);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Most of an unexpected body quoted back in `upstream_message`.
const QUOTED_BODY_CHARS: usize = 200;
/// Most of an answer read: PortOne's largest documented answers are a few
/// KiB, and memory must not grow with what an upstream sends.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// When a call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetryRule {
    /// On connect errors, timeouts, 5xx and 429.
    Idempotent,
    /// Only when the request provably never left (connection refused).
    OnlyIfNeverSent,
}

/// Which endpoint family answers: getToken's refusals are auth failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    Token,
    Api,
}

/// One REST call to make.
pub(super) struct Call {
    pub method: Method,
    /// The span name: the method and the endpoint without ids
    /// (`GET /payments/prepare/{merchant_uid}`).
    pub span_name: &'static str,
    /// Absolute, with no query.
    pub url: Uri,
    pub body: Option<(Bytes, HeaderValue)>,
    pub retry: RetryRule,
    pub audience: Audience,
}

/// A 2xx answer.
pub(super) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// What was read of an answer.
enum Read {
    /// Status, body and headers.
    Whole(u16, Bytes, HeaderMap),
    /// The body would have passed [`MAX_ANSWER_BYTES`].
    TooLarge(u16),
}

/// Why one attempt failed, and whether another may follow.
struct Failure {
    error: UpstreamError,
    class: FailureClass,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FailureClass {
    /// Must not be repeated (4xx, business error, deadline gone, unexpected body).
    Final,
    /// May be repeated if the call is idempotent.
    Transient,
    /// The request never left; any call may be repeated.
    NeverSent,
}

/// The retry budget (§7, Finagle's `RetryBudget`): retries are at most this
/// share of the calls of the last [`RETRY_BUDGET_WINDOW`]…
const RETRY_BUDGET_PERCENT: f32 = 0.2;
/// …plus this many a second, so that a quiet facade may still retry.
const RETRY_BUDGET_MIN_PER_SECOND: u32 = 3;
const RETRY_BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// What one attempt sends PortOne, HTTP/1.1 or HTTP/2 as ALPN agrees.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the connection pool could not be set up.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Our `User-Agent`.
const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("portone-facade/", env!("CARGO_PKG_VERSION")));

/// The HTTP connection pool, the per-attempt timeout and the retry budget
/// that all calls share.
pub(super) struct Transport {
    /// hyper-util's pooled client, driven with URIs built once per call:
    /// reqwest, which this replaced, parsed every request's URL twice more
    /// (for its redirect layer and its `Response::url`) even with redirects
    /// off, about a tenth of the facade's instructions per call
    /// (`docs/benchmark.md`).
    http: HttpClient,
    attempt_timeout: Duration,
    /// tower's port of Finagle's budget: each call deposits, each retry
    /// withdraws, so that an outage is not met with three times the load.
    retry_budget: TpsBudget,
}

impl Transport {
    /// A pool over rustls (aws-lc-rs), verifying PortOne's certificate with
    /// rustls-platform-verifier: the platform's roots, `SSL_CERT_FILE`
    /// included, as reqwest did. No proxy is used.
    pub(super) fn new(attempt_timeout: Duration) -> Result<Transport, BuildError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(attempt_timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Transport {
            http,
            attempt_timeout,
            retry_budget: TpsBudget::new(
                RETRY_BUDGET_WINDOW,
                RETRY_BUDGET_MIN_PER_SECOND,
                RETRY_BUDGET_PERCENT,
            ),
        })
    }

    /// Sends `call` (with `authorization`, when given) until a 2xx answer
    /// or a final error, retrying as its [`RetryRule`] and the retry budget
    /// allow. A retry the budget refuses ends the call with the last
    /// attempt's error at once.
    pub(super) async fn send(
        &self,
        call: &Call,
        authorization: Option<&HeaderValue>,
        deadline: Deadline,
    ) -> Result<Answer, UpstreamError> {
        self.retry_budget.deposit();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(call, authorization, deadline).await {
                Ok((status, body, _)) if (200..300).contains(&status) => {
                    return Ok(Answer { status, body });
                }
                Ok((status, body, headers)) => {
                    failure_from_answer(call.audience, status, &body, &headers)
                }
                Err(failure) => failure,
            };
            let may_retry = match failure.class {
                FailureClass::Final => false,
                FailureClass::Transient => call.retry == RetryRule::Idempotent,
                FailureClass::NeverSent => true,
            };
            if may_retry && attempts < MAX_ATTEMPTS {
                let wait = failure
                    .error
                    .retry_after
                    .unwrap_or_else(|| backoff(attempts));
                if deadline.fits(wait) && wait <= self.attempt_timeout {
                    if !self.retry_budget.withdraw() {
                        count(Event::RetryRefused);
                        return Err(failure.error);
                    }
                    tokio::time::sleep(wait).await;
                    count(Event::Retried("transient"));
                    continue;
                }
            }
            return Err(failure.error);
        }
    }

    /// One HTTP exchange, bounded by the attempt timeout and the deadline.
    async fn attempt(
        &self,
        call: &Call,
        authorization: Option<&HeaderValue>,
        deadline: Deadline,
    ) -> Result<(u16, Bytes, HeaderMap), Failure> {
        let limit = deadline.cap(self.attempt_timeout);
        if limit.is_zero() {
            return Err(deadline_gone());
        }
        let attempt = ClientAttempt::start(&call.method, call.span_name, &call.url);
        let body = call
            .body
            .as_ref()
            .map_or_else(Bytes::new, |(body, _)| body.clone());
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = call.url.clone();
        let headers = request.headers_mut();
        headers.insert(header::USER_AGENT, USER_AGENT);
        attempt.inject_trace_headers(headers);
        if let Some(authorization) = authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        if let Some((_, content_type)) = &call.body {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        let exchange = async {
            let response = self.http.request(request).await.map_err(Broken::Send)?;
            let (parts, mut incoming) = response.into_parts();
            let status = parts.status.as_u16();
            // Read in frames and counted, so that no more than the limit is
            // ever held; the connection is dropped with the rest unread.
            let announced = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
            if announced.is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
                return Ok(Read::TooLarge(status));
            }
            let mut body = BytesMut::new();
            while let Some(frame) = incoming.frame().await {
                let Ok(chunk) = frame.map_err(|_| Broken::Body)?.into_data() else {
                    continue;
                };
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Ok(Read::TooLarge(status));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, Broken>(Read::Whole(status, body.freeze(), parts.headers))
        };
        let outcome = tokio::time::timeout(limit, exchange).await;
        match outcome {
            Ok(Ok(Read::Whole(status, body, headers))) => {
                attempt.answered(status, || portone_code(status, &body));
                Ok((status, body, headers))
            }
            Ok(Ok(Read::TooLarge(status))) => {
                attempt.answered(status, || None);
                count(Event::OversizedAnswer);
                Err(Failure {
                    error: UpstreamError {
                        kind: UpstreamErrorKind::Unavailable,
                        http_status: Some(status),
                        upstream_code: None,
                        upstream_message: format!(
                            "PortOne's answer was larger than 1 MiB ({MAX_ANSWER_BYTES} bytes) \
                             and was not read further"
                        ),
                        retry_after: None,
                    },
                    // The same request would get the same answer.
                    class: FailureClass::Final,
                })
            }
            Ok(Err(error)) => {
                attempt.failed(if error.is_connect() {
                    "connect"
                } else {
                    "transport"
                });
                Err(failure_from_transport(&error))
            }
            Err(_) => {
                attempt.failed("timeout");
                if deadline.is_expired() {
                    return Err(deadline_gone());
                }
                Err(Failure {
                    error: UpstreamError::without_answer(
                        UpstreamErrorKind::Timeout,
                        format!(
                            "PortOne did not answer within the upstream timeout of {}",
                            humantime::format_duration(limit)
                        ),
                    ),
                    class: FailureClass::Transient,
                })
            }
        }
    }
}

/// PortOne's `code` in an answer, for the span; a success envelope is
/// recognised without parsing it.
fn portone_code(status: u16, body: &[u8]) -> Option<i64> {
    if (200..300).contains(&status) && body.starts_with(br#"{"code":0,"#) {
        return Some(0);
    }
    serde_json::from_slice::<LenientError>(body).ok()?.code
}

fn deadline_gone() -> Failure {
    Failure {
        error: UpstreamError::without_answer(
            UpstreamErrorKind::Timeout,
            "the caller's deadline ran out before PortOne answered",
        ),
        class: FailureClass::Final,
    }
}

/// An exchange that ended without a whole answer.
enum Broken {
    /// Before an answer's head: connecting, TLS, or sending.
    Send(hyper_util::client::legacy::Error),
    /// While reading the body (the connection broke).
    Body,
}

impl Broken {
    /// The connection could not be made, so the request never left.
    fn is_connect(&self) -> bool {
        matches!(self, Broken::Send(error) if error.is_connect())
    }
}

fn failure_from_transport(error: &Broken) -> Failure {
    if error.is_connect() {
        let message = match certificate_refusal(error) {
            Some(reason) => format!(
                "could not connect to PortOne: its TLS certificate was not trusted ({reason})"
            ),
            None => "could not connect to PortOne".to_owned(),
        };
        Failure {
            error: UpstreamError::without_answer(UpstreamErrorKind::Unavailable, message),
            class: FailureClass::NeverSent,
        }
    } else {
        Failure {
            error: UpstreamError::without_answer(
                UpstreamErrorKind::Unavailable,
                "the connection to PortOne failed before a whole answer arrived",
            ),
            class: FailureClass::Transient,
        }
    }
}

/// Why rustls refused PortOne's certificate, when that is what ended the
/// connection. The rustls error travels inside `io::Error`s (one from the
/// TLS stream, one from the connector), whose `source` skips the error they
/// wrap, so the chain is walked through them by hand.
fn certificate_refusal(error: &Broken) -> Option<String> {
    type Dyn = dyn std::error::Error + 'static;
    let Broken::Send(error) = error else {
        return None;
    };
    fn next<'a>(&error: &&'a Dyn) -> Option<&'a Dyn> {
        match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &Dyn),
            None => error.source(),
        }
    }
    let first: &Dyn = error;
    std::iter::successors(Some(first), next)
        .take(16)
        .find_map(|error| match error.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(reason)) => Some(reason.to_string()),
            _ => None,
        })
}

/// The row of the error table for a non-2xx answer.
fn failure_from_answer(
    audience: Audience,
    status: u16,
    body: &[u8],
    headers: &HeaderMap,
) -> Failure {
    let quoted = serde_json::from_slice::<LenientError>(body).unwrap_or_default();
    let (kind, class) = match (audience, status) {
        // A slow or rate-limited getToken is retried like any call (§2);
        // its other refusals are the facade's credentials.
        (_, 408) => (UpstreamErrorKind::Timeout, FailureClass::Transient),
        (_, 429) => (UpstreamErrorKind::RateLimited, FailureClass::Transient),
        (Audience::Token, 400..=499) => (UpstreamErrorKind::AuthFailed, FailureClass::Final),
        (_, 401) => (UpstreamErrorKind::AuthFailed, FailureClass::Final),
        (_, 403) => (UpstreamErrorKind::Forbidden, FailureClass::Final),
        (_, 404) => (UpstreamErrorKind::NotFound, FailureClass::Final),
        (_, 409) => (UpstreamErrorKind::Conflict, FailureClass::Final),
        (_, 400..=499) => (UpstreamErrorKind::Rejected, FailureClass::Final),
        (_, 500..=599) => (UpstreamErrorKind::Unavailable, FailureClass::Transient),
        _ => (UpstreamErrorKind::Unavailable, FailureClass::Final),
    };
    Failure {
        error: UpstreamError {
            kind,
            http_status: Some(status),
            upstream_code: quoted.code,
            upstream_message: quoted
                .message
                .unwrap_or_else(|| describe_body(status, body)),
            retry_after: retry_after(headers),
        },
        class,
    }
}

/// Words for an answer that carried no PortOne message.
pub(super) fn describe_body(status: u16, body: &[u8]) -> String {
    if body.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    let text = String::from_utf8_lossy(body);
    let quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    format!("HTTP {status} with an unexpected body: {quoted}")
}

/// `Retry-After` in seconds (PortOne sends no dates).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// Exponential backoff with jitter: a random wait in [half, full] of the step.
fn backoff(attempt: u32) -> Duration {
    let step = BASE_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    step / 2 + step.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let wait = backoff(attempt);
            assert!(wait >= BASE_BACKOFF / 2 && wait <= MAX_BACKOFF, "{wait:?}");
        }
        assert!(backoff(1) <= BASE_BACKOFF);
    }

    #[test]
    fn an_html_error_page_is_quoted_briefly() {
        let page = format!("<html>{}</html>", "x".repeat(1000));
        let described = describe_body(502, page.as_bytes());
        assert!(described.starts_with("HTTP 502 with an unexpected body: <html>"));
        assert!(described.chars().count() < 260);
    }
}
