//! The decimal amount type: money travels as decimal text, never as binary
//! floating point, so no caller can lose a cent on the way to PortOne.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Most digits (integer and fraction together) an amount may have, so that
/// PortOne's JSON number carries it exactly.
pub const MAX_DIGITS: usize = 15;
/// Most fraction digits an amount may have.
pub const MAX_FRACTION_DIGITS: usize = 3;

/// Why a text is not a valid amount; the message is meant for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Nothing was given.
    #[error("is required: a decimal string such as \"10000\" or \"19.99\"")]
    Empty,
    /// The text does not match `^(0|[1-9][0-9]*)(\.[0-9]{1,3})?$`.
    #[error(
        "must be a plain decimal string such as \"10000\" or \"19.99\" (digits, at most 3 after a '.', no sign, exponent, spaces or leading zeros)"
    )]
    Syntax,
    /// More than [`MAX_DIGITS`] digits.
    #[error("has more than 15 digits")]
    TooManyDigits,
    /// Zero.
    #[error("must be greater than zero")]
    Zero,
    /// A fraction where only whole numbers are accepted.
    #[error("must be a whole number here (PortOne takes an integer)")]
    NotWhole,
    /// An upstream JSON number that is negative, not finite or not exact.
    #[error("is not an exact positive amount")]
    NotExact,
}

/// A positive amount of money with at most 15 digits and 3 fraction digits.
///
/// It keeps the caller's decimal text (sent to PortOne digit for digit) and
/// its value in thousandths (for comparing `"19.9"` with `"19.90"`).
/// Equality compares values.
#[derive(Clone)]
pub struct Money {
    text: String,
    thousandths: u64,
}

impl Money {
    /// Parses a caller's decimal string; nothing is trimmed or normalised.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let thousandths = decimal_thousandths(text)?;
        if thousandths == 0 {
            return Err(MoneyError::Zero);
        }
        Ok(Money {
            text: text.to_owned(),
            thousandths,
        })
    }

    /// Parses a caller's decimal string that must also be a whole number.
    pub fn parse_whole(text: &str) -> Result<Money, MoneyError> {
        let money = Money::parse(text)?;
        if money.whole_units().is_none() {
            return Err(MoneyError::NotWhole);
        }
        Ok(money)
    }

    /// Reads an amount from an upstream JSON number, as the shortest decimal
    /// string that round-trips (`10000`, not `10000.0`; `19.99`, not
    /// `19.989999…`).
    pub fn from_json_number(number: &serde_json::Number) -> Result<Money, MoneyError> {
        Money::parse(&json_number_text(number)?).map_err(|_| MoneyError::NotExact)
    }

    /// The decimal text, exactly as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount in whole units when it has no fraction (`"19.000"` → 19).
    pub fn whole_units(&self) -> Option<u64> {
        (self.thousandths % 1000 == 0).then_some(self.thousandths / 1000)
    }
}

impl PartialEq for Money {
    fn eq(&self, other: &Money) -> bool {
        self.thousandths == other.thousandths
    }
}

impl Eq for Money {}

impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Money) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Money {
    fn cmp(&self, other: &Money) -> std::cmp::Ordering {
        self.thousandths.cmp(&other.thousandths)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({})", self.text)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Serialises as a JSON number written from the decimal digits themselves,
/// never through `f64`.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text is a valid JSON number by construction.
        let raw = RawValue::from_string(self.text.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// The value of a decimal string in thousandths, checking the syntax and the
/// digit limits of [`Money`] but not that it is above zero.
fn decimal_thousandths(text: &str) -> Result<u64, MoneyError> {
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
        return Err(MoneyError::Syntax);
    }
    let frac = frac.unwrap_or("");
    if text.contains('.') && (!all_digits(frac) || frac.len() > MAX_FRACTION_DIGITS) {
        return Err(MoneyError::Syntax);
    }
    if int.len() + frac.len() > MAX_DIGITS {
        return Err(MoneyError::TooManyDigits);
    }
    // At most 15 digits, so the value in thousandths stays below 10^18.
    let mut thousandths: u64 = 0;
    for b in int.bytes() {
        thousandths = thousandths * 10 + u64::from(b - b'0');
    }
    let mut frac_digits = frac.bytes();
    for _ in 0..MAX_FRACTION_DIGITS {
        let digit = frac_digits.next().map_or(0, |b| u64::from(b - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    Ok(thousandths)
}

/// An upstream JSON number as the shortest decimal text that reads back to
/// it; negative and non-finite numbers are refused.
fn json_number_text(number: &serde_json::Number) -> Result<String, MoneyError> {
    if let Some(whole) = number.as_u64() {
        return Ok(whole.to_string());
    }
    if number.is_i64() {
        return Err(MoneyError::NotExact);
    }
    let value = number.as_f64().ok_or(MoneyError::NotExact)?;
    if !value.is_finite() || value < 0.0 {
        return Err(MoneyError::NotExact);
    }
    // Rust's float Display is the shortest text that reads back to the same
    // f64, and it never uses an exponent.
    Ok(value.to_string())
}

/// An amount PortOne reports on a payment (`amount`, `cancel_amount`): read
/// like [`Money`] from a JSON number, but zero is a valid value here (nothing
/// cancelled; a payment of nothing, such as a billing-key registration).
#[derive(Clone)]
pub struct Amount {
    text: String,
    thousandths: u64,
}

impl Amount {
    /// Reads an amount from an upstream JSON number, as the shortest decimal
    /// string that round-trips; at most 15 digits and 3 fraction digits.
    pub fn from_json_number(number: &serde_json::Number) -> Result<Amount, MoneyError> {
        let text = json_number_text(number)?;
        let thousandths = decimal_thousandths(&text).map_err(|_| MoneyError::NotExact)?;
        Ok(Amount { text, thousandths })
    }

    /// The shortest decimal text (`"0"`, `"19.99"`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.thousandths == 0
    }
}

/// Exact decimal comparison: `19.99` is not `19.98`, `19.9` is `19.90`.
impl PartialEq<Money> for Amount {
    fn eq(&self, other: &Money) -> bool {
        self.thousandths == other.thousandths
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Amount) -> bool {
        self.thousandths == other.thousandths
    }
}

impl Eq for Amount {}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.text)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_decimals() {
        for ok in [
            "1",
            "10000",
            "19.99",
            "0.5",
            "0.001",
            "999999999999999",
            "123456789012.345",
        ] {
            assert_eq!(
                Money::parse(ok).map(|m| m.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn rejects_everything_that_is_not_a_plain_positive_decimal() {
        let cases = [
            ("", MoneyError::Empty),
            ("-1", MoneyError::Syntax),
            ("+1", MoneyError::Syntax),
            (" 1", MoneyError::Syntax),
            ("1 ", MoneyError::Syntax),
            ("01", MoneyError::Syntax),
            ("1.", MoneyError::Syntax),
            (".5", MoneyError::Syntax),
            ("1e3", MoneyError::Syntax),
            ("1.2345", MoneyError::Syntax),
            ("1,000", MoneyError::Syntax),
            ("NaN", MoneyError::Syntax),
            ("١٢", MoneyError::Syntax),
            ("0", MoneyError::Zero),
            ("0.000", MoneyError::Zero),
            ("1000000000000000", MoneyError::TooManyDigits),
            ("1234567890123.456", MoneyError::TooManyDigits),
        ];
        for (text, err) in cases {
            assert_eq!(Money::parse(text).err(), Some(err), "{text:?}");
        }
    }

    #[test]
    fn equality_compares_values_not_text() {
        assert_eq!(Money::parse("19.9"), Money::parse("19.900"));
        assert_ne!(Money::parse("19.9"), Money::parse("19.91"));
    }

    #[test]
    fn whole_numbers_are_told_apart() {
        assert_eq!(Money::parse("19.000").unwrap().whole_units(), Some(19));
        assert_eq!(Money::parse_whole("19.5").err(), Some(MoneyError::NotWhole));
    }

    #[test]
    fn serialises_as_the_exact_json_number() {
        let json = serde_json::to_string(&Money::parse("123456789012.345").unwrap()).unwrap();
        assert_eq!(json, "123456789012.345");
        let json = serde_json::to_string(&Money::parse("19.990").unwrap()).unwrap();
        assert_eq!(json, "19.990");
    }

    #[test]
    fn reads_upstream_numbers_as_the_shortest_exact_text() {
        let read = |json: &str| {
            let number: serde_json::Number = serde_json::from_str(json).unwrap();
            Money::from_json_number(&number).map(|m| m.as_str().to_owned())
        };
        assert_eq!(read("10000"), Ok("10000".into()));
        assert_eq!(read("10000.0"), Ok("10000".into()));
        assert_eq!(read("19.99"), Ok("19.99".into()));
        assert_eq!(read("19.989999999999998"), Ok("19.99".into()));
        assert_eq!(read("999999999999999"), Ok("999999999999999".into()));
        assert_eq!(read("-5"), Err(MoneyError::NotExact));
        assert_eq!(read("0"), Err(MoneyError::NotExact));
    }

    #[test]
    fn payment_amounts_may_be_zero_and_compare_exactly_with_money() {
        let read = |json: &str| {
            let number: serde_json::Number = serde_json::from_str(json).unwrap();
            Amount::from_json_number(&number)
        };
        assert_eq!(read("0").unwrap().as_str(), "0");
        assert_eq!(read("0.0").unwrap().as_str(), "0");
        assert!(read("0").unwrap().is_zero());
        assert_eq!(read("19.99").unwrap(), Money::parse("19.990").unwrap());
        assert!(read("19.98").unwrap() != Money::parse("19.99").unwrap());
        assert_eq!(read("-1").err(), Some(MoneyError::NotExact));
        assert_eq!(read("1.2345").err(), Some(MoneyError::NotExact));
    }
}
