//! `HEALTH_LISTEN_ADDR` (DESIGN §4): a second, plaintext listener that
//! serves only `grpc.health.v1`, for kubelet probes when the main port is
//! TLS; it turns NOT_SERVING with the main port at SIGTERM.

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use portone_facade::pb::{
    GetPreparedPaymentRequest, payment_prepare_service_client::PaymentPrepareServiceClient,
};
use support::{
    process::{FacadeProc, Output},
    tls::{TestCa, TlsClient, assert_connection_refused, mutual_tls_command},
};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The facade serving mutual TLS on its main port, `HEALTH_LISTEN_ADDR`
/// on an ephemeral port, with `env` besides; and the health port.
fn facade(ca: &TestCa, env: &[(&str, &str)]) -> (FacadeProc, SocketAddr) {
    let mut command = mutual_tls_command(ca);
    command.env("HEALTH_LISTEN_ADDR", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let health_addr = process
        .logged_addr("serving grpc.health.v1 in plaintext")
        .expect("a `serving grpc.health.v1` line");
    (process, health_addr)
}

fn plaintext(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|answer| answer.into_inner().status())
}

#[tokio::test]
async fn the_health_listener_answers_serving_in_plaintext_beside_a_mutual_tls_port() {
    let ca = TestCa::new("health CA");
    let (process, health_addr) = facade(&ca, &[]);
    assert_eq!(
        health(plaintext(health_addr)).await.unwrap(),
        ServingStatus::Serving
    );
    // The main port, in plaintext, does not answer at all.
    let main = health(plaintext(process.addr)).await.unwrap_err();
    assert_connection_refused(&main);
}

#[tokio::test]
async fn the_health_listener_serves_no_api_and_no_reflection() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let ca = TestCa::new("health only CA");
    let (_process, health_addr) = facade(&ca, &[]);
    let api = PaymentPrepareServiceClient::new(plaintext(health_addr))
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "through-the-health-port".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(api.code(), Code::Unimplemented, "{api:?}");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let reflection = ServerReflectionClient::new(plaintext(health_addr))
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap_err();
    assert_eq!(reflection.code(), Code::Unimplemented, "{reflection:?}");
}

#[tokio::test]
async fn the_health_listener_turns_not_serving_at_sigterm_and_closes_with_the_main_port() {
    let ca = TestCa::new("health shutdown CA");
    let (mut process, health_addr) = facade(&ca, &[("SHUTDOWN_DELAY", "3s")]);
    let client = TlsClient::new(&ca, Some(&ca.client("probe", "probe", &[])));
    let channel = plaintext(health_addr);
    assert_eq!(
        health(channel.clone()).await.unwrap(),
        ServingStatus::Serving
    );

    process.proc.terminate();
    let terminated = Instant::now();
    loop {
        let status = health(channel.clone()).await.unwrap();
        if status == ServingStatus::NotServing {
            break;
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(2),
            "still {status:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The main port says the same during the delay.
    assert_eq!(
        health(client.channel(process.addr)).await.unwrap(),
        ServingStatus::NotServing
    );
    let status = process.proc.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        tokio::net::TcpStream::connect(health_addr).await.is_err(),
        "the health port is closed"
    );
}
