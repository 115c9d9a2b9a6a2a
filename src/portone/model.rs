//! The client's typed requests and results: what the services hand over and
//! get back, already validated.

use std::fmt;

use crate::{
    ids::{Currency, LinkId, MerchantUid},
    money::{Amount, Money},
};

/// A registration to send with `POST` or `PUT /payments/prepare`.
#[derive(Debug, Clone)]
pub struct PrepareRequest {
    /// The order id.
    pub merchant_uid: MerchantUid,
    /// The amount to register.
    pub amount: Money,
    /// The currency, when the caller gave one.
    pub currency: Option<Currency>,
}

/// A registration as PortOne holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The order id as PortOne returned it.
    pub merchant_uid: String,
    /// The registered amount.
    pub amount: Money,
    /// The registered currency; `None` when PortOne has none.
    pub currency: Option<String>,
}

/// A payment as PortOne holds it (`GET /payments/{imp_uid}`), without the
/// buyer and card fields, which are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// PortOne's payment id.
    pub imp_uid: String,
    /// The order id the payment was made for.
    pub merchant_uid: String,
    /// The amount paid.
    pub amount: Amount,
    /// The amount cancelled so far.
    pub cancel_amount: Amount,
    /// The currency code as PortOne sent it; empty when it sent none.
    pub currency: String,
    /// PortOne's `status`, verbatim (`ready`, `paid`, `failed`, `cancelled`).
    pub status: String,
    /// Pay method code; empty when PortOne sent none.
    pub pay_method: String,
    /// PG code; empty when PortOne sent none.
    pub pg_provider: String,
    /// Name of the goods; empty when PortOne sent none.
    pub name: String,
    /// When it was paid, in Unix seconds; `None` for PortOne's 0 (not paid).
    pub paid_at: Option<i64>,
    /// Made on one of PortOne's test channels.
    pub sandbox: bool,
    /// Sales slip URL; empty when there is none.
    pub receipt_url: String,
}

/// PortOne's `status` of a payment whose money was taken.
pub const STATUS_PAID: &str = "paid";

/// The buyer of a payment link. Personal data: never logged.
#[derive(Clone, Default)]
pub struct BuyerInfo {
    /// `buyer_name`.
    pub name: Option<String>,
    /// `buyer_tel` (required).
    pub tel: String,
    /// `buyer_addr`.
    pub addr: Option<String>,
    /// `buyer_email`.
    pub email: Option<String>,
    /// `buyer_postcode`.
    pub postcode: Option<String>,
}

impl fmt::Debug for BuyerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BuyerInfo(<personal data redacted>)")
    }
}

/// One payment method of a link.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PayMethodInfo {
    /// PortOne PG code.
    pub pg: String,
    /// PortOne pay method.
    pub pay_method: String,
    /// Label shown to the buyer.
    pub label: String,
}

/// A payment link to create, every field already checked.
#[derive(Debug, Clone)]
pub struct NewPaymentLink {
    /// Title of the page.
    pub title: String,
    /// PortOne merchant id (the request's, or the server's default).
    pub user_code: String,
    /// Whole amount.
    pub amount: u64,
    /// Order id.
    pub merchant_uid: MerchantUid,
    /// Name of the goods.
    pub name: String,
    /// Tax-free part of `amount`.
    pub tax_free: Option<u64>,
    /// Currency.
    pub currency: Currency,
    /// `ko` or `en`.
    pub language: Option<String>,
    /// The buyer.
    pub buyer: BuyerInfo,
    /// Free-form data for PortOne to keep.
    pub custom_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// Webhook URL.
    pub notice_url: Option<String>,
    /// When the link expires, in Unix seconds.
    pub expires_at_unix: i64,
    /// `ko` or `en`.
    pub display_language: Option<String>,
    /// Methods offered; at least one.
    pub pay_methods: Vec<PayMethodInfo>,
}

/// A link PortOne created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    /// PortOne's `shortenedUrl`.
    pub url: String,
    /// The last path segment of `url`.
    pub link_id: LinkId,
}
