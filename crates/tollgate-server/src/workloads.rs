//! CI workloads: admitting a verified CI token through the orgs' trust policies (with an
//! explanation either way), the replay cache that accepts each CI token once, and job
//! tokens.

use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::metrics::PolicyLabels;
use crate::state::AppState;
use crate::tokens::{self, IssuedToken, Subject};
use crate::upstream::verifier::VerifiedToken;
use serde_json::json;
use std::time::Duration;
use tollgate_core::claims::{JobClaims, UpstreamSubject};
use tollgate_core::client_grant::{self, ClientPolicy, ClientRequest, Grant};
use tollgate_core::trust::{ConditionInput, Evaluation, FailedCondition, PolicyGrant, TrustPolicy, Workload};
use tollgate_core::upstream::claims::check_policy;
use tollgate_core::upstream::{IssuerKind, NoTrace};
use tollgate_core::{Audience, Reason, Scope};
use tollgate_proto::ci::{PolicyEvaluation, TrustPolicySpec};
use tollgate_store::TrustPolicyRecord;

/// The default ceiling of a policy's job tokens.
pub const DEFAULT_POLICY_TTL: Duration = Duration::from_secs(15 * 60);

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidParameter, message)
}

/// Validates a policy as written into the domain's form.
pub fn to_policy(org_id: &str, name: &str, spec: &TrustPolicySpec) -> Result<TrustPolicy, ApiError> {
    let max_ttl = match &spec.max_ttl {
        None => DEFAULT_POLICY_TTL,
        Some(t) => humantime::parse_duration(t).map_err(|e| invalid(format!("max_ttl `{t}`: {e}")))?,
    };
    let g = &spec.grant;
    let grant = PolicyGrant {
        scopes: Scope::from_tokens(&g.scopes).map_err(|e| invalid(format!("grant.scopes: {e}")))?,
        audiences: g
            .audiences
            .iter()
            .map(|a| Audience::parse(a).map_err(|e| invalid(format!("grant.audiences `{a}`: {e}"))))
            .collect::<Result<_, _>>()?,
        repositories: g
            .repositories
            .iter()
            .map(|r| tollgate_core::trust::RepositoryGrant {
                pattern: r.pattern.clone(),
                actions: r.actions.clone(),
            })
            .collect(),
        certificates: g.certificates.clone(),
        publish: g.publish.clone(),
    };
    let conditions = spec
        .conditions
        .iter()
        .map(|c| ConditionInput {
            claim: c.claim.clone(),
            equals: c.equals.clone(),
            glob: c.glob.clone(),
            one_of: c.one_of.clone(),
        })
        .collect();
    TrustPolicy::new(
        org_id,
        name,
        &spec.issuer,
        conditions,
        grant,
        max_ttl,
        spec.enabled,
    )
    .map_err(|e| invalid(e.to_string()))
}

/// Reads stored policies. One that no longer validates (stored by an older version, or
/// its issuer renamed) is skipped with a warning: skipping can only deny.
fn parse_records(records: Vec<TrustPolicyRecord>) -> Vec<TrustPolicy> {
    records
        .into_iter()
        .filter_map(|r| {
            let parsed = serde_json::from_str::<TrustPolicySpec>(&r.spec)
                .map_err(|e| invalid(e.to_string()))
                .and_then(|spec| to_policy(&r.org_id, &r.name, &spec));
            match parsed {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(org = %r.org_id, policy = %r.name, error = %e.message, "stored trust policy is invalid; ignored");
                    None
                }
            }
        })
        .collect()
}

/// The trust policy a job token names, read now; `None` if it is gone or no longer valid.
pub async fn policy_of(
    state: &AppState,
    claims: &tollgate_core::AccessTokenClaims,
) -> Result<Option<TrustPolicy>, ApiError> {
    let (Some(job), Some(org)) = (&claims.ci, &claims.org) else {
        return Ok(None);
    };
    let record = state.store.get_trust_policy(org, &job.policy).await?;
    Ok(parse_records(record.into_iter().collect())
        .pop()
        .filter(|p| p.enabled))
}

/// The workload a verified token describes; refused unless its issuer is of workloads.
pub fn workload_of(token: &VerifiedToken) -> Result<Workload, ApiError> {
    if token.issuer.kind != IssuerKind::Workloads {
        return Err(ApiError::new(
            Reason::NotAWorkload,
            format!(
                "issuer `{}` is an issuer of users; CI tokens come from issuers of kind workloads",
                token.issuer.name
            ),
        ));
    }
    Ok(Workload::from_claims(
        &token.issuer.name,
        &token.identity.issuer,
        &token.identity.subject,
        &token.issuer.workload_claims,
        &token.claims,
    ))
}

/// What the policies make of a workload, before any replay check.
#[derive(Debug)]
pub struct Judgement {
    pub workload: Workload,
    pub evaluation: Evaluation,
    /// The deciding policy, when exactly one org's policies matched.
    pub chosen: Option<TrustPolicy>,
    policies: Vec<TrustPolicy>,
}

impl Judgement {
    /// The evaluation on the wire.
    #[must_use]
    pub fn explained(&self) -> PolicyEvaluation {
        use tollgate_proto::ci;
        PolicyEvaluation {
            workload: self.workload.attributes.clone(),
            outcomes: self
                .evaluation
                .outcomes
                .iter()
                .map(|o| ci::PolicyOutcome {
                    org: o.org_id.clone(),
                    policy: o.policy.clone(),
                    matched: o.matched,
                    failed: o.failed.as_ref().map(|f| ci::FailedCondition {
                        claim: f.claim.clone(),
                        expected: f.expected.clone(),
                        actual: f.actual.clone(),
                    }),
                })
                .collect(),
            chosen: self.chosen.as_ref().map(|p| format!("{}/{}", p.org_id, p.name)),
        }
    }
}

/// Evaluates the trust policies for `token`: those of `org` (id or name) if given, else
/// every org's for the token's issuer. With `package`, a matching policy must also allow
/// publishing it (otherwise it counts as failing on `(publish)`).
pub async fn judge(
    state: &AppState,
    token: &VerifiedToken,
    org: Option<&str>,
    package: Option<&str>,
) -> Result<Judgement, ApiError> {
    let workload = workload_of(token)?;
    let records = match org {
        Some(o) => match state.store.find_org(o).await? {
            Some(org) => state
                .store
                .trust_policies_of(&org.id)
                .await?
                .into_iter()
                .filter(|p| p.issuer == token.issuer.name)
                .collect(),
            None => Vec::new(),
        },
        None => state.store.trust_policies_for_issuer(&token.issuer.name).await?,
    };
    let policies = parse_records(records);
    let mut evaluation = Evaluation::of(&policies, &workload);
    if let Some(package) = package {
        for o in &mut evaluation.outcomes {
            let Some(p) = policies
                .iter()
                .find(|p| p.org_id == o.org_id && p.name == o.policy)
            else {
                continue;
            };
            if o.matched && !p.grant.allows_publish(package) {
                o.matched = false;
                o.failed = Some(FailedCondition {
                    claim: "package".into(),
                    expected: format!("matches one of grant.publish {:?}", p.grant.publish),
                    actual: Some(package.to_owned()),
                });
            }
        }
    }
    let mut orgs: Vec<&str> = evaluation.matched().map(|o| o.org_id.as_str()).collect();
    orgs.dedup();
    let chosen = match orgs.as_slice() {
        [_] => evaluation
            .matched()
            .next()
            .and_then(|o| {
                policies
                    .iter()
                    .find(|p| p.org_id == o.org_id && p.name == o.policy)
            })
            .cloned(),
        _ => None,
    };
    Ok(Judgement {
        workload,
        evaluation,
        chosen,
        policies,
    })
}

/// The audit actor of a workload.
#[must_use]
pub fn actor(w: &Workload) -> String {
    format!("ci:{}:{}", w.issuer, w.subject)
}

fn count(state: &AppState, issuer: &str, policy: Option<&TrustPolicy>, outcome: &'static str) {
    let policy = policy.map_or_else(|| "none".to_owned(), |p| format!("{}/{}", p.org_id, p.name));
    state
        .metrics
        .policy_decisions
        .get_or_create(&PolicyLabels {
            issuer: issuer.to_owned(),
            policy,
            outcome,
        })
        .inc();
}

/// Admits a CI token for `action` (audited under that name): the policies must match in
/// exactly one org, then the token is recorded as used (a second presentation is
/// `token-replayed`). Every decision is counted and audited with its explanation.
pub async fn admit(
    state: &AppState,
    token: &VerifiedToken,
    org: Option<&str>,
    package: Option<&str>,
    action: &str,
) -> Result<(Judgement, TrustPolicy), ApiError> {
    let judgement = judge(state, token, org, package).await?;
    let w = &judgement.workload;
    // The issuer's own conditions (`grant.require`) hold for every use of its tokens.
    let issuer_refusal = check_policy(&token.issuer, &token.claims, &mut NoTrace)
        .err()
        .map(|r| ApiError::new(r.reason, r.message));
    let refusal = match &judgement.chosen {
        _ if issuer_refusal.is_some() => issuer_refusal,
        Some(_) => None,
        None if judgement.evaluation.matched().next().is_some() => Some(ApiError::new(
            Reason::OrgAmbiguous,
            "trust policies of several orgs match this workload; pass org=<name> to choose one",
        )),
        None => Some(
            ApiError::new(Reason::PolicyDenied, judgement.evaluation.explain_denial(w))
                .with_policies(judgement.explained()),
        ),
    };
    if let Some(e) = refusal {
        count(state, &w.issuer, None, e.reason.code());
        // Policies of one org considered: the refusal belongs in that org's trail too.
        let mut orgs: Vec<&str> = judgement.policies.iter().map(|p| p.org_id.as_str()).collect();
        orgs.dedup();
        let mut event = AuditEvent::new(actor(w), action).denied(e.reason).detail(
            json!({"workload": w.attributes, "evaluation": judgement.explained(), "package": package}),
        );
        if let [one] = orgs.as_slice() {
            event = event.org(*one);
        }
        crate::audit::record_event(state, event).await?;
        return Err(e);
    }
    let Some(policy) = judgement.chosen.clone() else {
        return Err(ApiError::internal(&std::io::Error::other(
            "admitted without a policy",
        )));
    };
    if !first_use(state, token).await? {
        count(state, &w.issuer, Some(&policy), Reason::TokenReplayed.code());
        let event = AuditEvent::new(actor(w), action)
            .org(&policy.org_id)
            .denied(Reason::TokenReplayed)
            .detail(json!({"workload": w.attributes, "policy": policy.name}));
        crate::audit::record_event(state, event).await?;
        return Err(ApiError::new(
            Reason::TokenReplayed,
            "this CI token was used before; each is accepted once: request a fresh one in the job",
        ));
    }
    count(state, &w.issuer, Some(&policy), "granted");
    Ok((judgement, policy))
}

/// Records the token's `jti` until its `exp` (plus skew): true the first time.
async fn first_use(state: &AppState, token: &VerifiedToken) -> Result<bool, ApiError> {
    // Workload issuers require `jti` (the issuer's required claims), so it is present.
    let jti = token
        .claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                Reason::ClaimMissing,
                "the CI token has no jti; it cannot be accepted once",
            )
        })?;
    let key = tollgate_crypto::sha256_hex(format!("{}\0{jti}", token.identity.issuer).as_bytes());
    let now = state.clock.now();
    let until = token
        .expires_at()
        .unwrap_or(now)
        .plus(token.issuer.clock_skew)
        .max(now.plus(Duration::from_secs(1)));
    Ok(state.ephemeral.first_use("ci-jti", &key, until.0, now.0).await?)
}

/// How long is left of the CI token; refused when nothing is.
pub fn upstream_left(state: &AppState, token: &VerifiedToken) -> Result<Duration, ApiError> {
    let now = state.clock.now();
    let exp = token.expires_at().unwrap_or(now);
    let left = Duration::from_secs(now.seconds_until(exp));
    if left.is_zero() {
        return Err(
            ApiError::new(Reason::Expired, "the CI token expires now; request a fresh one")
                .as_invalid_grant(),
        );
    }
    Ok(left)
}

/// Handles a token exchange whose subject token is a CI job's: policy, replay check, then a
/// job token (no refresh token) whose lifetime is the least of the policy's ceiling,
/// `ci.job_token_max_ttl` and what is left of the CI token.
pub async fn exchange(
    state: &AppState,
    token: &VerifiedToken,
    org: Option<&str>,
    request: &ClientRequest,
) -> Result<(IssuedToken, Grant), ApiError> {
    let (judgement, policy) = admit(state, token, org, None, "ci.exchange")
        .await
        .map_err(ApiError::as_invalid_grant)?;
    let limits = state.grant_limits()?;
    let allowed = ClientPolicy {
        allowed_scope: policy.grant.scopes.clone(),
        allowed_audiences: policy.grant.audiences.clone(),
    };
    let mut grant =
        client_grant::decide(&allowed, request, &limits).map_err(|d| ApiError::new(d.reason, d.message))?;
    grant.ttl = tollgate_core::trust::job_token_ttl(
        policy.max_ttl,
        state.config.ci.job_token_max_ttl,
        upstream_left(state, token)?,
    );
    let issued = issue_job_token(state, token, &judgement.workload, &policy, &grant)?;
    let c = &issued.claims;
    let event = AuditEvent::new(actor(&judgement.workload), "ci.exchange")
        .org(&policy.org_id)
        .target(&c.sub)
        .credential(&c.jti)
        .detail(json!({
            "policy": policy.name, "workload": judgement.workload.attributes, "aud": c.aud,
            "scope": c.scope, "expires_in": grant.ttl.as_secs(),
        }));
    crate::audit::record_event(state, event).await?;
    Ok((issued, grant))
}

fn issue_job_token(
    state: &AppState,
    token: &VerifiedToken,
    workload: &Workload,
    policy: &TrustPolicy,
    grant: &Grant,
) -> Result<IssuedToken, ApiError> {
    let subject = Subject {
        sub: format!("ci:{}:{}", workload.issuer, workload.subject),
        client_id: format!("ci:{}", workload.issuer),
        upstream: Some(UpstreamSubject {
            iss: token.identity.issuer.clone(),
            sub: token.identity.subject.clone(),
            name: token.issuer.name.clone(),
            email: None,
            org_id: token.identity.org_id.clone(),
            org_role: None,
        }),
        act: None,
        user_ver: None,
        org: Some(policy.org_id.clone()),
        roles: Vec::new(),
        ci: Some(JobClaims {
            policy: policy.name.clone(),
            workload: workload
                .attributes
                .iter()
                .filter(|(k, _)| *k != "subject")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
    };
    tokens::issue(state, subject, grant)
}
