//! The audit trail (DESIGN §8) of a running facade process at
//! `RUST_LOG=warn`: exactly one JSON line per API call, whatever its
//! outcome, with the RPC's own fields and nothing secret or personal; none
//! for health and reflection, none with `AUDIT_LOG=off`; and a stdout that
//! nobody reads holds no call.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant},
};

use portone_facade::{
    pb::{
        DisablePaymentLinkRequest, GetPaymentRequest, GetPreparedPaymentRequest,
        PreparePaymentRequest, UpdatePreparedPaymentRequest, VerifyPaymentRequest,
        payment_link_service_client::PaymentLinkServiceClient,
        payment_prepare_service_client::PaymentPrepareServiceClient,
        payment_verification_service_client::PaymentVerificationServiceClient,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use serde_json::Value;
use support::{
    link_request, merchant_uid,
    otlp::{Keep, OtlpReceiver, hex},
    process::{FacadeProc, Output, facade_command, free_loopback_addr},
};
use tonic::{Code, Request, transport::Channel};

const PREPARE: &str = "portone.facade.v1.PaymentPrepareService/PreparePayment";
const GET: &str = "portone.facade.v1.PaymentPrepareService/GetPreparedPayment";
const UPDATE: &str = "portone.facade.v1.PaymentPrepareService/UpdatePreparedPayment";
const CREATE_LINK: &str = "portone.facade.v1.PaymentLinkService/CreatePaymentLink";
const DISABLE_LINK: &str = "portone.facade.v1.PaymentLinkService/DisablePaymentLink";
const GET_PAYMENT: &str = "portone.facade.v1.PaymentVerificationService/GetPayment";
const VERIFY: &str = "portone.facade.v1.PaymentVerificationService/VerifyPayment";
const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// The fields of every audit line.
const COMMON: [&str; 6] = ["timestamp", "event", "rpc", "caller", "code", "duration_ms"];

/// A facade process at `RUST_LOG=warn` in front of `sandbox`, with `env` on top.
fn facade(sandbox: &Sandbox, env: &[(&str, &str)], output: Output) -> FacadeProc {
    FacadeProc::start_quietly(command(sandbox, env), output).unwrap()
}

fn command(sandbox: &Sandbox, env: &[(&str, &str)]) -> Command {
    let mut command = facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    command
        .env("RUST_LOG", "warn")
        .env("PORTONE_USER_CODE", "imp12345678");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn channel(process: &FacadeProc) -> Channel {
    Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect_lazy()
}

fn prepare_client(process: &FacadeProc) -> PaymentPrepareServiceClient<Channel> {
    PaymentPrepareServiceClient::new(channel(process))
}

fn link_client(process: &FacadeProc) -> PaymentLinkServiceClient<Channel> {
    PaymentLinkServiceClient::new(channel(process))
}

fn verification_client(process: &FacadeProc) -> PaymentVerificationServiceClient<Channel> {
    PaymentVerificationServiceClient::new(channel(process))
}

fn read(uid: &str) -> GetPreparedPaymentRequest {
    GetPreparedPaymentRequest {
        merchant_uid: uid.into(),
    }
}

fn with_traceparent<T>(message: T) -> Request<T> {
    support::with_traceparent(message, CALLER_TRACE_ID, CALLER_SPAN_ID)
}

/// Every line `process` wrote, once it exited after SIGTERM (so the trail
/// was flushed) and its output was read to the end.
fn lines_after_exit(mut process: FacadeProc) -> Vec<String> {
    process.proc.terminate();
    let status = process.proc.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    process
        .proc
        .lines_to_the_end(Duration::from_secs(10))
        .unwrap()
}

/// The audit lines among `lines`.
fn audit_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|json| json["event"] == "audit")
        .collect()
}

/// The audit lines `process` wrote until it exited.
fn audit_lines_after_exit(process: FacadeProc) -> Vec<Value> {
    audit_lines(&lines_after_exit(process))
}

/// The field names of `line`.
fn keys(line: &Value) -> BTreeSet<String> {
    line.as_object().unwrap().keys().cloned().collect()
}

/// [`COMMON`] and `own`.
fn fields(own: &[&str]) -> BTreeSet<String> {
    COMMON
        .iter()
        .chain(own)
        .map(|key| (*key).to_owned())
        .collect()
}

/// Asserts the line's `rpc`, `code`, field names, and the facts every line
/// has.
fn assert_line(line: &Value, rpc: &str, code: &str, own: &[&str]) {
    assert_eq!(line["rpc"], rpc, "{line}");
    assert_eq!(line["code"], code, "{line}");
    assert_eq!(keys(line), fields(own), "{line}");
    assert_eq!(line["caller"], "anonymous", "{line}");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    let timestamp = line["timestamp"].as_str().unwrap_or_default();
    assert!(timestamp.len() == 27 && timestamp.ends_with('Z'), "{line}");
}

/// Calls each of the five RPCs once, each succeeding; returns the order ids
/// used (the registration's, the link's) and the link's id.
async fn call_every_rpc(process: &FacadeProc) -> (String, String, String) {
    let mut prepare = prepare_client(process);
    let mut links = link_client(process);
    let uid = merchant_uid("audit");
    prepare
        .prepare_payment(with_traceparent(PreparePaymentRequest {
            merchant_uid: uid.clone(),
            amount: "1000".into(),
            currency: "KRW".into(),
        }))
        .await
        .unwrap();
    prepare.get_prepared_payment(read(&uid)).await.unwrap();
    prepare
        .update_prepared_payment(UpdatePreparedPaymentRequest {
            merchant_uid: uid.clone(),
            amount: "2000".into(),
            currency: String::new(),
        })
        .await
        .unwrap();
    let link_uid = merchant_uid("audit-link");
    let link_id = links
        .create_payment_link(link_request(&link_uid))
        .await
        .unwrap()
        .into_inner()
        .link_id;
    links
        .disable_payment_link(DisablePaymentLinkRequest {
            link_id: link_id.clone(),
        })
        .await
        .unwrap();
    (uid, link_uid, link_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_the_five_rpcs_writes_one_line_with_the_fields_it_has() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let (uid, link_uid, link_id) = call_every_rpc(&process).await;
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 5, "{lines:#?}");
    // Tracing is off: no trace_id, though the registration came with a
    // traceparent.
    assert_line(
        &lines[0],
        PREPARE,
        "OK",
        &["merchant_uid", "amount", "currency"],
    );
    assert_eq!(lines[0]["merchant_uid"], uid.as_str());
    assert_eq!(lines[0]["amount"], "1000");
    assert_eq!(lines[0]["currency"], "KRW");
    // A read has no amount.
    assert_line(&lines[1], GET, "OK", &["merchant_uid"]);
    assert_eq!(lines[1]["merchant_uid"], uid.as_str());
    // No currency asked for, none written.
    assert_line(&lines[2], UPDATE, "OK", &["merchant_uid", "amount"]);
    assert_eq!(lines[2]["amount"], "2000");
    assert_line(
        &lines[3],
        CREATE_LINK,
        "OK",
        &["merchant_uid", "amount", "currency", "link_id"],
    );
    assert_eq!(lines[3]["merchant_uid"], link_uid.as_str());
    assert_eq!(lines[3]["amount"], "50000");
    assert_eq!(lines[3]["currency"], "KRW");
    assert_eq!(lines[3]["link_id"], link_id.as_str());
    assert_line(&lines[4], DISABLE_LINK, "OK", &["link_id"]);
    assert_eq!(lines[4]["link_id"], link_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_and_verifying_a_payment_write_its_imp_uid_order_and_verdict() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let uid = merchant_uid("audit-verify");
    prepare_client(&process)
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: uid.clone(),
            amount: "1000".into(),
            currency: "KRW".into(),
        })
        .await
        .unwrap();
    // The buyer paid less than was registered.
    let imp_uid = support::sandbox_payment(
        &sandbox.url(),
        serde_json::json!({"merchant_uid": uid, "amount": 900}),
    )
    .await;
    let mut verification = verification_client(&process);
    verification
        .get_payment(GetPaymentRequest {
            imp_uid: imp_uid.clone(),
        })
        .await
        .unwrap();
    verification
        .verify_payment(VerifyPaymentRequest {
            imp_uid: imp_uid.clone(),
            merchant_uid: String::new(),
        })
        .await
        .unwrap();
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_line(&lines[1], GET_PAYMENT, "OK", &["imp_uid", "merchant_uid"]);
    assert_eq!(lines[1]["imp_uid"], imp_uid.as_str());
    assert_eq!(lines[1]["merchant_uid"], uid.as_str());
    // A verdict other than VERIFIED is still an OK call; the line says which.
    assert_line(
        &lines[2],
        VERIFY,
        "OK",
        &["imp_uid", "merchant_uid", "verdict"],
    );
    assert_eq!(lines[2]["imp_uid"], imp_uid.as_str());
    assert_eq!(lines[2]["merchant_uid"], uid.as_str());
    assert_eq!(lines[2]["verdict"], "VERDICT_AMOUNT_MISMATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_writes_invalid_argument_and_none_of_its_values() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let status = prepare_client(&process)
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "invalid-marker\u{7}".into(),
            amount: "-1".into(),
            currency: "krw".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let all = lines_after_exit(process);
    let lines = audit_lines(&all);

    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines[0], PREPARE, "INVALID_ARGUMENT", &[]);
    assert!(
        !all.iter().any(|line| line.contains("invalid-marker")),
        "{all:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_order_writes_not_found_with_its_merchant_uid() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let uid = merchant_uid("audit-unknown");
    let status = prepare_client(&process)
        .get_prepared_payment(read(&uid))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines[0], GET, "NOT_FOUND", &["merchant_uid"]);
    assert_eq!(lines[0]["merchant_uid"], uid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_for_overload_writes_resource_exhausted() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[("MAX_IN_FLIGHT", "1")], Output::Logs);
    sandbox.inject(Endpoint::GetPrepared, Fault::Delay(Duration::from_secs(1)));
    let slow_uid = merchant_uid("audit-slow");
    let slow = tokio::spawn({
        let mut client = prepare_client(&process);
        let request = read(&slow_uid);
        async move { client.get_prepared_payment(request).await }
    });
    support::wait_until_called(&sandbox, Endpoint::GetPrepared).await;
    let refused = prepare_client(&process)
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: merchant_uid("audit-shed"),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .unwrap_err();
    support::assert_error(&refused, Code::ResourceExhausted, "OVERLOADED");
    let slow = slow.await.unwrap().unwrap_err();
    assert_eq!(slow.code(), Code::NotFound, "{slow:?}");
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 2, "{lines:#?}");
    // Refused before any handler ran: nothing of the request is known.
    assert_line(&lines[0], PREPARE, "RESOURCE_EXHAUSTED", &[]);
    assert_line(&lines[1], GET, "NOT_FOUND", &["merchant_uid"]);
    assert_eq!(lines[1]["merchant_uid"], slow_uid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_deadline_runs_out_writes_deadline_exceeded() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    // Connected before the clock starts (a health check writes no line),
    // so that the caller's own timer does not fire first.
    let channel = channel(&process);
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    sandbox.inject(Endpoint::GetPrepared, Fault::Delay(Duration::from_secs(4)));
    let uid = merchant_uid("audit-late");
    let mut request = Request::new(read(&uid));
    request.set_timeout(Duration::from_secs(1));
    let status = PaymentPrepareServiceClient::new(channel)
        .get_prepared_payment(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines[0], GET, "DEADLINE_EXCEEDED", &["merchant_uid"]);
    let ms = lines[0]["duration_ms"].as_f64().unwrap();
    assert!((900.0..4000.0).contains(&ms), "{ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_client_cancels_writes_cancelled() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    sandbox.inject(Endpoint::GetPrepared, Fault::Delay(Duration::from_secs(5)));
    let uid = merchant_uid("audit-cancelled");
    let call = tokio::spawn({
        let mut client = prepare_client(&process);
        let request = read(&uid);
        async move { client.get_prepared_payment(request).await }
    });
    support::wait_until_called(&sandbox, Endpoint::GetPrepared).await;
    // Dropping the call's future resets its stream.
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines[0], GET, "CANCELLED", &["merchant_uid"]);
    assert_eq!(lines[0]["merchant_uid"], uid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_audit_log_off_no_line_is_written() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[("AUDIT_LOG", "off")], Output::Logs);
    call_every_rpc(&process).await;
    let status = prepare_client(&process)
        .get_prepared_payment(read(""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let lines = lines_after_exit(process);

    let audit: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("\"event\":\"audit"))
        .collect();
    assert!(audit.is_empty(), "{audit:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_token_buyer_field_or_custom_data_reaches_an_audit_line() {
    use prost_types::{Struct, Value as ProtoValue, value::Kind};

    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let mut request = link_request(&merchant_uid("audit-private"));
    let buyer = request.buyer.as_mut().unwrap();
    buyer.name = "buyer-name-marker".into();
    buyer.tel = "buyer-tel-marker".into();
    buyer.email = "buyer-email-marker@example.com".into();
    buyer.addr = "buyer-addr-marker".into();
    buyer.postcode = "buyer-postcode-marker".into();
    request.custom_data = Some(Struct {
        fields: BTreeMap::from([(
            "note".to_owned(),
            ProtoValue {
                kind: Some(Kind::StringValue("custom-data-marker".into())),
            },
        )]),
    });
    let mut links = link_client(&process);
    let link_id = links
        .create_payment_link(request.clone())
        .await
        .unwrap()
        .into_inner()
        .link_id;
    // The same request refused (an expiry in the past): nothing of it either.
    request.expire_at = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let status = links.create_payment_link(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    call_every_rpc(&process).await;
    let authorization = sandbox
        .last_headers(Endpoint::CreateLink)
        .and_then(|headers| headers.get("authorization").cloned())
        .expect("PortOne saw a token");
    let token = authorization
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    assert!(token.len() > 8, "{token}");
    let all = lines_after_exit(process);
    let audit: Vec<&String> = all
        .iter()
        .filter(|line| line.contains("\"event\":\"audit\""))
        .collect();

    assert_eq!(audit.len(), 7, "{all:#?}");
    assert!(audit.iter().any(|line| line.contains(&link_id)));
    for secret in [
        sandbox.imp_key(),
        sandbox.imp_secret(),
        token.as_str(),
        "buyer-",
        "custom-data-marker",
        "buyer",
        "custom_data",
    ] {
        for line in &audit {
            assert!(!line.contains(secret), "{secret:?} in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_call_carries_the_trace_id_of_its_span_the_callers_when_it_sent_one() {
    let receiver = OtlpReceiver::start(Keep::Everything).unwrap();
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let endpoint = receiver.endpoint();
    let process = facade(
        &sandbox,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        Output::Logs,
    );
    let mut client = prepare_client(&process);
    let traced = merchant_uid("audit-traced");
    client
        .get_prepared_payment(with_traceparent(read(&traced)))
        .await
        .unwrap_err();
    let own = merchant_uid("audit-own-trace");
    client.get_prepared_payment(read(&own)).await.unwrap_err();
    let spans = receiver
        .wait_for_spans(Duration::from_secs(10), |spans| {
            spans.iter().filter(|span| span.name == GET).count() == 2
        })
        .await;
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_line(&lines[0], GET, "NOT_FOUND", &["merchant_uid", "trace_id"]);
    assert_eq!(lines[0]["trace_id"], CALLER_TRACE_ID);
    // Without a traceparent the call is the root of its own trace: the
    // line names the trace its server span is in.
    assert_line(&lines[1], GET, "NOT_FOUND", &["merchant_uid", "trace_id"]);
    let own_trace = lines[1]["trace_id"].as_str().unwrap();
    assert_ne!(own_trace, CALLER_TRACE_ID);
    let span_traces: BTreeSet<String> = spans
        .iter()
        .filter(|span| span.name == GET)
        .map(|span| hex(&span.trace_id))
        .collect();
    assert_eq!(
        span_traces,
        BTreeSet::from([CALLER_TRACE_ID.to_owned(), own_trace.to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_calls_write_no_line() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::{v1, v1alpha};

    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = facade(&sandbox, &[], Output::Logs);
    let mut health = HealthClient::new(channel(&process));
    for service in ["", "portone.facade.v1.PaymentPrepareService"] {
        health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
    }
    let list = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1::server_reflection_client::ServerReflectionClient::new(channel(&process))
        .server_reflection_info(tokio_stream::once(list))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    let list = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&process))
            .server_reflection_info(tokio_stream::once(list))
            .await
            .unwrap()
            .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    // One API call, so that the trail is seen to be on.
    prepare_client(&process)
        .get_prepared_payment(read(""))
        .await
        .unwrap_err();
    let lines = audit_lines_after_exit(process);

    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines[0], GET, "INVALID_ARGUMENT", &[]);
}

/// The value of the Prometheus counter `name` in `text`.
fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Calls answered while stdout is a full pipe that nobody reads, so that
/// the writer thread is stuck in `write` and its queue overflows. What this
/// shows: no call waits for stdout (each is answered well within the bound
/// while the trail cannot move), the lines the full queue refused are
/// counted exactly (lines written + dropped = calls, the metric agrees) and
/// the gap is marked in the trail once stdout drains. What it cannot show:
/// that no other path blocks a worker on stdout (the log writer, by its own
/// design, makes a thread that logs wait once 64K log lines are queued; at
/// `RUST_LOG=warn` these calls log nothing), how a real container runtime's
/// log pipe behaves, or a bound on another machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_that_nobody_reads_holds_no_call_and_the_lines_it_costs_are_counted() {
    /// More than the writer's queue (16,384 lines) and a 64 KiB pipe hold.
    const CALLS: usize = 20_480;
    const TASKS: usize = 16;
    const BOUND: Duration = Duration::from_secs(2);

    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let metrics_addr = free_loopback_addr().to_string();
    let mut process = facade(
        &sandbox,
        &[("METRICS_LISTEN_ADDR", metrics_addr.as_str())],
        Output::Unread,
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let mut client = prepare_client(&process);
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for _ in 0..CALLS / TASKS {
                    let call = Instant::now();
                    let status = tokio::time::timeout(
                        Duration::from_secs(30),
                        client.get_prepared_payment(read("")),
                    )
                    .await
                    .expect("answered within 30 s")
                    .unwrap_err();
                    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                    slowest = slowest.max(call.elapsed());
                }
                slowest
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.unwrap());
    }
    let took = started.elapsed();
    println!("{CALLS} calls in {took:?} with stdout unread; the slowest took {slowest:?}");
    assert!(slowest < BOUND, "the slowest call took {slowest:?}");

    process.proc.release_stdout().unwrap();
    // Once the writer has emptied its queue, the gap is marked.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines: Vec<String> = Vec::new();
    let dropped_total = loop {
        assert!(Instant::now() < deadline, "no audit_dropped line");
        let batch = process.proc.drain_lines();
        let warning = batch
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|json| json["event"] == "audit_dropped");
        lines.extend(batch);
        if let Some(warning) = warning {
            assert_eq!(warning["level"], "WARN", "{warning}");
            break warning["dropped_total"].as_u64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let scraped = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    lines.extend(lines_after_exit(process));

    let written = audit_lines(&lines).len();
    let dropped: u64 = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|json| json["event"] == "audit_dropped")
        .filter_map(|json| json["dropped"].as_u64())
        .sum();
    println!("{written} audit lines written, {dropped} dropped");
    assert!(
        dropped > 0,
        "the queue never overflowed: the test shows nothing"
    );
    assert_eq!(dropped, dropped_total);
    assert_eq!(written + usize::try_from(dropped).unwrap(), CALLS);
    assert_eq!(
        counter(&scraped, "portone_audit_dropped_total"),
        Some(dropped as f64),
        "{scraped}"
    );
}
