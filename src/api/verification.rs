//! `PaymentVerificationService`.

use tonic::{Request, Response, Status};

use super::deadline_of;
use crate::{
    audit::AuditRecord,
    deadline::Deadline,
    error::FacadeError,
    ids::MerchantUid,
    pb::{self, payment_verification_service_server::PaymentVerificationService},
    portone::{Payment, PortOneClient, Prepared, UpstreamErrorKind},
    telemetry,
    validate::{self, VerifyRequest},
    verdict::{self, Judgement, Verdict},
};

/// Reads payments and checks them against their registration.
#[derive(Clone)]
pub struct VerificationApi {
    client: PortOneClient,
}

impl VerificationApi {
    /// The service over `client`.
    pub fn new(client: PortOneClient) -> VerificationApi {
        VerificationApi { client }
    }

    /// Reads the payment, then (unless rule 1 already failed) the
    /// registration of its order, under the one `deadline`, and judges.
    async fn verify(
        &self,
        request: &VerifyRequest,
        deadline: Deadline,
    ) -> Result<pb::VerifyPaymentResponse, FacadeError> {
        let payment = self.client.get_payment(&request.imp_uid, deadline).await?;
        if request.merchant_uid.is_none() {
            telemetry::record_merchant_uid(&payment.merchant_uid);
        }
        if let Some(mismatch) =
            verdict::merchant_uid_mismatch(request.merchant_uid.as_ref(), &payment)
        {
            return Ok(response(mismatch, payment, None));
        }
        let registration = self.registration_of(&payment, deadline).await?;
        let judged = verdict::against_registration(&payment, registration.as_ref());
        Ok(response(judged, payment, registration))
    }

    /// The registration of the payment's order; `None` when PortOne has none
    /// (its 404). An order id that no registration can have (empty, over 40
    /// characters, a dot segment) is not looked up: it has none.
    async fn registration_of(
        &self,
        payment: &Payment,
        deadline: Deadline,
    ) -> Result<Option<Prepared>, FacadeError> {
        let Ok(merchant_uid) = MerchantUid::parse(&payment.merchant_uid) else {
            return Ok(None);
        };
        match self.client.get_prepared(&merchant_uid, deadline).await {
            Ok(registration) => Ok(Some(registration)),
            Err(error) if error.kind == UpstreamErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

fn response(
    judged: Judgement,
    payment: Payment,
    registration: Option<Prepared>,
) -> pb::VerifyPaymentResponse {
    pb::VerifyPaymentResponse {
        verdict: pb::Verdict::from(judged.verdict).into(),
        payment: Some(payment.into()),
        prepared_payment: registration.map(Into::into),
        detail: judged.detail,
    }
}

#[tonic::async_trait]
impl PaymentVerificationService for VerificationApi {
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let deadline = deadline_of(&request);
        let audit = AuditRecord::of(&request);
        let imp_uid = validate::imp_uid(&request.get_ref().imp_uid)?;
        audit.note(|line| line.imp_uid = Some(imp_uid.as_str().to_owned()));
        let payment = self
            .client
            .get_payment(&imp_uid, deadline)
            .await
            .map_err(FacadeError::from)?;
        telemetry::record_merchant_uid(&payment.merchant_uid);
        audit.note(|line| line.merchant_uid = Some(payment.merchant_uid.clone()));
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(payment.into()),
        }))
    }

    async fn verify_payment(
        &self,
        request: Request<pb::VerifyPaymentRequest>,
    ) -> Result<Response<pb::VerifyPaymentResponse>, Status> {
        let deadline = deadline_of(&request);
        let audit = AuditRecord::of(&request);
        let request = request.into_inner();
        let request = validate::verify_request(&request.imp_uid, &request.merchant_uid)?;
        if let Some(merchant_uid) = &request.merchant_uid {
            telemetry::record_merchant_uid(merchant_uid.as_str());
        }
        audit.note(|line| {
            line.imp_uid = Some(request.imp_uid.as_str().to_owned());
            line.merchant_uid = request
                .merchant_uid
                .as_ref()
                .map(|uid| uid.as_str().to_owned());
        });
        let response = self.verify(&request, deadline).await?;
        // The order the caller asked about; when it named none, the
        // payment's own. And what the check found.
        audit.note(|line| {
            if let (None, Some(payment)) = (&line.merchant_uid, &response.payment) {
                line.merchant_uid = Some(payment.merchant_uid.clone());
            }
            line.verdict = Some(response.verdict().as_str_name());
        });
        Ok(Response::new(response))
    }
}

impl From<Verdict> for pb::Verdict {
    fn from(verdict: Verdict) -> pb::Verdict {
        match verdict {
            Verdict::Verified => pb::Verdict::Verified,
            Verdict::MerchantUidMismatch => pb::Verdict::MerchantUidMismatch,
            Verdict::NotPrepared => pb::Verdict::NotPrepared,
            Verdict::AmountMismatch => pb::Verdict::AmountMismatch,
            Verdict::CurrencyMismatch => pb::Verdict::CurrencyMismatch,
            Verdict::NotPaid => pb::Verdict::NotPaid,
        }
    }
}

/// PortOne's status text onto the enum; a text this version does not know
/// (another case included) is `UNSPECIFIED`, with the text kept beside it.
fn status_of(text: &str) -> pb::PaymentStatus {
    match text {
        "ready" => pb::PaymentStatus::Ready,
        "paid" => pb::PaymentStatus::Paid,
        "failed" => pb::PaymentStatus::Failed,
        "cancelled" => pb::PaymentStatus::Cancelled,
        _ => pb::PaymentStatus::Unspecified,
    }
}

impl From<Payment> for pb::Payment {
    fn from(payment: Payment) -> pb::Payment {
        pb::Payment {
            status: status_of(&payment.status).into(),
            imp_uid: payment.imp_uid,
            merchant_uid: payment.merchant_uid,
            amount: payment.amount.to_string(),
            cancel_amount: payment.cancel_amount.to_string(),
            currency: payment.currency,
            status_text: payment.status,
            pay_method: payment.pay_method,
            pg_provider: payment.pg_provider,
            name: payment.name,
            paid_at: payment
                .paid_at
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
            sandbox: payment.sandbox,
            receipt_url: payment.receipt_url,
        }
    }
}
