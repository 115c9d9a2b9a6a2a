//! The SERVER span of each RPC and the CLIENT span of each upstream attempt,
//! with the OpenTelemetry semantic-convention attributes, and W3C trace
//! context in (from gRPC metadata) and out (to PortOne).

use std::{borrow::Cow, time::Instant};

use http::HeaderMap;
use opentelemetry::{KeyValue, global, propagation::TextMapPropagator};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{instruments, tracing_enabled};

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

/// One RPC: its SERVER span (when tracing is on) and its duration metric.
pub(crate) struct ServerCall {
    span: Span,
    started: Instant,
    service: Cow<'static, str>,
    method: Cow<'static, str>,
}

impl ServerCall {
    /// Starts the span of the RPC in `request`, as a child of the caller's
    /// `traceparent` (set before the span is ever entered).
    pub(crate) fn start<B>(request: &http::Request<B>) -> ServerCall {
        let (service, method) = rpc_names(request.uri().path());
        let span = if tracing_enabled() {
            let authority = request.uri().authority();
            let span = tracing::info_span!(
                "rpc",
                otel.name = format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = Empty,
                server.address = authority.map(|a| a.host()),
                server.port = authority.and_then(|a| a.port_u16()),
                error.r#type = Empty,
                merchant_uid = Empty,
            );
            let parent = global::get_text_map_propagator(|propagator| {
                propagator.extract(&HeaderExtractor(request.headers()))
            });
            let _ = span.set_parent(parent);
            span
        } else {
            Span::none()
        };
        ServerCall {
            span,
            started: Instant::now(),
            service,
            method,
        }
    }

    /// The span to run the call in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the outcome: status code on the span (ERROR for server-class
    /// codes) and the duration metric.
    pub(crate) fn finish(self, grpc_status: i32) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let server_error = SERVER_ERROR_CODES.contains(&grpc_status);
        if !self.span.is_disabled() {
            self.span.record("rpc.grpc.status_code", grpc_status);
            if server_error {
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", code_name(grpc_status));
            }
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
    if tracing_enabled() {
        Span::current().record("merchant_uid", merchant_uid);
    }
}

/// One HTTP attempt to PortOne: its CLIENT span and duration metric.
pub(crate) struct ClientAttempt<'a> {
    span: Span,
    started: Instant,
    method: &'static str,
    host: &'a str,
}

impl<'a> ClientAttempt<'a> {
    /// Starts the span; `route` names the endpoint without ids
    /// (`/payments/prepare/{merchant_uid}`). `url` carries no query, so no
    /// secret can be in it.
    pub(crate) fn start(
        method: &'static str,
        route: &'static str,
        url: &str,
        host: &'a str,
        port: u16,
    ) -> ClientAttempt<'a> {
        let span = if tracing_enabled() {
            tracing::info_span!(
                "http",
                otel.name = format_args!("{method} {route}"),
                otel.kind = "client",
                otel.status_code = Empty,
                http.request.method = method,
                url.full = url,
                server.address = host,
                server.port = port,
                http.response.status_code = Empty,
                error.r#type = Empty,
                portone.code = Empty,
            )
        } else {
            Span::none()
        };
        ClientAttempt {
            span,
            started: Instant::now(),
            method,
            host,
        }
    }

    /// The span to run the attempt in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Adds `traceparent` for this attempt's span. Baggage from the caller is
    /// not forwarded: PortOne is a third party.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        if !self.span.is_disabled() {
            TraceContextPropagator::new()
                .inject_context(&self.span.context(), &mut HeaderInjector(headers));
        }
    }

    /// PortOne answered with `status`; `portone_code` reads its `code`, and
    /// is only called when the span is recorded.
    pub(crate) fn answered(self, status: u16, portone_code: impl FnOnce() -> Option<i64>) {
        if !self.span.is_disabled() {
            self.span.record("http.response.status_code", status);
            if let Some(code) = portone_code().filter(|code| *code != 0) {
                self.span.record("portone.code", code);
            }
            if status >= 400 {
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", status);
            }
        }
        self.record(Some(status), None);
    }

    /// No answer: `error_type` says why (`timeout`, `connect`, `transport`).
    pub(crate) fn failed(self, error_type: &'static str) {
        if !self.span.is_disabled() {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", error_type);
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
