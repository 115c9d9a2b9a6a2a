//! The PortOne client: its endpoints, and the access token they share.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use reqwest::Url;
use serde::de::DeserializeOwned;

use super::{
    error::{UpstreamError, UpstreamErrorKind},
    model::{CreatedLink, NewPaymentLink, Payment, PrepareRequest, Prepared},
    token::{AccessToken, TokenCache},
    transport::{Answer, Audience, Call, RetryRule, Transport, describe_body},
    wire::{
        Envelope, LinkBody, LinkCreated, PaymentData, PaymentInfo, PrepareBody, PreparedData,
        TokenBody, TokenData,
    },
};
use crate::{
    deadline::Deadline,
    ids::{ImpUid, LinkId, MerchantUid},
    money::{Amount, Money},
    secret::{ExposeSecret, SecretString},
    telemetry::{Event, count, in_token_span},
};

/// Where PortOne is and how to talk to it.
#[derive(Debug)]
pub struct ClientConfig {
    /// Base URL of the token and prepare API (`https://api.iamport.kr`).
    pub api_url: String,
    /// Base URL of the payment-link API (`https://api.iamport.co`).
    pub link_api_url: String,
    /// `imp_key`.
    pub imp_key: SecretString,
    /// `imp_secret`.
    pub imp_secret: SecretString,
    /// Longest wait for one attempt; the caller's deadline caps it further.
    pub attempt_timeout: Duration,
}

/// A cheap-to-clone handle on the PortOne client; clones share the
/// connection pool and the access token.
#[derive(Clone)]
pub struct PortOneClient {
    inner: Arc<ClientInner>,
}

/// What the clones of a [`PortOneClient`] share.
struct ClientInner {
    transport: Transport,
    urls: Urls,
    imp_key: SecretString,
    imp_secret: SecretString,
    attempt_timeout: Duration,
    tokens: TokenCache,
    json: HeaderValue,
    link_json: HeaderValue,
}

/// The endpoints' URIs, built once; those with an id are built per call
/// from their base.
struct Urls {
    get_token: Uri,
    prepare: Uri,
    create_link: Uri,
    /// Bases for the paths that carry an id.
    api_base: Url,
    link_base: Url,
}

impl Urls {
    fn new(api_url: &str, link_api_url: &str) -> Result<Urls, ClientBuildError> {
        let parse = |text: &str| match Url::parse(text) {
            Ok(url) if !url.cannot_be_a_base() => Ok(url),
            Ok(_) => Err(ClientBuildError::Url(
                text.to_owned(),
                "not a base URL".to_owned(),
            )),
            Err(error) => Err(ClientBuildError::Url(text.to_owned(), error.to_string())),
        };
        let api_base = parse(api_url)?;
        let link_base = parse(link_api_url)?;
        let fixed = |base: &Url, segments: &[&str]| {
            under(base, segments)
                .map_err(|error| ClientBuildError::Url(base.to_string(), error.upstream_message))
        };
        Ok(Urls {
            get_token: fixed(&api_base, &["users", "getToken"])?,
            prepare: fixed(&api_base, &["payments", "prepare"])?,
            create_link: fixed(&link_base, &LINK_PATH)?,
            api_base,
            link_base,
        })
    }
}

/// The payment-link endpoint's path segments.
const LINK_PATH: [&str; 5] = ["api", "supplements", "v1", "link", "payment"];

/// `base` with `segments` appended to its path, each percent-encoded as one
/// segment (a `/`, `?`, `#` or `%` in an id stays inside it). `base` can be
/// a base: [`Urls::new`] checked it.
fn under(base: &Url, segments: &[&str]) -> Result<Uri, UpstreamError> {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    // What the url crate serializes is ASCII and percent-encoded, so this
    // does not fail; if it did, nothing would be sent.
    Uri::try_from(url.as_str()).map_err(|error| {
        UpstreamError::without_answer(
            UpstreamErrorKind::Unavailable,
            format!("no request was sent: {url} is not a valid request URI ({error})"),
        )
    })
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// A base URL does not parse.
    #[error("invalid PortOne URL {0:?}: {1}")]
    Url(String, String),
    /// TLS or the connection pool could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] super::transport::BuildError),
}

impl PortOneClient {
    /// Builds the client (connection pool, rustls).
    pub fn new(config: ClientConfig) -> Result<PortOneClient, ClientBuildError> {
        let ClientConfig {
            api_url,
            link_api_url,
            imp_key,
            imp_secret,
            attempt_timeout,
        } = config;
        Ok(PortOneClient {
            inner: Arc::new(ClientInner {
                transport: Transport::new(attempt_timeout).map_err(ClientBuildError::Http)?,
                urls: Urls::new(&api_url, &link_api_url)?,
                imp_key,
                imp_secret,
                attempt_timeout,
                tokens: TokenCache::default(),
                json: HeaderValue::from_static("application/json"),
                link_json: HeaderValue::from_static("application/json;charset=UTF-8"),
            }),
        })
    }

    /// `POST /payments/prepare`. A duplicate registration comes back as an
    /// error for which [`UpstreamError::is_already_registered`] holds.
    pub async fn prepare(
        &self,
        request: &PrepareRequest,
        deadline: Deadline,
    ) -> Result<Prepared, UpstreamError> {
        self.write_prepared(Method::POST, "POST /payments/prepare", request, deadline)
            .await
    }

    /// `PUT /payments/prepare`.
    pub async fn update_prepared(
        &self,
        request: &PrepareRequest,
        deadline: Deadline,
    ) -> Result<Prepared, UpstreamError> {
        self.write_prepared(Method::PUT, "PUT /payments/prepare", request, deadline)
            .await
    }

    /// `GET /payments/prepare/{merchant_uid}`.
    pub async fn get_prepared(
        &self,
        merchant_uid: &MerchantUid,
        deadline: Deadline,
    ) -> Result<Prepared, UpstreamError> {
        let inner = &self.inner;
        let call = Call {
            method: Method::GET,
            span_name: "GET /payments/prepare/{merchant_uid}",
            url: under(
                &inner.urls.api_base,
                &["payments", "prepare", merchant_uid.as_str()],
            )?,
            body: None,
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        let answer = inner.execute(&call, deadline).await?;
        prepared_from(decode_envelope::<PreparedData>(&answer)?, &answer)
    }

    /// `GET /payments/{imp_uid}`. Sent without `include_sandbox`, PortOne's
    /// default (false): a payment made on a test channel moved no money, and
    /// a buyer who steers the checkout to one must not get an order verified
    /// with it; PortOne then answers such an id as unknown (inferred from
    /// the spec's description of the flag, not seen in captured traffic).
    pub async fn get_payment(
        &self,
        imp_uid: &ImpUid,
        deadline: Deadline,
    ) -> Result<Payment, UpstreamError> {
        let inner = &self.inner;
        let call = Call {
            method: Method::GET,
            span_name: "GET /payments/{imp_uid}",
            url: under(&inner.urls.api_base, &["payments", imp_uid.as_str()])?,
            body: None,
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        let answer = inner.execute(&call, deadline).await?;
        payment_from(decode_envelope::<PaymentData>(&answer)?, &answer)
    }

    async fn write_prepared(
        &self,
        method: Method,
        span_name: &'static str,
        request: &PrepareRequest,
        deadline: Deadline,
    ) -> Result<Prepared, UpstreamError> {
        let inner = &self.inner;
        let body = PrepareBody {
            merchant_uid: request.merchant_uid.as_str(),
            amount: &request.amount,
            currency: request.currency.as_ref().map(|c| c.as_str()),
        };
        let call = Call {
            method,
            span_name,
            url: inner.urls.prepare.clone(),
            body: Some((to_json(&body)?, inner.json.clone())),
            // POST is idempotent too: a repeat is recognised as a duplicate
            // and reconciled by the caller.
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        let answer = inner.execute(&call, deadline).await?;
        prepared_from(decode_envelope::<PreparedData>(&answer)?, &answer)
    }

    /// `POST {link_api}/api/supplements/v1/link/payment`. Retried only when
    /// the request provably never reached PortOne, so a link is never created
    /// twice.
    pub async fn create_link(
        &self,
        link: &NewPaymentLink,
        deadline: Deadline,
    ) -> Result<CreatedLink, UpstreamError> {
        let inner = &self.inner;
        let payment_info =
            serde_json::to_string(&PaymentInfo::of(link)).map_err(encoding_failed)?;
        let body = LinkBody {
            payment_info,
            expired_at: link.expires_at_unix,
        };
        let call = Call {
            method: Method::POST,
            span_name: "POST /api/supplements/v1/link/payment",
            url: inner.urls.create_link.clone(),
            body: Some((to_json(&body)?, inner.link_json.clone())),
            retry: RetryRule::OnlyIfNeverSent,
            audience: Audience::Api,
        };
        let answer = inner.execute(&call, deadline).await?;
        let created: LinkCreated =
            serde_json::from_slice(&answer.body).map_err(|_| unexpected(&answer))?;
        let last_segment = created
            .shortened_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let link_id = LinkId::parse(last_segment).map_err(|_| unexpected(&answer))?;
        Ok(CreatedLink {
            url: created.shortened_url,
            link_id,
        })
    }

    /// `PUT {link_api}/api/supplements/v1/link/payment/{link_id}`; any 2xx
    /// is success.
    pub async fn disable_link(
        &self,
        link_id: &LinkId,
        deadline: Deadline,
    ) -> Result<(), UpstreamError> {
        let inner = &self.inner;
        let mut segments = LINK_PATH.to_vec();
        segments.push(link_id.as_str());
        let call = Call {
            method: Method::PUT,
            span_name: "PUT /api/supplements/v1/link/payment/{link_id}",
            url: under(&inner.urls.link_base, &segments)?,
            body: None,
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        inner.execute(&call, deadline).await.map(drop)
    }
}

impl ClientInner {
    /// Runs an API call with the shared token. When PortOne no longer takes
    /// that token (401), it is dropped, a new one fetched, and the call sent
    /// once more.
    async fn execute(
        self: &Arc<Self>,
        call: &Call,
        deadline: Deadline,
    ) -> Result<Answer, UpstreamError> {
        let token = self.token(deadline).await?;
        match self
            .transport
            .send(call, Some(&token.authorization), deadline)
            .await
        {
            Err(error) if error.http_status == Some(401) => {
                self.tokens.invalidate(&token);
                count(Event::Retried("unauthorized"));
                let token = self.token(deadline).await?;
                self.transport
                    .send(call, Some(&token.authorization), deadline)
                    .await
            }
            outcome => outcome,
        }
    }

    /// The shared token, fetched by one getToken for all concurrent callers.
    async fn token(
        self: &Arc<Self>,
        deadline: Deadline,
    ) -> Result<Arc<AccessToken>, UpstreamError> {
        let this = Arc::clone(self);
        self.tokens
            .get(
                move || in_token_span(async move { this.fetch_token().await }),
                deadline,
            )
            .await
    }

    /// `POST /users/getToken`, with its own deadline so that no single
    /// caller's deadline cuts the refresh short for everybody; a failure is
    /// counted for the operator.
    async fn fetch_token(&self) -> Result<AccessToken, UpstreamError> {
        count(Event::TokenFetched);
        let fetched = self.request_token().await;
        if fetched.is_err() {
            count(Event::TokenFailed);
        }
        fetched
    }

    async fn request_token(&self) -> Result<AccessToken, UpstreamError> {
        let body = TokenBody {
            imp_key: self.imp_key.expose_secret(),
            imp_secret: self.imp_secret.expose_secret(),
        };
        let call = Call {
            method: Method::POST,
            span_name: "POST /users/getToken",
            url: self.urls.get_token.clone(),
            body: Some((to_json(&body)?, self.json.clone())),
            retry: RetryRule::Idempotent,
            audience: Audience::Token,
        };
        let answer = self
            .transport
            .send(&call, None, Deadline::after(self.attempt_timeout))
            .await?;
        let data = decode_envelope::<TokenData>(&answer).map_err(|mut error| {
            if error.kind == UpstreamErrorKind::Business {
                error.kind = UpstreamErrorKind::AuthFailed;
            }
            error
        })?;
        AccessToken::new(&data.access_token, data.now, data.expired_at)
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(encoding_failed)
}

fn encoding_failed(_: serde_json::Error) -> UpstreamError {
    UpstreamError::without_answer(
        UpstreamErrorKind::Unavailable,
        "the request body could not be encoded",
    )
}

/// The `response` of a 2xx envelope, or the business error it carries.
fn decode_envelope<T: DeserializeOwned>(answer: &Answer) -> Result<T, UpstreamError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(&answer.body).map_err(|_| unexpected(answer))?;
    if envelope.code != 0 {
        return Err(UpstreamError {
            kind: UpstreamErrorKind::Business,
            http_status: Some(answer.status),
            upstream_code: Some(envelope.code),
            upstream_message: envelope.message.unwrap_or_default(),
            retry_after: None,
        });
    }
    let response = envelope.response.ok_or_else(|| unexpected(answer))?;
    serde_json::from_str(response.get()).map_err(|_| unexpected(answer))
}

fn prepared_from(data: PreparedData, answer: &Answer) -> Result<Prepared, UpstreamError> {
    let amount = Money::from_json_number(&data.amount).map_err(|_| unexpected(answer))?;
    Ok(Prepared {
        merchant_uid: data.merchant_uid,
        amount,
        currency: data.currency.filter(|c| !c.is_empty()),
    })
}

fn payment_from(data: PaymentData, answer: &Answer) -> Result<Payment, UpstreamError> {
    let amount = |number| Amount::from_json_number(number).map_err(|_| unexpected(answer));
    Ok(Payment {
        amount: amount(&data.amount)?,
        cancel_amount: amount(&data.cancel_amount)?,
        imp_uid: data.imp_uid,
        merchant_uid: data.merchant_uid,
        currency: data.currency.unwrap_or_default(),
        status: data.status,
        pay_method: data.pay_method.unwrap_or_default(),
        pg_provider: data.pg_provider.unwrap_or_default(),
        name: data.name.unwrap_or_default(),
        // PortOne writes 0 for "not paid"; nothing before 1970 is a payment.
        paid_at: data.paid_at.filter(|at| *at > 0),
        sandbox: data.sandbox.unwrap_or(false),
        receipt_url: data.receipt_url.unwrap_or_default(),
    })
}

/// A 2xx answer whose body is not what PortOne documents.
fn unexpected(answer: &Answer) -> UpstreamError {
    UpstreamError {
        kind: UpstreamErrorKind::Unavailable,
        http_status: Some(answer.status),
        upstream_code: None,
        upstream_message: describe_body(answer.status, &answer.body),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_is_read_without_its_buyer_and_card_fields() {
        let body = r#"{"code":0,"message":null,"response":{
            "imp_uid":"imp_1","merchant_uid":"order-1","amount":19.99,"cancel_amount":0,
            "currency":"USD","status":"paid","paid_at":1700000000,"sandbox":false,
            "pay_method":"card","pg_provider":"html5_inicis","name":"Coat","receipt_url":null,
            "buyer_name":"홍길동","buyer_tel":"010-1234-5678","buyer_email":"buyer@example.com",
            "card_number":"536510******1234","custom_data":"{\"secret\":1}"}}"#;
        let answer = Answer {
            status: 200,
            body: Bytes::from(body),
        };
        let payment = payment_from(decode_envelope(&answer).unwrap(), &answer).unwrap();
        assert_eq!(payment.amount.as_str(), "19.99");
        assert_eq!(payment.cancel_amount.as_str(), "0");
        assert_eq!(payment.paid_at, Some(1_700_000_000));
        assert_eq!(payment.receipt_url, "");
        let printed = format!("{payment:?}");
        for personal in [
            "홍길동",
            "010-1234-5678",
            "buyer@example.com",
            "1234",
            "secret",
        ] {
            assert!(!printed.contains(personal), "{personal} in {printed}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_any_answer_body_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let answer = Answer { status: 200, body: Bytes::from(body) };
            if let Ok(data) = decode_envelope::<PreparedData>(&answer) {
                let _ = prepared_from(data, &answer);
            }
            let _ = decode_envelope::<TokenData>(&answer);
            if let Ok(data) = decode_envelope::<PaymentData>(&answer) {
                let _ = payment_from(data, &answer);
            }
        }

        #[test]
        fn decoding_any_json_envelope_never_panics(code in proptest::num::i64::ANY, amount in "[-+0-9.eE]{0,30}", uid in ".{0,50}") {
            let body = format!(r#"{{"code":{code},"message":null,"response":{{"merchant_uid":{},"amount":{amount}}}}}"#, serde_json::Value::String(uid));
            let answer = Answer { status: 200, body: Bytes::from(body) };
            if let Ok(data) = decode_envelope::<PreparedData>(&answer) {
                let _ = prepared_from(data, &answer);
            }
        }
    }
}
