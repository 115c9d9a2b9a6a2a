//! The facade beside the floor and the direct path, all three against the
//! fixed upstream, in one run (issue 16): CPU per RPC, added mean and p99
//! latency, RSS with many calls in flight against a slow upstream, idle RSS
//! and spawn → `SERVING` of fresh facades; what TLS costs there
//! (`tls_cost`); and the targets that speak of them.

use std::{env, process::Command, sync::Arc, time::Duration};

use crate::{
    Config, Rep, Tally, case, facade_env_pairs, fixed_upstream, floor,
    load::{Direct, Facade, Observed, Op, Shape, Target, closed_loop},
    print_run,
    procfs::{mib, status_kib},
    report::{self, Floor, FreshFacades, InFlight, Report, Stats, median_some},
    sample_burst, start_facade,
    support::process::{FacadeProc, Output, SandboxProc},
    wait_serving,
};

/// The paths, in the order of the first repetition.
const PATHS: [&str; 3] = ["direct", "floor", "facade"];

/// This bench's own executable, which plays the floor and the upstream.
fn this_executable() -> Result<std::path::PathBuf, String> {
    env::current_exe().map_err(|error| format!("cannot find the bench's own executable: {error}"))
}

/// Starts the fixed upstream; with a `delay`, every answer but getToken's
/// waits that long.
pub fn start_upstream(delay: Duration) -> Result<SandboxProc, String> {
    let mut command = Command::new(this_executable()?);
    command.env_clear().arg(fixed_upstream::ROLE);
    if !delay.is_zero() {
        command.args(["--delay-ms", &delay.as_millis().to_string()]);
    }
    SandboxProc::from_command(command, "fixed upstream", Output::Stdout)
}

/// Starts the floor in front of `upstream` on a `runtime` runtime, with
/// `BENCH_FACADE_ENV` (`TOKIO_WORKER_THREADS` and the like) as the facades.
pub fn start_floor(upstream: &SandboxProc, runtime: &str) -> Result<FacadeProc, String> {
    let mut command = Command::new(this_executable()?);
    command.env_clear().args([
        floor::ROLE,
        "--upstream",
        &upstream.url,
        "--runtime",
        runtime,
    ]);
    for (name, value) in facade_env_pairs() {
        command.env(name, value);
    }
    FacadeProc::start_as(command, "floor", Output::Stdout)
}

/// Runs every case beside the floor and records them in `report.floor`.
pub async fn run(config: &Config, report: &mut Report, tally: &mut Tally, ticks: f64) {
    let mut floor = Floor {
        floor_runtime: config.floor_runtime.clone(),
        env: env::var("BENCH_FACADE_ENV").unwrap_or_default(),
        reference_concurrency: config.reference,
        ..Floor::default()
    };
    match side_by_side(config, ticks).await {
        Ok(cases) => {
            for case in &cases {
                tally.case(&case.name, case.median.errors, case.first_error.as_deref());
            }
            floor.closed_loop = cases;
        }
        Err(error) => tally.broken("beside the floor", error),
    }
    floor.compute_figures();
    // Issue 16's "with mTLS ÷ plaintext, warm connections", and what TLS
    // costs per RPC and per new connection.
    crate::tls_cost::run(config, report, tally, ticks).await;
    match fresh_facades(config).await {
        Ok(fresh) => {
            let errors = u64::from(fresh.first_error.is_some());
            tally.case(
                "fresh facades (fixed upstream)",
                errors,
                fresh.first_error.as_deref(),
            );
            floor.fresh = Some(fresh);
        }
        Err(error) => tally.broken("fresh facades (fixed upstream)", error),
    }
    floor.in_flight_connections = config.floor_in_flight_connections;
    floor.in_flight_max_in_flight = max_in_flight_for(config.floor_in_flight);
    match in_flight(config).await {
        Ok((in_flight, through_floor)) => {
            tally.case(
                &format!("{} in flight (fixed upstream)", in_flight.calls),
                in_flight.errors,
                in_flight.first_error.as_deref(),
            );
            floor.in_flight = Some(in_flight);
            // For comparison only: not a case of its own.
            floor.floor_in_flight = through_floor;
        }
        Err(error) => tally.broken("in flight (fixed upstream)", error),
    }
    report.floor = Some(floor);
}

/// Direct, floor and facade at each concurrency, interleaved per
/// repetition (each path goes first in turn), over the same load generator
/// and connection shape.
async fn side_by_side(config: &Config, ticks: f64) -> Result<Vec<report::Case>, String> {
    let upstream = start_upstream(Duration::ZERO)?;
    let floor_proc = start_floor(&upstream, &config.floor_runtime)?;
    let facade_proc = start_facade(&upstream, None, &[])?;
    wait_serving(facade_proc.addr, facade_proc.spawned_at).await?;
    println!(
        "bench: beside the floor: fixed upstream at {} (pid {}), floor ({}) at {} (pid {}), facade at {} (pid {})",
        upstream.url,
        upstream.proc.pid(),
        config.floor_runtime,
        floor_proc.addr,
        floor_proc.pid(),
        facade_proc.addr,
        facade_proc.pid()
    );
    let targets = [
        Arc::new(Target::Direct(
            Direct::connect(&upstream.url, &upstream.imp_key, &upstream.imp_secret).await?,
        )),
        Arc::new(Target::Facade(
            Facade::connect(floor_proc.addr, config.connections).await?,
        )),
        Arc::new(Target::Facade(
            Facade::connect(facade_proc.addr, config.connections).await?,
        )),
    ];
    let observed = [None, Some(floor_proc.pid()), Some(facade_proc.pid())].map(|pid| Observed {
        facade: pid,
        sandbox: upstream.proc.pid(),
    });
    let concurrencies = [1, config.reference];
    let mut runs: Vec<Vec<Vec<Rep>>> = vec![vec![Vec::new(); PATHS.len()]; concurrencies.len()];
    for rep in 0..config.reps {
        for (c_index, &concurrency) in concurrencies.iter().enumerate() {
            for turn in 0..PATHS.len() {
                let path = (rep + turn) % PATHS.len();
                let shape = Shape {
                    op: Op::Read,
                    warmup: config.warmup,
                    measure: config.measure,
                    // The fixed upstream answers with this one registration.
                    read_uids: 1,
                };
                let run = closed_loop(&targets[path], shape, concurrency, observed[path]).await;
                let stats = Stats::from_run(&run, ticks);
                print_run(
                    rep,
                    config.reps,
                    &format!("beside the floor: {} c={concurrency}", PATHS[path]),
                    &stats,
                );
                runs[c_index][path].push((stats, run.acc.first_error));
            }
        }
    }
    let mut cases = Vec::new();
    for (c_index, by_path) in runs.into_iter().enumerate() {
        for (path, reps) in by_path.into_iter().enumerate() {
            let mut case = case(
                "closed",
                Op::Read,
                PATHS[path],
                Some(concurrencies[c_index]),
                None,
                reps,
            );
            case.name = format!("{} (fixed upstream)", case.name);
            cases.push(case);
        }
    }
    Ok(cases)
}

/// Fresh facades in front of the fixed upstream: spawn → `SERVING`, then
/// VmRSS 200 ms later, before any call.
async fn fresh_facades(config: &Config) -> Result<FreshFacades, String> {
    let upstream = start_upstream(Duration::ZERO)?;
    let mut fresh = FreshFacades::default();
    for rep in 0..config.startup_reps {
        let facade_proc = start_facade(&upstream, None, &[])?;
        let serving = match wait_serving(facade_proc.addr, facade_proc.spawned_at).await {
            Ok((serving, _)) => serving,
            Err(error) => {
                fresh.first_error.get_or_insert(error);
                continue;
            }
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss = status_kib(facade_proc.pid(), "VmRSS").map(mib);
        println!(
            "  [{}/{}] fresh facade (fixed upstream): SERVING after {:.1} ms, idle RSS {} MiB",
            rep + 1,
            config.startup_reps,
            serving.as_secs_f64() * 1e3,
            rss.map_or_else(|| "?".to_owned(), |r| format!("{r:.2}"))
        );
        fresh.serving_ms.push(serving.as_secs_f64() * 1e3);
        fresh.idle_rss_mib.push(rss);
    }
    fresh.serving_ms_median = median_some(fresh.serving_ms.clone());
    fresh.idle_rss_mib_median = median_some(fresh.idle_rss_mib.iter().flatten().copied().collect());
    Ok(fresh)
}

/// `MAX_IN_FLIGHT` for `calls` at once: room for all of them.
fn max_in_flight_for(calls: usize) -> usize {
    calls.saturating_add(1_024).max(4_096)
}

/// `config.floor_in_flight` concurrent reads through a facade in front of
/// the fixed upstream answering after `config.floor_in_flight_delay`,
/// spread over enough connections that none passes the facade's 1,024
/// streams, with `MAX_IN_FLIGHT` raised above their number; then the same
/// through the floor, for what any server holding these calls costs.
async fn in_flight(config: &Config) -> Result<(InFlight, Option<InFlight>), String> {
    let slow = start_upstream(config.floor_in_flight_delay)?;
    let max_in_flight = max_in_flight_for(config.floor_in_flight).to_string();
    let facade_proc = start_facade(&slow, None, &[("MAX_IN_FLIGHT", max_in_flight)])?;
    wait_serving(facade_proc.addr, facade_proc.spawned_at).await?;
    let facade = burst_through(config, &facade_proc, "facade").await?;
    drop(facade_proc);
    let floor = match start_floor(&slow, &config.floor_runtime) {
        Ok(floor_proc) => burst_through(config, &floor_proc, "floor").await.ok(),
        Err(_) => None,
    };
    Ok((facade, floor))
}

/// The in-flight burst through `server` (the facade or the floor), its RSS
/// sampled meanwhile.
async fn burst_through(
    config: &Config,
    server: &FacadeProc,
    name: &str,
) -> Result<InFlight, String> {
    let calls = config.floor_in_flight;
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let idle_rss = status_kib(pid, "VmRSS").map(mib);
    let target = Arc::new(Target::Facade(
        Facade::connect(server.addr, config.floor_in_flight_connections).await?,
    ));
    let sampled = sample_burst(pid, &target, calls).await?;
    let delay = humantime::format_duration(config.floor_in_flight_delay).to_string();
    let result = InFlight {
        calls,
        sandbox_latency: delay.clone(),
        idle_rss_mib: idle_rss,
        max_sampled_rss_mib: sampled.max_rss_kib.map(mib),
        hwm_mib: status_kib(pid, "VmHWM").map(mib),
        samples: sampled.samples,
        ok: sampled.acc.all_ok,
        errors: sampled.acc.errors,
        elapsed_ms: sampled.elapsed.as_secs_f64() * 1e3,
        first_error: sampled.acc.first_error,
    };
    println!(
        "bench: {calls} calls in flight through the {name} (fixed upstream, delay {delay}): RSS idle {} MiB, \
         max sampled {} MiB, VmHWM {} MiB; {} ok, {} errors, all answered after {:.0} ms",
        report_mib(result.idle_rss_mib),
        report_mib(result.max_sampled_rss_mib),
        report_mib(result.hwm_mib),
        result.ok,
        result.errors,
        result.elapsed_ms
    );
    Ok(result)
}

fn report_mib(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"))
}

/// The targets of the Performance issue: ratios to the floor from this
/// run, memory and start-up on the fixed upstream, and tracing (from the
/// tracing comparison, when it ran).
pub fn targets(report: &Report) -> Vec<report::Target> {
    use report::Target as T;
    let floor = report.floor.as_ref();
    let figures = floor.map(|f| &f.figures);
    let c = floor.map_or(report.reference_concurrency, |f| f.reference_concurrency);
    let in_flight = floor.and_then(|f| f.in_flight.as_ref());
    let in_flight_rss = in_flight.and_then(|f| match (f.hwm_mib, f.max_sampled_rss_mib) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    });
    let fresh = floor.and_then(|f| f.fresh.as_ref());
    vec![
        T::at_most(
            &format!("facade ÷ floor, CPU per RPC, untraced, {c} in flight"),
            figures.and_then(|f| f.cpu_us_per_rpc.ratio),
            "",
            1.3,
        ),
        T::at_most(
            "facade ÷ floor, added mean latency (− direct), 1 in flight",
            figures.and_then(|f| f.added_mean_us.ratio),
            "",
            1.3,
        ),
        T::at_most(
            "facade ÷ floor, added p99 latency (− direct), 1 in flight",
            figures.and_then(|f| f.added_p99_us.ratio),
            "",
            1.5,
        ),
        T::at_most(
            &format!(
                "RSS with {} calls in flight against a {} upstream (max of VmHWM and sampled VmRSS)",
                in_flight.map_or(0, |f| f.calls),
                in_flight.map_or("?", |f| f.sandbox_latency.as_str())
            ),
            in_flight_rss,
            "MiB",
            64.0,
        ),
        T::at_most(
            "idle RSS (fresh facade, fixed upstream, median)",
            fresh.and_then(|f| f.idle_rss_mib_median),
            "MiB",
            12.0,
        ),
        T::at_most(
            "start → health SERVING (fresh facade, fixed upstream, median)",
            fresh.and_then(|f| f.serving_ms_median),
            "ms",
            20.0,
        ),
        T::at_least(
            "traced ÷ untraced throughput at parentbased_traceidratio 0.1 (sandbox upstream)",
            report
                .tracing
                .iter()
                .find(|t| t.traced && t.sampled > 0.0 && t.sampled < 1.0)
                .and_then(|t| t.ratio),
            "",
            0.95,
        ),
        crate::tls_cost::target(report),
    ]
}
