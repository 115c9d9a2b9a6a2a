//! The shared access token: reuse, single flight, refresh on 401, refusal.

mod support;

use portone_facade::{
    pb::{GetPreparedPaymentRequest, PreparePaymentRequest},
    sandbox::{Endpoint, Sandbox},
};
use support::{Facade, assert_error, error_info, merchant_uid, sandbox_and_facade, settings};
use tonic::Code;

async fn prepare(facade: &Facade, uid: &str) {
    facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: uid.into(),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_token_is_reused_across_calls() {
    let (sandbox, facade) = sandbox_and_facade().await;
    for i in 0..5 {
        prepare(&facade, &merchant_uid(&format!("reuse{i}"))).await;
    }
    assert_eq!(sandbox.calls(Endpoint::GetToken), 1);
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 5);
}

#[tokio::test]
async fn two_hundred_concurrent_calls_on_a_cold_token_fetch_it_once() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let mut client = facade.prepare_client();
            tokio::spawn(async move {
                client
                    .prepare_payment(PreparePaymentRequest {
                        merchant_uid: format!("cold-{i}"),
                        amount: "1000".into(),
                        currency: String::new(),
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sandbox.calls(Endpoint::GetToken), 1);
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 200);
}

#[tokio::test]
async fn a_token_revoked_mid_life_is_refreshed_once_and_the_call_retried_once() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("revoked");
    prepare(&facade, &uid).await;
    sandbox.revoke_tokens();

    facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest { merchant_uid: uid })
        .await
        .unwrap();
    assert_eq!(sandbox.calls(Endpoint::GetToken), 2);
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 2);
}

#[tokio::test]
async fn refused_credentials_are_internal_upstream_auth_failed_without_the_secret() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::start(settings(
        &sandbox.url(),
        "wrong-key-4711",
        "wrong-secret-0815",
    ))
    .await;
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "m".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Internal, "UPSTREAM_AUTH_FAILED");
    let info = error_info(&status);
    assert_eq!(info.metadata["http_status"], "401");
    assert_eq!(
        info.metadata["upstream_message"],
        "인증에 실패하였습니다. API키와 secret을 확인하세요."
    );
    let everything = format!("{status:?} {info:?}");
    for secret in ["wrong-key-4711", "wrong-secret-0815"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert_eq!(
        sandbox.calls(Endpoint::GetPrepared),
        0,
        "no API call without a token"
    );
}
