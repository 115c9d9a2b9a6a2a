//! The SERVER span of each RPC and the CLIENT span of each upstream attempt,
//! with the OpenTelemetry semantic-convention attributes, and W3C trace
//! context in (from gRPC metadata) and out (to PortOne).
//!
//! These two spans are made on every call, so they are built with the
//! OpenTelemetry SDK directly rather than through `tracing` spans and
//! tracing-opentelemetry: that path added about 1.6 times as much facade
//! CPU per RPC (measured with the benchmark's tracing row). The server span's
//! [`Context`] is attached while the call is polled, so the client spans,
//! the `tracing` span of a token fetch and the log lines all find it as
//! their parent.

use std::{borrow::Cow, sync::OnceLock, time::Instant};

use http::HeaderMap;
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _},
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::{
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{SdkTracer, Span},
};

use super::instruments;

/// The tracer of our own spans; set once when a trace exporter runs.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Installs the tracer; from then on spans are made.
pub(super) fn install_tracer(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// The tracer, when spans are exported; when not, none are created.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// gRPC codes that make a SERVER span an error (OpenTelemetry RPC
/// conventions): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE, DATA_LOSS.
const SERVER_ERROR_CODES: [i32; 6] = [2, 4, 12, 13, 14, 15];

/// The name of a gRPC status code, for `error.type`.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

/// `(rpc.service, rpc.method)` of a gRPC path, without allocating for ours.
fn rpc_names(path: &str) -> (Cow<'static, str>, Cow<'static, str>) {
    const PREPARE: &str = "portone.facade.v1.PaymentPrepareService";
    const LINK: &str = "portone.facade.v1.PaymentLinkService";
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let service: Cow<'static, str> = match service {
        PREPARE => Cow::Borrowed(PREPARE),
        LINK => Cow::Borrowed(LINK),
        other => Cow::Owned(other.to_owned()),
    };
    let method: Cow<'static, str> = match method {
        "PreparePayment" => Cow::Borrowed("PreparePayment"),
        "GetPreparedPayment" => Cow::Borrowed("GetPreparedPayment"),
        "UpdatePreparedPayment" => Cow::Borrowed("UpdatePreparedPayment"),
        "CreatePaymentLink" => Cow::Borrowed("CreatePaymentLink"),
        "DisablePaymentLink" => Cow::Borrowed("DisablePaymentLink"),
        other => Cow::Owned(other.to_owned()),
    };
    (service, method)
}

/// The caller's W3C trace context and baggage, read from gRPC metadata.
fn caller_context(headers: &HeaderMap) -> Context {
    let trace_context = TraceContextPropagator::new();
    let baggage = BaggagePropagator::new();
    let extractor = HeaderExtractor(headers);
    let cx = trace_context.extract(&extractor);
    if headers.contains_key("baggage") {
        baggage.extract_with_context(&cx, &extractor)
    } else {
        cx
    }
}

/// One RPC: its SERVER span (when tracing is on) and its duration metric.
pub(crate) struct ServerCall {
    /// The caller's context with our SERVER span in it.
    context: Option<Context>,
    started: Instant,
    service: Cow<'static, str>,
    method: Cow<'static, str>,
}

impl ServerCall {
    /// Starts the span of the RPC in `request`, as a child of the caller's
    /// `traceparent`.
    pub(crate) fn start<B>(request: &http::Request<B>) -> ServerCall {
        let (service, method) = rpc_names(request.uri().path());
        let context = tracer().map(|tracer| {
            let parent = caller_context(request.headers());
            let authority = request.uri().authority();
            let mut attributes = Vec::with_capacity(8);
            attributes.extend([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.clone()),
                KeyValue::new("rpc.method", method.clone()),
            ]);
            if let Some(authority) = authority {
                attributes.push(KeyValue::new("server.address", authority.host().to_owned()));
                if let Some(port) = authority.port_u16() {
                    attributes.push(KeyValue::new("server.port", i64::from(port)));
                }
            }
            let span = tracer
                .span_builder(format!("{service}/{method}"))
                .with_kind(SpanKind::Server)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            parent.with_span(span)
        });
        ServerCall {
            context,
            started: Instant::now(),
            service,
            method,
        }
    }

    /// The context to poll the call in (its span is the current one there),
    /// when tracing is on.
    pub(crate) fn context(&self) -> Option<Context> {
        self.context.clone()
    }

    /// Records the outcome: status code on the span (ERROR for server-class
    /// codes), the span's end, and the duration metric.
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
        if server_error {
            // Server-class outcomes page the operator; the caller's own
            // errors (invalid, not found, …) are the caller's, not logged.
            tracing::warn!(
                rpc.method = %self.method,
                rpc.grpc.status_code = grpc_status,
                error.r#type = code_name(grpc_status),
                elapsed_ms = elapsed * 1000.0,
                "rpc failed"
            );
        }
        let Some(instruments) = instruments() else {
            return;
        };
        instruments.rpc_duration.record(
            elapsed,
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", self.service),
                KeyValue::new("rpc.method", self.method),
                KeyValue::new("rpc.grpc.status_code", i64::from(grpc_status)),
            ],
        );
    }
}

/// Records the order id on the current RPC's span (an order id, not
/// personal data).
pub(crate) fn record_merchant_uid(merchant_uid: &str) {
    if tracer().is_some() {
        Context::map_current(|cx| {
            if cx.has_active_span() {
                cx.span()
                    .set_attribute(KeyValue::new("merchant_uid", merchant_uid.to_owned()));
            }
        });
    }
}

/// One HTTP attempt to PortOne: its CLIENT span and duration metric.
pub(crate) struct ClientAttempt<'a> {
    span: Option<Span>,
    started: Instant,
    method: &'static str,
    host: &'a str,
}

impl<'a> ClientAttempt<'a> {
    /// Starts the span, a child of the current context (the RPC's span, or
    /// the token fetch's); `route` names the endpoint without ids
    /// (`/payments/prepare/{merchant_uid}`). `url` carries no query, so no
    /// secret can be in it.
    pub(crate) fn start(
        method: &'static str,
        route: &'static str,
        url: &str,
        host: &'a str,
        port: u16,
    ) -> ClientAttempt<'a> {
        let span = tracer().map(|tracer| {
            let attributes = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.full", url.to_owned()),
                KeyValue::new("server.address", host.to_owned()),
                KeyValue::new("server.port", i64::from(port)),
            ];
            Context::map_current(|parent| {
                tracer
                    .span_builder(format!("{method} {route}"))
                    .with_kind(SpanKind::Client)
                    .with_attributes(attributes)
                    .start_with_context(tracer, parent)
            })
        });
        ClientAttempt {
            span,
            started: Instant::now(),
            method,
            host,
        }
    }

    /// Adds `traceparent` (and the caller's `tracestate`) for this attempt's
    /// span. Baggage from the caller is not forwarded: PortOne is a third
    /// party.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        if let Some(span) = &self.span {
            let context = Context::new().with_remote_span_context(span.span_context().clone());
            TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
        }
    }

    /// PortOne answered with `status`; `portone_code` reads its `code`, and
    /// is only called when the span is recorded.
    pub(crate) fn answered(mut self, status: u16, portone_code: impl FnOnce() -> Option<i64>) {
        if let Some(span) = &mut self.span {
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
            span.end();
        }
        self.record(Some(status), None);
    }

    /// No answer: `error_type` says why (`timeout`, `connect`, `transport`).
    pub(crate) fn failed(mut self, error_type: &'static str) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(""));
            span.end();
        }
        self.record(None, Some(error_type));
    }

    fn record(self, status: Option<u16>, error_type: Option<&'static str>) {
        let Some(instruments) = instruments() else {
            return;
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", self.method),
            KeyValue::new("server.address", self.host.to_owned()),
        ];
        if let Some(status) = status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new("error.type", error_type));
        }
        instruments
            .http_duration
            .record(self.started.elapsed().as_secs_f64(), &attributes);
    }
}
