//! The PortOne V1 REST client. It knows HTTP and PortOne, and nothing of gRPC.

mod error;
mod model;
mod token;
mod transport;
mod wire;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use error::{UpstreamError, UpstreamErrorKind};
pub use model::{BuyerInfo, CreatedLink, NewPaymentLink, PayMethodInfo, PrepareRequest, Prepared};

use self::{
    token::{AccessToken, TokenCache},
    transport::{Answer, Audience, Call, Host, RetryRule, describe_body},
    wire::{
        Envelope, LinkBody, LinkCreated, PaymentInfo, PrepareBody, PreparedData, TokenBody,
        TokenData,
    },
};
use crate::{
    deadline::Deadline,
    ids::{LinkId, MerchantUid},
    money::Money,
    secret::{ExposeSecret, SecretString},
    telemetry::{UpstreamHost, instruments, tracing_enabled},
};

/// Everything except unreserved characters is escaped, so a `merchant_uid`
/// stays one path segment whatever it holds (`/`, `?`, `#`, `%`, Korean).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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

pub(crate) struct ClientInner {
    http: reqwest::Client,
    config: ClientConfig,
    /// Every endpoint's URL, parsed once: reqwest would otherwise parse the
    /// whole URL, host and IDNA included, on every call.
    urls: Urls,
    tokens: TokenCache,
    json: HeaderValue,
    link_json: HeaderValue,
}

/// The endpoints' URLs, parsed once.
struct Urls {
    get_token: Url,
    prepare: Url,
    create_link: Url,
    /// Bases for the paths that carry an id.
    api_base: Url,
    link_base: Url,
    /// Host and port of each base, as telemetry names them: made once, not
    /// per call.
    api_host: UpstreamHost,
    link_host: UpstreamHost,
}

impl Urls {
    fn new(api_url: &str, link_api_url: &str) -> Result<Urls, ClientBuildError> {
        let parse = |text: String| {
            Url::parse(&text).map_err(|error| ClientBuildError::Url(text, error.to_string()))
        };
        let host_of = |base: &Url| {
            UpstreamHost::new(
                base.host_str().unwrap_or_default(),
                base.port_or_known_default().unwrap_or(0),
            )
        };
        let api_base = parse(api_url.to_owned())?;
        let link_base = parse(link_api_url.to_owned())?;
        Ok(Urls {
            get_token: parse(format!("{api_url}/users/getToken"))?,
            prepare: parse(format!("{api_url}/payments/prepare"))?,
            create_link: parse(format!("{link_api_url}/api/supplements/v1/link/payment"))?,
            api_host: host_of(&api_base),
            link_host: host_of(&link_base),
            api_base,
            link_base,
        })
    }

    /// `base` with `path` appended to its own path; `path` is already
    /// percent-encoded, so it stays as it is.
    fn under(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        let joined = format!("{}{path}", base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// A base URL does not parse.
    #[error("invalid PortOne URL {0:?}: {1}")]
    Url(String, String),
    /// TLS or the connection pool could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl PortOneClient {
    /// Builds the client (connection pool, rustls).
    pub fn new(mut config: ClientConfig) -> Result<PortOneClient, ClientBuildError> {
        config.api_url = config.api_url.trim_end_matches('/').to_owned();
        config.link_api_url = config.link_api_url.trim_end_matches('/').to_owned();
        let urls = Urls::new(&config.api_url, &config.link_api_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("portone-facade/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(PortOneClient {
            inner: Arc::new(ClientInner {
                http,
                urls,
                config,
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
        let path = format!(
            "/payments/prepare/{}",
            utf8_percent_encode(merchant_uid.as_str(), PATH_SEGMENT)
        );
        let url = Urls::under(&inner.urls.api_base, &path);
        let call = Call {
            method: Method::GET,
            span_name: "GET /payments/prepare/{merchant_uid}",
            host: Host::Api,
            url,
            body: None,
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        let answer = inner.execute(&call, deadline).await?;
        prepared_from(decode_envelope::<PreparedData>(&answer)?, &answer)
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
            host: Host::Api,
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
            host: Host::Link,
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
        let call = Call {
            method: Method::PUT,
            span_name: "PUT /api/supplements/v1/link/payment/{link_id}",
            host: Host::Link,
            url: Urls::under(
                &inner.urls.link_base,
                &format!("/api/supplements/v1/link/payment/{}", link_id.as_str()),
            ),
            body: None,
            retry: RetryRule::Idempotent,
            audience: Audience::Api,
        };
        inner.execute(&call, deadline).await.map(drop)
    }
}

impl ClientInner {
    /// The shared token, fetched by one getToken for all concurrent callers.
    pub(crate) async fn token(
        self: &Arc<Self>,
        deadline: Deadline,
    ) -> Result<Arc<AccessToken>, UpstreamError> {
        let this = Arc::clone(self);
        self.tokens
            .get(move || this.fetch_token_boxed(), deadline)
            .await
    }

    /// [`Self::fetch_token`] behind a `dyn Future`: the token fetch calls
    /// `execute`, which may wait for a token, and the box breaks that cycle
    /// of future types. Its span (a child of the call that started the
    /// refresh) makes a slow token show up as such.
    fn fetch_token_boxed(
        self: Arc<Self>,
    ) -> Pin<Box<dyn Future<Output = Result<AccessToken, UpstreamError>> + Send>> {
        let span = if tracing_enabled() {
            tracing::info_span!(
                "token",
                otel.name = "PortOne getToken",
                otel.kind = "internal"
            )
        } else {
            tracing::Span::none()
        };
        Box::pin(self.fetch_token().instrument(span))
    }

    /// A host as the spans and metrics of its requests name it.
    pub(crate) fn host(&self, host: Host) -> &UpstreamHost {
        match host {
            Host::Api => &self.urls.api_host,
            Host::Link => &self.urls.link_host,
        }
    }

    /// `POST /users/getToken`, with its own deadline so that no single
    /// caller's deadline cuts the refresh short for everybody.
    async fn fetch_token(self: Arc<Self>) -> Result<AccessToken, UpstreamError> {
        if let Some(instruments) = instruments() {
            instruments.token_refreshes.add(1, &[]);
        }
        let body = TokenBody {
            imp_key: self.config.imp_key.expose_secret(),
            imp_secret: self.config.imp_secret.expose_secret(),
        };
        let call = Call {
            method: Method::POST,
            span_name: "POST /users/getToken",
            host: Host::Api,
            url: self.urls.get_token.clone(),
            body: Some((to_json(&body)?, self.json.clone())),
            retry: RetryRule::Idempotent,
            audience: Audience::Token,
        };
        let answer = self
            .execute(&call, Deadline::after(self.config.attempt_timeout))
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
