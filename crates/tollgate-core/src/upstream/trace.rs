//! The explanation of a verification: each check, passed or failed, in order.

use crate::reason::Reason;
use serde::Serialize;

/// The checks a verification performs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Size,
    Structure,
    Issuer,
    IssuerEnabled,
    Algorithm,
    Key,
    Signature,
    Expiry,
    NotBefore,
    IssuedAt,
    MaxAge,
    Audience,
    AuthorizedParty,
    RequiredClaims,
    Identity,
    /// The issuer's grant conditions on claims (exchange only).
    Policy,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub check: Check,
    pub passed: bool,
    pub detail: String,
}

/// Receives the steps of a verification. The hot path uses [`NoTrace`], which builds no
/// strings; diagnostics use [`Report`].
pub trait Trace {
    fn step(&mut self, check: Check, passed: bool, detail: impl FnOnce() -> String);
}

/// Discards every step.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn step(&mut self, _: Check, _: bool, _: impl FnOnce() -> String) {}
}

/// Keeps every step, for `POST /v1/verify` and `tollgate debug token`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Trace for Report {
    fn step(&mut self, check: Check, passed: bool, detail: impl FnOnce() -> String) {
        self.steps.push(Step {
            check,
            passed,
            detail: detail(),
        });
    }
}

/// Why an upstream token was refused, with the issuer and key it named when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    #[serde(serialize_with = "reason_code")]
    pub reason: Reason,
    pub message: String,
    pub issuer: Option<String>,
    pub kid: Option<String>,
    /// Whether the token's signature had verified: only then are its claims (and this
    /// refusal) worth an audit record; before, anyone could have written them.
    #[serde(skip)]
    pub after_signature: bool,
}

fn reason_code<S: serde::Serializer>(r: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.code())
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            issuer: None,
            kid: None,
            after_signature: false,
        }
    }
}
