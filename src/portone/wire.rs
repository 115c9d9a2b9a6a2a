//! PortOne's JSON on the wire, and nothing else.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::model::{NewPaymentLink, PayMethodInfo};
use crate::{money::Money, secret::SecretString};

/// The `{code, message, response}` envelope of every api.iamport.kr answer.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, borrow)]
    pub response: Option<&'a RawValue>,
}

/// Just enough of an error body to quote PortOne: every field optional.
#[derive(Deserialize, Default)]
pub(crate) struct LenientError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /users/getToken` body.
#[derive(Serialize)]
pub(crate) struct TokenBody<'a> {
    pub imp_key: &'a str,
    pub imp_secret: &'a str,
}

/// `response` of getToken. The token is a secret from the moment it is read.
#[derive(Deserialize)]
pub(crate) struct TokenData {
    pub access_token: SecretString,
    pub now: i64,
    pub expired_at: i64,
}

/// `POST` / `PUT /payments/prepare` body.
#[derive(Serialize)]
pub(crate) struct PrepareBody<'a> {
    pub merchant_uid: &'a str,
    pub amount: &'a Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<&'a str>,
}

/// `response` of the prepare calls.
#[derive(Deserialize)]
pub(crate) struct PreparedData {
    pub merchant_uid: String,
    pub amount: serde_json::Number,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `response` of `GET /payments/{imp_uid}` (PortOne's `PaymentAnnotation`),
/// only the fields the facade passes on. The buyer fields (`buyer_*`), card
/// data (`card_number`, …), `custom_data` and the rest are not even
/// deserialized: serde skips what a struct does not name, so personal data
/// never reaches the facade's memory as a value.
#[derive(Deserialize)]
pub(crate) struct PaymentData {
    pub imp_uid: String,
    pub merchant_uid: String,
    pub amount: serde_json::Number,
    pub cancel_amount: serde_json::Number,
    #[serde(default)]
    pub currency: Option<String>,
    pub status: String,
    #[serde(default)]
    pub pay_method: Option<String>,
    #[serde(default)]
    pub pg_provider: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub paid_at: Option<i64>,
    #[serde(default)]
    pub sandbox: Option<bool>,
    #[serde(default)]
    pub receipt_url: Option<String>,
}

/// Link creation body: `payment_info` is itself JSON, as a string.
#[derive(Serialize)]
pub(crate) struct LinkBody {
    pub payment_info: String,
    pub expired_at: i64,
}

/// The fields inside `payment_info`; empty optional fields are left out.
#[derive(Serialize)]
pub(crate) struct PaymentInfo<'a> {
    pub title: &'a str,
    pub user_code: &'a str,
    pub amount: u64,
    pub merchant_uid: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_free: Option<u64>,
    pub currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_name: Option<&'a str>,
    pub buyer_tel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_postcode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<&'a serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_language: Option<&'a str>,
    pub pay_methods: &'a [PayMethodInfo],
}

impl<'a> PaymentInfo<'a> {
    pub fn of(link: &'a NewPaymentLink) -> Self {
        PaymentInfo {
            title: &link.title,
            user_code: &link.user_code,
            amount: link.amount,
            merchant_uid: link.merchant_uid.as_str(),
            name: &link.name,
            tax_free: link.tax_free,
            currency: link.currency.as_str(),
            language: link.language.as_deref(),
            buyer_name: link.buyer.name.as_deref(),
            buyer_tel: &link.buyer.tel,
            buyer_addr: link.buyer.addr.as_deref(),
            buyer_email: link.buyer.email.as_deref(),
            buyer_postcode: link.buyer.postcode.as_deref(),
            custom_data: link.custom_data.as_ref(),
            notice_url: link.notice_url.as_deref(),
            display_language: link.display_language.as_deref(),
            pay_methods: &link.pay_methods,
        }
    }
}

/// Link creation answer: not the envelope.
#[derive(Deserialize)]
pub(crate) struct LinkCreated {
    #[serde(rename = "shortenedUrl")]
    pub shortened_url: String,
}
