//! CI workloads: trust policies (`/v1/orgs/{org}/trust-policies`), the combined publish
//! flow (`/v1/publish/…`) and build sessions (`/v1/build/sessions`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One condition on a CI token: exactly one of `equals`, `glob` (`*` matches any run of
/// characters) or `one_of`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCondition {
    /// A workload attribute (`repository`, `repository_id`, `owner`, `owner_id`, `ref`,
    /// `ref_type`, `ref_protected`, `environment`, `event`, `workflow_ref`,
    /// `job_workflow_ref`, `runner_environment`, `actor`, `sha`, `run_id`, `subject`) or any
    /// other claim by its dotted path.
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
}

/// Registry repositories a policy grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepositoryGrant {
    /// Repository names (glob), e.g. `acme/app` or `acme/*`.
    pub pattern: String,
    /// `pull`, `push`, `delete`.
    pub actions: Vec<String>,
}

/// What a matching workload may get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyGrant {
    /// Scopes of the job token.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences of the job token; the first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryGrant>,
    /// Certificate profiles: `client`, `server`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Packages (globs) the workload may publish in the combined publish flow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
}

/// A trust policy as written (`PUT /v1/orgs/{org}/trust-policies/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicySpec {
    /// The workload issuer's configured name (e.g. `github-actions`).
    pub issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// All must hold; at least one must pin the repository, owner or subject.
    pub conditions: Vec<PolicyCondition>,
    #[serde(default)]
    pub grant: PolicyGrant,
    /// Ceiling of job tokens from this policy (humantime, e.g. `15m`); default 15m, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A stored trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustPolicyInfo {
    pub org: String,
    pub name: String,
    #[serde(flatten)]
    pub spec: TrustPolicySpec,
    pub created_at: String,
    pub updated_at: String,
}

/// An org's trust policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustPolicyList {
    pub policies: Vec<TrustPolicyInfo>,
}

/// The condition of a policy that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailedCondition {
    pub claim: String,
    /// What the policy wants, e.g. `equals "true"`.
    pub expected: String,
    /// What the token has; absent when it has no such claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// One policy's verdict on a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyOutcome {
    /// The org's id.
    pub org: String,
    pub policy: String,
    pub matched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedCondition>,
}

/// How the trust policies judged a CI token: which policies were considered, which
/// matched, and for the others the condition that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyEvaluation {
    /// The workload's attributes as read from the token.
    pub workload: std::collections::BTreeMap<String, String>,
    pub outcomes: Vec<PolicyOutcome>,
    /// The policy that decided (`org/name`), when one matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
}

/// `POST /v1/publish/init`: a signed-in user announces a publish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishInitRequest {
    /// The package (or other target) to publish.
    pub package: String,
    /// The version the user intends to publish.
    pub version: String,
}

/// The session, and the nonce the runner must present (hand both to the workflow, e.g. as
/// `workflow_dispatch` inputs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishInitResponse {
    pub session_id: String,
    pub nonce: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `POST /v1/publish/attest`: the runner proves it is an allowed workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishAttestRequest {
    pub session_id: String,
    pub nonce: String,
    /// The runner's OIDC token (GitHub: `ACTIONS_ID_TOKEN_REQUEST_URL`; GitLab: `id_tokens`).
    pub token: String,
}

/// The runner's secret for the rest of the session (`combined`, `status`, `finalize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishAttestResponse {
    pub session_id: String,
    /// `tg_pr_…`: send as `Authorization: Bearer …`. Shown once.
    pub runner_secret: String,
    /// The name of the org's trust policy that allowed the workload.
    pub policy: String,
}

/// The combined publish token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CombinedTokenResponse {
    /// A JWT (`typ: publish+jwt`, EdDSA by default) naming the user (`sub`) and the workload
    /// (`act`, RFC 8693), verifiable with `/.well-known/jwks.json`.
    pub token: String,
    pub expires_in: u64,
    pub audience: String,
}

/// `POST /v1/publish/status`: progress from the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishStatusRequest {
    pub session_id: String,
    /// A short word: `building`, `uploading`, …
    pub status: String,
    #[serde(default)]
    pub message: String,
}

/// `POST /v1/publish/finalize`: ends the session (once), by the runner or the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishFinalizeRequest {
    pub session_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    #[serde(default)]
    pub message: String,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishStatusUpdate {
    pub at: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A publish session as its user and runner see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishSessionInfo {
    pub session_id: String,
    pub package: String,
    pub version: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// `pending`, `attested`, `token-issued`, `finalized`.
    pub state: String,
    /// Past `expires_at` without being finalized: no step will succeed any more.
    #[serde(default)]
    pub expired: bool,
    pub expires_at: String,
    /// The workload that attested: repository, ref, workflow, run, policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub status: Vec<PublishStatusUpdate>,
    /// `succeeded`, `failed`, `cancelled` once finalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_by: Option<String>,
}

/// `POST /v1/build/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBuildSessionRequest {
    #[serde(default)]
    pub description: String,
    /// Shorter than the server's `ci.build_session_ttl` if set (humantime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A build session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildSessionInfo {
    pub id: String,
    /// Whose quota it counts against: `ci:<issuer>:<repository>` or `user:<id>`.
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub created_at: String,
    pub expires_at: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
}

/// Build sessions, newest first, with the limit that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildSessionList {
    pub sessions: Vec<BuildSessionInfo>,
    pub max_active_per_owner: u32,
}
