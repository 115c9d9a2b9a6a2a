//! A `--sandbox` process driven by a real grpcurl (installed by
//! `scripts/install-tools.sh`): list, describe, one call of each RPC, the
//! health check, an error whose details grpcurl decodes, and the README's
//! prepare → pay (curl to the sandbox) → verify flow.

mod support;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, SystemTime},
};

use serde_json::Value;
use support::process::{FacadeProc, Output, binary};

/// grpcurl from `GRPCURL`, the project's tool cache, or PATH.
fn grpcurl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL") {
        return PathBuf::from(path);
    }
    let cached = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/portone-facade/tools/bin/grpcurl"))
        .filter(|path| path.exists());
    cached.unwrap_or_else(|| PathBuf::from("grpcurl"))
}

struct Grpcurl {
    process: FacadeProc,
}

impl Grpcurl {
    fn start() -> Grpcurl {
        let mut command = binary();
        command.args(["--sandbox", "--listen-addr", "127.0.0.1:0"]);
        Grpcurl {
            process: FacadeProc::start(command, Output::Logs).unwrap(),
        }
    }

    /// Runs `grpcurl -plaintext FLAGS ADDRESS VERB…`; returns (success,
    /// stdout + stderr).
    fn run(&self, flags: &[&str], verb: &[&str]) -> (bool, String) {
        let output = Command::new(grpcurl_path())
            .args(["-plaintext", "-max-time", "10"])
            .args(flags)
            .arg(self.process.addr.to_string())
            .args(verb)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run grpcurl at {:?} ({e}); run scripts/install-tools.sh first",
                    grpcurl_path()
                )
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// The embedded sandbox's URL, from the facade's start-up log line.
    fn sandbox_url(&self) -> String {
        self.process
            .startup_lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("using the embedded PortOne sandbox"))
            })
            .and_then(|line| line["url"].as_str().map(str::to_owned))
            .expect("the facade logs the sandbox's url at start")
    }

    fn call(&self, method: &str, body: &str) -> Value {
        let (ok, text) = self.run(&["-d", body], &[method]);
        assert!(ok, "{method} failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {text}"))
    }
}

#[test]
fn grpcurl_lists_describes_calls_every_rpc_and_checks_health() {
    let grpcurl = Grpcurl::start();

    let (ok, services) = grpcurl.run(&[], &["list"]);
    assert!(ok, "{services}");
    for service in [
        "portone.facade.v1.PaymentPrepareService",
        "portone.facade.v1.PaymentLinkService",
        "portone.facade.v1.PaymentVerificationService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.lines().any(|l| l == service),
            "{service} missing: {services}"
        );
    }

    let (ok, described) = grpcurl.run(
        &[],
        &["describe", "portone.facade.v1.PaymentPrepareService"],
    );
    assert!(ok, "{described}");
    assert!(described.contains("rpc PreparePayment"), "{described}");
    assert!(
        described.contains("POST /payments/prepare"),
        "comments reach callers: {described}"
    );
    let (ok, described) = grpcurl.run(
        &[],
        &["describe", "portone.facade.v1.PaymentVerificationService"],
    );
    assert!(ok, "{described}");
    for expected in [
        "rpc GetPayment",
        "rpc VerifyPayment",
        "GET /payments/{imp_uid}",
        "GET /payments/prepare/{merchant_uid}",
    ] {
        assert!(described.contains(expected), "{expected}: {described}");
    }
    let (ok, described) = grpcurl.run(&[], &["describe", "portone.facade.v1.Verdict"]);
    assert!(
        ok && described.contains("VERDICT_AMOUNT_MISMATCH = 4"),
        "{described}"
    );
    let (ok, described) = grpcurl.run(
        &[],
        &["describe", "portone.facade.v1.CreatePaymentLinkRequest"],
    );
    assert!(
        ok && described.contains(".google.protobuf.Timestamp expire_at"),
        "{described}"
    );

    let prepared = grpcurl.call(
        "portone.facade.v1.PaymentPrepareService/PreparePayment",
        r#"{"merchant_uid":"grpcurl-1","amount":"19.99","currency":"USD"}"#,
    );
    assert_eq!(prepared["preparedPayment"]["amount"], "19.99");
    let read = grpcurl.call(
        "portone.facade.v1.PaymentPrepareService/GetPreparedPayment",
        r#"{"merchant_uid":"grpcurl-1"}"#,
    );
    assert_eq!(read["preparedPayment"]["currency"], "USD");
    let updated = grpcurl.call(
        "portone.facade.v1.PaymentPrepareService/UpdatePreparedPayment",
        r#"{"merchant_uid":"grpcurl-1","amount":"25","currency":"USD"}"#,
    );
    assert_eq!(updated["preparedPayment"]["amount"], "25");

    let in_an_hour =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let link = grpcurl.call(
        "portone.facade.v1.PaymentLinkService/CreatePaymentLink",
        &format!(
            r#"{{"title":"Coat","amount":"50000","merchant_uid":"grpcurl-link","name":"Coat","currency":"KRW",
                "buyer":{{"tel":"010-0000-0000"}},"expire_at":"{in_an_hour}",
                "pay_methods":[{{"pg":"html5_inicis","pay_method":"card","label":"Card"}}]}}"#
        ),
    );
    let link_id = link["linkId"].as_str().expect("linkId");
    assert!(link["url"].as_str().unwrap().ends_with(link_id));
    let disabled = grpcurl.call(
        "portone.facade.v1.PaymentLinkService/DisablePaymentLink",
        &format!(r#"{{"link_id":"{link_id}"}}"#),
    );
    assert_eq!(disabled, serde_json::json!({}));

    let health = grpcurl.call("grpc.health.v1.Health/Check", "{}");
    assert_eq!(health["status"], "SERVING");
    let health = grpcurl.call(
        "grpc.health.v1.Health/Check",
        r#"{"service":"portone.facade.v1.PaymentLinkService"}"#,
    );
    assert_eq!(health["status"], "SERVING");
    let health = grpcurl.call(
        "grpc.health.v1.Health/Check",
        r#"{"service":"portone.facade.v1.PaymentVerificationService"}"#,
    );
    assert_eq!(health["status"], "SERVING");
}

#[test]
fn grpcurl_verifies_a_payment_made_in_the_sandbox_and_catches_a_tampered_one() {
    let grpcurl = Grpcurl::start();
    let sandbox = grpcurl.sandbox_url();
    let pay = |body: Value| -> String {
        let answer: Value = reqwest::blocking::Client::new()
            .post(format!("{sandbox}/__sandbox/payments"))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .and_then(reqwest::blocking::Response::json)
            .expect("the sandbox makes the payment");
        answer["imp_uid"].as_str().expect("imp_uid").to_owned()
    };
    for uid in ["grpcurl-verify-1", "grpcurl-verify-2"] {
        grpcurl.call(
            "portone.facade.v1.PaymentPrepareService/PreparePayment",
            &format!(r#"{{"merchant_uid":"{uid}","amount":"19.99","currency":"USD"}}"#),
        );
    }

    let paid = pay(serde_json::json!({
        "merchant_uid": "grpcurl-verify-1", "amount": 19.99, "currency": "USD"
    }));
    let verified = grpcurl.call(
        "portone.facade.v1.PaymentVerificationService/VerifyPayment",
        &format!(r#"{{"imp_uid":"{paid}","merchant_uid":"grpcurl-verify-1"}}"#),
    );
    assert_eq!(verified["verdict"], "VERDICT_VERIFIED", "{verified}");
    assert_eq!(verified["payment"]["amount"], "19.99");
    assert_eq!(verified["preparedPayment"]["amount"], "19.99");

    let tampered = pay(serde_json::json!({
        "merchant_uid": "grpcurl-verify-2", "amount": 1.99, "currency": "USD"
    }));
    let caught = grpcurl.call(
        "portone.facade.v1.PaymentVerificationService/VerifyPayment",
        &format!(r#"{{"imp_uid":"{tampered}","merchant_uid":"grpcurl-verify-2"}}"#),
    );
    assert_eq!(caught["verdict"], "VERDICT_AMOUNT_MISMATCH", "{caught}");

    let read = grpcurl.call(
        "portone.facade.v1.PaymentVerificationService/GetPayment",
        &format!(r#"{{"imp_uid":"{paid}"}}"#),
    );
    assert_eq!(read["payment"]["status"], "PAYMENT_STATUS_PAID", "{read}");
}

#[test]
fn grpcurl_prints_the_decoded_error_details() {
    let grpcurl = Grpcurl::start();
    let (ok, text) = grpcurl.run(
        &["-d", r#"{"merchant_uid":"","amount":"1e3"}"#],
        &["portone.facade.v1.PaymentPrepareService/PreparePayment"],
    );
    assert!(!ok);
    assert!(text.contains("Code: InvalidArgument"), "{text}");
    assert!(
        text.contains("type.googleapis.com/google.rpc.BadRequest"),
        "{text}"
    );
    assert!(text.contains(r#""field":"amount""#), "{text}");

    let (ok, text) = grpcurl.run(
        &["-d", r#"{"merchant_uid":"never-prepared"}"#],
        &["portone.facade.v1.PaymentPrepareService/GetPreparedPayment"],
    );
    assert!(!ok);
    assert!(text.contains("Code: NotFound"), "{text}");
    assert!(
        text.contains("type.googleapis.com/google.rpc.ErrorInfo"),
        "{text}"
    );
    assert!(
        text.contains("사전등록된 결제정보가 존재하지 않습니다."),
        "{text}"
    );
}
