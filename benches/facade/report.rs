//! Figures per repetition, their medians, the JSON report and its Markdown
//! table.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::load::RunResult;

/// The figures of one run (or the medians of several).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Successful calls per second in the measured window.
    pub rps: f64,
    /// Mean latency of the measured successful calls.
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Successful measured calls (summed over repetitions in a median).
    pub ok: u64,
    /// Failed calls, warm-up included (summed over repetitions in a median).
    pub errors: u64,
    pub window_s: f64,
    /// Facade CPU time (user + system) per completed RPC.
    pub facade_cpu_us_per_rpc: Option<f64>,
    /// Sandbox CPU time per completed call.
    pub sandbox_cpu_us_per_call: Option<f64>,
    /// The bench process's own CPU time per completed call.
    pub loadgen_cpu_us_per_call: Option<f64>,
    /// Facade VmHWM over the measured window.
    pub facade_peak_rss_mib: Option<f64>,
    /// Open loop: how late the dispatcher sent its latest call.
    pub max_send_lag_ms: Option<f64>,
    /// Cores used on average during the window by processes other than the
    /// bench, its sandbox and the facade under test (noise).
    pub other_load_cores: Option<f64>,
}

impl Stats {
    pub fn from_run(run: &RunResult, ticks_per_second: f64) -> Stats {
        let ok = run.acc.ok;
        let per_call = |ticks: Option<u64>| {
            ticks
                .filter(|_| ok > 0)
                .map(|ticks| ticks as f64 * 1e6 / ticks_per_second / ok as f64)
        };
        let quantile = |q: f64| {
            if ok > 0 {
                run.acc.hist.value_at_quantile(q) as f64 / 1_000.0
            } else {
                0.0
            }
        };
        let window = run.window.as_secs_f64();
        Stats {
            rps: if window > 0.0 {
                ok as f64 / window
            } else {
                0.0
            },
            mean_us: if ok > 0 {
                run.acc.hist.mean() / 1_000.0
            } else {
                0.0
            },
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: if ok > 0 {
                run.acc.hist.max() as f64 / 1_000.0
            } else {
                0.0
            },
            ok,
            errors: run.acc.errors,
            window_s: window,
            facade_cpu_us_per_rpc: per_call(run.facade_ticks),
            sandbox_cpu_us_per_call: per_call(run.sandbox_ticks),
            loadgen_cpu_us_per_call: per_call(run.loadgen_ticks),
            facade_peak_rss_mib: run.facade_peak_kib.map(crate::procfs::mib),
            max_send_lag_ms: run.max_send_lag.map(|lag| lag.as_secs_f64() * 1e3),
            other_load_cores: run
                .other_ticks
                .filter(|_| window > 0.0)
                .map(|ticks| ticks as f64 / ticks_per_second / window),
        }
    }

    /// Each figure's median over `reps`; calls and errors are summed.
    pub fn median_of(reps: &[Stats]) -> Stats {
        let of = |get: &dyn Fn(&Stats) -> f64| median(reps.iter().map(get).collect());
        let of_some = |get: &dyn Fn(&Stats) -> Option<f64>| {
            median_some(reps.iter().filter_map(get).collect())
        };
        Stats {
            rps: of(&|s| s.rps),
            mean_us: of(&|s| s.mean_us),
            p50_us: of(&|s| s.p50_us),
            p99_us: of(&|s| s.p99_us),
            p999_us: of(&|s| s.p999_us),
            max_us: of(&|s| s.max_us),
            ok: reps.iter().map(|s| s.ok).sum(),
            errors: reps.iter().map(|s| s.errors).sum(),
            window_s: of(&|s| s.window_s),
            facade_cpu_us_per_rpc: of_some(&|s| s.facade_cpu_us_per_rpc),
            sandbox_cpu_us_per_call: of_some(&|s| s.sandbox_cpu_us_per_call),
            loadgen_cpu_us_per_call: of_some(&|s| s.loadgen_cpu_us_per_call),
            facade_peak_rss_mib: of_some(&|s| s.facade_peak_rss_mib),
            max_send_lag_ms: of_some(&|s| s.max_send_lag_ms),
            other_load_cores: of_some(&|s| s.other_load_cores),
        }
    }
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(values: Vec<f64>) -> f64 {
    median_some(values).unwrap_or(0.0)
}

/// The median, or `None` when empty.
pub fn median_some(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// One measured case: a path and an RPC at a concurrency or a rate.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    pub name: String,
    /// `closed` (fixed concurrency) or `open` (fixed rate).
    pub mode: &'static str,
    /// `read` or `write`.
    pub op: &'static str,
    pub rpc: &'static str,
    /// `direct`, `facade`, or (beside the floor) `floor`, or (what TLS
    /// costs) `plaintext` and `mtls`.
    pub path: &'static str,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    /// Open loop: the rate as a share of the facade's closed-loop throughput.
    pub rate_share: Option<f64>,
    pub median: Stats,
    pub reps: Vec<Stats>,
    pub first_error: Option<String>,
}

/// `portone-facade` starting: one fresh process per repetition.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartRep {
    pub listening_ms: f64,
    pub serving_ms: f64,
    pub health_polls: u32,
    pub idle_rss_mib: Option<f64>,
    /// getToken calls the sandbox saw from spawn to the end of the cold burst.
    pub get_token_calls: Option<u64>,
    pub cold_ok: u64,
    pub cold_errors: u64,
    pub cold_burst_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Startup {
    pub reps: Vec<StartRep>,
    pub listening_ms_median: f64,
    pub serving_ms_median: f64,
    pub serving_ms_min: f64,
    pub serving_ms_max: f64,
    pub idle_rss_mib_median: Option<f64>,
    /// Concurrent calls sent to each fresh facade.
    pub cold_calls: usize,
    pub get_token_calls: Vec<Option<u64>>,
    pub first_error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct InFlight {
    pub calls: usize,
    pub sandbox_latency: String,
    pub idle_rss_mib: Option<f64>,
    pub max_sampled_rss_mib: Option<f64>,
    pub hwm_mib: Option<f64>,
    pub samples: u32,
    pub ok: u64,
    pub errors: u64,
    pub elapsed_ms: f64,
    pub first_error: Option<String>,
}

/// Fresh facades in front of the fixed upstream: spawn → health `SERVING`
/// and idle RSS, one process each.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FreshFacades {
    pub serving_ms: Vec<f64>,
    pub idle_rss_mib: Vec<Option<f64>>,
    pub serving_ms_median: Option<f64>,
    pub idle_rss_mib_median: Option<f64>,
    pub first_error: Option<String>,
}

/// The facade beside the floor and the direct path, all three against the
/// fixed upstream, in one run (issue 16).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Floor {
    /// The floor's runtime: `multi_thread` or `current_thread`.
    pub floor_runtime: String,
    /// `BENCH_FACADE_ENV`, given to the facades and the floor alike.
    pub env: String,
    /// GetPreparedPayment, closed loop; paths `direct`, `floor`, `facade`.
    pub closed_loop: Vec<Case>,
    /// The concurrency of the CPU figure.
    pub reference_concurrency: usize,
    pub figures: FloorFigures,
    /// Many calls in flight against the fixed upstream answering after a delay.
    pub in_flight: Option<InFlight>,
    /// The same calls through the floor, for comparison.
    pub floor_in_flight: Option<InFlight>,
    /// HTTP/2 connections the in-flight calls were spread over.
    pub in_flight_connections: usize,
    /// The `MAX_IN_FLIGHT` that facade was started with.
    pub in_flight_max_in_flight: usize,
    pub fresh: Option<FreshFacades>,
}

/// The side-by-side figures of the issue: the floor's, the facade's, and
/// facade ÷ floor.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloorFigures {
    pub cpu_us_per_rpc: Triple,
    /// Mean latency at concurrency 1 minus the direct path's.
    pub added_mean_us: Triple,
    /// p99 latency at concurrency 1 minus the direct path's.
    pub added_p99_us: Triple,
}

/// A figure of the floor and of the facade, and their ratio (none when the
/// floor's figure is not above zero).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Triple {
    pub floor: Option<f64>,
    pub facade: Option<f64>,
    pub ratio: Option<f64>,
}

impl Triple {
    fn of(floor: Option<f64>, facade: Option<f64>) -> Triple {
        let ratio = match (floor, facade) {
            (Some(floor), Some(facade)) if floor > 0.0 => Some(facade / floor),
            _ => None,
        };
        Triple {
            floor,
            facade,
            ratio,
        }
    }
}

impl Floor {
    /// The case of `path` at `concurrency`.
    pub fn closed(&self, path: &str, concurrency: usize) -> Option<&Case> {
        self.closed_loop
            .iter()
            .find(|c| c.path == path && c.concurrency == Some(concurrency))
    }

    /// CPU per RPC at the reference concurrency; added mean and p99 at 1.
    pub fn compute_figures(&mut self) {
        let cpu = |path| {
            self.closed(path, self.reference_concurrency)
                .and_then(|c| c.median.facade_cpu_us_per_rpc)
        };
        let added =
            |path, f: fn(&Stats) -> f64| match (self.closed(path, 1), self.closed("direct", 1)) {
                (Some(case), Some(direct)) if case.median.ok > 0 && direct.median.ok > 0 => {
                    Some(f(&case.median) - f(&direct.median))
                }
                _ => None,
            };
        self.figures = FloorFigures {
            cpu_us_per_rpc: Triple::of(cpu("floor"), cpu("facade")),
            added_mean_us: Triple::of(
                added("floor", |s| s.mean_us),
                added("facade", |s| s.mean_us),
            ),
            added_p99_us: Triple::of(added("floor", |s| s.p99_us), added("facade", |s| s.p99_us)),
        };
    }

    /// The section of the report.
    fn markdown(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "\n## Beside the floor (GetPreparedPayment against the fixed upstream)\n\n\
             The floor answers each call with one pooled HTTP/1.1 GET to the same upstream and a fixed \
             protobuf answer, on a `{}` tokio runtime; the facade runs with its defaults{}. The upstream \
             answers every call with the same fixed PortOne JSON, without state. \"CPU µs/RPC\" is the \
             process under test's (floor or facade); \"upstream CPU\" the fixed upstream's.\n",
            self.floor_runtime,
            if self.env.is_empty() {
                String::new()
            } else {
                format!(
                    " and `BENCH_FACADE_ENV={}` (given to the floor too)",
                    self.env
                )
            }
        );
        md.push_str(
            "| path | c | req/s | mean µs | p50 µs | p99 µs | p99.9 µs | CPU µs/RPC | upstream CPU µs/call | load-gen CPU µs/call | other load (cores) | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for case in &self.closed_loop {
            let s = &case.median;
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                case.path,
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
        let f = &self.figures;
        md.push_str(
            "\n| figure, same run | floor | facade | facade ÷ floor |\n|---|---:|---:|---:|\n",
        );
        let row = |md: &mut String, name: &str, t: &Triple, sign: bool| {
            let value = |v: Option<f64>| match v {
                Some(v) if sign => format!("{v:+.1} µs"),
                Some(v) => format!("{v:.1} µs"),
                None => "–".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                value(t.floor),
                value(t.facade),
                opt(t.ratio, 2)
            );
        };
        row(
            md,
            &format!("CPU per RPC, {} in flight", self.reference_concurrency),
            &f.cpu_us_per_rpc,
            false,
        );
        row(
            md,
            "added mean latency (− direct), 1 in flight",
            &f.added_mean_us,
            true,
        );
        row(
            md,
            "added p99 latency (− direct), 1 in flight",
            &f.added_p99_us,
            true,
        );
        md.push_str("\n| figure | value |\n|---|---:|\n");
        if let Some(fresh) = &self.fresh {
            let _ = writeln!(
                md,
                "| idle RSS after start (VmRSS, fresh facade, median of {}) | {} MiB |",
                fresh.serving_ms.len(),
                opt(fresh.idle_rss_mib_median, 2)
            );
            let each: Vec<String> = fresh
                .serving_ms
                .iter()
                .map(|ms| format!("{ms:.1}"))
                .collect();
            let _ = writeln!(
                md,
                "| spawn → health `SERVING` (median; each) | {} ms ({}) |",
                opt(fresh.serving_ms_median, 1),
                each.join(", ")
            );
        }
        if let Some(f) = &self.in_flight {
            let _ = writeln!(
                md,
                "| RSS with {} calls in flight (the fixed upstream answering after {}; {} connections, `MAX_IN_FLIGHT={}`): max sampled VmRSS / VmHWM | {} / {} MiB |",
                f.calls,
                f.sandbox_latency,
                self.in_flight_connections,
                self.in_flight_max_in_flight,
                opt(f.max_sampled_rss_mib, 2),
                opt(f.hwm_mib, 2)
            );
            let _ = writeln!(
                md,
                "| … the {} calls: answered / errors / all answered after | {} / {} / {:.0} ms |",
                f.calls, f.ok, f.errors, f.elapsed_ms
            );
        }
        if let Some(f) = &self.floor_in_flight {
            let _ = writeln!(
                md,
                "| the same {} calls through the floor: max sampled VmRSS / VmHWM; answered / errors | {} / {} MiB; {} / {} |",
                f.calls,
                opt(f.max_sampled_rss_mib, 2),
                opt(f.hwm_mib, 2),
                f.ok,
                f.errors
            );
        }
    }
}

/// Spans of one `GetPreparedPayment` with a warm token: SERVER and CLIENT.
const SPANS_PER_READ: f64 = 2.0;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Tracing {
    /// What was compared, e.g. `tracing at 100% sampling`.
    pub title: String,
    /// Labels of the two facades: `off` first, `on` second.
    pub labels: (String, String),
    /// Whether the `on` facade exports spans (false for a binary-vs-binary
    /// comparison), so that the span figures are read.
    pub traced: bool,
    /// The share of calls whose spans are sampled (1 at 100%).
    pub sampled: f64,
    pub concurrency: usize,
    pub off: Option<Case>,
    pub on: Option<Case>,
    pub ratio: Option<f64>,
    /// on ÷ off of each repetition, whose two runs were back to back: less
    /// moved by the machine's drift than the ratio of the medians.
    pub paired_ratios: Vec<f64>,
    pub paired_ratio_median: Option<f64>,
    /// Calls answered by the facade with tracing on, warm-up included.
    pub calls_sent: u64,
    pub spans_before_shutdown: u64,
    pub spans_received: u64,
    pub spans_per_call: Option<f64>,
    pub trace_exports: u64,
    pub span_names: BTreeMap<String, u64>,
    pub metric_exports: u64,
    pub metric_names: BTreeMap<String, u64>,
    pub exited_cleanly: Option<bool>,
    pub env: BTreeMap<String, String>,
}

/// One target of the Performance issue.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    /// `<= 40` and the like.
    pub limit: String,
    pub pass: Option<bool>,
}

impl Target {
    pub fn at_most(name: &str, value: Option<f64>, unit: &'static str, limit: f64) -> Target {
        Target {
            name: name.to_owned(),
            value,
            unit,
            limit: format!("≤ {}", trim(limit)),
            pass: value.map(|v| v <= limit),
        }
    }

    pub fn at_least(name: &str, value: Option<f64>, unit: &'static str, limit: f64) -> Target {
        Target {
            name: name.to_owned(),
            value,
            unit,
            limit: format!("≥ {}", trim(limit)),
            pass: value.map(|v| v >= limit),
        }
    }

    pub fn exactly(name: &str, value: Option<f64>, unit: &'static str, limit: f64) -> Target {
        Target {
            name: name.to_owned(),
            value,
            unit,
            limit: format!("= {}", trim(limit)),
            pass: value.map(|v| (v - limit).abs() < f64::EPSILON),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Meta {
    pub mode: &'static str,
    pub started_unix: u64,
    pub duration_s: f64,
    pub git_revision: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    pub clk_tck: f64,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub binary: String,
    pub warmup_ms: u64,
    pub measure_ms: u64,
    pub open_measure_ms: u64,
    pub repetitions: usize,
    pub connections: usize,
    pub read_uids: u64,
    pub peak_rss_reset: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub meta: Meta,
    /// The concurrency the targets speak of (32; 8 in smoke runs).
    pub reference_concurrency: usize,
    pub closed_loop: Vec<Case>,
    pub open_loop: Vec<Case>,
    /// Side-by-side comparisons: tracing at each sampling rate, and this
    /// build against a baseline binary.
    pub tracing: Vec<Tracing>,
    pub in_flight: Option<InFlight>,
    pub startup: Option<Startup>,
    pub main_facade_idle_rss_mib: Option<f64>,
    /// The facade beside the floor on the fixed upstream.
    pub floor: Option<Floor>,
    /// A plaintext and a mutual-TLS facade side by side on the fixed upstream.
    pub tls: Option<crate::tls_cost::TlsCost>,
    pub targets: Vec<Target>,
    /// The targets of the Performance issue that speak of the floor and the
    /// fixed upstream.
    pub floor_targets: Vec<Target>,
    pub cases_passed: usize,
    pub cases_failed: usize,
    pub failures: Vec<String>,
}

/// Targets as a table: PASS, MISS or not measured; never asserted.
fn targets_table(md: &mut String, targets: &[Target]) {
    md.push_str("| target | measured | limit | result |\n|---|---:|---:|---|\n");
    for t in targets {
        let result = match t.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "not measured",
        };
        let _ = writeln!(
            md,
            "| {} | {} {} | {} {} | {} |",
            t.name,
            opt(t.value, 2),
            t.unit,
            t.limit,
            t.unit,
            result
        );
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Report {
    /// The closed-loop case of `op`, `path` at `concurrency`.
    pub fn closed(&self, op: &str, path: &str, concurrency: usize) -> Option<&Case> {
        self.closed_loop
            .iter()
            .find(|c| c.op == op && c.path == path && c.concurrency == Some(concurrency))
    }

    /// Every figure as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.meta;
        let _ = writeln!(md, "# portone-facade benchmark ({} run)\n", m.mode);
        let _ = writeln!(
            md,
            "git {} · {} cores ({}) · Linux {} · load average {} before, {} after · {:.0} s",
            m.git_revision,
            m.cores,
            m.cpu_model,
            m.kernel,
            m.loadavg_start,
            m.loadavg_end,
            m.duration_s
        );
        let _ = writeln!(
            md,
            "\nEach figure is the median of {} repetition(s) of {} ms measured after {} ms of warm-up \
             (open loop: {} ms). Latency from HDR histograms; CPU time from `/proc/<pid>/stat` \
             utime+stime (CLK_TCK = {}) divided by completed calls. The load generator (this bench, \
             {} HTTP/2 connections to the facade), the facade and the sandbox share the same {} cores, \
             so absolute figures are those of a crowded machine. \"Other load\" is the CPU (in cores) \
             that all other processes on the machine used during a measurement: noise, ideally near 0.\n",
            m.repetitions,
            m.measure_ms,
            m.warmup_ms,
            m.open_measure_ms,
            m.clk_tck,
            m.connections,
            m.cores
        );

        if !self.closed_loop.is_empty() {
            md.push_str("## Closed loop (fixed concurrency)\n\n");
            md.push_str(
                "| RPC | path | c | req/s | p50 µs | p99 µs | p99.9 µs | facade CPU µs/RPC | sandbox CPU µs/call | load-gen CPU µs/call | facade peak RSS MiB | other load (cores) | errors |\n\
                 |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for case in &self.closed_loop {
                let s = &case.median;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                    case.rpc,
                    case.path,
                    case.concurrency.unwrap_or(0),
                    s.rps,
                    s.p50_us,
                    s.p99_us,
                    s.p999_us,
                    opt(s.facade_cpu_us_per_rpc, 1),
                    opt(s.sandbox_cpu_us_per_call, 1),
                    opt(s.loadgen_cpu_us_per_call, 1),
                    opt(s.facade_peak_rss_mib, 1),
                    opt(s.other_load_cores, 2),
                    s.errors
                );
            }

            md.push_str(
                "\n## What the facade adds (facade − direct, same RPC and concurrency)\n\n",
            );
            md.push_str(
                "| RPC | c | throughput facade ÷ direct | added p50 µs | added p99 µs | added p99.9 µs |\n\
                 |---|---:|---:|---:|---:|---:|\n",
            );
            for facade in self.closed_loop.iter().filter(|c| c.path == "facade") {
                let Some(direct) =
                    self.closed(facade.op, "direct", facade.concurrency.unwrap_or(0))
                else {
                    continue;
                };
                let (f, d) = (&facade.median, &direct.median);
                let ratio = if d.rps > 0.0 { f.rps / d.rps } else { 0.0 };
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.2} | {:+.1} | {:+.1} | {:+.1} |",
                    facade.rpc,
                    facade.concurrency.unwrap_or(0),
                    ratio,
                    f.p50_us - d.p50_us,
                    f.p99_us - d.p99_us,
                    f.p999_us - d.p999_us
                );
            }
        }

        if let Some(first) = self.open_loop.first() {
            let _ = writeln!(
                md,
                "\n## Open loop ({}, fixed rates as shares of the facade's closed-loop c={} throughput; \
                 latency from each call's scheduled send time, so stalls are not hidden)\n",
                first.rpc, self.reference_concurrency
            );
            md.push_str(
                "| path | share | rate req/s | achieved req/s | p50 µs | p99 µs | p99.9 µs | max µs | facade CPU µs/RPC | max send lag ms | other load (cores) | errors |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for case in &self.open_loop {
                let s = &case.median;
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
                    case.path,
                    case.rate_share
                        .map_or_else(|| "–".to_owned(), |share| format!("{:.0}%", share * 100.0)),
                    case.rate.unwrap_or(0.0),
                    s.rps,
                    s.p50_us,
                    s.p99_us,
                    s.p999_us,
                    s.max_us,
                    opt(s.facade_cpu_us_per_rpc, 1),
                    opt(s.max_send_lag_ms, 2),
                    opt(s.other_load_cores, 2),
                    s.errors
                );
            }
            md.push('\n');
            for facade in self.open_loop.iter().filter(|c| c.path == "facade") {
                let direct = self
                    .open_loop
                    .iter()
                    .find(|c| c.path == "direct" && c.rate == facade.rate);
                if let Some(direct) = direct {
                    let _ = writeln!(
                        md,
                        "Added by the facade at {:.0} req/s: p50 {:+.1} µs, p99 {:+.1} µs, p99.9 {:+.1} µs.  ",
                        facade.rate.unwrap_or(0.0),
                        facade.median.p50_us - direct.median.p50_us,
                        facade.median.p99_us - direct.median.p99_us,
                        facade.median.p999_us - direct.median.p999_us
                    );
                }
            }
        }

        for t in &self.tracing {
            let _ = writeln!(
                md,
                "\n## {} (GetPreparedPayment, c={})\n",
                t.title, t.concurrency
            );
            md.push_str("| figure | value |\n|---|---:|\n");
            let _ = writeln!(md, "| off / on | {} / {} |", t.labels.0, t.labels.1);
            let rps = |case: &Option<Case>| case.as_ref().map(|c| c.median.rps);
            let cpu =
                |case: &Option<Case>| case.as_ref().and_then(|c| c.median.facade_cpu_us_per_rpc);
            let p99 = |case: &Option<Case>| case.as_ref().map(|c| c.median.p99_us);
            let _ = writeln!(md, "| req/s, {} | {} |", t.labels.0, opt(rps(&t.off), 0));
            let _ = writeln!(md, "| req/s, {} | {} |", t.labels.1, opt(rps(&t.on), 0));
            let _ = writeln!(md, "| on ÷ off (medians) | {} |", opt(t.ratio, 3));
            let paired: Vec<String> = t.paired_ratios.iter().map(|r| format!("{r:.3}")).collect();
            let _ = writeln!(
                md,
                "| on ÷ off of each repetition (back-to-back runs); median | {}; {} |",
                paired.join(", "),
                opt(t.paired_ratio_median, 3)
            );
            let _ = writeln!(
                md,
                "| p99 µs off / on | {} / {} |",
                opt(p99(&t.off), 1),
                opt(p99(&t.on), 1)
            );
            let _ = writeln!(
                md,
                "| facade CPU µs/RPC off / on | {} / {} |",
                opt(cpu(&t.off), 1),
                opt(cpu(&t.on), 1)
            );
            let loadgen =
                |case: &Option<Case>| case.as_ref().and_then(|c| c.median.loadgen_cpu_us_per_call);
            let _ = writeln!(
                md,
                "| bench CPU µs/call off / on (the OTLP sink runs inside the bench) | {} / {} |",
                opt(loadgen(&t.off), 1),
                opt(loadgen(&t.on), 1)
            );
            if !t.traced {
                continue;
            }
            let _ = writeln!(
                md,
                "| calls answered with tracing on (warm-up included) | {} |",
                t.calls_sent
            );
            let _ = writeln!(
                md,
                "| spans received by the sink (before SIGTERM / after exit) | {} / {} |",
                t.spans_before_shutdown, t.spans_received
            );
            let _ = writeln!(md, "| spans per call | {} |", opt(t.spans_per_call, 2));
            let _ = writeln!(
                md,
                "| trace / metric export requests | {} / {} |",
                t.trace_exports, t.metric_exports
            );
            // At 100% every span must arrive; at a ratio, about that share
            // (the count is random, so within a tenth).
            let tolerance = if t.sampled >= 1.0 { 0.995 } else { 0.9 };
            if t.spans_per_call
                .is_some_and(|per_call| per_call < SPANS_PER_READ * t.sampled * tolerance)
            {
                let _ = writeln!(
                    md,
                    "\n**Spans were dropped**: {} per call where each sampled call makes {SPANS_PER_READ}; \
                     the facade skipped exporting the rest, so \"tracing on\" is flattered.",
                    opt(t.spans_per_call, 2)
                );
            }
            if t.spans_received == 0 && t.sampled > 0.0 {
                md.push_str(
                    "\n**The sink received no spans**: the facade exported nothing with \
                     `OTEL_EXPORTER_OTLP_ENDPOINT` set, so \"tracing on\" measured a facade that does not trace.\n",
                );
            } else {
                let names: Vec<String> = t
                    .span_names
                    .iter()
                    .map(|(name, count)| format!("`{name}` × {count}"))
                    .collect();
                let _ = writeln!(md, "\nSpan names: {}.", names.join(", "));
            }
        }

        if let Some(floor) = &self.floor {
            floor.markdown(&mut md);
        }
        if let Some(tls) = &self.tls {
            tls.markdown(&mut md);
        }

        if self.startup.is_some()
            || self.in_flight.is_some()
            || self.main_facade_idle_rss_mib.is_some()
        {
            md.push_str("\n## Memory and start-up\n\n| figure | value |\n|---|---:|\n");
            if let Some(s) = &self.startup {
                let _ = writeln!(
                    md,
                    "| idle RSS after start (VmRSS, fresh facade, median of {}) | {} MiB |",
                    s.reps.len(),
                    opt(s.idle_rss_mib_median, 2)
                );
            }
            let _ = writeln!(
                md,
                "| idle RSS of the facade used for the closed loop, before any call | {} MiB |",
                opt(self.main_facade_idle_rss_mib, 2)
            );
            if let Some(f) = &self.in_flight {
                let _ = writeln!(
                    md,
                    "| RSS with {} calls in flight (sandbox latency {}): max sampled VmRSS / VmHWM | {} / {} MiB |",
                    f.calls,
                    f.sandbox_latency,
                    opt(f.max_sampled_rss_mib, 2),
                    opt(f.hwm_mib, 2)
                );
                let _ = writeln!(
                    md,
                    "| … the {} calls: answered / errors / all answered after | {} / {} / {:.0} ms |",
                    f.calls, f.ok, f.errors, f.elapsed_ms
                );
            }
            if let Some(s) = &self.startup {
                let _ = writeln!(
                    md,
                    "| spawn → `listening` log line (median) | {:.1} ms |",
                    s.listening_ms_median
                );
                let _ = writeln!(
                    md,
                    "| spawn → health `SERVING` (median; min – max of {}) | {:.1} ms ({:.1} – {:.1}) |",
                    s.reps.len(),
                    s.serving_ms_median,
                    s.serving_ms_min,
                    s.serving_ms_max
                );
                let counts: Vec<String> = s
                    .get_token_calls
                    .iter()
                    .map(|c| c.map_or_else(|| "?".to_owned(), |c| c.to_string()))
                    .collect();
                let _ = writeln!(
                    md,
                    "| getToken calls for {} concurrent calls on a cold token (each fresh facade) | {} |",
                    s.cold_calls,
                    counts.join(", ")
                );
            }
        }

        // The older targets, when this run measured any of them.
        if self.targets.iter().any(|t| t.value.is_some()) {
            md.push_str("\n## Targets\n\n");
            targets_table(&mut md, &self.targets);
        }
        if !self.floor_targets.is_empty() {
            md.push_str("\n## Targets beside the floor (fixed upstream; ratios from one run)\n\n");
            targets_table(&mut md, &self.floor_targets);
        }
        if !self.failures.is_empty() {
            md.push_str("\n## Failures\n\n");
            for failure in &self.failures {
                let _ = writeln!(md, "- {failure}");
            }
        }
        let _ = writeln!(
            md,
            "\n{} case(s) passed (ran with zero errors), {} failed.",
            self.cases_passed, self.cases_failed
        );
        md
    }
}
