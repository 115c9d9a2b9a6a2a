//! The metric instruments. They are made on the global meter provider when
//! a metric exporter starts; without one, none exist and nothing is
//! recorded, not even the attributes built.

use std::sync::OnceLock;

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Histogram, Meter, ObservableCounter, ObservableUpDownCounter},
};

/// Seconds; fine enough at the low end for a facade that adds microseconds.
const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Something counted, with its attributes.
pub(crate) enum Event<'a> {
    /// One getToken call made.
    TokenFetched,
    /// One getToken call that gave no token.
    TokenFailed,
    /// One upstream attempt repeated; the reason is `transient` or
    /// `unauthorized`.
    Retried(&'static str),
    /// One retry that the retry budget refused.
    RetryRefused,
    /// One call refused as OVERLOADED.
    Shed,
    /// One PortOne answer refused as too large.
    OversizedAnswer,
    /// One call of `rpc` (`package.Service/Method`) that the policy refused
    /// `caller`.
    Denied { caller: &'a str, rpc: &'a str },
}

/// Each counter's name and description, in the order of [`Event::index`].
const COUNTERS: [(&str, &str); 7] = [
    (
        "portone.token.refreshes",
        "PortOne access tokens fetched (getToken calls)",
    ),
    (
        "portone.token.failures",
        "getToken calls that gave no token (refused, failed or unreadable)",
    ),
    (
        "portone.upstream.retries",
        "Upstream attempts repeated after a transient failure or a 401",
    ),
    (
        "portone.upstream.retries_refused",
        "Retries the retry budget refused (20% of the calls of the last 10 s, plus 3/s)",
    ),
    (
        "rpc.server.shed",
        "Calls refused as OVERLOADED because MAX_IN_FLIGHT were in flight",
    ),
    (
        "portone.upstream.oversized_answers",
        "PortOne answers refused unread past 1 MiB",
    ),
    (
        "rpc.server.denied",
        "Calls refused as CALLER_NOT_ALLOWED by AUTHZ_POLICY_FILE, by caller and RPC",
    ),
];

impl Event<'_> {
    fn index(&self) -> usize {
        match self {
            Event::TokenFetched => 0,
            Event::TokenFailed => 1,
            Event::Retried(_) => 2,
            Event::RetryRefused => 3,
            Event::Shed => 4,
            Event::OversizedAnswer => 5,
            Event::Denied { .. } => 6,
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        match *self {
            Event::Retried(reason) => vec![KeyValue::new("reason", reason)],
            Event::Denied { caller, rpc } => {
                let (service, method) = rpc.split_once('/').unwrap_or((rpc, ""));
                vec![
                    KeyValue::new("enduser.id", caller.to_owned()),
                    KeyValue::new("rpc.service", service.to_owned()),
                    KeyValue::new("rpc.method", method.to_owned()),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// Every instrument recorded per call or per event.
pub(super) struct Instruments {
    /// `rpc.server.call.duration`: by method and status code.
    pub rpc_duration: Histogram<f64>,
    /// `http.client.request.duration`: by host, method and outcome.
    pub http_duration: Histogram<f64>,
    counters: [Counter<u64>; COUNTERS.len()],
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn meter() -> Meter {
    global::meter("portone-facade")
}

/// Makes the instruments on the global meter provider (install the provider
/// first); from then on they are recorded.
pub(super) fn install_instruments() {
    INSTRUMENTS.get_or_init(|| {
        let meter = meter();
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
            counters: COUNTERS.map(|(name, description)| {
                meter
                    .u64_counter(name)
                    .with_description(description)
                    .build()
            }),
        }
    });
}

/// The instruments, when metrics are exported.
pub(super) fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

/// Counts `event`, when metrics are recorded.
pub(crate) fn count(event: Event<'_>) {
    if let Some(instruments) = instruments() {
        instruments.counters[event.index()].add(1, &event.attributes());
    }
}

/// `rpc.server.active_requests`: RPCs in flight, read at each export from
/// `active` (nothing is recorded per call). Keep it for as long as the
/// server runs.
pub(crate) fn active_requests(
    active: impl Fn() -> usize + Send + Sync + 'static,
) -> ObservableUpDownCounter<i64> {
    meter()
        .i64_observable_up_down_counter("rpc.server.active_requests")
        .with_description("RPCs in flight")
        .with_callback(move |observer| {
            observer.observe(i64::try_from(active()).unwrap_or(i64::MAX), &[]);
        })
        .build()
}

/// `portone.audit.dropped`: audit lines dropped because stdout was slower
/// than the calls, read at each export from `dropped`. Keep it for as long
/// as the trail runs.
pub(crate) fn dropped_audit_lines(
    dropped: impl Fn() -> usize + Send + Sync + 'static,
) -> ObservableCounter<u64> {
    meter()
        .u64_observable_counter("portone.audit.dropped")
        .with_description(
            "Audit lines dropped because stdout was slower than the calls \
             (each gap is also marked in the trail)",
        )
        .with_callback(move |observer| {
            observer.observe(u64::try_from(dropped()).unwrap_or(u64::MAX), &[]);
        })
        .build()
}
