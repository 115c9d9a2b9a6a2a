//! Which callers may call which RPCs (DESIGN §8): the policy of
//! `AUTHZ_POLICY_FILE`, checked at start, re-read when it changes, and asked
//! by the server's guard for every API call.
//!
//! ```json
//! {"callers": [
//!   {"identity": "spiffe://cluster.local/ns/checkout/sa/checkout",
//!    "allow": ["portone.facade.v1.PaymentPrepareService/*"]}
//! ]}
//! ```

use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::PathBuf,
    sync::Arc,
};

use arc_swap::ArcSwap;
use serde::Deserialize;

use crate::watch::{ReadError, SettingFile, Watch, watch};

/// `AUTHZ_POLICY_FILE`.
pub const POLICY_VARIABLE: &str = "AUTHZ_POLICY_FILE";

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file is not a policy.
    #[error("{file} is not a valid policy: {reason}")]
    Invalid {
        /// The file.
        file: SettingFile,
        /// What is wrong, with the line and column when JSON says so.
        reason: String,
    },
}

/// The policy file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    callers: Vec<CallerEntry>,
}

/// One caller of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    identity: String,
    allow: Vec<String>,
}

/// What one caller may call.
#[derive(Debug, Default, PartialEq, Eq)]
struct Allowed {
    /// `*`: every RPC.
    everything: bool,
    /// `package.Service/*`: the services named.
    services: HashSet<String>,
    /// `package.Service/Method`: the RPCs named.
    methods: HashSet<String>,
}

/// A checked policy: callers by identity.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Policy {
    callers: HashMap<String, Allowed>,
}

impl Policy {
    /// Reads a policy from its JSON; every identity must be given once and
    /// be non-empty, every `allow` entry must be `*`,
    /// `package.Service/*` or `package.Service/Method`, and no other field
    /// may appear.
    pub fn parse(json: &[u8]) -> Result<Policy, String> {
        let file: PolicyFile = serde_json::from_slice(json).map_err(|error| error.to_string())?;
        let mut callers = HashMap::new();
        for (n, entry) in file.callers.into_iter().enumerate() {
            if entry.identity.trim().is_empty() {
                return Err(format!("callers[{n}].identity is empty"));
            }
            // A certificate's name never has surrounding spaces: such an
            // entry could never match, so it is a typo to report.
            if entry.identity.trim() != entry.identity {
                return Err(format!(
                    "callers[{n}].identity {:?} has leading or trailing whitespace",
                    entry.identity
                ));
            }
            let mut allowed = Allowed::default();
            for (m, rule) in entry.allow.into_iter().enumerate() {
                let at = || format!("callers[{n}].allow[{m}]");
                if rule == "*" {
                    allowed.everything = true;
                    continue;
                }
                let Some((service, method)) = rule.split_once('/') else {
                    return Err(format!(
                        "{} is {rule:?}: expected \"package.Service/Method\", \"package.Service/*\" or \"*\"",
                        at()
                    ));
                };
                if !is_service_name(service) {
                    return Err(format!(
                        "{} is {rule:?}: {service:?} is not a package-qualified service name such as portone.facade.v1.PaymentPrepareService",
                        at()
                    ));
                }
                if method == "*" {
                    allowed.services.insert(service.to_owned());
                } else if is_identifier(method) {
                    allowed.methods.insert(rule);
                } else {
                    return Err(format!(
                        "{} is {rule:?}: {method:?} is neither a method name nor *",
                        at()
                    ));
                }
            }
            if callers.insert(entry.identity.clone(), allowed).is_some() {
                return Err(format!(
                    "callers[{n}].identity {:?} is listed twice",
                    entry.identity
                ));
            }
        }
        Ok(Policy { callers })
    }

    /// Whether `caller` may call `rpc` (`package.Service/Method`).
    pub fn allows(&self, caller: &str, rpc: &str) -> bool {
        let Some(allowed) = self.callers.get(caller) else {
            return false;
        };
        allowed.everything
            || allowed.methods.contains(rpc)
            || rpc
                .split_once('/')
                .is_some_and(|(service, _)| allowed.services.contains(service))
    }
}

/// A protobuf identifier: a letter or `_`, then letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `package.Service`: two or more identifiers joined by dots. A bare
/// `Service` is refused: it names nothing a gRPC path can hold.
fn is_service_name(name: &str) -> bool {
    name.contains('.') && name.split('.').all(is_identifier)
}

/// The file's policy, checked and loaded at start.
pub struct PolicySettings {
    file: SettingFile,
    policy: Policy,
    contents: Vec<u8>,
}

impl fmt::Debug for PolicySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySettings")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl PolicySettings {
    /// Reads and checks the policy at `path`.
    pub fn load(path: impl Into<PathBuf>) -> Result<PolicySettings, PolicyError> {
        let file = SettingFile::new(POLICY_VARIABLE, path);
        let contents = file.read()?;
        let policy = parse(&file, &contents)?;
        Ok(PolicySettings {
            file,
            policy,
            contents,
        })
    }
}

fn parse(file: &SettingFile, contents: &[u8]) -> Result<Policy, PolicyError> {
    Policy::parse(contents).map_err(|reason| PolicyError::Invalid {
        file: file.clone(),
        reason,
    })
}

/// The policy in force, kept up to date with its file while this lives.
pub(crate) struct Authorizer {
    policy: Arc<ArcSwap<Policy>>,
    _watch: Watch,
}

impl Authorizer {
    /// Enforces `settings` and starts watching the file. Must be called
    /// inside the tokio runtime.
    pub(crate) fn start(settings: PolicySettings) -> Authorizer {
        let PolicySettings {
            file,
            policy,
            contents,
        } = settings;
        let policy = Arc::new(ArcSwap::from_pointee(policy));
        let watch = watch(vec![file.clone()], vec![contents], {
            let policy = Arc::clone(&policy);
            move |read| {
                let read = read.map_err(PolicyError::from).and_then(|contents| {
                    parse(&file, contents.first().map_or(&[][..], Vec::as_slice))
                });
                match read {
                    Ok(new) => {
                        policy.store(Arc::new(new));
                        tracing::info!(policy = %file, "authorization policy reloaded");
                    }
                    Err(error) => tracing::error!(
                        %error,
                        "authorization policy not reloaded; the previous one is still in force"
                    ),
                }
            }
        });
        Authorizer {
            policy,
            _watch: watch,
        }
    }

    /// Whether `caller` may call `rpc` under the policy in force.
    pub(crate) fn allows(&self, caller: &str, rpc: &str) -> bool {
        self.policy.load().allows(caller, rpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREPARE: &str = "portone.facade.v1.PaymentPrepareService/PreparePayment";
    const GET: &str = "portone.facade.v1.PaymentPrepareService/GetPreparedPayment";
    const LINK: &str = "portone.facade.v1.PaymentLinkService/CreatePaymentLink";

    #[test]
    fn the_design_example_allows_what_it_lists_and_nothing_else() {
        let policy = Policy::parse(
            br#"{"callers": [
              {"identity": "spiffe://cluster.local/ns/checkout/sa/checkout",
               "allow": ["portone.facade.v1.PaymentPrepareService/*"]},
              {"identity": "billing.payments.svc",
               "allow": ["portone.facade.v1.PaymentLinkService/CreatePaymentLink",
                         "portone.facade.v1.PaymentPrepareService/GetPreparedPayment"]},
              {"identity": "ops", "allow": ["*"]},
              {"identity": "nobody", "allow": []}
            ]}"#,
        )
        .unwrap();
        let checkout = "spiffe://cluster.local/ns/checkout/sa/checkout";
        assert!(policy.allows(checkout, PREPARE) && policy.allows(checkout, GET));
        assert!(!policy.allows(checkout, LINK));
        assert!(policy.allows("billing.payments.svc", LINK));
        assert!(policy.allows("billing.payments.svc", GET));
        assert!(!policy.allows("billing.payments.svc", PREPARE));
        assert!(policy.allows("ops", LINK) && policy.allows("ops", PREPARE));
        assert!(!policy.allows("nobody", GET));
        assert!(!policy.allows("stranger", GET));
        assert!(!policy.allows("anonymous", GET));
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        for (json, expected) in [
            (r#"{"callers": [], "extra": 1}"#, "unknown field `extra`"),
            (
                r#"{"callers": [{"identity": "a", "allow": [], "deny": []}]}"#,
                "unknown field `deny`",
            ),
            (r#"{}"#, "missing field `callers`"),
            (
                r#"{"callers": [{"identity": " ", "allow": []}]}"#,
                "callers[0].identity is empty",
            ),
            (
                r#"{"callers": [{"identity": "billing.payments.svc ", "allow": []}]}"#,
                "callers[0].identity \"billing.payments.svc \" has leading or trailing whitespace",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": ["PaymentPrepareService/*"]}]}"#,
                "callers[0].allow[0]",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": ["portone.facade.v1.PaymentPrepareService"]}]}"#,
                "callers[0].allow[0]",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": ["*", "a.B/C/D"]}]}"#,
                "callers[0].allow[1]",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": ["a.B/Pre*"]}]}"#,
                "callers[0].allow[0]",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": []}, {"identity": "a", "allow": ["*"]}]}"#,
                "listed twice",
            ),
            (
                r#"{"callers": [{"identity": "a", "allow": "*"}]}"#,
                "invalid type",
            ),
        ] {
            let error = Policy::parse(json.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
