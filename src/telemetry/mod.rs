//! Logs, traces and metrics.
//!
//! Logs are JSON lines (or text) on stdout, carrying `trace_id` and `span_id`
//! when tracing is on. Traces and metrics go over OTLP/gRPC, configured only
//! through the standard `OTEL_*` variables; with no endpoint set, no exporter
//! runs and no span is even created, so nothing is slowed down.

mod logs;
mod metrics;
mod otlp_encode;
mod span_batch;
mod spans;

use std::time::Duration;

use opentelemetry::{KeyValue, global, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    resource::{EnvResourceDetector, TelemetryResourceDetector},
    trace::SdkTracerProvider,
};
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, fmt, layer::SubscriberExt, registry::Registry,
    util::SubscriberInitExt,
};

pub(crate) use self::{
    metrics::{ActiveRequestsGauge, instruments},
    spans::{ClientAttempt, ServerCall, UpstreamHost, record_merchant_uid},
};
use crate::config::LogFormat;

/// Whether spans are exported; when not, none are created.
pub(crate) fn tracing_enabled() -> bool {
    spans::tracer().is_some()
}

/// Longest wait for the exporters to flush at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed providers; flush and stop them with [`Telemetry::shutdown`].
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// `VAR` is set to something other than blank.
fn env_set(name: &str) -> bool {
    env_value(name).is_some()
}

fn env_is(name: &str, value: &str) -> bool {
    env_value(name).is_some_and(|v| v.eq_ignore_ascii_case(value))
}

/// `VAR`, trimmed, unless it is unset or blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

impl Telemetry {
    /// Installs logging and, when an OTLP endpoint is configured, the trace
    /// and metric exporters. Call it inside the multi-thread tokio runtime:
    /// the exporters' gRPC channels live there.
    pub fn init(format: LogFormat) -> Telemetry {
        let disabled = env_is("OTEL_SDK_DISABLED", "true");
        let traces = !disabled
            && !env_is("OTEL_TRACES_EXPORTER", "none")
            && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        let metrics = !disabled
            && !env_is("OTEL_METRICS_EXPORTER", "none")
            && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || env_set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));

        let mut problems = Vec::new();
        let tracer_provider = traces.then(|| tracer_provider(&mut problems)).flatten();
        let meter_provider = metrics.then(|| meter_provider(&mut problems)).flatten();

        let log_filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let log_layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
            LogFormat::Json => logs::JsonLines.with_filter(log_filter).boxed(),
            LogFormat::Text => fmt::layer().with_filter(log_filter).boxed(),
        };
        // The per-call spans are made with the SDK (see `spans`); this layer
        // exports the few `tracing` spans of our own (the token fetch),
        // whatever RUST_LOG says.
        let tracer = tracer_provider
            .as_ref()
            .map(|provider| provider.tracer("portone-facade"));
        let otel_layer = tracer.clone().map(|tracer| {
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_filter(Targets::new().with_target("portone_facade", tracing::Level::INFO))
        });
        if tracing_subscriber::registry()
            .with(log_layer)
            .with(otel_layer)
            .try_init()
            .is_err()
        {
            eprintln!("portone-facade: logging was already set up");
        }
        if let Some(tracer) = tracer {
            spans::install_tracer(tracer);
        }
        if let Some(provider) = &meter_provider {
            global::set_meter_provider(provider.clone());
            metrics::install_instruments();
        }
        for problem in problems {
            tracing::error!(%problem, "telemetry exporter not started");
        }
        if env_set("OTEL_EXPORTER_OTLP_PROTOCOL") && !env_is("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        {
            tracing::warn!(
                "only OTEL_EXPORTER_OTLP_PROTOCOL=grpc is supported; exporting over gRPC"
            );
        }
        tracing::info!(
            traces = tracer_provider.is_some(),
            metrics = meter_provider.is_some(),
            "telemetry"
        );
        Telemetry {
            tracer_provider,
            meter_provider,
        }
    }

    /// Flushes what is buffered and stops the exporters, bounded in time, so
    /// that the spans of the last seconds before SIGTERM are not lost.
    pub async fn shutdown(self) {
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(provider) = self.tracer_provider {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
            if let Some(provider) = self.meter_provider {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
        });
        if tokio::time::timeout(SHUTDOWN_TIMEOUT * 2, flush)
            .await
            .is_err()
        {
            eprintln!("portone-facade: telemetry did not flush in time");
        }
    }
}

/// `service.name` defaults to `portone-facade`; `OTEL_RESOURCE_ATTRIBUTES`
/// and then `OTEL_SERVICE_NAME` override it.
fn resource() -> Resource {
    let mut builder = Resource::builder_empty()
        .with_service_name("portone-facade")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ]);
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

/// Spans that may wait for export, in whole batches, before new ones are
/// dropped, unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise. The SDK's 2048
/// lasts about 50 ms at 20,000 RPC/s (two spans each): shorter than one
/// export's round trip on a busy machine, and spans were dropped in the
/// benchmark.
const DEFAULT_QUEUE_SPANS: usize = 16_384;
/// Spans per export request, unless `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` says
/// otherwise: about 650 KB, well under a collector's usual 4 MiB limit, in
/// a quarter as many round trips as the SDK's 512.
const DEFAULT_EXPORT_BATCH_SPANS: usize = 2_048;

/// Batch span export over OTLP/gRPC; endpoint, headers, timeout, sampler and
/// batch settings come from the `OTEL_*` variables.
fn tracer_provider(problems: &mut Vec<String>) -> Option<SdkTracerProvider> {
    let processor =
        span_batch::ExportConfig::from_env(DEFAULT_EXPORT_BATCH_SPANS, DEFAULT_QUEUE_SPANS)
            .and_then(span_batch::SpanBatcher::start)
            .map_err(|error| problems.push(format!("traces: {error}")))
            .ok()?;
    Some(
        SdkTracerProvider::builder()
            .with_resource(resource())
            .with_span_processor(processor)
            .build(),
    )
}

/// Periodic metric export over OTLP/gRPC (`OTEL_METRIC_EXPORT_INTERVAL`).
fn meter_provider(problems: &mut Vec<String>) -> Option<SdkMeterProvider> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| problems.push(format!("metrics: {error}")))
        .ok()?;
    Some(
        SdkMeterProvider::builder()
            .with_resource(resource())
            .with_reader(PeriodicReader::builder(exporter).build())
            .build(),
    )
}
