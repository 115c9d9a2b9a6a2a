//! The binary: configuration refusals, secrets from files, graceful shutdown.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use portone_facade::{
    pb::{
        GetPreparedPaymentRequest, PreparePaymentRequest,
        payment_prepare_service_client::PaymentPrepareServiceClient,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::process::{FacadeProc, Output, binary};

fn client(process: &FacadeProc) -> PaymentPrepareServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect_lazy();
    PaymentPrepareServiceClient::new(channel)
}

#[test]
fn without_credentials_it_refuses_to_start_and_names_both_variables() {
    let output = binary()
        .args(["--listen-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PORTONE_IMP_KEY") && stderr.contains("PORTONE_IMP_SECRET"),
        "{stderr}"
    );
    assert!(stderr.contains("--sandbox"), "{stderr}");
}

#[test]
fn with_only_the_key_it_names_the_missing_secret_alone() {
    let output = binary()
        .args(["--listen-addr", "127.0.0.1:0"])
        .env("PORTONE_IMP_KEY", "key")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORTONE_IMP_SECRET"), "{stderr}");
    assert!(!stderr.contains("PORTONE_IMP_KEY ("), "{stderr}");
}

#[test]
fn help_never_prints_secret_values() {
    let output = binary()
        .arg("--help")
        .env("PORTONE_IMP_KEY", "key-value-1234")
        .env("PORTONE_IMP_SECRET", "secret-value-5678")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("PORTONE_IMP_SECRET_FILE"), "{help}");
    assert!(
        !help.contains("key-value-1234") && !help.contains("secret-value-5678"),
        "{help}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_and_exits_zero() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("portone-facade-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("imp_key");
    // Kubernetes Secret files often end with a newline: it is trimmed.
    std::fs::write(&key_file, format!("{}\n", sandbox.imp_key())).unwrap();
    let mut command = binary();
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("PORTONE_API_URL", sandbox.url())
        .env("PORTONE_LINK_API_URL", sandbox.url())
        .env("PORTONE_IMP_KEY_FILE", &key_file)
        .env("PORTONE_IMP_SECRET", sandbox.imp_secret())
        .env("SHUTDOWN_GRACE", "10s")
        .stdin(Stdio::null());
    let mut process = FacadeProc::start(command, Output::Logs).unwrap();
    let mut client = client(&process);
    client
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "in-flight".into(),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .unwrap();

    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(1500)),
    );
    let in_flight = tokio::spawn(async move {
        client
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: "in-flight".into(),
            })
            .await
    });
    support::wait_until_called(&sandbox, Endpoint::GetPrepared).await;
    process.proc.terminate();

    let answer = in_flight
        .await
        .unwrap()
        .expect("the call in flight completes");
    assert_eq!(answer.into_inner().prepared_payment.unwrap().amount, "1000");
    let status = process.proc.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_when_idle_exits_zero_at_once() {
    let mut command = binary();
    command.args(["--sandbox", "--listen-addr", "127.0.0.1:0"]);
    let mut process = FacadeProc::start(command, Output::Logs).unwrap();
    process.proc.terminate();
    let started = Instant::now();
    assert_eq!(
        process
            .proc
            .wait_exit(Duration::from_secs(5))
            .unwrap()
            .code(),
        Some(0)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_healthcheck_command_exits_zero_on_a_serving_facade_and_one_when_nothing_answers() {
    let mut command = binary();
    command.args(["--sandbox", "--listen-addr", "127.0.0.1:0"]);
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let addr = process.addr.to_string();

    let serving = binary()
        .args(["healthcheck", "--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(serving.status.code(), Some(0), "{serving:?}");
    assert_eq!(String::from_utf8_lossy(&serving.stdout).trim(), "SERVING");
    let per_service = binary()
        .args([
            "healthcheck",
            "--addr",
            &addr,
            "--service",
            "portone.facade.v1.PaymentLinkService",
        ])
        .output()
        .unwrap();
    assert_eq!(per_service.status.code(), Some(0), "{per_service:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nothing = binary()
        .args([
            "healthcheck",
            "--addr",
            &closed.to_string(),
            "--timeout",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(nothing.status.code(), Some(1), "{nothing:?}");
}
