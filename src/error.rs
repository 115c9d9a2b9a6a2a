//! The one mapping from every failure to a gRPC status: DESIGN §2, the error
//! table, lives in [`to_status`] and nowhere else.

use std::{collections::HashMap, fmt::Write};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::portone::{Prepared, UpstreamError, UpstreamErrorKind};

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "portone-facade";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `buyer.tel` or `pay_methods[0].pg`.
    pub field: String,
    /// What is wrong, for the caller.
    pub description: String,
}

/// A request that fails validation: every bad field, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub Vec<FieldViolation>);

/// `PreparePayment` for a `merchant_uid` that is registered with another
/// amount or currency.
#[derive(Debug, Clone)]
pub struct RegisteredDifferently {
    /// What PortOne has registered.
    pub registered: Prepared,
    /// PortOne's answer to the `POST`.
    pub answer: UpstreamError,
}

/// Every way a call can fail.
#[derive(Debug, Clone)]
pub enum FacadeError {
    /// The request fails validation; nothing was sent upstream.
    Invalid(InvalidRequest),
    /// PortOne (or the way to it) failed.
    Upstream(UpstreamError),
    /// A duplicate prepare that does not match the registration.
    RegisteredDifferently(Box<RegisteredDifferently>),
    /// Too many calls in flight.
    Overloaded {
        /// The limit that was reached.
        limit: usize,
    },
    /// The caller's deadline ran out.
    DeadlineExceeded,
    /// The authorization policy does not let this caller call this RPC.
    CallerNotAllowed {
        /// The caller's identity.
        caller: String,
        /// `package.Service/Method`.
        rpc: String,
    },
}

impl From<FacadeError> for Status {
    fn from(error: FacadeError) -> Status {
        to_status(error)
    }
}

impl From<InvalidRequest> for Status {
    fn from(invalid: InvalidRequest) -> Status {
        to_status(FacadeError::Invalid(invalid))
    }
}

impl From<UpstreamError> for FacadeError {
    fn from(error: UpstreamError) -> FacadeError {
        FacadeError::Upstream(error)
    }
}

/// The error table (DESIGN §2).
pub fn to_status(error: FacadeError) -> Status {
    match error {
        FacadeError::Invalid(InvalidRequest(violations)) => {
            let mut message = String::from("invalid request:");
            let mut details = ErrorDetails::new();
            for (i, violation) in violations.iter().enumerate() {
                let separator = if i == 0 { " " } else { "; " };
                let _ = write!(
                    message,
                    "{separator}{} {}",
                    violation.field, violation.description
                );
                details.add_bad_request_violation(&violation.field, &violation.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        FacadeError::Upstream(upstream) => {
            let (code, reason, summary) = match upstream.kind {
                UpstreamErrorKind::Rejected => (
                    Code::InvalidArgument,
                    "UPSTREAM_REJECTED",
                    "PortOne rejected the request",
                ),
                UpstreamErrorKind::AuthFailed => (
                    Code::Internal,
                    "UPSTREAM_AUTH_FAILED",
                    "PortOne refused the facade's credentials; the operator must check PORTONE_IMP_KEY and PORTONE_IMP_SECRET",
                ),
                UpstreamErrorKind::Forbidden => (
                    Code::PermissionDenied,
                    "UPSTREAM_FORBIDDEN",
                    "PortOne forbade the request",
                ),
                UpstreamErrorKind::NotFound => {
                    (Code::NotFound, "NOT_FOUND", "PortOne has no such resource")
                }
                UpstreamErrorKind::Conflict => (
                    Code::AlreadyExists,
                    "ALREADY_EXISTS",
                    "PortOne reports a conflict with an existing resource",
                ),
                UpstreamErrorKind::RateLimited => (
                    Code::ResourceExhausted,
                    "UPSTREAM_RATE_LIMITED",
                    "PortOne is rate limiting the facade",
                ),
                UpstreamErrorKind::Business => (
                    Code::FailedPrecondition,
                    "UPSTREAM_BUSINESS_ERROR",
                    "PortOne refused the operation",
                ),
                UpstreamErrorKind::Unavailable => (
                    Code::Unavailable,
                    "UPSTREAM_UNAVAILABLE",
                    "PortOne is unavailable",
                ),
                UpstreamErrorKind::Timeout => (
                    Code::DeadlineExceeded,
                    "UPSTREAM_TIMEOUT",
                    "PortOne did not answer in time",
                ),
            };
            upstream_status(code, reason, summary, &upstream, HashMap::new())
        }
        FacadeError::RegisteredDifferently(mismatch) => {
            let RegisteredDifferently { registered, answer } = *mismatch;
            let extra = HashMap::from([
                (
                    "registered_amount".to_owned(),
                    registered.amount.to_string(),
                ),
                (
                    "registered_currency".to_owned(),
                    registered.currency.clone().unwrap_or_default(),
                ),
            ]);
            let currency = registered
                .currency
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            let summary = format!(
                "merchant_uid is already prepared with amount {}{currency}, which differs from this request",
                registered.amount
            );
            upstream_status(
                Code::AlreadyExists,
                "ALREADY_EXISTS",
                &summary,
                &answer,
                extra,
            )
        }
        FacadeError::Overloaded { limit } => Status::with_error_details(
            Code::ResourceExhausted,
            format!("the facade is overloaded ({limit} calls in flight); retry with backoff"),
            ErrorDetails::with_error_info("OVERLOADED", ERROR_DOMAIN, HashMap::new()),
        ),
        FacadeError::CallerNotAllowed { caller, rpc } => Status::with_error_details(
            Code::PermissionDenied,
            format!(
                "caller {caller} is not allowed to call {rpc} by the facade's authorization policy (AUTHZ_POLICY_FILE)"
            ),
            ErrorDetails::with_error_info(
                "CALLER_NOT_ALLOWED",
                ERROR_DOMAIN,
                HashMap::from([("caller".to_owned(), caller), ("rpc".to_owned(), rpc)]),
            ),
        ),
        FacadeError::DeadlineExceeded => upstream_status(
            Code::DeadlineExceeded,
            "UPSTREAM_TIMEOUT",
            "PortOne did not answer in time",
            &UpstreamError::without_answer(
                UpstreamErrorKind::Timeout,
                "the caller's deadline ran out before PortOne answered",
            ),
            HashMap::new(),
        ),
    }
}

/// A status for an upstream outcome: `ErrorInfo` with PortOne's evidence
/// verbatim, and `RetryInfo` when PortOne asked us to wait.
fn upstream_status(
    code: Code,
    reason: &str,
    summary: &str,
    upstream: &UpstreamError,
    mut metadata: HashMap<String, String>,
) -> Status {
    if let Some(status) = upstream.http_status {
        metadata.insert("http_status".to_owned(), status.to_string());
    }
    if let Some(upstream_code) = upstream.upstream_code {
        metadata.insert("upstream_code".to_owned(), upstream_code.to_string());
    }
    metadata.insert(
        "upstream_message".to_owned(),
        upstream.upstream_message.clone(),
    );
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(wait) = upstream.retry_after {
        details.set_retry_info(Some(wait));
    }
    let mut message = summary.to_owned();
    match (upstream.http_status, upstream.upstream_code) {
        (Some(status), Some(code)) => {
            let _ = write!(
                message,
                " (HTTP {status}, code {code}): {}",
                upstream.upstream_message
            );
        }
        (Some(status), None) => {
            let _ = write!(message, " (HTTP {status}): {}", upstream.upstream_message);
        }
        (None, _) => {
            let _ = write!(message, ": {}", upstream.upstream_message);
        }
    }
    Status::with_error_details(code, message, details)
}

/// The name of a gRPC status code, as `error.type` and the audit line
/// write it.
pub(crate) fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}
