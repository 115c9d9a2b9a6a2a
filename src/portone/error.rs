//! What can go wrong talking to PortOne, in PortOne's terms (no gRPC here).

use std::time::Duration;

/// The kind of upstream outcome, one per row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// HTTP 400 (or another 4xx without a row of its own): PortOne refused the request.
    Rejected,
    /// HTTP 401 after one token refresh and retry, or getToken refused.
    AuthFailed,
    /// HTTP 403.
    Forbidden,
    /// HTTP 404.
    NotFound,
    /// HTTP 409.
    Conflict,
    /// HTTP 429.
    RateLimited,
    /// HTTP 2xx with a non-zero `code`.
    Business,
    /// HTTP 5xx, connection refused or reset, or a body that is not the expected JSON.
    Unavailable,
    /// The caller's deadline or the per-attempt upstream timeout ran out.
    Timeout,
}

/// An upstream failure with the evidence of the last answer PortOne gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    /// Which row of the error table.
    pub kind: UpstreamErrorKind,
    /// HTTP status of the last answer; `None` when there was no answer.
    pub http_status: Option<u16>,
    /// PortOne's `code` in the last answer, when it sent one.
    pub upstream_code: Option<i64>,
    /// PortOne's `message`, verbatim (often Korean); where there was no
    /// answer, what happened, in English.
    pub upstream_message: String,
    /// How long PortOne asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// Marker PortOne puts in the message of a duplicate `POST /payments/prepare`.
const ALREADY_REGISTERED_MARKER: &str = "이미 등록된 merchant_uid";

impl UpstreamError {
    /// An error with no HTTP answer behind it (refused, reset, timed out).
    pub fn without_answer(kind: UpstreamErrorKind, what_happened: impl Into<String>) -> Self {
        UpstreamError {
            kind,
            http_status: None,
            upstream_code: None,
            upstream_message: what_happened.into(),
            retry_after: None,
        }
    }

    /// Whether this is PortOne's answer to a second `POST /payments/prepare`
    /// for a `merchant_uid` that is already registered: HTTP 200, `code` 1 and
    /// a message saying so.
    pub fn is_already_registered(&self) -> bool {
        self.kind == UpstreamErrorKind::Business
            && self.upstream_code == Some(1)
            && (self.upstream_message.contains(ALREADY_REGISTERED_MARKER)
                || self
                    .upstream_message
                    .to_ascii_lowercase()
                    .contains("already registered"))
    }
}
