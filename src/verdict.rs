//! The verdict of `VerifyPayment` (DESIGN §9): a payment compared with what
//! was registered for its order. Pure comparison, no I/O: the service reads
//! the payment and the registration between [`merchant_uid_mismatch`]
//! (rule 1) and [`against_registration`] (rules 2 to 5).
//!
//! The rules, in order; the first that fails gives the verdict:
//! 1. the request's `merchant_uid`, when set, is the payment's;
//! 2. a registration exists for the payment's `merchant_uid`;
//! 3. the amounts are exactly equal as decimals;
//! 4. when the registration has a currency, the payment's is the same;
//! 5. the status is `paid`.
//!
//! Tampering is reported before "not yet paid": a virtual-account payment in
//! `ready` for a wrong amount is [`Verdict::AmountMismatch`].

use crate::{
    ids::MerchantUid,
    portone::{Payment, Prepared, STATUS_PAID},
};

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every rule holds.
    Verified,
    /// Rule 1: the payment is for another order than the caller's.
    MerchantUidMismatch,
    /// Rule 2: nothing was registered for the payment's order.
    NotPrepared,
    /// Rule 3: the amount paid is not the amount registered.
    AmountMismatch,
    /// Rule 4: the payment is in another currency than the registered one.
    CurrencyMismatch,
    /// Rule 5: the amount is right, but the payment is not `paid`.
    NotPaid,
}

/// A verdict with the English sentence that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// What differs (for [`Verdict::Verified`], what matched).
    pub detail: String,
}

impl Judgement {
    fn new(verdict: Verdict, detail: String) -> Judgement {
        Judgement { verdict, detail }
    }
}

/// Rule 1, checked before the registration is read: `Some` when the caller
/// named an order and the payment is for another one. Order ids are compared
/// exactly, as PortOne keys registrations by them.
pub fn merchant_uid_mismatch(
    requested: Option<&MerchantUid>,
    payment: &Payment,
) -> Option<Judgement> {
    let requested = requested?;
    (requested.as_str() != payment.merchant_uid).then(|| {
        Judgement::new(
            Verdict::MerchantUidMismatch,
            format!(
                "The payment {} is for merchant_uid {:?}, not for {:?} as the request says.",
                payment.imp_uid,
                payment.merchant_uid,
                requested.as_str()
            ),
        )
    })
}

/// Rules 2 to 5, given the registration of the payment's `merchant_uid`
/// (`None` when PortOne has none).
pub fn against_registration(payment: &Payment, registration: Option<&Prepared>) -> Judgement {
    let Some(registration) = registration else {
        return Judgement::new(
            Verdict::NotPrepared,
            format!(
                "No amount was registered for merchant_uid {:?}, so nothing proves that the \
                 payment's amount of {} was not tampered with.",
                payment.merchant_uid,
                with_currency(payment.amount.as_str(), &payment.currency)
            ),
        );
    };
    if payment.amount != registration.amount {
        return Judgement::new(
            Verdict::AmountMismatch,
            format!(
                "The payment is for {} but {} was registered for merchant_uid {:?}.",
                with_currency(payment.amount.as_str(), &payment.currency),
                with_currency(
                    registration.amount.as_str(),
                    registration.currency.as_deref().unwrap_or_default()
                ),
                payment.merchant_uid
            ),
        );
    }
    // ISO 4217 codes name the same currency whatever their case, and PortOne
    // keeps a registration's currency as it was sent: `usd` registered and
    // `USD` paid is the same money. Any other difference, an empty payment
    // currency included, is a mismatch.
    if let Some(currency) = registration.currency.as_deref()
        && !payment.currency.eq_ignore_ascii_case(currency)
    {
        let paid_in = if payment.currency.is_empty() {
            "no currency".to_owned()
        } else {
            payment.currency.clone()
        };
        return Judgement::new(
            Verdict::CurrencyMismatch,
            format!(
                "The payment is in {paid_in} but {currency} was registered for merchant_uid {:?}.",
                payment.merchant_uid
            ),
        );
    }
    // PortOne writes its statuses in lower case; any other text (another
    // case included) is not known to mean the money was taken.
    if payment.status != STATUS_PAID {
        return Judgement::new(
            Verdict::NotPaid,
            format!(
                "The payment has the registered amount of {} but its status is {:?}, not \"paid\".",
                with_currency(payment.amount.as_str(), &payment.currency),
                payment.status
            ),
        );
    }
    // A partial cancellation keeps the payment `paid` for its full amount:
    // it verifies (only the merchant can cancel, so it is no tampering), and
    // the sentence says how much went back.
    let cancelled = if payment.cancel_amount.is_zero() {
        String::new()
    } else {
        format!(
            "; {} of it has since been cancelled",
            with_currency(payment.cancel_amount.as_str(), &payment.currency)
        )
    };
    Judgement::new(
        Verdict::Verified,
        format!(
            "The payment of {} matches the registration of merchant_uid {:?} and is paid{cancelled}.",
            with_currency(payment.amount.as_str(), &payment.currency),
            payment.merchant_uid
        ),
    )
}

/// `19.99 USD`, or `19.99` without a currency.
fn with_currency(amount: &str, currency: &str) -> String {
    if currency.is_empty() {
        amount.to_owned()
    } else {
        format!("{amount} {currency}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Amount, Money};

    fn amount(json: &str) -> Amount {
        Amount::from_json_number(&serde_json::from_str(json).unwrap()).unwrap()
    }

    fn payment(amount_json: &str, currency: &str, status: &str) -> Payment {
        Payment {
            imp_uid: "imp_1".into(),
            merchant_uid: "order-1".into(),
            amount: amount(amount_json),
            cancel_amount: amount("0"),
            currency: currency.into(),
            status: status.into(),
            pay_method: String::new(),
            pg_provider: String::new(),
            name: String::new(),
            paid_at: None,
            sandbox: false,
            receipt_url: String::new(),
        }
    }

    fn registration(amount: &str, currency: Option<&str>) -> Prepared {
        Prepared {
            merchant_uid: "order-1".into(),
            amount: Money::parse(amount).unwrap(),
            currency: currency.map(str::to_owned),
        }
    }

    #[test]
    fn the_amount_is_checked_before_the_currency_and_the_status() {
        let judged = against_registration(
            &payment("100", "JPY", "ready"),
            Some(&registration("200", Some("KRW"))),
        );
        assert_eq!(judged.verdict, Verdict::AmountMismatch);
        assert!(judged.detail.contains("100 JPY"), "{}", judged.detail);
        assert!(judged.detail.contains("200 KRW"), "{}", judged.detail);
    }

    #[test]
    fn the_currency_is_checked_before_the_status() {
        let judged = against_registration(
            &payment("100", "JPY", "ready"),
            Some(&registration("100", Some("KRW"))),
        );
        assert_eq!(judged.verdict, Verdict::CurrencyMismatch);
    }

    #[test]
    fn a_currency_differing_only_in_case_is_the_same_currency() {
        let judged = against_registration(
            &payment("100", "krw", "paid"),
            Some(&registration("100", Some("KRW"))),
        );
        assert_eq!(judged.verdict, Verdict::Verified);
    }

    #[test]
    fn a_payment_without_currency_against_a_registered_one_is_a_mismatch() {
        let judged = against_registration(
            &payment("100", "", "paid"),
            Some(&registration("100", Some("KRW"))),
        );
        assert_eq!(judged.verdict, Verdict::CurrencyMismatch);
        assert!(judged.detail.contains("no currency"), "{}", judged.detail);
    }

    #[test]
    fn a_status_in_another_case_is_not_paid() {
        let judged = against_registration(
            &payment("100", "KRW", "PAID"),
            Some(&registration("100", None)),
        );
        assert_eq!(judged.verdict, Verdict::NotPaid);
    }

    #[test]
    fn no_request_merchant_uid_skips_rule_one() {
        assert_eq!(
            merchant_uid_mismatch(None, &payment("1", "KRW", "paid")),
            None
        );
    }
}
