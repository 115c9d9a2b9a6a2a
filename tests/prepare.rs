//! PaymentPrepareService against the sandbox: happy paths and idempotency.

mod support;

use portone_facade::{
    pb::{
        GetPreparedPaymentRequest, PreparePaymentRequest, PreparedPayment,
        UpdatePreparedPaymentRequest,
    },
    sandbox::{Endpoint, Fault},
};
use support::{assert_error, error_info, merchant_uid, sandbox_and_facade};
use tonic::Code;

fn prepare(uid: &str, amount: &str, currency: &str) -> PreparePaymentRequest {
    PreparePaymentRequest {
        merchant_uid: uid.to_owned(),
        amount: amount.to_owned(),
        currency: currency.to_owned(),
    }
}

#[tokio::test]
async fn prepare_registers_the_amount_and_get_reads_it_back() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("order");

    let prepared = client
        .prepare_payment(prepare(&uid, "10000", "KRW"))
        .await
        .unwrap()
        .into_inner();
    assert!(!prepared.already_prepared);
    let expected = PreparedPayment {
        merchant_uid: uid.clone(),
        amount: "10000".into(),
        currency: "KRW".into(),
    };
    assert_eq!(prepared.prepared_payment, Some(expected.clone()));

    let read = client
        .get_prepared_payment(GetPreparedPaymentRequest { merchant_uid: uid })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.prepared_payment, Some(expected));
}

#[tokio::test]
async fn fractional_amounts_come_back_exactly() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("usd");
    let prepared = client
        .prepare_payment(prepare(&uid, "19.99", "USD"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prepared.prepared_payment.unwrap().amount, "19.99");
}

#[tokio::test]
async fn currency_is_empty_when_portone_has_none() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("nocur");
    let prepared = client
        .prepare_payment(prepare(&uid, "5000", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prepared.prepared_payment.unwrap().currency, "");
}

#[tokio::test]
async fn update_changes_the_registered_amount() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("update");
    client
        .prepare_payment(prepare(&uid, "10000", "KRW"))
        .await
        .unwrap();

    let updated = client
        .update_prepared_payment(UpdatePreparedPaymentRequest {
            merchant_uid: uid.clone(),
            amount: "12000".into(),
            currency: "KRW".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.prepared_payment.unwrap().amount, "12000");
    let read = client
        .get_prepared_payment(GetPreparedPaymentRequest { merchant_uid: uid })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.prepared_payment.unwrap().amount, "12000");
}

#[tokio::test]
async fn unknown_merchant_uid_is_not_found() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: merchant_uid("never"),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "404");
    assert_eq!(
        info.metadata["upstream_message"],
        "사전등록된 결제정보가 존재하지 않습니다."
    );
}

#[tokio::test]
async fn updating_an_unknown_merchant_uid_is_not_found() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .prepare_client()
        .update_prepared_payment(UpdatePreparedPaymentRequest {
            merchant_uid: merchant_uid("never"),
            amount: "100".into(),
            currency: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn preparing_again_with_the_same_amount_succeeds_as_already_prepared() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("twice");
    client
        .prepare_payment(prepare(&uid, "19.9", "USD"))
        .await
        .unwrap();

    // The same value written differently is the same amount.
    let again = client
        .prepare_payment(prepare(&uid, "19.90", "USD"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_prepared);
    assert_eq!(again.prepared_payment.unwrap().amount, "19.9");
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1);
}

#[tokio::test]
async fn preparing_again_with_another_amount_is_already_exists_with_the_registered_amount() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("other");
    client
        .prepare_payment(prepare(&uid, "10000", "KRW"))
        .await
        .unwrap();

    let status = client
        .prepare_payment(prepare(&uid, "9000", "KRW"))
        .await
        .unwrap_err();
    assert_error(&status, Code::AlreadyExists, "ALREADY_EXISTS");
    let info = error_info(&status);
    assert_eq!(info.metadata["registered_amount"], "10000");
    assert_eq!(info.metadata["registered_currency"], "KRW");
    assert_eq!(info.metadata["upstream_code"], "1");
    assert!(info.metadata["upstream_message"].contains("이미 등록된 merchant_uid"));
}

#[tokio::test]
async fn preparing_again_with_another_currency_is_already_exists() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    let uid = merchant_uid("cur");
    client
        .prepare_payment(prepare(&uid, "10000", ""))
        .await
        .unwrap();

    let status = client
        .prepare_payment(prepare(&uid, "10000", "KRW"))
        .await
        .unwrap_err();
    assert_error(&status, Code::AlreadyExists, "ALREADY_EXISTS");
    assert_eq!(error_info(&status).metadata["registered_currency"], "");
}

#[tokio::test]
async fn a_prepare_whose_answer_was_lost_is_retried_and_reported_as_success() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("lost");
    // PortOne registers the amount, but its answer never arrives.
    sandbox.inject(Endpoint::PreparePayment, Fault::LoseAnswer);

    let prepared = facade
        .prepare_client()
        .prepare_payment(prepare(&uid, "777", "KRW"))
        .await
        .unwrap()
        .into_inner();
    assert!(prepared.already_prepared);
    assert_eq!(prepared.prepared_payment.unwrap().amount, "777");
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 2);
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1);
}
