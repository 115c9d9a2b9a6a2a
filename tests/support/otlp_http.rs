//! An in-process OTLP/HTTP receiver (protobuf bodies, gzip or not, plaintext
//! or TLS) that keeps every request it is sent: path, headers and the spans
//! and metric names decoded from the body.

use std::{
    io::Read,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
        trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    },
    trace::v1::Span,
};
use prost::Message;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

/// One export request as it arrived.
#[derive(Debug, Clone)]
pub struct HttpExport {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub spans: Vec<Span>,
    pub metric_names: Vec<String>,
}

impl HttpExport {
    /// The value of header `name`, if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The running receiver; stops when dropped.
pub struct OtlpHttpReceiver {
    pub addr: SocketAddr,
    tls: bool,
    exports: Arc<Mutex<Vec<HttpExport>>>,
    server: JoinHandle<()>,
}

impl OtlpHttpReceiver {
    /// Serves on a loopback port; with `tls`, every connection is TLS.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> OtlpHttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.clone().map(TlsAcceptor::from);
        let kept = Arc::clone(&exports);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| receive(Arc::clone(&kept), request));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                    };
                });
            }
        });
        OtlpHttpReceiver {
            addr,
            tls: tls.is_some(),
            exports,
            server,
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`), for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every export received so far.
    pub fn exports(&self) -> Vec<HttpExport> {
        self.exports.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until `ready` holds for the exports received.
    pub async fn wait_for(
        &self,
        limit: Duration,
        ready: impl Fn(&[HttpExport]) -> bool,
    ) -> Vec<HttpExport> {
        let started = Instant::now();
        loop {
            let exports = self.exports();
            if ready(&exports) {
                return exports;
            }
            assert!(
                started.elapsed() < limit,
                "exports not as expected within {limit:?}: {exports:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpHttpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    exports: Arc<Mutex<Vec<HttpExport>>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let gzip = headers
        .iter()
        .any(|(name, value)| name == "content-encoding" && value == "gzip");
    let mut body = request.into_body().collect().await?.to_bytes().to_vec();
    if gzip {
        let mut inflated = Vec::new();
        if flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut inflated)
            .is_err()
        {
            return Ok(answer(400, Vec::new()));
        }
        body = inflated;
    }
    let mut export = HttpExport {
        path: path.clone(),
        headers,
        spans: Vec::new(),
        metric_names: Vec::new(),
    };
    let reply = match path.as_str() {
        "/v1/traces" => {
            let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) else {
                return Ok(answer(400, Vec::new()));
            };
            for resource_spans in request.resource_spans {
                for scope in resource_spans.scope_spans {
                    export.spans.extend(scope.spans);
                }
            }
            ExportTraceServiceResponse::default().encode_to_vec()
        }
        "/v1/metrics" => {
            let Ok(request) = ExportMetricsServiceRequest::decode(body.as_slice()) else {
                return Ok(answer(400, Vec::new()));
            };
            for resource_metrics in request.resource_metrics {
                for scope in resource_metrics.scope_metrics {
                    export
                        .metric_names
                        .extend(scope.metrics.into_iter().map(|metric| metric.name));
                }
            }
            ExportMetricsServiceResponse::default().encode_to_vec()
        }
        _ => return Ok(answer(404, Vec::new())),
    };
    exports.lock().unwrap().push(export);
    Ok(answer(200, reply))
}

fn answer(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
