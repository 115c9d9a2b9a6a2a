//! Request checks, before anything reaches PortOne. Each failure names its
//! field; all failures of a request are reported together.

use std::fmt::Display;

use crate::{
    error::{FieldViolation, InvalidRequest},
    ids::{Currency, ImpUid, LinkId, MerchantUid},
    money::Money,
    pb,
    portone::{BuyerInfo, NewPaymentLink, PayMethodInfo, PrepareRequest},
};

/// Collects the violations of one request.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Display) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.to_string(),
        });
    }

    /// The value, or `None` with the violation recorded.
    fn check<T, E: Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }

    fn required(&mut self, field: &str, value: &str) -> Option<String> {
        if value.trim().is_empty() {
            self.add(field, "is required");
            None
        } else {
            Some(value.to_owned())
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, InvalidRequest> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(InvalidRequest(self.0)),
        }
    }
}

/// `merchant_uid`, `amount`, `currency` of PreparePayment and UpdatePreparedPayment.
pub fn prepare_request(
    merchant_uid: &str,
    amount: &str,
    currency: &str,
) -> Result<PrepareRequest, InvalidRequest> {
    let mut violations = Violations::default();
    let merchant_uid = violations.check("merchant_uid", MerchantUid::parse(merchant_uid));
    let amount = violations.check("amount", Money::parse(amount));
    let currency = optional_currency(&mut violations, "currency", currency);
    let request = (|| {
        Some(PrepareRequest {
            merchant_uid: merchant_uid?,
            amount: amount?,
            currency: currency?,
        })
    })();
    violations.finish(request)
}

/// `merchant_uid` of GetPreparedPayment.
pub fn merchant_uid(merchant_uid: &str) -> Result<MerchantUid, InvalidRequest> {
    let mut violations = Violations::default();
    let merchant_uid = violations.check("merchant_uid", MerchantUid::parse(merchant_uid));
    violations.finish(merchant_uid)
}

/// `link_id` of DisablePaymentLink.
pub fn link_id(link_id: &str) -> Result<LinkId, InvalidRequest> {
    let mut violations = Violations::default();
    let link_id = violations.check("link_id", LinkId::parse(link_id));
    violations.finish(link_id)
}

/// `imp_uid` of GetPayment.
pub fn imp_uid(imp_uid: &str) -> Result<ImpUid, InvalidRequest> {
    let mut violations = Violations::default();
    let imp_uid = violations.check("imp_uid", ImpUid::parse(imp_uid));
    violations.finish(imp_uid)
}

/// A VerifyPayment request, checked: its `imp_uid`, and its `merchant_uid`
/// when set.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The payment to verify.
    pub imp_uid: ImpUid,
    /// The order the caller expects it to be for; `None` when not given.
    pub merchant_uid: Option<MerchantUid>,
}

/// `imp_uid` and the optional `merchant_uid` of VerifyPayment.
pub fn verify_request(imp_uid: &str, merchant_uid: &str) -> Result<VerifyRequest, InvalidRequest> {
    let mut violations = Violations::default();
    let imp_uid = violations.check("imp_uid", ImpUid::parse(imp_uid));
    let merchant_uid = match optional(merchant_uid) {
        None => Some(None),
        Some(uid) => violations
            .check("merchant_uid", MerchantUid::parse(uid))
            .map(Some),
    };
    let request = (|| {
        Some(VerifyRequest {
            imp_uid: imp_uid?,
            merchant_uid: merchant_uid?,
        })
    })();
    violations.finish(request)
}

/// CreatePaymentLink. `default_user_code` is the server's `PORTONE_USER_CODE`;
/// `now_unix` is the current time, which `expire_at` must be after.
pub fn new_payment_link(
    request: &pb::CreatePaymentLinkRequest,
    default_user_code: Option<&str>,
    now_unix: i64,
) -> Result<NewPaymentLink, InvalidRequest> {
    let mut v = Violations::default();
    let title = v.required("title", &request.title);
    let user_code = match (optional(&request.user_code), default_user_code) {
        (Some(code), _) | (None, Some(code)) => Some(code.to_owned()),
        (None, None) => {
            v.add(
                "user_code",
                "is required: this server has no default PORTONE_USER_CODE",
            );
            None
        }
    };
    let amount = v
        .check("amount", Money::parse_whole(&request.amount))
        .and_then(|m| m.whole_units());
    let tax_free = match optional(&request.tax_free) {
        None => Some(None),
        Some(text) => v
            .check("tax_free", Money::parse_whole(text))
            .and_then(|m| m.whole_units())
            .map(Some),
    };
    if let (Some(amount), Some(Some(tax_free))) = (amount, tax_free)
        && tax_free > amount
    {
        v.add("tax_free", "must not be greater than amount");
    }
    let merchant_uid = v.check("merchant_uid", MerchantUid::parse(&request.merchant_uid));
    let name = v.required("name", &request.name);
    let currency = match optional(&request.currency) {
        None => {
            v.add("currency", "is required");
            None
        }
        Some(code) => v.check("currency", Currency::parse(code)),
    };
    let language = optional_language(&mut v, "language", &request.language);
    let display_language = optional_language(&mut v, "display_language", &request.display_language);
    let buyer = buyer(&mut v, request.buyer.as_ref());
    let custom_data = match &request.custom_data {
        None => Some(None),
        Some(data) => v.check("custom_data", custom_data_to_json(data)).map(Some),
    };
    let notice_url = match optional(&request.notice_url) {
        None => Some(None),
        Some(url) => v.check("notice_url", absolute_http_url(url)).map(Some),
    };
    let expires_at_unix = match &request.expire_at {
        None => {
            v.add("expire_at", "is required");
            None
        }
        Some(at) if at.nanos < 0 || at.nanos > 999_999_999 => {
            v.add("expire_at", "has nanos outside 0..=999999999");
            None
        }
        Some(at) if at.seconds <= now_unix => {
            v.add("expire_at", "must be in the future");
            None
        }
        Some(at) => Some(at.seconds),
    };
    let pay_methods = pay_methods(&mut v, &request.pay_methods);
    let link = (|| {
        Some(NewPaymentLink {
            title: title?,
            user_code: user_code?,
            amount: amount?,
            merchant_uid: merchant_uid?,
            name: name?,
            tax_free: tax_free?,
            currency: currency?,
            language: language?,
            buyer: buyer?,
            custom_data: custom_data?,
            notice_url: notice_url?,
            expires_at_unix: expires_at_unix?,
            display_language: display_language?,
            pay_methods: pay_methods?,
        })
    })();
    v.finish(link)
}

/// `Some(text)` unless empty.
fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// `Some(None)` when empty, `Some(Some(code))` when valid, `None` when invalid.
fn optional_currency(v: &mut Violations, field: &str, text: &str) -> Option<Option<Currency>> {
    match optional(text) {
        None => Some(None),
        Some(code) => v.check(field, Currency::parse(code)).map(Some),
    }
}

fn optional_language(v: &mut Violations, field: &str, text: &str) -> Option<Option<String>> {
    match optional(text) {
        None => Some(None),
        Some(lang @ ("ko" | "en")) => Some(Some(lang.to_owned())),
        Some(_) => {
            v.add(field, "must be \"ko\" or \"en\" when set");
            None
        }
    }
}

fn buyer(v: &mut Violations, buyer: Option<&pb::Buyer>) -> Option<BuyerInfo> {
    let empty = pb::Buyer::default();
    let buyer = buyer.unwrap_or(&empty);
    let tel = v.required("buyer.tel", &buyer.tel)?;
    let owned = |text: &str| optional(text).map(str::to_owned);
    Some(BuyerInfo {
        name: owned(&buyer.name),
        tel,
        addr: owned(&buyer.addr),
        email: owned(&buyer.email),
        postcode: owned(&buyer.postcode),
    })
}

fn pay_methods(v: &mut Violations, methods: &[pb::PayMethod]) -> Option<Vec<PayMethodInfo>> {
    if methods.is_empty() {
        v.add("pay_methods", "must have at least one entry");
        return None;
    }
    let mut valid = Vec::with_capacity(methods.len());
    for (i, method) in methods.iter().enumerate() {
        let pg = v.required(&format!("pay_methods[{i}].pg"), &method.pg);
        let pay_method = v.required(&format!("pay_methods[{i}].pay_method"), &method.pay_method);
        let label = v.required(&format!("pay_methods[{i}].label"), &method.label);
        if let (Some(pg), Some(pay_method), Some(label)) = (pg, pay_method, label) {
            valid.push(PayMethodInfo {
                pg,
                pay_method,
                label,
            });
        }
    }
    (valid.len() == methods.len()).then_some(valid)
}

fn absolute_http_url(text: &str) -> Result<String, &'static str> {
    const MESSAGE: &str = "must be an absolute https:// or http:// URL";
    let url = reqwest::Url::parse(text).map_err(|_| MESSAGE)?;
    let http = matches!(url.scheme(), "https" | "http");
    if !http || url.host_str().is_none_or(str::is_empty) || text.chars().any(char::is_whitespace) {
        return Err(MESSAGE);
    }
    Ok(text.to_owned())
}

/// Most objects or arrays nested in `custom_data`, itself included (§1).
pub const CUSTOM_DATA_MAX_DEPTH: usize = 16;
/// Most bytes of `custom_data` as serialized JSON (§1).
pub const CUSTOM_DATA_MAX_BYTES: usize = 64 * 1024;

/// `custom_data` as the JSON object PortOne is sent, within its depth and
/// size limits.
fn custom_data_to_json(
    data: &prost_types::Struct,
) -> Result<serde_json::Map<String, serde_json::Value>, &'static str> {
    let object = struct_to_json(data, 1)?;
    let size = serde_json::to_vec(&object).map_or(usize::MAX, |json| json.len());
    if size > CUSTOM_DATA_MAX_BYTES {
        return Err("must be at most 64 KiB as JSON");
    }
    Ok(object)
}

const TOO_DEEP: &str = "must be at most 16 objects or arrays deep";

/// `data`, a `google.protobuf.Struct`, as a JSON object at nesting `depth`
/// (1 for `custom_data` itself); NaN and infinities have no JSON form.
fn struct_to_json(
    data: &prost_types::Struct,
    depth: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, &'static str> {
    if depth > CUSTOM_DATA_MAX_DEPTH {
        return Err(TOO_DEEP);
    }
    data.fields
        .iter()
        .map(|(key, value)| Ok((key.clone(), value_to_json(value, depth)?)))
        .collect()
}

/// `value`, held by an object or array at nesting `depth`.
fn value_to_json(
    value: &prost_types::Value,
    depth: usize,
) -> Result<serde_json::Value, &'static str> {
    use prost_types::value::Kind;
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .ok_or("must not hold NaN or infinite numbers")?,
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s, depth + 1)?),
        Some(Kind::ListValue(list)) => {
            if depth + 1 > CUSTOM_DATA_MAX_DEPTH {
                return Err(TOO_DEEP);
            }
            serde_json::Value::Array(
                list.values
                    .iter()
                    .map(|value| value_to_json(value, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}
