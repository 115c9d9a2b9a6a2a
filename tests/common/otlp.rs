//! An in-process OTLP/gRPC receiver (opentelemetry-proto's tonic server
//! traits) that keeps every span and metric it is sent.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    metrics::v1::metric::Data,
    trace::v1::Span,
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Request, Response, Status, codec::CompressionEncoding, transport::ServerTlsConfig};

#[derive(Default, Clone)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    resource_attributes: Arc<Mutex<Vec<(String, String)>>>,
    /// The headers of each trace export, one list per export.
    trace_export_headers: Arc<Mutex<Vec<Headers>>>,
    /// The headers of each metric export, one list per export.
    metric_export_headers: Arc<Mutex<Vec<Headers>>>,
    /// Trace exports still to refuse with UNAVAILABLE.
    trace_exports_to_refuse: Arc<Mutex<usize>>,
    metric_names: Arc<Mutex<Vec<String>>>,
    histogram_counts: Arc<Mutex<BTreeMap<(String, Attributes), u64>>>,
}

/// An export's headers as `(name, value)` pairs.
pub type Headers = Vec<(String, String)>;

/// A data point's attributes as sorted `(key, text)` pairs.
pub type Attributes = Vec<(String, String)>;

fn sorted(mut pairs: Attributes) -> Attributes {
    pairs.sort();
    pairs
}

fn attributes(attributes: &[KeyValue]) -> Attributes {
    sorted(
        attributes
            .iter()
            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
            .collect(),
    )
}

/// `pairs` as the receiver keeps a data point's attributes.
pub fn attribute_set(pairs: &[(&str, &str)]) -> Attributes {
    sorted(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    )
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        {
            let mut to_refuse = self.trace_exports_to_refuse.lock().unwrap();
            if *to_refuse > 0 {
                *to_refuse -= 1;
                return Err(Status::unavailable("collector restarting"));
            }
        }
        self.trace_export_headers
            .lock()
            .unwrap()
            .push(header_pairs(request.metadata()));
        for resource_spans in request.into_inner().resource_spans {
            if let Some(resource) = resource_spans.resource {
                let mut attributes = self.resource_attributes.lock().unwrap();
                for kv in resource.attributes {
                    attributes.push((kv.key, text(kv.value.as_ref())));
                }
            }
            for scope in resource_spans.scope_spans {
                self.spans.lock().unwrap().extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.metric_export_headers
            .lock()
            .unwrap()
            .push(header_pairs(request.metadata()));
        for resource_metrics in request.into_inner().resource_metrics {
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    // Cumulative points: the latest count is the total.
                    if let Some(Data::Histogram(histogram)) = &metric.data {
                        let mut counts = self.histogram_counts.lock().unwrap();
                        for point in &histogram.data_points {
                            counts.insert(
                                (metric.name.clone(), attributes(&point.attributes)),
                                point.count,
                            );
                        }
                    }
                    self.metric_names.lock().unwrap().push(metric.name);
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// The text headers of an export.
fn header_pairs(metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    metadata
        .clone()
        .into_headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// A value as text (strings as they are, numbers in decimal).
pub fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A span's attribute as text, if it has it.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref()))
}

/// Lower-case hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The running receiver.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    received: Received,
    _stop: oneshot::Sender<()>,
}

impl OtlpReceiver {
    /// A plaintext receiver on a loopback port.
    pub async fn start() -> OtlpReceiver {
        OtlpReceiver::start_with(None).await
    }

    /// A receiver that serves TLS with `tls` (and, if it says so, requires a
    /// client certificate); it takes gzip-compressed exports too.
    pub async fn start_with(tls: Option<ServerTlsConfig>) -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let server = builder
            .add_service(
                TraceServiceServer::new(received.clone())
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .add_service(
                MetricsServiceServer::new(received.clone())
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            );
        tokio::spawn(server);
        OtlpReceiver {
            addr,
            received,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.spans.lock().unwrap().clone()
    }

    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        self.received.resource_attributes.lock().unwrap().clone()
    }

    /// Refuses the next `count` trace exports with UNAVAILABLE.
    pub fn refuse_trace_exports(&self, count: usize) {
        *self.received.trace_exports_to_refuse.lock().unwrap() = count;
    }

    /// The headers of every trace export received.
    pub fn trace_export_headers(&self) -> Vec<(String, String)> {
        self.received.trace_export_headers.lock().unwrap().concat()
    }

    /// The headers of each export (traces, then metrics), one list per export.
    pub fn headers_per_export(&self) -> Vec<Vec<(String, String)>> {
        let mut exports = self.received.trace_export_headers.lock().unwrap().clone();
        exports.extend(
            self.received
                .metric_export_headers
                .lock()
                .unwrap()
                .iter()
                .cloned(),
        );
        exports
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.received.metric_names.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until `ready` holds for the spans received.
    pub async fn wait_for_spans(
        &self,
        limit: Duration,
        ready: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return spans;
            }
            assert!(
                started.elapsed() < limit,
                "spans did not arrive within {limit:?}: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The latest count of each data point of histogram `name`, by its
    /// attributes.
    pub fn histogram_counts(&self, name: &str) -> BTreeMap<Attributes, u64> {
        self.received
            .histogram_counts
            .lock()
            .unwrap()
            .iter()
            .filter(|((metric, _), _)| metric == name)
            .map(|((_, attributes), count)| (attributes.clone(), *count))
            .collect()
    }

    /// Waits (at most `limit`) until each histogram named in `expected` has
    /// exactly the counts given there, by attributes.
    pub async fn wait_for_histogram_counts(
        &self,
        limit: Duration,
        expected: &[(&str, BTreeMap<Attributes, u64>)],
    ) {
        let started = Instant::now();
        loop {
            let received: Vec<_> = expected
                .iter()
                .map(|(name, _)| (*name, self.histogram_counts(name)))
                .collect();
            if received
                .iter()
                .zip(expected)
                .all(|((_, counts), (_, wanted))| counts == wanted)
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "histogram counts not as expected within {limit:?}: {received:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `limit`) until every name in `names` was received.
    pub async fn wait_for_metrics(&self, limit: Duration, names: &[&str]) -> Vec<String> {
        let started = Instant::now();
        loop {
            let received = self.metric_names();
            if names.iter().all(|name| received.iter().any(|r| r == name)) {
                return received;
            }
            assert!(
                started.elapsed() < limit,
                "metrics {names:?} not all received within {limit:?}: {received:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
