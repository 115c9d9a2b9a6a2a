//! Invalid requests are INVALID_ARGUMENT with a BadRequest naming each bad
//! field, and never reach PortOne.

mod support;

use portone_facade::{
    pb::{
        Buyer, DisablePaymentLinkRequest, GetPreparedPaymentRequest, PayMethod,
        PreparePaymentRequest, UpdatePreparedPaymentRequest,
    },
    sandbox::{Endpoint, Sandbox},
};
use support::{bad_request_fields, link_request, sandbox_and_facade};
use tonic::{Code, Status};

fn assert_invalid(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(status), fields, "{status:?}");
    for field in fields {
        assert!(
            status.message().contains(field),
            "message names {field}: {}",
            status.message()
        );
    }
}

fn assert_nothing_reached(sandbox: &Sandbox) {
    for endpoint in Endpoint::ALL {
        assert_eq!(sandbox.calls(endpoint), 0, "{endpoint:?} was called");
    }
}

async fn prepare_status(amount: &str, merchant_uid: &str, currency: &str) -> (Sandbox, Status) {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: merchant_uid.into(),
            amount: amount.into(),
            currency: currency.into(),
        })
        .await
        .unwrap_err();
    (sandbox, status)
}

#[tokio::test]
async fn every_malformed_amount_is_invalid_and_never_sent() {
    for amount in [
        "",
        "0",
        "-1",
        "+1",
        "1e3",
        " 1",
        "01",
        "1.2345",
        "1000000000000000",
        "19,99",
        "NaN",
    ] {
        let (sandbox, status) = prepare_status(amount, "order-1", "").await;
        assert_invalid(&status, &["amount"]);
        assert_nothing_reached(&sandbox);
    }
}

#[tokio::test]
async fn every_bad_field_is_reported_at_once() {
    let (sandbox, status) = prepare_status("-1", "", "krw").await;
    assert_invalid(&status, &["merchant_uid", "amount", "currency"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_merchant_uid_over_40_characters_is_invalid() {
    let (sandbox, status) = prepare_status("100", &"가".repeat(41), "").await;
    assert_invalid(&status, &["merchant_uid"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_merchant_uid_with_control_characters_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "order\n1".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, &["merchant_uid"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn an_update_with_a_bad_amount_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .prepare_client()
        .update_prepared_payment(UpdatePreparedPaymentRequest {
            merchant_uid: "order-1".into(),
            amount: "10.0001".into(),
            currency: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, &["amount"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_link_id_that_could_leave_its_path_is_invalid() {
    for link_id in ["", "../payments", "a/b", "a?b", "%2e%2e"] {
        let (sandbox, facade) = sandbox_and_facade().await;
        let status = facade
            .link_client()
            .disable_payment_link(DisablePaymentLinkRequest {
                link_id: link_id.into(),
            })
            .await
            .unwrap_err();
        assert_invalid(&status, &["link_id"]);
        assert_nothing_reached(&sandbox);
    }
}

#[tokio::test]
async fn a_link_missing_every_required_field_names_them_all() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .link_client()
        .create_payment_link(portone_facade::pb::CreatePaymentLinkRequest::default())
        .await
        .unwrap_err();
    // The facade in the tests has a default user_code, so it is not missing.
    assert_invalid(
        &status,
        &[
            "title",
            "amount",
            "merchant_uid",
            "name",
            "currency",
            "buyer.tel",
            "expire_at",
            "pay_methods",
        ],
    );
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_link_with_bad_optional_fields_names_them() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut request = link_request("order-1");
    request.amount = "100.5".into();
    request.tax_free = "0.5".into();
    request.language = "jp".into();
    request.display_language = "KO".into();
    request.notice_url = "ftp://merchant.example/hook".into();
    request.pay_methods.push(PayMethod {
        pg: "html5_inicis".into(),
        pay_method: String::new(),
        label: "계좌이체".into(),
    });
    let status = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap_err();
    assert_invalid(
        &status,
        &[
            "amount",
            "tax_free",
            "language",
            "display_language",
            "notice_url",
            "pay_methods[1].pay_method",
        ],
    );
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_tax_free_part_above_the_amount_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut request = link_request("order-1");
    request.tax_free = "60000".into();
    let status = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap_err();
    assert_invalid(&status, &["tax_free"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_link_that_expires_in_the_past_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut request = link_request("order-1");
    request.expire_at = Some(prost_types::Timestamp {
        seconds: 1_600_000_000,
        nanos: 0,
    });
    let status = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap_err();
    assert_invalid(&status, &["expire_at"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_buyer_without_a_phone_number_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut request = link_request("order-1");
    request.buyer = Some(Buyer {
        name: "홍길동".into(),
        ..Buyer::default()
    });
    let status = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap_err();
    assert_invalid(&status, &["buyer.tel"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn custom_data_with_a_non_finite_number_is_invalid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut request = link_request("order-1");
    request.custom_data = Some(prost_types::Struct {
        fields: [(
            "ratio".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
            },
        )]
        .into(),
    });
    let status = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap_err();
    assert_invalid(&status, &["custom_data"]);
    assert_nothing_reached(&sandbox);
}

#[tokio::test]
async fn a_link_without_user_code_on_a_server_without_default_is_invalid() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = support::settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.user_code = None;
    let facade = support::Facade::start(settings).await;
    let status = facade
        .link_client()
        .create_payment_link(link_request("order-1"))
        .await
        .unwrap_err();
    assert_invalid(&status, &["user_code"]);
    assert_nothing_reached(&sandbox);
}
