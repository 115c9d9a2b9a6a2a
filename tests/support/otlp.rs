//! An OTLP/gRPC receiver on a loopback port (opentelemetry-proto's types)
//! that counts the trace and metric exports it is sent and, for tests,
//! keeps all of them.
//!
//! It serves from a thread and runtime of its own, so that taking in an
//! export never runs on a worker of the test or of the bench's load
//! generator, as a collector elsewhere would not. The bench's receiver
//! shares the facade's cores, so what it spends is taken from the facade's
//! throughput: with [`Keep::Counts`] trace exports are read with a schema
//! that keeps only each span's name (prost skips every other field without
//! building it), which costs a fraction of a full decode and still proves
//! each span arrived.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    convert::Infallible,
    future::{Future, Ready, ready},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    metrics::v1::metric::Data,
    trace::v1::Span,
};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Request, Response, Status, body::Body, codec::CompressionEncoding, server::NamedService,
    transport::ServerTlsConfig,
};

/// Most distinct names counted (spans and metrics).
const MAX_NAMES: usize = 32;
/// Largest export accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// How much of each export the receiver keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Every span, resource attribute, export header, metric name and
    /// histogram count, besides the [`Counts`] (tests).
    Everything,
    /// Only the [`Counts`], from spans read by name alone (the bench).
    Counts,
}

/// What the receiver counted, whatever it keeps.
#[derive(Default)]
pub struct Counts {
    trace_exports: AtomicU64,
    spans: AtomicU64,
    metric_exports: AtomicU64,
    metrics: AtomicU64,
    span_names: Mutex<BTreeMap<String, u64>>,
    metric_names: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `(name, count)` pairs to `names`, under one lock, keeping at most
/// [`MAX_NAMES`] names.
fn remember<'a>(
    names: &Mutex<BTreeMap<String, u64>>,
    counted: impl IntoIterator<Item = (Cow<'a, str>, u64)>,
) {
    let mut names = lock(names);
    for (name, count) in counted {
        if let Some(total) = names.get_mut(name.as_ref()) {
            *total += count;
        } else if names.len() < MAX_NAMES {
            names.insert(name.into_owned(), count);
        }
    }
}

impl Counts {
    /// Trace export requests accepted.
    pub fn trace_exports(&self) -> u64 {
        self.trace_exports.load(Ordering::Relaxed)
    }

    /// Spans received.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// Metric export requests received.
    pub fn metric_exports(&self) -> u64 {
        self.metric_exports.load(Ordering::Relaxed)
    }

    /// Spans received by name (the first [`MAX_NAMES`] names).
    pub fn span_names(&self) -> BTreeMap<String, u64> {
        lock(&self.span_names).clone()
    }

    /// Metrics received by name (the first [`MAX_NAMES`] names).
    pub fn metric_names(&self) -> BTreeMap<String, u64> {
        lock(&self.metric_names).clone()
    }

    /// Counts the spans of one trace export by their names.
    fn trace_export<'a>(&self, spans: impl IntoIterator<Item = &'a [u8]>) {
        self.trace_exports.fetch_add(1, Ordering::Relaxed);
        // Names counted here first, then merged under one lock.
        let mut by_name: Vec<(&[u8], u64)> = Vec::new();
        let mut total = 0;
        for name in spans {
            total += 1;
            if let Some((_, count)) = by_name.iter_mut().find(|(seen, _)| *seen == name) {
                *count += 1;
            } else if by_name.len() < MAX_NAMES {
                by_name.push((name, 1));
            }
        }
        self.spans.fetch_add(total, Ordering::Relaxed);
        remember(
            &self.span_names,
            by_name
                .into_iter()
                .map(|(name, count)| (String::from_utf8_lossy(name), count)),
        );
    }
}

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

/// An export's headers as `(name, value)` pairs.
pub type Headers = Vec<(String, String)>;

/// The text headers of an export.
fn header_pairs(headers: &http::HeaderMap) -> Headers {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// What [`Keep::Everything`] keeps.
#[derive(Default)]
struct Kept {
    spans: Vec<Span>,
    resource_attributes: Vec<(String, String)>,
    trace_export_headers: Vec<(String, String)>,
    /// The headers of each export (traces and metrics), one list per export.
    export_headers: Vec<Headers>,
    metric_names: Vec<String>,
    histogram_counts: BTreeMap<(String, Attributes), u64>,
}

/// The receiver's state, shared by its services and its handle.
struct Received {
    keep: Keep,
    counts: Counts,
    kept: Mutex<Kept>,
    /// Trace exports still to refuse with UNAVAILABLE.
    trace_exports_to_refuse: Mutex<usize>,
}

impl Received {
    /// Whether to refuse this trace export (and count the refusal).
    fn refuse_trace_export(&self) -> bool {
        let mut to_refuse = lock(&self.trace_exports_to_refuse);
        let refuse = *to_refuse > 0;
        if refuse {
            *to_refuse -= 1;
        }
        refuse
    }
}

/// `ExportTraceServiceRequest` as far as counting needs it: fields 1
/// (`resource_spans`), 2 (`scope_spans`), 2 (`spans`) and each span's 5
/// (`name`). Every other field is skipped by length.
#[derive(Clone, PartialEq, prost::Message)]
struct SpanCount {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpanCount>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpanCount {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpanCount>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpanCount {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<SpanName>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SpanName {
    /// A `string` on the wire, read as bytes: no UTF-8 check, no copy.
    #[prost(bytes = "bytes", tag = "5")]
    name: bytes::Bytes,
}

type ExportResult = Ready<Result<Response<ExportTraceServiceResponse>, Status>>;

fn accepted() -> ExportResult {
    ready(Ok(Response::new(ExportTraceServiceResponse {
        partial_success: None,
    })))
}

/// Trace exports read by span name ([`Keep::Counts`]).
#[derive(Clone)]
struct CountTraces(Arc<Received>);

impl tonic::server::UnaryService<SpanCount> for CountTraces {
    type Response = ExportTraceServiceResponse;
    type Future = ExportResult;

    fn call(&mut self, request: Request<SpanCount>) -> ExportResult {
        if self.0.refuse_trace_export() {
            return ready(Err(Status::unavailable("collector restarting")));
        }
        let names = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .map(|span| &span.name[..]);
        self.0.counts.trace_export(names);
        accepted()
    }
}

/// Trace exports decoded whole and kept ([`Keep::Everything`]).
#[derive(Clone)]
struct KeepTraces(Arc<Received>);

impl tonic::server::UnaryService<ExportTraceServiceRequest> for KeepTraces {
    type Response = ExportTraceServiceResponse;
    type Future = ExportResult;

    fn call(&mut self, request: Request<ExportTraceServiceRequest>) -> ExportResult {
        let received = &self.0;
        if received.refuse_trace_export() {
            return ready(Err(Status::unavailable("collector restarting")));
        }
        let headers = request.metadata().clone().into_headers();
        let export = request.into_inner();
        received.counts.trace_export(
            export
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .flat_map(|scope| &scope.spans)
                .map(|span| span.name.as_bytes()),
        );
        let mut kept = lock(&received.kept);
        let headers = header_pairs(&headers);
        kept.trace_export_headers.extend(headers.iter().cloned());
        kept.export_headers.push(headers);
        for resource_spans in export.resource_spans {
            if let Some(resource) = resource_spans.resource {
                for kv in resource.attributes {
                    let value = text(kv.value.as_ref());
                    kept.resource_attributes.push((kv.key, value));
                }
            }
            for scope in resource_spans.scope_spans {
                kept.spans.extend(scope.spans);
            }
        }
        accepted()
    }
}

/// The trace service's one method, served with the request type that
/// [`Keep`] asks for.
#[derive(Clone)]
struct TraceServer(Arc<Received>);

impl NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type ServerFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<Body>> for TraceServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ServerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> ServerFuture {
        let received = Arc::clone(&self.0);
        Box::pin(async move {
            if request.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            {
                return Ok(Status::unimplemented("only Export").into_http());
            }
            Ok(match received.keep {
                Keep::Counts => {
                    let codec =
                        tonic_prost::ProstCodec::<ExportTraceServiceResponse, SpanCount>::default();
                    tonic::server::Grpc::new(codec)
                        .accept_compressed(CompressionEncoding::Gzip)
                        .apply_max_message_size_config(Some(MAX_MESSAGE), None)
                        .unary(CountTraces(received), request)
                        .await
                }
                Keep::Everything => {
                    let codec = tonic_prost::ProstCodec::<
                        ExportTraceServiceResponse,
                        ExportTraceServiceRequest,
                    >::default();
                    tonic::server::Grpc::new(codec)
                        .accept_compressed(CompressionEncoding::Gzip)
                        .apply_max_message_size_config(Some(MAX_MESSAGE), None)
                        .unary(KeepTraces(received), request)
                        .await
                }
            })
        })
    }
}

struct Metrics(Arc<Received>);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let received = &self.0;
        let counts = &received.counts;
        counts.metric_exports.fetch_add(1, Ordering::Relaxed);
        for resource in &request.get_ref().resource_metrics {
            for scope in &resource.scope_metrics {
                counts
                    .metrics
                    .fetch_add(scope.metrics.len() as u64, Ordering::Relaxed);
                remember(
                    &counts.metric_names,
                    scope
                        .metrics
                        .iter()
                        .map(|metric| (Cow::Borrowed(metric.name.as_str()), 1)),
                );
            }
        }
        if received.keep == Keep::Everything {
            let mut kept = lock(&received.kept);
            kept.export_headers
                .push(header_pairs(&request.metadata().clone().into_headers()));
            for resource_metrics in request.into_inner().resource_metrics {
                for scope in resource_metrics.scope_metrics {
                    for metric in scope.metrics {
                        // Cumulative points: the latest count is the total.
                        if let Some(Data::Histogram(histogram)) = &metric.data {
                            for point in &histogram.data_points {
                                kept.histogram_counts.insert(
                                    (metric.name.clone(), attributes(&point.attributes)),
                                    point.count,
                                );
                            }
                        }
                        kept.metric_names.push(metric.name);
                    }
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    received: Arc<Received>,
    stop: Option<oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Listens on an ephemeral loopback port, in plaintext.
    pub fn start(keep: Keep) -> Result<OtlpReceiver, String> {
        OtlpReceiver::start_with(keep, None)
    }

    /// Listens on an ephemeral loopback port; with `tls`, serves TLS (and,
    /// if it says so, requires a client certificate). Gzip-compressed
    /// exports are taken too.
    pub fn start_with(keep: Keep, tls: Option<ServerTlsConfig>) -> Result<OtlpReceiver, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|error| format!("OTLP receiver: cannot listen: {error}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| format!("OTLP receiver: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("OTLP receiver: {error}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("OTLP receiver: runtime: {error}"))?;
        let received = Arc::new(Received {
            keep,
            counts: Counts::default(),
            kept: Mutex::default(),
            trace_exports_to_refuse: Mutex::default(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&received);
        std::thread::Builder::new()
            .name("otlp-receiver".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            eprintln!("OTLP receiver: {error}");
                            return;
                        }
                    };
                    let mut builder = tonic::transport::Server::builder();
                    if let Some(tls) = tls {
                        builder = match builder.tls_config(tls) {
                            Ok(builder) => builder,
                            Err(error) => {
                                eprintln!("OTLP receiver: TLS: {error}");
                                return;
                            }
                        };
                    }
                    let server = builder
                        .add_service(TraceServer(Arc::clone(&served)))
                        .add_service(
                            MetricsServiceServer::new(Metrics(served))
                                .accept_compressed(CompressionEncoding::Gzip)
                                .max_decoding_message_size(MAX_MESSAGE),
                        )
                        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                            let _ = stopped.await;
                        });
                    if let Err(error) = server.await {
                        eprintln!("OTLP receiver stopped: {error}");
                    }
                });
            })
            .map_err(|error| format!("OTLP receiver: thread: {error}"))?;
        Ok(OtlpReceiver {
            addr,
            received,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it counted.
    pub fn counts(&self) -> &Counts {
        &self.received.counts
    }

    /// Refuses the next `count` trace exports with UNAVAILABLE.
    pub fn refuse_trace_exports(&self, count: usize) {
        *lock(&self.received.trace_exports_to_refuse) = count;
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        assert_eq!(
            self.received.keep,
            Keep::Everything,
            "this OTLP receiver keeps only counts"
        );
        lock(&self.received.kept)
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.kept().spans.clone()
    }

    /// The resource attributes of every trace export received.
    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        self.kept().resource_attributes.clone()
    }

    /// The headers of every trace export received.
    pub fn trace_export_headers(&self) -> Vec<(String, String)> {
        self.kept().trace_export_headers.clone()
    }

    /// The headers of each export (traces and metrics), one list per export.
    pub fn headers_per_export(&self) -> Vec<Headers> {
        self.kept().export_headers.clone()
    }

    /// The name of every metric received, once per export.
    pub fn metric_names(&self) -> Vec<String> {
        self.kept().metric_names.clone()
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
        self.kept()
            .histogram_counts
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

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        // The thread ends once open connections close; it is not waited for.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
