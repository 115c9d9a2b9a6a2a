//! The standard exporters from a running facade process to real receivers:
//! OTLP/gRPC over TLS with a CA and a client certificate made here,
//! OTLP/HTTP with protobuf bodies and gzip, export headers that never show
//! in the output, a collector that is down, and signals turned off.

mod support;

use std::time::Duration;

use portone_facade::{
    pb::{PreparePaymentRequest, payment_prepare_service_client::PaymentPrepareServiceClient},
    sandbox::Sandbox,
};
use support::{
    otlp::{Keep, OtlpReceiver},
    otlp_http::OtlpHttpReceiver,
    process::{FacadeProc, Output, facade_command},
    tls::TestCa,
};
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(15);
const PREPARE_SPAN: &str = "portone.facade.v1.PaymentPrepareService/PreparePayment";

/// A facade process in front of `sandbox`, with short export intervals and
/// `otel_env` on top.
fn facade(sandbox: &Sandbox, otel_env: &[(&str, &str)]) -> FacadeProc {
    let mut command = facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    command
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
    for (name, value) in otel_env {
        command.env(name, value);
    }
    FacadeProc::start(command, Output::Logs).unwrap()
}

fn client(process: &FacadeProc) -> PaymentPrepareServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect_lazy();
    PaymentPrepareServiceClient::new(channel)
}

async fn prepare(process: &FacadeProc, uid: &str) {
    client(process)
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: uid.into(),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .unwrap();
}

/// The headers of the trace exports of a facade that ran with `otel_env`
/// and one call.
async fn trace_export_headers_with(otel_env: &[(&str, &str)]) -> Vec<(String, String)> {
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let endpoint = receiver.endpoint();
    let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    env.extend_from_slice(otel_env);
    let process = facade(&sandbox, &env);
    prepare(&process, "with-headers").await;
    receiver
        .wait_for_spans(WAIT, |spans| {
            spans.iter().any(|span| span.name == PREPARE_SPAN)
        })
        .await;
    receiver.trace_export_headers()
}

/// SIGTERM, and a clean exit (after the exporters' flush) within 30 s.
fn stop(process: &mut FacadeProc) {
    process.proc.terminate();
    let exit = process.proc.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(exit.code(), Some(0));
}

/// The `telemetry` start-up line: which exporters run.
fn exporters_started(process: &FacadeProc) -> (bool, bool) {
    let line = process
        .startup_lines
        .iter()
        .find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            (json["message"] == "telemetry").then_some(json)
        })
        .expect("a telemetry line at start");
    (line["traces"] == true, line["metrics"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_a_grpc_collector_over_tls_with_a_private_ca_a_client_certificate_and_gzip()
 {
    let ca = TestCa::new("collector test CA");
    let server = ca.server("collector");
    let client_leaf = ca.client("facade", "portone-facade", &[]);
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            support::tls::read(&server.cert_file),
            support::tls::read(&server.key_file),
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(ca.pem()));
    let receiver = OtlpReceiver::start_with(Keep::Everything, Some(tls)).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let endpoint = format!("https://127.0.0.1:{}", receiver.addr.port());
    let process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                ca.cert_file().to_str().unwrap(),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                client_leaf.cert_file.to_str().unwrap(),
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                client_leaf.key_file.to_str().unwrap(),
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    );
    prepare(&process, "over-tls").await;
    receiver
        .wait_for_spans(WAIT, |spans| {
            spans.iter().any(|span| span.name == PREPARE_SPAN)
        })
        .await;
    receiver
        .wait_for_metrics(WAIT, &["rpc.server.call.duration"])
        .await;
    let headers = receiver.headers_per_export();
    assert!(
        headers.iter().all(|export| export
            .iter()
            .any(|(name, value)| name == "grpc-encoding" && value == "gzip")),
        "every export is gzip-compressed: {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_collector_whose_ca_is_not_given_receives_nothing_and_calls_still_succeed() {
    let ca = TestCa::new("unknown CA");
    let server = ca.server("collector");
    let tls =
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            support::tls::read(&server.cert_file),
            support::tls::read(&server.key_file),
        ));
    let receiver = OtlpReceiver::start_with(Keep::Everything, Some(tls)).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let endpoint = format!("https://127.0.0.1:{}", receiver.addr.port());
    let mut process = facade(&sandbox, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    prepare(&process, "untrusted-collector").await;
    stop(&mut process);
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    assert!(receiver.metric_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_http_collector_as_gzipped_protobuf_at_the_signal_paths() {
    let receiver = OtlpHttpReceiver::start(None).await;
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    );
    prepare(&process, "over-http").await;
    let exports = receiver
        .wait_for(WAIT, |exports| {
            exports
                .iter()
                .any(|export| export.spans.iter().any(|span| span.name == PREPARE_SPAN))
                && exports.iter().any(|export| {
                    export
                        .metric_names
                        .iter()
                        .any(|name| name == "rpc.server.call.duration")
                })
        })
        .await;
    for export in &exports {
        assert!(
            export.path == "/v1/traces" || export.path == "/v1/metrics",
            "{export:?}"
        );
        assert_eq!(
            export.header("content-encoding"),
            Some("gzip"),
            "{export:?}"
        );
        assert_eq!(
            export.header("content-type"),
            Some("application/x-protobuf"),
            "{export:?}"
        );
    }
    assert!(
        exports
            .iter()
            .filter(|export| !export.spans.is_empty())
            .all(|export| export.path == "/v1/traces")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_collector_over_http_protobuf_is_trusted_through_the_certificate_variable() {
    let ca = TestCa::new("http collector CA");
    let server = ca.server("collector");
    let client_leaf = ca.client("facade", "portone-facade", &[]);
    let receiver = OtlpHttpReceiver::start(Some(TestCa::rustls_server(&server, Some(&ca)))).await;
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(
        &sandbox,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &format!("{}/v1/traces", receiver.endpoint()),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                ca.cert_file().to_str().unwrap(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                client_leaf.cert_file.to_str().unwrap(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                client_leaf.key_file.to_str().unwrap(),
            ),
        ],
    );
    prepare(&process, "over-https").await;
    receiver
        .wait_for(WAIT, |exports| {
            exports
                .iter()
                .any(|export| export.spans.iter().any(|span| span.name == PREPARE_SPAN))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_header_values_arrive_with_every_export_and_never_appear_in_the_output_at_trace_level()
 {
    const KEY: &str = "otlp-api-key-5f1c9e0d7b";
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let headers = format!("x-api-key={KEY},x-tenant=payments");
    let mut process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_HEADERS", &headers),
            ("RUST_LOG", "trace"),
        ],
    );
    for n in 0..3 {
        prepare(&process, &format!("headers-{n}")).await;
    }
    receiver
        .wait_for_spans(WAIT, |spans| {
            spans.iter().any(|span| span.name == PREPARE_SPAN)
        })
        .await;
    receiver
        .wait_for_metrics(WAIT, &["rpc.server.call.duration"])
        .await;
    stop(&mut process);

    let exports = receiver.headers_per_export();
    assert!(exports.len() >= 2, "{exports:?}");
    for export in &exports {
        assert!(
            export
                .iter()
                .any(|(name, value)| name == "x-api-key" && value == KEY),
            "an export without the header: {export:?}"
        );
    }
    let mut output = process.startup_lines.clone();
    output.extend(process.proc.drain_lines());
    assert!(
        output.len() > 50,
        "trace level writes many lines: {}",
        output.len()
    );
    let leaked: Vec<&String> = output.iter().filter(|line| line.contains(KEY)).collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_headers_from_the_environment_reach_the_collector_percent_decoded() {
    let headers = trace_export_headers_with(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "x-api-key=k%3Dv 1,x-tenant=all",
    )])
    .await;
    assert!(
        headers.contains(&("x-api-key".into(), "k=v 1".into()))
            && headers.contains(&("x-tenant".into(), "all".into())),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traces_headers_variable_replaces_the_general_one_for_traces() {
    let headers = trace_export_headers_with(&[
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=general,x-tenant=all",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=payments"),
    ])
    .await;
    // The specification: a signal's own variable takes precedence over the
    // general one, as a whole (opentelemetry-otlp does not merge them).
    assert!(
        headers.contains(&("x-tenant".into(), "payments".into()))
            && !headers
                .iter()
                .any(|(name, value)| name == "x-api-key" || value == "all"),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_delays_no_call_and_not_the_exit() {
    // A port that was free a moment ago: connections to it are refused.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", down.local_addr().unwrap());
    drop(down);
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ],
    );
    support::unknown_reads_are_answered_in_time(process.addr, "collector-down").await;
    stop(&mut process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_turns_every_exporter_off() {
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    assert_eq!(exporters_started(&process), (false, false));
    prepare(&process, "sdk-disabled").await;
    stop(&mut process);
    assert!(receiver.spans().is_empty() && receiver.metric_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_exporter_none_keeps_metrics_and_sends_no_span() {
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    );
    assert_eq!(exporters_started(&process), (false, true));
    prepare(&process, "traces-off").await;
    receiver
        .wait_for_metrics(WAIT, &["rpc.server.call.duration"])
        .await;
    stop(&mut process);
    assert!(receiver.spans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_protocol_is_refused_with_the_variable_named() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ],
    );
    let lines = &process.startup_lines;
    assert!(
        lines
            .iter()
            .any(|line| line.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported")),
        "{lines:#?}"
    );
    prepare(&process, "protocol-refused").await;
}
