//! `METRICS_LISTEN_ADDR`: the metrics an operator watches, scraped from
//! `/metrics` in Prometheus text format after the calls that make them.

mod support;

use std::time::Duration;

use portone_facade::{
    pb::{
        GetPreparedPaymentRequest, PreparePaymentRequest,
        payment_prepare_service_client::PaymentPrepareServiceClient,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::process::{FacadeProc, Output, facade_command};
use tonic::transport::Channel;

fn prepare(uid: &str) -> PreparePaymentRequest {
    PreparePaymentRequest {
        merchant_uid: uid.into(),
        amount: "1000".into(),
        currency: String::new(),
    }
}

fn read(uid: &str) -> GetPreparedPaymentRequest {
    GetPreparedPaymentRequest {
        merchant_uid: uid.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_an_operator_watches_is_scraped_from_metrics() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut command = facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    command
        .env("METRICS_LISTEN_ADDR", "127.0.0.1:0")
        .env("MAX_IN_FLIGHT", "4");
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let metrics_addr = process
        .logged_addr("serving metrics at /metrics")
        .expect("a `serving metrics` line");
    let channel = Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect_lazy();
    let mut client = PaymentPrepareServiceClient::new(channel);

    // A getToken failure, then calls that succeed, one after a retry.
    sandbox.inject_times(Endpoint::GetToken, Fault::status(503, -1, "점검 중"), 3);
    client
        .prepare_payment(prepare("scraped"))
        .await
        .unwrap_err();
    client.prepare_payment(prepare("scraped")).await.unwrap();
    sandbox.inject(Endpoint::GetPrepared, Fault::status(502, -1, "bad gateway"));
    client.get_prepared_payment(read("scraped")).await.unwrap();
    // An answer too large to read.
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Respond {
            status: 200,
            body: format!(r#"{{"padding":"{}"}}"#, "x".repeat(2 * 1024 * 1024)),
            retry_after: None,
        },
    );
    client
        .get_prepared_payment(read("scraped"))
        .await
        .unwrap_err();
    // An outage long enough to spend the retry budget, four calls at a time.
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::status(503, -1, "점검 중"),
        1_000,
    );
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for n in 0..40 {
                    let uid = format!("out-{caller}-{n}");
                    client.get_prepared_payment(read(&uid)).await.unwrap_err();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // More calls in flight than MAX_IN_FLIGHT = 4: some are shed.
    sandbox.clear_faults();
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(300)),
        20,
    );
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .get_prepared_payment(read(&format!("shed-{n}")))
                    .await
            })
        })
        .collect();
    for call in calls {
        let _ = call.await.unwrap();
    }

    let url = format!("http://{metrics_addr}/metrics");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    for name in [
        "rpc_server_call_duration_seconds_count",
        "http_client_request_duration_seconds_count",
        "portone_token_refreshes_total",
        "portone_token_failures_total",
        "portone_upstream_retries_total",
        "portone_upstream_retries_refused_total",
        "portone_upstream_oversized_answers_total",
        "rpc_server_shed_total",
        "rpc_server_active_requests",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} is missing from /metrics:\n{text}"
        );
    }
    // Calls by RPC and code.
    assert!(
        text.lines().any(
            |line| line.starts_with("rpc_server_call_duration_seconds_count")
                && line.contains(r#"rpc_method="GetPreparedPayment""#)
                && line.contains(r#"rpc_grpc_status_code="14""#)
        ),
        "{text}"
    );
}
