//! The audit trail (DESIGN §8): exactly one JSON line on stdout for every
//! call of an API RPC (our own services, `/portone.facade.v1.*`), whatever
//! `RUST_LOG` says; `AUDIT_LOG=off` stops them.
//!
//! ```json
//! {"timestamp":"2026-11-20T10:31:02.123456Z","event":"audit",
//!  "rpc":"portone.facade.v1.PaymentPrepareService/PreparePayment",
//!  "caller":"anonymous","merchant_uid":"order-1","amount":"1000",
//!  "currency":"KRW","code":"OK","duration_ms":12.345,
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
//! ```
//!
//! **One line per call, by construction.** The server's guard starts an
//! `Entry` with the call (inside `ServerCall`, where every outcome is
//! recorded) and puts an [`AuditRecord`] into the request's extensions.
//! The handler notes what it validated there; the entry writes the line when
//! the call's outcome is recorded (`ServerCall::finish`: an answer, an
//! overload refusal, a deadline, a policy denial), or, if the call's future
//! is dropped first (the client cancelled, the connection went away), when
//! it is dropped, with `CANCELLED`. A line holds only the fields of
//! [`AuditFields`] and the call's own facts: there is no place in it for a
//! buyer field, `custom_data`, a token or a secret. A field reaches it only
//! after validation, so an invalid request's line carries none of its
//! values (`rpc`, `caller`, `code`, `duration_ms`, `trace_id` only).
//!
//! **Off the worker threads.** Lines go through `tracing-appender`'s
//! [`NonBlocking`] writer: a bounded queue of [`QUEUED_LINES`] lines and a
//! thread of its own (`audit-writer`) that writes each line to stdout in one
//! locked `write_all`, so audit lines never interleave with log lines (the
//! log writer's thread writes the same way). A call only serializes its line
//! and hands it to the queue; it never waits for stdout.
//!
//! **When stdout is slower than the calls.** A worker must never block on
//! stdout, so when the queue is full the line is dropped, and counted: the
//! count is the metric `portone.audit.dropped`, and as soon as the writer
//! has emptied its queue again it writes a warning line into the trail
//! itself, at the place of the gap:
//! `{"timestamp":…,"level":"WARN","event":"audit_dropped","message":…,"dropped":N,"dropped_total":M}`.
//! Nothing is dropped silently. At shutdown the queue is flushed (bounded:
//! a stdout that never drains cannot hold the exit).

use std::{
    cell::RefCell,
    fmt,
    io::{self, Write},
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use opentelemetry::{metrics::ObservableCounter, trace::TraceId};
use serde::{Serialize, Serializer};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::{
    format::Writer,
    time::{FormatTime, SystemTime},
};

use crate::{config::AuditLog, error::code_name, identity::Caller, telemetry::dropped_audit_lines};

/// Lines that may wait for stdout before new ones are dropped (and counted).
/// A line is 200 to 500 bytes, so a full queue holds at most about 8 MB: a
/// few seconds of a flood, well inside the chart's 128 MiB memory limit
/// beside the log writer's own queue.
pub const QUEUED_LINES: usize = 16 * 1024;

/// Longest wait at shutdown for the queued lines to reach stdout.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the lines go, once [`AuditTrail::install`] ran with `AUDIT_LOG=on`.
static SINK: OnceLock<Sink> = OnceLock::new();

/// The installed audit trail; [`AuditTrail::shutdown`] flushes it.
pub struct AuditTrail {
    guard: WorkerGuard,
    _dropped_metric: ObservableCounter<u64>,
}

impl AuditTrail {
    /// Starts the writer thread when `setting` is on. Call it after the
    /// metric exporters are installed (so `portone.audit.dropped` is
    /// exported) and before the server takes calls. `None` when off, or when
    /// a trail was already installed.
    pub fn install(setting: AuditLog) -> Option<AuditTrail> {
        if setting == AuditLog::Off || SINK.get().is_some() {
            return None;
        }
        let (sink, guard) = Sink::new(io::stdout(), QUEUED_LINES);
        let dropped = sink.dropped.clone();
        SINK.set(sink).ok()?;
        let dropped_metric = dropped_audit_lines(move || dropped.dropped_lines());
        Some(AuditTrail {
            guard,
            _dropped_metric: dropped_metric,
        })
    }

    /// Writes what is queued to stdout, waiting at most 3 s.
    /// The wait is on a thread of its own: when stdout never drains, the
    /// process still exits.
    pub async fn shutdown(self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        let guard = self.guard;
        let spawned = std::thread::Builder::new()
            .name("audit-flush".to_owned())
            .spawn(move || {
                drop(guard);
                let _ = done.send(());
            });
        if spawned.is_ok() && tokio::time::timeout(FLUSH_TIMEOUT, flushed).await.is_err() {
            tracing::warn!("the audit trail did not reach stdout in time at shutdown");
        }
    }
}

/// The queue in front of the writer thread, and its count of dropped lines.
struct Sink {
    queue: NonBlocking,
    dropped: ErrorCounter,
}

impl Sink {
    /// A writer thread writing to `out`, behind a queue of `capacity` lines.
    fn new<W: Write + Send + 'static>(out: W, capacity: usize) -> (Sink, WorkerGuard) {
        let counter = Arc::new(OnceLock::new());
        let (queue, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(capacity)
            .thread_name("audit-writer")
            .finish(Out {
                inner: out,
                dropped: Arc::clone(&counter),
                reported: 0,
            });
        let dropped = queue.error_counter();
        let _ = counter.set(dropped.clone());
        (Sink { queue, dropped }, guard)
    }

    /// Serializes `line` and queues it as one write; never waits. A line
    /// the full queue refuses is counted in `dropped`.
    fn write(&self, line: &impl Serialize) {
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
        }
        let queue = |buffer: &mut Vec<u8>| {
            buffer.clear();
            if serde_json::to_writer(&mut *buffer, line).is_ok() {
                buffer.push(b'\n');
                // Lossy: queued or counted, and `Ok` either way.
                let _ = self.queue.clone().write(buffer);
            }
        };
        let reused = BUFFER.try_with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => queue(&mut buffer),
            Err(_) => queue(&mut Vec::new()),
        });
        if reused.is_err() {
            // This thread is ending (its locals are gone): a buffer of its own.
            queue(&mut Vec::new());
        }
    }
}

/// stdout as the writer thread sees it: each line in one `write_all` (stdout
/// is locked for the whole of it), and after each batch, when the queue has
/// just been emptied, a warning line for the lines dropped since the last.
struct Out<W> {
    inner: W,
    dropped: Arc<OnceLock<ErrorCounter>>,
    /// Dropped lines already reported.
    reported: usize,
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let total = self.dropped.get().map_or(0, ErrorCounter::dropped_lines);
        if total > self.reported {
            let warning = serde_json::to_vec(&DroppedWarning {
                timestamp: Now,
                level: "WARN",
                event: "audit_dropped",
                message: "audit lines were dropped: stdout was slower than the calls",
                dropped: total - self.reported,
                dropped_total: total,
            })
            .map_err(io::Error::other)?;
            self.reported = total;
            let mut line = warning;
            line.push(b'\n');
            self.inner.write_all(&line)?;
        }
        self.inner.flush()
    }
}

/// The line written where audit lines are missing.
#[derive(Serialize)]
struct DroppedWarning {
    timestamp: Now,
    level: &'static str,
    event: &'static str,
    message: &'static str,
    /// Lines dropped since the previous warning.
    dropped: usize,
    /// Lines dropped since the start.
    dropped_total: usize,
}

/// What a handler knows for its call's audit line: values it has validated
/// (or PortOne's validated answer), never the caller's raw input. The
/// fields left `None` are left out of the line. Nothing else can reach a
/// line: a buyer field, `custom_data`, a token or a secret has no place
/// here. A new field is one more line below.
#[derive(Debug, Default, Serialize)]
pub struct AuditFields {
    /// The order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_uid: Option<String>,
    /// The amount registered or asked for, as a decimal string (not for reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// The currency, when the request has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The payment link's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// PortOne's payment id (verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imp_uid: Option<String>,
    /// The verdict's enum name, for `VerifyPayment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
}

/// The handle to one call's [`AuditFields`], from the request's extensions.
/// Empty (and free) when the audit trail is off or the call is not audited.
#[derive(Clone, Default)]
pub struct AuditRecord(Option<Arc<Mutex<AuditFields>>>);

impl AuditRecord {
    /// The record the server put into `request`'s extensions.
    pub fn of<T>(request: &tonic::Request<T>) -> AuditRecord {
        request
            .extensions()
            .get::<AuditRecord>()
            .cloned()
            .unwrap_or_default()
    }

    /// Fills in fields; `fill` runs only when the call is audited.
    pub fn note(&self, fill: impl FnOnce(&mut AuditFields)) {
        if let Some(fields) = &self.0 {
            fill(&mut fields.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

/// One call's line, written exactly once: by [`Entry::finish`], or with
/// `CANCELLED` when the entry is dropped unfinished (the call's future was
/// dropped).
pub(crate) struct Entry {
    sink: &'static Sink,
    /// `/<package.Service>/<Method>`, shared with the request.
    path: Option<http::uri::PathAndQuery>,
    caller: Caller,
    trace_id: Option<TraceId>,
    started: Instant,
    fields: Arc<Mutex<AuditFields>>,
    written: bool,
}

impl Entry {
    /// Starts the line of the call in `request` (in the trace `trace_id`
    /// when traced) and puts its [`AuditRecord`] into the request's
    /// extensions. `None`, at no cost, when the trail is off.
    pub(crate) fn start<B>(
        request: &mut http::Request<B>,
        trace_id: Option<TraceId>,
    ) -> Option<Entry> {
        let sink = SINK.get()?;
        let fields = Arc::new(Mutex::new(AuditFields::default()));
        request
            .extensions_mut()
            .insert(AuditRecord(Some(Arc::clone(&fields))));
        Some(Entry {
            sink,
            path: request.uri().path_and_query().cloned(),
            caller: Caller::of(request),
            trace_id,
            started: Instant::now(),
            fields,
            written: false,
        })
    }

    /// Writes the line with the call's gRPC status code.
    pub(crate) fn finish(mut self, grpc_status: i32) {
        self.write(code_name(grpc_status));
    }

    fn write(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let fields = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.sink.write(&Line {
            timestamp: Now,
            event: "audit",
            rpc: self
                .path
                .as_ref()
                .map_or("", |path| path.path().trim_start_matches('/')),
            caller: self.caller.as_str(),
            fields: &fields,
            code,
            // Microseconds, as milliseconds with three decimals.
            duration_ms: micros as f64 / 1000.0,
            trace_id: self.trace_id.map(Hex),
        });
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Dropped unfinished: the call's future went away before an answer
        // (the client cancelled, or its connection closed), or the handler
        // panicked.
        let code = if std::thread::panicking() {
            "INTERNAL"
        } else {
            "CANCELLED"
        };
        self.write(code);
    }
}

/// An audit line. Fields in this order; `fields` are the RPC's own.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: Now,
    event: &'static str,
    rpc: &'a str,
    caller: &'a str,
    #[serde(flatten)]
    fields: &'a AuditFields,
    code: &'static str,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<Hex<TraceId>>,
}

/// The time when serialized, written exactly as the log lines' `timestamp`
/// (tracing-subscriber's: RFC 3339, UTC, microseconds, e.g.
/// `2026-11-20T10:31:02.123456Z`).
struct Now;

impl fmt::Display for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SystemTime.format_time(&mut Writer::new(f))
    }
}

impl Serialize for Now {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A value serialized through its `Display` (the trace id's lower-case hex).
struct Hex<T>(T);

impl<T: fmt::Display> Serialize for Hex<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A writer that sends each write to a channel, once `gate` lets it.
    struct Gated {
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        lines: mpsc::Sender<Vec<u8>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, opened) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            let _ = self.lines.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(fields: &AuditFields, trace_id: Option<TraceId>) -> serde_json::Value {
        serde_json::to_value(Line {
            timestamp: Now,
            event: "audit",
            rpc: "portone.facade.v1.PaymentPrepareService/PreparePayment",
            caller: "anonymous",
            fields,
            code: "OK",
            duration_ms: 12.345,
            trace_id: trace_id.map(Hex),
        })
        .unwrap()
    }

    #[test]
    fn a_line_has_the_fields_of_the_design_and_no_others() {
        let fields = AuditFields {
            merchant_uid: Some("order-1".into()),
            amount: Some("1000".into()),
            currency: Some("KRW".into()),
            link_id: Some("abc".into()),
            imp_uid: Some("imp_1".into()),
            verdict: Some("VERDICT_VERIFIED"),
        };
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let line = line(&fields, Some(trace));
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "timestamp",
            "event",
            "rpc",
            "caller",
            "merchant_uid",
            "amount",
            "currency",
            "link_id",
            "imp_uid",
            "verdict",
            "code",
            "duration_ms",
            "trace_id",
        ];
        expected.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["duration_ms"], 12.345);
    }

    #[test]
    fn absent_fields_are_left_out_of_the_line() {
        let line = line(&AuditFields::default(), None);
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["caller", "code", "duration_ms", "event", "rpc", "timestamp"]
        );
    }

    #[test]
    fn the_timestamp_is_written_as_the_log_lines_write_it() {
        let text = Now.to_string();
        // 2026-11-20T10:31:02.123456Z
        assert_eq!(text.len(), 27, "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T', "{text}");
    }

    #[test]
    fn lines_a_full_queue_refuses_are_counted_and_reported_once_the_writer_caught_up() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (sent, received) = mpsc::channel();
        let (sink, guard) = Sink::new(
            Gated {
                gate: Arc::clone(&gate),
                lines: sent,
            },
            2,
        );
        const WRITTEN: usize = 20;
        for n in 0..WRITTEN {
            sink.write(&serde_json::json!({ "event": "audit", "n": n }));
        }
        let dropped = sink.dropped.dropped_lines();
        // At most the queue (2) and the line the writer holds (1) got in.
        assert!(dropped >= WRITTEN - 3, "{dropped} dropped");
        let (open, opened) = &*gate;
        *open.lock().unwrap() = true;
        opened.notify_all();
        drop(guard);
        let lines: Vec<serde_json::Value> = received
            .try_iter()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
            .collect();
        let audit = lines.iter().filter(|l| l["event"] == "audit").count();
        let warnings: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["event"] == "audit_dropped")
            .collect();
        assert_eq!(warnings.len(), 1, "{lines:?}");
        assert_eq!(warnings[0]["level"], "WARN");
        assert_eq!(warnings[0]["dropped"], dropped);
        assert_eq!(warnings[0]["dropped_total"], dropped);
        assert_eq!(audit + dropped, WRITTEN, "{lines:?}");
    }
}
