//! `PaymentLinkService`.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};

use super::deadline_of;
use crate::{
    audit::AuditRecord,
    error::FacadeError,
    pb::{self, payment_link_service_server::PaymentLinkService},
    portone::PortOneClient,
    telemetry, validate,
};

/// Creates and disables payment links.
#[derive(Clone)]
pub struct LinkApi {
    client: PortOneClient,
    default_user_code: Option<String>,
}

impl LinkApi {
    /// The service over `client`; `default_user_code` fills an empty `user_code`.
    pub fn new(client: PortOneClient, default_user_code: Option<String>) -> LinkApi {
        LinkApi {
            client,
            default_user_code: default_user_code.filter(|code| !code.is_empty()),
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[tonic::async_trait]
impl PaymentLinkService for LinkApi {
    async fn create_payment_link(
        &self,
        request: Request<pb::CreatePaymentLinkRequest>,
    ) -> Result<Response<pb::CreatePaymentLinkResponse>, Status> {
        let deadline = deadline_of(&request);
        let link = validate::new_payment_link(
            request.get_ref(),
            self.default_user_code.as_deref(),
            now_unix(),
        )?;
        telemetry::record_merchant_uid(link.merchant_uid.as_str());
        let audit = AuditRecord::of(&request);
        audit.note(|line| {
            line.merchant_uid = Some(link.merchant_uid.as_str().to_owned());
            line.amount = Some(link.amount.to_string());
            line.currency = Some(link.currency.as_str().to_owned());
        });
        let created = self
            .client
            .create_link(&link, deadline)
            .await
            .map_err(FacadeError::from)?;
        audit.note(|line| line.link_id = Some(created.link_id.as_str().to_owned()));
        Ok(Response::new(pb::CreatePaymentLinkResponse {
            url: created.url,
            link_id: created.link_id.as_str().to_owned(),
            expire_at: Some(prost_types::Timestamp {
                seconds: link.expires_at_unix,
                nanos: 0,
            }),
        }))
    }

    async fn disable_payment_link(
        &self,
        request: Request<pb::DisablePaymentLinkRequest>,
    ) -> Result<Response<pb::DisablePaymentLinkResponse>, Status> {
        let deadline = deadline_of(&request);
        let link_id = validate::link_id(&request.get_ref().link_id)?;
        AuditRecord::of(&request).note(|line| line.link_id = Some(link_id.as_str().to_owned()));
        self.client
            .disable_link(&link_id, deadline)
            .await
            .map_err(FacadeError::from)?;
        Ok(Response::new(pb::DisablePaymentLinkResponse {}))
    }
}
