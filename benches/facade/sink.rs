//! A tiny OTLP/gRPC receiver: accepts trace and metric exports on a loopback
//! port and only counts what arrives.
//!
//! It runs inside the bench, on the same two cores as the facade, so what it
//! spends is taken from the facade's throughput; a real collector runs on
//! cores of its own. Trace exports are therefore read with a schema that
//! keeps only each span's name (prost skips every other field without
//! building it), rather than decoded whole: counting costs a fraction of a
//! full decode, and still proves each span arrived.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    convert::Infallible,
    future::{Future, Ready, ready},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use opentelemetry_proto::tonic::collector::{
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::ExportTraceServiceResponse,
};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, body::Body, server::NamedService};

/// Most distinct names remembered (spans and metrics).
const MAX_NAMES: usize = 32;
/// Largest export accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// What the sink received.
#[derive(Default)]
pub struct Counts {
    pub trace_exports: AtomicU64,
    pub spans: AtomicU64,
    pub metric_exports: AtomicU64,
    pub metrics: AtomicU64,
    pub span_names: Mutex<BTreeMap<String, u64>>,
    pub metric_names: Mutex<BTreeMap<String, u64>>,
}

/// Adds `(name, count)` pairs to `names`, under one lock, keeping at most
/// [`MAX_NAMES`] names.
fn remember<'a>(
    names: &Mutex<BTreeMap<String, u64>>,
    counted: impl IntoIterator<Item = (Cow<'a, str>, u64)>,
) {
    let mut names = names.lock().unwrap_or_else(PoisonError::into_inner);
    for (name, count) in counted {
        if let Some(total) = names.get_mut(name.as_ref()) {
            *total += count;
        } else if names.len() < MAX_NAMES {
            names.insert(name.into_owned(), count);
        }
    }
}

impl Counts {
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    pub fn names(names: &Mutex<BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
        names.lock().unwrap_or_else(PoisonError::into_inner).clone()
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

#[derive(Clone)]
struct Traces(Arc<Counts>);

impl tonic::server::UnaryService<SpanCount> for Traces {
    type Response = ExportTraceServiceResponse;
    type Future = Ready<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<SpanCount>) -> Self::Future {
        let counts = &self.0;
        counts.trace_exports.fetch_add(1, Ordering::Relaxed);
        // Names counted here first, then merged under one lock.
        let mut by_name: Vec<(&[u8], u64)> = Vec::new();
        for resource in &request.get_ref().resource_spans {
            for scope in &resource.scope_spans {
                counts
                    .spans
                    .fetch_add(scope.spans.len() as u64, Ordering::Relaxed);
                for span in &scope.spans {
                    let name = &span.name[..];
                    if let Some((_, count)) = by_name.iter_mut().find(|(seen, _)| *seen == name) {
                        *count += 1;
                    } else if by_name.len() < MAX_NAMES {
                        by_name.push((name, 1));
                    }
                }
            }
        }
        remember(
            &counts.span_names,
            by_name
                .into_iter()
                .map(|(name, count)| (String::from_utf8_lossy(name), count)),
        );
        ready(Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        })))
    }
}

/// The trace service's one method, served with [`SpanCount`] as its
/// request type.
#[derive(Clone)]
struct TraceServer(Traces);

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
        let service = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            {
                return Ok(Status::unimplemented("only Export").into_http());
            }
            let codec = tonic_prost::ProstCodec::<ExportTraceServiceResponse, SpanCount>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(MAX_MESSAGE), None);
            Ok(grpc.unary(service, request).await)
        })
    }
}

struct Metrics(Arc<Counts>);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let counts = &self.0;
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
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running sink; stops when dropped.
///
/// It serves from a thread and runtime of its own, so that taking in an
/// export never runs on a load-generator worker, as a collector elsewhere
/// would not. (In the runs recorded in `docs/benchmark.md` this made no
/// difference that could be told from the noise.)
pub struct Sink {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
}

impl Sink {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> Result<Sink, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|error| format!("OTLP sink: cannot listen: {error}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| format!("OTLP sink: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("OTLP sink: {error}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("OTLP sink: runtime: {error}"))?;
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let server_counts = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("otlp-sink".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            eprintln!("OTLP sink: {error}");
                            return;
                        }
                    };
                    let server = tonic::transport::Server::builder()
                        .add_service(TraceServer(Traces(Arc::clone(&server_counts))))
                        .add_service(
                            MetricsServiceServer::new(Metrics(server_counts))
                                .max_decoding_message_size(MAX_MESSAGE),
                        )
                        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                            let _ = stopped.await;
                        });
                    if let Err(error) = server.await {
                        eprintln!("OTLP sink stopped: {error}");
                    }
                });
            })
            .map_err(|error| format!("OTLP sink: thread: {error}"))?;
        Ok(Sink {
            addr,
            counts,
            stop: Some(stop),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The thread ends once open connections close; it is not waited for.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
