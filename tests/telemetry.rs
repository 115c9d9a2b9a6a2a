//! Traces and metrics from a running facade process to an in-process OTLP
//! receiver: W3C propagation in and out, the semantic-convention attributes,
//! retries as separate client spans, no span lost on SIGTERM, no secret or
//! personal data in any log line or span.

mod support;

use std::{collections::BTreeMap, time::Duration};

use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use portone_facade::{
    pb::{
        GetPaymentRequest, GetPreparedPaymentRequest, PreparePaymentRequest, VerifyPaymentRequest,
        payment_link_service_client::PaymentLinkServiceClient,
        payment_prepare_service_client::PaymentPrepareServiceClient,
        payment_verification_service_client::PaymentVerificationServiceClient,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::{
    link_request,
    otlp::{Keep, OtlpReceiver, attribute, attribute_set, hex},
    process::{FacadeProc, Output, facade_command},
};
use tonic::{Request, transport::Channel};

const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(10);

/// A facade process in front of `sandbox`, exporting to `receiver`.
fn facade(sandbox: &Sandbox, receiver: &OtlpReceiver, extra_env: &[(&str, &str)]) -> FacadeProc {
    let mut command = facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    command
        .env("PORTONE_USER_CODE", "imp12345678")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    FacadeProc::start(command, Output::Logs).unwrap()
}

fn channel(process: &FacadeProc) -> Channel {
    Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect_lazy()
}

fn with_traceparent<T>(message: T) -> Request<T> {
    support::with_traceparent(message, CALLER_TRACE_ID, CALLER_SPAN_ID)
}

fn prepare(uid: &str) -> PreparePaymentRequest {
    PreparePaymentRequest {
        merchant_uid: uid.into(),
        amount: "1000".into(),
        currency: "KRW".into(),
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified)
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

const PREPARE_SPAN: &str = "portone.facade.v1.PaymentPrepareService/PreparePayment";
const GET_SPAN: &str = "portone.facade.v1.PaymentPrepareService/GetPreparedPayment";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_traceparent_is_a_server_span_under_the_caller_with_client_spans_under_it() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    PaymentPrepareServiceClient::new(channel(&process))
        .prepare_payment(with_traceparent(prepare("traced-1")))
        .await
        .unwrap();

    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            !named(spans, PREPARE_SPAN).is_empty()
                && !named(spans, "POST /payments/prepare").is_empty()
        })
        .await;
    let server = named(&spans, PREPARE_SPAN)[0];
    assert_eq!(kind(server), SpanKind::Server);
    assert_eq!(hex(&server.trace_id), CALLER_TRACE_ID);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN_ID);
    assert!(!is_error(server));
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "portone.facade.v1.PaymentPrepareService"),
        ("rpc.method", "PreparePayment"),
        ("rpc.grpc.status_code", "0"),
        ("server.address", "127.0.0.1"),
        ("server.port", &process.addr.port().to_string()),
        ("merchant_uid", "traced-1"),
    ] {
        assert_eq!(
            attribute(server, key).as_deref(),
            Some(value),
            "{key} on {server:#?}"
        );
    }

    let client = named(&spans, "POST /payments/prepare")[0];
    assert_eq!(kind(client), SpanKind::Client);
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, server.span_id);
    let sandbox_port = sandbox.addr().port().to_string();
    for (key, value) in [
        ("http.request.method", "POST"),
        (
            "url.full",
            format!("{}/payments/prepare", sandbox.url()).as_str(),
        ),
        ("server.address", "127.0.0.1"),
        ("server.port", sandbox_port.as_str()),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            attribute(client, key).as_deref(),
            Some(value),
            "{key} on {client:#?}"
        );
    }

    let token = named(&spans, "PortOne getToken");
    assert_eq!(token.len(), 1, "one token fetch, as its own span");
    assert_eq!(token[0].parent_span_id, server.span_id);
    let token_attempt = named(&spans, "POST /users/getToken")[0];
    assert_eq!(token_attempt.parent_span_id, token[0].span_id);

    let sent = sandbox.last_headers(Endpoint::PreparePayment).unwrap();
    let traceparent = sent
        .get("traceparent")
        .expect("PortOne receives a traceparent")
        .to_str()
        .unwrap();
    assert_eq!(
        traceparent,
        format!("00-{CALLER_TRACE_ID}-{}-01", hex(&client.span_id))
    );
    assert!(
        sent.get("baggage").is_none(),
        "the caller's baggage is not sent to PortOne"
    );

    let resource = receiver.resource_attributes();
    assert!(
        resource.contains(&("service.name".into(), "portone-facade".into())),
        "{resource:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_call_has_an_error_status_and_each_retry_is_its_own_client_span() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    sandbox.inject_times(Endpoint::GetPrepared, Fault::status(503, -1, "점검 중"), 3);
    let status = PaymentPrepareServiceClient::new(channel(&process))
        .get_prepared_payment(with_traceparent(GetPreparedPaymentRequest {
            merchant_uid: "down".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);

    let route = "GET /payments/prepare/{merchant_uid}";
    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            !named(spans, GET_SPAN).is_empty() && named(spans, route).len() == 3
        })
        .await;
    let server = named(&spans, GET_SPAN)[0];
    assert!(is_error(server), "{server:#?}");
    assert_eq!(
        attribute(server, "rpc.grpc.status_code").as_deref(),
        Some("14")
    );
    for attempt in named(&spans, route) {
        assert_eq!(attempt.parent_span_id, server.span_id);
        assert!(is_error(attempt));
        assert_eq!(
            attribute(attempt, "http.response.status_code").as_deref(),
            Some("503")
        );
        assert_eq!(attribute(attempt, "portone.code").as_deref(), Some("-1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_call_shows_two_client_spans_and_succeeds() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    let mut client = PaymentPrepareServiceClient::new(channel(&process));
    client.prepare_payment(prepare("retried")).await.unwrap();
    sandbox.inject(Endpoint::GetPrepared, Fault::status(502, -1, "bad gateway"));
    client
        .get_prepared_payment(with_traceparent(GetPreparedPaymentRequest {
            merchant_uid: "retried".into(),
        }))
        .await
        .unwrap();

    let route = "GET /payments/prepare/{merchant_uid}";
    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            !named(spans, GET_SPAN).is_empty() && named(spans, route).len() == 2
        })
        .await;
    let server = named(&spans, GET_SPAN)[0];
    assert!(!is_error(server));
    let statuses: Vec<String> = named(&spans, route)
        .iter()
        .map(|s| attribute(s, "http.response.status_code").unwrap_or_default())
        .collect();
    assert!(
        statuses.contains(&"502".to_owned()) && statuses.contains(&"200".to_owned()),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_arrive_with_their_documented_names() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    let mut client = PaymentPrepareServiceClient::new(channel(&process));
    client.prepare_payment(prepare("metered")).await.unwrap();
    sandbox.inject(Endpoint::GetPrepared, Fault::status(502, -1, "bad gateway"));
    client
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "metered".into(),
        })
        .await
        .unwrap();
    receiver
        .wait_for_metrics(
            WAIT,
            &[
                "rpc.server.call.duration",
                "http.client.request.duration",
                "portone.token.refreshes",
                "portone.upstream.retries",
                "rpc.server.active_requests",
            ],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failures_an_operator_watches_are_counted_when_they_happen() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[("MAX_IN_FLIGHT", "1")]);
    let mut client = PaymentPrepareServiceClient::new(channel(&process));

    // getToken fails (every attempt of one fetch).
    sandbox.inject_times(Endpoint::GetToken, Fault::status(503, -1, "점검 중"), 3);
    let status = client
        .prepare_payment(prepare("metered-failures"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    client
        .prepare_payment(prepare("metered-failures"))
        .await
        .unwrap();

    // An answer too large to read.
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Respond {
            status: 200,
            body: format!(
                r#"{{"code":0,"padding":"{}"}}"#,
                "x".repeat(2 * 1024 * 1024)
            ),
            retry_after: None,
        },
    );
    let read = GetPreparedPaymentRequest {
        merchant_uid: "metered-failures".into(),
    };
    let status = client.get_prepared_payment(read.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    // A call over MAX_IN_FLIGHT = 1 while another waits on PortOne.
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(800)),
    );
    let mut waiting_client = client.clone();
    let called = sandbox.calls(Endpoint::GetPrepared);
    let waiting = {
        let read = read.clone();
        tokio::spawn(async move { waiting_client.get_prepared_payment(read).await })
    };
    support::wait_for_calls(&sandbox, Endpoint::GetPrepared, called + 1).await;
    let status = client.get_prepared_payment(read).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    waiting.await.unwrap().unwrap();

    receiver
        .wait_for_metrics(
            WAIT,
            &[
                "portone.token.failures",
                "portone.upstream.oversized_answers",
                "rpc.server.shed",
            ],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_are_counted_by_method_and_outcome() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    let mut client = PaymentPrepareServiceClient::new(channel(&process));
    client.prepare_payment(prepare("counted")).await.unwrap();
    for merchant_uid in ["counted", "counted", "counted", "never-prepared"] {
        let _ = client
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: merchant_uid.into(),
            })
            .await;
    }
    let rpc = |method: &str, code: &str| {
        attribute_set(&[
            ("rpc.system", "grpc"),
            ("rpc.service", "portone.facade.v1.PaymentPrepareService"),
            ("rpc.method", method),
            ("rpc.grpc.status_code", code),
        ])
    };
    let http = |method: &str, outcome: &str| {
        attribute_set(&[
            ("http.request.method", method),
            ("server.address", "127.0.0.1"),
            ("http.response.status_code", outcome),
        ])
    };
    let expected_rpcs = BTreeMap::from([
        (rpc("PreparePayment", "0"), 1),
        (rpc("GetPreparedPayment", "0"), 3),
        (rpc("GetPreparedPayment", "5"), 1),
    ]);
    // getToken and the prepare are POSTs; the unknown id answers 404.
    let expected_requests = BTreeMap::from([
        (http("POST", "200"), 2),
        (http("GET", "200"), 3),
        (http("GET", "404"), 1),
    ]);
    receiver
        .wait_for_histogram_counts(
            WAIT,
            &[
                ("rpc.server.call.duration", expected_rpcs),
                ("http.client.request.duration", expected_requests),
            ],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_span_of_a_call_just_before_sigterm_still_reaches_the_receiver() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    // Batches would wait a minute: only the flush at exit can deliver.
    let mut process = facade(&sandbox, &receiver, &[("OTEL_BSP_SCHEDULE_DELAY", "60000")]);
    PaymentPrepareServiceClient::new(channel(&process))
        .prepare_payment(prepare("last-words"))
        .await
        .unwrap();
    process.proc.terminate();
    assert_eq!(
        process
            .proc
            .wait_exit(Duration::from_secs(15))
            .unwrap()
            .code(),
        Some(0)
    );
    let spans = receiver.spans();
    let logs = process.proc.drain_lines().join("\n");
    assert!(
        !named(&spans, PREPARE_SPAN).is_empty(),
        "{spans:#?}\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_buyer_detail_appears_in_logs_or_spans_even_at_trace_level() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[("RUST_LOG", "trace")]);
    let channel = channel(&process);
    let mut prepare_client = PaymentPrepareServiceClient::new(channel.clone());
    let mut link_client = PaymentLinkServiceClient::new(channel);

    prepare_client
        .prepare_payment(prepare("secretive"))
        .await
        .unwrap();
    let _ = prepare_client
        .prepare_payment(PreparePaymentRequest {
            amount: "2".into(),
            ..prepare("secretive")
        })
        .await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(401, -1, "Unauthorized"),
    );
    sandbox.revoke_tokens();
    prepare_client
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "secretive".into(),
        })
        .await
        .unwrap();
    let mut link = link_request("secretive-link");
    let buyer = link.buyer.as_mut().unwrap();
    buyer.addr = "서울특별시 강남구 테헤란로 427".into();
    buyer.postcode = "06159".into();
    link_client.create_payment_link(link.clone()).await.unwrap();
    sandbox.inject(Endpoint::CreateLink, Fault::status(500, -1, "오류"));
    let _ = link_client.create_payment_link(link.clone()).await;

    // The token the sandbox issued (it hands out the same one while valid).
    let token = support::portone::get_token(
        &reqwest::Client::new(),
        &sandbox.url(),
        sandbox.imp_key(),
        sandbox.imp_secret(),
        WAIT,
    )
    .await
    .unwrap();

    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            named(
                spans,
                "portone.facade.v1.PaymentLinkService/CreatePaymentLink",
            )
            .len()
                == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = process.proc.drain_lines().join("\n");
    assert!(
        logs.lines().count() > 50,
        "trace level logs were captured: {logs}"
    );
    let exported = format!("{spans:?}");
    let buyer = link.buyer.unwrap();
    for secret in [
        sandbox.imp_key(),
        sandbox.imp_secret(),
        token.as_str(),
        "Bearer",
        buyer.name.as_str(),
        buyer.tel.as_str(),
        buyer.email.as_str(),
        buyer.addr.as_str(),
        buyer.postcode.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret:?} appears in the logs");
        assert!(
            !exported.contains(secret),
            "{secret:?} appears in the exported spans"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_trace_and_span_ids() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    sandbox.inject_times(Endpoint::GetPrepared, Fault::status(503, -1, "점검 중"), 3);
    let _ = PaymentPrepareServiceClient::new(channel(&process))
        .get_prepared_payment(with_traceparent(GetPreparedPaymentRequest {
            merchant_uid: "logged".into(),
        }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = process.proc.drain_lines();
    let joined: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        // The audit line (DESIGN §8) carries the trace id alone.
        .filter(|line| line["trace_id"] == CALLER_TRACE_ID && line["event"] != "audit")
        .collect();
    assert!(
        !joined.is_empty(),
        "no log line of the failed call carries its trace id: {logs:#?}"
    );
    assert!(
        joined
            .iter()
            .all(|line| line["span_id"].as_str().is_some_and(|id| id.len() == 16))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_delays_no_call_and_not_the_exit() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let endpoint = format!("http://{silent_addr}");
    let mut process = facade(
        &sandbox,
        &receiver,
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
        ],
    );
    support::unknown_reads_are_answered_in_time(process.addr, "unanswered").await;
    process.proc.terminate();
    // The flush at exit gives up after its bound instead of waiting for
    // the 60 s export timeout.
    assert_eq!(
        process
            .proc
            .wait_exit(Duration::from_secs(20))
            .unwrap()
            .code(),
        Some(0)
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_exports_refused_as_unavailable_are_retried_and_lose_no_span() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    receiver.refuse_trace_exports(2);
    let process = facade(&sandbox, &receiver, &[]);
    PaymentPrepareServiceClient::new(channel(&process))
        .prepare_payment(prepare("refused-then-taken"))
        .await
        .unwrap();
    // Each span is in exactly one export, so a refused export that was not
    // retried would leave one of these missing.
    let expected = [
        PREPARE_SPAN,
        "POST /payments/prepare",
        "PortOne getToken",
        "POST /users/getToken",
    ];
    receiver
        .wait_for_spans(WAIT, |spans| {
            expected.iter().all(|name| !named(spans, name).is_empty())
        })
        .await;
}

const VERIFY_SPAN: &str = "portone.facade.v1.PaymentVerificationService/VerifyPayment";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_is_one_server_span_with_the_payments_merchant_uid_over_both_reads() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[]);
    let channel = channel(&process);
    PaymentPrepareServiceClient::new(channel.clone())
        .prepare_payment(prepare("traced-verify"))
        .await
        .unwrap();
    let imp_uid = support::sandbox_payment(
        &sandbox.url(),
        serde_json::json!({"merchant_uid": "traced-verify", "amount": 1000, "currency": "KRW"}),
    )
    .await;
    // No merchant_uid in the request: the span gets the payment's.
    PaymentVerificationServiceClient::new(channel)
        .verify_payment(with_traceparent(VerifyPaymentRequest {
            imp_uid,
            merchant_uid: String::new(),
        }))
        .await
        .unwrap();

    let reads = [
        "GET /payments/{imp_uid}",
        "GET /payments/prepare/{merchant_uid}",
    ];
    let spans = receiver
        .wait_for_spans(WAIT, |spans| {
            !named(spans, VERIFY_SPAN).is_empty()
                && reads.iter().all(|read| !named(spans, read).is_empty())
        })
        .await;
    let server = named(&spans, VERIFY_SPAN)[0];
    assert_eq!(kind(server), SpanKind::Server);
    assert_eq!(hex(&server.trace_id), CALLER_TRACE_ID);
    for (key, value) in [
        (
            "rpc.service",
            "portone.facade.v1.PaymentVerificationService",
        ),
        ("rpc.method", "VerifyPayment"),
        ("rpc.grpc.status_code", "0"),
        ("merchant_uid", "traced-verify"),
    ] {
        assert_eq!(
            attribute(server, key).as_deref(),
            Some(value),
            "{key} on {server:#?}"
        );
    }
    for read in reads {
        let client = named(&spans, read);
        assert_eq!(client.len(), 1, "{read}");
        assert_eq!(kind(client[0]), SpanKind::Client);
        assert_eq!(client[0].parent_span_id, server.span_id, "{read}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payments_buyer_and_card_details_appear_in_no_log_or_span_even_at_trace_level() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let process = facade(&sandbox, &receiver, &[("RUST_LOG", "trace")]);
    let imp_uid = support::sandbox_payment(
        &sandbox.url(),
        serde_json::json!({"merchant_uid": "private-payment", "amount": 1000}),
    )
    .await;
    // What the sandbox tells the facade about the buyer and the card.
    let token = support::portone::get_token(
        &reqwest::Client::new(),
        &sandbox.url(),
        sandbox.imp_key(),
        sandbox.imp_secret(),
        WAIT,
    )
    .await
    .unwrap();
    let portone_says: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/payments/{imp_uid}", sandbox.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let private: Vec<String> = [
        "buyer_name",
        "buyer_tel",
        "buyer_email",
        "buyer_addr",
        "buyer_postcode",
        "card_number",
        "apply_num",
    ]
    .iter()
    .map(|field| {
        portone_says["response"][field]
            .as_str()
            .unwrap_or_else(|| panic!("the sandbox sends {field}: {portone_says}"))
            .to_owned()
    })
    .collect();

    let mut client = PaymentVerificationServiceClient::new(channel(&process));
    client
        .get_payment(GetPaymentRequest {
            imp_uid: imp_uid.clone(),
        })
        .await
        .unwrap();
    client
        .verify_payment(VerifyPaymentRequest {
            imp_uid,
            merchant_uid: "private-payment".into(),
        })
        .await
        .unwrap();

    let spans = receiver
        .wait_for_spans(WAIT, |spans| !named(spans, VERIFY_SPAN).is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = process.proc.drain_lines().join("\n");
    assert!(
        logs.lines().count() > 20,
        "trace level logs were captured: {logs}"
    );
    let exported = format!("{spans:?}");
    for detail in &private {
        assert!(
            !logs.contains(detail.as_str()),
            "{detail:?} appears in the logs"
        );
        assert!(
            !exported.contains(detail.as_str()),
            "{detail:?} appears in the exported spans"
        );
    }
}
