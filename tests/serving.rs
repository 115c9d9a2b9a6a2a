//! Health and reflection served beside the API, and the health flip on shutdown.

mod support;

use std::time::Duration;

use portone_facade::{
    pb::{GetPreparedPaymentRequest, PreparePaymentRequest},
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::{Facade, sandbox_and_facade};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health(facade: &Facade, service: &str) -> Result<ServingStatus, tonic::Status> {
    HealthClient::new(facade.channel())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status())
}

#[tokio::test]
async fn health_is_serving_overall_and_per_service() {
    let (_sandbox, facade) = sandbox_and_facade().await;
    for service in [
        "",
        "portone.facade.v1.PaymentPrepareService",
        "portone.facade.v1.PaymentLinkService",
        "portone.facade.v1.PaymentVerificationService",
    ] {
        assert_eq!(
            health(&facade, service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health(&facade, "no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_the_services_and_knows_the_error_details() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_sandbox, facade) = sandbox_and_facade().await;
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("google.rpc.BadRequest".into()),
        MessageRequest::FileContainingSymbol("portone.facade.v1.PaymentLinkService".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut answers = ServerReflectionClient::new(facade.channel())
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "portone.facade.v1.PaymentPrepareService",
        "portone.facade.v1.PaymentLinkService",
        "portone.facade.v1.PaymentVerificationService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    for _ in 0..2 {
        let answer = answers.next().await.unwrap().unwrap().message_response;
        assert!(
            matches!(answer, Some(MessageResponse::FileDescriptorResponse(_))),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_sandbox, facade) = sandbox_and_facade().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(facade.channel())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "portone.facade.v1.PaymentPrepareService")
    );
}

#[tokio::test]
async fn on_shutdown_health_turns_not_serving_and_the_call_in_flight_still_completes() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let mut client = facade.prepare_client();
    client
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "draining".into(),
            amount: "500".into(),
            currency: String::new(),
        })
        .await
        .unwrap();
    let mut watch = HealthClient::new(facade.channel())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Delay(Duration::from_millis(800)),
    );
    let in_flight = tokio::spawn(async move {
        client
            .get_prepared_payment(GetPreparedPaymentRequest {
                merchant_uid: "draining".into(),
            })
            .await
    });
    support::wait_until_called(&sandbox, Endpoint::GetPrepared).await;
    let stopping = tokio::spawn(facade.stop());

    let flipped = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    assert_eq!(
        flipped.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    let answer = in_flight
        .await
        .unwrap()
        .expect("the call in flight completes");
    assert_eq!(answer.into_inner().prepared_payment.unwrap().amount, "500");
    stopping.await.unwrap();
}

#[tokio::test]
async fn during_the_shutdown_delay_health_is_not_serving_and_new_calls_are_still_answered() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = support::settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.shutdown_delay = Duration::from_secs(2);
    let facade = Facade::start(settings).await;
    let addr = facade.addr;
    assert_eq!(health(&facade, "").await.unwrap(), ServingStatus::Serving);
    let stopping = tokio::spawn(facade.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A client that only now connects, as a pod that has not yet seen the
    // endpoint removed would.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("the listener is still open during the delay");
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::NotServing);
    for service in [
        "portone.facade.v1.PaymentPrepareService",
        "portone.facade.v1.PaymentLinkService",
        "portone.facade.v1.PaymentVerificationService",
    ] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::NotServing, "{service}");
    }
    let answer =
        portone_facade::pb::payment_prepare_service_client::PaymentPrepareServiceClient::new(
            channel,
        )
        .prepare_payment(PreparePaymentRequest {
            merchant_uid: "after-sigterm".into(),
            amount: "700".into(),
            currency: String::new(),
        })
        .await
        .expect("a call during the delay is answered");
    assert_eq!(answer.into_inner().prepared_payment.unwrap().amount, "700");
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_under_load_answers_every_call_whose_registration_reached_portone() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = Facade::in_front_of(&sandbox).await;
    sandbox.inject_times(
        Endpoint::PreparePayment,
        Fault::Delay(Duration::from_millis(300)),
        1_000,
    );
    let calls: Vec<_> = (0..100)
        .map(|n| {
            let mut client = facade.prepare_client();
            tokio::spawn(async move {
                // Spread over a second, so that shutdown lands in the middle.
                tokio::time::sleep(Duration::from_millis(10 * n)).await;
                client
                    .prepare_payment(PreparePaymentRequest {
                        merchant_uid: format!("under-load-{n}"),
                        amount: "1000".into(),
                        currency: String::new(),
                    })
                    .await
            })
        })
        .collect();
    support::wait_for_calls(&sandbox, Endpoint::PreparePayment, 30).await;
    facade.stop().await;

    let mut answered = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().prepared_payment.unwrap().amount, "1000");
                answered += 1;
            }
            // Refused before it reached the facade's API: the listener had
            // closed, or the connection had been sent GOAWAY.
            Err(status) => assert!(
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Cancelled
                ),
                "{status:?}"
            ),
        }
    }
    let registered = sandbox.calls(Endpoint::PreparePayment);
    println!(
        "shutdown under load: {registered} registrations reached PortOne, {answered} answered OK"
    );
    assert!((30..100).contains(&registered), "{registered}");
    assert_eq!(
        answered, registered,
        "a registration that reached PortOne went unanswered"
    );
}
