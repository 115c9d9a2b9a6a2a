//! Requests too large or too deep are refused before anything reaches
//! PortOne (DESIGN.md §1 and §7).

mod support;

use portone_facade::{
    pb::PreparePaymentRequest,
    sandbox::{Endpoint, Sandbox},
};
use prost_types::{ListValue, Struct, Value, value::Kind};
use support::{Facade, bad_request_fields, link_request};
use tonic::Code;

/// `custom_data` holding one key whose value is `depth - 1` nested lists,
/// so that the whole is `depth` objects or arrays deep.
fn nested(depth: usize) -> Struct {
    let mut value = Value {
        kind: Some(Kind::StringValue("leaf".into())),
    };
    for _ in 1..depth {
        value = Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![value],
            })),
        };
    }
    Struct {
        fields: [("order".to_owned(), value)].into_iter().collect(),
    }
}

/// `custom_data` of about `bytes` bytes as JSON.
fn large(bytes: usize) -> Struct {
    Struct {
        fields: [(
            "note".to_owned(),
            Value {
                kind: Some(Kind::StringValue("x".repeat(bytes))),
            },
        )]
        .into_iter()
        .collect(),
    }
}

async fn create_with(custom_data: Struct) -> (Sandbox, Result<(), tonic::Status>) {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let mut request = link_request("limits-1");
    request.custom_data = Some(custom_data);
    let outcome = facade
        .link_client()
        .create_payment_link(request)
        .await
        .map(drop);
    (sandbox, outcome)
}

#[tokio::test]
async fn custom_data_sixteen_deep_is_accepted() {
    let (_, outcome) = create_with(nested(16)).await;
    outcome.unwrap();
}

#[tokio::test]
async fn custom_data_seventeen_deep_is_invalid_and_never_sent() {
    let (sandbox, outcome) = create_with(nested(17)).await;
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(&status), ["custom_data"]);
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 0);
}

#[tokio::test]
async fn custom_data_over_64_kib_is_invalid_and_never_sent() {
    let (sandbox, outcome) = create_with(large(64 * 1024 + 1)).await;
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_request_fields(&status), ["custom_data"]);
    assert_eq!(sandbox.calls(Endpoint::CreateLink), 0);
}

#[tokio::test]
async fn custom_data_just_under_64_kib_is_accepted() {
    let (_, outcome) = create_with(large(60 * 1024)).await;
    outcome.unwrap();
}

#[tokio::test]
async fn a_request_message_over_256_kib_is_refused_before_it_is_decoded() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    let status = facade
        .prepare_client()
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "x".repeat(300 * 1024),
            amount: "1000".into(),
            currency: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{status:?}"
    );
    assert_eq!(sandbox.calls(Endpoint::PreparePayment), 0);
    assert_eq!(sandbox.calls(Endpoint::GetToken), 0);
}
