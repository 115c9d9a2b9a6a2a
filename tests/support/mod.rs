//! What the integration tests and the benchmark share: the binary as a
//! child process ([`process`]), an OTLP receiver ([`otlp`]), PortOne's JSON
//! as a client reads it ([`portone`]), and here a facade served in-process
//! on a loopback port, with helpers to read the rich error details of its
//! answers.
//!
//! Each test declares `mod support;`; the bench includes this file with
//! `#[path = "../tests/support/mod.rs"] mod support;`.

#![allow(
    dead_code,
    reason = "each test crate and the bench use a different part of this module"
)]

pub mod otlp;
pub mod otlp_http;
pub mod portone;
pub mod process;
pub mod tls;

use std::{net::SocketAddr, time::Duration};

use portone_facade::{
    config::{Settings, Upstream},
    pb::{
        payment_link_service_client::PaymentLinkServiceClient,
        payment_prepare_service_client::PaymentPrepareServiceClient,
        payment_verification_service_client::PaymentVerificationServiceClient,
    },
    sandbox::{Sandbox, SandboxOptions},
    secret::SecretString,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// Settings of a facade in front of `api_url` (both APIs) with these credentials.
pub fn settings(api_url: &str, imp_key: &str, imp_secret: &str) -> Settings {
    Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: Upstream::PortOne {
            api_url: api_url.to_owned(),
            link_api_url: api_url.to_owned(),
            imp_key: SecretString::from(imp_key),
            imp_secret: SecretString::from(imp_secret),
        },
        user_code: Some("imp12345678".to_owned()),
        upstream_timeout: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(5),
        shutdown_delay: Duration::ZERO,
        max_connection_age: Duration::from_secs(30 * 60),
        max_in_flight: 4096,
        tls: None,
        authz_policy: None,
        health_listen_addr: None,
    }
}

/// A facade running in this process.
pub struct Facade {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Facade {
    /// Serves `settings` on an ephemeral loopback port.
    pub async fn start(settings: Settings) -> Facade {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            portone_facade::run(settings, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("facade runs");
        });
        Facade {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A facade in front of `sandbox`.
    pub async fn in_front_of(sandbox: &Sandbox) -> Facade {
        Facade::start(settings(
            &sandbox.url(),
            sandbox.imp_key(),
            sandbox.imp_secret(),
        ))
        .await
    }

    /// A channel to it (connected lazily; retries until it listens).
    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect_lazy()
    }

    pub fn prepare_client(&self) -> PaymentPrepareServiceClient<Channel> {
        PaymentPrepareServiceClient::new(self.channel())
    }

    pub fn link_client(&self) -> PaymentLinkServiceClient<Channel> {
        PaymentLinkServiceClient::new(self.channel())
    }

    pub fn verification_client(&self) -> PaymentVerificationServiceClient<Channel> {
        PaymentVerificationServiceClient::new(self.channel())
    }

    /// Starts the shutdown and waits (bounded) for the server to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("facade stops within 10 s")
            .expect("facade task did not panic");
    }
}

/// A sandbox and a facade in front of it.
pub async fn sandbox_and_facade() -> (Sandbox, Facade) {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let facade = Facade::in_front_of(&sandbox).await;
    (sandbox, facade)
}

/// The `ErrorInfo` of a status, which every upstream-derived error carries.
pub fn error_info(status: &Status) -> tonic_types::ErrorInfo {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

/// The fields named by the `BadRequest` of a status.
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad_request
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Asserts code and `ErrorInfo.reason` of an error.
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = error_info(status);
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, "portone-facade");
}

/// A unique `merchant_uid` for one test.
pub fn merchant_uid(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// A valid CreatePaymentLink request expiring in an hour.
pub fn link_request(uid: &str) -> portone_facade::pb::CreatePaymentLinkRequest {
    use portone_facade::pb::{Buyer, CreatePaymentLinkRequest, PayMethod};
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + 3600;
    CreatePaymentLinkRequest {
        title: "겨울 코트".into(),
        user_code: String::new(),
        amount: "50000".into(),
        merchant_uid: uid.to_owned(),
        name: "Winter coat".into(),
        tax_free: String::new(),
        currency: "KRW".into(),
        language: "ko".into(),
        buyer: Some(Buyer {
            name: "홍길동".into(),
            tel: "010-1234-5678".into(),
            addr: String::new(),
            email: "buyer@example.com".into(),
            postcode: String::new(),
        }),
        custom_data: None,
        notice_url: "https://merchant.example/portone/webhook".into(),
        expire_at: Some(prost_types::Timestamp {
            seconds: i64::try_from(in_an_hour).expect("fits"),
            nanos: 500_000_000,
        }),
        display_language: String::new(),
        pay_methods: vec![PayMethod {
            pg: "html5_inicis".into(),
            pay_method: "card".into(),
            label: "신용카드".into(),
        }],
    }
}

/// Registers `amount` under a fresh `merchant_uid` through `facade`; returns the uid.
pub async fn prepared(facade: &Facade, prefix: &str, amount: &str) -> String {
    let uid = merchant_uid(prefix);
    facade
        .prepare_client()
        .prepare_payment(portone_facade::pb::PreparePaymentRequest {
            merchant_uid: uid.clone(),
            amount: amount.into(),
            currency: String::new(),
        })
        .await
        .expect("prepare succeeds");
    uid
}

/// Waits (at most 5 s) until `endpoint` of `sandbox` has been called.
pub async fn wait_until_called(sandbox: &Sandbox, endpoint: portone_facade::sandbox::Endpoint) {
    wait_for_calls(sandbox, endpoint, 1).await;
}

/// Waits (at most 5 s) until `endpoint` of `sandbox` has been called
/// `at_least` times.
pub async fn wait_for_calls(
    sandbox: &Sandbox,
    endpoint: portone_facade::sandbox::Endpoint,
    at_least: usize,
) {
    let started = std::time::Instant::now();
    while sandbox.calls(endpoint) < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{endpoint:?} was called {} times, not {at_least}",
            sandbox.calls(endpoint)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// 50 reads of unknown orders `<prefix>-N`, each under a 2 s deadline, are
/// each answered NOT_FOUND in time: whatever telemetry is doing, no call
/// waits for it.
pub async fn unknown_reads_are_answered_in_time(addr: SocketAddr, prefix: &str) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = PaymentPrepareServiceClient::new(channel);
    for n in 0..50 {
        let mut request = tonic::Request::new(portone_facade::pb::GetPreparedPaymentRequest {
            merchant_uid: format!("{prefix}-{n}"),
        });
        request.set_timeout(Duration::from_secs(2));
        let status = client.get_prepared_payment(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
}

/// `POST {sandbox_url}/__sandbox/payments` with `body` (a buyer standing in
/// paid): the new payment's `imp_uid`.
pub async fn sandbox_payment(sandbox_url: &str, body: serde_json::Value) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{sandbox_url}/__sandbox/payments"))
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the sandbox answers");
    let status = answer.status();
    let json: serde_json::Value = answer.json().await.expect("a JSON answer");
    assert!(status.is_success(), "{status}: {json}");
    json["imp_uid"]
        .as_str()
        .unwrap_or_else(|| panic!("no imp_uid in {json}"))
        .to_owned()
}

/// `message` with a sampled W3C `traceparent` of the caller's trace and span.
pub fn with_traceparent<T>(message: T, trace_id: &str, span_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
}
