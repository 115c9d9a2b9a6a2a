//! The metric instruments. They are made on the global meter provider when
//! a metric exporter starts; without one, none exist and nothing is
//! recorded.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Histogram, ObservableCounter, ObservableUpDownCounter},
};

use super::spans::split_rpc;

/// Seconds; fine enough at the low end for a facade that adds microseconds.
const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Every instrument the facade records.
pub(super) struct Instruments {
    /// `rpc.server.call.duration`: by method and status code.
    pub rpc_duration: Histogram<f64>,
    /// `http.client.request.duration`: by host, method and outcome.
    pub http_duration: Histogram<f64>,
    /// `portone.token.refreshes`: getToken calls made.
    token_refreshes: Counter<u64>,
    /// `portone.upstream.retries`: upstream attempts repeated, by reason.
    retries: Counter<u64>,
    /// `portone.upstream.retries_refused`: retries the retry budget refused.
    retries_refused: Counter<u64>,
    /// `portone.token.failures`: getToken calls that gave no token.
    token_failures: Counter<u64>,
    /// `rpc.server.shed`: calls refused as OVERLOADED (over `MAX_IN_FLIGHT`).
    shed: Counter<u64>,
    /// `portone.upstream.oversized_answers`: answers refused past 1 MiB.
    oversized_answers: Counter<u64>,
    /// `rpc.server.denied`: calls refused as CALLER_NOT_ALLOWED, by caller
    /// and RPC.
    denied: Counter<u64>,
}

/// The instruments; set once when a metric exporter runs.
static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Makes the instruments on the global meter provider (install the provider
/// first); from then on they are recorded.
pub(super) fn install_instruments() {
    INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("portone-facade");
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        Instruments {
            rpc_duration: duration(
                "rpc.server.call.duration",
                "Duration of the RPCs served, by method and gRPC status code",
            ),
            http_duration: duration(
                "http.client.request.duration",
                "Duration of each HTTP request to PortOne (one per attempt)",
            ),
            token_refreshes: meter
                .u64_counter("portone.token.refreshes")
                .with_description("PortOne access tokens fetched (getToken calls)")
                .build(),
            retries: meter
                .u64_counter("portone.upstream.retries")
                .with_description("Upstream attempts repeated after a transient failure or a 401")
                .build(),
            token_failures: meter
                .u64_counter("portone.token.failures")
                .with_description("getToken calls that gave no token (refused, failed or unreadable)")
                .build(),
            shed: meter
                .u64_counter("rpc.server.shed")
                .with_description("Calls refused as OVERLOADED because MAX_IN_FLIGHT were in flight")
                .build(),
            denied: meter
                .u64_counter("rpc.server.denied")
                .with_description(
                    "Calls refused as CALLER_NOT_ALLOWED by AUTHZ_POLICY_FILE, by caller and RPC",
                )
                .build(),
            oversized_answers: meter
                .u64_counter("portone.upstream.oversized_answers")
                .with_description("PortOne answers refused unread past 1 MiB")
                .build(),
            retries_refused: meter
                .u64_counter("portone.upstream.retries_refused")
                .with_description(
                    "Retries the retry budget refused (20% of the calls of the last 10 s, plus 3/s)",
                )
                .build(),
        }
    });
}

/// The instruments, when metrics are exported; `None` when not, so that
/// callers do not even build the attributes.
pub(super) fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

/// Adds one to the counter `which` picks, when metrics are recorded.
fn count(which: impl FnOnce(&Instruments) -> &Counter<u64>) {
    if let Some(instruments) = instruments() {
        which(instruments).add(1, &[]);
    }
}

/// Counts one getToken call.
pub(crate) fn record_token_fetch() {
    count(|instruments| &instruments.token_refreshes)
}

/// Counts one repeated upstream attempt; `reason` is `transient` or
/// `unauthorized`.
pub(crate) fn record_retry(reason: &'static str) {
    if let Some(instruments) = instruments() {
        instruments
            .retries
            .add(1, &[KeyValue::new("reason", reason)]);
    }
}

/// Counts one getToken call that gave no token.
pub(crate) fn record_token_failure() {
    count(|instruments| &instruments.token_failures)
}

/// Counts one call refused as OVERLOADED.
pub(crate) fn record_shed() {
    count(|instruments| &instruments.shed)
}

/// Counts one call of `rpc` (`package.Service/Method`) that the policy
/// refused `caller`.
pub(crate) fn record_denied(caller: &str, rpc: &str) {
    if let Some(instruments) = instruments() {
        let (service, method) = split_rpc(rpc);
        instruments.denied.add(
            1,
            &[
                KeyValue::new("enduser.id", caller.to_owned()),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ],
        );
    }
}

/// Counts one PortOne answer refused as too large.
pub(crate) fn record_oversized_answer() {
    count(|instruments| &instruments.oversized_answers)
}

/// Counts one retry that the retry budget refused.
pub(crate) fn record_retry_refused() {
    count(|instruments| &instruments.retries_refused)
}

/// `rpc.server.active_requests`: RPCs in flight, read from the server's own
/// counter at each export (nothing is recorded per call). Keep it alive for
/// as long as the server runs.
pub(crate) struct ActiveRequestsGauge {
    _gauge: ObservableUpDownCounter<i64>,
}

impl ActiveRequestsGauge {
    /// Observes `count` at every export.
    pub(crate) fn observe(count: Arc<AtomicUsize>) -> ActiveRequestsGauge {
        let gauge = global::meter("portone-facade")
            .i64_observable_up_down_counter("rpc.server.active_requests")
            .with_description("RPCs in flight")
            .with_callback(move |observer| {
                let active = i64::try_from(count.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                observer.observe(active, &[]);
            })
            .build();
        ActiveRequestsGauge { _gauge: gauge }
    }
}

/// `portone.audit.dropped`: audit lines dropped because stdout was slower
/// than the calls, read from the audit writer's own count at each export
/// (nothing is recorded per call). Keep it alive for as long as the trail
/// runs.
pub(crate) struct DroppedAuditLines {
    _counter: ObservableCounter<u64>,
}

impl DroppedAuditLines {
    /// Observes `dropped()` at every export.
    pub(crate) fn observe(dropped: impl Fn() -> u64 + Send + Sync + 'static) -> DroppedAuditLines {
        let counter = global::meter("portone-facade")
            .u64_observable_counter("portone.audit.dropped")
            .with_description(
                "Audit lines dropped because stdout was slower than the calls (each gap is also marked in the trail)",
            )
            .with_callback(move |observer| observer.observe(dropped(), &[]))
            .build();
        DroppedAuditLines { _counter: counter }
    }
}
