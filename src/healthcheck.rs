//! `portone-facade healthcheck`: a gRPC health client, so probes and
//! `helm test` need no other image.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::server::BoxError;

/// Asks `addr` for the health of `service` (empty: the whole server).
pub async fn check(
    addr: &str,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, BoxError> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| {
            format!(
                "no connection to {addr} within {}",
                humantime::format_duration(timeout)
            )
        })??;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}
