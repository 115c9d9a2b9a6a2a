//! The facade's benchmark: `cargo bench --bench facade` (about 6 minutes on
//! 2 cores), or `cargo bench --bench facade -- --smoke` (`BENCH_SMOKE=1`) for
//! CI (seconds; asserts only zero errors and a written report).
//!
//! It starts the PortOne sandbox and the facade as separate processes (the
//! release binary cargo built), then measures, against the same sandbox:
//!
//! - direct (a service's own reqwest client and token, REST) vs facade (tonic
//!   over 4 HTTP/2 connections) for GetPreparedPayment (read) and
//!   PreparePayment (write), closed loop at concurrency 1, 32 and 256: req/s,
//!   p50/p99/p99.9, facade CPU per RPC, facade peak RSS, errors;
//! - the read path in an open loop at a fixed rate (50% of the facade's c=32
//!   throughput), latency from each call's scheduled send time;
//! - tracing exported over OTLP/gRPC to an in-bench sink vs not, at 100%, at
//!   `parentbased_traceidratio` 0.1 and at `always_off` sampling, both
//!   facades exporting their metrics to the sink alike; and, with
//!   `BENCH_BASELINE_BIN=<another build's binary>`, this build against that
//!   one, both untraced;
//! - idle RSS, RSS with 1000 calls in flight, spawn → health `SERVING`, and
//!   getToken calls for 1000 concurrent calls on a cold token;
//! - **beside the floor** (issue 16), against the **fixed upstream** (every
//!   answer the same fixed PortOne JSON, no state: `facade/fixed_upstream.rs`):
//!   direct vs the floor (`facade/floor.rs`: hyper alone, one pooled GET and
//!   a fixed protobuf answer per call) vs the facade, GetPreparedPayment at
//!   1 and 32 in flight over the same 4 connections: CPU per RPC of floor and
//!   facade and their ratio, added mean and p99 latency at 1 in flight
//!   (− direct) and their ratios; RSS with 10,000 calls in flight against the
//!   fixed upstream answering after 1 s (`MAX_IN_FLIGHT` raised, 16
//!   connections); idle RSS and spawn → `SERVING` of fresh facades there;
//! - **what TLS costs** (issues 14 and 16; `facade/tls_cost.rs`), with the
//!   cases beside the floor or alone: a plaintext and a mutual-TLS facade
//!   side by side in front of the fixed upstream, the load generator a
//!   tonic client with `ClientTlsConfig`. Warm connections: GetPreparedPayment
//!   at 1 and 32 in flight over 4 connections opened before, throughput
//!   mTLS ÷ plaintext, CPU per RPC of each and the difference, p50/p99 at 1
//!   in flight. New connections (200 of each kind, 20 in smoke), one after
//!   another, each connect, handshake, HTTP/2, one call, close: time to the
//!   answer (median, p99) and facade CPU per connection, for plaintext,
//!   mutual TLS with a full handshake and mutual TLS resumed.
//!
//! The floor and the fixed upstream are this executable started again with
//! a role argument (`bench-floor`, `bench-upstream`), so that they are built
//! by the command that runs the bench, may use dev-dependencies, and never
//! ship with the facade. This executable uses the facade's allocator
//! (jemalloc), so that the floor does too.
//!
//! Output: `$BENCH_OUT_DIR` or `<target dir>/bench/` gets `facade.json` and
//! `facade.md`; the Markdown is printed too. The last line reads
//! `bench smoke: N passed, M failed` (smoke) or `bench: N passed, M failed`,
//! counting cases that ran with zero errors; the exit code is non-zero when
//! one failed. Targets are reported (PASS/MISS), never asserted.
//!
//! Environment: `BENCH_SMOKE=1`, `BENCH_OUT_DIR`, and for experiments
//! `BENCH_MEASURE_MS`, `BENCH_WARMUP_MS`, `BENCH_REPS`, `BENCH_CONCURRENCIES`
//! (e.g. `1,32`; the targets then speak of c=32 if listed, else the largest).
//! `BENCH_FACADE_ENV` (`NAME=value` pairs separated by spaces) is added to
//! every facade process's environment, and the floor's. `BENCH_ONLY=tracing`
//! runs only the tracing comparison, `BENCH_ONLY=floor` only the cases
//! beside the floor and what TLS costs (about a minute and a half; no
//! sandbox), `BENCH_ONLY=tls` only what TLS costs (about 40 s), the other
//! figures then absent from the report. `BENCH_FLOOR_RUNTIME=current_thread` runs the floor on a
//! `current_thread` runtime (default `multi_thread`, the facade's).
//! `BENCH_ONLY=profile` loads one facade started under
//! `BENCH_FACADE_WRAPPER` (a profiler's command line, split at spaces) and
//! stops it with SIGTERM: `scripts/profile` and `docs/benchmark.md`, "How to
//! profile".

#[path = "facade/beside_floor.rs"]
mod beside_floor;
#[path = "facade/fixed_upstream.rs"]
mod fixed_upstream;
#[path = "facade/floor.rs"]
mod floor;
#[path = "facade/load.rs"]
mod load;
#[path = "facade/procfs.rs"]
mod procfs;
#[path = "facade/profile.rs"]
mod profile;
#[path = "facade/report.rs"]
mod report;
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "facade/tls_cost.rs"]
mod tls_cost;

use std::{
    collections::BTreeMap,
    env, fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use load::{Direct, Facade, Observed, Op, Shape, Target, burst, closed_loop, open_loop};
use procfs::{mib, status_kib};
use report::{
    Case, InFlight, Meta, Report, StartRep, Startup, Stats, Tracing, median, median_some,
};
use support::{
    otlp::{Keep, OtlpReceiver},
    process::{self, FacadeProc, Output, SandboxProc, facade_command},
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The facade's allocator, so that the floor, which runs from this
/// executable, allocates as the facade does (the load generator too).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Open-loop rates as shares of the facade's closed-loop reference throughput.
const OPEN_LOOP_SHARES: [f64; 2] = [0.5, 0.25];

/// One repetition's figures and its first error.
type Rep = (Stats, Option<String>);

/// How long and how hard.
struct Config {
    smoke: bool,
    warmup: Duration,
    measure: Duration,
    open_measure: Duration,
    reps: usize,
    concurrencies: Vec<usize>,
    /// The concurrency the targets speak of (32; 8 in smoke).
    reference: usize,
    connections: usize,
    in_flight: usize,
    in_flight_latency: &'static str,
    cold_calls: usize,
    startup_reps: usize,
    read_uids: u64,
    /// Longest wait for the tracing exporter to deliver before SIGTERM.
    flush_wait: Duration,
    /// `BENCH_ONLY`: which part runs.
    only: Only,
    /// Beside the floor: the floor's runtime (`BENCH_FLOOR_RUNTIME`).
    floor_runtime: String,
    /// Beside the floor: calls in flight against the slow fixed upstream,
    /// its delay, and the connections they are spread over.
    floor_in_flight: usize,
    floor_in_flight_delay: Duration,
    floor_in_flight_connections: usize,
    /// What TLS costs: sequential new connections per kind (plaintext,
    /// mutual TLS with a full handshake, mutual TLS resumed).
    tls_new_connections: usize,
    out_dir: PathBuf,
}

/// Which part of the bench runs (`BENCH_ONLY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    /// Everything (unset).
    All,
    /// `tracing`: the tracing comparisons.
    Tracing,
    /// `floor`: direct, floor and facade against the fixed upstream, with
    /// memory and start-up there.
    Floor,
    /// `profile`: one facade under load for a profiler ([`profile`]).
    Profile,
    /// `tls`: what TLS costs, a plaintext and a mutual-TLS facade side by
    /// side ([`tls_cost`]; also part of `floor`).
    Tls,
}

impl Only {
    fn from_env() -> Result<Only, String> {
        match env::var("BENCH_ONLY").as_deref() {
            Err(_) | Ok("") => Ok(Only::All),
            Ok("tracing") => Ok(Only::Tracing),
            Ok("floor") => Ok(Only::Floor),
            Ok("profile") => Ok(Only::Profile),
            Ok("tls") => Ok(Only::Tls),
            Ok(other) => Err(format!(
                "BENCH_ONLY={other}: expected tracing, floor, tls or profile"
            )),
        }
    }
}

fn env_ms(name: &str) -> Option<Duration> {
    env::var(name)
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let smoke = env::args().any(|arg| arg == "--smoke")
            || env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut config = if smoke {
            Config {
                smoke,
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(200),
                open_measure: Duration::from_millis(200),
                reps: 1,
                concurrencies: vec![1, 8],
                reference: 8,
                connections: 4,
                in_flight: 100,
                in_flight_latency: "300ms",
                cold_calls: 100,
                startup_reps: 1,
                read_uids: 100,
                flush_wait: Duration::from_secs(1),
                only: Only::All,
                floor_runtime: String::new(),
                floor_in_flight: 200,
                floor_in_flight_delay: Duration::from_secs(1),
                floor_in_flight_connections: 16,
                tls_new_connections: 20,
                out_dir: PathBuf::new(),
            }
        } else {
            Config {
                smoke,
                warmup: Duration::from_millis(500),
                measure: Duration::from_millis(2_500),
                open_measure: Duration::from_millis(5_000),
                reps: 3,
                concurrencies: vec![1, 32, 256],
                reference: 32,
                connections: 4,
                in_flight: 1_000,
                in_flight_latency: "2s",
                cold_calls: 1_000,
                startup_reps: 5,
                read_uids: 1_000,
                flush_wait: Duration::from_secs(8),
                only: Only::All,
                floor_runtime: String::new(),
                floor_in_flight: 10_000,
                floor_in_flight_delay: Duration::from_secs(1),
                floor_in_flight_connections: 16,
                tls_new_connections: 200,
                out_dir: PathBuf::new(),
            }
        };
        if let Some(measure) = env_ms("BENCH_MEASURE_MS") {
            config.measure = measure;
            config.open_measure = measure;
        }
        if let Some(warmup) = env_ms("BENCH_WARMUP_MS") {
            config.warmup = warmup;
        }
        if let Some(reps) = env::var("BENCH_REPS").ok().and_then(|r| r.parse().ok()) {
            config.reps = usize::max(reps, 1);
        }
        if let Ok(list) = env::var("BENCH_CONCURRENCIES") {
            let list: Vec<usize> = list
                .split(',')
                .filter_map(|c| c.trim().parse().ok())
                .filter(|&c| c > 0)
                .collect();
            if !list.is_empty() {
                config.reference = if list.contains(&32) {
                    32
                } else {
                    list.iter().copied().max().unwrap_or(1)
                };
                config.concurrencies = list;
            }
        }
        config.only = Only::from_env()?;
        if config.only == Only::Profile && env::var_os("BENCH_MEASURE_MS").is_none() {
            // Long enough for a profile worth reading (issue 16: 6 s at 2 kHz).
            config.warmup = Duration::from_secs(1);
            config.measure = Duration::from_secs(6);
        }
        config.floor_runtime = match env::var("BENCH_FLOOR_RUNTIME").as_deref() {
            Err(_) | Ok("") | Ok("multi_thread") => "multi_thread".to_owned(),
            Ok("current_thread") => "current_thread".to_owned(),
            Ok(other) => {
                return Err(format!(
                    "BENCH_FLOOR_RUNTIME={other}: expected multi_thread or current_thread"
                ));
            }
        };
        config.out_dir = out_dir();
        Ok(config)
    }
}

/// `$BENCH_OUT_DIR`, else `bench/` in the target directory this bench was
/// built in (`$CARGO_TARGET_DIR`, default `target`).
fn out_dir() -> PathBuf {
    if let Some(dir) = env::var_os("BENCH_OUT_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // <target>/<profile>/deps/facade-<hash>
    let built_in = env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?.parent()?.to_path_buf();
        target.join("CACHEDIR.TAG").exists().then_some(target)
    });
    if let Some(target) = built_in {
        return target.join("bench");
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(target).join("bench");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench")
}

/// Counts cases that ran with zero errors.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn case(&mut self, name: &str, errors: u64, first_error: Option<&str>) {
        if errors == 0 {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(format!(
                "{name}: {errors} error(s); first: {}",
                first_error.unwrap_or("?")
            ));
        }
    }

    fn broken(&mut self, name: &str, why: String) {
        self.failed += 1;
        self.failures.push(format!("{name}: {why}"));
    }
}

fn main() -> ExitCode {
    // The floor and the fixed upstream are this executable started again.
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(floor::ROLE) => return floor::main(&args[1..]),
        Some(fixed_upstream::ROLE) => return fixed_upstream::main(&args[1..]),
        _ => {}
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut report = Report {
        meta: meta(&config),
        reference_concurrency: config.reference,
        ..Report::default()
    };
    let mut tally = Tally::default();
    // Child processes are spawned from this (the main) thread only, so that
    // PR_SET_PDEATHSIG, which fires when the spawning thread ends, fires when
    // the bench ends.
    if let Err(error) = runtime.block_on(run(&config, &mut report, &mut tally)) {
        tally.broken("bench", error);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));

    report.meta.duration_s = started.elapsed().as_secs_f64();
    report.meta.loadavg_end = loadavg();
    report.targets = targets(&report, &config);
    match config.only {
        Only::All | Only::Floor => report.floor_targets = beside_floor::targets(&report),
        Only::Tls => report.floor_targets = vec![tls_cost::target(&report)],
        Only::Tracing | Only::Profile => {}
    }
    report.cases_passed = tally.passed;
    report.cases_failed = tally.failed;
    report.failures = tally.failures.clone();
    let markdown = report.markdown();
    println!("\n{markdown}");
    match write_report(&config.out_dir, &report, &markdown) {
        Ok(json_path) => println!("report: {} and facade.md beside it", json_path.display()),
        Err(error) => {
            eprintln!("bench: {error}");
            tally.broken("report", error);
        }
    }
    let prefix = if config.smoke { "bench smoke" } else { "bench" };
    println!("{prefix}: {} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes `facade.json` and `facade.md`, then reads the JSON back.
fn write_report(dir: &Path, report: &Report, markdown: &str) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let json_path = dir.join("facade.json");
    let json = serde_json::to_string_pretty(report).map_err(|error| format!("JSON: {error}"))?;
    fs::write(&json_path, json)
        .map_err(|error| format!("cannot write {}: {error}", json_path.display()))?;
    fs::write(dir.join("facade.md"), markdown)
        .map_err(|error| format!("cannot write facade.md: {error}"))?;
    let back = fs::read_to_string(&json_path)
        .map_err(|error| format!("cannot read {} back: {error}", json_path.display()))?;
    serde_json::from_str::<serde_json::Value>(&back)
        .map_err(|error| format!("{} is not JSON: {error}", json_path.display()))?;
    Ok(json_path)
}

async fn run(config: &Config, report: &mut Report, tally: &mut Tally) -> Result<(), String> {
    let ticks = procfs::ticks_per_second();
    println!(
        "bench: {} run; binary {}; report to {}",
        report.meta.mode,
        process::BINARY,
        config.out_dir.display()
    );
    match config.only {
        Only::Floor => {
            beside_floor::run(config, report, tally, ticks).await;
            return Ok(());
        }
        Only::Profile => return profile::run(config, tally, ticks).await,
        Only::Tls => {
            tls_cost::run(config, report, tally, ticks).await;
            return Ok(());
        }
        Only::All | Only::Tracing => {}
    }
    let only_tracing = config.only == Only::Tracing;
    let sandbox = SandboxProc::start(None, Output::Stdout)?;
    println!(
        "bench: sandbox at {} (pid {})",
        sandbox.url,
        sandbox.proc.pid()
    );
    let direct = Arc::new(Target::Direct(
        Direct::connect(&sandbox.url, &sandbox.imp_key, &sandbox.imp_secret).await?,
    ));
    prepare_read_uids(&direct, config.read_uids).await?;

    // Fresh facades: start-up time, idle RSS, the cold-token burst.
    if !only_tracing {
        match startup(config, &sandbox).await {
            Ok(startup) => {
                let errors = startup.reps.iter().map(|r| r.cold_errors).sum();
                tally.case(
                    "startup + cold token",
                    errors,
                    startup.first_error.as_deref(),
                );
                report.startup = Some(startup);
            }
            Err(error) => tally.broken("startup + cold token", error),
        }
    }

    // The facade for the closed and open loops.
    let facade_proc = start_facade(&sandbox, None, &[])?;
    wait_serving(facade_proc.addr, facade_proc.spawned_at).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    report.main_facade_idle_rss_mib = status_kib(facade_proc.pid(), "VmRSS").map(mib);
    report.meta.peak_rss_reset = procfs::reset_peak_rss(facade_proc.pid());
    println!(
        "bench: facade at {} (pid {})",
        facade_proc.addr,
        facade_proc.pid()
    );
    let facade = Arc::new(Target::Facade(
        Facade::connect(facade_proc.addr, config.connections).await?,
    ));
    let on_direct = Observed {
        facade: None,
        sandbox: sandbox.proc.pid(),
    };
    let on_facade = Observed {
        facade: Some(facade_proc.pid()),
        sandbox: sandbox.proc.pid(),
    };

    // Closed loop: every case once per repetition, interleaved, so drift in
    // the machine's load hits direct and facade alike.
    let mut closed: BTreeMap<(usize, usize, usize), Vec<Rep>> = BTreeMap::new();
    let ops = [Op::Read, Op::Write];
    let paths = [
        ("direct", &direct, on_direct),
        ("facade", &facade, on_facade),
    ];
    let loop_reps = if only_tracing { 0 } else { config.reps };
    for rep in 0..loop_reps {
        for (op_index, &op) in ops.iter().enumerate() {
            for (c_index, &concurrency) in config.concurrencies.iter().enumerate() {
                for path_index in [rep % 2, (rep + 1) % 2] {
                    let (path, target, observed) = &paths[path_index];
                    let shape = Shape {
                        op,
                        warmup: config.warmup,
                        measure: config.measure,
                        read_uids: config.read_uids,
                    };
                    let run = closed_loop(target, shape, concurrency, *observed).await;
                    let stats = Stats::from_run(&run, ticks);
                    print_run(
                        rep,
                        config.reps,
                        &format!("{} {path} c={concurrency}", op.rpc()),
                        &stats,
                    );
                    closed
                        .entry((op_index, c_index, path_index))
                        .or_default()
                        .push((stats, run.acc.first_error));
                }
            }
        }
    }
    for ((op_index, c_index, path_index), reps) in closed {
        let op = ops[op_index];
        let case = case(
            "closed",
            op,
            paths[path_index].0,
            Some(config.concurrencies[c_index]),
            None,
            reps,
        );
        tally.case(&case.name, case.median.errors, case.first_error.as_deref());
        report.closed_loop.push(case);
    }

    // Open loop on the read path at half the facade's reference throughput
    // (the target's rate), and at a quarter of it (further from saturation
    // on a machine whose cores the three processes share).
    let reference_rps = report
        .closed("read", "facade", config.reference)
        .map_or(0.0, |c| c.median.rps);
    let rates = OPEN_LOOP_SHARES.map(|share| (reference_rps * share).max(50.0));
    let mut open: Vec<[Vec<Rep>; 2]> = rates.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for rep in 0..loop_reps {
        for (rate_index, &rate) in rates.iter().enumerate() {
            for index in [rep % 2, (rep + 1) % 2] {
                let (path, target, observed) = &paths[index];
                let shape = Shape {
                    op: Op::Read,
                    warmup: config.warmup,
                    measure: config.open_measure,
                    read_uids: config.read_uids,
                };
                let run = open_loop(target, shape, rate, config.connections, *observed).await;
                let stats = Stats::from_run(&run, ticks);
                print_run(
                    rep,
                    config.reps,
                    &format!("open loop {path} {rate:.0}/s"),
                    &stats,
                );
                open[rate_index][index].push((stats, run.acc.first_error));
            }
        }
    }
    for (rate_index, by_path) in open.into_iter().enumerate() {
        for (index, reps) in by_path
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
        {
            let rate = rates[rate_index];
            let mut case = case("open", Op::Read, paths[index].0, None, Some(rate), reps);
            case.rate_share = Some(OPEN_LOOP_SHARES[rate_index]);
            tally.case(&case.name, case.median.errors, case.first_error.as_deref());
            report.open_loop.push(case);
        }
    }

    drop(facade);
    drop(facade_proc);

    // Tracing on vs off, at full, at a tenth and at no sampling; and, when
    // `BENCH_BASELINE_BIN` names another build, this build against it,
    // both untraced.
    let mut pairs = vec![
        Pair::traced("tracing at 100% sampling", "always_on", None, 1.0),
        Pair::traced(
            "tracing at parentbased_traceidratio 0.1",
            "parentbased_traceidratio",
            Some("0.1"),
            0.1,
        ),
        // What tracing costs when no span is kept: the unsampled spans'
        // context and propagation.
        Pair::traced("telemetry on, sampler always_off", "always_off", None, 0.0),
    ];
    if let Some(baseline) = env::var("BENCH_BASELINE_BIN")
        .ok()
        .filter(|b| !b.is_empty())
    {
        pairs.push(Pair {
            title: "this build vs the baseline binary, both untraced".to_owned(),
            labels: ("this build".to_owned(), format!("baseline {baseline}")),
            sampler: None,
            on_binary: Some(baseline),
        });
    }
    for pair in pairs {
        let title = pair.title.clone();
        match tracing(config, &sandbox, ticks, pair).await {
            Ok(tracing) => {
                for case in [&tracing.off, &tracing.on].into_iter().flatten() {
                    tally.case(&case.name, case.median.errors, case.first_error.as_deref());
                }
                report.tracing.push(tracing);
            }
            Err(error) => tally.broken(&title, error),
        }
    }

    // Many calls in flight against a slow upstream.
    if only_tracing {
        return Ok(());
    }
    match in_flight(config).await {
        Ok(in_flight) => {
            tally.case(
                &format!("{} in flight", in_flight.calls),
                in_flight.errors,
                in_flight.first_error.as_deref(),
            );
            report.in_flight = Some(in_flight);
        }
        Err(error) => tally.broken("in flight", error),
    }
    drop(sandbox);

    // The facade beside the floor, on the fixed upstream.
    beside_floor::run(config, report, tally, ticks).await;
    Ok(())
}

fn case(
    mode: &'static str,
    op: Op,
    path: &'static str,
    concurrency: Option<usize>,
    rate: Option<f64>,
    reps: Vec<Rep>,
) -> Case {
    let first_error = reps.iter().find_map(|(_, error)| error.clone());
    let reps: Vec<Stats> = reps.into_iter().map(|(stats, _)| stats).collect();
    let name = match (concurrency, rate) {
        (Some(c), _) => format!("{} {path} c={c}", op.rpc()),
        (None, Some(rate)) => format!("{} {path} open loop {rate:.0}/s", op.rpc()),
        (None, None) => format!("{} {path}", op.rpc()),
    };
    Case {
        name,
        mode,
        op: op.name(),
        rpc: op.rpc(),
        path,
        concurrency,
        rate,
        rate_share: None,
        median: Stats::median_of(&reps),
        reps,
        first_error,
    }
}

fn print_run(rep: usize, reps: usize, what: &str, s: &Stats) {
    let cpu = s
        .facade_cpu_us_per_rpc
        .map_or_else(String::new, |cpu| format!(", facade {cpu:.1} µs CPU/RPC"));
    println!(
        "  [{}/{reps}] {what}: {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs{cpu}, {} errors",
        rep + 1,
        s.rps,
        s.p50_us,
        s.p99_us,
        s.p999_us,
        s.errors
    );
}

/// Registers the read set directly, 16 at a time.
async fn prepare_read_uids(direct: &Arc<Target>, count: u64) -> Result<(), String> {
    let Target::Direct(_) = direct.as_ref() else {
        return Err("the read set is prepared directly".to_owned());
    };
    let mut next = 0;
    while next < count {
        let mut batch = tokio::task::JoinSet::new();
        for i in next..count.min(next + 16) {
            let direct = Arc::clone(direct);
            batch.spawn(async move {
                match direct.as_ref() {
                    Target::Direct(d) => d.prepare(&load::read_uid(i)).await,
                    Target::Facade(_) => Ok(()),
                }
            });
        }
        next = count.min(next + 16);
        while let Some(result) = batch.join_next().await {
            result
                .map_err(|error| format!("preparing the read set: {error}"))?
                .map_err(|error| format!("preparing the read set: {error}"))?;
        }
    }
    Ok(())
}

/// Starts the facade (this build's, or `binary`) in front of `sandbox` on an
/// ephemeral loopback port, logging warnings and its `listening` line, with
/// `extra_env` beside the standard settings.
fn start_facade(
    sandbox: &SandboxProc,
    binary: Option<&str>,
    extra_env: &[(&str, String)],
) -> Result<FacadeProc, String> {
    let mut command = facade_command(&sandbox.url, &sandbox.imp_key, &sandbox.imp_secret);
    if let Some(binary) = binary {
        // The same arguments and environment, another program.
        let mut other = std::process::Command::new(binary);
        other.env_clear();
        other.envs(
            command
                .get_envs()
                .filter_map(|(name, value)| Some((name, value?))),
        );
        command = other;
    }
    command.env("RUST_LOG", "warn,portone_facade::server=info");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    for (name, value) in facade_env_pairs() {
        command.env(name, value);
    }
    // For profiling: `BENCH_FACADE_WRAPPER="valgrind --tool=callgrind"`
    // runs `valgrind --tool=callgrind <facade>` (words split at spaces).
    let wrapper = env::var("BENCH_FACADE_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    if let Some(program) = words.next() {
        let mut wrapped = std::process::Command::new(program);
        wrapped.env_clear();
        // Profilers look for their helpers and caches there.
        for name in ["PATH", "HOME"] {
            if let Some(value) = env::var_os(name) {
                wrapped.env(name, value);
            }
        }
        wrapped
            .envs(
                command
                    .get_envs()
                    .filter_map(|(name, value)| Some((name, value?))),
            )
            .args(words)
            .arg(command.get_program())
            .args(command.get_args());
        command = wrapped;
    }
    FacadeProc::start(command, Output::Stdout)
}

/// `BENCH_FACADE_ENV`'s `NAME=value` pairs (separated by spaces), for
/// experiments: `BENCH_FACADE_ENV="TOKIO_WORKER_THREADS=1 MAX_IN_FLIGHT=64"`.
fn facade_env_pairs() -> Vec<(String, String)> {
    env::var("BENCH_FACADE_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Polls grpc.health.v1 Check (overall) about every millisecond until
/// `SERVING`; returns the time since `spawned_at` and the number of polls.
async fn wait_serving(addr: SocketAddr, spawned_at: Instant) -> Result<(Duration, u32), String> {
    wait_serving_within(addr, spawned_at, Duration::from_secs(10)).await
}

/// [`wait_serving`] for at most `limit`.
async fn wait_serving_within(
    addr: SocketAddr,
    spawned_at: Instant,
    limit: Duration,
) -> Result<(Duration, u32), String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| format!("endpoint: {error}"))?;
    wait_serving_over(endpoint, addr, spawned_at, limit).await
}

/// [`wait_serving_within`] through `endpoint` (a TLS one for a facade
/// serving TLS) to the facade at `addr`.
async fn wait_serving_over(
    endpoint: Endpoint,
    addr: SocketAddr,
    spawned_at: Instant,
    limit: Duration,
) -> Result<(Duration, u32), String> {
    let deadline = Instant::now() + limit;
    let endpoint = endpoint
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    let mut client: Option<HealthClient<Channel>> = None;
    let mut last_error = String::from("no answer");
    for poll in 1..=10_000u32 {
        if client.is_none() {
            match endpoint.connect().await {
                Ok(channel) => client = Some(HealthClient::new(channel)),
                Err(error) => last_error = format!("{error:?}"),
            }
        }
        if let Some(health) = client.as_mut() {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            match health.check(request).await {
                Ok(answer) if answer.get_ref().status() == ServingStatus::Serving => {
                    return Ok((spawned_at.elapsed(), poll));
                }
                Ok(answer) => last_error = format!("status {:?}", answer.get_ref().status()),
                Err(status) => {
                    last_error = status.to_string();
                    client = None;
                }
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(format!(
        "facade at {addr} not SERVING within {limit:?}: {last_error}"
    ))
}

/// getToken calls the sandbox has answered so far (`/__sandbox/stats`).
async fn get_token_calls(url: &str) -> Result<u64, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|error| format!("reqwest: {error}"))?;
    let stats: serde_json::Value = http
        .get(format!("{url}/__sandbox/stats"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|error| format!("sandbox stats: {error}"))?
        .json()
        .await
        .map_err(|error| format!("sandbox stats: {error}"))?;
    stats["calls"]["get_token"]
        .as_u64()
        .ok_or_else(|| format!("sandbox stats without calls.get_token: {stats}"))
}

/// Fresh facades: spawn → listening → SERVING, idle RSS, then a burst of
/// concurrent calls on the cold token and the getToken calls it caused.
async fn startup(config: &Config, sandbox: &SandboxProc) -> Result<Startup, String> {
    let mut startup = Startup {
        cold_calls: config.cold_calls,
        ..Startup::default()
    };
    for rep in 0..config.startup_reps {
        let before = get_token_calls(&sandbox.url).await?;
        let facade_proc = start_facade(sandbox, None, &[])?;
        let (serving, polls) = wait_serving(facade_proc.addr, facade_proc.spawned_at).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle_rss = status_kib(facade_proc.pid(), "VmRSS").map(mib);
        let target = Arc::new(Target::Facade(
            Facade::connect(facade_proc.addr, config.connections).await?,
        ));
        let (acc, elapsed) = burst(&target, config.cold_calls, config.read_uids).await;
        let after = get_token_calls(&sandbox.url).await.ok();
        let get_token = after.map(|after| after.saturating_sub(before));
        let start_rep = StartRep {
            listening_ms: facade_proc.listening_after.as_secs_f64() * 1e3,
            serving_ms: serving.as_secs_f64() * 1e3,
            health_polls: polls,
            idle_rss_mib: idle_rss,
            get_token_calls: get_token,
            cold_ok: acc.all_ok,
            cold_errors: acc.errors,
            cold_burst_ms: elapsed.as_secs_f64() * 1e3,
        };
        println!(
            "  [{}/{}] fresh facade: listening after {:.1} ms, SERVING after {:.1} ms ({} polls), idle RSS {} MiB; \
             {} concurrent calls on a cold token: {} ok, {} errors in {:.0} ms, getToken calls {}",
            rep + 1,
            config.startup_reps,
            start_rep.listening_ms,
            start_rep.serving_ms,
            polls,
            idle_rss.map_or_else(|| "?".to_owned(), |r| format!("{r:.2}")),
            config.cold_calls,
            acc.all_ok,
            acc.errors,
            start_rep.cold_burst_ms,
            get_token.map_or_else(|| "?".to_owned(), |c| c.to_string())
        );
        if startup.first_error.is_none() {
            startup.first_error = acc.first_error;
        }
        startup.get_token_calls.push(get_token);
        startup.reps.push(start_rep);
        drop(target);
        drop(facade_proc);
    }
    let serving: Vec<f64> = startup.reps.iter().map(|r| r.serving_ms).collect();
    startup.serving_ms_min = serving.iter().copied().fold(f64::INFINITY, f64::min);
    startup.serving_ms_max = serving.iter().copied().fold(0.0, f64::max);
    startup.serving_ms_median = median(serving);
    startup.listening_ms_median = median(startup.reps.iter().map(|r| r.listening_ms).collect());
    startup.idle_rss_mib_median =
        median_some(startup.reps.iter().filter_map(|r| r.idle_rss_mib).collect());
    Ok(startup)
}

/// One side-by-side comparison: a facade of this build (`off`) against one
/// that exports to an OTLP sink with `sampler`, or one of `on_binary`.
struct Pair {
    title: String,
    labels: (String, String),
    /// `OTEL_TRACES_SAMPLER`, its argument, and the share of calls sampled.
    sampler: Option<(&'static str, Option<&'static str>, f64)>,
    on_binary: Option<String>,
}

impl Pair {
    /// This build untraced against this build traced with `sampler`.
    fn traced(title: &str, sampler: &'static str, arg: Option<&'static str>, sampled: f64) -> Pair {
        Pair {
            title: title.to_owned(),
            labels: ("tracing off".to_owned(), "tracing on".to_owned()),
            sampler: Some((sampler, arg, sampled)),
            on_binary: None,
        }
    }
}

/// The read path at the reference concurrency on two facades started side
/// by side for this comparison, alike but for what `pair` says: fresh, so
/// that neither carries the history of the other cases (`docs/benchmark.md`).
async fn tracing(
    config: &Config,
    sandbox: &SandboxProc,
    ticks: f64,
    pair: Pair,
) -> Result<Tracing, String> {
    let Pair {
        title,
        labels,
        sampler,
        on_binary,
    } = pair;
    let sink = OtlpReceiver::start(Keep::Counts)?;
    let mut env = Vec::new();
    if let Some((sampler, arg, _)) = sampler {
        env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", sink.addr),
        ));
        env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()));
        env.push(("OTEL_TRACES_SAMPLER", sampler.to_owned()));
        if let Some(arg) = arg {
            env.push(("OTEL_TRACES_SAMPLER_ARG", arg.to_owned()));
        }
    }
    let traced = sampler.is_some();
    let sampled = sampler.map_or(0.0, |(_, _, sampled)| sampled);
    // Both facades export metrics alike, so that the pair differs only in
    // its traces.
    let plain_env = if traced {
        vec![(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("http://{}", sink.addr),
        )]
    } else {
        Vec::new()
    };
    let plain_proc = start_facade(sandbox, None, &plain_env)?;
    let mut otel_proc = start_facade(sandbox, on_binary.as_deref(), &env)?;
    wait_serving(plain_proc.addr, plain_proc.spawned_at).await?;
    wait_serving(otel_proc.addr, otel_proc.spawned_at).await?;
    println!(
        "bench: {title}: {} at {} (pid {}); {} at {} (pid {}), OTLP sink at {}",
        labels.0,
        plain_proc.addr,
        plain_proc.pid(),
        labels.1,
        otel_proc.addr,
        otel_proc.pid(),
        sink.addr
    );
    let plain = Arc::new(Target::Facade(
        Facade::connect(plain_proc.addr, config.connections).await?,
    ));
    let traced_target = Arc::new(Target::Facade(
        Facade::connect(otel_proc.addr, config.connections).await?,
    ));
    let on_facade = Observed {
        facade: Some(plain_proc.pid()),
        sandbox: sandbox.proc.pid(),
    };
    let on_traced = Observed {
        facade: Some(otel_proc.pid()),
        sandbox: sandbox.proc.pid(),
    };
    let shape = Shape {
        op: Op::Read,
        warmup: config.warmup,
        measure: config.measure,
        read_uids: config.read_uids,
    };
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut calls_sent = 0;
    for rep in 0..config.reps {
        for traced_now in [rep % 2 == 1, rep % 2 == 0] {
            let (target, observed, label) = if traced_now {
                (&traced_target, on_traced, labels.1.as_str())
            } else {
                (&plain, on_facade, labels.0.as_str())
            };
            let run = closed_loop(target, shape, config.reference, observed).await;
            if traced_now {
                calls_sent += run.acc.all_ok;
            }
            let stats = Stats::from_run(&run, ticks);
            print_run(
                rep,
                config.reps,
                &format!("{} facade c={} {label}", Op::Read.rpc(), config.reference),
                &stats,
            );
            let entry = (stats, run.acc.first_error);
            if traced_now {
                on.push(entry)
            } else {
                off.push(entry)
            }
        }
    }
    drop(plain);
    drop(traced_target);
    // Give the batch exporter its scheduled delay, then SIGTERM (which should
    // flush what is left).
    let wait_until = Instant::now()
        + if traced {
            config.flush_wait
        } else {
            Duration::ZERO
        };
    let mut last = sink.counts().spans();
    let mut stable_since = Instant::now();
    for _ in 0..1_000 {
        if Instant::now() >= wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sink.counts().spans();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if now as f64 >= calls_sent as f64 * sampled
            && stable_since.elapsed() >= Duration::from_millis(1_500)
        {
            break;
        }
    }
    let spans_before_shutdown = sink.counts().spans();
    otel_proc.proc.terminate();
    let exited = otel_proc.proc.wait_exit(Duration::from_secs(25));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_received = sink.counts().spans();
    let mut off_case = case(
        "closed",
        Op::Read,
        "facade",
        Some(config.reference),
        None,
        off,
    );
    off_case.name = format!("{} ({title}: {})", off_case.name, labels.0);
    let mut on_case = case(
        "closed",
        Op::Read,
        "facade",
        Some(config.reference),
        None,
        on,
    );
    on_case.name = format!("{} ({title}: {})", on_case.name, labels.1);
    let ratio = (off_case.median.rps > 0.0).then(|| on_case.median.rps / off_case.median.rps);
    let paired_ratios: Vec<f64> = off_case
        .reps
        .iter()
        .zip(&on_case.reps)
        .filter(|(off, _)| off.rps > 0.0)
        .map(|(off, on)| on.rps / off.rps)
        .collect();
    let paired_ratio_median = (!paired_ratios.is_empty()).then(|| median(paired_ratios.clone()));
    println!(
        "bench: {title}: on ÷ off = {}; the sink received {spans_received} spans for {calls_sent} calls",
        ratio.map_or_else(|| "?".to_owned(), |r| format!("{r:.3}"))
    );
    Ok(Tracing {
        title,
        labels,
        traced,
        sampled,
        concurrency: config.reference,
        ratio,
        paired_ratios,
        paired_ratio_median,
        calls_sent,
        spans_before_shutdown,
        spans_received,
        spans_per_call: (calls_sent > 0).then(|| spans_received as f64 / calls_sent as f64),
        trace_exports: sink.counts().trace_exports(),
        span_names: sink.counts().span_names(),
        metric_exports: sink.counts().metric_exports(),
        metric_names: sink.counts().metric_names(),
        exited_cleanly: exited.ok().map(|status| status.success()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        off: Some(off_case),
        on: Some(on_case),
    })
}

/// `config.in_flight` concurrent reads through a facade in front of a
/// sandbox that answers after `config.in_flight_latency`, sampling the
/// facade's RSS while they wait.
async fn in_flight(config: &Config) -> Result<InFlight, String> {
    let slow = SandboxProc::start(Some(config.in_flight_latency), Output::Stdout)?;
    let facade_proc = start_facade(&slow, None, &[])?;
    wait_serving(facade_proc.addr, facade_proc.spawned_at).await?;
    let pid = facade_proc.pid();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let idle_rss = status_kib(pid, "VmRSS").map(mib);
    // One registration to read (answered after the latency too).
    Direct::connect(&slow.url, &slow.imp_key, &slow.imp_secret)
        .await?
        .prepare(&load::read_uid(0))
        .await?;
    let target = Arc::new(Target::Facade(
        Facade::connect(facade_proc.addr, config.connections).await?,
    ));
    let calls = config.in_flight;
    let Sampled {
        acc,
        elapsed,
        max_rss_kib,
        samples,
    } = sample_burst(pid, &target, calls).await?;
    let hwm = status_kib(pid, "VmHWM").map(mib);
    let result = InFlight {
        calls,
        sandbox_latency: config.in_flight_latency.to_owned(),
        idle_rss_mib: idle_rss,
        max_sampled_rss_mib: max_rss_kib.map(mib),
        hwm_mib: hwm,
        samples,
        ok: acc.all_ok,
        errors: acc.errors,
        elapsed_ms: elapsed.as_secs_f64() * 1e3,
        first_error: acc.first_error,
    };
    println!(
        "bench: {calls} calls in flight (sandbox latency {}): RSS idle {} MiB, max sampled {} MiB, VmHWM {} MiB; \
         {} ok, {} errors, all answered after {:.0} ms",
        config.in_flight_latency,
        result
            .idle_rss_mib
            .map_or_else(|| "?".to_owned(), |v| format!("{v:.2}")),
        result
            .max_sampled_rss_mib
            .map_or_else(|| "?".to_owned(), |v| format!("{v:.2}")),
        result
            .hwm_mib
            .map_or_else(|| "?".to_owned(), |v| format!("{v:.2}")),
        result.ok,
        result.errors,
        result.elapsed_ms
    );
    Ok(result)
}

/// A burst and the RSS of the process that answered it.
struct Sampled {
    acc: load::Acc,
    elapsed: Duration,
    /// The largest VmRSS sampled while the calls were in flight (KiB).
    max_rss_kib: Option<u64>,
    samples: u32,
}

/// Resets `pid`'s peak RSS, then sends `calls` concurrent reads through
/// `target` and samples `pid`'s VmRSS every 5 ms until all have answered.
async fn sample_burst(pid: u32, target: &Arc<Target>, calls: usize) -> Result<Sampled, String> {
    procfs::reset_peak_rss(pid);
    let task = {
        let target = Arc::clone(target);
        tokio::spawn(async move { burst(&target, calls, 1).await })
    };
    let limit = Instant::now() + load::CALL_TIMEOUT + Duration::from_secs(20);
    let mut max_rss_kib = None::<u64>;
    let mut samples = 0;
    while !task.is_finished() && Instant::now() < limit && samples < 100_000 {
        if let Some(rss) = status_kib(pid, "VmRSS") {
            max_rss_kib = Some(max_rss_kib.map_or(rss, |max| max.max(rss)));
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (acc, elapsed) = task
        .await
        .map_err(|error| format!("the burst task failed: {error}"))?;
    Ok(Sampled {
        acc,
        elapsed,
        max_rss_kib,
        samples,
    })
}

/// The targets of the Performance issue, from the report.
fn targets(report: &Report, config: &Config) -> Vec<report::Target> {
    use report::Target as T;
    let c = config.reference;
    let read_facade = report.closed("read", "facade", c);
    let read_direct = report.closed("read", "direct", c);
    let read_facade_1 = report.closed("read", "facade", 1);
    let read_direct_1 = report.closed("read", "direct", 1);
    let added = |f: fn(&Stats) -> f64| match (read_facade_1, read_direct_1) {
        (Some(facade), Some(direct)) => Some(f(&facade.median) - f(&direct.median)),
        _ => None,
    };
    let ratio = match (read_facade, read_direct) {
        (Some(f), Some(d)) if d.median.rps > 0.0 => Some(f.median.rps / d.median.rps),
        _ => None,
    };
    let cold = report.startup.as_ref().and_then(|s| {
        // Every fresh facade must have asked exactly once: report the worst.
        let counts: Vec<u64> = s.get_token_calls.iter().flatten().copied().collect();
        (counts.len() == s.get_token_calls.len() && !counts.is_empty())
            .then(|| counts.iter().copied().max_by_key(|n| n.abs_diff(1)))
            .flatten()
            .map(|n| n as f64)
    });
    let in_flight =
        report
            .in_flight
            .as_ref()
            .and_then(|f| match (f.hwm_mib, f.max_sampled_rss_mib) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            });
    let in_flight_calls = report
        .in_flight
        .as_ref()
        .map_or(config.in_flight, |f| f.calls);
    vec![
        T::at_most(
            &format!("facade CPU per RPC, GetPreparedPayment c={c}"),
            read_facade.and_then(|f| f.median.facade_cpu_us_per_rpc),
            "µs",
            40.0,
        ),
        T::at_most(
            &format!("facade CPU per RPC, PreparePayment c={c} (same limit, for reference)"),
            report
                .closed("write", "facade", c)
                .and_then(|f| f.median.facade_cpu_us_per_rpc),
            "µs",
            40.0,
        ),
        T::at_least(
            &format!("throughput facade ÷ direct, GetPreparedPayment c={c}"),
            ratio,
            "",
            0.6,
        ),
        T::at_most(
            "added p50, GetPreparedPayment c=1",
            added(|s| s.p50_us),
            "µs",
            80.0,
        ),
        T::at_most(
            "added p99, GetPreparedPayment c=1",
            added(|s| s.p99_us),
            "µs",
            250.0,
        ),
        T::at_most(
            "idle RSS after start (median of fresh facades)",
            report.startup.as_ref().and_then(|s| s.idle_rss_mib_median),
            "MiB",
            15.0,
        ),
        T::at_most(
            &format!("RSS with {in_flight_calls} calls in flight (max of VmHWM and sampled VmRSS)"),
            in_flight,
            "MiB",
            64.0,
        ),
        T::at_most(
            "spawn → health SERVING (median)",
            report.startup.as_ref().map(|s| s.serving_ms_median),
            "ms",
            50.0,
        ),
        // At 100% sampling there is no target: that is what the SDK costs.
        T::at_least(
            &format!(
                "throughput traced ÷ untraced at parentbased_traceidratio 0.1, GetPreparedPayment c={c}"
            ),
            report
                .tracing
                .iter()
                .find(|t| t.traced && t.sampled < 1.0)
                .and_then(|t| t.ratio),
            "",
            0.95,
        ),
        T::exactly(
            &format!(
                "getToken calls for {} concurrent calls on a cold token (worst fresh facade)",
                config.cold_calls
            ),
            cold,
            "",
            1.0,
        ),
    ]
}

fn meta(config: &Config) -> Meta {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    Meta {
        mode: if config.smoke { "smoke" } else { "full" },
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_s: 0.0,
        git_revision: git_revision(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        clk_tck: procfs::ticks_per_second(),
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        binary: process::BINARY.to_owned(),
        warmup_ms: u64::try_from(config.warmup.as_millis()).unwrap_or(u64::MAX),
        measure_ms: u64::try_from(config.measure.as_millis()).unwrap_or(u64::MAX),
        open_measure_ms: u64::try_from(config.open_measure.as_millis()).unwrap_or(u64::MAX),
        repetitions: config.reps,
        connections: config.connections,
        read_uids: config.read_uids,
        peak_rss_reset: false,
    }
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `git describe`-like: the short revision, `+dirty` with uncommitted changes.
fn git_revision() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(revision) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{revision}+dirty")
            } else {
                revision
            }
        }
        None => "unknown".to_owned(),
    }
}
