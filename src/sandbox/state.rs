//! What the emulator remembers: tokens, registrations, links, payments.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{faults::Faults, options::SandboxOptions};

/// A registered amount.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRecord {
    pub amount: serde_json::Number,
    pub currency: Option<String>,
}

/// A payment link the emulator created.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    /// `payment_info` as received, decoded.
    pub payment_info: serde_json::Value,
    /// `expired_at` as received (Unix seconds).
    pub expired_at: i64,
    /// Whether it has been disabled.
    pub disabled: bool,
    /// The `imp_uid` of the payment made through it (`POST {url}/pay`).
    pub paid_with: Option<String>,
}

/// A payment, as a buyer standing in made it (`POST /__sandbox/payments`
/// or a link's `/pay`).
#[derive(Debug, Clone)]
pub(crate) struct PaymentRecord {
    pub merchant_uid: String,
    pub amount: serde_json::Number,
    pub currency: String,
    /// `ready`, `paid`, `failed` or `cancelled`.
    pub status: String,
    /// Unix seconds of the payment's making.
    pub at: i64,
}

#[derive(Default)]
pub(crate) struct Store {
    /// token → expiry in Unix seconds.
    pub tokens: HashMap<String, i64>,
    pub prepared: HashMap<String, PreparedRecord>,
    pub links: HashMap<String, LinkRecord>,
    /// imp_uid → payment.
    pub payments: HashMap<String, PaymentRecord>,
}

impl Store {
    /// Keeps `payment` under a new `imp_uid` (`imp_` and 12 digits, as
    /// PortOne's), which it returns.
    pub fn add_payment(&mut self, payment: PaymentRecord) -> String {
        loop {
            let imp_uid = format!("imp_{:012}", fastrand::u64(..1_000_000_000_000));
            if !self.payments.contains_key(&imp_uid) {
                self.payments.insert(imp_uid.clone(), payment);
                return imp_uid;
            }
        }
    }
}

pub(crate) struct State {
    pub options: SandboxOptions,
    pub base_url: String,
    /// Shared with each connection's fault service, which counts the calls.
    pub faults: Arc<Faults>,
    store: Mutex<Store>,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl State {
    pub fn new(options: SandboxOptions, base_url: String) -> State {
        State {
            options,
            base_url,
            faults: Arc::default(),
            store: Mutex::new(Store::default()),
        }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn revoke_tokens(&self) {
        self.store().tokens.clear();
    }

    pub fn link(&self, id: &str) -> Option<LinkRecord> {
        self.store().links.get(id).cloned()
    }

    /// Keeps `payment` under a new `imp_uid`, which it returns.
    pub fn add_payment(&self, payment: PaymentRecord) -> String {
        self.store().add_payment(payment)
    }

    /// PortOne's rule: the same token until it expires; asked within its last
    /// minute, it lives five minutes longer. Returns `(token, expired_at)`.
    pub fn issue_token(&self) -> (String, i64) {
        let now = unix_now();
        let lifetime = i64::try_from(self.options.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut store = self.store();
        store.tokens.retain(|_, expires| *expires > now);
        if let Some((token, expires)) = store.tokens.iter_mut().next() {
            if *expires - now <= 60 {
                *expires += 5 * 60;
            }
            return (token.clone(), *expires);
        }
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(40)
            .collect();
        let expires = now.saturating_add(lifetime);
        store.tokens.insert(token.clone(), expires);
        (token, expires)
    }

    pub fn token_is_valid(&self, token: &str) -> bool {
        self.store()
            .tokens
            .get(token)
            .is_some_and(|expires| *expires > unix_now())
    }
}
