//! A tiny OTLP/gRPC receiver: accepts trace and metric exports on a loopback
//! port and only counts what arrives.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use opentelemetry_proto::tonic::collector::{
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

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

fn remember(names: &Mutex<BTreeMap<String, u64>>, name: &str) {
    let mut names = names.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(count) = names.get_mut(name) {
        *count += 1;
    } else if names.len() < MAX_NAMES {
        names.insert(name.to_owned(), 1);
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

struct Traces(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let counts = &self.0;
        counts.trace_exports.fetch_add(1, Ordering::Relaxed);
        for resource in &request.get_ref().resource_spans {
            for scope in &resource.scope_spans {
                counts
                    .spans
                    .fetch_add(scope.spans.len() as u64, Ordering::Relaxed);
                for span in &scope.spans {
                    remember(&counts.span_names, &span.name);
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
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
                for metric in &scope.metrics {
                    remember(&counts.metric_names, &metric.name);
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running sink; stops when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Sink {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> Result<Sink, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|error| format!("OTLP sink: cannot listen: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("OTLP sink: {error}"))?;
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(Traces(Arc::clone(&counts)))
                    .max_decoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                MetricsServiceServer::new(Metrics(Arc::clone(&counts)))
                    .max_decoding_message_size(MAX_MESSAGE),
            )
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                eprintln!("OTLP sink stopped: {error}");
            }
        });
        Ok(Sink {
            addr,
            counts,
            stop: Some(stop),
            task,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
