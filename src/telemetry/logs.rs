//! JSON log lines that carry the OpenTelemetry `trace_id` and `span_id` of
//! the span they were written in, so logs and traces join.

use std::{fmt, io::Write, sync::OnceLock, time::SystemTime};

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    dispatcher::WeakDispatch,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// Writes one JSON object per event to stdout.
#[derive(Default)]
pub(super) struct JsonLines {
    /// The dispatcher this layer is part of, to ask the OpenTelemetry layer
    /// for a span's context (a nested `get_default` would see none).
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        );
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().to_owned()));
        event.record(&mut Fields(&mut line));
        if let Some(span) = ctx.event_span(event)
            && let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade)
            && let Some(context) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)
        {
            let span_context = context.span().span_context().clone();
            if span_context.is_valid() {
                line.insert(
                    "trace_id".into(),
                    Value::String(span_context.trace_id().to_string()),
                );
                line.insert(
                    "span_id".into(),
                    Value::String(span_context.span_id().to_string()),
                );
            }
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// Collects an event's fields into the JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}
