//! The exact REST requests the facade sends, checked against wiremock.

mod support;

use portone_facade::pb::{
    DisablePaymentLinkRequest, GetPreparedPaymentRequest, PreparePaymentRequest,
    UpdatePreparedPaymentRequest, Verdict, VerifyPaymentRequest,
};
use serde_json::{Value, json};
use support::{Facade, link_request, settings};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

async fn portone() -> MockServer {
    portone_at("").await
}

/// A PortOne whose API lives under `prefix` (e.g. behind an egress proxy).
async fn portone_at(prefix: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{prefix}/users/getToken")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {"access_token": "tok-1", "now": 1_700_000_000, "expired_at": 1_700_001_800}
        })))
        .mount(&server)
        .await;
    server
}

fn prepared(uid: &str, amount: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "code": 0, "message": null, "response": {"merchant_uid": uid, "amount": amount}
    }))
}

/// Requests that reached `server`, other than getToken.
async fn api_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .into_iter()
        .filter(|r| r.url.path() != "/users/getToken")
        .collect()
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn get_token_sends_the_credentials_as_json() {
    let server = portone().await;
    Mock::given(method("GET"))
        .respond_with(prepared("a", json!(1)))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "key-1", "secret-1")).await;
    facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "a".into(),
        })
        .await
        .unwrap();

    let token_calls: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/users/getToken")
        .collect();
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].method.as_str(), "POST");
    assert!(header(&token_calls[0], "content-type").starts_with("application/json"));
    let body: Value = serde_json::from_slice(&token_calls[0].body).unwrap();
    assert_eq!(body, json!({"imp_key": "key-1", "imp_secret": "secret-1"}));
}

#[tokio::test]
async fn prepare_posts_the_amount_as_the_exact_json_number_with_a_bearer_token() {
    let server = portone().await;
    Mock::given(method("POST"))
        .and(path("/payments/prepare"))
        .respond_with(prepared("order-1", json!(123_456_789_012.345)))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    let response = facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "order-1".into(),
            amount: "123456789012.345".into(),
            currency: "KRW".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.prepared_payment.unwrap().amount,
        "123456789012.345"
    );

    let requests = api_requests(&server).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(header(request, "authorization"), "Bearer tok-1");
    assert!(header(request, "content-type").starts_with("application/json"));
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"merchant_uid":"order-1","amount":123456789012.345,"currency":"KRW"}"#
    );
}

#[tokio::test]
async fn prepare_without_currency_leaves_it_out_and_keeps_trailing_zeros() {
    let server = portone().await;
    Mock::given(method("POST"))
        .and(path("/payments/prepare"))
        .respond_with(prepared("order-2", json!(19.9)))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "order-2".into(),
            amount: "19.90".into(),
            currency: String::new(),
        })
        .await
        .unwrap();
    let requests = api_requests(&server).await;
    assert_eq!(
        std::str::from_utf8(&requests[0].body).unwrap(),
        r#"{"merchant_uid":"order-2","amount":19.90}"#
    );
}

#[tokio::test]
async fn update_puts_the_same_body_shape() {
    let server = portone().await;
    Mock::given(method("PUT"))
        .and(path("/payments/prepare"))
        .respond_with(prepared("order-3", json!(5000)))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    facade
        .prepare_client()
        .update_prepared_payment(UpdatePreparedPaymentRequest {
            merchant_uid: "order-3".into(),
            amount: "5000".into(),
            currency: "KRW".into(),
        })
        .await
        .unwrap();
    let requests = api_requests(&server).await;
    assert_eq!(requests[0].method.as_str(), "PUT");
    assert_eq!(header(&requests[0], "authorization"), "Bearer tok-1");
    assert_eq!(
        std::str::from_utf8(&requests[0].body).unwrap(),
        r#"{"merchant_uid":"order-3","amount":5000,"currency":"KRW"}"#
    );
}

#[tokio::test]
async fn get_percent_encodes_the_merchant_uid_as_one_path_segment() {
    let cases = [
        ("order/1", "/payments/prepare/order%2F1"),
        ("a?b=c", "/payments/prepare/a%3Fb=c"),
        ("a#frag", "/payments/prepare/a%23frag"),
        ("주문 1", "/payments/prepare/%EC%A3%BC%EB%AC%B8%201"),
        ("100%", "/payments/prepare/100%25"),
        ("a.b-c_d~e", "/payments/prepare/a.b-c_d~e"),
    ];
    for (uid, expected_path) in cases {
        let server = portone().await;
        Mock::given(method("GET"))
            .respond_with(prepared(uid, json!(1000)))
            .mount(&server)
            .await;
        let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
        let read = facade
            .prepare_client()
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: uid.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.prepared_payment.unwrap().merchant_uid, uid);
        let requests = api_requests(&server).await;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].url.path(), expected_path, "{uid:?}");
        assert_eq!(requests[0].url.query(), None, "{uid:?}");
        assert_eq!(header(&requests[0], "authorization"), "Bearer tok-1");
    }
}

#[tokio::test]
async fn upstream_amounts_are_read_as_the_shortest_exact_decimal() {
    for (json_amount, expected) in [("10000.0", "10000"), ("19.99", "19.99"), ("0.1", "0.1")] {
        let server = portone().await;
        let body = format!(
            r#"{{"code":0,"message":null,"response":{{"merchant_uid":"m","amount":{json_amount}}}}}"#
        );
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
        let read = facade
            .prepare_client()
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: "m".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            read.prepared_payment.unwrap().amount,
            expected,
            "{json_amount}"
        );
    }
}

#[tokio::test]
async fn link_creation_sends_payment_info_as_a_json_string_and_expiry_in_unix_seconds() {
    let server = portone().await;
    Mock::given(method("POST"))
        .and(path("/api/supplements/v1/link/payment"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"shortenedUrl": "https://impay.link/4bdf239e"})),
        )
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    let mut request = link_request("order-9");
    request.tax_free = "5000".into();
    request.custom_data = Some(prost_types::Struct {
        fields: [(
            "cart".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("A-7".into())),
            },
        )]
        .into(),
    });
    let expire_seconds = request.expire_at.unwrap().seconds;

    let created = facade
        .link_client()
        .create_payment_link(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.url, "https://impay.link/4bdf239e");
    assert_eq!(created.link_id, "4bdf239e");

    let requests = api_requests(&server).await;
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(header(sent, "authorization"), "Bearer tok-1");
    assert_eq!(
        header(sent, "content-type"),
        "application/json;charset=UTF-8"
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["expired_at"], json!(expire_seconds));
    let info: Value =
        serde_json::from_str(body["payment_info"].as_str().expect("a JSON string")).unwrap();
    assert_eq!(
        info,
        json!({
            "title": "겨울 코트",
            "user_code": "imp12345678",
            "amount": 50000,
            "merchant_uid": "order-9",
            "name": "Winter coat",
            "tax_free": 5000,
            "currency": "KRW",
            "language": "ko",
            "buyer_name": "홍길동",
            "buyer_tel": "010-1234-5678",
            "buyer_email": "buyer@example.com",
            "custom_data": {"cart": "A-7"},
            "notice_url": "https://merchant.example/portone/webhook",
            "pay_methods": [{"pg": "html5_inicis", "pay_method": "card", "label": "신용카드"}]
        })
    );
}

#[tokio::test]
async fn disabling_puts_to_the_link_path_with_a_bearer_token() {
    let server = portone().await;
    Mock::given(method("PUT"))
        .and(path("/api/supplements/v1/link/payment/4bdf239e"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    facade
        .link_client()
        .disable_payment_link(DisablePaymentLinkRequest {
            link_id: "4bdf239e".into(),
        })
        .await
        .unwrap();
    let requests = api_requests(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method.as_str(), "PUT");
    assert_eq!(header(&requests[0], "authorization"), "Bearer tok-1");
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_it() {
    let server = portone_at("/egress/portone").await;
    Mock::given(method("GET"))
        .and(path("/egress/portone/payments/prepare/order%2F7"))
        .respond_with(prepared("order/7", json!(70)))
        .mount(&server)
        .await;
    let base = format!("{}/egress/portone/", server.uri());
    let facade = Facade::start(settings(&base, "k", "s")).await;
    let read = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "order/7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.prepared_payment.unwrap().amount, "70");
}

#[tokio::test]
async fn verify_reads_the_payment_then_the_registration_of_its_order_with_a_bearer_token() {
    let server = portone().await;
    Mock::given(method("GET"))
        .and(path("/payments/imp_448280090638"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {
                "imp_uid": "imp_448280090638", "merchant_uid": "주문/1", "amount": 19.99,
                "cancel_amount": 0, "currency": "USD", "status": "paid", "sandbox": false
            }
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/prepare/%EC%A3%BC%EB%AC%B8%2F1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {"merchant_uid": "주문/1", "amount": 19.99, "currency": "USD"}
        })))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    let answer = facade
        .verification_client()
        .verify_payment(VerifyPaymentRequest {
            imp_uid: "imp_448280090638".into(),
            merchant_uid: "주문/1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdict(), Verdict::Verified, "{answer:?}");

    let requests = api_requests(&server).await;
    let sent: Vec<(&str, &str, Option<&str>)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.url.path(), r.url.query()))
        .collect();
    // The payment's own merchant_uid (from PortOne), encoded as one path
    // segment; no include_sandbox, so a test-channel payment stays unknown.
    assert_eq!(
        sent,
        [
            ("GET", "/payments/imp_448280090638", None),
            ("GET", "/payments/prepare/%EC%A3%BC%EB%AC%B8%2F1", None),
        ]
    );
    for request in &requests {
        assert_eq!(header(request, "authorization"), "Bearer tok-1");
        assert!(request.body.is_empty(), "a GET has no body");
    }
}
