//! A PortOne outage is not met with three times the load: retries come out
//! of a budget shared by all calls (DESIGN.md §7).

mod support;

use portone_facade::{
    pb::GetPreparedPaymentRequest,
    sandbox::{Endpoint, Fault},
};
use support::{assert_error, error_info, sandbox_and_facade};
use tonic::Code;

const CALLS: usize = 300;
const CONCURRENT: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_portone_answers_only_503_it_receives_about_one_request_per_call() {
    let (sandbox, facade) = sandbox_and_facade().await;
    sandbox.inject_times(
        Endpoint::GetPrepared,
        Fault::status(503, -1, "서비스 점검 중"),
        CALLS * 3,
    );
    let callers: Vec<_> = (0..CONCURRENT)
        .map(|caller| {
            let mut client = facade.prepare_client();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..CALLS / CONCURRENT {
                    let status = client
                        .get_prepared_payment(GetPreparedPaymentRequest {
                            merchant_uid: format!("outage-{caller}-{n}"),
                        })
                        .await
                        .unwrap_err();
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    for caller in callers {
        for status in caller.await.unwrap() {
            // Refused a retry or not, each call answers with what PortOne
            // said last.
            assert_error(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
            assert_eq!(error_info(&status).metadata["http_status"], "503");
        }
    }
    let sent = sandbox.calls(Endpoint::GetPrepared);
    println!("outage: {sent} requests to PortOne for {CALLS} calls");
    // Without the budget every call would make 3 attempts (900); the budget
    // allows 20% of the calls plus 3 a second over 10 s.
    assert!(
        (CALLS..CALLS * 3 / 2).contains(&sent),
        "{sent} requests to PortOne for {CALLS} calls"
    );
}
