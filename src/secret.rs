//! Secrets (PortOne key, secret and access token) are `secrecy`'s
//! [`SecretString`]: `Debug` redacts it, it has no `Display`, it is zeroed
//! when dropped, and the only way to the text is
//! [`ExposeSecret::expose_secret`], called where the text is sent.

pub use secrecy::{ExposeSecret, SecretString};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let printed = format!(
            "{:?} {:#?}",
            SecretString::from("imp_secret_value"),
            Some(SecretString::from("x1"))
        );
        assert!(
            !printed.contains("imp_secret_value") && !printed.contains("x1"),
            "{printed}"
        );
    }
}
