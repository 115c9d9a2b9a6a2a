//! The metric instruments. They are created on the global meter provider
//! when a metric exporter starts; without one, none exist and nothing is
//! recorded.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use opentelemetry::{
    KeyValue, global,
    metrics::{BoundHistogram, Counter, Histogram, ObservableUpDownCounter},
};

/// Seconds; fine enough at the low end for a facade that adds microseconds.
const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// gRPC status codes with a bound `rpc.server.call.duration` handle per RPC
/// (0 to 16: all of them).
pub(crate) const STATUS_CODES: usize = 17;

/// Every instrument the facade records.
pub(crate) struct Instruments {
    /// `rpc.server.call.duration`: by method and status code.
    pub rpc_duration: Histogram<f64>,
    /// `rpc_duration` bound to each of our RPCs (by its index in the span
    /// names' table) and status code, slot `rpc * STATUS_CODES + code`.
    pub rpc_duration_bound: BoundSlots<{ super::spans::OUR_RPC_COUNT * STATUS_CODES }>,
    /// `http.client.request.duration`: by host, method and status.
    pub http_duration: Histogram<f64>,
    /// `portone.token.refreshes`: getToken calls made.
    pub token_refreshes: Counter<u64>,
    /// `portone.upstream.retries`: upstream attempts repeated.
    pub retries: Counter<u64>,
}

/// The instruments; set once when a metric exporter runs.
static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Creates the instruments on the global meter provider (install the
/// provider first); from then on they are recorded.
pub(super) fn install_instruments() {
    INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("portone-facade");
        Instruments {
            rpc_duration_bound: BoundSlots::new(),
            rpc_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of the RPCs served, by method and gRPC status code")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            http_duration: meter
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .with_description("Duration of each HTTP request to PortOne (one per attempt)")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            token_refreshes: meter
                .u64_counter("portone.token.refreshes")
                .with_description("PortOne access tokens fetched (getToken calls)")
                .build(),
            retries: meter
                .u64_counter("portone.upstream.retries")
                .with_description("Upstream attempts repeated after a transient failure or a 401")
                .build(),
        }
    });
}

/// The instruments, when metrics are exported; `None` when not, so that
/// callers do not even build the attributes.
pub(crate) fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

/// Handles on one histogram, each bound on first use to the attribute set
/// of its slot in a small fixed key space. A bound record skips what every
/// other record pays: hashing its attributes and finding them in a map
/// behind a shared lock (SDK 0.33, `experimental_metrics_bound_instruments`).
pub(crate) struct BoundSlots<const N: usize> {
    slots: [OnceLock<BoundHistogram<f64>>; N],
}

impl<const N: usize> BoundSlots<N> {
    pub(crate) const fn new() -> BoundSlots<N> {
        BoundSlots {
            slots: [const { OnceLock::new() }; N],
        }
    }

    /// Records `value` in `histogram` with `attributes`, through the handle of
    /// `slot` (bound to `attributes` the first time); with no such slot, it
    /// is recorded unbound.
    pub(crate) fn record<const K: usize>(
        &self,
        histogram: &Histogram<f64>,
        slot: Option<usize>,
        value: f64,
        attributes: impl FnOnce() -> [KeyValue; K],
    ) {
        match slot.and_then(|slot| self.slots.get(slot)) {
            Some(bound) => bound
                .get_or_init(|| histogram.bind(&attributes()))
                .record(value),
            None => histogram.record(value, &attributes()),
        }
    }
}

/// `rpc.server.active_requests`: RPCs in flight, read from the server's own
/// counter at each export (nothing is recorded per call). Keep it alive for
/// as long as the server runs.
pub(crate) struct ActiveRequestsGauge {
    _gauge: ObservableUpDownCounter<i64>,
}

impl ActiveRequestsGauge {
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
