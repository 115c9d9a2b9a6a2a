//! A certificate authority made at test time, and certificates it signs,
//! written as PEM files into a directory of the test's own; a TLS client of
//! the facade with or without a client certificate; and the file layout of
//! a Kubernetes Secret volume, rotated as the kubelet rotates it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Channel, Endpoint};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and the directory its files go to (removed when dropped).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    pub dir: PathBuf,
}

/// A certificate and its key, as PEM files and as rustls values.
pub struct Leaf {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `ca.pem`.
    pub fn new(name: &str) -> TestCa {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "portone-facade-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let certificate_pem = certificate.pem();
        std::fs::write(dir.join("ca.pem"), &certificate_pem).unwrap();
        TestCa {
            certificate_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
            certificate_pem,
            dir,
        }
    }

    /// `ca.pem`.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate as PEM text.
    pub fn pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, for a rustls root store.
    pub fn der(&self) -> CertificateDer<'static> {
        self.certificate_der.clone()
    }

    /// A server certificate for 127.0.0.1 and `localhost`, as `<name>.pem`
    /// and `<name>.key`.
    pub fn server(&self, name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(name, params)
    }

    /// The CA's directory, for other files of the test.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A client certificate with the subject CN `common_name` and, when
    /// given, these SANs (`spiffe://…` URIs or DNS names).
    pub fn client(&self, name: &str, common_name: &str, sans: &[SanType]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans.to_vec();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(name, params)
    }

    fn leaf(&self, name: &str, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{name}.pem"));
        let key_file = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Leaf {
            cert_file,
            key_file,
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A rustls server config for `leaf`; with `client_ca`, client
    /// certificates from it are required.
    pub fn rustls_server(leaf: &Leaf, client_ca: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                builder.with_client_cert_verifier(
                    rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                        .build()
                        .unwrap(),
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Reads a file written here, as text.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS client of the facade: trusts one CA, shows a client certificate
/// when given one, speaks `h2`.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Trusts server certificates of `ca`; shows `certificate` when given.
    pub fn new(ca: &TestCa, certificate: Option<&Leaf>) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match certificate {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// One TLS connection to `addr` (server name `localhost`).
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        self.handshake(TcpStream::connect(addr).await?).await
    }

    /// The TLS handshake on a TCP connection already open.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(Arc::clone(&self.config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    /// The leaf certificate `addr` serves to a new connection.
    pub async fn served_certificate(&self, addr: SocketAddr) -> Vec<u8> {
        let stream = self.connect(addr).await.unwrap();
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// A gRPC channel to `addr` that opens a new TLS connection whenever it
    /// needs one (lazily).
    pub fn channel(&self, addr: SocketAddr) -> Channel {
        let client = self.clone();
        Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(
            move |_| {
                let client = client.clone();
                async move { client.connect(addr).await.map(TokioIo::new) }
            },
        ))
    }
}

/// A gRPC channel over `stream` alone: once that connection is gone, every
/// call fails, so a call that succeeds proves the connection still serves.
pub fn channel_over(stream: TlsStream<TcpStream>) -> Channel {
    let stream = Arc::new(Mutex::new(Some(stream)));
    Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(
        move |_| {
            let stream = stream.lock().unwrap().take();
            async move {
                stream.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::other("the one connection of this channel is gone")
                })
            }
        },
    ))
}

/// A directory laid out as the kubelet lays out a Secret volume: the data
/// in a timestamped directory, `..data` a symlink to it, and each key a
/// symlink through `..data`. [`SecretVolume::rotate`] swaps `..data`
/// atomically, as the kubelet does.
pub struct SecretVolume {
    pub dir: PathBuf,
    version: usize,
}

impl SecretVolume {
    /// The volume in `dir` holding `files` (name, contents).
    pub fn new(dir: PathBuf, files: &[(&str, &str)]) -> SecretVolume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut volume = SecretVolume { dir, version: 0 };
        volume.rotate(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.join(name)).unwrap();
        }
        volume
    }

    /// The path of key `name`, as a pod sees it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `files` into a new data directory and points `..data` at it
    /// with one rename; the old data directory is removed.
    pub fn rotate(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let data = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version,
            std::process::id()
        );
        std::fs::create_dir(self.dir.join(&data)).unwrap();
        for (name, contents) in files {
            std::fs::write(self.dir.join(&data).join(name), contents).unwrap();
        }
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let _ = std::fs::remove_file(self.dir.join("..data_tmp"));
        std::os::unix::fs::symlink(&data, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// TLS settings that serve `server`, and require client certificates of
/// `client_ca` when given.
pub fn tls_settings(server: &Leaf, client_ca: Option<&TestCa>) -> portone_facade::tls::TlsSettings {
    portone_facade::tls::TlsSettings::load(portone_facade::tls::TlsFiles::new(
        &server.cert_file,
        &server.key_file,
        client_ca.map(TestCa::cert_file),
    ))
    .unwrap()
}

/// Replaces `path` with `contents` in one rename, so that no reader sees
/// half of it.
pub fn write_atomically(path: &Path, contents: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Asserts that `status` is the client's own report of a connection the
/// server would not serve (a failed handshake, a closed connection): no
/// answer of the facade, which would carry `ErrorInfo`.
pub fn assert_connection_refused(status: &tonic::Status) {
    use tonic_types::StatusExt;
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "{status:?}"
    );
    assert!(status.get_details_error_info().is_none(), "{status:?}");
}

/// The binary with `--sandbox` on an ephemeral loopback port, serving mutual
/// TLS with a server certificate of `ca` and client certificates of `ca`.
pub fn mutual_tls_command(ca: &TestCa) -> std::process::Command {
    let server = ca.server("server");
    let mut command = super::process::binary();
    command
        .args(["--sandbox", "--listen-addr", "127.0.0.1:0"])
        .env("TLS_CERT_FILE", &server.cert_file)
        .env("TLS_KEY_FILE", &server.key_file)
        .env("TLS_CLIENT_CA_FILE", ca.cert_file());
    command
}
