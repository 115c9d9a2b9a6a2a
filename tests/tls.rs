//! TLS on the gRPC port (DESIGN §8): plaintext refused, the §7 handshake
//! bound kept over TLS, the pair rotated without a restart as a Kubernetes
//! Secret volume rotates it, a broken pair at reload ignored, and every
//! unusable TLS setting refused at start, naming the variable and the path.

mod support;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use portone_facade::{
    sandbox::Sandbox,
    tls::{TlsFiles, TlsSettings},
};
use support::{
    Facade,
    process::{FacadeProc, Output, binary, facade_command},
    settings,
    tls::{
        SecretVolume, TestCa, TlsClient, assert_connection_refused, channel_over, read,
        tls_settings,
    },
};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long a rotated file may take to be in force (§8).
const RELOAD_LIMIT: Duration = Duration::from_secs(10);

async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|answer| answer.into_inner().status())
}

/// A facade serving TLS with a certificate of `ca`.
async fn tls_facade(ca: &TestCa) -> (Sandbox, Facade) {
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.tls = Some(tls_settings(&ca.server("server"), None));
    let facade = Facade::start(settings).await;
    (sandbox, facade)
}

#[tokio::test]
async fn a_tls_client_is_served_and_a_plaintext_client_is_refused() {
    let ca = TestCa::new("serving CA");
    let (_sandbox, facade) = tls_facade(&ca).await;
    let over_tls = health(TlsClient::new(&ca, None).channel(facade.addr)).await;
    assert_eq!(over_tls.unwrap(), ServingStatus::Serving);
    let plaintext = health(facade.channel()).await.unwrap_err();
    println!("plaintext on a TLS port: {plaintext:?}");
    assert_connection_refused(&plaintext);
}

/// Waits (at most 20 s) for the server to close `stream`; how long it took.
async fn closed_after(mut stream: impl tokio::io::AsyncRead + Unpin, opened: Instant) -> Duration {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
        .await
        .expect("closed within 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    opened.elapsed()
}

#[tokio::test]
async fn a_connection_that_never_starts_the_tls_handshake_is_closed_after_ten_seconds() {
    let ca = TestCa::new("silent CA");
    let (_sandbox, facade) = tls_facade(&ca).await;
    let opened = Instant::now();
    let silent = TcpStream::connect(facade.addr).await.unwrap();
    let after = closed_after(silent, opened).await;
    assert!(after >= Duration::from_secs(9), "closed after {after:?}");
}

#[tokio::test]
async fn the_tls_handshake_and_the_http2_preface_share_one_ten_second_bound() {
    let ca = TestCa::new("no preface CA");
    let (_sandbox, facade) = tls_facade(&ca).await;
    let opened = Instant::now();
    let tcp = TcpStream::connect(facade.addr).await.unwrap();
    // Six seconds before the ClientHello, then no HTTP/2 preface at all:
    // one 10 s bound covers both, so the server closes at 10 s, not 16.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stream = TlsClient::new(&ca, None).handshake(tcp).await.unwrap();
    let after = closed_after(stream, opened).await;
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(12),
        "closed after {after:?}"
    );
}

fn pair_of(ca: &TestCa, name: &str) -> (String, String) {
    let leaf = ca.server(name);
    (read(&leaf.cert_file), read(&leaf.key_file))
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A Secret volume holding `tls.crt` and `tls.key`.
fn secret_volume(ca: &TestCa, (cert, key): &(String, String)) -> SecretVolume {
    SecretVolume::new(ca.path("secret"), &[("tls.crt", cert), ("tls.key", key)])
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_while_an_open_connection_keeps_answering() {
    let ca = TestCa::new("rotation CA");
    let (first, second) = (pair_of(&ca, "first"), pair_of(&ca, "second"));
    let mut volume = secret_volume(&ca, &first);
    let sandbox = Sandbox::start(Default::default()).await.unwrap();
    let mut settings = settings(&sandbox.url(), sandbox.imp_key(), sandbox.imp_secret());
    settings.tls = Some(
        TlsSettings::load(TlsFiles::new(
            volume.path("tls.crt"),
            volume.path("tls.key"),
            None::<PathBuf>,
        ))
        .unwrap(),
    );
    let facade = Facade::start(settings).await;
    let client = TlsClient::new(&ca, None);

    let open = client.connect(facade.addr).await.unwrap();
    assert_eq!(
        open.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        der_of(&first.0)
    );
    let open = channel_over(open);
    assert_eq!(health(open.clone()).await.unwrap(), ServingStatus::Serving);

    volume.rotate(&[("tls.crt", &second.0), ("tls.key", &second.1)]);
    let rotated = Instant::now();
    while client.served_certificate(facade.addr).await != der_of(&second.0) {
        assert!(
            rotated.elapsed() < RELOAD_LIMIT,
            "new connections still get the first certificate after {RELOAD_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "rotation: new connections got the new certificate after {:?}",
        rotated.elapsed()
    );
    assert_eq!(
        health(open).await.unwrap(),
        ServingStatus::Serving,
        "the connection opened before the rotation still answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_pair_at_reload_keeps_the_previous_certificate_and_logs_one_error() {
    let ca = TestCa::new("broken rotation CA");
    let (first, second) = (pair_of(&ca, "first"), pair_of(&ca, "second"));
    let mut volume = secret_volume(&ca, &first);
    let mut command = binary();
    command
        .args(["--sandbox", "--listen-addr", "127.0.0.1:0"])
        .env("TLS_CERT_FILE", volume.path("tls.crt"))
        .env("TLS_KEY_FILE", volume.path("tls.key"));
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let client = TlsClient::new(&ca, None);

    // The second certificate with the first key.
    volume.rotate(&[("tls.crt", &second.0), ("tls.key", &first.1)]);
    // Three polls and more: time to reload, and to log again if it would.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        client.served_certificate(process.addr).await,
        der_of(&first.0)
    );
    let errors: Vec<String> = process
        .proc
        .drain_lines()
        .into_iter()
        .filter(|line| line.contains("TLS certificate not reloaded"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("\"level\":\"ERROR\"")
            && errors[0].contains("TLS_KEY_FILE")
            && errors[0].contains("does not match"),
        "{}",
        errors[0]
    );
}

/// Runs the binary (with the sandbox, so that only TLS settings can be
/// wrong) with `env`; it must exit within 10 s. Its exit code and stderr.
fn refusal(env: &[(&str, &std::ffi::OsStr)]) -> (Option<i32>, String) {
    let mut command: Command = binary();
    command
        .args(["--sandbox", "--listen-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child: Child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// Asserts that the binary refused to start and said all of `named`.
fn assert_refused(env: &[(&str, &std::ffi::OsStr)], named: &[&str]) {
    let (code, stderr) = refusal(env);
    assert_eq!(code, Some(2), "{stderr}");
    for name in named {
        assert!(stderr.contains(name), "{name} missing from: {stderr}");
    }
    println!("refused: {}", stderr.trim());
}

fn os(path: &std::path::Path) -> &std::ffi::OsStr {
    path.as_os_str()
}

#[test]
fn a_missing_certificate_file_refuses_to_start_naming_tls_cert_file_and_its_path() {
    let ca = TestCa::new("missing file CA");
    let leaf = ca.server("server");
    let missing = ca.path("no-such.pem");
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&missing)),
            ("TLS_KEY_FILE", os(&leaf.key_file)),
        ],
        &["TLS_CERT_FILE", &missing.display().to_string()],
    );
}

#[test]
fn an_unreadable_key_file_refuses_to_start_naming_tls_key_file_and_its_path() {
    let ca = TestCa::new("unreadable key CA");
    let leaf = ca.server("server");
    // A directory cannot be read as a file, whoever runs the test.
    let directory = ca.path("a-directory");
    std::fs::create_dir(&directory).unwrap();
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.cert_file)),
            ("TLS_KEY_FILE", os(&directory)),
        ],
        &["TLS_KEY_FILE", &directory.display().to_string()],
    );
}

#[test]
fn a_certificate_file_without_a_certificate_refuses_to_start() {
    let ca = TestCa::new("no certificate CA");
    let leaf = ca.server("server");
    // The key where the certificate should be.
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.key_file)),
            ("TLS_KEY_FILE", os(&leaf.key_file)),
        ],
        &[
            "TLS_CERT_FILE",
            &leaf.key_file.display().to_string(),
            "no PEM certificate",
        ],
    );
}

#[test]
fn a_key_file_without_a_key_refuses_to_start() {
    let ca = TestCa::new("no key CA");
    let leaf = ca.server("server");
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.cert_file)),
            ("TLS_KEY_FILE", os(&leaf.cert_file)),
        ],
        &[
            "TLS_KEY_FILE",
            &leaf.cert_file.display().to_string(),
            "no PEM private key",
        ],
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_refuses_to_start_naming_both_files() {
    let ca = TestCa::new("mismatch CA");
    let (one, other) = (ca.server("one"), ca.server("other"));
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&one.cert_file)),
            ("TLS_KEY_FILE", os(&other.key_file)),
        ],
        &[
            "TLS_KEY_FILE",
            &other.key_file.display().to_string(),
            "does not match",
            "TLS_CERT_FILE",
            &one.cert_file.display().to_string(),
        ],
    );
}

#[test]
fn a_certificate_without_a_key_refuses_to_start_naming_tls_key_file() {
    let ca = TestCa::new("half pair CA");
    let leaf = ca.server("server");
    assert_refused(
        &[("TLS_CERT_FILE", os(&leaf.cert_file))],
        &["TLS_CERT_FILE is set but TLS_KEY_FILE is not"],
    );
}

#[test]
fn a_key_without_a_certificate_refuses_to_start_naming_tls_cert_file() {
    let ca = TestCa::new("other half CA");
    let leaf = ca.server("server");
    assert_refused(
        &[("TLS_KEY_FILE", os(&leaf.key_file))],
        &["TLS_KEY_FILE is set but TLS_CERT_FILE is not"],
    );
}

#[test]
fn client_cas_without_a_server_certificate_refuse_to_start() {
    let ca = TestCa::new("mtls without tls CA");
    assert_refused(
        &[("TLS_CLIENT_CA_FILE", os(&ca.cert_file()))],
        &["TLS_CLIENT_CA_FILE is set but TLS_CERT_FILE is not"],
    );
}

#[test]
fn a_client_ca_file_without_a_certificate_refuses_to_start_naming_it_and_its_path() {
    let ca = TestCa::new("empty CA file CA");
    let leaf = ca.server("server");
    let empty = ca.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.cert_file)),
            ("TLS_KEY_FILE", os(&leaf.key_file)),
            ("TLS_CLIENT_CA_FILE", os(&empty)),
        ],
        &["TLS_CLIENT_CA_FILE", &empty.display().to_string()],
    );
}

#[test]
fn a_policy_without_mutual_tls_refuses_to_start_naming_both_variables() {
    let ca = TestCa::new("policy without mtls CA");
    let leaf = ca.server("server");
    let policy = ca.path("policy.json");
    std::fs::write(&policy, r#"{"callers": []}"#).unwrap();
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.cert_file)),
            ("TLS_KEY_FILE", os(&leaf.key_file)),
            ("AUTHZ_POLICY_FILE", os(&policy)),
        ],
        &["AUTHZ_POLICY_FILE is set but TLS_CLIENT_CA_FILE is not"],
    );
}

#[test]
fn an_invalid_policy_refuses_to_start_naming_authz_policy_file_and_the_error() {
    let ca = TestCa::new("invalid policy CA");
    let leaf = ca.server("server");
    let policy = ca.path("policy.json");
    std::fs::write(
        &policy,
        r#"{"callers": [{"identity": "a", "allow": ["PaymentPrepareService/*"]}]}"#,
    )
    .unwrap();
    assert_refused(
        &[
            ("TLS_CERT_FILE", os(&leaf.cert_file)),
            ("TLS_KEY_FILE", os(&leaf.key_file)),
            ("TLS_CLIENT_CA_FILE", os(&ca.cert_file())),
            ("AUTHZ_POLICY_FILE", os(&policy)),
        ],
        &[
            "AUTHZ_POLICY_FILE",
            &policy.display().to_string(),
            "callers[0].allow[0]",
        ],
    );
}

#[test]
fn a_facade_with_tls_says_so_when_it_listens() {
    let ca = TestCa::new("listening CA");
    let leaf = ca.server("server");
    let mut command = facade_command("http://127.0.0.1:9", "key", "secret");
    command
        .env("TLS_CERT_FILE", &leaf.cert_file)
        .env("TLS_KEY_FILE", &leaf.key_file)
        .env("TLS_CLIENT_CA_FILE", ca.cert_file());
    let process = FacadeProc::start(command, Output::Logs).unwrap();
    let listening = process.startup_lines.last().unwrap();
    assert!(
        listening.contains("\"tls\":true") && listening.contains("\"mutual_tls\":true"),
        "{listening}"
    );
}
