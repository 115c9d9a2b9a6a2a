//! Fault injection and call counting, in front of the emulated endpoints.
//!
//! It knows nothing of the emulator's state: the per-connection service
//! holds the queued faults and the router, and hands the request on.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::ServiceExt;

/// The emulated endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /users/getToken`.
    GetToken,
    /// `POST /payments/prepare`.
    PreparePayment,
    /// `GET /payments/prepare/{merchant_uid}`.
    GetPrepared,
    /// `PUT /payments/prepare`.
    UpdatePrepared,
    /// `POST /api/supplements/v1/link/payment`.
    CreateLink,
    /// `PUT /api/supplements/v1/link/payment/{id}`.
    DisableLink,
    /// `GET /payments/{imp_uid}`.
    GetPayment,
}

const ENDPOINTS: usize = 7;

impl Endpoint {
    fn of(method: &Method, path: &str) -> Option<Endpoint> {
        const LINK: &str = "/api/supplements/v1/link/payment";
        Some(match (method, path) {
            (&Method::POST, "/users/getToken") => Endpoint::GetToken,
            (&Method::POST, "/payments/prepare") => Endpoint::PreparePayment,
            (&Method::PUT, "/payments/prepare") => Endpoint::UpdatePrepared,
            (&Method::GET, p) if p.starts_with("/payments/prepare/") => Endpoint::GetPrepared,
            (&Method::GET, p)
                if p.strip_prefix("/payments/")
                    .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
            {
                Endpoint::GetPayment
            }
            (&Method::POST, LINK) => Endpoint::CreateLink,
            (&Method::PUT, p) if p.starts_with(LINK) && p.len() > LINK.len() => {
                Endpoint::DisableLink
            }
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; ENDPOINTS] = [
        Endpoint::GetToken,
        Endpoint::PreparePayment,
        Endpoint::GetPrepared,
        Endpoint::UpdatePrepared,
        Endpoint::CreateLink,
        Endpoint::DisableLink,
        Endpoint::GetPayment,
    ];

    /// A stable name, used by `GET /__sandbox/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::GetToken => "get_token",
            Endpoint::PreparePayment => "prepare_payment",
            Endpoint::GetPrepared => "get_prepared",
            Endpoint::UpdatePrepared => "update_prepared",
            Endpoint::CreateLink => "create_link",
            Endpoint::DisableLink => "disable_link",
            Endpoint::GetPayment => "get_payment",
        }
    }
}

/// What an injected fault does to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers with this status and body (and `Retry-After` seconds, if set)
    /// instead of the real handler.
    Respond {
        /// HTTP status.
        status: u16,
        /// Body, sent as `application/json`.
        body: String,
        /// `Retry-After` header in seconds.
        retry_after: Option<u64>,
    },
    /// Waits, then lets the real handler answer.
    Delay(Duration),
    /// Answers 200 with a body that is not JSON.
    MalformedBody,
    /// Answers 200 with `chunks` chunks of `chunk_bytes` bytes each, sent
    /// chunked (no `Content-Length`), as an answer of unknown length is.
    Chunked {
        /// Bytes in each chunk.
        chunk_bytes: usize,
        /// How many chunks.
        chunks: usize,
    },
    /// Closes the connection without answering (the request is not handled).
    DropConnection,
    /// Handles the request for real, then closes the connection instead of
    /// answering: the answer is lost on the way back.
    LoseAnswer,
}

impl Fault {
    /// An answer with `status` and PortOne's envelope around `message`.
    pub fn status(status: u16, code: i64, message: &str) -> Fault {
        Fault::Respond {
            status,
            body: serde_json::json!({"code": code, "message": message, "response": null})
                .to_string(),
            retry_after: None,
        }
    }
}

/// Queued faults, counts and last headers per endpoint.
#[derive(Default)]
pub(crate) struct Faults {
    queued: Mutex<HashMap<Endpoint, VecDeque<(Fault, usize)>>>,
    /// Faults drawn at random, each with its share of the calls, when none
    /// is queued.
    random: Mutex<HashMap<Endpoint, Vec<(Fault, f64)>>>,
    counts: [AtomicUsize; ENDPOINTS],
    last_headers: Mutex<HashMap<Endpoint, HeaderMap>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Faults {
    pub fn push(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        if times > 0 {
            lock(&self.queued)
                .entry(endpoint)
                .or_default()
                .push_back((fault, times));
        }
    }

    pub fn set_random(&self, endpoint: Endpoint, faults: Vec<(Fault, f64)>) {
        lock(&self.random).insert(endpoint, faults);
    }

    pub fn clear(&self) {
        lock(&self.queued).clear();
        lock(&self.random).clear();
    }

    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.counts[endpoint.index()].load(Ordering::Acquire)
    }

    pub fn last_headers(&self, endpoint: Endpoint) -> Option<HeaderMap> {
        lock(&self.last_headers).get(&endpoint).cloned()
    }

    fn record(&self, endpoint: Endpoint, headers: &HeaderMap) -> Option<Fault> {
        self.counts[endpoint.index()].fetch_add(1, Ordering::AcqRel);
        lock(&self.last_headers).insert(endpoint, headers.clone());
        let mut queued = lock(&self.queued);
        if let Some(queue) = queued.get_mut(&endpoint)
            && let Some((fault, remaining)) = queue.front_mut()
        {
            let fault = fault.clone();
            *remaining -= 1;
            if *remaining == 0 {
                queue.pop_front();
            }
            return Some(fault);
        }
        drop(queued);
        let random = lock(&self.random);
        let mut draw = fastrand::f64();
        for (fault, share) in random.get(&endpoint)? {
            if draw < *share {
                return Some(fault.clone());
            }
            draw -= share;
        }
        None
    }
}

/// The per-connection service: counts, waits out the emulated latency,
/// applies a queued fault, or hands the request to the emulator's router.
#[derive(Clone)]
pub(crate) struct FaultService {
    faults: Arc<Faults>,
    /// Added before every answer of the API endpoints (not getToken).
    latency: Duration,
    router: Router,
}

impl FaultService {
    pub fn new(faults: Arc<Faults>, latency: Duration, router: Router) -> FaultService {
        FaultService {
            faults,
            latency,
            router,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for FaultService {
    type Response = Response<Body>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, io::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let faults = Arc::clone(&self.faults);
        let latency = self.latency;
        let router = self.router.clone();
        Box::pin(async move {
            let endpoint = Endpoint::of(request.method(), request.uri().path());
            let fault = endpoint.and_then(|e| faults.record(e, request.headers()));
            if !latency.is_zero() && endpoint.is_some_and(|e| e != Endpoint::GetToken) {
                tokio::time::sleep(latency).await;
            }
            match fault {
                Some(Fault::Respond {
                    status,
                    body,
                    retry_after,
                }) => {
                    let mut response = Response::builder()
                        .status(
                            StatusCode::from_u16(status)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        )
                        .header(header::CONTENT_TYPE, "application/json; charset=utf-8");
                    if let Some(seconds) = retry_after {
                        response = response.header(header::RETRY_AFTER, seconds);
                    }
                    return response.body(Body::from(body)).map_err(io::Error::other);
                }
                Some(Fault::MalformedBody) => {
                    return Ok(Response::new(Body::from("<html>502 Bad Gateway</html>")));
                }
                Some(Fault::Chunked {
                    chunk_bytes,
                    chunks,
                }) => {
                    let chunk = bytes::Bytes::from(vec![b' '; chunk_bytes]);
                    let stream = tokio_stream::iter(
                        std::iter::repeat_n(chunk, chunks).map(Ok::<_, io::Error>),
                    );
                    return Ok(Response::new(Body::from_stream(stream)));
                }
                Some(Fault::DropConnection) => {
                    return Err(io::Error::other("injected connection drop"));
                }
                Some(Fault::Delay(wait)) => tokio::time::sleep(wait).await,
                Some(Fault::LoseAnswer) => {
                    let _handled = router.oneshot(request.map(Body::new)).await;
                    return Err(io::Error::other("injected loss of the answer"));
                }
                None => {}
            }
            let response: Result<Response<Body>, Infallible> =
                router.oneshot(request.map(Body::new)).await;
            Ok(response.unwrap_or_else(|never| match never {}))
        })
    }
}
