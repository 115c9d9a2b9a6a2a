//! The PortOne V1 REST client. It knows HTTP and PortOne, and nothing of gRPC.
//!
//! One way down: [`client`] (the endpoints and the access token) uses
//! `transport` (one call: attempts and retries), which uses `wire` (PortOne's
//! JSON) and [`error`]; `token` keeps the shared access token.

mod client;
mod error;
mod model;
mod token;
mod transport;
mod wire;

pub use client::{ClientBuildError, ClientConfig, PortOneClient};
pub use error::{UpstreamError, UpstreamErrorKind};
pub use model::{
    BuyerInfo, CreatedLink, NewPaymentLink, PayMethodInfo, Payment, PrepareRequest, Prepared,
    STATUS_PAID,
};
