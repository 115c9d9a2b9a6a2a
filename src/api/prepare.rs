//! `PaymentPrepareService`.

use tonic::{Request, Response, Status};

use super::deadline_of;
use crate::{
    audit::AuditRecord,
    deadline::Deadline,
    error::{FacadeError, RegisteredDifferently},
    pb::{self, payment_prepare_service_server::PaymentPrepareService},
    portone::{PortOneClient, PrepareRequest, UpstreamError},
    telemetry, validate,
};

/// Registers, reads and changes order amounts.
#[derive(Clone)]
pub struct PrepareApi {
    client: PortOneClient,
}

impl PrepareApi {
    /// The service over `client`.
    pub fn new(client: PortOneClient) -> PrepareApi {
        PrepareApi { client }
    }

    /// PortOne said the `merchant_uid` is already registered: a success if it
    /// is registered exactly as asked (e.g. our own earlier attempt whose
    /// answer was lost), else `ALREADY_EXISTS` with what is registered.
    async fn reconcile(
        &self,
        request: &PrepareRequest,
        duplicate: UpstreamError,
        deadline: Deadline,
    ) -> Result<pb::PreparePaymentResponse, FacadeError> {
        let registered = self
            .client
            .get_prepared(&request.merchant_uid, deadline)
            .await?;
        let same_currency =
            registered.currency.as_deref() == request.currency.as_ref().map(|c| c.as_str());
        if registered.amount == request.amount && same_currency {
            Ok(pb::PreparePaymentResponse {
                prepared_payment: Some(registered.into()),
                already_prepared: true,
            })
        } else {
            Err(FacadeError::RegisteredDifferently(Box::new(
                RegisteredDifferently {
                    registered,
                    answer: duplicate,
                },
            )))
        }
    }
}

#[tonic::async_trait]
impl PaymentPrepareService for PrepareApi {
    async fn prepare_payment(
        &self,
        request: Request<pb::PreparePaymentRequest>,
    ) -> Result<Response<pb::PreparePaymentResponse>, Status> {
        let deadline = deadline_of(&request);
        let audit = AuditRecord::of(&request);
        let request = request.into_inner();
        let request =
            validate::prepare_request(&request.merchant_uid, &request.amount, &request.currency)?;
        telemetry::record_merchant_uid(request.merchant_uid.as_str());
        audit_prepare(&audit, &request);
        let response = match self.client.prepare(&request, deadline).await {
            Ok(prepared) => pb::PreparePaymentResponse {
                prepared_payment: Some(prepared.into()),
                already_prepared: false,
            },
            Err(duplicate) if duplicate.is_already_registered() => {
                self.reconcile(&request, duplicate, deadline).await?
            }
            Err(error) => return Err(FacadeError::from(error).into()),
        };
        Ok(Response::new(response))
    }

    async fn get_prepared_payment(
        &self,
        request: Request<pb::GetPreparedPaymentRequest>,
    ) -> Result<Response<pb::GetPreparedPaymentResponse>, Status> {
        let deadline = deadline_of(&request);
        let merchant_uid = validate::merchant_uid(&request.get_ref().merchant_uid)?;
        telemetry::record_merchant_uid(merchant_uid.as_str());
        AuditRecord::of(&request).note(|line| {
            line.merchant_uid = Some(merchant_uid.as_str().to_owned());
        });
        let prepared = self
            .client
            .get_prepared(&merchant_uid, deadline)
            .await
            .map_err(FacadeError::from)?;
        Ok(Response::new(pb::GetPreparedPaymentResponse {
            prepared_payment: Some(prepared.into()),
        }))
    }

    async fn update_prepared_payment(
        &self,
        request: Request<pb::UpdatePreparedPaymentRequest>,
    ) -> Result<Response<pb::UpdatePreparedPaymentResponse>, Status> {
        let deadline = deadline_of(&request);
        let audit = AuditRecord::of(&request);
        let request = request.into_inner();
        let request =
            validate::prepare_request(&request.merchant_uid, &request.amount, &request.currency)?;
        telemetry::record_merchant_uid(request.merchant_uid.as_str());
        audit_prepare(&audit, &request);
        let prepared = self
            .client
            .update_prepared(&request, deadline)
            .await
            .map_err(FacadeError::from)?;
        Ok(Response::new(pb::UpdatePreparedPaymentResponse {
            prepared_payment: Some(prepared.into()),
        }))
    }
}

/// The audit fields of a registration or a change: the validated order id,
/// amount and currency.
fn audit_prepare(audit: &AuditRecord, request: &PrepareRequest) {
    audit.note(|line| {
        line.merchant_uid = Some(request.merchant_uid.as_str().to_owned());
        line.amount = Some(request.amount.as_str().to_owned());
        line.currency = request.currency.as_ref().map(|c| c.as_str().to_owned());
    });
}
