//! PaymentLinkService against the sandbox.

mod support;

use portone_facade::{pb::DisablePaymentLinkRequest, sandbox::Endpoint};
use support::{assert_error, link_request, merchant_uid, sandbox_and_facade};
use tonic::Code;

#[tokio::test]
async fn create_returns_the_short_url_its_id_and_the_expiry_to_the_second() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let request = link_request(&merchant_uid("link"));
    let expire_seconds = request.expire_at.unwrap().seconds;

    let created = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap()
        .into_inner();
    assert!(
        created.url.ends_with(&format!("/{}", created.link_id)),
        "{created:?}"
    );
    assert_eq!(
        created.expire_at,
        Some(prost_types::Timestamp {
            seconds: expire_seconds,
            nanos: 0
        })
    );
    let link = sandbox
        .link(&created.link_id)
        .expect("sandbox has the link");
    assert_eq!(link.expired_at, expire_seconds);
    assert!(!link.disabled);
}

#[tokio::test]
async fn an_empty_user_code_takes_the_server_default() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let created = facade
        .link_client()
        .create_payment_link(link_request(&merchant_uid("default")))
        .await
        .unwrap()
        .into_inner();
    let link = sandbox.link(&created.link_id).unwrap();
    assert_eq!(link.payment_info["user_code"], "imp12345678");
}

#[tokio::test]
async fn disable_turns_the_link_off() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.link_client();
    let created = client
        .create_payment_link(link_request(&merchant_uid("off")))
        .await
        .unwrap()
        .into_inner();

    client
        .disable_payment_link(DisablePaymentLinkRequest {
            link_id: created.link_id.clone(),
        })
        .await
        .unwrap();
    assert!(sandbox.link(&created.link_id).unwrap().disabled);
}

#[tokio::test]
async fn disabling_an_unknown_link_is_not_found() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    let status = facade
        .link_client()
        .disable_payment_link(DisablePaymentLinkRequest {
            link_id: "nosuchlink".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn a_link_creation_that_may_have_reached_portone_is_not_repeated() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject(
        Endpoint::CreateLink,
        portone_facade::sandbox::Fault::status(503, -1, "점검 중"),
    );
    let status = facade
        .link_client()
        .create_payment_link(link_request(&merchant_uid("once")))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 1);
}
