//! The gRPC services: validate → call upstream → map. They know nothing of HTTP.

mod link;
mod prepare;
mod verification;

pub use link::LinkApi;
pub use prepare::PrepareApi;
pub use verification::VerificationApi;

use crate::{deadline::Deadline, pb, portone::Prepared};

/// The caller's deadline, as the server layer read it from `grpc-timeout`.
fn deadline_of<T>(request: &tonic::Request<T>) -> Deadline {
    request
        .extensions()
        .get::<Deadline>()
        .copied()
        .unwrap_or_default()
}

impl From<Prepared> for pb::PreparedPayment {
    fn from(prepared: Prepared) -> pb::PreparedPayment {
        pb::PreparedPayment {
            merchant_uid: prepared.merchant_uid,
            amount: prepared.amount.to_string(),
            currency: prepared.currency.unwrap_or_default(),
        }
    }
}
