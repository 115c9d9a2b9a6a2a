//! Every row of the error table (DESIGN §2), with the retry rules.

mod support;

use std::time::Duration;

use portone_facade::{
    pb::GetPreparedPaymentRequest,
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::{
    Facade, assert_error, error_info, merchant_uid, prepared, sandbox_and_facade, settings,
};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

async fn get_status(sandbox: &Sandbox, facade: &Facade) -> Status {
    let _ = sandbox;
    facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: merchant_uid("m"),
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn portone_400_is_invalid_argument_upstream_rejected_with_the_message_verbatim() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(400, -1, "요청 파라메터가 올바르지 않습니다."),
    );
    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::InvalidArgument, "UPSTREAM_REJECTED");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "400");
    assert_eq!(info.metadata["upstream_code"], "-1");
    assert_eq!(
        info.metadata["upstream_message"],
        "요청 파라메터가 올바르지 않습니다."
    );
    assert_eq!(
        sandbox.calls(Endpoint::GetPrepared),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn portone_401_after_one_refresh_and_retry_is_internal_upstream_auth_failed() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::status(401, -1, "Unauthorized"),
        2,
    );
    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::Internal, "UPSTREAM_AUTH_FAILED");
    assert_eq!(error_info(&status).metadata["http_status"], "401");
    assert_eq!(sandbox.calls(Endpoint::GetToken), 2, "one refresh");
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2, "one retry");
}

#[tokio::test]
async fn portone_403_is_permission_denied() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(403, -1, "권한이 없습니다."),
    );
    assert_error(
        &get_status(&sandbox, &facade).await,
        Code::PermissionDenied,
        "UPSTREAM_FORBIDDEN",
    );
}

#[tokio::test]
async fn portone_409_is_already_exists() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(409, -1, "중복된 요청입니다."),
    );
    assert_error(
        &get_status(&sandbox, &facade).await,
        Code::AlreadyExists,
        "ALREADY_EXISTS",
    );
}

#[tokio::test]
async fn portone_429_whose_retry_after_outlasts_the_deadline_is_answered_at_once_with_retry_info() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Respond {
            status: 429,
            body: r#"{"code":-1,"message":"Too Many Requests","response":null}"#.into(),
            retry_after: Some(30),
        },
    );
    let mut request = Request::new(GetPreparedPaymentRequest {
        merchant_uid: merchant_uid("m"),
    });
    request.set_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let status = facade
        .prepare_client()
        .get_prepared_payment(request)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_error(&status, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(30)));
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1);
}

#[tokio::test]
async fn portone_429_whose_retry_after_fits_the_deadline_is_waited_out() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = prepared(&facade, "wait", "10").await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Respond {
            status: 429,
            body: "{}".into(),
            retry_after: Some(1),
        },
    );
    let mut request = Request::new(GetPreparedPaymentRequest { merchant_uid: uid });
    request.set_timeout(Duration::from_secs(5));
    facade
        .prepare_client()
        .get_prepared_payment(request)
        .await
        .unwrap();
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2);
}

#[tokio::test]
async fn http_200_with_a_nonzero_code_is_failed_precondition_upstream_business_error() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(200, 1, "처리할 수 없는 요청입니다."),
    );
    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::FailedPrecondition, "UPSTREAM_BUSINESS_ERROR");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "200");
    assert_eq!(info.metadata["upstream_code"], "1");
    assert_eq!(
        info.metadata["upstream_message"],
        "처리할 수 없는 요청입니다."
    );
}

#[tokio::test]
async fn persistent_5xx_is_unavailable_after_a_bounded_number_of_attempts() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::status(503, -1, "서비스 점검 중"),
        10,
    );
    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    assert_eq!(error_info(&status).metadata["http_status"], "503");
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 3);
}

#[tokio::test]
async fn a_single_5xx_is_retried_to_success() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = prepared(&facade, "flaky", "10").await;
    let mut client = facade.prepare_client();
    sandbox.inject(Endpoint::GetPrepared, Fault::status(502, -1, "bad gateway"));
    client
        .get_prepared_payment(GetPreparedPaymentRequest { merchant_uid: uid })
        .await
        .unwrap();
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2);
}

#[tokio::test]
async fn a_reset_connection_on_an_idempotent_call_is_retried() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = prepared(&facade, "reset", "10").await;
    let mut client = facade.prepare_client();
    sandbox.inject(Endpoint::GetPrepared, Fault::DropConnection);
    client
        .get_prepared_payment(GetPreparedPaymentRequest { merchant_uid: uid })
        .await
        .unwrap();
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2);
}

#[tokio::test]
async fn a_body_that_is_not_the_expected_json_is_unavailable_and_not_repeated() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(Endpoint::GetPrepared, Fault::MalformedBody);
    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "200");
    assert!(
        info.metadata["upstream_message"].contains("unexpected body"),
        "{info:?}"
    );
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_without_an_http_status() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let facade = Facade::start(settings(&format!("http://{closed}"), "k", "s")).await;
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "m".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    let info = error_info(&status);
    assert!(!info.metadata.contains_key("http_status"), "{info:?}");
    assert_eq!(
        info.metadata["upstream_message"],
        "could not connect to PortOne"
    );
}

#[tokio::test]
async fn the_upstream_timeout_is_deadline_exceeded_upstream_timeout() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.upstream_timeout = Duration::from_millis(200);
    let facade = Facade::start(settings).await;
    // Warm the token so that only the API call is slow.
    let _ = get_status(&sandbox, &facade).await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_secs(3)),
        10,
    );

    let status = get_status(&sandbox, &facade).await;
    assert_error(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
    assert!(!error_info(&status).metadata.contains_key("http_status"));
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_are_resource_exhausted_overloaded() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.max_in_flight = 1;
    let facade = Facade::start(settings).await;
    sandbox.inject(Endpoint::GetToken, Fault::Delay(Duration::from_millis(800)));

    let mut slow_client = facade.prepare_client();
    let slow = tokio::spawn(async move {
        slow_client
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: "slow".into(),
            })
            .await
    });
    // The slow call holds the only slot once it waits for its token.
    support::wait_until_called(&sandbox, Endpoint::GetToken).await;
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "fast".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "OVERLOADED");
    // Shed fast, and health still answers: the probes do not fail the pod.
    let started = std::time::Instant::now();
    let shed = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "fast-again".into(),
        })
        .await
        .unwrap_err();
    assert_error(&shed, Code::ResourceExhausted, "OVERLOADED");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let health = tonic_health::pb::health_client::HealthClient::new(facade.channel())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let _ = slow.await;
}
