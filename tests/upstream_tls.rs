//! The real binary in front of a PortOne over HTTPS on loopback, whose
//! certificate a CA made by the test signs (for `127.0.0.1` and
//! `localhost`): the upstream certificate is verified against the
//! platform's roots, which `SSL_CERT_FILE` names (reqwest's rustls
//! verifier, rustls-platform-verifier, loads them with rustls-native-certs,
//! where `SSL_CERT_FILE` or `SSL_CERT_DIR`, when set, replace the system
//! store), and a certificate from no trusted CA is refused before any
//! request is sent.

mod support;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portone_facade::pb::{
    GetPreparedPaymentRequest, payment_prepare_service_client::PaymentPrepareServiceClient,
};
use support::{
    error_info,
    process::{FacadeProc, Output, facade_command},
    tls::TestCa,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;
use tonic::{Code, transport::Channel};

const IMP_KEY: &str = "tls-imp-key";
const IMP_SECRET: &str = "tls-imp-secret";

/// PortOne's getToken and `GET /payments/prepare/{merchant_uid}` over TLS
/// (HTTP/1.1 or HTTP/2, as the client offers), answering every uid as
/// registered; counts the HTTP requests that arrive.
struct HttpsPortOne {
    port: u16,
    requests: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl HttpsPortOne {
    async fn start(ca: &TestCa) -> HttpsPortOne {
        let leaf = ca.server("portone");
        let acceptor = TlsAcceptor::from(TestCa::rustls_server(&leaf, None));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    // A refused handshake ends here, before any request.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        answer(request)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpsPortOne {
            port,
            requests,
            server,
        }
    }

    /// The base URL, by the name the certificate carries.
    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// HTTP requests received so far.
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpsPortOne {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_owned();
    let _ = request.into_body().collect().await?;
    let body = if path == "/users/getToken" {
        r#"{"code":0,"message":null,"response":{"access_token":"tls-token","now":1700000000,"expired_at":1700001800}}"#.to_owned()
    } else if let Some(uid) = path.strip_prefix("/payments/prepare/") {
        serde_json::json!({
            "code": 0,
            "message": null,
            "response": {"merchant_uid": uid, "amount": 10000, "currency": "KRW"},
        })
        .to_string()
    } else {
        return Ok(Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap());
    };
    Ok(Response::builder()
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

/// The binary in front of `portone`, with `SSL_CERT_FILE` when given.
fn facade(portone: &HttpsPortOne, ssl_cert_file: Option<&Path>) -> FacadeProc {
    let mut command = facade_command(&portone.url(), IMP_KEY, IMP_SECRET);
    if let Some(file) = ssl_cert_file {
        command.env("SSL_CERT_FILE", file);
    }
    FacadeProc::start(command, Output::Logs).unwrap()
}

async fn get_prepared(
    facade: &FacadeProc,
    uid: &str,
) -> Result<portone_facade::pb::GetPreparedPaymentResponse, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{}", facade.addr))
        .unwrap()
        .connect_lazy();
    let mut request = tonic::Request::new(GetPreparedPaymentRequest {
        merchant_uid: uid.to_owned(),
    });
    request.set_timeout(Duration::from_secs(5));
    PaymentPrepareServiceClient::new(channel)
        .get_prepared_payment(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts the refusal of an untrusted upstream certificate: UNAVAILABLE /
/// UPSTREAM_UNAVAILABLE, saying so, and no request reached PortOne.
fn assert_certificate_refused(status: &tonic::Status, portone: &HttpsPortOne) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = error_info(status);
    assert_eq!(info.reason, "UPSTREAM_UNAVAILABLE", "{status:?}");
    let message = info
        .metadata
        .get("upstream_message")
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        message.contains("certificate") && message.contains("not trusted"),
        "{status:?}"
    );
    assert_eq!(portone.requests(), 0, "a request went past the handshake");
}

#[tokio::test]
async fn a_private_ca_named_by_ssl_cert_file_is_trusted() {
    let ca = TestCa::new("private PortOne CA");
    let portone = HttpsPortOne::start(&ca).await;
    let facade = facade(&portone, Some(&ca.cert_file()));
    let answer = get_prepared(&facade, "tls-order-1").await.unwrap();
    assert_eq!(answer.prepared_payment.unwrap().merchant_uid, "tls-order-1");
    assert!(portone.requests() >= 2, "getToken and the GET");
}

#[tokio::test]
async fn without_ssl_cert_file_a_certificate_from_a_private_ca_is_refused() {
    let ca = TestCa::new("private PortOne CA");
    let portone = HttpsPortOne::start(&ca).await;
    let facade = facade(&portone, None);
    let status = get_prepared(&facade, "tls-order-2").await.unwrap_err();
    assert_certificate_refused(&status, &portone);
}

#[tokio::test]
async fn a_certificate_from_another_ca_than_ssl_cert_file_names_is_refused() {
    let ca = TestCa::new("private PortOne CA");
    let other = TestCa::new("some other CA");
    let portone = HttpsPortOne::start(&ca).await;
    let facade = facade(&portone, Some(&other.cert_file()));
    let status = get_prepared(&facade, "tls-order-3").await.unwrap_err();
    assert_certificate_refused(&status, &portone);
}
