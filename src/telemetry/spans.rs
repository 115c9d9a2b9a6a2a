//! The SERVER span of each RPC, the CLIENT span of each upstream attempt
//! and the INTERNAL span of a token fetch, with the semantic-convention
//! attributes and the duration metrics beside them; W3C trace context in
//! (from gRPC metadata) and out (to PortOne).
//!
//! The server span's [`Context`] is attached while the call is polled, so
//! the client spans, the token span and the log lines find it as their
//! parent. Names come from the request path and the URL, so a new RPC or
//! endpoint needs no edit here.

use std::{future::Future, sync::OnceLock, time::Instant};

use http::{HeaderMap, Method, Uri, uri::PathAndQuery};
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{FutureExt as _, Span as _, SpanKind, Status, TraceContextExt, TraceId, Tracer as _},
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{SdkTracer, Span},
};

use super::metrics::instruments;
use crate::{error::code_name, identity::Caller};

/// The tracer of our own spans; set once when a trace exporter runs.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Installs the tracer; from then on spans are made.
pub(super) fn install_tracer(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// gRPC codes that make a SERVER span an error (OpenTelemetry RPC
/// conventions): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE, DATA_LOSS.
const SERVER_ERROR_CODES: [i32; 6] = [2, 4, 12, 13, 14, 15];

/// One RPC: its SERVER span (when tracing is on) and its duration metric.
pub(crate) struct ServerCall {
    /// The caller's context with our SERVER span in it.
    context: Option<Context>,
    started: Instant,
    /// `/<service>/<method>`, shared with the request: an untraced call
    /// copies nothing.
    path: Option<PathAndQuery>,
}

impl ServerCall {
    /// Starts the span of the RPC in `request`, as a child of the caller's
    /// `traceparent`. The caller's baggage is not read: nothing here uses it,
    /// and it is not forwarded to PortOne, a third party.
    pub(crate) fn start<B>(request: &http::Request<B>) -> ServerCall {
        let path = request.uri().path_and_query().cloned();
        let context = TRACER.get().map(|tracer| {
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
            let name = rpc_name(path.as_ref());
            let mut span = tracer
                .span_builder(name.to_owned())
                .with_kind(SpanKind::Server)
                .start_with_context(tracer, &parent);
            // Attributes only for a span the sampler kept: most are not.
            if span.is_recording() {
                let (service, method) = split_rpc(name);
                span.set_attribute(KeyValue::new("rpc.system", "grpc"));
                span.set_attribute(KeyValue::new("rpc.service", service.to_owned()));
                span.set_attribute(KeyValue::new("rpc.method", method.to_owned()));
                // Only a client certificate proves who calls (§8).
                if let Some(caller) = request.extensions().get::<Caller>() {
                    span.set_attribute(KeyValue::new("enduser.id", caller.as_str().to_owned()));
                }
                if let Some(authority) = request.uri().authority() {
                    span.set_attribute(KeyValue::new(
                        "server.address",
                        authority.host().to_owned(),
                    ));
                    if let Some(port) = authority.port_u16() {
                        span.set_attribute(KeyValue::new("server.port", i64::from(port)));
                    }
                }
            }
            parent.with_span(span)
        });
        ServerCall {
            context,
            started: Instant::now(),
            path,
        }
    }

    /// The trace id the log and audit lines carry: the caller's when it sent
    /// a `traceparent`, sampled or not; none when tracing is off.
    pub(crate) fn trace_id(&self) -> Option<TraceId> {
        let span = self.context.as_ref()?.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| span_context.trace_id())
    }

    /// The context to poll the call in, when tracing is on.
    pub(crate) fn context(&self) -> Option<Context> {
        self.context.clone()
    }

    /// Records the outcome: the status code on the span (ERROR for
    /// server-class codes), the span's end, and the duration metric.
    pub(crate) fn finish(self, grpc_status: i32) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let server_error = SERVER_ERROR_CODES.contains(&grpc_status);
        if let Some(context) = &self.context {
            let span = context.span();
            span.set_attribute(KeyValue::new(
                "rpc.grpc.status_code",
                i64::from(grpc_status),
            ));
            if server_error {
                span.set_attribute(KeyValue::new("error.type", code_name(grpc_status)));
                span.set_status(Status::error(code_name(grpc_status)));
            }
            span.end();
        }
        let (service, method) = split_rpc(rpc_name(self.path.as_ref()));
        if server_error {
            // Server-class outcomes page the operator; the caller's own
            // errors (invalid, not found, …) are the caller's, not logged.
            tracing::warn!(
                rpc.method = %method,
                rpc.grpc.status_code = grpc_status,
                error.r#type = code_name(grpc_status),
                elapsed_ms = elapsed * 1000.0,
                "rpc failed"
            );
        }
        if let Some(instruments) = instruments() {
            instruments.rpc_duration.record(
                elapsed,
                &[
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", service.to_owned()),
                    KeyValue::new("rpc.method", method.to_owned()),
                    KeyValue::new("rpc.grpc.status_code", i64::from(grpc_status)),
                ],
            );
        }
    }
}

/// `pkg.Service/Method` of the request path `/pkg.Service/Method`.
fn rpc_name(path: Option<&PathAndQuery>) -> &str {
    path.map_or("", |path| path.path().trim_start_matches('/'))
}

/// `("pkg.Service", "Method")` of `pkg.Service/Method`.
fn split_rpc(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or((name, ""))
}

/// Records the order id (not personal data) on the current RPC's span.
pub(crate) fn record_merchant_uid(merchant_uid: &str) {
    if TRACER.get().is_some() {
        Context::map_current(|cx| {
            if cx.span().is_recording() {
                cx.span()
                    .set_attribute(KeyValue::new("merchant_uid", merchant_uid.to_owned()));
            }
        });
    }
}

/// Runs a token fetch inside its own INTERNAL span, a child of the call
/// that started it, so that a slow token shows up as such. The context goes
/// with the future, which may run in another task.
pub(crate) fn in_token_span<F: Future>(fetch: F) -> impl Future<Output = F::Output> {
    let context = TRACER.get().map_or_else(Context::new, |tracer| {
        Context::map_current(|parent| {
            let span = tracer
                .span_builder("PortOne getToken")
                .with_kind(SpanKind::Internal)
                .start_with_context(tracer, parent);
            parent.with_span(span)
        })
    });
    fetch.with_context(context)
}

/// One HTTP attempt to PortOne: its CLIENT span and duration metric.
pub(crate) struct ClientAttempt {
    span: Option<Span>,
    started: Instant,
    method: &'static str,
    /// `server.address` for the metric, when metrics are recorded.
    host: Option<String>,
}

impl ClientAttempt {
    /// Starts the span, a child of the current context (the RPC's span, or
    /// the token fetch's). `span_name` is the method and the endpoint
    /// without ids (`GET /payments/prepare/{merchant_uid}`); `url` carries
    /// no query, so no secret can be in it.
    pub(crate) fn start(method: &Method, span_name: &'static str, url: &Uri) -> ClientAttempt {
        // `http.request.method`: the known methods by name, any other `_OTHER`.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "_OTHER",
        };
        let host = url.host().unwrap_or_default();
        let span = TRACER.get().map(|tracer| {
            let mut span = Context::map_current(|parent| {
                tracer
                    .span_builder(span_name)
                    .with_kind(SpanKind::Client)
                    .start_with_context(tracer, parent)
            });
            if span.is_recording() {
                span.set_attribute(KeyValue::new("http.request.method", method));
                span.set_attribute(KeyValue::new("url.full", url.to_string()));
                span.set_attribute(KeyValue::new("server.address", host.to_owned()));
                let known_port = match url.scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                };
                if let Some(port) = url.port_u16().or(known_port) {
                    span.set_attribute(KeyValue::new("server.port", i64::from(port)));
                }
            }
            span
        });
        ClientAttempt {
            span,
            started: Instant::now(),
            method,
            host: instruments().map(|_| host.to_owned()),
        }
    }

    /// Adds `traceparent` for this attempt's span to `headers`, and
    /// `tracestate` when the caller sent one. The caller's baggage is not
    /// forwarded: PortOne is a third party.
    pub(crate) fn inject_trace_headers(&self, headers: &mut HeaderMap) {
        if let Some(span) = &self.span {
            let context = Context::new().with_remote_span_context(span.span_context().clone());
            TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
        }
    }

    /// PortOne answered with `status`; `portone_code` reads its `code`, and
    /// is called only when the span is recorded.
    pub(crate) fn answered(mut self, status: u16, portone_code: impl FnOnce() -> Option<i64>) {
        if let Some(span) = self.span.as_mut().filter(|span| span.is_recording()) {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if let Some(code) = portone_code().filter(|code| *code != 0) {
                span.set_attribute(KeyValue::new("portone.code", code));
            }
            if status >= 400 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_status(Status::error(""));
            }
        }
        self.end(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }

    /// No answer: `error_type` says why (`timeout`, `connect`, `transport`).
    pub(crate) fn failed(mut self, error_type: &'static str) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(""));
        }
        self.end(KeyValue::new("error.type", error_type));
    }

    /// Ends the span and records the duration, by method, host and
    /// `outcome` (the status code, or the error type without an answer).
    fn end(self, outcome: KeyValue) {
        if let Some(mut span) = self.span {
            span.end();
        }
        if let (Some(instruments), Some(host)) = (instruments(), self.host) {
            instruments.http_duration.record(
                self.started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("http.request.method", self.method),
                    KeyValue::new("server.address", host),
                    outcome,
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_is_named_from_its_path() {
        assert_eq!(
            split_rpc("portone.facade.v1.PaymentLinkService/CreatePaymentLink"),
            ("portone.facade.v1.PaymentLinkService", "CreatePaymentLink")
        );
    }
}
