//! An embedded PortOne V1 emulator that behaves as `shared/portone/UPSTREAM.md`
//! describes: getToken with expiry, the prepare endpoints with PortOne's
//! statuses, envelopes and Korean messages, payment links, payments
//! (`GET /payments/{imp_uid}`, made through `POST /__sandbox/payments` or a
//! link's `POST {shortenedUrl}/pay` by a caller standing in for the buyer),
//! `Authorization` checking, and a handle for tests to inject faults and
//! count calls.
//!
//! The facade knows it only as an upstream URL.
//!
//! Its modules depend one way: `options` and `faults` (endpoints, queued
//! faults, call counts) use no other; `state` (tokens, registrations, links,
//! payments) holds both; `routes` answers from `state`; this module puts a
//! `faults` service in front of the routes on each connection.

mod faults;
mod options;
mod routes;
mod state;

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use http::HeaderMap;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub use faults::{Endpoint, Fault};
pub use options::{SANDBOX_IMP_KEY, SANDBOX_IMP_SECRET, SANDBOX_USER_CODE, SandboxOptions};
pub use state::LinkRecord;

use self::state::State;

/// A running emulator; it stops when dropped.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Starts on an ephemeral loopback port.
    pub async fn start(options: SandboxOptions) -> io::Result<Sandbox> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Sandbox::start_on(listener, options)
    }

    /// Starts on `listener`.
    pub fn start_on(listener: TcpListener, options: SandboxOptions) -> io::Result<Sandbox> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(options, format!("http://{addr}")));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
        Ok(Sandbox {
            addr,
            state,
            stop,
            task,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`; both APIs live under it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `imp_key` it accepts.
    pub fn imp_key(&self) -> &str {
        &self.state.options.imp_key
    }

    /// The `imp_secret` it accepts.
    pub fn imp_secret(&self) -> &str {
        &self.state.options.imp_secret
    }

    /// Makes the next call to `endpoint` behave as `fault`.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.state.faults.push(endpoint, fault, 1);
    }

    /// Makes the next `times` calls to `endpoint` behave as `fault`.
    pub fn inject_times(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.state.faults.push(endpoint, fault, times);
    }

    /// Makes each call to `endpoint` for which no fault is queued behave as
    /// one of `faults` with its share of the calls (0.1 = 10%), else as
    /// PortOne would; the shares add up to at most 1. For faults under load.
    pub fn inject_randomly(&self, endpoint: Endpoint, faults: Vec<(Fault, f64)>) {
        self.state.faults.set_random(endpoint, faults);
    }

    /// Removes every queued and random fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// How many requests reached `endpoint` (faulted ones included).
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.state.faults.calls(endpoint)
    }

    /// The headers of the last request to `endpoint`.
    pub fn last_headers(&self, endpoint: Endpoint) -> Option<HeaderMap> {
        self.state.faults.last_headers(endpoint)
    }

    /// Invalidates every issued token, as if they had expired.
    pub fn revoke_tokens(&self) {
        self.state.revoke_tokens();
    }

    /// The link with id `link_id`, if created.
    pub fn link(&self, link_id: &str) -> Option<LinkRecord> {
        self.state.link(link_id)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let router = routes::router(Arc::clone(&state));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).keep_alive(true);
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = faults::FaultService::new(
            Arc::clone(&state.faults),
            state.options.latency,
            router.clone(),
        );
        let connection = http1.serve_connection(TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = stopped.changed() => {}
            }
        });
    }
}
