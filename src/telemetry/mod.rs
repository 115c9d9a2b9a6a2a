//! Logs, traces and metrics.
//!
//! Logs are JSON lines (or text) on stdout, written off the worker threads,
//! with `trace_id` and `span_id` on every line written inside a traced call.
//! Traces and metrics leave through `opentelemetry-otlp`'s exporters, driven
//! by the SDK's `BatchSpanProcessor` and `PeriodicReader`, and are configured
//! only through the standard `OTEL_*` variables. A signal whose exporter is
//! off (no endpoint, `OTEL_*_EXPORTER=none`, `OTEL_SDK_DISABLED=true`) costs
//! nothing: no span or measurement is even made.

mod export;
mod logs;
mod metrics;
mod scrape;
mod spans;

use std::time::Duration;

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_sdk::{metrics::SdkMeterProvider, trace::SdkTracerProvider};

pub use self::scrape::serve_metrics;
pub(crate) use self::{
    metrics::{Event, active_requests, count, dropped_audit_lines},
    spans::{ClientAttempt, ServerCall, in_token_span, record_merchant_uid},
};
use crate::config::LogFormat;

/// Longest wait for each provider to flush at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What was installed; flush and stop it with [`Telemetry::shutdown`].
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    /// What `/metrics` reads, when `METRICS_LISTEN_ADDR` is set.
    prometheus: Option<prometheus::Registry>,
    /// Flushes the log writer when dropped.
    log_writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Telemetry {
    /// Installs logging and the exporters that the `OTEL_*` variables turn
    /// on, and with `prometheus` the registry that [`serve_metrics`] serves.
    /// Call it inside the multi-thread tokio runtime: the OTLP/gRPC channels
    /// are made there.
    pub fn init(format: LogFormat, prometheus: bool) -> Telemetry {
        let log_writer = logs::install(format);
        let mut tracer_provider = None;
        let mut meter_provider = None;
        if export::enabled(export::Signal::Traces) {
            match export::tracer_provider() {
                Ok(provider) => {
                    spans::install_tracer(provider.tracer("portone-facade"));
                    tracer_provider = Some(provider);
                }
                Err(error) => tracing::error!(%error, "trace exporter not started"),
            }
        }
        let prometheus = prometheus.then(prometheus::Registry::new);
        let otlp_metrics = export::enabled(export::Signal::Metrics);
        if otlp_metrics || prometheus.is_some() {
            match export::meter_provider(otlp_metrics, prometheus.as_ref()) {
                Ok(provider) => {
                    global::set_meter_provider(provider.clone());
                    metrics::install_instruments();
                    meter_provider = Some(provider);
                }
                Err(error) => tracing::error!(%error, "metric exporter not started"),
            }
        }
        tracing::info!(
            traces = tracer_provider.is_some(),
            metrics = meter_provider.is_some(),
            "telemetry"
        );
        Telemetry {
            tracer_provider,
            meter_provider,
            prometheus,
            log_writer,
        }
    }

    /// The registry `/metrics` serves, when `METRICS_LISTEN_ADDR` is set.
    pub fn prometheus_registry(&self) -> Option<prometheus::Registry> {
        self.prometheus.clone()
    }

    /// Flushes what is buffered and stops the exporters, bounded in time, so
    /// that the spans of the last seconds before SIGTERM are not lost; then
    /// flushes the log lines.
    pub async fn shutdown(self) {
        let Telemetry {
            tracer_provider,
            meter_provider,
            log_writer,
            ..
        } = self;
        // The providers' shutdown blocks on their export threads.
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(provider) = tracer_provider {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
            if let Some(provider) = meter_provider {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            }
        });
        if tokio::time::timeout(SHUTDOWN_TIMEOUT * 3, flush)
            .await
            .is_err()
        {
            tracing::warn!("telemetry did not flush in time");
        }
        drop(log_writer);
    }
}
