//! What PortOne may send that it should not: absurd getToken answers and
//! answers too large to read (DESIGN.md §7). None may panic, wedge the
//! token cache or be read whole.

mod support;

use portone_facade::pb::{GetPreparedPaymentRequest, PreparePaymentRequest};
use serde_json::json;
use support::{Facade, assert_error, error_info, settings};
use tonic::Code;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

/// A PortOne whose getToken answers with `now` and `expired_at`, and whose
/// prepare and read answer as a registered order would.
async fn portone_issuing(now: i64, expired_at: i64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/users/getToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {"access_token": "tok-odd", "now": now, "expired_at": expired_at}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/payments/prepare"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": null,
            "response": {"merchant_uid": "odd-token", "amount": 1000}
        })))
        .mount(&server)
        .await;
    server
}

async fn get_token_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|request| request.url.path() == "/users/getToken")
        .count()
}

/// Three prepares in a row, each of which must succeed.
async fn three_prepares(facade: &Facade) {
    for _ in 0..3 {
        facade
            .prepare_client()
            .prepare_payment(PreparePaymentRequest {
                merchant_uid: "odd-token".into(),
                amount: "1000".into(),
                currency: String::new(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_token_said_to_last_until_the_end_of_time_neither_panics_nor_wedges_the_cache() {
    let server = portone_issuing(-1_000_000_000_000_000_000, i64::MAX).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    three_prepares(&facade).await;
    assert_eq!(get_token_calls(&server).await, 1);
}

#[tokio::test]
async fn a_token_already_expired_is_fetched_again_at_most_once_per_call() {
    let server = portone_issuing(1_700_000_000, 1_600_000_000).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    three_prepares(&facade).await;
    let fetched = get_token_calls(&server).await;
    assert!(
        (1..=3).contains(&fetched),
        "{fetched} getToken calls for 3 calls"
    );
}

#[tokio::test]
async fn a_token_whose_now_is_far_from_our_clock_still_serves() {
    let server = portone_issuing(i64::MIN, i64::MIN + 1800).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    three_prepares(&facade).await;
    assert_eq!(get_token_calls(&server).await, 1);
}

/// A PortOne whose read of a registration answers `size` bytes of JSON.
async fn portone_answering_reads_of(size: usize) -> MockServer {
    let server = portone_issuing(1_700_000_000, 1_700_001_800).await;
    let padding = "x".repeat(size.saturating_sub(100));
    let body = format!(
        r#"{{"code":0,"message":null,"response":{{"merchant_uid":"big","amount":1000,"padding":"{padding}"}}}}"#
    );
    Mock::given(method("GET"))
        .and(path("/payments/prepare/big"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

async fn read_big(facade: &Facade) -> Result<String, tonic::Status> {
    facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "big".into(),
        })
        .await
        .map(|answer| {
            answer
                .into_inner()
                .prepared_payment
                .unwrap_or_default()
                .amount
        })
}

#[tokio::test]
async fn an_answer_over_one_mebibyte_is_refused_as_unavailable_saying_it_was_too_large() {
    let server = portone_answering_reads_of(8 * 1024 * 1024).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    let status = read_big(&facade).await.unwrap_err();
    assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    let message = &error_info(&status).metadata["upstream_message"];
    assert!(message.contains("larger than 1 MiB"), "{message}");
    // Too large is not transient: it is not asked for again.
    let reads = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.url.path() == "/payments/prepare/big")
        .count();
    assert_eq!(reads, 1);
}

#[tokio::test]
async fn an_answer_just_under_one_mebibyte_is_read() {
    let server = portone_answering_reads_of(1024 * 1024 - 1024).await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    assert_eq!(read_big(&facade).await.unwrap(), "1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portone_that_accepts_and_never_answers_ends_every_call_at_its_deadline() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let facade = Facade::start(settings(&url, "k", "s")).await;
    // Connected before the clock starts: a client's deadline also covers
    // its own connection set-up, which the facade cannot see.
    let mut clients = Vec::new();
    for _ in 0..20 {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", facade.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        clients.push(
            portone_facade::pb::payment_prepare_service_client::PaymentPrepareServiceClient::new(
                channel,
            ),
        );
    }
    let calls: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut client)| {
            tokio::spawn(async move {
                let mut request = tonic::Request::new(GetPreparedPaymentRequest {
                    merchant_uid: format!("silent-{n}"),
                });
                request.set_timeout(std::time::Duration::from_secs(1));
                let started = std::time::Instant::now();
                let status = client.get_prepared_payment(request).await.unwrap_err();
                (status, started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (status, took) = call.await.unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_get_token_outage_concurrent_calls_share_a_bounded_number_of_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/users/getToken"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    let calls: Vec<_> = (0..100)
        .map(|n| {
            let mut client = facade.prepare_client();
            tokio::spawn(async move {
                client
                    .get_prepared_payment(GetPreparedPaymentRequest {
                        merchant_uid: format!("no-token-{n}"),
                    })
                    .await
                    .unwrap_err()
            })
        })
        .collect();
    for call in calls {
        let status = call.await.unwrap();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let attempts = get_token_calls(&server).await;
    println!("getToken outage: {attempts} getToken attempts for 100 concurrent calls");
    // One shared refresh of at most 3 attempts, perhaps a second for calls
    // that arrived after it failed: never one per call.
    assert!(attempts <= 9, "{attempts} getToken attempts for 100 calls");
}

#[tokio::test]
async fn a_rate_limited_get_token_is_retried_as_any_call_is() {
    let server = portone_issuing(1_700_000_000, 1_700_001_800).await;
    // Above the good answer: the first getToken is rate limited.
    Mock::given(method("POST"))
        .and(path("/users/getToken"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let facade = Facade::start(settings(&server.uri(), "k", "s")).await;
    three_prepares(&facade).await;
    assert_eq!(get_token_calls(&server).await, 2);
}
