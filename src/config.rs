//! Configuration: flags with environment fallbacks (DESIGN §4). Secrets are
//! [`SecretString`]s, so no `Debug` of the configuration can print them.

use std::{fs, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    authz::{POLICY_VARIABLE, PolicyError, PolicySettings},
    secret::{ExposeSecret, SecretString},
    tls::{CERT_VARIABLE, CLIENT_CA_VARIABLE, KEY_VARIABLE, TlsError, TlsFiles, TlsSettings},
};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "portone-facade",
    version = crate::VERSION,
    about = "gRPC facade over PortOne's V1 payment REST API",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A helper command; without one, the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Helper commands beside serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Asks a running facade for its health (a gRPC health client); exits 0
    /// when SERVING, 1 otherwise. For probes and `helm test`.
    Healthcheck(HealthcheckArgs),
    /// Runs only the embedded PortOne emulator (for local development and
    /// benchmarks); prints its URL and credentials as one JSON line.
    Sandbox(SandboxArgs),
}

/// Flags of `healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// host:port of the facade.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Service to check; empty means the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Flags of `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address the emulator listens on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen_addr: SocketAddr,
    /// Delay added to every API answer (not getToken), to emulate a slow PortOne.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines.
    Text,
}

/// Whether the audit trail is written (DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditLog {
    /// One JSON line on stdout per API call, whatever `RUST_LOG` says.
    On,
    /// No audit lines.
    Off,
}

/// Flags and environment of the server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,
    /// Base URL of PortOne's token and prepare API.
    #[arg(
        long,
        env = "PORTONE_API_URL",
        default_value = "https://api.iamport.kr"
    )]
    pub api_url: String,
    /// Base URL of PortOne's payment-link API (`https://api.iamport-dev.co` for PortOne's dev).
    #[arg(
        long,
        env = "PORTONE_LINK_API_URL",
        default_value = "https://api.iamport.co"
    )]
    pub link_api_url: String,
    /// PortOne `imp_key` (prefer PORTONE_IMP_KEY_FILE).
    #[arg(long, env = "PORTONE_IMP_KEY", hide_env_values = true)]
    pub imp_key: Option<SecretString>,
    /// File holding the PortOne `imp_key` (e.g. a Kubernetes Secret volume).
    #[arg(long, env = "PORTONE_IMP_KEY_FILE")]
    pub imp_key_file: Option<PathBuf>,
    /// PortOne `imp_secret` (prefer PORTONE_IMP_SECRET_FILE).
    #[arg(long, env = "PORTONE_IMP_SECRET", hide_env_values = true)]
    pub imp_secret: Option<SecretString>,
    /// File holding the PortOne `imp_secret`.
    #[arg(long, env = "PORTONE_IMP_SECRET_FILE")]
    pub imp_secret_file: Option<PathBuf>,
    /// Default merchant id (`user_code`) for payment links.
    #[arg(long, env = "PORTONE_USER_CODE")]
    pub user_code: Option<String>,
    /// Longest wait for one upstream attempt; the caller's deadline caps it.
    #[arg(long, env = "UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Drain time after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// After SIGTERM, health turns NOT_SERVING at once but new calls are still
    /// taken this long before the drain (for clusters without a preStop sleep).
    #[arg(long, env = "SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
    /// GOAWAY to connections older than this (±10%), so that clients spread
    /// over new pods after a scale-up.
    #[arg(long, env = "MAX_CONNECTION_AGE", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,
    /// Most API calls in flight; beyond it calls get RESOURCE_EXHAUSTED (OVERLOADED).
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Run against the embedded PortOne emulator with its own test credentials.
    #[arg(long, env = "PORTONE_SANDBOX")]
    pub sandbox: bool,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Serve the metrics in Prometheus text format at `/metrics` on this
    /// address, beside OTLP (off when unset).
    #[arg(long, env = "METRICS_LISTEN_ADDR")]
    pub metrics_listen_addr: Option<SocketAddr>,
    /// The audit trail: one JSON line on stdout per API call, whatever
    /// RUST_LOG says; `off` stops it.
    #[arg(long, env = "AUDIT_LOG", value_enum, default_value = "on")]
    pub audit_log: AuditLog,
    /// Serve TLS 1.2/1.3 on LISTEN_ADDR with this PEM certificate chain
    /// (leaf first; with TLS_KEY_FILE); plaintext is then refused. Re-read
    /// when it changes.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of TLS_CERT_FILE. Re-read when it changes.
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by one of these PEM CAs: mutual
    /// TLS, the caller identified by its certificate (needs TLS_CERT_FILE).
    /// Re-read when it changes.
    #[arg(long, env = "TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// JSON policy of which callers may call which RPCs (needs
    /// TLS_CLIENT_CA_FILE); without it every authenticated caller may call
    /// everything. Re-read when it changes.
    #[arg(long, env = "AUTHZ_POLICY_FILE")]
    pub authz_policy_file: Option<PathBuf>,
    /// A second, plaintext listener serving only grpc.health.v1 (for
    /// kubelet probes when the main port is TLS); off when unset.
    #[arg(long, env = "HEALTH_LISTEN_ADDR")]
    pub health_listen_addr: Option<SocketAddr>,
}

/// Where the facade sends its calls.
#[derive(Debug)]
pub enum Upstream {
    /// The embedded emulator, started by the server.
    Sandbox,
    /// PortOne itself.
    PortOne {
        /// Token and prepare API.
        api_url: String,
        /// Payment-link API.
        link_api_url: String,
        /// `imp_key`.
        imp_key: SecretString,
        /// `imp_secret`.
        imp_secret: SecretString,
    },
}

/// Checked settings of the server.
#[derive(Debug)]
pub struct Settings {
    /// gRPC listen address.
    pub listen_addr: SocketAddr,
    /// Where calls go.
    pub upstream: Upstream,
    /// Default `user_code` for links.
    pub user_code: Option<String>,
    /// Per-attempt upstream timeout.
    pub upstream_timeout: Duration,
    /// Drain time.
    pub shutdown_grace: Duration,
    /// Time between NOT_SERVING and the drain.
    pub shutdown_delay: Duration,
    /// Connection age before GOAWAY.
    pub max_connection_age: Duration,
    /// In-flight limit.
    pub max_in_flight: usize,
    /// TLS on the gRPC port, mutual when it has client CAs.
    pub tls: Option<TlsSettings>,
    /// Who may call what (only with mutual TLS).
    pub authz_policy: Option<PolicySettings>,
    /// The plaintext health-only listener.
    pub health_listen_addr: Option<SocketAddr>,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Credentials are missing and `--sandbox` is off.
    #[error(
        "missing PortOne credentials: set {0} (or run with --sandbox for the embedded PortOne emulator)"
    )]
    MissingCredentials(String),
    /// A `*_FILE` could not be read.
    #[error("cannot read {variable} from {path}: {source}")]
    SecretFile {
        /// The variable naming the file.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A URL setting is not an absolute http(s) URL.
    #[error("{variable} must be an absolute http:// or https:// URL, got {value:?}")]
    BadUrl {
        /// The setting.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// A duration is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// A setting that needs another that is not set.
    #[error("{set} is set but {missing} is not: {why}")]
    Needs {
        /// The setting given.
        set: &'static str,
        /// The setting it needs.
        missing: &'static str,
        /// Why it needs it.
        why: &'static str,
    },
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The authorization policy is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl ServeArgs {
    /// Checks the settings and reads the credential files.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        if self.upstream_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("UPSTREAM_TIMEOUT"));
        }
        let upstream = if self.sandbox {
            Upstream::Sandbox
        } else {
            let imp_key = secret(self.imp_key, self.imp_key_file, "PORTONE_IMP_KEY_FILE")?;
            let imp_secret = secret(
                self.imp_secret,
                self.imp_secret_file,
                "PORTONE_IMP_SECRET_FILE",
            )?;
            let missing: Vec<&str> = [
                (
                    imp_key.is_none(),
                    "PORTONE_IMP_KEY (or PORTONE_IMP_KEY_FILE)",
                ),
                (
                    imp_secret.is_none(),
                    "PORTONE_IMP_SECRET (or PORTONE_IMP_SECRET_FILE)",
                ),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect();
            let (Some(imp_key), Some(imp_secret)) = (imp_key, imp_secret) else {
                return Err(ConfigError::MissingCredentials(missing.join(" and ")));
            };
            Upstream::PortOne {
                api_url: http_url("PORTONE_API_URL", self.api_url)?,
                link_api_url: http_url("PORTONE_LINK_API_URL", self.link_api_url)?,
                imp_key,
                imp_secret,
            }
        };
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsSettings::load(TlsFiles::new(
                cert,
                key,
                self.tls_client_ca_file,
            ))?),
            (Some(_), None) => return Err(needs(CERT_VARIABLE, KEY_VARIABLE, PAIR)),
            (None, Some(_)) => return Err(needs(KEY_VARIABLE, CERT_VARIABLE, PAIR)),
            (None, None) if self.tls_client_ca_file.is_some() => {
                return Err(needs(
                    CLIENT_CA_VARIABLE,
                    CERT_VARIABLE,
                    "mutual TLS needs the server's own certificate and key (TLS_CERT_FILE and TLS_KEY_FILE)",
                ));
            }
            (None, None) => None,
        };
        let authz_policy = match self.authz_policy_file {
            Some(_) if !tls.as_ref().is_some_and(TlsSettings::is_mutual) => {
                return Err(needs(
                    POLICY_VARIABLE,
                    CLIENT_CA_VARIABLE,
                    "without mutual TLS there are no caller identities to authorize",
                ));
            }
            Some(path) => Some(PolicySettings::load(path)?),
            None => None,
        };
        Ok(Settings {
            listen_addr: self.listen_addr,
            upstream,
            user_code: self.user_code.filter(|code| !code.trim().is_empty()),
            upstream_timeout: self.upstream_timeout,
            shutdown_grace: self.shutdown_grace,
            shutdown_delay: self.shutdown_delay,
            max_connection_age: self.max_connection_age,
            max_in_flight: self.max_in_flight as usize,
            tls,
            authz_policy,
            health_listen_addr: self.health_listen_addr,
        })
    }
}

/// Why TLS needs both files.
const PAIR: &str = "TLS needs both the certificate chain and its private key";

fn needs(set: &'static str, missing: &'static str, why: &'static str) -> ConfigError {
    ConfigError::Needs { set, missing, why }
}

/// The secret from its file or its value, trimmed; empty counts as missing.
fn secret(
    value: Option<SecretString>,
    file: Option<PathBuf>,
    variable: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    match file {
        Some(path) => {
            let text = fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                variable,
                path: path.clone(),
                source,
            })?;
            Ok(trimmed(&SecretString::from(text)))
        }
        None => Ok(value.as_ref().and_then(trimmed)),
    }
}

/// `secret` without surrounding whitespace, unless nothing is left. The text
/// is read here only to be trimmed, never printed.
fn trimmed(secret: &SecretString) -> Option<SecretString> {
    let text = secret.expose_secret().trim();
    (!text.is_empty()).then(|| SecretString::from(text))
}

fn http_url(variable: &'static str, value: String) -> Result<String, ConfigError> {
    match reqwest::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(value)
        }
        _ => Err(ConfigError::BadUrl { variable, value }),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn debug_of_the_arguments_and_settings_never_shows_the_secrets() {
        let cli = Cli::try_parse_from([
            "portone-facade",
            "--imp-key",
            " key-value-1234 ",
            "--imp-secret",
            "secret-value-5678",
        ])
        .unwrap();
        let args = format!("{:?}", cli.serve);
        let settings = format!("{:?}", cli.serve.resolve().unwrap());
        for printed in [args, settings] {
            assert!(
                !printed.contains("key-value-1234") && !printed.contains("secret-value-5678"),
                "{printed}"
            );
        }
    }

    #[test]
    fn secrets_are_trimmed_and_blank_ones_are_missing() {
        let key = secret(
            Some(SecretString::from(" key\n")),
            None,
            "PORTONE_IMP_KEY_FILE",
        )
        .unwrap()
        .unwrap();
        assert_eq!(key.expose_secret(), "key");
        let blank = secret(
            Some(SecretString::from(" \n")),
            None,
            "PORTONE_IMP_KEY_FILE",
        );
        assert!(blank.unwrap().is_none());
    }
}
