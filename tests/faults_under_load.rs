//! Hundreds of concurrent calls while the sandbox fails a random share of
//! PortOne calls: every call ends within its deadline with a clean code and
//! `ErrorInfo`, and every OK answer carries the right amount (DESIGN.md §7).

mod support;

use std::time::{Duration, Instant};

use portone_facade::{
    pb::{GetPreparedPaymentRequest, PreparePaymentRequest},
    sandbox::{Endpoint, Fault},
};
use support::{error_info, sandbox_and_facade};
use tonic::Code;

const CALLERS: usize = 30;
const CALLS_EACH: usize = 10;
const DEADLINE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_ends_in_time_with_a_clean_answer_while_a_third_of_portone_calls_fail() {
    let (sandbox, facade) = sandbox_and_facade().await;
    let faults = || {
        vec![
            (Fault::status(503, -1, "일시적 오류"), 0.15),
            (Fault::Delay(Duration::from_millis(300)), 0.10),
            (Fault::DropConnection, 0.05),
            (Fault::LoseAnswer, 0.05),
        ]
    };
    sandbox.inject_randomly(Endpoint::PreparePayment, faults());
    sandbox.inject_randomly(Endpoint::GetPrepared, faults());

    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut client = facade.prepare_client();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..CALLS_EACH {
                    let uid = format!("load-{caller}-{n}");
                    let amount = format!("{}.5", 1000 + caller * 100 + n);
                    let mut prepare = tonic::Request::new(PreparePaymentRequest {
                        merchant_uid: uid.clone(),
                        amount: amount.clone(),
                        currency: String::new(),
                    });
                    prepare.set_timeout(DEADLINE);
                    let started = Instant::now();
                    let prepared = client.prepare_payment(prepare).await.map(|answer| {
                        answer
                            .into_inner()
                            .prepared_payment
                            .unwrap_or_default()
                            .amount
                    });
                    outcomes.push((amount.clone(), prepared, started.elapsed()));
                    let mut read =
                        tonic::Request::new(GetPreparedPaymentRequest { merchant_uid: uid });
                    read.set_timeout(DEADLINE);
                    let started = Instant::now();
                    let read = client.get_prepared_payment(read).await.map(|answer| {
                        answer
                            .into_inner()
                            .prepared_payment
                            .unwrap_or_default()
                            .amount
                    });
                    outcomes.push((amount, read, started.elapsed()));
                }
                outcomes
            })
        })
        .collect();

    let (mut ok, mut failed) = (0, 0);
    for caller in callers {
        for (amount, outcome, took) in caller.await.unwrap() {
            assert!(
                took < DEADLINE + Duration::from_millis(200),
                "a call took {took:?}"
            );
            match outcome {
                Ok(answered) => {
                    assert_eq!(answered, amount, "an OK answer with another amount");
                    ok += 1;
                }
                Err(status) => {
                    assert!(
                        matches!(
                            status.code(),
                            Code::Unavailable | Code::DeadlineExceeded | Code::NotFound
                        ),
                        "{status:?}"
                    );
                    let info = error_info(&status);
                    assert_eq!(info.domain, "portone-facade", "{status:?}");
                    assert!(!info.reason.is_empty(), "{status:?}");
                    failed += 1;
                }
            }
        }
    }
    println!("faults under load: {ok} calls OK, {failed} failed cleanly");
    assert!(ok > failed, "{ok} OK, {failed} failed");
}
