//! CI workloads and what they may get: the attributes of a CI job's OIDC token
//! ([`workload`]), per-org trust policies with explained decisions ([`policy`]), and the
//! combined user + CI publish flow's state machine ([`publish`]).

pub mod policy;
pub mod publish;
pub mod workload;

pub use policy::{
    Condition, ConditionInput, Evaluation, FailedCondition, Matcher, PolicyError, PolicyGrant, PolicyOutcome,
    RepositoryGrant, TrustPolicy, job_token_ttl,
};
pub use publish::{AttestedWorkload, Outcome, PublishError, PublishSession, PublishState};
pub use workload::Workload;
