//! Log lines: tracing-subscriber's own JSON (or text) formatter, with the
//! OpenTelemetry `trace_id` and `span_id` added to every line written inside
//! a traced call, written to stdout by a thread of their own.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::{Format, Json, Writer},
        time::SystemTime,
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::config::LogFormat;

/// Lines that may wait for the writer thread before a logging thread waits
/// for it in turn.
const BUFFERED_LINES: usize = 64 * 1024;

/// Installs the global subscriber (`RUST_LOG`, default `info`). Returns the
/// guard that flushes the writer when dropped, unless a subscriber was
/// already installed.
///
/// The writer is never lossy: when stdout is slower than the lines coming
/// in and its buffer is full, the thread that logs waits, so no line
/// (among them, later, the audit trail) is ever dropped silently.
pub(super) fn install(format: LogFormat) -> Option<WorkerGuard> {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    let installed = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(
                layer.json().event_format(WithTraceIds(
                    tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(false),
                )),
            )
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init(),
    };
    match installed {
        Ok(()) => Some(guard),
        Err(_) => {
            eprintln!("portone-facade: logging was already set up");
            None
        }
    }
}

/// The library's JSON line, with the ids of the OpenTelemetry span current
/// where the event was written (the RPC's span while a call is polled).
/// The JSON formatter has no hook for fields that are not the event's own,
/// so the two ids are added to the end of the object it wrote.
struct WithTraceIds(Format<Json, SystemTime>);

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let span_context = span.span_context();
            span_context
                .is_valid()
                .then(|| (span_context.trace_id(), span_context.span_id()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.trim_end().strip_suffix('}') {
            Some(object) => writeln!(
                writer,
                r#"{object},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#
            ),
            None => writer.write_str(&line),
        }
    }
}
