//! Memory does not grow with what PortOne sends (DESIGN.md §7): a 64 MiB
//! answer is refused without a matching rise in the facade's peak memory.

mod support;

use portone_facade::{
    pb::{GetPreparedPaymentRequest, payment_prepare_service_client::PaymentPrepareServiceClient},
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::process::{FacadeProc, Output, facade_command};
use tonic::{Code, transport::Channel};

/// `VmHWM` (peak resident memory) of `pid`, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_answer_is_refused_without_a_matching_rise_in_peak_memory() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let process = FacadeProc::start(
        facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret()),
        Output::Logs,
    )
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = PaymentPrepareServiceClient::new(channel);
    let read = || GetPreparedPaymentRequest {
        merchant_uid: "huge".into(),
    };
    // Warm: the token, the connection pools, the first allocations.
    let _ = client.get_prepared_payment(read()).await;
    let before = peak_kib(process.pid());

    let huge = format!(
        r#"{{"code":0,"padding":"{}"}}"#,
        "x".repeat(64 * 1024 * 1024)
    );
    for _ in 0..3 {
        sandbox.inject(
            Endpoint::GetPrepared,
            Fault::Respond {
                status: 200,
                body: huge.clone(),
                retry_after: None,
            },
        );
        let status = client.get_prepared_payment(read()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let after = peak_kib(process.pid());
    println!(
        "huge answers: facade peak RSS {before} KiB before, {after} KiB after three 64 MiB answers"
    );
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "peak memory rose from {before} KiB to {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_of_unknown_length_is_counted_and_refused_past_one_mebibyte() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let facade = support::Facade::in_front_of(&sandbox).await;
    sandbox.inject(
        Endpoint::GetPrepared,
        Fault::Chunked {
            chunk_bytes: 64 * 1024,
            chunks: 64,
        },
    );
    let status = facade
        .prepare_client()
        .get_prepared_payment(GetPreparedPaymentRequest {
            merchant_uid: "chunked".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let message = &support::error_info(&status).metadata["upstream_message"];
    assert!(message.contains("larger than 1 MiB"), "{message}");
    assert_eq!(sandbox.calls(Endpoint::GetPrepared), 1, "not retried");
}
