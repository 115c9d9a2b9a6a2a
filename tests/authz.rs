//! The authorization policy (DESIGN §8): per caller, which RPCs it may call
//! (an exact method, `Service/*`, `*`); a denial is PERMISSION_DENIED /
//! CALLER_NOT_ALLOWED before anything reaches PortOne; health and reflection
//! stay open; the file is re-read when it changes, and a broken one is
//! ignored; denials are counted at `/metrics`.

mod support;

use std::time::{Duration, Instant};

use portone_facade::{
    authz::PolicySettings,
    pb::{
        GetPaymentRequest, GetPreparedPaymentRequest, PreparePaymentRequest, VerifyPaymentRequest,
        payment_link_service_client::PaymentLinkServiceClient,
        payment_prepare_service_client::PaymentPrepareServiceClient,
        payment_verification_service_client::PaymentVerificationServiceClient,
    },
    sandbox::{Endpoint, Sandbox},
};
use rcgen::SanType;
use support::{
    Facade, assert_error, error_info, link_request, merchant_uid,
    process::{FacadeProc, Output},
    settings,
    tls::{TestCa, TlsClient, mutual_tls_command, tls_settings, write_atomically},
};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const CHECKOUT: &str = "spiffe://cluster.local/ns/checkout/sa/checkout";
const PREPARE: &str = "portone.facade.v1.PaymentPrepareService/PreparePayment";
const GET: &str = "portone.facade.v1.PaymentPrepareService/GetPreparedPayment";
const CREATE_LINK: &str = "portone.facade.v1.PaymentLinkService/CreatePaymentLink";
const GET_PAYMENT: &str = "portone.facade.v1.PaymentVerificationService/GetPayment";
const VERIFY: &str = "portone.facade.v1.PaymentVerificationService/VerifyPayment";

/// A policy that allows `CHECKOUT` the entries `allow`.
fn policy_for_checkout(allow: &[&str]) -> String {
    serde_json::json!({"callers": [{"identity": CHECKOUT, "allow": allow}]}).to_string()
}

/// A sandbox and a facade in front of it that requires client certificates
/// of `ca` and enforces `policy` (written to `policy.json` in `ca`'s
/// directory, where a test may change it).
async fn facade_with_policy(ca: &TestCa, policy: &str) -> (Sandbox, Facade) {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.tls = Some(tls_settings(&ca.server("server"), Some(ca)));
    let file = ca.path("policy.json");
    std::fs::write(&file, policy).unwrap();
    settings.authz_policy = Some(PolicySettings::load(file).unwrap());
    (sandbox, Facade::start(settings).await)
}

/// A channel whose client certificate proves `CHECKOUT`.
fn as_checkout(ca: &TestCa, facade: &Facade) -> Channel {
    let certificate = ca.client(
        "checkout",
        "checkout",
        &[SanType::URI(CHECKOUT.try_into().unwrap())],
    );
    TlsClient::new(ca, Some(&certificate)).channel(facade.addr)
}

async fn prepare(channel: &Channel) -> Result<(), tonic::Status> {
    PaymentPrepareServiceClient::new(channel.clone())
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: merchant_uid("authz"),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .map(drop)
}

/// A read of an order nobody prepared: NOT_FOUND when allowed (PortOne
/// was asked), PERMISSION_DENIED when not.
async fn read(channel: &Channel) -> Result<(), tonic::Status> {
    PaymentPrepareServiceClient::new(channel.clone())
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: merchant_uid("authz-unknown"),
        })
        .await
        .map(drop)
}

async fn create_link(channel: &Channel) -> Result<(), tonic::Status> {
    PaymentLinkServiceClient::new(channel.clone())
        .create_payment_link(link_request(&merchant_uid("authz-link")))
        .await
        .map(drop)
}

fn assert_denied(result: Result<(), tonic::Status>, rpc: &str) {
    let status = result.expect_err("denied");
    assert_error(&status, Code::PermissionDenied, "CALLER_NOT_ALLOWED");
    assert_eq!(error_info(&status).metadata["rpc"], rpc, "{status:?}");
}

#[tokio::test]
async fn a_denied_call_is_permission_denied_naming_caller_and_rpc_and_nothing_reaches_portone() {
    let ca = TestCa::new("denial CA");
    let (sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[GET])).await;
    let status = prepare(&as_checkout(&ca, &facade)).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_NOT_ALLOWED");
    let info = error_info(&status);
    assert_eq!(info.metadata["caller"], CHECKOUT);
    assert_eq!(info.metadata["rpc"], PREPARE);
    assert_eq!(info.metadata.len(), 2, "{:?}", info.metadata);
    assert!(
        status.message().contains(CHECKOUT)
            && status.message().contains(PREPARE)
            && status.message().contains("not allowed"),
        "{}",
        status.message()
    );
    assert_eq!(sandbox.calls(Endpoint::GetToken), 0);
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 0);
}

#[tokio::test]
async fn an_exact_method_entry_allows_that_method_and_no_other() {
    let ca = TestCa::new("exact CA");
    let (sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[GET])).await;
    let channel = as_checkout(&ca, &facade);
    assert_error(
        &read(&channel).await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1);
    assert_denied(prepare(&channel).await, PREPARE);
    assert_denied(create_link(&channel).await, CREATE_LINK);
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 0);
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 0);
}

#[tokio::test]
async fn the_policy_allows_and_denies_the_verification_rpcs_one_by_one() {
    let ca = TestCa::new("verification CA");
    let (sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[GET_PAYMENT])).await;
    let channel = as_checkout(&ca, &facade);
    let mut verification = PaymentVerificationServiceClient::new(channel);
    // Allowed: it reaches PortOne, which knows no such payment.
    let unknown = verification
        .get_payment(GetPaymentRequest {
            imp_uid: "imp_unknown".into(),
        })
        .await
        .unwrap_err();
    assert_error(&unknown, Code::NotFound, "NOT_FOUND");
    assert_eq!(sandbox.calls(Endpoint::GetPayment), 1);
    let denied = verification
        .verify_payment(VerifyPaymentRequest {
            imp_uid: "imp_unknown".into(),
            merchant_uid: String::new(),
        })
        .await
        .map(drop);
    assert_denied(denied, VERIFY);
    assert_eq!(sandbox.calls(Endpoint::GetPayment), 1);
}

#[tokio::test]
async fn a_service_wildcard_allows_every_method_of_that_service_and_no_other_service() {
    let ca = TestCa::new("service CA");
    let policy = policy_for_checkout(&["portone.facade.v1.PaymentPrepareService/*"]);
    let (sandbox, facade) = facade_with_policy(&ca, &policy).await;
    let channel = as_checkout(&ca, &facade);
    prepare(&channel).await.unwrap();
    assert_error(
        &read(&channel).await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_denied(create_link(&channel).await, CREATE_LINK);
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 1);
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 0);
}

#[tokio::test]
async fn a_star_allows_every_rpc() {
    let ca = TestCa::new("star CA");
    let (sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&["*"])).await;
    let channel = as_checkout(&ca, &facade);
    prepare(&channel).await.unwrap();
    create_link(&channel).await.unwrap();
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 1);
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 1);
}

#[tokio::test]
async fn health_and_reflection_are_open_to_a_caller_the_policy_denies_everything() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let ca = TestCa::new("open CA");
    let (_sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[])).await;
    let channel = as_checkout(&ca, &facade);
    assert_denied(read(&channel).await, GET);
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(answer, Some(MessageResponse::ListServicesResponse(_))),
        "{answer:?}"
    );
}

/// Calls `read` until it is allowed (at most 10 s, the §8 bound).
async fn until_read_is_allowed(channel: &Channel, since: Instant) {
    loop {
        match read(channel).await {
            Err(status) if status.code() == Code::NotFound => return,
            Err(status) if status.code() == Code::PermissionDenied => {}
            other => panic!("{other:?}"),
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the changed policy is not in force after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_changed_policy_is_in_force_within_ten_seconds() {
    let ca = TestCa::new("reload CA");
    let (_sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[PREPARE])).await;
    let channel = as_checkout(&ca, &facade);
    assert_denied(read(&channel).await, GET);
    write_atomically(&ca.path("policy.json"), &policy_for_checkout(&[GET]));
    let changed = Instant::now();
    until_read_is_allowed(&channel, changed).await;
    println!("policy reload: in force after {:?}", changed.elapsed());
    assert_denied(prepare(&channel).await, PREPARE);
}

#[tokio::test]
async fn a_broken_policy_at_reload_is_ignored_and_the_previous_one_stays_in_force() {
    let ca = TestCa::new("broken reload CA");
    let (_sandbox, facade) = facade_with_policy(&ca, &policy_for_checkout(&[PREPARE])).await;
    let channel = as_checkout(&ca, &facade);
    let file = ca.path("policy.json");
    // A first change, seen: the watcher runs.
    write_atomically(&file, &policy_for_checkout(&[PREPARE, GET]));
    until_read_is_allowed(&channel, Instant::now()).await;

    // An unknown field, then a malformed entry: each ignored.
    for broken in [
        r#"{"callers": [], "deny": []}"#,
        r#"{"callers": [{"identity": "x", "allow": ["Prepare"]}]}"#,
    ] {
        write_atomically(&file, broken);
        // Longer than two polls.
        tokio::time::sleep(Duration::from_secs(5)).await;
        prepare(&channel).await.unwrap();
        assert_error(
            &read(&channel).await.unwrap_err(),
            Code::NotFound,
            "NOT_FOUND",
        );
    }

    // And the watcher still takes the next valid policy.
    write_atomically(&file, &policy_for_checkout(&[GET]));
    let changed = Instant::now();
    while prepare(&channel).await.is_ok() {
        assert!(changed.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_denied(prepare(&channel).await, PREPARE);
}

/// The binary with `--sandbox`, mutual TLS with certificates of `ca`, and
/// `policy`; `env` besides.
fn facade_process(ca: &TestCa, policy: &str, env: &[(&str, &str)]) -> FacadeProc {
    let file = ca.path("policy.json");
    std::fs::write(&file, policy).unwrap();
    let mut command = mutual_tls_command(ca);
    command.env("AUTHZ_POLICY_FILE", &file);
    for (name, value) in env {
        command.env(name, value);
    }
    FacadeProc::start(command, Output::Logs).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_calls_are_counted_by_caller_and_rpc_at_metrics() {
    let ca = TestCa::new("metric CA");
    let process = facade_process(
        &ca,
        &policy_for_checkout(&[GET]),
        &[("METRICS_LISTEN_ADDR", "127.0.0.1:0")],
    );
    let metrics_addr = process
        .logged_addr("serving metrics at /metrics")
        .expect("a `serving metrics` line");
    let certificate = ca.client(
        "checkout",
        "checkout",
        &[SanType::URI(CHECKOUT.try_into().unwrap())],
    );
    let channel = TlsClient::new(&ca, Some(&certificate)).channel(process.addr);
    for _ in 0..3 {
        assert_denied(prepare(&channel).await, PREPARE);
    }
    assert_error(
        &read(&channel).await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );

    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let denied: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("rpc_server_denied_total"))
        .collect();
    assert_eq!(denied.len(), 1, "one series, for PreparePayment:\n{text}");
    let series = denied[0];
    for label in [
        format!(r#"enduser_id="{CHECKOUT}""#),
        r#"rpc_service="portone.facade.v1.PaymentPrepareService""#.to_owned(),
        r#"rpc_method="PreparePayment""#.to_owned(),
    ] {
        assert!(series.contains(&label), "{label} missing from {series}");
    }
    assert!(series.ends_with(" 3"), "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_writes_its_audit_line_with_the_caller_and_permission_denied() {
    let ca = TestCa::new("audit CA");
    let mut process = facade_process(&ca, &policy_for_checkout(&[GET]), &[]);
    let certificate = ca.client(
        "checkout",
        "checkout",
        &[SanType::URI(CHECKOUT.try_into().unwrap())],
    );
    let channel = TlsClient::new(&ca, Some(&certificate)).channel(process.addr);
    assert_denied(prepare(&channel).await, PREPARE);
    drop(channel);
    process.proc.terminate();
    let status = process.proc.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "{status}");
    let audit: Vec<serde_json::Value> = process
        .proc
        .lines_to_the_end(Duration::from_secs(10))
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|json| json["event"] == "audit")
        .collect();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["rpc"], PREPARE);
    assert_eq!(audit[0]["caller"], CHECKOUT);
    assert_eq!(audit[0]["code"], "PERMISSION_DENIED");
}
