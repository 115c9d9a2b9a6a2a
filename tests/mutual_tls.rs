//! Mutual TLS (DESIGN §8): a client certificate from one of the client CAs
//! is required, and the caller identity is read from it: the first URI SAN,
//! else the first DNS SAN, else the subject CN. The identity is seen here in
//! the `caller` metadata of a denial by a policy that lists nobody real.

mod support;

use std::time::{Duration, Instant};

use portone_facade::{
    authz::PolicySettings,
    pb::{GetPreparedPaymentRequest, payment_prepare_service_client::PaymentPrepareServiceClient},
    sandbox::{Endpoint, Sandbox},
};
use rcgen::SanType;
use support::{
    Facade, assert_error, error_info,
    otlp::{Keep, OtlpReceiver, attribute},
    process::{FacadeProc, Output, binary},
    settings,
    tls::{SecretVolume, TestCa, TlsClient, assert_connection_refused, tls_settings},
};
use tonic::{Code, transport::Channel};

/// A facade in front of a fresh sandbox, serving mutual TLS with a server
/// certificate of `ca` and client certificates of `ca`, under `policy`.
async fn mtls_facade(ca: &TestCa, policy: Option<&str>) -> (Sandbox, Facade) {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.tls = Some(tls_settings(&ca.server("server"), Some(ca)));
    if let Some(policy) = policy {
        let file = ca.path("policy.json");
        std::fs::write(&file, policy).unwrap();
        settings.authz_policy = Some(PolicySettings::load(file).unwrap());
    }
    (sandbox, Facade::start(settings).await)
}

/// A policy that lets nobody who calls here call anything.
const NOBODY: &str = r#"{"callers": [{"identity": "someone-else", "allow": ["*"]}]}"#;

async fn read(channel: Channel) -> Result<(), tonic::Status> {
    PaymentPrepareServiceClient::new(channel)
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "mtls-read".into(),
        })
        .await
        .map(drop)
}

/// The `caller` of the denial that `certificate` gets.
async fn denied_caller(ca: &TestCa, certificate: &support::tls::Leaf) -> String {
    let (_sandbox, facade) = mtls_facade(ca, Some(NOBODY)).await;
    let status = read(TlsClient::new(ca, Some(certificate)).channel(facade.addr))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_NOT_ALLOWED");
    error_info(&status).metadata["caller"].clone()
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

fn dns(text: &str) -> SanType {
    SanType::DnsName(text.try_into().unwrap())
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new("required CA");
    let (sandbox, facade) = mtls_facade(&ca, None).await;
    let status = read(TlsClient::new(&ca, None).channel(facade.addr))
        .await
        .unwrap_err();
    println!("without a client certificate: {status:?}");
    assert_connection_refused(&status);
    assert_eq!(sandbox.calls(Endpoint::GetToken), 0);
}

#[tokio::test]
async fn a_client_with_a_certificate_from_a_foreign_ca_is_refused() {
    let ca = TestCa::new("trusted CA");
    let foreign = TestCa::new("foreign CA");
    let stranger = foreign.client("stranger", "stranger", &[uri("spiffe://elsewhere/sa/x")]);
    let (sandbox, facade) = mtls_facade(&ca, None).await;
    let status = read(TlsClient::new(&ca, Some(&stranger)).channel(facade.addr))
        .await
        .unwrap_err();
    println!("with a foreign client certificate: {status:?}");
    assert_connection_refused(&status);
    assert_eq!(sandbox.calls(Endpoint::GetToken), 0);
}

#[tokio::test]
async fn a_client_with_a_certificate_of_the_client_ca_is_served() {
    let ca = TestCa::new("served CA");
    let client = ca.client("client", "checkout", &[]);
    let (_sandbox, facade) = mtls_facade(&ca, None).await;
    // No policy: every authenticated caller may call everything.
    let status = read(TlsClient::new(&ca, Some(&client)).channel(facade.addr))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn the_caller_is_the_first_uri_san_before_any_dns_san_or_common_name() {
    let ca = TestCa::new("uri CA");
    let client = ca.client(
        "client",
        "checkout-cn",
        &[
            dns("checkout.svc"),
            uri("spiffe://cluster.local/ns/checkout/sa/checkout"),
            uri("spiffe://cluster.local/ns/other/sa/other"),
        ],
    );
    assert_eq!(
        denied_caller(&ca, &client).await,
        "spiffe://cluster.local/ns/checkout/sa/checkout"
    );
}

#[tokio::test]
async fn without_a_uri_san_the_caller_is_the_first_dns_san() {
    let ca = TestCa::new("dns CA");
    let client = ca.client(
        "client",
        "billing-cn",
        &[dns("billing.payments.svc"), dns("billing.other.svc")],
    );
    assert_eq!(denied_caller(&ca, &client).await, "billing.payments.svc");
}

#[tokio::test]
async fn without_sans_the_caller_is_the_subject_common_name() {
    let ca = TestCa::new("cn CA");
    let client = ca.client("client", "ledger", &[]);
    assert_eq!(denied_caller(&ca, &client).await, "ledger");
}

#[tokio::test]
async fn a_rotated_client_ca_file_decides_for_new_connections() {
    let old_ca = TestCa::new("old client CA");
    let new_ca = TestCa::new("new client CA");
    let old_client = old_ca.client("old", "old-client", &[]);
    let new_client = new_ca.client("new", "new-client", &[]);
    let mut volume = SecretVolume::new(old_ca.path("secret"), &[("ca.crt", old_ca.pem())]);
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    let server = old_ca.server("server");
    settings.tls = Some(
        portone_facade::tls::TlsSettings::load(portone_facade::tls::TlsFiles::new(
            &server.cert_file,
            &server.key_file,
            Some(volume.path("ca.crt")),
        ))
        .unwrap(),
    );
    let facade = Facade::start(settings).await;
    // Server certificates stay the old CA's; only client CAs rotate.
    let as_old = TlsClient::new(&old_ca, Some(&old_client));
    let as_new = TlsClient::new(&old_ca, Some(&new_client));
    assert_eq!(
        read(as_old.channel(facade.addr)).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_connection_refused(&read(as_new.channel(facade.addr)).await.unwrap_err());

    volume.rotate(&[("ca.crt", new_ca.pem())]);
    let rotated = Instant::now();
    while read(as_new.channel(facade.addr)).await.unwrap_err().code() != Code::NotFound {
        assert!(
            rotated.elapsed() < Duration::from_secs(10),
            "the new client CA is not trusted 10 s after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old client CA is no longer trusted.
    assert_connection_refused(&read(as_old.channel(facade.addr)).await.unwrap_err());
}

const GET_SPAN: &str = "portone.facade.v1.PaymentPrepareService/GetPreparedPayment";

/// The SERVER span of one read through a facade process serving TLS with
/// a server certificate of `ca` (and client certificates of `ca` when
/// `mutual`), the read made with `certificate`.
async fn span_of_a_read(
    ca: &TestCa,
    mutual: bool,
    certificate: Option<&support::tls::Leaf>,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let server = ca.server("server");
    let mut command = binary();
    command
        .args(["--sandbox", "--listen-addr", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("TLS_CERT_FILE", &server.cert_file)
        .env("TLS_KEY_FILE", &server.key_file);
    if mutual {
        command.env("TLS_CLIENT_CA_FILE", ca.cert_file());
    }
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let status = read(TlsClient::new(ca, certificate).channel(process.addr))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let spans = receiver
        .wait_for_spans(Duration::from_secs(10), |spans| {
            spans.iter().any(|span| span.name == GET_SPAN)
        })
        .await;
    spans
        .into_iter()
        .find(|span| span.name == GET_SPAN)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_names_the_caller_its_certificate_proved_as_enduser_id() {
    let ca = TestCa::new("span CA");
    let client = ca.client(
        "client",
        "checkout",
        &[uri("spiffe://cluster.local/ns/checkout/sa/checkout")],
    );
    let span = span_of_a_read(&ca, true, Some(&client)).await;
    assert_eq!(
        attribute(&span, "enduser.id").as_deref(),
        Some("spiffe://cluster.local/ns/checkout/sa/checkout"),
        "{span:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mutual_tls_the_server_span_names_no_caller() {
    let ca = TestCa::new("anonymous span CA");
    let span = span_of_a_read(&ca, false, None).await;
    assert_eq!(attribute(&span, "enduser.id"), None, "{span:#?}");
    assert_eq!(
        attribute(&span, "rpc.method").as_deref(),
        Some("GetPreparedPayment")
    );
}
