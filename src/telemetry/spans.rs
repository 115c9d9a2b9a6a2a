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

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
    time::Instant,
};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, Tracer as _},
};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::{
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{SdkTracer, Span},
};

use super::{
    instruments,
    metrics::{BoundSlots, STATUS_CODES},
};

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

/// How many RPCs the facade serves.
pub(super) const OUR_RPC_COUNT: usize = 5;

/// Our own RPCs: `(path, rpc.service, rpc.method)`. Their span names and
/// attributes are static strings, so that making and exporting a span
/// copies no name.
const OUR_RPCS: [(&str, &str, &str); OUR_RPC_COUNT] = [
    (
        "/portone.facade.v1.PaymentPrepareService/PreparePayment",
        "portone.facade.v1.PaymentPrepareService",
        "PreparePayment",
    ),
    (
        "/portone.facade.v1.PaymentPrepareService/GetPreparedPayment",
        "portone.facade.v1.PaymentPrepareService",
        "GetPreparedPayment",
    ),
    (
        "/portone.facade.v1.PaymentPrepareService/UpdatePreparedPayment",
        "portone.facade.v1.PaymentPrepareService",
        "UpdatePreparedPayment",
    ),
    (
        "/portone.facade.v1.PaymentLinkService/CreatePaymentLink",
        "portone.facade.v1.PaymentLinkService",
        "CreatePaymentLink",
    ),
    (
        "/portone.facade.v1.PaymentLinkService/DisablePaymentLink",
        "portone.facade.v1.PaymentLinkService",
        "DisablePaymentLink",
    ),
];

/// The span name (`<service>/<method>`), `rpc.service` and `rpc.method` of
/// a gRPC path, and its index in [`OUR_RPCS`] when it is ours.
struct RpcNames {
    span: Cow<'static, str>,
    service: Cow<'static, str>,
    method: Cow<'static, str>,
    ours: Option<usize>,
}

impl RpcNames {
    fn of(path: &str) -> RpcNames {
        if let Some((index, (path, service, method))) = OUR_RPCS
            .iter()
            .enumerate()
            .find(|(_, (known, _, _))| *known == path)
        {
            return RpcNames {
                span: Cow::Borrowed(&path[1..]),
                service: Cow::Borrowed(service),
                method: Cow::Borrowed(method),
                ours: Some(index),
            };
        }
        let span = path.trim_start_matches('/');
        let (service, method) = span.split_once('/').unwrap_or((span, ""));
        RpcNames {
            span: Cow::Owned(span.to_owned()),
            service: Cow::Owned(service.to_owned()),
            method: Cow::Owned(method.to_owned()),
            ours: None,
        }
    }
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
    /// Index in [`OUR_RPCS`].
    ours: Option<usize>,
}

impl ServerCall {
    /// Starts the span of the RPC in `request`, as a child of the caller's
    /// `traceparent`.
    pub(crate) fn start<B>(request: &http::Request<B>) -> ServerCall {
        let RpcNames {
            span: span_name,
            service,
            method,
            ours,
        } = RpcNames::of(request.uri().path());
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
                .span_builder(span_name)
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
            ours,
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
        let slot = self
            .ours
            .zip(usize::try_from(grpc_status).ok())
            .and_then(|(rpc, code)| (code < STATUS_CODES).then_some(rpc * STATUS_CODES + code));
        let (service, method) = (self.service, self.method);
        instruments
            .rpc_duration_bound
            .record(&instruments.rpc_duration, slot, elapsed, || {
                [
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", service),
                    KeyValue::new("rpc.method", method),
                    KeyValue::new("rpc.grpc.status_code", i64::from(grpc_status)),
                ]
            });
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

/// HTTP methods by their `http.request.method` name; any other is `_OTHER`.
const HTTP_METHODS: [(Method, &str); 3] = [
    (Method::GET, "GET"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
];

/// `http.request.method` of the method at `known` in [`HTTP_METHODS`].
fn http_method_name(known: Option<usize>) -> &'static str {
    known.map_or("_OTHER", |index| HTTP_METHODS[index].1)
}

/// An upstream host as the spans and metrics of its requests name it. Made
/// once per host, so that no request copies its name, and so that the
/// duration of its 200 answers (nearly all of them) is recorded through
/// handles bound once per method.
pub(crate) struct UpstreamHost {
    name: Arc<str>,
    port: u16,
    /// `http.client.request.duration` for a 200 answer, by the index of the
    /// method in [`HTTP_METHODS`].
    answered_ok: BoundSlots<{ HTTP_METHODS.len() }>,
}

impl UpstreamHost {
    pub(crate) fn new(name: &str, port: u16) -> UpstreamHost {
        UpstreamHost {
            name: Arc::from(name),
            port,
            answered_ok: BoundSlots::new(),
        }
    }
}

/// One HTTP attempt to PortOne: its CLIENT span and duration metric.
pub(crate) struct ClientAttempt<'a> {
    span: Option<Span>,
    started: Instant,
    /// Index of the method in [`HTTP_METHODS`].
    known_method: Option<usize>,
    host: &'a UpstreamHost,
}

impl<'a> ClientAttempt<'a> {
    /// Starts the span, a child of the current context (the RPC's span, or
    /// the token fetch's); `span_name` is the method and the endpoint without
    /// ids (`GET /payments/prepare/{merchant_uid}`). `url` carries no query,
    /// so no secret can be in it.
    pub(crate) fn start(
        method: &Method,
        span_name: &'static str,
        url: &str,
        host: &'a UpstreamHost,
    ) -> ClientAttempt<'a> {
        let known_method = HTTP_METHODS.iter().position(|(known, _)| known == method);
        let span = tracer().map(|tracer| {
            // Room for what `answered` or `failed` adds, so that it does
            // not reallocate.
            let mut attributes = Vec::with_capacity(8);
            attributes.extend([
                KeyValue::new("http.request.method", http_method_name(known_method)),
                KeyValue::new("url.full", url.to_owned()),
                KeyValue::new("server.address", Arc::clone(&host.name)),
                KeyValue::new("server.port", i64::from(host.port)),
            ]);
            Context::map_current(|parent| {
                tracer
                    .span_builder(span_name)
                    .with_kind(SpanKind::Client)
                    .with_attributes(attributes)
                    .start_with_context(tracer, parent)
            })
        });
        ClientAttempt {
            span,
            started: Instant::now(),
            known_method,
            host,
        }
    }

    /// The W3C headers to send with this attempt: `traceparent` for its
    /// span, and the caller's `tracestate` when there was one. Baggage from
    /// the caller is not forwarded: PortOne is a third party.
    pub(crate) fn trace_headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        let span_context = self
            .span
            .as_ref()
            .map(|span| span.span_context())
            .filter(|span_context| span_context.is_valid());
        let traceparent = span_context.and_then(|span_context| {
            HeaderValue::from_bytes(&traceparent(span_context))
                .ok()
                .map(|value| (HeaderName::from_static("traceparent"), value))
        });
        let tracestate = span_context
            .map(|span_context| span_context.trace_state().header())
            .filter(|state| !state.is_empty())
            .and_then(|state| HeaderValue::from_str(&state).ok())
            .map(|value| (HeaderName::from_static("tracestate"), value));
        traceparent.into_iter().chain(tracestate)
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
        let ok_slot = self.known_method.filter(|_| status == 200);
        self.record(
            ok_slot,
            KeyValue::new("http.response.status_code", i64::from(status)),
        );
    }

    /// No answer: `error_type` says why (`timeout`, `connect`, `transport`).
    pub(crate) fn failed(mut self, error_type: &'static str) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(""));
            span.end();
        }
        self.record(None, KeyValue::new("error.type", error_type));
    }

    /// Records the duration, by method, host and `outcome` (the status code,
    /// or the error type when there was no answer); through the host's
    /// bound handle of `ok_slot` for a 200 answer.
    fn record(self, ok_slot: Option<usize>, outcome: KeyValue) {
        let Some(instruments) = instruments() else {
            return;
        };
        self.host.answered_ok.record(
            &instruments.http_duration,
            ok_slot,
            self.started.elapsed().as_secs_f64(),
            || {
                [
                    KeyValue::new("http.request.method", http_method_name(self.known_method)),
                    KeyValue::new("server.address", Arc::clone(&self.host.name)),
                    outcome,
                ]
            },
        );
    }
}

/// `traceparent` for `span_context`: version 00, trace id, span id, flags.
fn traceparent(span_context: &SpanContext) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'-'; 55];
    let mut write_hex = |at: usize, bytes: &[u8]| {
        for (i, byte) in bytes.iter().enumerate() {
            text[at + 2 * i] = HEX[usize::from(byte >> 4)];
            text[at + 2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
    };
    write_hex(0, &[0]);
    write_hex(3, &span_context.trace_id().to_bytes());
    write_hex(36, &span_context.span_id().to_bytes());
    write_hex(
        53,
        &[(span_context.trace_flags() & TraceFlags::SAMPLED).to_u8()],
    );
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::{SpanId, TraceId, TraceState};

    use super::*;

    fn span_context(flags: TraceFlags) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            flags,
            false,
            TraceState::NONE,
        )
    }

    #[test]
    fn traceparent_is_written_as_the_w3c_propagator_writes_it() {
        for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
            let span_context = span_context(flags);
            let mut headers = HashMap::new();
            TraceContextPropagator::new().inject_context(
                &Context::new().with_remote_span_context(span_context.clone()),
                &mut headers,
            );
            assert_eq!(
                std::str::from_utf8(&traceparent(&span_context)).unwrap(),
                headers["traceparent"]
            );
        }
    }

    #[test]
    fn our_rpcs_are_named_by_static_strings() {
        let ours = RpcNames::of("/portone.facade.v1.PaymentLinkService/CreatePaymentLink");
        assert!(matches!(ours.span, Cow::Borrowed(_)));
        assert_eq!(
            ours.span,
            "portone.facade.v1.PaymentLinkService/CreatePaymentLink"
        );
        assert_eq!(ours.service, "portone.facade.v1.PaymentLinkService");
        assert_eq!(ours.method, "CreatePaymentLink");
    }

    #[test]
    fn an_unknown_method_is_named_from_its_path() {
        let other = RpcNames::of("/portone.facade.v1.PaymentLinkService/Unknown");
        assert_eq!(other.span, "portone.facade.v1.PaymentLinkService/Unknown");
        assert_eq!(other.service, "portone.facade.v1.PaymentLinkService");
        assert_eq!(other.method, "Unknown");
    }
}
