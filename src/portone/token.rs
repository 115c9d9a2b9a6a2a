//! One access token per process, fetched once for any number of concurrent
//! callers (single flight) and refreshed ahead of expiry.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use http::HeaderValue;
use tokio::{sync::watch, time::Instant};

use super::error::{UpstreamError, UpstreamErrorKind};
use crate::{
    deadline::Deadline,
    secret::{ExposeSecret, SecretString},
};

/// Refresh this long before the token runs out. Inside PortOne's last
/// minute, where asking again extends the same token by five minutes.
const REFRESH_AHEAD: Duration = Duration::from_secs(30);
/// Stop using a token this long before it runs out, so it cannot expire in
/// flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// Background refreshes are at least this far apart, even if PortOne keeps
/// answering with a token that is about to run out.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// The longest lifetime believed, whatever getToken reports: PortOne's tokens
/// last 30 minutes, and a lifetime of centuries (`expired_at` = i64::MAX)
/// must neither overflow an `Instant` nor keep a revoked token forever.
const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// An access token with the instants, on our own clock, that govern it.
pub(crate) struct AccessToken {
    /// `Bearer <token>`, marked sensitive.
    pub authorization: HeaderValue,
    refresh_after: Instant,
    expires: Instant,
}

impl AccessToken {
    /// Builds a token from getToken's answer. The lifetime is `expired_at − now`
    /// as PortOne reports both, so clock skew with PortOne does not matter.
    pub fn new(
        token: &SecretString,
        now: i64,
        expired_at: i64,
    ) -> Result<AccessToken, UpstreamError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                UpstreamError::without_answer(
                    UpstreamErrorKind::Unavailable,
                    "PortOne issued an access token that is not a valid header value",
                )
            })?;
        authorization.set_sensitive(true);
        // An expired or absurd answer gives a token that is refreshed at the
        // next call, never an arithmetic overflow.
        let lifetime = Duration::from_secs(expired_at.saturating_sub(now).max(0).unsigned_abs())
            .min(MAX_LIFETIME);
        let received = Instant::now();
        let refresh_after = (received + lifetime.saturating_sub(REFRESH_AHEAD))
            .max(received + MIN_REFRESH_INTERVAL.min(lifetime / 2));
        Ok(AccessToken {
            authorization,
            refresh_after,
            expires: received + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("authorization", &"<redacted>")
            .field("refresh_after", &self.refresh_after)
            .field("expires", &self.expires)
            .finish()
    }
}

type FetchResult = Result<Arc<AccessToken>, UpstreamError>;

#[derive(Default)]
struct CacheState {
    current: Option<Arc<AccessToken>>,
    /// When the last refresh started: background refreshes are at least
    /// [`MIN_REFRESH_INTERVAL`] apart, failed ones included.
    last_started: Option<Instant>,
    /// The refresh under way, if any: every caller waits on the same one.
    refreshing: Option<watch::Receiver<Option<FetchResult>>>,
}

/// The shared token. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct TokenCache {
    state: Arc<Mutex<CacheState>>,
}

impl TokenCache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // The state stays consistent even if a holder panicked: every write is
        // a single assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A usable token: the current one, or the result of the one refresh
    /// that all concurrent callers share. `fetch` is called only when a
    /// refresh starts; it runs in its own task, so a caller whose deadline
    /// runs out does not cancel it for the others.
    pub async fn get<F, Fut>(&self, fetch: F, deadline: Deadline) -> FetchResult
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, UpstreamError>> + Send + 'static,
    {
        let mut refreshed = {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(token) = state.current.clone().filter(|t| now < t.expires) {
                let spaced = state
                    .last_started
                    .is_none_or(|started| now >= started + MIN_REFRESH_INTERVAL);
                if now >= token.refresh_after && state.refreshing.is_none() && spaced {
                    state.last_started = Some(now);
                    state.refreshing = Some(self.start_refresh(fetch()));
                }
                return Ok(token);
            }
            match &state.refreshing {
                Some(refreshing) => refreshing.clone(),
                None => {
                    state.last_started = Some(now);
                    let refreshing = self.start_refresh(fetch());
                    state.refreshing = Some(refreshing.clone());
                    refreshing
                }
            }
        };
        let done = async {
            match refreshed.wait_for(Option::is_some).await {
                Ok(result) => result.clone().unwrap_or_else(|| Err(refresh_lost())),
                Err(_) => Err(refresh_lost()),
            }
        };
        match deadline.instant() {
            Some(at) => tokio::time::timeout_at(at, done).await.unwrap_or_else(|_| {
                Err(UpstreamError::without_answer(
                    UpstreamErrorKind::Timeout,
                    "the deadline ran out while waiting for a PortOne access token",
                ))
            }),
            None => done.await,
        }
    }

    fn start_refresh<Fut>(&self, fetch: Fut) -> watch::Receiver<Option<FetchResult>>
    where
        Fut: Future<Output = Result<AccessToken, UpstreamError>> + Send + 'static,
    {
        let (sender, receiver) = watch::channel(None);
        let cache = self.clone();
        tokio::spawn(async move {
            // Cleared even if the fetch panics: the next caller starts a
            // new refresh instead of waiting on this one forever. The
            // waiters see the sender dropped, and fail their call.
            let refreshing = RefreshUnderWay(cache);
            let result = fetch.await.map(Arc::new);
            if let Ok(token) = &result {
                refreshing.0.lock().current = Some(token.clone());
            }
            drop(refreshing);
            let _ = sender.send(Some(result));
        });
        receiver
    }

    /// Forgets `token` after PortOne refused it, unless another caller
    /// already replaced it.
    pub fn invalidate(&self, token: &Arc<AccessToken>) {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, token))
        {
            state.current = None;
        }
    }
}

/// Marks a refresh as under way for as long as it lives.
struct RefreshUnderWay(TokenCache);

impl Drop for RefreshUnderWay {
    fn drop(&mut self) {
        self.0.lock().refreshing = None;
    }
}

fn refresh_lost() -> UpstreamError {
    UpstreamError::without_answer(
        UpstreamErrorKind::Unavailable,
        "the access token refresh stopped before it finished",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("tok")
    }

    #[test]
    fn no_reported_lifetime_overflows_our_clock() {
        for (now, expired_at) in [
            (-1_000_000_000_000_000_000, i64::MAX),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (1_700_000_000, 1_600_000_000),
            (0, 0),
        ] {
            let token = AccessToken::new(&token(), now, expired_at).unwrap();
            assert!(token.expires <= Instant::now() + MAX_LIFETIME);
        }
    }

    #[tokio::test]
    async fn a_refresh_that_panics_fails_its_callers_and_not_the_next_refresh() {
        let cache = TokenCache::default();
        let panicked = cache
            .get(
                || async {
                    panic!("getToken answer handling panicked");
                    #[allow(unreachable_code)]
                    AccessToken::new(&token(), 0, 1800)
                },
                Deadline::none(),
            )
            .await;
        assert!(panicked.is_err());
        let next = cache
            .get(
                || async { AccessToken::new(&token(), 0, 1800) },
                Deadline::none(),
            )
            .await;
        assert!(next.is_ok(), "{next:?}");
    }
}
