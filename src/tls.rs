//! TLS on the gRPC port, and mutual TLS (DESIGN §8): the certificate pair
//! and the client CAs read from PEM files, checked at start, re-read when
//! they change, and the caller identity read from a client certificate.
//!
//! The pair is served by a [`ResolvesServerCert`] of ours over an
//! [`ArcSwap`], so a rotated pair is in force for the next handshake while
//! open connections keep theirs. The client CAs are part of rustls's
//! client verifier, which a `ServerConfig` holds for good: a rotated CA file
//! builds a new `ServerConfig` (with the same resolver) that the accept loop
//! takes for the next connection. cert-manager rotates `ca.crt` in the same
//! Secret as the pair, so both reload the same way.

use std::{fmt, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    identity::Caller,
    watch::{ReadError, SettingFile, Watch, read_all, watch},
};

/// `TLS_CERT_FILE`.
pub const CERT_VARIABLE: &str = "TLS_CERT_FILE";
/// `TLS_KEY_FILE`.
pub const KEY_VARIABLE: &str = "TLS_KEY_FILE";
/// `TLS_CLIENT_CA_FILE`.
pub const CLIENT_CA_VARIABLE: &str = "TLS_CLIENT_CA_FILE";

/// Why a certificate pair or a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A file holds no PEM certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(SettingFile),
    /// The key file holds no PEM private key.
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(SettingFile),
    /// A file is not valid PEM.
    #[error("{file} is not valid PEM: {reason}")]
    BadPem {
        /// The file.
        file: SettingFile,
        /// What is wrong.
        reason: String,
    },
    /// A PEM block of the certificate file holds no certificate rustls can read.
    #[error("{file} holds a certificate that cannot be used: {reason}")]
    BadCertificate {
        /// The setting and its path.
        file: SettingFile,
        /// Why.
        reason: String,
    },
    /// The key is of a kind that cannot sign.
    #[error("{file} holds a key that cannot be used: {reason}")]
    BadKey {
        /// The key file.
        file: SettingFile,
        /// rustls's reason.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{key} does not match the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: SettingFile,
        /// The key file.
        key: SettingFile,
    },
    /// A CA certificate is unusable as a trust anchor.
    #[error("{file} holds a certificate that cannot be a CA: {reason}")]
    BadCa {
        /// The CA file.
        file: SettingFile,
        /// Why.
        reason: String,
    },
}

/// Where the pair and the client CAs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `TLS_CERT_FILE`: the certificate chain, leaf first.
    pub cert: SettingFile,
    /// `TLS_KEY_FILE`: its private key.
    pub key: SettingFile,
    /// `TLS_CLIENT_CA_FILE`: the CAs of client certificates; mutual TLS
    /// when set.
    pub client_ca: Option<SettingFile>,
}

impl TlsFiles {
    /// The files at these paths, named by their variables.
    pub fn new(
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
        client_ca: Option<impl Into<std::path::PathBuf>>,
    ) -> TlsFiles {
        TlsFiles {
            cert: SettingFile::new(CERT_VARIABLE, cert),
            key: SettingFile::new(KEY_VARIABLE, key),
            client_ca: client_ca.map(|path| SettingFile::new(CLIENT_CA_VARIABLE, path)),
        }
    }

    fn pair(&self) -> Vec<SettingFile> {
        vec![self.cert.clone(), self.key.clone()]
    }
}

/// The TLS settings, checked and loaded at start: what the server serves
/// until a file changes.
pub struct TlsSettings {
    files: TlsFiles,
    pair: Loaded<Arc<CertifiedKey>>,
    client_cas: Option<Loaded<Arc<dyn ClientCertVerifier>>>,
}

/// A value and the file contents it was made from.
struct Loaded<T> {
    value: T,
    contents: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads and checks the pair and the client CAs: each file readable,
    /// the certificate and key present and matching, every CA usable.
    pub fn load(files: TlsFiles) -> Result<TlsSettings, TlsError> {
        let provider = provider();
        let contents = read_all(&files.pair())?;
        let pair = Loaded {
            value: Arc::new(parse_pair(&files, &contents, &provider)?),
            contents,
        };
        let client_cas = match &files.client_ca {
            Some(file) => {
                let contents = read_all(std::slice::from_ref(file))?;
                Some(Loaded {
                    value: parse_client_cas(file, &contents, &provider)?,
                    contents,
                })
            }
            None => None,
        };
        Ok(TlsSettings {
            files,
            pair,
            client_cas,
        })
    }

    /// Whether client certificates are required.
    pub fn is_mutual(&self) -> bool {
        self.client_cas.is_some()
    }
}

/// The aws-lc-rs provider, the one reqwest uses too.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate chain and key of `contents` (the two files' bytes), the
/// key checked against the leaf certificate.
fn parse_pair(
    files: &TlsFiles,
    contents: &[Vec<u8>],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let file = |n: usize| contents.get(n).map_or(&[][..], Vec::as_slice);
    let (cert_pem, key_pem) = (file(0), file(1));
    let chain = certificates(&files.cert, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(files.key.clone()),
        other => TlsError::BadPem {
            file: files.key.clone(),
            reason: other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        // The leaf is parsed while the pair is checked: a PEM block that
        // holds no real certificate is the certificate file's fault.
        rustls::Error::InvalidCertificate(reason) => TlsError::BadCertificate {
            file: files.cert.clone(),
            reason: format!("{reason:?}"),
        },
        other => TlsError::BadKey {
            file: files.key.clone(),
            reason: other.to_string(),
        },
    })
}

/// Every certificate of a PEM file; at least one.
fn certificates(file: &SettingFile, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::BadPem {
            file: file.clone(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(file.clone()));
    }
    Ok(chain)
}

/// A verifier that requires a client certificate signed by one of the CAs
/// in `contents` (the CA file's bytes).
fn parse_client_cas(
    file: &SettingFile,
    contents: &[Vec<u8>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad = |reason: String| TlsError::BadCa {
        file: file.clone(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let pem = contents.first().map_or(&[][..], Vec::as_slice);
    for certificate in certificates(file, pem)? {
        roots
            .add(certificate)
            .map_err(|error| bad(error.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|error| bad(error.to_string()))
}

/// Serves the pair in force, whatever the client asks for: one facade,
/// one certificate.
struct ReloadingCert(ArcSwap<CertifiedKey>);

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingCert")
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// TLS as the accept loop uses it: the `ServerConfig` in force, kept up to
/// date with the files while this lives.
pub(crate) struct TlsServer {
    config: Arc<ArcSwap<ServerConfig>>,
    mutual: bool,
    _watches: Vec<Watch>,
}

impl TlsServer {
    /// Serves `settings` and starts watching their files. Must be called
    /// inside the tokio runtime.
    pub(crate) fn start(settings: TlsSettings) -> Result<TlsServer, rustls::Error> {
        let TlsSettings {
            files,
            pair,
            client_cas,
        } = settings;
        let provider = provider();
        let mutual = client_cas.is_some();
        let resolver = Arc::new(ReloadingCert(ArcSwap::new(pair.value)));
        let serves_pair: Arc<dyn ResolvesServerCert> = resolver.clone();
        let verifier = client_cas.as_ref().map(|cas| Arc::clone(&cas.value));
        let config = Arc::new(ArcSwap::from_pointee(server_config(
            &provider,
            verifier,
            Arc::clone(&serves_pair),
        )?));
        let mut watches = vec![watch(files.pair(), pair.contents, {
            let files = files.clone();
            let provider = Arc::clone(&provider);
            move |read| match read
                .map_err(TlsError::from)
                .and_then(|contents| parse_pair(&files, &contents, &provider))
            {
                Ok(pair) => {
                    resolver.0.store(Arc::new(pair));
                    tracing::info!(cert = %files.cert, key = %files.key, "TLS certificate reloaded");
                }
                Err(error) => tracing::error!(
                    %error,
                    "TLS certificate not reloaded; the previous one is still served"
                ),
            }
        })];
        if let (Some(file), Some(cas)) = (files.client_ca.clone(), client_cas) {
            let config = Arc::clone(&config);
            watches.push(watch(vec![file.clone()], cas.contents, move |read| {
                let rebuilt =
                    read.map_err(TlsError::from)
                        .and_then(|contents| parse_client_cas(&file, &contents, &provider))
                        .and_then(|verifier| {
                            server_config(&provider, Some(verifier), Arc::clone(&serves_pair))
                                .map_err(|error| TlsError::BadCa {
                                    file: file.clone(),
                                    reason: error.to_string(),
                                })
                        });
                match rebuilt {
                    Ok(rebuilt) => {
                        config.store(Arc::new(rebuilt));
                        tracing::info!(client_ca = %file, "TLS client CAs reloaded");
                    }
                    Err(error) => tracing::error!(
                        %error,
                        "TLS client CAs not reloaded; the previous ones still decide"
                    ),
                }
            }));
        }
        Ok(TlsServer {
            config,
            mutual,
            _watches: watches,
        })
    }

    /// Whether client certificates are required.
    pub(crate) fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// The acceptor for the next connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

/// TLS 1.2 and 1.3, ALPN `h2` only (gRPC is HTTP/2), client certificates
/// required when `verifier` is given.
fn server_config(
    provider: &Arc<CryptoProvider>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The caller proven by the client certificate of `connection`: its first
/// URI SAN (a SPIFFE ID), else its first DNS SAN, else its subject CN.
/// `None` without a client certificate, or for one that names nobody.
pub(crate) fn peer_caller(connection: &rustls::ServerConnection) -> Option<Caller> {
    let leaf = connection.peer_certificates()?.first()?;
    identity_of(leaf).map(Caller::new)
}

/// The identity a certificate proves, by the rule of [`peer_caller`].
fn identity_of(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|extension| extension.value.general_names.as_slice())
        .unwrap_or_default();
    // An empty name is no name: the next kind is tried.
    let uri = names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) if !uri.is_empty() => {
            Some((*uri).to_owned())
        }
        _ => None,
    });
    // DNS names are case-insensitive: one spelling, so that a policy entry
    // in lower case matches `Billing.Payments.svc`.
    let dns = || {
        names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) if !dns.is_empty() => {
                Some(dns.to_ascii_lowercase())
            }
            _ => None,
        })
    };
    let common_name = || {
        certificate
            .subject()
            .iter_common_name()
            .filter_map(|name| name.as_str().ok())
            .find(|name| !name.is_empty())
            .map(str::to_owned)
    };
    uri.or_else(dns).or_else(common_name)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    fn certificate(common_name: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(name) = common_name {
            params.distinguished_name.push(DnType::CommonName, name);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_identity_is_the_first_uri_san_then_the_first_dns_san_then_the_common_name() {
        let uri = SanType::URI("spiffe://cluster.local/ns/a/sa/b".try_into().unwrap());
        let dns = SanType::DnsName("billing.payments.svc".try_into().unwrap());
        let both = certificate(Some("cn"), vec![dns.clone(), uri]);
        assert_eq!(
            identity_of(&both).as_deref(),
            Some("spiffe://cluster.local/ns/a/sa/b")
        );
        let dns_only = certificate(Some("cn"), vec![dns]);
        assert_eq!(
            identity_of(&dns_only).as_deref(),
            Some("billing.payments.svc")
        );
        let cn_only = certificate(Some("cn"), vec![]);
        assert_eq!(identity_of(&cn_only).as_deref(), Some("cn"));
        assert_eq!(identity_of(&certificate(None, vec![])), None);
    }

    #[test]
    fn a_dns_identity_is_read_in_lower_case() {
        let dns = SanType::DnsName("Billing.Payments.SVC".try_into().unwrap());
        assert_eq!(
            identity_of(&certificate(None, vec![dns])).as_deref(),
            Some("billing.payments.svc")
        );
    }

    #[test]
    fn a_certificate_file_of_junk_in_pem_is_blamed_on_the_certificate_file() {
        let dir = std::env::temp_dir().join(format!("tls-junk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = dir.join("tls.crt");
        let key_file = dir.join("tls.key");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let error = TlsSettings::load(TlsFiles::new(cert, key_file, None::<std::path::PathBuf>))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("TLS_CERT_FILE"), "{error}");
    }
}
