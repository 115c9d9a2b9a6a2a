//! The caller's deadline caps every upstream wait and is reported as
//! DEADLINE_EXCEEDED, never CANCELLED.

mod support;

use std::time::{Duration, Instant};

use portone_facade::{
    pb::GetPreparedPaymentRequest,
    sandbox::{Endpoint, Fault},
};
use support::{assert_error, sandbox_and_facade};
use tonic::{Code, Request};

/// A client whose connection is made before any deadline starts: a client's
/// timer covers its own connection set-up, which the facade cannot see, so
/// a cold connection on a busy machine would eat the facade's answer margin.
async fn connected(
    facade: &support::Facade,
) -> portone_facade::pb::payment_prepare_service_client::PaymentPrepareServiceClient<
    tonic::transport::Channel,
> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", facade.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    portone_facade::pb::payment_prepare_service_client::PaymentPrepareServiceClient::new(channel)
}

fn get_with_deadline(timeout: Duration) -> Request<GetPreparedPaymentRequest> {
    let mut request = Request::new(GetPreparedPaymentRequest {
        merchant_uid: "m".into(),
    });
    request.set_timeout(timeout);
    request
}

#[tokio::test]
async fn a_one_second_deadline_against_a_five_second_upstream_is_deadline_exceeded_well_under_two_seconds()
 {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_secs(5)),
        5,
    );
    let mut client = facade.prepare_client();
    // Connect and fetch the token first, so only the hanging call is timed.
    let _ = client
        .get_prepared_payment(get_with_deadline(Duration::from_secs(1)))
        .await;
    sandbox.clear_faults();
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_secs(5)),
        5,
    );

    let started = Instant::now();
    let status = client
        .get_prepared_payment(get_with_deadline(Duration::from_secs(1)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_error(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn a_deadline_that_runs_out_while_fetching_the_token_is_deadline_exceeded() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(Endpoint::GetToken, Fault::Delay(Duration::from_secs(5)));
    let started = Instant::now();
    let status = connected(&facade)
        .await
        .get_prepared_payment(get_with_deadline(Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert_error(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_short_deadline_is_not_spent_on_retries_that_cannot_fit() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(400)),
        10,
    );
    let status = connected(&facade)
        .await
        .get_prepared_payment(get_with_deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}
