//! Who is calling (DESIGN §8): the identity proven by the caller's TLS
//! client certificate, or `anonymous` without mutual TLS.
//!
//! The accept loop puts one [`Caller`] into the extensions of every request
//! of a connection; the policy, the audit line and the server span all read
//! that same value through [`Caller::of`].

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

/// The identity of the caller of an RPC: a SPIFFE ID, a DNS name, a
/// certificate's common name, or [`Caller::ANONYMOUS`]. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Caller(Arc<str>);

impl Caller {
    /// The identity of every caller when the facade does not require client
    /// certificates.
    pub const ANONYMOUS: &'static str = "anonymous";

    /// A caller proven to be `identity`.
    pub fn new(identity: impl Into<Arc<str>>) -> Caller {
        Caller(identity.into())
    }

    /// The caller without a certificate (one shared value: no allocation
    /// per call).
    pub fn anonymous() -> Caller {
        static ANONYMOUS: LazyLock<Caller> = LazyLock::new(|| Caller(Arc::from(Caller::ANONYMOUS)));
        ANONYMOUS.clone()
    }

    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The caller of `request`, as the accept loop recorded it; anonymous
    /// when it recorded none.
    pub fn of<B>(request: &http::Request<B>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::anonymous)
    }

    /// The caller of a decoded gRPC call (the same extension, as tonic
    /// hands it to a service).
    pub fn of_call<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::anonymous)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caller({:?})", &*self.0)
    }
}
