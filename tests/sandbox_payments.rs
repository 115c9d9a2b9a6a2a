//! The sandbox's payments, called over HTTP as a caller testing its checkout
//! would: `POST /__sandbox/payments`, a link's `POST {shortenedUrl}/pay`, and
//! PortOne's `GET /payments/{imp_uid}` with its envelope and statuses.

mod support;

use std::time::Duration;

use portone_facade::sandbox::{Endpoint, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use support::{link_request, merchant_uid, portone::get_token, sandbox_and_facade};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

async fn token(sandbox: &Sandbox) -> String {
    get_token(
        &reqwest::Client::new(),
        &sandbox.url(),
        sandbox.imp_key(),
        sandbox.imp_secret(),
        TIMEOUT,
    )
    .await
    .unwrap()
}

/// `GET /payments/{imp_uid}` (plus `query`) with `authorization`: status and body.
async fn read(sandbox: &Sandbox, imp_uid_and_query: &str, authorization: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .get(format!("{}/payments/{imp_uid_and_query}", sandbox.url()))
        .header("authorization", authorization)
        .timeout(TIMEOUT)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// `POST` to `url` with `body`: status and body.
async fn post(url: &str, body: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(TIMEOUT)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn a_payment_made_is_read_back_in_portones_envelope() {
    let sandbox = sandbox().await;
    let (status, made) = post(
        &format!("{}/__sandbox/payments", sandbox.url()),
        r#"{"merchant_uid": "order-1", "amount": 19.99, "currency": "USD", "status": "ready"}"#,
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let imp_uid = made["imp_uid"].as_str().unwrap();
    assert!(
        imp_uid.starts_with("imp_") && imp_uid.len() == 16,
        "{imp_uid}"
    );

    let bearer = format!("Bearer {}", token(&sandbox).await);
    let (status, envelope) = read(&sandbox, imp_uid, &bearer).await;
    assert_eq!(status, 200);
    assert_eq!(
        (envelope["code"].clone(), envelope["message"].clone()),
        (json!(0), Value::Null)
    );
    let payment = &envelope["response"];
    assert_eq!(payment["imp_uid"], imp_uid);
    assert_eq!(payment["merchant_uid"], "order-1");
    assert_eq!(payment["amount"], json!(19.99));
    assert_eq!(payment["cancel_amount"], json!(0));
    assert_eq!(payment["currency"], "USD");
    assert_eq!(payment["status"], "ready");
    assert_eq!(payment["paid_at"], json!(0));
    assert!(
        payment["buyer_name"].is_string(),
        "as PortOne, with the buyer: {payment}"
    );
}

#[tokio::test]
async fn a_payment_defaults_to_paid_in_krw() {
    let sandbox = sandbox().await;
    let (_, made) = post(
        &format!("{}/__sandbox/payments", sandbox.url()),
        r#"{"merchant_uid": "order-2", "amount": 10000}"#,
    )
    .await;
    let bearer = format!("Bearer {}", token(&sandbox).await);
    let (_, envelope) = read(&sandbox, made["imp_uid"].as_str().unwrap(), &bearer).await;
    assert_eq!(envelope["response"]["status"], "paid");
    assert_eq!(envelope["response"]["currency"], "KRW");
    assert!(envelope["response"]["paid_at"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn an_unknown_imp_uid_is_404_with_code_minus_one_and_a_korean_message() {
    let sandbox = sandbox().await;
    let bearer = format!("Bearer {}", token(&sandbox).await);
    let (status, envelope) = read(&sandbox, "imp_000000000000", &bearer).await;
    assert_eq!(status, 404);
    assert_eq!(
        envelope,
        json!({"code": -1, "message": "존재하지 않는 결제정보입니다.", "response": null})
    );
}

#[tokio::test]
async fn reading_a_payment_needs_a_valid_token() {
    let sandbox = sandbox().await;
    let (_, made) = post(
        &format!("{}/__sandbox/payments", sandbox.url()),
        r#"{"merchant_uid": "order-3", "amount": 1}"#,
    )
    .await;
    let imp_uid = made["imp_uid"].as_str().unwrap();
    for refused in ["", "Bearer not-a-token"] {
        let (status, envelope) = read(&sandbox, imp_uid, refused).await;
        assert_eq!(status, 401, "{refused:?}");
        assert_eq!(envelope["code"], json!(-1));
    }
    assert_eq!(sandbox.calls(Endpoint::GetPayment), 2);
}

#[tokio::test]
async fn the_include_sandbox_flag_is_accepted() {
    let sandbox = sandbox().await;
    let (_, made) = post(
        &format!("{}/__sandbox/payments", sandbox.url()),
        r#"{"merchant_uid": "order-4", "amount": 1}"#,
    )
    .await;
    let bearer = format!("Bearer {}", token(&sandbox).await);
    let imp_uid = made["imp_uid"].as_str().unwrap();
    for flag in ["true", "false"] {
        let (status, envelope) = read(
            &sandbox,
            &format!("{imp_uid}?include_sandbox={flag}"),
            &bearer,
        )
        .await;
        assert_eq!(status, 200, "{flag}: {envelope}");
        assert_eq!(envelope["response"]["imp_uid"], imp_uid);
    }
}

#[tokio::test]
async fn a_junk_payment_is_refused_with_400_saying_why() {
    let sandbox = sandbox().await;
    let url = format!("{}/__sandbox/payments", sandbox.url());
    let too_long = format!(r#"{{"merchant_uid": "{}", "amount": 1}}"#, "m".repeat(41));
    for junk in [
        "not json",
        "[]",
        r#"{"amount": 1}"#,
        r#"{"merchant_uid": "o"}"#,
        r#"{"merchant_uid": "", "amount": 1}"#,
        too_long.as_str(),
        r#"{"merchant_uid": "o", "amount": "1000"}"#,
        r#"{"merchant_uid": "o", "amount": 0}"#,
        r#"{"merchant_uid": "o", "amount": -5}"#,
        r#"{"merchant_uid": "o", "amount": 1.2345}"#,
        r#"{"merchant_uid": "o", "amount": 1, "currency": "usd"}"#,
        r#"{"merchant_uid": "o", "amount": 1, "currency": 840}"#,
        r#"{"merchant_uid": "o", "amount": 1, "status": "done"}"#,
        r#"{"merchant_uid": "o", "amount": 1, "curency": "USD"}"#,
    ] {
        let (status, answer) = post(&url, junk).await;
        assert_eq!(status, 400, "{junk}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{junk}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_payment_link_is_paid_once_for_its_amount_and_order() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let uid = merchant_uid("link");
    let link = facade
        .link_client()
        .create_payment_link(link_request(&uid))
        .await
        .unwrap()
        .into_inner();

    let (status, paid) = post(&format!("{}/pay", link.url), "").await;
    assert_eq!(status, 200, "{paid}");
    let imp_uid = paid["imp_uid"].as_str().unwrap();
    assert_eq!(
        sandbox.link(&link.link_id).unwrap().paid_with.as_deref(),
        Some(imp_uid)
    );
    let bearer = format!("Bearer {}", token(&sandbox).await);
    let (_, envelope) = read(&sandbox, imp_uid, &bearer).await;
    let payment = &envelope["response"];
    assert_eq!(
        (
            payment["merchant_uid"].as_str(),
            payment["amount"].clone(),
            payment["currency"].as_str(),
            payment["status"].as_str()
        ),
        (Some(uid.as_str()), json!(50000), Some("KRW"), Some("paid"))
    );

    let (status, again) = post(&format!("{}/pay", link.url), "").await;
    assert_eq!(status, 409, "{again}");
}

#[tokio::test]
async fn a_disabled_or_unknown_link_cannot_be_paid() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.link_client();
    let link = client
        .create_payment_link(link_request(&merchant_uid("off")))
        .await
        .unwrap()
        .into_inner();
    client
        .disable_payment_link(portone_facade::pb::DisablePaymentLinkRequest {
            link_id: link.link_id.clone(),
        })
        .await
        .unwrap();

    let (status, answer) = post(&format!("{}/pay", link.url), "").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(sandbox.link(&link.link_id).unwrap().paid_with, None);
    let (status, _) = post(&format!("{}/link/nosuchlink/pay", sandbox.url()), "").await;
    assert_eq!(status, 404);
}
