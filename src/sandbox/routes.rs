//! The emulated endpoints.

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, State as Extract},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::{
    faults::Endpoint,
    state::{LinkRecord, PaymentRecord, PreparedRecord, State, unix_now},
};
use crate::money::Money;

const MISSING_CREDENTIALS: &str = "imp_key, imp_secret 파라메터가 누락되었습니다.";
const WRONG_CREDENTIALS: &str = "인증에 실패하였습니다. API키와 secret을 확인하세요.";
const UNAUTHORIZED: &str = "Unauthorized";
const ALREADY_PREPARED: &str =
    "결제정보 사전등록에 실패하였습니다(이미 등록된 merchant_uid입니다).";
const NOT_PREPARED: &str = "사전등록된 결제정보가 존재하지 않습니다.";
const BAD_PARAMETERS: &str = "요청 파라메터가 올바르지 않습니다.";
const NO_SUCH_LINK: &str = "존재하지 않는 결제링크입니다.";
/// An unknown `imp_uid` (the spec describes the 404 as "유효하지 않은 imp_uid").
const NO_SUCH_PAYMENT: &str = "존재하지 않는 결제정보입니다.";
/// The statuses PortOne gives a payment.
const PAYMENT_STATUSES: [&str; 4] = ["ready", "paid", "failed", "cancelled"];

type Shared = Extract<Arc<State>>;

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/users/getToken", post(get_token))
        .route("/payments/prepare", post(prepare).put(update_prepared))
        .route("/payments/prepare/{merchant_uid}", get(get_prepared))
        .route("/api/supplements/v1/link/payment", post(create_link))
        .route(
            "/api/supplements/v1/link/payment/{link_id}",
            put(disable_link),
        )
        .route("/payments/{imp_uid}", get(get_payment))
        .route("/link/{link_id}", get(show_link))
        .route("/link/{link_id}/pay", post(pay_link))
        .route("/__sandbox/stats", get(stats))
        .route("/__sandbox/payments", post(make_payment))
        .route("/__sandbox/receipts/{imp_uid}", get(show_receipt))
        .with_state(state)
}

/// PortOne's `{code, message, response}` envelope.
fn envelope(status: StatusCode, code: i64, message: Option<&str>, response: Value) -> Response {
    let body = json!({"code": code, "message": message, "response": response});
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Body::from(body.to_string()),
    )
        .into_response()
}

fn failure(status: StatusCode, message: &str) -> Response {
    envelope(status, -1, Some(message), Value::Null)
}

/// The token from `Authorization` (Bearer or raw) or the legacy
/// `X-ImpTokenHeader`; `Authorization` wins.
fn authorized(state: &State, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get("x-imptokenheader"))
        .and_then(|value| value.to_str().ok())
        .map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim());
    presented.is_some_and(|token| state.token_is_valid(token))
}

async fn get_token(Extract(state): Shared, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = body.get("imp_key").and_then(Value::as_str).unwrap_or("");
    let secret = body.get("imp_secret").and_then(Value::as_str).unwrap_or("");
    if key.is_empty() || secret.is_empty() {
        return failure(StatusCode::BAD_REQUEST, MISSING_CREDENTIALS);
    }
    if key != state.options.imp_key || secret != state.options.imp_secret {
        return failure(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS);
    }
    let (token, expired_at) = state.issue_token();
    envelope(
        StatusCode::OK,
        0,
        None,
        json!({"access_token": token, "now": unix_now(), "expired_at": expired_at}),
    )
}

/// `{merchant_uid, amount, currency?}`, if well-formed.
fn prepare_body(body: &[u8]) -> Option<(String, PreparedRecord)> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let merchant_uid = body.get("merchant_uid").and_then(Value::as_str)?;
    let amount = match body.get("amount") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|a| a > 0.0) => n.clone(),
        _ => return None,
    };
    let currency = match body.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => return None,
    };
    if merchant_uid.is_empty() || merchant_uid.chars().count() > 40 {
        return None;
    }
    Some((merchant_uid.to_owned(), PreparedRecord { amount, currency }))
}

fn prepared_json(merchant_uid: &str, record: &PreparedRecord) -> Value {
    let mut response = json!({"merchant_uid": merchant_uid, "amount": record.amount});
    if let Some(currency) = &record.currency {
        response["currency"] = json!(currency);
    }
    response
}

async fn prepare(Extract(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    let Some((merchant_uid, record)) = prepare_body(&body) else {
        return failure(StatusCode::BAD_REQUEST, BAD_PARAMETERS);
    };
    let mut store = state.store();
    if store.prepared.contains_key(&merchant_uid) {
        return envelope(StatusCode::OK, 1, Some(ALREADY_PREPARED), Value::Null);
    }
    let response = prepared_json(&merchant_uid, &record);
    store.prepared.insert(merchant_uid, record);
    envelope(StatusCode::OK, 0, None, response)
}

async fn update_prepared(Extract(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    let Some((merchant_uid, record)) = prepare_body(&body) else {
        return failure(StatusCode::BAD_REQUEST, BAD_PARAMETERS);
    };
    let mut store = state.store();
    match store.prepared.get_mut(&merchant_uid) {
        Some(existing) => {
            *existing = record;
            let response = prepared_json(&merchant_uid, existing);
            envelope(StatusCode::OK, 0, None, response)
        }
        None => failure(StatusCode::NOT_FOUND, NOT_PREPARED),
    }
}

async fn get_prepared(
    Extract(state): Shared,
    headers: HeaderMap,
    Path(merchant_uid): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    let store = state.store();
    match store.prepared.get(&merchant_uid) {
        Some(record) => envelope(
            StatusCode::OK,
            0,
            None,
            prepared_json(&merchant_uid, record),
        ),
        None => failure(StatusCode::NOT_FOUND, NOT_PREPARED),
    }
}

async fn create_link(Extract(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    let bad = || failure(StatusCode::BAD_REQUEST, BAD_PARAMETERS);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad();
    };
    let (Some(info), Some(expired_at)) = (
        body.get("payment_info").and_then(Value::as_str),
        body.get("expired_at").and_then(Value::as_i64),
    ) else {
        return bad();
    };
    let Ok(payment_info) = serde_json::from_str::<Value>(info) else {
        return bad();
    };
    let text = |field: &str| {
        payment_info
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let required_text = [
        "title",
        "user_code",
        "merchant_uid",
        "name",
        "currency",
        "buyer_tel",
    ];
    let has_methods = payment_info
        .get("pay_methods")
        .and_then(Value::as_array)
        .is_some_and(|methods| !methods.is_empty());
    let has_amount = payment_info
        .get("amount")
        .and_then(Value::as_u64)
        .is_some_and(|a| a > 0);
    if !required_text.iter().all(|field| text(field))
        || !has_methods
        || !has_amount
        || expired_at <= unix_now()
    {
        return bad();
    }
    let id = format!("{:08x}", fastrand::u32(..));
    let record = LinkRecord {
        payment_info,
        expired_at,
        disabled: false,
        paid_with: None,
    };
    state.store().links.insert(id.clone(), record);
    json_response(
        StatusCode::OK,
        &json!({"shortenedUrl": format!("{}/link/{id}", state.base_url)}),
    )
}

async fn disable_link(
    Extract(state): Shared,
    headers: HeaderMap,
    Path(link_id): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    match state.store().links.get_mut(&link_id) {
        Some(link) => {
            link.disabled = true;
            json_response(StatusCode::OK, &json!({}))
        }
        None => failure(StatusCode::NOT_FOUND, NO_SUCH_LINK),
    }
}

/// Calls per endpoint, for tests and benchmarks that run the sandbox as a
/// separate process: `{"calls": {"get_token": 1, …}}`.
async fn stats(Extract(state): Shared) -> Response {
    let calls: serde_json::Map<String, Value> = Endpoint::ALL
        .iter()
        .map(|e| (e.name().to_owned(), json!(state.faults.calls(*e))))
        .collect();
    json_response(StatusCode::OK, &json!({ "calls": calls }))
}

/// What a buyer opening the link would see, in words.
async fn show_link(Extract(state): Shared, Path(link_id): Path<String>) -> Response {
    let Some(link) = state.link(&link_id) else {
        return (StatusCode::NOT_FOUND, "no such sandbox payment link\n").into_response();
    };
    let field = |name: &str| {
        link.payment_info
            .get(name)
            .map(Value::to_string)
            .unwrap_or_default()
    };
    let status = if link.disabled {
        "disabled"
    } else if link.expired_at <= unix_now() {
        "expired"
    } else {
        "open"
    };
    let page = format!(
        "PortOne sandbox payment link {link_id}: {} — {} {} ({status}; expires at Unix time {})\n",
        field("title"),
        field("amount"),
        field("currency"),
        link.expired_at
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], page).into_response()
}

/// `GET /payments/{imp_uid}`: the payment in PortOne's `PaymentAnnotation`
/// shape, buyer and card fields included as PortOne sends them (the facade
/// must drop them). `include_sandbox` is accepted and changes nothing: the
/// emulator's payments stand for payments on a live channel
/// (`"sandbox": false`), as its registrations stand for real ones.
async fn get_payment(
    Extract(state): Shared,
    headers: HeaderMap,
    Path(imp_uid): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
    }
    let payment = state.store().payments.get(&imp_uid).cloned();
    match payment {
        Some(payment) => envelope(
            StatusCode::OK,
            0,
            None,
            payment_json(&state, &imp_uid, &payment),
        ),
        None => failure(StatusCode::NOT_FOUND, NO_SUCH_PAYMENT),
    }
}

fn payment_json(state: &State, imp_uid: &str, payment: &PaymentRecord) -> Value {
    let at = |status: &str| {
        if payment.status == status {
            payment.at
        } else {
            0
        }
    };
    // A cancelled payment was paid first, and all of it went back.
    let paid_at = if payment.status == "cancelled" {
        payment.at
    } else {
        at("paid")
    };
    let cancel_amount = if payment.status == "cancelled" {
        Value::Number(payment.amount.clone())
    } else {
        json!(0)
    };
    let paid = paid_at != 0;
    json!({
        "imp_uid": imp_uid,
        "merchant_uid": payment.merchant_uid,
        "amount": payment.amount,
        "cancel_amount": cancel_amount,
        "currency": payment.currency,
        "status": payment.status,
        "pay_method": "card",
        "channel": "pc",
        "pg_provider": "html5_inicis",
        "emb_pg_provider": null,
        "pg_tid": format!("StdpayCARD{imp_uid}"),
        "pg_id": "INIpayTest",
        "escrow": false,
        "apply_num": if paid { json!("30012345") } else { Value::Null },
        "card_code": "361",
        "card_name": "BC카드",
        "card_quota": 0,
        "card_number": "910020*****5123",
        "card_type": 0,
        "name": format!("{} 주문", payment.merchant_uid),
        "buyer_name": "홍길동",
        "buyer_email": "buyer@example.com",
        "buyer_tel": "010-1234-5678",
        "buyer_addr": "서울특별시 강남구 테헤란로 1",
        "buyer_postcode": "06236",
        "custom_data": null,
        "user_agent": "portone-facade sandbox",
        "started_at": payment.at,
        "paid_at": paid_at,
        "failed_at": at("failed"),
        "cancelled_at": at("cancelled"),
        "fail_reason": if payment.status == "failed" { json!("카드 한도 초과") } else { Value::Null },
        "cancel_reason": if payment.status == "cancelled" { json!("구매자 요청") } else { Value::Null },
        "receipt_url": if paid {
            json!(format!("{}/__sandbox/receipts/{imp_uid}", state.base_url))
        } else {
            Value::Null
        },
        "cancel_history": [],
        "cancel_receipt_urls": [],
        "cash_receipt_issued": false,
        "customer_uid": null,
        "customer_uid_usage": null,
        "sandbox": false,
    })
}

/// The body of `POST /__sandbox/payments`. Unknown fields are refused, so
/// that a misspelt `"curency"` is not silently the default.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    merchant_uid: String,
    amount: serde_json::Number,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// A sandbox-only answer: `{"error": "..."}` with `status`.
fn sandbox_error(status: StatusCode, error: impl std::fmt::Display) -> Response {
    json_response(status, &json!({ "error": error.to_string() }))
}

/// `POST /__sandbox/payments`: stands in for a buyer who paid (or started
/// paying) `amount` for `merchant_uid`; answers `{"imp_uid": "imp_…"}`.
/// Not PortOne's: no token needed, and not counted as a PortOne call.
async fn make_payment(Extract(state): Shared, body: Bytes) -> Response {
    let bad = |error: String| sandbox_error(StatusCode::BAD_REQUEST, error);
    let request: NewPayment = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad(format!(
                "the body must be {{\"merchant_uid\", \"amount\", \"currency\"?, \"status\"?}}: {error}"
            ));
        }
    };
    let merchant_uid = &request.merchant_uid;
    if merchant_uid.is_empty()
        || merchant_uid.chars().count() > 40
        || merchant_uid.chars().any(char::is_control)
    {
        return bad("merchant_uid must be 1 to 40 characters, without control characters".into());
    }
    if Money::from_json_number(&request.amount).is_err() {
        return bad(
            "amount must be a JSON number greater than zero, with at most 3 fraction digits \
             and 15 digits in all"
                .into(),
        );
    }
    let currency = request.currency.unwrap_or_else(|| "KRW".to_owned());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad("currency must be three upper-case letters, such as \"KRW\"".into());
    }
    let status = request.status.unwrap_or_else(|| "paid".to_owned());
    if !PAYMENT_STATUSES.contains(&status.as_str()) {
        return bad(format!("status must be one of {PAYMENT_STATUSES:?}"));
    }
    let imp_uid = state.add_payment(PaymentRecord {
        merchant_uid: request.merchant_uid,
        amount: request.amount,
        currency,
        status,
        at: unix_now(),
    });
    json_response(StatusCode::OK, &json!({ "imp_uid": imp_uid }))
}

/// `POST {shortenedUrl}/pay`: the buyer pays the link's amount, in its
/// currency, for its `merchant_uid`; answers `{"imp_uid": "imp_…"}`. A link
/// is paid once; a disabled or expired one cannot be paid.
async fn pay_link(Extract(state): Shared, Path(link_id): Path<String>) -> Response {
    let mut store = state.store();
    let Some(link) = store.links.get(&link_id).cloned() else {
        return sandbox_error(StatusCode::NOT_FOUND, "no such sandbox payment link");
    };
    let refusal = if link.disabled {
        Some("the link is disabled".to_owned())
    } else if link.expired_at <= unix_now() {
        Some("the link has expired".to_owned())
    } else {
        link.paid_with
            .as_ref()
            .map(|imp_uid| format!("the link was already paid: {imp_uid}"))
    };
    if let Some(refusal) = refusal {
        return sandbox_error(StatusCode::CONFLICT, refusal);
    }
    let info = &link.payment_info;
    let (Some(merchant_uid), Some(Value::Number(amount)), Some(currency)) = (
        info.get("merchant_uid").and_then(Value::as_str),
        info.get("amount"),
        info.get("currency").and_then(Value::as_str),
    ) else {
        return sandbox_error(StatusCode::CONFLICT, "the link has no amount to pay");
    };
    let payment = PaymentRecord {
        merchant_uid: merchant_uid.to_owned(),
        amount: amount.clone(),
        currency: currency.to_owned(),
        status: "paid".to_owned(),
        at: unix_now(),
    };
    // Under the same lock as the check above: a link is paid once, however
    // many buyers press the button at the same time.
    let imp_uid = store.add_payment(payment);
    if let Some(link) = store.links.get_mut(&link_id) {
        link.paid_with = Some(imp_uid.clone());
    }
    drop(store);
    json_response(StatusCode::OK, &json!({ "imp_uid": imp_uid }))
}

/// The sales slip a payment's `receipt_url` points at, in words.
async fn show_receipt(Extract(state): Shared, Path(imp_uid): Path<String>) -> Response {
    let Some(payment) = state.store().payments.get(&imp_uid).cloned() else {
        return (StatusCode::NOT_FOUND, "no such sandbox payment\n").into_response();
    };
    let page = format!(
        "PortOne sandbox receipt {imp_uid}: {} {} for merchant_uid {} ({})\n",
        payment.amount, payment.currency, payment.merchant_uid, payment.status
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], page).into_response()
}
