//! Identifiers whose rules are carried by their types.

use std::fmt;

/// Most characters (Unicode scalar values) in a `merchant_uid`: PortOne's limit.
pub const MERCHANT_UID_MAX_CHARS: usize = 40;

/// A merchant's order id: 1 to 40 characters, no control characters, and
/// usable as one URL path segment.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MerchantUid(String);

impl MerchantUid {
    /// Checks a caller's order id; the error is a description for the caller.
    pub fn parse(text: &str) -> Result<MerchantUid, &'static str> {
        if text.is_empty() {
            return Err("is required");
        }
        if text.chars().count() > MERCHANT_UID_MAX_CHARS {
            return Err("must be at most 40 characters");
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        // URL parsers resolve these as dot segments, so GET
        // /payments/prepare/.. would address another resource.
        if text == "." || text == ".." {
            return Err("must not be \".\" or \"..\"");
        }
        Ok(MerchantUid(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MerchantUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerchantUid({:?})", self.0)
    }
}

impl fmt::Display for MerchantUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A payment link's id: `^[A-Za-z0-9_-]{1,64}$`, so it can never steer a
/// request to another upstream path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkId(String);

impl LinkId {
    /// Checks a link id; the error is a description for the caller.
    pub fn parse(text: &str) -> Result<LinkId, &'static str> {
        path_safe_id(text).map(|()| LinkId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkId({})", self.0)
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `^[A-Za-z0-9_-]{1,64}$`: an id that is one URL path segment as it
/// stands, with no `/`, `.`, `%` or anything else to encode or resolve.
fn path_safe_id(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("is required");
    }
    if text.len() > 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// PortOne's payment id (`imp_uid`, e.g. `imp_448280090638`):
/// `^[A-Za-z0-9_-]{1,64}$`, so it can never steer a request to another
/// upstream path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImpUid(String);

impl ImpUid {
    /// Checks a payment id; the error is a description for the caller.
    pub fn parse(text: &str) -> Result<ImpUid, &'static str> {
        path_safe_id(text).map(|()| ImpUid(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ImpUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImpUid({})", self.0)
    }
}

impl fmt::Display for ImpUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Checks a currency code; the error is a description for the caller.
    pub fn parse(text: &str) -> Result<Currency, &'static str> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(text.to_owned()))
        } else {
            Err("must be an ISO 4217 code of three upper-case letters, such as \"KRW\"")
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_uid_counts_characters_not_bytes() {
        assert!(MerchantUid::parse(&"주".repeat(40)).is_ok());
        assert!(MerchantUid::parse(&"주".repeat(41)).is_err());
    }

    #[test]
    fn merchant_uid_refuses_control_characters_and_dot_segments() {
        for bad in ["", "a\nb", "a\u{7f}", ".", ".."] {
            assert!(MerchantUid::parse(bad).is_err(), "{bad:?}");
        }
        assert!(MerchantUid::parse("order/1?x#y").is_ok());
    }

    #[test]
    fn link_id_cannot_hold_a_slash_or_dots() {
        for bad in ["", "a/b", "..", "a.b", "a%2Fb", &"a".repeat(65)] {
            assert!(LinkId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(LinkId::parse("4bdf239e_A-z").is_ok());
    }

    #[test]
    fn imp_uid_cannot_hold_a_slash_or_dots() {
        for bad in [
            "",
            "imp/1",
            "..",
            "imp.1",
            "imp%2F1",
            "imp 1",
            &"i".repeat(65),
        ] {
            assert!(ImpUid::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ImpUid::parse("imp_448280090638").is_ok());
        assert!(ImpUid::parse(&"i".repeat(64)).is_ok());
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert!(Currency::parse("KRW").is_ok());
        for bad in ["krw", "KR", "KRWW", "K1W", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }
}
