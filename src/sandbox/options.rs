//! How the emulator behaves, and the credentials it accepts by default.

use std::time::Duration;

/// The sandbox's `imp_key`.
pub const SANDBOX_IMP_KEY: &str = "sandbox_imp_key";
/// The sandbox's `imp_secret`.
pub const SANDBOX_IMP_SECRET: &str = "sandbox_imp_secret";
/// The default `user_code` the facade uses with the sandbox.
pub const SANDBOX_USER_CODE: &str = "imp00000000";

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The `imp_key` it accepts.
    pub imp_key: String,
    /// The `imp_secret` it accepts.
    pub imp_secret: String,
    /// Lifetime of an issued token (PortOne: 30 minutes).
    pub token_lifetime: Duration,
    /// Added before every answer of the API endpoints (not getToken), to
    /// emulate a slow PortOne in benchmarks.
    pub latency: Duration,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            imp_key: SANDBOX_IMP_KEY.to_owned(),
            imp_secret: SANDBOX_IMP_SECRET.to_owned(),
            token_lifetime: Duration::from_secs(30 * 60),
            latency: Duration::ZERO,
        }
    }
}
