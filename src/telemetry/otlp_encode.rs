//! OTLP protobuf encoding of finished spans, written straight from the SDK's
//! [`SpanData`] into bytes.
//!
//! opentelemetry-otlp 0.33 copies every span of a batch, converts it into
//! opentelemetry-proto's message structs (one allocation per id, name,
//! attribute key and string value) and only then encodes it; on this facade
//! that was the larger part of what tracing cost per call. Writing the wire
//! format directly allocates nothing per span. The messages and field
//! numbers are those of opentelemetry-proto v1 (`trace.proto`,
//! `common.proto`, `resource.proto`, `trace_service.proto`); the unit tests
//! below decode our bytes with opentelemetry-proto's own types and compare
//! them with its own conversion.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::{
    Array, InstrumentationScope, Key, KeyValue, Value,
    trace::{SpanContext, SpanKind, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags`: the flags say whether the parent is remote, and it is.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

/// Bytes reserved before each span is written: more than any span the
/// facade makes (about 300–400 bytes).
pub(super) const SPAN_ROOM: usize = 1024;

/// `value` as a protobuf varint, a byte at a time to `write`.
fn write_varint(mut value: u64, mut write: impl FnMut(u8)) {
    while value >= 0x80 {
        write((value as u8) | 0x80);
        value >>= 7;
    }
    write(value as u8);
}

/// `value` as a protobuf varint: the bytes, and how many of them are used.
fn varint(value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut used = 0;
    write_varint(value, |byte| {
        bytes[used] = byte;
        used += 1;
    });
    (bytes, used)
}

/// Byte by byte: almost every varint here (tags, lengths, small numbers)
/// is one or two bytes, and a variable-length slice copy would cost a call
/// into `memcpy` for each.
fn put_varint(out: &mut Vec<u8>, value: u64) {
    write_varint(value, |byte| out.push(byte));
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

/// A length-delimited field, written even when empty (a set oneof member or
/// a present message).
fn put_len(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `string` or `bytes` field, left out when empty (proto3 default).
fn put_str(out: &mut Vec<u8>, field: u32, text: &str) {
    if !text.is_empty() {
        put_len(out, field, text.as_bytes());
    }
}

fn put_uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_tag(out, field, VARINT);
        put_varint(out, value);
    }
}

fn put_fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_tag(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn put_fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        put_tag(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A nested message whose length is expected to fit one varint byte: see
/// [`put_message_in`].
fn put_message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_message_in(out, field, 1, body);
}

/// A nested message: room for a `prefix`-byte length is left, the body is
/// written after it, and the length put in that room. The body is moved
/// only when its length takes another number of bytes than `prefix`.
fn put_message_in(out: &mut Vec<u8>, field: u32, prefix: usize, body: impl FnOnce(&mut Vec<u8>)) {
    put_tag(out, field, LEN);
    let at = out.len();
    out.resize(at + prefix, 0);
    body(out);
    let body_len = out.len() - at - prefix;
    if prefix == 1 && body_len < 0x80 {
        out[at] = body_len as u8;
        return;
    }
    let (length, used) = varint(body_len as u64);
    if used != prefix {
        let end = out.len();
        if used > prefix {
            out.resize(end + used - prefix, 0);
        }
        out.copy_within(at + prefix..end, at + used);
        out.truncate(at + used + body_len);
    }
    out[at..at + used].copy_from_slice(&length[..used]);
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// `AnyValue` body.
fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(value) => {
            put_tag(out, 2, VARINT);
            put_varint(out, u64::from(*value));
        }
        Value::I64(value) => {
            put_tag(out, 3, VARINT);
            put_varint(out, *value as u64);
        }
        Value::F64(value) => {
            put_tag(out, 4, FIXED64);
            out.extend_from_slice(&value.to_le_bytes());
        }
        Value::String(value) => put_len(out, 1, value.as_str().as_bytes()),
        Value::Array(array) => put_message(out, 5, |out| put_array(out, array)),
        // Value is non-exhaustive; a kind added later goes as its text.
        other => put_len(out, 1, other.to_string().as_bytes()),
    }
}

/// `ArrayValue` body: `values` (1).
fn put_array(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(values) => {
            for value in values {
                put_message(out, 1, |out| put_any_value(out, &Value::Bool(*value)));
            }
        }
        Array::I64(values) => {
            for value in values {
                put_message(out, 1, |out| put_any_value(out, &Value::I64(*value)));
            }
        }
        Array::F64(values) => {
            for value in values {
                put_message(out, 1, |out| put_any_value(out, &Value::F64(*value)));
            }
        }
        Array::String(values) => {
            for value in values {
                put_message(out, 1, |out| put_len(out, 1, value.as_str().as_bytes()));
            }
        }
        other => {
            put_message(out, 1, |out| {
                put_len(out, 1, Value::Array(other.clone()).to_string().as_bytes())
            });
        }
    }
}

/// Repeated `KeyValue` in `field`: `key` (1), `value` (2).
fn put_key_values<'a>(
    out: &mut Vec<u8>,
    field: u32,
    pairs: impl Iterator<Item = (&'a Key, &'a Value)>,
) {
    for (key, value) in pairs {
        put_message(out, field, |out| {
            put_str(out, 1, key.as_str());
            put_message(out, 2, |out| put_any_value(out, value));
        });
    }
}

/// [`put_key_values`] of `attributes`.
fn put_attributes<'a>(
    out: &mut Vec<u8>,
    field: u32,
    attributes: impl Iterator<Item = &'a KeyValue>,
) {
    put_key_values(
        out,
        field,
        attributes.map(|attribute| (&attribute.key, &attribute.value)),
    );
}

fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `flags` of a span or link: the W3C trace flags, and whether the span
/// context (the parent's, for a span) is remote.
fn span_flags(context: &SpanContext, remote: bool) -> u32 {
    let remote = if remote { CONTEXT_IS_REMOTE } else { 0 };
    u32::from(context.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE | remote
}

fn put_ids(out: &mut Vec<u8>, context: &SpanContext) {
    put_len(out, 1, &context.trace_id().to_bytes());
    put_len(out, 2, &context.span_id().to_bytes());
    put_str(out, 3, &context.trace_state().header());
}

/// One `Span` as field 2 of `ScopeSpans`.
pub(super) fn put_span(out: &mut Vec<u8>, span: &SpanData) {
    // Room for a span of the facade's size at once, so that the many small
    // writes below never grow the buffer; its length (128 bytes to 16 KiB)
    // takes two bytes.
    out.reserve(SPAN_ROOM);
    put_message_in(out, 2, 2, |out| {
        put_ids(out, &span.span_context);
        if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
            put_len(out, 4, &span.parent_span_id.to_bytes());
        }
        put_str(out, 5, &span.name);
        put_uint(out, 6, kind_number(&span.span_kind));
        put_fixed64(out, 7, nanos(span.start_time));
        put_fixed64(out, 8, nanos(span.end_time));
        put_attributes(out, 9, span.attributes.iter());
        put_uint(out, 10, u64::from(span.dropped_attributes_count));
        for event in span.events.iter() {
            put_message(out, 11, |out| {
                put_fixed64(out, 1, nanos(event.timestamp));
                put_str(out, 2, &event.name);
                put_attributes(out, 3, event.attributes.iter());
                put_uint(out, 4, u64::from(event.dropped_attributes_count));
            });
        }
        put_uint(out, 12, u64::from(span.events.dropped_count));
        for link in span.links.iter() {
            put_message(out, 13, |out| {
                put_ids(out, &link.span_context);
                put_attributes(out, 4, link.attributes.iter());
                put_uint(out, 5, u64::from(link.dropped_attributes_count));
                put_fixed32(
                    out,
                    6,
                    span_flags(&link.span_context, link.span_context.is_remote()),
                );
            });
        }
        put_uint(out, 14, u64::from(span.links.dropped_count));
        put_message(out, 15, |out| match &span.status {
            Status::Unset => {}
            Status::Ok => put_uint(out, 3, 1),
            Status::Error { description } => {
                put_str(out, 2, description);
                put_uint(out, 3, 2);
            }
        });
        put_fixed32(
            out,
            16,
            span_flags(&span.span_context, span.parent_span_is_remote),
        );
    });
}

/// `Resource` body: its attributes.
pub(super) fn resource(resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    put_key_values(&mut out, 1, resource.iter());
    out
}

/// An `ExportTraceServiceRequest` with one resource and one scope, whose
/// spans are `spans` (each written by [`put_span`]). The lengths are worked
/// out first, so the spans are copied once.
pub(super) fn request(
    resource: &[u8],
    resource_schema_url: Option<&str>,
    scope: &InstrumentationScope,
    spans: &[u8],
) -> Vec<u8> {
    let mut scope_head = Vec::new();
    put_message(&mut scope_head, 1, |out| {
        put_str(out, 1, scope.name());
        put_str(out, 2, scope.version().unwrap_or_default());
        put_attributes(out, 3, scope.attributes());
    });
    let mut scope_tail = Vec::new();
    put_str(&mut scope_tail, 3, scope.schema_url().unwrap_or_default());
    let scope_spans_len = scope_head.len() + spans.len() + scope_tail.len();

    let mut resource_head = Vec::new();
    put_len(&mut resource_head, 1, resource);
    put_tag(&mut resource_head, 2, LEN);
    put_varint(&mut resource_head, scope_spans_len as u64);
    let mut resource_tail = Vec::new();
    put_str(
        &mut resource_tail,
        3,
        resource_schema_url.unwrap_or_default(),
    );
    let resource_spans_len = resource_head.len() + scope_spans_len + resource_tail.len();

    let mut out = Vec::with_capacity(resource_spans_len + 8);
    put_tag(&mut out, 1, LEN);
    put_varint(&mut out, resource_spans_len as u64);
    out.extend_from_slice(&resource_head);
    out.extend_from_slice(&scope_head);
    out.extend_from_slice(spans);
    out.extend_from_slice(&scope_tail);
    out.extend_from_slice(&resource_tail);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use opentelemetry::{
        StringValue,
        trace::{Event, Link, SpanId, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_proto::{
        tonic::{
            collector::trace::v1::ExportTraceServiceRequest,
            trace::v1::{ScopeSpans, Span as ProtoSpan},
        },
        transform::{
            common::tonic::ResourceAttributesWithSchema,
            trace::tonic::group_spans_by_resource_and_scope,
        },
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn context(span_id: &str, remote: bool, state: TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex(span_id).unwrap(),
            TraceFlags::SAMPLED,
            remote,
            state,
        )
    }

    /// A server span with every kind of field set: a remote parent, a trace
    /// state, each attribute type (with a name longer than 127 bytes, so
    /// lengths take two bytes), events, links, dropped counts and an error.
    fn full_span() -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            start + Duration::from_micros(3),
            vec![KeyValue::new("attempt", 2_i64)],
            1,
        ));
        events.dropped_count = 4;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            context("1111111111111111", true, TraceState::NONE),
            vec![KeyValue::new("why", "batch")],
            0,
        ));
        links.dropped_count = 2;
        SpanData {
            span_context: context(
                "00f067aa0ba902b7",
                false,
                TraceState::from_key_value([("vendor", "value")]).unwrap(),
            ),
            parent_span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: "portone.facade.v1.PaymentPrepareService/GetPreparedPayment".into(),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("server.port", 50051_i64),
                KeyValue::new("negative", -7_i64),
                KeyValue::new("flag", true),
                KeyValue::new("ratio", 0.25_f64),
                KeyValue::new("merchant_uid", "주문-2026/11?#%".repeat(10)),
                KeyValue::new("empty", ""),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec![StringValue::from("a"), "b".into()])),
                ),
                KeyValue::new("numbers", Value::Array(Array::I64(vec![1, -2]))),
                KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
                KeyValue::new("floats", Value::Array(Array::F64(vec![1.5]))),
            ],
            dropped_attributes_count: 3,
            events,
            links,
            status: Status::error("INTERNAL"),
            instrumentation_scope: InstrumentationScope::builder("portone-facade").build(),
        }
    }

    /// A client span as the facade makes them: local parent, no events.
    pub(in crate::telemetry) fn client_span(status: Status) -> SpanData {
        let mut span = full_span();
        span.span_context = context("a3ce929d0e0e4736", false, TraceState::NONE);
        span.parent_span_is_remote = false;
        span.span_kind = SpanKind::Client;
        span.name = "GET /payments/prepare/{merchant_uid}".into();
        span.attributes = vec![KeyValue::new("http.request.method", "GET")];
        span.dropped_attributes_count = 0;
        span.events = SpanEvents::default();
        span.links = SpanLinks::default();
        span.status = status;
        span
    }

    fn root_span() -> SpanData {
        let mut span = client_span(Status::Unset);
        span.parent_span_id = SpanId::INVALID;
        span.span_kind = SpanKind::Internal;
        span
    }

    fn encoded(span: &SpanData) -> ProtoSpan {
        let mut bytes = Vec::new();
        put_span(&mut bytes, span);
        let mut scope_spans = ScopeSpans::decode(bytes.as_slice()).unwrap();
        assert_eq!(scope_spans.spans.len(), 1);
        scope_spans.spans.remove(0)
    }

    #[test]
    fn each_span_decodes_as_opentelemetry_proto_converts_it() {
        for span in [
            full_span(),
            client_span(Status::Unset),
            client_span(Status::Ok),
            client_span(Status::error("")),
            root_span(),
        ] {
            assert_eq!(
                encoded(&span),
                ProtoSpan::from(span.clone()),
                "{}",
                span.name
            );
        }
    }

    #[test]
    fn a_span_is_encoded_as_prost_encodes_the_converted_span() {
        // Field order and default elision too, not only the decoded values.
        for span in [full_span(), client_span(Status::Ok), root_span()] {
            let mut ours = Vec::new();
            put_span(&mut ours, &span);
            let theirs = ScopeSpans {
                spans: vec![ProtoSpan::from(span)],
                ..ScopeSpans::default()
            }
            .encode_to_vec();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn spans_of_every_length_class_are_encoded_as_prost_encodes_them() {
        // The span's length is given room for two bytes; below 128 bytes and
        // from 16 KiB on it takes one and three, so the body moves.
        let mut tiny = root_span();
        tiny.name = "x".into();
        tiny.attributes.clear();
        let mut huge = client_span(Status::Ok);
        huge.attributes
            .push(KeyValue::new("big", "b".repeat(20_000)));
        for (span, length_bytes) in [(tiny, 1), (client_span(Status::Ok), 2), (huge, 3)] {
            let mut ours = Vec::new();
            put_span(&mut ours, &span);
            let proto = ProtoSpan::from(span);
            assert_eq!(ours.len(), 1 + length_bytes + proto.encoded_len());
            let theirs = ScopeSpans {
                spans: vec![proto],
                ..ScopeSpans::default()
            }
            .encode_to_vec();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn a_request_decodes_as_the_request_opentelemetry_otlp_would_send() {
        let resource = Resource::builder_empty()
            .with_service_name("portone-facade")
            .with_attributes([
                KeyValue::new("service.version", "0.1.0"),
                KeyValue::new("k8s.namespace.name", "payments"),
            ])
            .build();
        let scope = InstrumentationScope::builder("portone-facade")
            .with_version("0.1.0")
            .with_attributes([KeyValue::new("scope.attribute", 1_i64)])
            .build();
        let spans: Vec<SpanData> = [full_span(), client_span(Status::Ok), root_span()]
            .into_iter()
            .map(|mut span| {
                span.instrumentation_scope = scope.clone();
                span
            })
            .collect();
        let mut encoded_spans = Vec::new();
        for span in &spans {
            put_span(&mut encoded_spans, span);
        }

        let ours = request(
            &super::resource(&resource),
            resource.schema_url(),
            &scope,
            &encoded_spans,
        );

        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(
            ExportTraceServiceRequest::decode(ours.as_slice()).unwrap(),
            expected
        );
    }
}
