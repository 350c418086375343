//! Wire types of tollgate's HTTP API, shared by the server, the Rust SDK and the CLI.
//!
//! Plain data with serde and OpenAPI schemas; no behaviour. Times in the admin API are
//! RFC 3339 strings; times inside OAuth responses follow their RFCs (seconds).

pub mod admin;
pub mod audit;
pub mod certs;
pub mod ci;
pub mod device;
pub mod discovery;
pub mod invites;
pub mod keys;
pub mod oauth;
pub mod ops;
pub mod orgs;
pub mod registry;

/// The error body of every refusal: RFC 6749 §5.2 fields plus tollgate's reason code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// RFC 6749 error code on OAuth endpoints (`invalid_request`, `invalid_client`, …); a
    /// short category elsewhere (`unauthorized`, `not_found`, …).
    pub error: String,
    /// What went wrong and what to do next, for people.
    pub error_description: String,
    /// Stable machine-readable reason code (see docs/reasons.md).
    pub reason: String,
    /// For refused upstream tokens: the `iss` the token named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// For refused upstream tokens: the `kid` the token named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// For `policy-denied` on CI tokens: every trust policy considered and the condition
    /// that failed in each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Box<ci::PolicyEvaluation>>,
}
