//! What TLS costs (issues 14 and 16): two fresh facades side by side in
//! front of the fixed upstream, alike but for `TLS_CERT_FILE`,
//! `TLS_KEY_FILE` and `TLS_CLIENT_CA_FILE` (mutual TLS, with a CA, a server
//! and a client certificate made by `support::tls`), the load generator's
//! tonic channels configured with `ClientTlsConfig` as a tonic client's
//! would be.
//!
//! - **Warm connections**: `GetPreparedPayment` at 1 and at the reference
//!   concurrency over the connections opened before the measurement (4 × 8
//!   streams at 32), each facade first in turn per repetition: throughput
//!   mTLS ÷ plaintext, facade CPU per RPC of each and the difference (what
//!   TLS costs per RPC), p50 and p99 at 1 in flight.
//! - **New connections**: sequential connections, each a TCP connect, the
//!   handshake, HTTP/2 setup, one `GetPreparedPayment` and a close; the time
//!   to its answer (median, p99) and the facade's CPU over them ÷ their
//!   number (what TLS costs per new connection), read from the facade's
//!   CPU-time clock in ns, since the connections add up to a few
//!   milliseconds of CPU. Three kinds, interleaved per repetition:
//!   plaintext; mutual TLS with a full handshake (a new client
//!   configuration per connection, so nothing is resumed: a client that
//!   keeps no session, as grpc-go by default); and mutual TLS resumed (one
//!   client configuration for all, which a tonic client keeps per endpoint,
//!   so each connection resumes the session of the one before).

use std::{
    fs,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{
    Config, Rep, Tally,
    beside_floor::start_upstream,
    case,
    load::{self, CALL_TIMEOUT, Facade, Observed, Op, Shape, Target, closed_loop},
    print_run, procfs,
    report::{self, Case, Report, Stats, median_some},
    start_facade,
    support::{
        process::FacadeProc,
        tls::{Leaf, TestCa, TlsClient},
    },
    wait_serving, wait_serving_over,
};

/// The two facades, in the order of the first repetition.
const FACADES: [&str; 2] = ["plaintext", "mtls"];
/// The kinds of new connection, in the order of the first repetition.
const KINDS: [Kind; 3] = [Kind::Plaintext, Kind::MtlsFull, Kind::MtlsResumed];
/// Time for the facade to finish with a closed connection before its CPU
/// clock is read.
const SETTLE: Duration = Duration::from_millis(50);

/// The key of every certificate of the run (rcgen's default).
const KEY_TYPE: &str = "ECDSA P-256";

/// What TLS costs, in one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsCost {
    /// Key type of the server and client certificates.
    pub key_type: &'static str,
    /// Protocol, cipher suite and key exchange a rustls client with the
    /// load generator's provider negotiated with the mTLS facade.
    pub negotiated: Option<String>,
    /// How a second connection of that client's configuration was made
    /// (`Resumed` when the facade resumes sessions).
    pub second_handshake: Option<String>,
    /// `BENCH_FACADE_ENV`, given to both facades.
    pub env: String,
    pub reference_concurrency: usize,
    /// Connections per facade for the warm cases.
    pub connections: usize,
    /// GetPreparedPayment, closed loop; paths `plaintext` and `mtls`.
    pub warm: Vec<Case>,
    /// mTLS ÷ plaintext throughput at the reference concurrency of each
    /// repetition (the two runs back to back).
    pub paired_throughput_ratios: Vec<f64>,
    pub new_connections: Vec<NewConnections>,
    pub figures: TlsFigures,
}

/// Sequential new connections of one kind, over every repetition.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NewConnections {
    /// `plaintext`, `mTLS, full handshake` or `mTLS, resumed`.
    pub kind: &'static str,
    pub connections: u64,
    /// Connections whose call was answered.
    pub ok: u64,
    pub errors: u64,
    /// From before the TCP connect to the answer of the one call.
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// The facade's CPU time over these connections (their closes
    /// included) ÷ their number.
    pub facade_cpu_us_per_connection: Option<f64>,
    pub first_error: Option<String>,
}

/// Each figure for plaintext and for mutual TLS, their difference and
/// their ratio.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsFigures {
    /// Req/s at the reference concurrency.
    pub throughput_rps: Compared,
    /// Facade CPU µs per RPC at the reference concurrency.
    pub cpu_us_per_rpc: Compared,
    /// … and at 1 in flight, where no write carries more than one answer.
    pub cpu_us_per_rpc_at_1: Compared,
    /// Latency at 1 in flight, µs.
    pub p50_us_at_1: Compared,
    pub p99_us_at_1: Compared,
    /// New connections (mutual TLS: full handshake), µs.
    pub new_connection_p50_us: Compared,
    pub new_connection_p99_us: Compared,
    pub new_connection_cpu_us: Compared,
}

/// A figure of the plaintext facade and of the mTLS one.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Compared {
    pub plaintext: Option<f64>,
    pub mtls: Option<f64>,
    /// mTLS − plaintext.
    pub difference: Option<f64>,
    /// mTLS ÷ plaintext (none when the plaintext figure is not above zero).
    pub ratio: Option<f64>,
}

impl Compared {
    fn of(plaintext: Option<f64>, mtls: Option<f64>) -> Compared {
        let (difference, ratio) = match (plaintext, mtls) {
            (Some(p), Some(m)) => (Some(m - p), (p > 0.0).then(|| m / p)),
            _ => (None, None),
        };
        Compared {
            plaintext,
            mtls,
            difference,
            ratio,
        }
    }
}

/// A kind of new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plaintext,
    MtlsFull,
    MtlsResumed,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Plaintext => "plaintext",
            Kind::MtlsFull => "mTLS, full handshake",
            Kind::MtlsResumed => "mTLS, resumed",
        }
    }
}

/// The certificates of the run; the files go with the CA's directory when
/// this is dropped, so it outlives the facades that read them.
struct Pki {
    ca: TestCa,
    server: Leaf,
    client: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let ca = TestCa::new("portone-facade bench CA");
        let server = ca.server("server");
        let client = ca.client("client", "bench-load-generator", &[]);
        Pki { ca, server, client }
    }

    /// The mTLS facade's environment.
    fn facade_env(&self) -> [(&'static str, String); 3] {
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        [
            ("TLS_CERT_FILE", path(&self.server.cert_file)),
            ("TLS_KEY_FILE", path(&self.server.key_file)),
            ("TLS_CLIENT_CA_FILE", path(&self.ca.cert_file())),
        ]
    }

    /// The load generator's TLS settings: trust the CA, show the client
    /// certificate, expect the server name `localhost`.
    fn client_tls(&self) -> Result<ClientTlsConfig, String> {
        let read = |path: &std::path::Path| {
            fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))
        };
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .identity(Identity::from_pem(
                read(&self.client.cert_file)?,
                read(&self.client.key_file)?,
            ))
            .domain_name("localhost"))
    }
}

/// Runs both parts and records them in `report.tls`.
pub async fn run(config: &Config, report: &mut Report, tally: &mut Tally, ticks: f64) {
    match measure(config, tally, ticks).await {
        Ok(cost) => report.tls = Some(cost),
        Err(error) => tally.broken("TLS cost", error),
    }
}

async fn measure(config: &Config, tally: &mut Tally, ticks: f64) -> Result<TlsCost, String> {
    let pki = Pki::new();
    let client_tls = pki.client_tls()?;
    let upstream = start_upstream(Duration::ZERO)?;
    let plain_proc = start_facade(&upstream, None, &[])?;
    let tls_proc = start_facade(&upstream, None, &pki.facade_env())?;
    wait_serving(plain_proc.addr, plain_proc.spawned_at).await?;
    wait_serving_over(
        load::tls_endpoint(tls_proc.addr, client_tls.clone())?,
        tls_proc.addr,
        tls_proc.spawned_at,
        Duration::from_secs(10),
    )
    .await?;
    println!(
        "bench: TLS cost: fixed upstream at {} (pid {}), plaintext facade at {} (pid {}), mTLS facade at {} (pid {})",
        upstream.url,
        upstream.proc.pid(),
        plain_proc.addr,
        plain_proc.pid(),
        tls_proc.addr,
        tls_proc.pid()
    );
    let (negotiated, second_handshake) = match probe(tls_proc.addr, &pki).await {
        Ok((negotiated, second)) => (Some(negotiated), Some(second)),
        Err(error) => {
            println!("bench: TLS cost: the handshake probe failed: {error}");
            (None, None)
        }
    };
    let procs = [&plain_proc, &tls_proc];
    let (warm, paired_throughput_ratios) =
        warm(config, ticks, &procs, &client_tls, upstream.proc.pid()).await?;
    for case in &warm {
        tally.case(&case.name, case.median.errors, case.first_error.as_deref());
    }
    let new_connections = new_connections(config, &procs, &client_tls).await?;
    for kind in &new_connections {
        tally.case(
            &format!("new connections, {} (fixed upstream)", kind.kind),
            kind.errors,
            kind.first_error.as_deref(),
        );
    }
    let mut cost = TlsCost {
        key_type: KEY_TYPE,
        negotiated,
        second_handshake,
        env: std::env::var("BENCH_FACADE_ENV").unwrap_or_default(),
        reference_concurrency: config.reference,
        connections: config.connections,
        warm,
        paired_throughput_ratios,
        new_connections,
        figures: TlsFigures::default(),
    };
    cost.compute_figures();
    drop(pki);
    Ok(cost)
}

/// One mutual-TLS handshake by a rustls client with the load generator's
/// provider, then a second with the same client configuration after the
/// first had read the facade's session tickets: what was negotiated, and
/// whether the second was resumed.
async fn probe(addr: SocketAddr, pki: &Pki) -> Result<(String, String), String> {
    use tokio::io::AsyncReadExt;
    let client = TlsClient::new(&pki.ca, Some(&pki.client));
    let mut first = client
        .connect(addr)
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let connection = first.get_ref().1;
    let negotiated = format!(
        "{:?}, {:?}, {:?}",
        connection.protocol_version(),
        connection.negotiated_cipher_suite().map(|s| s.suite()),
        connection.negotiated_key_exchange_group().map(|g| g.name())
    )
    .replace("Some(", "")
    .replace(')', "");
    // The tickets follow the handshake; reading (nothing comes until the
    // client speaks HTTP/2) takes them in.
    let mut buffer = [0_u8; 64];
    let _ = tokio::time::timeout(Duration::from_millis(200), first.read(&mut buffer)).await;
    drop(first);
    let second = client
        .connect(addr)
        .await
        .map_err(|error| format!("second handshake: {error}"))?;
    let kind = second
        .get_ref()
        .1
        .handshake_kind()
        .map_or_else(|| "?".to_owned(), |kind| format!("{kind:?}"));
    Ok((negotiated, kind))
}

/// Both facades at 1 and at the reference concurrency, each first in turn
/// per repetition, over connections opened before; the cases and the
/// paired throughput ratios at the reference concurrency.
async fn warm(
    config: &Config,
    ticks: f64,
    procs: &[&FacadeProc; 2],
    client_tls: &ClientTlsConfig,
    upstream_pid: u32,
) -> Result<(Vec<Case>, Vec<f64>), String> {
    let targets = [
        Arc::new(Target::Facade(
            Facade::connect(procs[0].addr, config.connections).await?,
        )),
        Arc::new(Target::Facade(
            Facade::connect_with(
                &load::tls_endpoint(procs[1].addr, client_tls.clone())?,
                config.connections,
            )
            .await?,
        )),
    ];
    let observed = procs.map(|proc| Observed {
        facade: Some(proc.pid()),
        sandbox: upstream_pid,
    });
    let concurrencies = [1, config.reference];
    let mut runs: Vec<Vec<Vec<Rep>>> = vec![vec![Vec::new(); FACADES.len()]; concurrencies.len()];
    for rep in 0..config.reps {
        for (c_index, &concurrency) in concurrencies.iter().enumerate() {
            for turn in 0..FACADES.len() {
                let facade = (rep + turn) % FACADES.len();
                let shape = Shape {
                    op: Op::Read,
                    warmup: config.warmup,
                    measure: config.measure,
                    // The fixed upstream answers with this one registration.
                    read_uids: 1,
                };
                let run = closed_loop(&targets[facade], shape, concurrency, observed[facade]).await;
                let stats = Stats::from_run(&run, ticks);
                print_run(
                    rep,
                    config.reps,
                    &format!("TLS cost: {} c={concurrency}", FACADES[facade]),
                    &stats,
                );
                runs[c_index][facade].push((stats, run.acc.first_error));
            }
        }
    }
    let mut cases = Vec::new();
    for (c_index, by_facade) in runs.into_iter().enumerate() {
        for (facade, reps) in by_facade.into_iter().enumerate() {
            let mut case = case(
                "closed",
                Op::Read,
                FACADES[facade],
                Some(concurrencies[c_index]),
                None,
                reps,
            );
            case.name = format!("{} (fixed upstream)", case.name);
            cases.push(case);
        }
    }
    let at_reference = |path: &str| find(&cases, path, config.reference).map(|c| c.reps.clone());
    let paired = match (at_reference("plaintext"), at_reference("mtls")) {
        (Some(plain), Some(mtls)) => plain
            .iter()
            .zip(&mtls)
            .filter(|(plain, _)| plain.rps > 0.0)
            .map(|(plain, mtls)| mtls.rps / plain.rps)
            .collect(),
        _ => Vec::new(),
    };
    Ok((cases, paired))
}

fn find<'a>(cases: &'a [Case], path: &str, concurrency: usize) -> Option<&'a Case> {
    cases
        .iter()
        .find(|c| c.path == path && c.concurrency == Some(concurrency))
}

/// What the new connections of one kind did so far.
struct KindTally {
    hist: hdrhistogram::Histogram<u64>,
    connections: u64,
    errors: u64,
    cpu_ns: Option<u64>,
    first_error: Option<String>,
}

/// `config.tls_new_connections` sequential new connections of each kind,
/// in blocks (one per repetition, each kind first in turn), the facade's
/// CPU clock read before and after each block.
async fn new_connections(
    config: &Config,
    procs: &[&FacadeProc; 2],
    client_tls: &ClientTlsConfig,
) -> Result<Vec<NewConnections>, String> {
    let per_block = config.tls_new_connections.div_ceil(config.reps).max(1);
    let mut tallies: Vec<KindTally> = KINDS
        .iter()
        .map(|_| KindTally {
            hist: load::histogram(),
            connections: 0,
            errors: 0,
            cpu_ns: Some(0),
            first_error: None,
        })
        .collect();
    for rep in 0..config.reps {
        for turn in 0..KINDS.len() {
            let index = (rep + turn) % KINDS.len();
            let kind = KINDS[index];
            let proc = if kind == Kind::Plaintext {
                procs[0]
            } else {
                procs[1]
            };
            let tally = &mut tallies[index];
            // A resumed connection needs a session: one connection, not
            // counted, makes it.
            let shared = match kind {
                Kind::Plaintext => Some(load::plaintext_endpoint(proc.addr)?),
                Kind::MtlsResumed => {
                    let endpoint = load::tls_endpoint(proc.addr, client_tls.clone())?;
                    one_call(&endpoint).await?;
                    Some(endpoint)
                }
                Kind::MtlsFull => None,
            };
            tokio::time::sleep(SETTLE).await;
            let before = procfs::cpu_ns(proc.pid());
            let started = Instant::now();
            for _ in 0..per_block {
                // Built before the clock starts: the client's own set-up.
                let endpoint = match &shared {
                    Some(endpoint) => endpoint.clone(),
                    None => load::tls_endpoint(proc.addr, client_tls.clone())?,
                };
                let sent = Instant::now();
                let result = one_call(&endpoint).await;
                let latency = sent.elapsed();
                tally.connections += 1;
                match result {
                    Ok(()) => {
                        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                        tally.hist.saturating_record(nanos);
                    }
                    Err(error) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(error);
                    }
                }
            }
            let block = started.elapsed();
            tokio::time::sleep(SETTLE).await;
            let after = procfs::cpu_ns(proc.pid());
            let spent = match (before, after) {
                (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                _ => None,
            };
            tally.cpu_ns = tally.cpu_ns.zip(spent).map(|(sum, spent)| sum + spent);
            println!(
                "  [{}/{}] TLS cost: {per_block} new connections, {}: {:.0} ms, facade CPU {} µs per connection",
                rep + 1,
                config.reps,
                kind.label(),
                block.as_secs_f64() * 1e3,
                spent.map_or_else(
                    || "?".to_owned(),
                    |ns| format!("{:.0}", ns as f64 / 1e3 / per_block as f64)
                )
            );
        }
    }
    Ok(KINDS
        .iter()
        .zip(tallies)
        .map(|(kind, tally)| {
            let ok = tally.hist.len();
            let quantile = |q: f64| {
                if ok > 0 {
                    tally.hist.value_at_quantile(q) as f64 / 1e3
                } else {
                    0.0
                }
            };
            NewConnections {
                kind: kind.label(),
                connections: tally.connections,
                ok,
                errors: tally.errors,
                mean_us: if ok > 0 { tally.hist.mean() / 1e3 } else { 0.0 },
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
                max_us: if ok > 0 {
                    tally.hist.max() as f64 / 1e3
                } else {
                    0.0
                },
                facade_cpu_us_per_connection: tally
                    .cpu_ns
                    .filter(|_| tally.connections > 0)
                    .map(|ns| ns as f64 / 1e3 / tally.connections as f64),
                first_error: tally.first_error,
            }
        })
        .collect())
}

/// A new connection through `endpoint` (TCP, the handshake when TLS, HTTP/2),
/// one `GetPreparedPayment` on it, and its close.
async fn one_call(endpoint: &Endpoint) -> Result<(), String> {
    let work = async {
        let facade = Facade::connect_with(endpoint, 1).await?;
        facade.get(0, load::read_uid(0)).await
    };
    tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), work)
        .await
        .unwrap_or_else(|_| Err("no answer within the deadline (client side)".to_owned()))
}

impl TlsCost {
    fn new_connection(&self, kind: Kind) -> Option<&NewConnections> {
        self.new_connections
            .iter()
            .find(|n| n.kind == kind.label() && n.ok > 0)
    }

    fn compute_figures(&mut self) {
        let c = self.reference_concurrency;
        let warm = |path: &str, concurrency: usize, f: fn(&Stats) -> Option<f64>| {
            find(&self.warm, path, concurrency)
                .filter(|case| case.median.ok > 0)
                .and_then(|case| f(&case.median))
        };
        let both = |concurrency: usize, f: fn(&Stats) -> Option<f64>| {
            Compared::of(
                warm("plaintext", concurrency, f),
                warm("mtls", concurrency, f),
            )
        };
        let new = |f: fn(&NewConnections) -> Option<f64>| {
            Compared::of(
                self.new_connection(Kind::Plaintext).and_then(f),
                self.new_connection(Kind::MtlsFull).and_then(f),
            )
        };
        self.figures = TlsFigures {
            throughput_rps: both(c, |s| Some(s.rps)),
            cpu_us_per_rpc: both(c, |s| s.facade_cpu_us_per_rpc),
            cpu_us_per_rpc_at_1: both(1, |s| s.facade_cpu_us_per_rpc),
            p50_us_at_1: both(1, |s| Some(s.p50_us)),
            p99_us_at_1: both(1, |s| Some(s.p99_us)),
            new_connection_p50_us: new(|n| Some(n.p50_us)),
            new_connection_p99_us: new(|n| Some(n.p99_us)),
            new_connection_cpu_us: new(|n| n.facade_cpu_us_per_connection),
        };
    }

    /// The section of the report.
    pub fn markdown(&self, md: &mut String) {
        use std::fmt::Write as _;
        let opt = |v: Option<f64>, decimals: usize| {
            v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
        };
        let _ = writeln!(
            md,
            "\n## What TLS costs (GetPreparedPayment against the fixed upstream)\n\n\
             Two fresh facades in front of the same fixed upstream, alike but for `TLS_CERT_FILE`, \
             `TLS_KEY_FILE` and `TLS_CLIENT_CA_FILE` (mutual TLS; {} keys, a CA made by the bench){}. The \
             load generator's tonic channels use `ClientTlsConfig` with the CA and a client certificate. \
             Negotiated: {}; a second connection of one client configuration: {}.\n\n\
             **Warm connections**: {} connections opened before the measurement; each facade first in turn \
             per repetition.\n",
            self.key_type,
            if self.env.is_empty() {
                String::new()
            } else {
                format!(" and `BENCH_FACADE_ENV={}`", self.env)
            },
            self.negotiated.as_deref().unwrap_or("?"),
            self.second_handshake.as_deref().unwrap_or("?"),
            self.connections
        );
        md.push_str(
            "| facade | c | req/s | mean µs | p50 µs | p99 µs | p99.9 µs | facade CPU µs/RPC | upstream CPU µs/call | load-gen CPU µs/call | other load (cores) | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for case in &self.warm {
            let s = &case.median;
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                if case.path == "mtls" {
                    "mTLS"
                } else {
                    case.path
                },
                case.concurrency.unwrap_or(0),
                s.rps,
                s.mean_us,
                s.p50_us,
                s.p99_us,
                s.p999_us,
                opt(s.facade_cpu_us_per_rpc, 1),
                opt(s.sandbox_cpu_us_per_call, 1),
                opt(s.loadgen_cpu_us_per_call, 1),
                opt(s.other_load_cores, 2),
                s.errors
            );
        }
        let paired: Vec<String> = self
            .paired_throughput_ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect();
        let _ = writeln!(
            md,
            "\nThroughput mTLS ÷ plaintext at {} in flight, each repetition (back-to-back runs): {}; median {}.\n",
            self.reference_concurrency,
            paired.join(", "),
            opt(median_some(self.paired_throughput_ratios.clone()), 3)
        );
        md.push_str(
            "**New connections**, one after another: TCP connect, handshake, HTTP/2 set-up, one call, close. \
             Time from before the connect to the answer; facade CPU (its CPU-time clock) over all of them, \
             closes included, ÷ their number. A full handshake makes a new client configuration for each \
             connection; resumed connections share one, as a tonic endpoint does.\n\n\
             | connection | connections | mean µs | p50 µs | p99 µs | max µs | facade CPU µs/connection | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for n in &self.new_connections {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
                n.kind,
                n.connections,
                n.mean_us,
                n.p50_us,
                n.p99_us,
                n.max_us,
                opt(n.facade_cpu_us_per_connection, 0),
                n.errors
            );
        }
        let f = &self.figures;
        md.push_str(
            "\n| figure, same run | plaintext | mTLS | mTLS − plaintext | mTLS ÷ plaintext |\n\
             |---|---:|---:|---:|---:|\n",
        );
        let c = self.reference_concurrency;
        let rows: [(String, &Compared, usize); 8] = [
            (
                format!("throughput, {c} in flight (req/s)"),
                &f.throughput_rps,
                0,
            ),
            (
                format!("facade CPU per RPC, {c} in flight (µs): **what TLS costs per RPC**"),
                &f.cpu_us_per_rpc,
                1,
            ),
            (
                "facade CPU per RPC, 1 in flight (µs)".to_owned(),
                &f.cpu_us_per_rpc_at_1,
                1,
            ),
            ("p50, 1 in flight (µs)".to_owned(), &f.p50_us_at_1, 1),
            ("p99, 1 in flight (µs)".to_owned(), &f.p99_us_at_1, 1),
            (
                "new connection (mTLS: full handshake) → first answer, p50 (µs)".to_owned(),
                &f.new_connection_p50_us,
                0,
            ),
            (
                "new connection → first answer, p99 (µs)".to_owned(),
                &f.new_connection_p99_us,
                0,
            ),
            (
                "facade CPU per new connection (µs): **what TLS costs per new connection**"
                    .to_owned(),
                &f.new_connection_cpu_us,
                0,
            ),
        ];
        for (name, figure, decimals) in rows {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} |",
                opt(figure.plaintext, decimals),
                opt(figure.mtls, decimals),
                figure
                    .difference
                    .map_or_else(|| "–".to_owned(), |d| format!("{d:+.decimals$}")),
                opt(figure.ratio, 3)
            );
        }
    }
}

/// The target of issue 16: throughput with mutual TLS ÷ plaintext at the
/// reference concurrency, over warm connections, from this run.
pub fn target(report: &Report) -> report::Target {
    let cost = report.tls.as_ref();
    let c = cost.map_or(report.reference_concurrency, |t| t.reference_concurrency);
    report::Target::at_least(
        &format!(
            "with mTLS ÷ plaintext, warm connections (throughput, GetPreparedPayment, {c} in flight)"
        ),
        cost.and_then(|t| t.figures.throughput_rps.ratio),
        "",
        0.9,
    )
}
