//! Span batching and OTLP/gRPC export, with no span crossing threads.
//!
//! The SDK's `BatchSpanProcessor` sends each finished span through a channel
//! to a thread of its own, where opentelemetry-otlp copies and converts the
//! batch before encoding it. Measured on this facade, that hand-off and
//! conversion were most of what tracing cost per call. Here a finished span
//! is encoded into OTLP protobuf on the thread that ended it, into a buffer
//! that thread keeps to itself (one of a few shards, each behind a lock that
//! is almost never contended), and is dropped there. Only whole batches of
//! encoded bytes go to the export task on the tokio runtime, which sends
//! them to the collector one request at a time, and every scheduled delay
//! sweeps the shards so that a quiet facade still exports within that delay.
//! A refused export is retried as opentelemetry-otlp's recommended policy
//! does, resending the same bytes.
//!
//! It honours the batch processor's `OTEL_BSP_*` variables and the OTLP
//! exporter's endpoint, headers, timeout and insecure variables (see
//! [`ExportConfig::from_env`]).

use std::{
    mem,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanProcessor},
};
use tokio::sync::mpsc;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Channel, Endpoint},
};

use super::{env_value, otlp_encode};

/// The OTLP trace export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where, how and how much to export.
#[derive(Debug)]
pub(super) struct ExportConfig {
    /// `http://host:port` (or `https://…`).
    pub endpoint: String,
    /// Sent with every export (e.g. an API key).
    pub headers: MetadataMap,
    /// Longest wait for one export.
    pub timeout: Duration,
    /// Longest a span waits before it is exported on a quiet facade.
    pub schedule_delay: Duration,
    /// Spans per export request.
    pub max_batch_spans: usize,
    /// Spans that may wait for export, beyond those being gathered; more are
    /// dropped rather than waited for.
    pub max_queue_spans: usize,
}

/// `OTEL_EXPORTER_OTLP_TRACES_<NAME>`, else `OTEL_EXPORTER_OTLP_<NAME>`,
/// when set to something other than blank.
fn otlp_var(name: &str) -> Option<String> {
    env_value(&format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
        .or_else(|| env_value(&format!("OTEL_EXPORTER_OTLP_{name}")))
}

fn env_number(name: &str) -> Option<u64> {
    env_value(name)?.parse().ok()
}

/// `key=value,key2=value2`, values percent-decoded (the W3C baggage form the
/// OTLP exporter specification names); entries without a key or value are
/// skipped.
fn parse_headers(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split(',').filter_map(|entry| {
        let (key, value) = entry.split_once('=')?;
        let key = key.trim();
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .ok()?;
        (!key.is_empty() && !value.is_empty()).then(|| (key.to_owned(), value.into_owned()))
    })
}

impl ExportConfig {
    /// Reads the standard variables; `Err` says what is wrong with them.
    pub(super) fn from_env(
        default_batch_spans: usize,
        default_queue_spans: usize,
    ) -> Result<ExportConfig, String> {
        let mut endpoint = otlp_var("ENDPOINT").unwrap_or_else(|| "http://localhost:4317".into());
        let has_scheme = endpoint
            .split_once("://")
            .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
        if !has_scheme {
            let insecure = otlp_var("INSECURE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            endpoint = format!("{}://{endpoint}", if insecure { "http" } else { "https" });
        }
        if endpoint.starts_with("https://") {
            return Err(format!(
                "endpoint '{endpoint}' uses HTTPS, which this build does not support; use http://"
            ));
        }
        if let Some(compression) = otlp_var("COMPRESSION")
            && !compression.eq_ignore_ascii_case("none")
        {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_COMPRESSION={compression} is not supported by this build"
            ));
        }
        // The traces variable comes second, so its entries replace the
        // general ones of the same name.
        let mut headers = MetadataMap::new();
        for variable in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            for (key, value) in parse_headers(&env_value(variable).unwrap_or_default()) {
                let name = MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("invalid header name '{key}'"))?;
                let value = MetadataValue::try_from(value.as_str())
                    .map_err(|_| format!("invalid value for header '{key}'"))?;
                headers.insert(name, value);
            }
        }
        let mut timeout = Duration::from_millis(
            otlp_var("TIMEOUT")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(10_000),
        );
        if let Some(ms) = env_number("OTEL_BSP_EXPORT_TIMEOUT") {
            timeout = timeout.min(Duration::from_millis(ms));
        }
        let schedule_delay = Duration::from_millis(
            env_number("OTEL_BSP_SCHEDULE_DELAY")
                .unwrap_or(5_000)
                .max(1),
        );
        let max_batch_spans = env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .map_or(default_batch_spans, |n| n as usize)
            .max(1);
        let max_queue_spans = env_number("OTEL_BSP_MAX_QUEUE_SIZE")
            .map_or(default_queue_spans, |n| n as usize)
            .max(max_batch_spans);
        Ok(ExportConfig {
            endpoint,
            headers,
            timeout,
            schedule_delay,
            max_batch_spans,
            max_queue_spans,
        })
    }
}

/// Encoded spans of one instrumentation scope, ready to export.
struct Batch {
    scope: InstrumentationScope,
    spans: Vec<u8>,
    count: usize,
}

/// The spans one group of threads is gathering.
#[derive(Default)]
struct Shard {
    scope: Option<InstrumentationScope>,
    spans: Vec<u8>,
    count: usize,
}

impl Shard {
    /// Adds `span`, encoded.
    fn push(&mut self, span: &SpanData) {
        otlp_encode::put_span(&mut self.spans, span);
        self.count += 1;
    }

    fn take(&mut self) -> Option<Batch> {
        if self.count == 0 {
            return None;
        }
        // Room for a next batch like this one: its size, an eighth more for
        // longer spans, and the room `put_span` reserves before each span.
        // With less, the last spans of a batch would make the buffer double
        // and copy all the spans before them.
        let len = self.spans.len();
        let capacity = len + len / 8 + otlp_encode::SPAN_ROOM;
        Some(Batch {
            scope: self.scope.clone().unwrap_or_default(),
            spans: mem::replace(&mut self.spans, Vec::with_capacity(capacity)),
            count: mem::take(&mut self.count),
        })
    }
}

/// What the processor and the export task share.
struct Shared {
    shards: Box<[Mutex<Shard>]>,
    /// The `Resource` message body, set once the provider is built.
    resource: Mutex<Arc<(Vec<u8>, Option<String>)>>,
    dropped: AtomicU64,
    shut_down: AtomicBool,
}

impl Shared {
    /// Every shard's spans, as batches.
    fn sweep(&self) -> Vec<Batch> {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).take())
            .collect()
    }
}

/// Asks the export task to export everything gathered, then to say so.
enum Control {
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The span processor: gathers encoded spans per thread, hands full batches
/// to the export task.
pub(super) struct SpanBatcher {
    shared: Arc<Shared>,
    max_batch_spans: usize,
    batches: mpsc::Sender<Batch>,
    control: mpsc::UnboundedSender<Control>,
}

impl std::fmt::Debug for SpanBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBatcher")
            .field("max_batch_spans", &self.max_batch_spans)
            .finish_non_exhaustive()
    }
}

/// The shard of the current thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|index| *index)
}

impl SpanBatcher {
    /// Starts the export task on the current tokio runtime.
    pub(super) fn start(config: ExportConfig) -> Result<SpanBatcher, String> {
        // Each export, retries included, is bounded by the timeout in
        // `Exporter::export`.
        let channel = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|error| format!("invalid endpoint '{}': {error}", config.endpoint))?
            .connect_lazy();
        let shard_count = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let shared = Arc::new(Shared {
            shards: (0..shard_count).map(|_| Mutex::default()).collect(),
            resource: Mutex::new(Arc::new((Vec::new(), None))),
            dropped: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        });
        let queued_batches = (config.max_queue_spans / config.max_batch_spans).max(1);
        let (batches, batch_receiver) = mpsc::channel(queued_batches);
        let (control, control_receiver) = mpsc::unbounded_channel();
        let exporter = Exporter {
            grpc: tonic::client::Grpc::new(channel),
            metadata: config.headers,
            timeout: config.timeout,
            shared: Arc::clone(&shared),
            failing: false,
        };
        tokio::spawn(exporter.run(batch_receiver, control_receiver, config.schedule_delay));
        Ok(SpanBatcher {
            shared,
            max_batch_spans: config.max_batch_spans,
            batches,
            control,
        })
    }

    fn queue(&self, batch: Batch) {
        let count = batch.count as u64;
        if self.batches.try_send(batch).is_err() {
            self.shared.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Exports what is gathered and waits, at most `timeout`, until it is.
    fn flush_within(&self, timeout: Duration) -> OTelSdkResult {
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        self.control
            .send(Control::Flush(done))
            .map_err(|_| OTelSdkError::InternalFailure("span export task has stopped".into()))?;
        finished
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for SpanBatcher {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() || self.shared.shut_down.load(Ordering::Relaxed) {
            return;
        }
        let shard = &self.shared.shards[shard_index() % self.shared.shards.len()];
        let (other_scope, full) = {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let mut other_scope = None;
            if shard.scope.as_ref() != Some(&span.instrumentation_scope) {
                other_scope = shard.take();
                shard.scope = Some(span.instrumentation_scope.clone());
            }
            shard.push(&span);
            let full = if shard.count >= self.max_batch_spans {
                shard.take()
            } else {
                None
            };
            (other_scope, full)
        };
        for batch in other_scope.into_iter().chain(full) {
            self.queue(batch);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush_within(Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shared.shut_down.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.flush_within(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let encoded = (
            otlp_encode::resource(resource),
            resource.schema_url().map(str::to_owned),
        );
        *self
            .shared
            .resource
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(encoded);
    }
}

/// Sends batches to the collector, one request at a time.
struct Exporter {
    grpc: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
    shared: Arc<Shared>,
    /// The last export failed (so the next failure is not logged again).
    failing: bool,
}

impl Exporter {
    async fn run(
        mut self,
        mut batches: mpsc::Receiver<Batch>,
        mut control: mpsc::UnboundedReceiver<Control>,
        schedule_delay: Duration,
    ) {
        let mut tick = tokio::time::interval(schedule_delay);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                Some(batch) = batches.recv() => self.export(batch).await,
                _ = tick.tick() => self.export_gathered().await,
                command = control.recv() => match command {
                    Some(Control::Flush(done)) => {
                        while let Ok(batch) = batches.try_recv() {
                            self.export(batch).await;
                        }
                        self.export_gathered().await;
                        let _ = done.send(());
                    }
                    None => break,
                },
            }
        }
    }

    /// Exports what every shard has gathered so far, and says how many
    /// spans were dropped since the last time.
    async fn export_gathered(&mut self) {
        for batch in self.shared.sweep() {
            self.export(batch).await;
        }
        self.report_dropped();
    }

    fn report_dropped(&self) {
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "spans dropped: the export queue was full");
        }
    }

    async fn export(&mut self, batch: Batch) {
        let resource = Arc::clone(
            &self
                .shared
                .resource
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let body = Bytes::from(otlp_encode::request(
            &resource.0,
            resource.1.as_deref(),
            &batch.scope,
            &batch.spans,
        ));
        drop(batch);
        let outcome = match tokio::time::timeout(self.timeout, self.send_with_retries(body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match outcome {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("span export recovered");
            }
            Ok(()) => {}
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(%error, "span export failed");
            }
            Err(_) => {}
        }
    }

    /// Sends `body`, retrying what the OTLP specification calls retryable
    /// (as opentelemetry-otlp's recommended policy does: at most 3 retries,
    /// 100 ms doubling to 1.6 s, plus up to 100 ms of jitter, or the delay
    /// the collector asks for). The encoded bytes are sent again as they
    /// are. The caller bounds the whole by the export timeout.
    async fn send_with_retries(&mut self, body: Bytes) -> Result<(), String> {
        let mut delay = RETRY_FIRST_DELAY;
        let mut retries = 0;
        loop {
            let status = match self.send(body.clone()).await {
                Ok(None) => return Ok(()),
                Ok(Some(rejected)) => return Err(rejected),
                Err(status) => status,
            };
            let Some(asked) = retry_delay(&status) else {
                return Err(format!("{}: {}", status.code(), status.message()));
            };
            if retries == MAX_RETRIES {
                return Err(format!(
                    "{}: {} (after {MAX_RETRIES} retries)",
                    status.code(),
                    status.message()
                ));
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=RETRY_MAX_JITTER_MS));
            tokio::time::sleep(asked.unwrap_or(delay) + jitter).await;
            delay = (delay * 2).min(RETRY_MAX_DELAY);
            retries += 1;
        }
    }

    /// One export request; `Ok(Some(text))` when the collector rejected
    /// part of it.
    async fn send(&mut self, body: Bytes) -> Result<Option<String>, Status> {
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        self.grpc
            .ready()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let response = self
            .grpc
            .unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
            .await?;
        Ok(response.into_inner())
    }
}

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(1_600);
const RETRY_MAX_JITTER_MS: u64 = 100;

/// Whether an export that failed with `status` is worth another attempt
/// (OTLP specification, "Failures"), and after the delay the collector
/// asked for, if it did: `None` means give up.
fn retry_delay(status: &Status) -> Option<Option<Duration>> {
    use tonic::Code;
    use tonic_types::StatusExt as _;
    let asked = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .filter(|delay| !delay.is_zero());
    match status.code() {
        Code::ResourceExhausted => asked.map(Some),
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Some(asked),
        _ => None,
    }
}

/// Sends the request bytes as they are; reads from the answer only a partial
/// success (`rejected_spans` and `error_message`), as text.
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Option<String>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        *self
    }

    fn decoder(&mut self) -> RawCodec {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// `ExportTracePartialSuccess`, the only field of the answer.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ExportTracePartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_spans: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

impl Decoder for RawCodec {
    type Item = Option<String>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Option<String>>, Status> {
        let answer = <ExportTraceServiceResponse as prost::Message>::decode(
            src.copy_to_bytes(src.remaining()),
        )
        .map_err(|error| Status::internal(error.to_string()))?;
        Ok(Some(answer.partial_success.and_then(|partial| {
            (partial.rejected_spans > 0 || !partial.error_message.is_empty()).then(|| {
                format!(
                    "the collector rejected {} spans: {}",
                    partial.rejected_spans, partial.error_message
                )
            })
        })))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::Status;

    use super::*;
    use crate::telemetry::otlp_encode::tests::client_span;

    #[test]
    fn a_batch_as_large_as_the_last_is_gathered_without_growing_its_buffer() {
        let span = client_span(Status::Ok);
        let mut shard = Shard::default();
        for _ in 0..2 {
            for _ in 0..512 {
                shard.push(&span);
            }
            assert!(shard.take().is_some());
        }
        let capacity = shard.spans.capacity();
        for _ in 0..512 {
            shard.push(&span);
        }
        assert_eq!(shard.spans.capacity(), capacity);
    }
}
