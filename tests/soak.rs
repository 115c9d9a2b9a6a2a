//! A soak (DESIGN.md §7): 45 s of mixed calls while PortOne fails some of
//! them, with the facade's resident memory sampled throughout. It must stay
//! flat: nothing may grow with the number of calls served.

mod support;

use std::time::{Duration, Instant};

use portone_facade::{
    pb::{
        GetPreparedPaymentRequest, PreparePaymentRequest, UpdatePreparedPaymentRequest,
        payment_prepare_service_client::PaymentPrepareServiceClient,
    },
    sandbox::{Endpoint, Fault, Sandbox},
};
use support::process::{FacadeProc, Output, facade_command};
use tonic::transport::Channel;

const SOAK: Duration = Duration::from_secs(45);
const CALLERS: usize = 8;

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_five_seconds_of_mixed_calls_with_faults_leave_memory_flat() {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let faults = || {
        vec![
            (Fault::status(503, -1, "일시적 오류"), 0.05),
            (Fault::Delay(Duration::from_millis(50)), 0.05),
            (Fault::DropConnection, 0.02),
        ]
    };
    for endpoint in [
        Endpoint::PreparePayment,
        Endpoint::GetPrepared,
        Endpoint::UpdatePrepared,
    ] {
        sandbox.inject_randomly(endpoint, faults());
    }
    let mut command = facade_command(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    command.env("RUST_LOG", "warn,portone_facade::server=info");
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let pid = process.pid();
    let channel = Channel::from_shared(format!("http://{}", process.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut client = PaymentPrepareServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                let mut n = 0u64;
                while started.elapsed() < SOAK {
                    n += 1;
                    let uid = format!("soak-{caller}-{n}");
                    let _ = client
                        .prepare_payment(PreparePaymentRequest {
                            merchant_uid: uid.clone(),
                            amount: "1000".into(),
                            currency: String::new(),
                        })
                        .await;
                    let _ = client
                        .get_prepared_payment(GetPreparedPaymentRequest {
                            merchant_uid: uid.clone(),
                        })
                        .await;
                    let _ = client
                        .update_prepared_payment(UpdatePreparedPaymentRequest {
                            merchant_uid: uid,
                            amount: "1500".into(),
                            currency: String::new(),
                        })
                        .await;
                    calls += 3;
                }
                calls
            })
        })
        .collect();

    // One sample a second; the first ten seconds are the warm-up.
    let mut samples = Vec::new();
    while started.elapsed() < SOAK {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid));
    }
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.unwrap();
    }
    let warm = &samples[10.min(samples.len())..];
    let third = (warm.len() / 3).max(1);
    let early = warm[..third].iter().sum::<u64>() / third as u64;
    let late = warm[warm.len() - third..].iter().sum::<u64>() / third as u64;
    let peak = samples.iter().copied().max().unwrap_or(0);
    println!(
        "soak: {calls} calls in {:?}; RSS {early} KiB early, {late} KiB late, peak {peak} KiB",
        started.elapsed()
    );
    assert!(calls > 1_000, "{calls} calls");
    assert!(
        late <= early + early / 10 + 1024,
        "resident memory grew from {early} KiB to {late} KiB"
    );
}
