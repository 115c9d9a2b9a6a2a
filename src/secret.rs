//! A string that cannot be printed by accident.

use std::{fmt, str::FromStr};

/// A secret (PortOne key, secret or access token). `Debug` redacts it, it has
/// no `Display`, and the only way to the text is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let printed = format!(
            "{:?} {:#?}",
            Secret::new("imp_secret_value"),
            Some(Secret::new("x1"))
        );
        assert!(
            !printed.contains("imp_secret_value") && !printed.contains("x1"),
            "{printed}"
        );
    }
}
