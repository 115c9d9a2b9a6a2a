//! The load generator: the two paths (a service calling PortOne's REST API
//! itself, and the same service calling the facade over gRPC), a closed loop
//! at fixed concurrency, an open loop at a fixed rate, and a burst.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use portone_facade::pb::{
    GetPreparedPaymentRequest, PreparePaymentRequest,
    payment_prepare_service_client::PaymentPrepareServiceClient,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::task::JoinSet;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::{
    procfs,
    support::portone::{Envelope, Prepared, get_token},
};

/// Deadline of one call (sent as `grpc-timeout` to the facade; reqwest's
/// timeout on the direct path); the client gives up one second later.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on calls of one closed-loop lane (time is the real bound).
const MAX_CALLS_PER_LANE: u64 = 50_000_000;
/// The open loop stops sending (and counts errors) beyond this many calls
/// in flight.
const MAX_OUTSTANDING: u64 = 20_000;
/// Extra time granted to calls still running when a run ends.
const JOIN_GRACE: Duration = Duration::from_secs(15);

/// Which RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GetPreparedPayment` / `GET /payments/prepare/{uid}` on uids prepared beforehand.
    Read,
    /// `PreparePayment` / `POST /payments/prepare` with a fresh uid per call.
    Write,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }

    pub fn rpc(self) -> &'static str {
        match self {
            Op::Read => "GetPreparedPayment",
            Op::Write => "PreparePayment",
        }
    }
}

/// The `i`-th uid of the read set.
pub fn read_uid(i: u64) -> String {
    format!("bench-read-{i:05}")
}

static FRESH: AtomicU64 = AtomicU64::new(0);

/// A uid never used before in this run (at most 40 characters).
fn fresh_uid() -> String {
    format!(
        "bench-w-{:x}-{:x}",
        std::process::id(),
        FRESH.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a service does without the facade: its own token, its own REST calls.
pub struct Direct {
    http: reqwest::Client,
    base: String,
    authorization: HeaderValue,
}

impl Direct {
    /// Builds the client (same pool settings as the facade's) and gets a token.
    pub async fn connect(url: &str, imp_key: &str, imp_secret: &str) -> Result<Direct, String> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| format!("reqwest client: {error}"))?;
        let base = url.trim_end_matches('/').to_owned();
        let token = get_token(&http, &base, imp_key, imp_secret, CALL_TIMEOUT).await?;
        let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|error| format!("token is no header value: {error}"))?;
        Ok(Direct {
            http,
            base,
            authorization,
        })
    }

    /// `GET /payments/prepare/{uid}`; the uid must come back.
    pub async fn get(&self, uid: &str) -> Result<(), String> {
        let answer = self
            .http
            .get(format!("{}/payments/prepare/{uid}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("GET: {error}"))?;
        Direct::check(answer, uid).await
    }

    /// `POST /payments/prepare`; must register (code 0).
    pub async fn prepare(&self, uid: &str) -> Result<(), String> {
        let answer = self
            .http
            .post(format!("{}/payments/prepare", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .json(&serde_json::json!({"merchant_uid": uid, "amount": 10000, "currency": "KRW"}))
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("POST: {error}"))?;
        Direct::check(answer, uid).await
    }

    async fn check(answer: reqwest::Response, uid: &str) -> Result<(), String> {
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|error| format!("body: {error}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        let envelope: Envelope<Prepared> =
            serde_json::from_slice(&body).map_err(|error| format!("body: {error}"))?;
        match envelope.response {
            Some(prepared) if envelope.code == 0 && prepared.merchant_uid == uid => Ok(()),
            _ => Err(format!("code {}: {:?}", envelope.code, envelope.message)),
        }
    }
}

/// The same service through the facade: tonic over several HTTP/2
/// connections, chosen round-robin by lane.
pub struct Facade {
    lanes: Vec<PaymentPrepareServiceClient<Channel>>,
}

impl Facade {
    /// Opens `connections` plaintext HTTP/2 connections to `addr`.
    pub async fn connect(addr: SocketAddr, connections: usize) -> Result<Facade, String> {
        Facade::connect_with(&plaintext_endpoint(addr)?, connections).await
    }

    /// Opens `connections` HTTP/2 connections through `endpoint` (plaintext
    /// or TLS), before any call.
    pub async fn connect_with(endpoint: &Endpoint, connections: usize) -> Result<Facade, String> {
        let mut lanes = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let channel = endpoint.connect().await.map_err(|error| {
                format!("connect to the facade at {}: {error:?}", endpoint.uri())
            })?;
            lanes.push(PaymentPrepareServiceClient::new(channel));
        }
        Ok(Facade { lanes })
    }

    fn lane(&self, lane: usize) -> PaymentPrepareServiceClient<Channel> {
        self.lanes[lane % self.lanes.len()].clone()
    }

    /// `GetPreparedPayment`; the uid must come back.
    pub async fn get(&self, lane: usize, uid: String) -> Result<(), String> {
        let mut request = tonic::Request::new(GetPreparedPaymentRequest {
            merchant_uid: uid.clone(),
        });
        request.set_timeout(CALL_TIMEOUT);
        let answer = self
            .lane(lane)
            .get_prepared_payment(request)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
        match answer.into_inner().prepared_payment {
            Some(prepared) if prepared.merchant_uid == uid => Ok(()),
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// `PreparePayment` with a fresh uid; must register (not `already_prepared`).
    pub async fn prepare(&self, lane: usize, uid: String) -> Result<(), String> {
        let mut request = tonic::Request::new(PreparePaymentRequest {
            merchant_uid: uid.clone(),
            amount: "10000".to_owned(),
            currency: "KRW".to_owned(),
        });
        request.set_timeout(CALL_TIMEOUT);
        let answer = self
            .lane(lane)
            .prepare_payment(request)
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .into_inner();
        match answer.prepared_payment {
            Some(prepared) if prepared.merchant_uid == uid && !answer.already_prepared => Ok(()),
            other => Err(format!(
                "unexpected answer: {other:?}, already_prepared {}",
                answer.already_prepared
            )),
        }
    }
}

/// The load generator's plaintext endpoint for the facade at `addr`.
pub fn plaintext_endpoint(addr: SocketAddr) -> Result<Endpoint, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map(with_connection_options)
        .map_err(|error| format!("endpoint: {error}"))
}

/// The same over TLS, as a tonic client configures it (`ClientTlsConfig`:
/// the CA to trust, the client certificate for mutual TLS, the server
/// name). Each endpoint builds its own rustls client configuration, so a
/// new endpoint resumes no session of another.
pub fn tls_endpoint(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Endpoint, String> {
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|error| format!("endpoint: {error}"))?
        .tls_config(tls)
        .map(with_connection_options)
        .map_err(|error| format!("TLS endpoint: {error:?}"))
}

fn with_connection_options(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
}

/// Either path.
pub enum Target {
    Direct(Direct),
    Facade(Facade),
}

impl Target {
    /// One call of `op`; `seq` picks the read uid (modulo `read_uids`).
    pub async fn call(&self, op: Op, lane: usize, seq: u64, read_uids: u64) -> Result<(), String> {
        let uid = || match op {
            Op::Read => read_uid(seq % read_uids.max(1)),
            Op::Write => fresh_uid(),
        };
        let work = async {
            match (self, op) {
                (Target::Direct(direct), Op::Read) => direct.get(&uid()).await,
                (Target::Direct(direct), Op::Write) => direct.prepare(&uid()).await,
                (Target::Facade(facade), Op::Read) => facade.get(lane, uid()).await,
                (Target::Facade(facade), Op::Write) => facade.prepare(lane, uid()).await,
            }
        };
        tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), work)
            .await
            .unwrap_or_else(|_| Err("no answer within the deadline (client side)".to_owned()))
    }
}

/// A new latency histogram: nanoseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// What some calls did.
pub struct Acc {
    /// Latency of the measured successful calls, in ns.
    pub hist: Histogram<u64>,
    /// Measured successful calls.
    pub ok: u64,
    /// Successful calls, warm-up included.
    pub all_ok: u64,
    /// Failed calls, warm-up included.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Acc {
    pub fn new() -> Acc {
        Acc {
            hist: histogram(),
            ok: 0,
            all_ok: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn note(&mut self, result: Result<(), String>, latency: Duration, measured: bool) {
        match result {
            Ok(()) => {
                self.all_ok += 1;
                if measured {
                    self.ok += 1;
                    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                    self.hist.saturating_record(nanos);
                }
            }
            Err(error) => self.fail(error),
        }
    }

    pub fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    fn merge(&mut self, other: Acc) {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.all_ok += other.all_ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Processes whose CPU time a run reads.
#[derive(Clone, Copy)]
pub struct Observed {
    pub facade: Option<u32>,
    pub sandbox: u32,
}

#[derive(Clone, Copy)]
struct Snapshot {
    facade: Option<u64>,
    sandbox: Option<u64>,
    loadgen: Option<u64>,
    system: Option<u64>,
}

impl Snapshot {
    fn take(observed: Observed) -> Snapshot {
        Snapshot {
            facade: observed.facade.and_then(procfs::cpu_ticks),
            sandbox: procfs::cpu_ticks(observed.sandbox),
            loadgen: procfs::cpu_ticks(std::process::id()),
            system: procfs::system_busy_ticks(),
        }
    }
}

fn delta(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

/// One measured run.
pub struct RunResult {
    pub acc: Acc,
    /// The measured window.
    pub window: Duration,
    /// CPU ticks spent in the window by the facade, the sandbox and the bench.
    pub facade_ticks: Option<u64>,
    pub sandbox_ticks: Option<u64>,
    pub loadgen_ticks: Option<u64>,
    /// CPU ticks spent in the window by everything else on the machine.
    pub other_ticks: Option<u64>,
    /// The facade's VmHWM at the end, reset at the start of the window (KiB).
    pub facade_peak_kib: Option<u64>,
    /// Open loop only: how late the dispatcher sent its latest call.
    pub max_send_lag: Option<Duration>,
}

/// Reads the processes at the start and at the end of the measured window.
async fn observe(
    observed: Observed,
    window_start: Instant,
    window_end: Instant,
) -> (Snapshot, Snapshot, Option<u64>, Duration) {
    tokio::time::sleep_until(window_start.into()).await;
    if let Some(pid) = observed.facade {
        procfs::reset_peak_rss(pid);
    }
    let before = Snapshot::take(observed);
    let started = Instant::now();
    tokio::time::sleep_until(window_end.into()).await;
    let after = Snapshot::take(observed);
    let window = started.elapsed();
    let peak = observed
        .facade
        .and_then(|pid| procfs::status_kib(pid, "VmHWM"));
    (before, after, peak, window)
}

fn finish(
    acc: Acc,
    observation: (Snapshot, Snapshot, Option<u64>, Duration),
    max_send_lag: Option<Duration>,
) -> RunResult {
    let (before, after, peak, window) = observation;
    let ours = [
        delta(before.facade, after.facade),
        delta(before.sandbox, after.sandbox),
        delta(before.loadgen, after.loadgen),
    ]
    .into_iter()
    .flatten()
    .sum::<u64>();
    RunResult {
        other_ticks: delta(before.system, after.system).map(|all| all.saturating_sub(ours)),
        acc,
        window,
        facade_ticks: delta(before.facade, after.facade),
        sandbox_ticks: delta(before.sandbox, after.sandbox),
        loadgen_ticks: delta(before.loadgen, after.loadgen),
        facade_peak_kib: peak,
        max_send_lag,
    }
}

/// How a run is shaped.
#[derive(Clone, Copy)]
pub struct Shape {
    pub op: Op,
    pub warmup: Duration,
    pub measure: Duration,
    pub read_uids: u64,
}

/// `concurrency` lanes, each sending its next call when the last one answered.
pub async fn closed_loop(
    target: &Arc<Target>,
    shape: Shape,
    concurrency: usize,
    observed: Observed,
) -> RunResult {
    let warm_end = Instant::now() + shape.warmup;
    let end = warm_end + shape.measure;
    let mut lanes = JoinSet::new();
    for lane in 0..concurrency {
        let target = Arc::clone(target);
        lanes.spawn(async move {
            let mut acc = Acc::new();
            let mut seq = (lane as u64).wrapping_mul(7_919);
            for _ in 0..MAX_CALLS_PER_LANE {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = target.call(shape.op, lane, seq, shape.read_uids).await;
                acc.note(result, sent.elapsed(), sent >= warm_end);
                seq = seq.wrapping_add(1);
            }
            acc
        });
    }
    let observation = observe(observed, warm_end, end).await;
    let acc = join_all(lanes, end + JOIN_GRACE).await;
    finish(acc, observation, None)
}

async fn join_all(mut lanes: JoinSet<Acc>, deadline: Instant) -> Acc {
    let mut total = Acc::new();
    loop {
        match tokio::time::timeout_at(deadline.into(), lanes.join_next()).await {
            Ok(Some(Ok(acc))) => total.merge(acc),
            Ok(Some(Err(error))) => total.fail(format!("a lane failed: {error}")),
            Ok(None) => break,
            Err(_) => {
                let left = lanes.len();
                lanes.abort_all();
                total.fail(format!("{left} lanes still busy after the grace time"));
                break;
            }
        }
    }
    total
}

/// Calls sent at `rate` per second on a fixed schedule, whatever the answers
/// do; each latency runs from the call's scheduled send time, so a stall
/// shows in the latency of every call it delayed (no coordinated omission).
pub async fn open_loop(
    target: &Arc<Target>,
    shape: Shape,
    rate: f64,
    connections: usize,
    observed: Observed,
) -> RunResult {
    let rate = rate.max(1.0);
    let start = Instant::now() + Duration::from_millis(20);
    let warm_end = start + shape.warmup;
    let end = warm_end + shape.measure;
    let total = ((shape.warmup + shape.measure).as_secs_f64() * rate).floor() as u64;
    let acc = Arc::new(Mutex::new(Acc::new()));
    let outstanding = Arc::new(AtomicU64::new(0));
    let handle = tokio::runtime::Handle::current();
    let dispatcher = {
        let target = Arc::clone(target);
        let acc = Arc::clone(&acc);
        let outstanding = Arc::clone(&outstanding);
        thread::Builder::new()
            .name("open-loop".to_owned())
            .spawn(move || {
                // Wake on time: 1 ns of timer slack instead of the default 50 µs.
                // SAFETY: prctl on the calling thread only.
                unsafe {
                    libc::prctl(
                        libc::PR_SET_TIMERSLACK,
                        1 as libc::c_ulong,
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                        0 as libc::c_ulong,
                    );
                }
                let mut calls = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
                let mut max_lag = Duration::ZERO;
                for i in 0..total {
                    let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
                    let now = Instant::now();
                    if scheduled > now {
                        thread::sleep(scheduled - now);
                    } else {
                        max_lag = max_lag.max(now - scheduled);
                    }
                    let measured = scheduled >= warm_end;
                    if outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
                        acc.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .fail("open loop: too many calls outstanding".to_owned());
                        continue;
                    }
                    outstanding.fetch_add(1, Ordering::Relaxed);
                    let target = Arc::clone(&target);
                    let acc = Arc::clone(&acc);
                    let outstanding = Arc::clone(&outstanding);
                    let lane = usize::try_from(i).unwrap_or(0) % connections.max(1);
                    calls.push(handle.spawn(async move {
                        let result = target.call(shape.op, lane, i, shape.read_uids).await;
                        let latency = scheduled.elapsed();
                        outstanding.fetch_sub(1, Ordering::Relaxed);
                        acc.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .note(result, latency, measured);
                    }));
                }
                (calls, max_lag)
            })
    };
    let observation = observe(observed, warm_end, end).await;
    let dispatcher = match dispatcher {
        Ok(dispatcher) => dispatcher,
        Err(error) => {
            let mut acc = Acc::new();
            acc.fail(format!("cannot start the dispatcher thread: {error}"));
            return finish(acc, observation, None);
        }
    };
    let joined = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    let mut max_send_lag = None;
    let mut extra = Acc::new();
    match joined {
        Ok(Ok((calls, lag))) => {
            max_send_lag = Some(lag);
            let deadline = end + JOIN_GRACE;
            for call in calls {
                match tokio::time::timeout_at(deadline.into(), call).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => extra.fail(format!("a call task failed: {error}")),
                    Err(_) => {
                        extra.fail("calls still running after the grace time".to_owned());
                        break;
                    }
                }
            }
        }
        _ => extra.fail("the dispatcher thread panicked".to_owned()),
    }
    let mut acc = std::mem::replace(
        &mut *acc.lock().unwrap_or_else(PoisonError::into_inner),
        Acc::new(),
    );
    acc.merge(extra);
    finish(acc, observation, max_send_lag)
}

/// `n` reads released together (after every task is ready); returns when
/// all answered. `read_uids` uids are read round-robin.
pub async fn burst(target: &Arc<Target>, n: usize, read_uids: u64) -> (Acc, Duration) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut calls = JoinSet::new();
    for i in 0..n {
        let target = Arc::clone(target);
        let barrier = Arc::clone(&barrier);
        calls.spawn(async move {
            barrier.wait().await;
            let sent = Instant::now();
            let result = target.call(Op::Read, i, i as u64, read_uids).await;
            let mut acc = Acc::new();
            acc.note(result, sent.elapsed(), true);
            acc
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let acc = join_all(calls, started + CALL_TIMEOUT + JOIN_GRACE).await;
    (acc, started.elapsed())
}
