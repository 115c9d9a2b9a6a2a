//! `BENCH_ONLY=profile`: one facade (started under `BENCH_FACADE_WRAPPER`,
//! e.g. `perf record …` or `valgrind --tool=callgrind …`) in front of the
//! fixed upstream, one closed loop of GetPreparedPayment at the reference
//! concurrency, then SIGTERM and a wait for a clean exit, so that the
//! profiler writes its output. `scripts/profile` drives it; the figures it
//! prints are those of a profiled process (and the CPU that of the wrapper
//! process when it is not the facade itself, as with `perf record`).

use std::{sync::Arc, time::Duration};

use crate::{
    Config, Tally,
    beside_floor::start_upstream,
    load::{Facade, Observed, Op, Shape, Target, closed_loop},
    print_run,
    report::Stats,
    start_facade, wait_serving_within,
};

/// Longest wait for a profiled facade: valgrind runs it tens of times slower.
const PROFILED_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(config: &Config, tally: &mut Tally, ticks: f64) -> Result<(), String> {
    let upstream = start_upstream(Duration::ZERO)?;
    let mut facade_proc = start_facade(&upstream, None, &[])?;
    let (serving, _) =
        wait_serving_within(facade_proc.addr, facade_proc.spawned_at, PROFILED_LIMIT).await?;
    println!(
        "bench: profile: facade at {} (pid {}, SERVING after {:.0} ms), fixed upstream at {}; \
         GetPreparedPayment c={} for {} ms after {} ms of warm-up",
        facade_proc.addr,
        facade_proc.pid(),
        serving.as_secs_f64() * 1e3,
        upstream.url,
        config.reference,
        config.measure.as_millis(),
        config.warmup.as_millis()
    );
    let target = Arc::new(Target::Facade(
        Facade::connect(facade_proc.addr, config.connections).await?,
    ));
    let shape = Shape {
        op: Op::Read,
        warmup: config.warmup,
        measure: config.measure,
        read_uids: 1,
    };
    let observed = Observed {
        facade: Some(facade_proc.pid()),
        sandbox: upstream.proc.pid(),
    };
    let run = closed_loop(&target, shape, config.reference, observed).await;
    let stats = Stats::from_run(&run, ticks);
    print_run(
        0,
        1,
        &format!("profile: facade c={}", config.reference),
        &stats,
    );
    println!(
        "bench: profile: {} calls answered in all (warm-up included), {} errors",
        run.acc.all_ok, run.acc.errors
    );
    tally.case(
        "profile (fixed upstream)",
        run.acc.errors,
        run.acc.first_error.as_deref(),
    );
    drop(target);
    facade_proc.proc.terminate();
    match facade_proc.proc.wait_exit(PROFILED_LIMIT) {
        Ok(status) => println!("bench: profile: the profiled facade exited: {status}"),
        Err(error) => tally.broken("profile: clean exit", error),
    }
    Ok(())
}
