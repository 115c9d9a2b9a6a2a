//! portone-facade: a gRPC service in front of PortOne's V1 payment REST API.
//!
//! Data flows one way: request → [`validate`] → [`portone`] client →
//! [`error`] mapping → response. [`run`] is what `main` and the tests call.

#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod authz;
pub mod config;
pub mod deadline;
pub mod error;
pub mod healthcheck;
pub mod identity;
pub mod ids;
pub mod money;
pub mod pb;
pub mod portone;
pub mod sandbox;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod verdict;
pub mod watch;

use std::future::Future;

use tokio::net::TcpListener;

use crate::{
    config::{Settings, Upstream},
    portone::{ClientConfig, PortOneClient},
    sandbox::{SANDBOX_USER_CODE, Sandbox, SandboxOptions},
    secret::SecretString,
    server::{BoxError, ServerOptions},
};

/// The version, with the git revision when the build was given one
/// (`PORTONE_FACADE_GIT_REVISION`, see `build.rs`).
pub const VERSION: &str = env!("PORTONE_FACADE_VERSION");

/// Serves on `listener` until `shutdown` completes, then drains in-flight
/// calls (bounded by `SHUTDOWN_GRACE`) and returns.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    // Kept alive for as long as the server runs.
    let mut _sandbox = None;
    let (client_config, default_user_code) = match settings.upstream {
        Upstream::Sandbox => {
            let sandbox = Sandbox::start(SandboxOptions::default()).await?;
            tracing::warn!(url = %sandbox.url(), "using the embedded PortOne sandbox: no real payments are made");
            let config = ClientConfig {
                api_url: sandbox.url(),
                link_api_url: sandbox.url(),
                imp_key: SecretString::from(sandbox.imp_key()),
                imp_secret: SecretString::from(sandbox.imp_secret()),
                attempt_timeout: settings.upstream_timeout,
            };
            _sandbox = Some(sandbox);
            (
                config,
                settings
                    .user_code
                    .or_else(|| Some(SANDBOX_USER_CODE.to_owned())),
            )
        }
        Upstream::PortOne {
            api_url,
            link_api_url,
            imp_key,
            imp_secret,
        } => (
            ClientConfig {
                api_url,
                link_api_url,
                imp_key,
                imp_secret,
                attempt_timeout: settings.upstream_timeout,
            },
            settings.user_code,
        ),
    };
    let client = PortOneClient::new(client_config)?;
    let options = ServerOptions {
        max_in_flight: settings.max_in_flight,
        shutdown_grace: settings.shutdown_grace,
        shutdown_delay: settings.shutdown_delay,
        max_connection_age: settings.max_connection_age,
        default_user_code,
        tls: settings.tls,
        authz_policy: settings.authz_policy,
        health_listen_addr: settings.health_listen_addr,
    };
    server::serve(listener, client, options, shutdown).await
}

/// Registers the SIGTERM and SIGINT handlers now, and returns a future that
/// completes on either. Call it before the server says it is listening, so
/// that no signal can arrive while the default action (exit) still applies.
/// Must be called inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).ok();
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = terminated => {}
                _ = interrupted => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
