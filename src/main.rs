//! The `portone-facade` binary: parse, set up logging, run. Nothing else.

use std::{future::Future, process::ExitCode};

use clap::Parser;
use portone_facade::{
    audit::AuditTrail,
    config::{Cli, Command, HealthcheckArgs, SandboxArgs, ServeArgs},
    healthcheck,
    sandbox::{Sandbox, SandboxOptions},
    shutdown_signal,
    telemetry::{Telemetry, serve_metrics},
};
use tokio::net::TcpListener;

/// jemalloc rather than glibc's malloc, which pays in arena locks and page
/// faults for memory allocated on one thread and freed on another, as spans
/// are when a batch processor exports them (`docs/benchmark.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portone-facade: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Healthcheck(args)) => runtime.block_on(check_health(args)),
        Some(Command::Sandbox(args)) => runtime.block_on(run_sandbox(args)),
        None => runtime.block_on(serve(cli.serve)),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let shutdown = shutdown_signal();
    let telemetry = Telemetry::init(args.log_format, args.metrics_listen_addr.is_some());
    if let (Some(addr), Some(registry)) =
        (args.metrics_listen_addr, telemetry.prometheus_registry())
    {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                if let Ok(local_addr) = listener.local_addr() {
                    tracing::info!(%local_addr, "serving metrics at /metrics");
                }
                tokio::spawn(serve_metrics(listener, registry, std::future::pending()));
            }
            Err(error) => {
                tracing::error!(%error, %addr, "cannot listen on METRICS_LISTEN_ADDR");
                eprintln!("portone-facade: cannot listen on METRICS_LISTEN_ADDR {addr}: {error}");
                telemetry.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    let audit = AuditTrail::install(args.audit_log);
    let code = serve_with(args, shutdown).await;
    if let Some(audit) = audit {
        audit.shutdown().await;
    }
    telemetry.shutdown().await;
    code
}

async fn serve_with(args: ServeArgs, shutdown: impl Future<Output = ()>) -> ExitCode {
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "refusing to start");
            eprintln!("portone-facade: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(settings.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "portone-facade: cannot listen on {}: {error}",
                settings.listen_addr
            );
            return ExitCode::FAILURE;
        }
    };
    match portone_facade::run(settings, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portone-facade: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn check_health(args: HealthcheckArgs) -> ExitCode {
    match healthcheck::check(&args.addr, &args.service, args.timeout).await {
        Ok(status) => {
            println!("{}", status.as_str_name());
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("portone-facade healthcheck: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_sandbox(args: SandboxArgs) -> ExitCode {
    let shutdown = shutdown_signal();
    let listener = match TcpListener::bind(args.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "portone-facade sandbox: cannot listen on {}: {error}",
                args.listen_addr
            );
            return ExitCode::FAILURE;
        }
    };
    let options = SandboxOptions {
        latency: args.latency,
        ..SandboxOptions::default()
    };
    let sandbox = match Sandbox::start_on(listener, options) {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("portone-facade sandbox: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "url": sandbox.url(),
            "imp_key": sandbox.imp_key(),
            "imp_secret": sandbox.imp_secret(),
        })
    );
    shutdown.await;
    ExitCode::SUCCESS
}
