//! Secrets are `secrecy`'s [`SecretString`]: zeroized when dropped, redacted
//! in `Debug`, with no `Display`, `Clone` or `PartialEq`. The text is reached
//! only through [`ExposeSecret::expose_secret`], at the one place each
//! secret is sent (the getToken body).

use std::{convert::Infallible, sync::Arc};

pub use secrecy::{ExposeSecret, SecretString};

/// A secret that the parsed flags, the settings and the client hold without
/// copying it: one zeroized copy behind an `Arc`.
pub type Secret = Arc<SecretString>;

/// Wraps `text` as a [`Secret`].
pub fn secret(text: impl Into<String>) -> Secret {
    Arc::new(SecretString::from(text.into()))
}

/// Parses a flag or variable straight into a [`Secret`], so that the value
/// never sits in the parsed flags as plain text.
pub fn parse_secret(text: &str) -> Result<Secret, Infallible> {
    Ok(secret(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let printed = format!("{:?} {:#?}", secret("imp_secret_value"), Some(secret("x1")));
        assert!(
            !printed.contains("imp_secret_value") && !printed.contains("x1"),
            "{printed}"
        );
    }
}
