//! The trace and metric pipelines: `opentelemetry-otlp`'s exporters behind
//! the SDK's `BatchSpanProcessor` and `PeriodicReader`.
//!
//! The exporters, processor, reader, sampler and resource read their own
//! variables (endpoint, headers, compression, timeout, insecure, `OTEL_BSP_*`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`). Read here are only those
//! that opentelemetry-otlp 0.33 leaves to its caller: whether a signal is on
//! at all, which transport `…_PROTOCOL` names, and the TLS files
//! `…_CERTIFICATE`, `…_CLIENT_CERTIFICATE` and `…_CLIENT_KEY`.

use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
    tonic_types::transport::{Certificate, ClientTlsConfig, Identity},
};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SdkTracerProvider,
};

/// A telemetry signal, as the `OTEL_*` variables name it.
#[derive(Clone, Copy)]
pub(super) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    /// `TRACES` or `METRICS`, as in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    fn infix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_<name>`, else `OTEL_EXPORTER_OTLP_<name>`:
    /// the signal's own form wins, as the specification says.
    fn otlp_var(self, name: &str) -> Option<(String, String)> {
        [
            format!("OTEL_EXPORTER_OTLP_{}_{name}", self.infix()),
            format!("OTEL_EXPORTER_OTLP_{name}"),
        ]
        .into_iter()
        .find_map(|var| value(&var).map(|value| (var, value)))
    }
}

/// A variable's value, unless it is unset or blank.
fn value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether `signal` is exported: not when `OTEL_SDK_DISABLED=true` or
/// `OTEL_<SIGNAL>_EXPORTER=none`; else when an OTLP endpoint is set or
/// `OTEL_<SIGNAL>_EXPORTER=otlp` asks for the default one. With neither,
/// nothing is exported, so that a facade run without a collector does not
/// log export failures forever.
pub(super) fn enabled(signal: Signal) -> bool {
    let is = |name: &str, wanted: &str| value(name).is_some_and(|v| v.eq_ignore_ascii_case(wanted));
    let exporter = format!("OTEL_{}_EXPORTER", signal.infix());
    if is("OTEL_SDK_DISABLED", "true") || is(&exporter, "none") {
        return false;
    }
    is(&exporter, "otlp") || signal.otlp_var("ENDPOINT").is_some()
}

/// Why a pipeline could not be built.
pub(super) type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// The OTLP transport `…_PROTOCOL` names. gRPC unless told otherwise: it is
/// what this service has always exported with, and what port 4317 serves.
fn protocol(signal: Signal) -> Result<Protocol, BuildError> {
    match signal.otlp_var("PROTOCOL") {
        None => Ok(Protocol::Grpc),
        Some((_, value)) if value == "grpc" => Ok(Protocol::Grpc),
        Some((_, value)) if value == "http/protobuf" => Ok(Protocol::HttpBinary),
        Some((var, value)) => {
            Err(format!("{var}={value} is not supported: use grpc or http/protobuf").into())
        }
    }
}

/// The PEM files of `…_CERTIFICATE`, `…_CLIENT_CERTIFICATE` and
/// `…_CLIENT_KEY`, read.
#[derive(Default)]
struct TlsFiles {
    /// CAs trusted beside the platform's roots.
    ca: Option<Vec<u8>>,
    /// Certificate chain and key for mutual TLS with the collector.
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    fn read(signal: Signal) -> Result<TlsFiles, BuildError> {
        let read = |name: &str| -> Result<Option<Vec<u8>>, BuildError> {
            signal
                .otlp_var(name)
                .map(|(var, path)| {
                    std::fs::read(&path)
                        .map_err(|error| format!("{var}: cannot read {path}: {error}"))
                })
                .transpose()
                .map_err(Into::into)
        };
        let ca = read("CERTIFICATE")?;
        let client = match (read("CLIENT_CERTIFICATE")?, read("CLIENT_KEY")?) {
            (Some(certificate), Some(key)) => Some((certificate, key)),
            (None, None) => None,
            _ => {
                return Err(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY \
                            must be set together"
                        .into(),
                );
            }
        };
        Ok(TlsFiles { ca, client })
    }

    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }

    /// For OTLP/gRPC: the platform's roots plus the extra CA, and the client
    /// identity. tonic uses it only for `https` endpoints.
    fn tonic(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((certificate, key)) = &self.client {
            config = config.identity(Identity::from_pem(certificate, key));
        }
        config
    }

    /// For OTLP/HTTP, when there is anything to add to the exporter's own
    /// client: a blocking reqwest client (the batch processor's thread is no
    /// tokio thread) with the platform's roots plus the extra CA.
    fn http_client(&self, signal: Signal) -> Result<Option<reqwest::blocking::Client>, BuildError> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut builder = reqwest::blocking::Client::builder().timeout(export_timeout(signal));
        if let Some(ca) = &self.ca {
            builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca)?);
        }
        if let Some((certificate, key)) = &self.client {
            let pem = [certificate.as_slice(), b"\n", key.as_slice()].concat();
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        // A blocking client starts (and, dropped, stops) a runtime of its
        // own, which tokio forbids on its threads: build it on another.
        let client = std::thread::spawn(move || builder.build())
            .join()
            .map_err(|_| "building the OTLP/HTTP client panicked")??;
        Ok(Some(client))
    }
}

/// `…_TIMEOUT` in milliseconds (default 10 s). Only needed for an HTTP client
/// of our own: the exporter applies it to the client it builds itself, and
/// to gRPC, but not to one it is given.
fn export_timeout(signal: Signal) -> Duration {
    signal
        .otlp_var("TIMEOUT")
        .and_then(|(_, millis)| millis.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Our resource: the SDK's detectors (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), `service.version`, and `portone-facade` as
/// the service name where neither names one.
fn resource() -> Resource {
    let version = KeyValue::new("service.version", env!("CARGO_PKG_VERSION"));
    let detected = Resource::builder().with_attribute(version.clone()).build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(
            |name| !matches!(&name, Value::String(s) if s.as_str().starts_with("unknown_service")),
        );
    if named {
        detected
    } else {
        Resource::builder()
            .with_attribute(version)
            .with_service_name("portone-facade")
            .build()
    }
}

/// The exporter the `OTEL_*` variables describe for `$signal`, from the
/// SDK's `$exporter` builder: gRPC or HTTP, with our TLS files when given.
macro_rules! otlp_exporter {
    ($exporter:ty, $signal:expr) => {{
        let tls = TlsFiles::read($signal)?;
        match protocol($signal)? {
            Protocol::Grpc => <$exporter>::builder()
                .with_tonic()
                .with_tls_config(tls.tonic())
                .build()?,
            _ => {
                let builder = <$exporter>::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary);
                match tls.http_client($signal)? {
                    Some(client) => builder.with_http_client(client).build()?,
                    None => builder.build()?,
                }
            }
        }
    }};
}

/// Spans, batched by the SDK's processor (`OTEL_BSP_*`) and sampled as
/// `OTEL_TRACES_SAMPLER` says.
pub(super) fn tracer_provider() -> Result<SdkTracerProvider, BuildError> {
    Ok(SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(otlp_exporter!(SpanExporter, Signal::Traces))
        .build())
}

/// Metrics: exported over OTLP every `OTEL_METRIC_EXPORT_INTERVAL` when
/// `otlp`, and kept for scraping into `prometheus` when given.
pub(super) fn meter_provider(
    otlp: bool,
    prometheus: Option<&prometheus::Registry>,
) -> Result<SdkMeterProvider, BuildError> {
    let mut provider = SdkMeterProvider::builder().with_resource(resource());
    if otlp {
        let exporter = otlp_exporter!(MetricExporter, Signal::Metrics);
        provider = provider.with_reader(PeriodicReader::builder(exporter).build());
    }
    if let Some(registry) = prometheus {
        provider = provider.with_reader(
            opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()?,
        );
    }
    Ok(provider.build())
}
