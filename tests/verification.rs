//! PaymentVerificationService: every verdict, GetPayment's fields, errors,
//! validation, retries and the deadline, through the public gRPC surface
//! against the sandbox (and wiremock where PortOne must answer what the
//! sandbox never would).

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portone_facade::{
    pb::{
        GetPaymentRequest, Payment, PaymentStatus, PreparePaymentRequest, Verdict,
        VerifyPaymentRequest, VerifyPaymentResponse,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use serde_json::{Value, json};
use support::{
    Facade, assert_error, bad_request_fields, error_info, link_request, merchant_uid,
    sandbox_and_facade, sandbox_payment, settings,
};
use tonic::{Code, Request, Status};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

/// Registers `amount` (and `currency`, when not empty) for `uid`.
async fn prepare(facade: &Facade, uid: &str, amount: &str, currency: &str) {
    facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: uid.to_owned(),
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        })
        .await
        .expect("prepare succeeds");
}

/// A payment made in the sandbox: `{"merchant_uid", "amount", …extra}`.
async fn pay(sandbox: &Sandbox, uid: &str, amount: Value, extra: Value) -> String {
    let mut body = json!({"merchant_uid": uid, "amount": amount});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    sandbox_payment(&sandbox.url(), body).await
}

async fn verify_call(
    facade: &Facade,
    imp_uid: &str,
    uid: &str,
) -> Result<VerifyPaymentResponse, Status> {
    facade
        .verification_client()
        .verify_payment(VerifyPaymentRequest {
            imp_uid: imp_uid.to_owned(),
            merchant_uid: uid.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn verify(facade: &Facade, imp_uid: &str, uid: &str) -> VerifyPaymentResponse {
    verify_call(facade, imp_uid, uid)
        .await
        .expect("a verdict is OK")
}

async fn get_payment(facade: &Facade, imp_uid: &str) -> Result<Payment, Status> {
    facade
        .verification_client()
        .get_payment(GetPaymentRequest {
            imp_uid: imp_uid.to_owned(),
        })
        .await
        .map(|answer| answer.into_inner().payment.expect("a payment"))
}

fn assert_verdict(answer: &VerifyPaymentResponse, verdict: Verdict) {
    assert_eq!(answer.verdict(), verdict, "{answer:#?}");
    assert!(
        !answer.detail.is_empty(),
        "a sentence says why: {answer:#?}"
    );
}

fn unix_now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(seconds).expect("fits")
}

// ------------------------------------------------------------------ verdicts

#[tokio::test]
async fn a_paid_payment_of_the_registered_amount_and_currency_is_verified() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("ok");
    prepare(&facade, &uid, "10000", "KRW").await;
    let imp_uid = pay(&sandbox, &uid, json!(10000), json!({"currency": "KRW"})).await;

    let answer = verify(&facade, &imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::Verified);
    let payment = answer.payment.as_ref().unwrap();
    assert_eq!(payment.imp_uid, imp_uid);
    assert_eq!(payment.amount, "10000");
    let registration = answer.prepared_payment.as_ref().expect("registration");
    assert_eq!(
        (
            registration.merchant_uid.as_str(),
            registration.amount.as_str()
        ),
        (uid.as_str(), "10000")
    );
    assert_eq!(registration.currency, "KRW");
}

#[tokio::test]
async fn without_a_merchant_uid_the_payments_own_order_is_checked() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("own");
    prepare(&facade, &uid, "5000", "").await;
    let imp_uid = pay(&sandbox, &uid, json!(5000), json!({})).await;

    assert_verdict(&verify(&facade, &imp_uid, "").await, Verdict::Verified);
}

#[tokio::test]
async fn a_payment_for_another_order_is_merchant_uid_mismatch_without_reading_a_registration() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let paid_for = merchant_uid("paid-for");
    let expected = merchant_uid("expected");
    prepare(&facade, &paid_for, "10000", "KRW").await;
    prepare(&facade, &expected, "10000", "KRW").await;
    let imp_uid = pay(&sandbox, &paid_for, json!(10000), json!({})).await;

    let answer = verify(&facade, &imp_uid, &expected).await;
    assert_verdict(&answer, Verdict::MerchantUidMismatch);
    assert!(answer.detail.contains(&paid_for), "{}", answer.detail);
    assert!(answer.detail.contains(&expected), "{}", answer.detail);
    assert_eq!(answer.prepared_payment, None);
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 0);
}

#[tokio::test]
async fn a_payment_whose_order_was_never_registered_is_not_prepared_and_still_ok() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("unregistered");
    let imp_uid = pay(&sandbox, &uid, json!(10000), json!({})).await;

    let answer = verify(&facade, &imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::NotPrepared);
    assert_eq!(answer.prepared_payment, None);
    assert!(answer.detail.contains(&uid), "{}", answer.detail);
    assert_eq!(
        sandbox.calls(Endpoint::GetPrepared),
        1,
        "the registration was looked up"
    );
}

#[tokio::test]
async fn an_amount_one_cent_below_the_registration_is_amount_mismatch() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("cent");
    prepare(&facade, &uid, "19.99", "USD").await;
    let imp_uid = pay(&sandbox, &uid, json!(19.98), json!({"currency": "USD"})).await;

    let answer = verify(&facade, &imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::AmountMismatch);
    assert_eq!(answer.payment.as_ref().unwrap().amount, "19.98");
    assert_eq!(answer.prepared_payment.as_ref().unwrap().amount, "19.99");
    assert!(
        answer.detail.contains("19.98 USD") && answer.detail.contains("19.99 USD"),
        "{}",
        answer.detail
    );
}

#[tokio::test]
async fn the_registered_amount_in_another_currency_is_currency_mismatch() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("currency");
    prepare(&facade, &uid, "100", "USD").await;
    let imp_uid = pay(&sandbox, &uid, json!(100), json!({"currency": "JPY"})).await;

    let answer = verify(&facade, &imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::CurrencyMismatch);
    assert!(
        answer.detail.contains("JPY") && answer.detail.contains("USD"),
        "{}",
        answer.detail
    );
    assert_eq!(answer.prepared_payment.as_ref().unwrap().currency, "USD");
}

#[tokio::test]
async fn a_registration_without_currency_verifies_a_payment_in_krw() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("no-currency");
    prepare(&facade, &uid, "10000", "").await;
    let imp_uid = pay(&sandbox, &uid, json!(10000), json!({"currency": "KRW"})).await;

    let answer = verify(&facade, &imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::Verified);
    assert_eq!(answer.prepared_payment.as_ref().unwrap().currency, "");
    assert_eq!(answer.payment.as_ref().unwrap().currency, "KRW");
}

#[tokio::test]
async fn a_ready_payment_of_the_wrong_amount_is_amount_mismatch_not_not_paid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("vbank");
    prepare(&facade, &uid, "10000", "KRW").await;
    let imp_uid = pay(&sandbox, &uid, json!(100), json!({"status": "ready"})).await;

    assert_verdict(
        &verify(&facade, &imp_uid, &uid).await,
        Verdict::AmountMismatch,
    );
}

#[tokio::test]
async fn a_payment_of_the_right_amount_that_is_not_paid_is_not_paid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    for status in ["ready", "failed", "cancelled"] {
        let uid = merchant_uid(status);
        prepare(&facade, &uid, "10000", "KRW").await;
        let imp_uid = pay(&sandbox, &uid, json!(10000), json!({"status": status})).await;

        let answer = verify(&facade, &imp_uid, &uid).await;
        assert_verdict(&answer, Verdict::NotPaid);
        assert!(answer.detail.contains(status), "{}", answer.detail);
        assert!(answer.prepared_payment.is_some(), "{status}");
    }
}

#[tokio::test]
async fn a_payment_made_through_a_payment_link_verifies() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("link");
    prepare(&facade, &uid, "50000", "KRW").await;
    let link = facade
        .link_client()
        .create_payment_link(link_request(&uid))
        .await
        .unwrap()
        .into_inner();

    let paid: Value = reqwest::Client::new()
        .post(format!("{}/pay", link.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let imp_uid = paid["imp_uid"].as_str().expect("imp_uid");

    let answer = verify(&facade, imp_uid, &uid).await;
    assert_verdict(&answer, Verdict::Verified);
    assert_eq!(answer.payment.as_ref().unwrap().amount, "50000");
}

#[tokio::test]
async fn a_registration_portone_refuses_to_show_is_an_error_not_a_verdict() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("forbidden");
    prepare(&facade, &uid, "10000", "KRW").await;
    let imp_uid = pay(&sandbox, &uid, json!(10000), json!({})).await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::status(403, -1, "권한이 없습니다."),
    );

    let status = verify_call(&facade, &imp_uid, &uid).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "UPSTREAM_FORBIDDEN");
}

// ------------------------------------------------------------------ PortOne answers the sandbox never gives

/// A PortOne (wiremock) that issues a token and answers `GET
/// /payments/imp_1` with `payment` and the registration of `order-1` with
/// `registration`.
async fn portone_with(payment: Value, registration: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/users/getToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {"access_token": "tok-1", "now": 1_700_000_000, "expired_at": 1_700_001_800}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/imp_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null, "response": payment
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/prepare/order-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null, "response": registration
        })))
        .mount(&server)
        .await;
    server
}

/// PortOne's `PaymentAnnotation` for `imp_1` / `order-1`, with `changes`.
fn annotation(changes: Value) -> Value {
    let mut payment = json!({
        "imp_uid": "imp_1", "merchant_uid": "order-1", "amount": 10000, "cancel_amount": 0,
        "currency": "KRW", "status": "paid", "pay_method": "card", "pg_provider": "kcp",
        "name": "Coat", "paid_at": 1_700_000_000, "failed_at": 0, "cancelled_at": 0,
        "sandbox": false, "receipt_url": "https://receipt.example/imp_1",
        "buyer_name": "홍길동", "buyer_tel": "010-1234-5678", "card_number": "536510******1234",
    });
    if let (Some(payment), Some(changes)) = (payment.as_object_mut(), changes.as_object()) {
        payment.extend(changes.clone());
    }
    payment
}

#[tokio::test]
async fn a_partially_cancelled_paid_payment_verifies_and_says_how_much_was_cancelled() {
    let server = portone_with(
        annotation(json!({"cancel_amount": 3000})),
        json!({"merchant_uid": "order-1", "amount": 10000, "currency": "KRW"}),
    )
    .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;

    let answer = verify(&facade, "imp_1", "order-1").await;
    assert_verdict(&answer, Verdict::Verified);
    assert_eq!(answer.payment.as_ref().unwrap().cancel_amount, "3000");
    assert!(
        answer
            .detail
            .contains("3000 KRW of it has since been cancelled"),
        "{}",
        answer.detail
    );
}

#[tokio::test]
async fn a_currency_written_in_another_case_is_the_same_currency() {
    let server = portone_with(
        annotation(json!({"currency": "usd", "amount": 19.99})),
        json!({"merchant_uid": "order-1", "amount": 19.99, "currency": "USD"}),
    )
    .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;

    assert_verdict(
        &verify(&facade, "imp_1", "order-1").await,
        Verdict::Verified,
    );
}

#[tokio::test]
async fn a_payment_in_a_status_this_version_does_not_know_is_not_paid() {
    let server = portone_with(
        annotation(json!({"status": "pending", "paid_at": 0})),
        json!({"merchant_uid": "order-1", "amount": 10000}),
    )
    .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;

    assert_verdict(&verify(&facade, "imp_1", "order-1").await, Verdict::NotPaid);
}

#[tokio::test]
async fn an_unknown_status_text_is_unspecified_and_kept_verbatim() {
    let server = portone_with(
        annotation(json!({"status": "pending", "paid_at": 0})),
        json!(null),
    )
    .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;

    let payment = get_payment(&facade, "imp_1").await.unwrap();
    assert_eq!(payment.status(), PaymentStatus::Unspecified);
    assert_eq!(payment.status_text, "pending");
    assert_eq!(payment.paid_at, None);
}

#[tokio::test]
async fn get_payment_passes_on_portones_fields_as_they_are() {
    let server = portone_with(annotation(json!({})), json!(null)).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;

    let payment = get_payment(&facade, "imp_1").await.unwrap();
    assert_eq!(
        payment,
        Payment {
            imp_uid: "imp_1".into(),
            merchant_uid: "order-1".into(),
            amount: "10000".into(),
            cancel_amount: "0".into(),
            currency: "KRW".into(),
            status: PaymentStatus::Paid.into(),
            status_text: "paid".into(),
            pay_method: "card".into(),
            pg_provider: "kcp".into(),
            name: "Coat".into(),
            paid_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0
            }),
            sandbox: false,
            receipt_url: "https://receipt.example/imp_1".into(),
        }
    );
}

// ------------------------------------------------------------------ GetPayment against the sandbox

#[tokio::test]
async fn get_payment_reads_amounts_as_exact_decimal_strings() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("read");
    let imp_uid = pay(&sandbox, &uid, json!(19.99), json!({"currency": "USD"})).await;
    let before = unix_now();

    let payment = get_payment(&facade, &imp_uid).await.unwrap();
    assert_eq!(payment.imp_uid, imp_uid);
    assert_eq!(payment.merchant_uid, uid);
    assert_eq!(payment.amount, "19.99");
    assert_eq!(payment.cancel_amount, "0");
    assert_eq!(payment.currency, "USD");
    assert_eq!(payment.status(), PaymentStatus::Paid);
    assert_eq!(payment.status_text, "paid");
    assert_eq!(payment.pay_method, "card");
    assert!(!payment.receipt_url.is_empty());
    let paid_at = payment.paid_at.expect("a paid payment has paid_at").seconds;
    assert!((before - 60..=before + 60).contains(&paid_at), "{paid_at}");
}

#[tokio::test]
async fn each_portone_status_maps_onto_the_enum_and_only_a_payment_made_has_paid_at() {
    let (sandbox, facade) = sandbox_and_facade().await;
    for (status, expected, paid) in [
        ("ready", PaymentStatus::Ready, false),
        ("paid", PaymentStatus::Paid, true),
        ("failed", PaymentStatus::Failed, false),
        ("cancelled", PaymentStatus::Cancelled, true),
    ] {
        let imp_uid = pay(
            &sandbox,
            &merchant_uid(status),
            json!(700),
            json!({"status": status}),
        )
        .await;
        let payment = get_payment(&facade, &imp_uid).await.unwrap();
        assert_eq!(payment.status(), expected, "{status}");
        assert_eq!(payment.status_text, status);
        assert_eq!(payment.paid_at.is_some(), paid, "{status}: {payment:?}");
    }
}

#[tokio::test]
async fn a_cancelled_payment_has_its_whole_amount_cancelled() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let imp_uid = pay(
        &sandbox,
        &merchant_uid("refund"),
        json!(12.5),
        json!({"status": "cancelled", "currency": "USD"}),
    )
    .await;

    let payment = get_payment(&facade, &imp_uid).await.unwrap();
    assert_eq!(
        (payment.amount.as_str(), payment.cancel_amount.as_str()),
        ("12.5", "12.5")
    );
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn an_unknown_imp_uid_is_not_found_with_portones_message() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let status = get_payment(&facade, "imp_000000000000").await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "404");
    assert_eq!(info.metadata["upstream_code"], "-1");
    assert_eq!(
        info.metadata["upstream_message"],
        "존재하지 않는 결제정보입니다."
    );
}

#[tokio::test]
async fn verifying_an_unknown_imp_uid_is_not_found() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = verify_call(&facade, "imp_000000000000", "order-1")
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 0);
}

// ------------------------------------------------------------------ validation

fn assert_nothing_reached(sandbox: &Sandbox) {
    for endpoint in Endpoint::ALL {
        assert_eq!(sandbox.calls(endpoint), 0, "{endpoint:?} was called");
    }
}

fn assert_invalid(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(status), fields, "{status:?}");
}

const BAD_IMP_UIDS: [&str; 7] = ["", "../x", "imp/1", "imp%2F1", "imp.1", "imp 1", "주문"];

#[tokio::test]
async fn an_imp_uid_that_could_leave_its_path_is_invalid_and_never_sent() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let too_long = "i".repeat(65);
    for imp_uid in BAD_IMP_UIDS.into_iter().chain([too_long.as_str()]) {
        let status = get_payment(&facade, imp_uid).await.unwrap_err();
        assert_invalid(&status, &["imp_uid"]);
        let status = verify_call(&facade, imp_uid, "").await.unwrap_err();
        assert_invalid(&status, &["imp_uid"]);
    }
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_bad_merchant_uid_to_verify_against_is_invalid_and_never_sent() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let too_long = "m".repeat(41);
    for uid in [too_long.as_str(), "order\n1", "..", "."] {
        let status = verify_call(&facade, "imp_1", uid).await.unwrap_err();
        assert_invalid(&status, &["merchant_uid"]);
    }
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_bad_imp_uid_and_merchant_uid_are_reported_together() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = verify_call(&facade, "imp/1", "order\u{7f}")
        .await
        .unwrap_err();
    assert_invalid(&status, &["imp_uid", "merchant_uid"]);
    assert_nothing_reached(&sandbox);
}

// ------------------------------------------------------------------ retries and the deadline

#[tokio::test]
async fn a_503_reading_the_payment_is_retried_and_answered() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let imp_uid = pay(&sandbox, &merchant_uid("retry"), json!(1000), json!({})).await;
    sandbox.inject(Endpoint::GetPayment, Fault::status(503, -1, "점검 중"));

    let payment = get_payment(&facade, &imp_uid).await.expect("OK");
    assert_eq!(payment.amount, "1000");
    assert_eq!(sandbox.calls(Endpoint::GetPayment), 2);
}

#[tokio::test]
async fn a_503_reading_the_registration_is_retried_and_the_payment_verified() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("retry-registration");
    prepare(&facade, &uid, "1000", "").await;
    let imp_uid = pay(&sandbox, &uid, json!(1000), json!({})).await;
    sandbox.inject(Endpoint::GetPrepared, Fault::status(503, -1, "점검 중"));

    assert_verdict(&verify(&facade, &imp_uid, &uid).await, Verdict::Verified);
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2);
}

#[tokio::test]
async fn one_deadline_covers_both_portone_reads() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("slow");
    prepare(&facade, &uid, "1000", "").await;
    let imp_uid = pay(&sandbox, &uid, json!(1000), json!({})).await;
    // Each read fits in the deadline alone; both do not.
    sandbox.inject(
        Endpoint::GetPayment,
        Fault::Delay(Duration::from_millis(700)),
    );
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(700)),
    );

    let mut request = Request::new(VerifyPaymentRequest {
        imp_uid,
        merchant_uid: uid,
    });
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let status = facade
        .verification_client()
        .verify_payment(request)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_error(&status, Code::DeadlineExceeded, "UPSTREAM_TIMEOUT");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    assert_eq!(
        sandbox.calls(Endpoint::GetPrepared),
        1,
        "the registration was read"
    );
}
