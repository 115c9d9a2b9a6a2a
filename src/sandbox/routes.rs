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
    state::{LinkRecord, PreparedRecord, State, unix_now},
};

const MISSING_CREDENTIALS: &str = "imp_key, imp_secret 파라메터가 누락되었습니다.";
const WRONG_CREDENTIALS: &str = "인증에 실패하였습니다. API키와 secret을 확인하세요.";
const UNAUTHORIZED: &str = "Unauthorized";
const ALREADY_PREPARED: &str =
    "결제정보 사전등록에 실패하였습니다(이미 등록된 merchant_uid입니다).";
const NOT_PREPARED: &str = "사전등록된 결제정보가 존재하지 않습니다.";
const BAD_PARAMETERS: &str = "요청 파라메터가 올바르지 않습니다.";
const NO_SUCH_LINK: &str = "존재하지 않는 결제링크입니다.";

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
        .route("/link/{link_id}", get(show_link))
        .route("/__sandbox/stats", get(stats))
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
