//! Properties over arbitrary input (DESIGN.md §1 and §7): money survives the
//! trip through PortOne's JSON exactly, and no caller input makes validation
//! panic.

use portone_facade::{money::Money, pb, validate};
use proptest::prelude::*;

/// Valid amounts: up to 12 integer digits and up to 3 fraction digits (15 in
/// all at most), greater than zero.
fn amount() -> impl Strategy<Value = String> {
    ("(0|[1-9][0-9]{0,11})", proptest::option::of("[0-9]{1,3}"))
        .prop_map(|(whole, fraction)| match fraction {
            Some(fraction) => format!("{whole}.{fraction}"),
            None => whole,
        })
        .prop_filter("greater than zero", |text| {
            text.chars().any(|c| ('1'..='9').contains(&c))
        })
}

proptest! {
    #[test]
    fn every_valid_amount_comes_back_from_portone_json_as_the_same_value(text in amount()) {
        let money = Money::parse(&text).unwrap();
        let json = serde_json::to_string(&money).unwrap();
        let number: serde_json::Number = serde_json::from_str(&json).unwrap();
        let read = Money::from_json_number(&number).unwrap();
        prop_assert_eq!(&read, &money, "{} went out as {} and came back as {}", text, json, read);
        // And it is written the shortest way: no trailing zeros, no dot alone.
        prop_assert!(!read.as_str().ends_with('.'));
        if read.as_str().contains('.') {
            prop_assert!(!read.as_str().ends_with('0'), "{}", read);
        }
    }

    #[test]
    fn money_parsing_never_panics(text in any::<String>()) {
        let _ = Money::parse(&text);
        let _ = Money::parse_whole(&text);
    }

    #[test]
    fn prepare_validation_never_panics(uid in any::<String>(), amount in any::<String>(), currency in any::<String>()) {
        let _ = validate::prepare_request(&uid, &amount, &currency);
        let _ = validate::merchant_uid(&uid);
        let _ = validate::link_id(&uid);
    }

    #[test]
    fn link_validation_never_panics(
        title in any::<String>(),
        amount in any::<String>(),
        tax_free in any::<String>(),
        currency in any::<String>(),
        language in any::<String>(),
        notice_url in any::<String>(),
        seconds in any::<i64>(),
        nanos in any::<i32>(),
    ) {
        let request = pb::CreatePaymentLinkRequest {
            title,
            amount,
            tax_free,
            currency,
            language: language.clone(),
            display_language: language,
            notice_url,
            merchant_uid: "prop-1".into(),
            name: "n".into(),
            expire_at: Some(prost_types::Timestamp { seconds, nanos }),
            ..Default::default()
        };
        let _ = validate::new_payment_link(&request, Some("imp00000000"), 1_700_000_000);
    }
}
