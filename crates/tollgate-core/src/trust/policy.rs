//! Trust policies: which CI workloads of an org may get which credentials.
//!
//! A policy names one issuer, a list of conditions on the workload's attributes (all must
//! hold), what it grants, and a TTL ceiling. Nothing matches by default. Every evaluation
//! yields an [`Evaluation`] that says, per policy, whether it matched and which condition
//! failed with what the token had, so a refusal can be explained without guessing.

use super::workload::Workload;
use crate::audience::Audience;
use crate::glob;
use crate::scope::Scope;
use serde::Serialize;
use std::time::Duration;

/// How a condition compares a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The value is exactly this string.
    Equals(String),
    /// `*` matches any run of characters; nothing else is special.
    Glob(String),
    /// The value is exactly one of these.
    OneOf(Vec<String>),
}

impl Matcher {
    #[must_use]
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Equals(e) => e == value,
            Matcher::Glob(p) => glob::matches(p, value),
            Matcher::OneOf(set) => set.iter().any(|e| e == value),
        }
    }

    /// `equals "x"`, `glob "x*"`, `one of ["a", "b"]`: for explanations.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Matcher::Equals(e) => format!("equals {e:?}"),
            Matcher::Glob(p) => format!("matches glob {p:?}"),
            Matcher::OneOf(set) => format!("is one of {set:?}"),
        }
    }
}

/// One condition: the attribute (or raw claim path) and how it must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub claim: String,
    pub matcher: Matcher,
}

/// A registry grant: repositories matching `pattern` (glob), with these actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryGrant {
    pub pattern: String,
    pub actions: Vec<String>,
}

/// What a matching workload may get.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyGrant {
    /// Scopes of the job token (a request may ask for fewer).
    pub scopes: Scope,
    /// Audiences of the job token; the first is the default.
    pub audiences: Vec<Audience>,
    /// Registry repositories the job token may pull or push.
    pub repositories: Vec<RepositoryGrant>,
    /// Certificate profiles (`client`, `server`): permissions `certificate:sign:<profile>`.
    pub certificates: Vec<String>,
    /// Packages (globs) the workload may publish through the combined publish flow.
    pub publish: Vec<String>,
}

impl PolicyGrant {
    /// The permissions this grant gives, in tollgate's permission names.
    #[must_use]
    pub fn permissions(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .certificates
            .iter()
            .map(|c| format!("certificate:sign:{c}"))
            .collect();
        for r in &self.repositories {
            for a in &r.actions {
                let name = format!("registry:{a}");
                if !p.contains(&name) {
                    p.push(name);
                }
            }
        }
        if !self.publish.is_empty() {
            p.push("packages:publish".to_owned());
        }
        p
    }

    /// Whether `package` may be published.
    #[must_use]
    pub fn allows_publish(&self, package: &str) -> bool {
        self.publish.iter().any(|p| glob::matches(p, package))
    }
}

/// A validated trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub org_id: String,
    pub name: String,
    /// The issuer's configured name.
    pub issuer: String,
    pub conditions: Vec<Condition>,
    pub grant: PolicyGrant,
    pub max_ttl: Duration,
    pub enabled: bool,
}

/// The longest a job token may live by policy, whatever a policy says.
pub const MAX_POLICY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a policy definition is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust policy `{policy}`: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

/// A condition as written, before validation.
#[derive(Debug, Clone, Default)]
pub struct ConditionInput {
    pub claim: String,
    pub equals: Option<String>,
    pub glob: Option<String>,
    pub one_of: Option<Vec<String>>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Condition {
    /// Exactly one of `equals`, `glob` and `one_of`; no empty claim or pattern; a glob that
    /// is only `*` is refused (it says nothing: leave the condition out instead).
    pub fn parse(input: ConditionInput) -> Result<Self, String> {
        let claim = input.claim;
        if claim.is_empty() || claim.len() > 128 || claim.chars().any(char::is_whitespace) {
            return Err(format!(
                "condition claim `{claim}` must be a non-empty name without spaces"
            ));
        }
        let matcher = match (input.equals, input.glob, input.one_of) {
            (Some(e), None, None) if !e.is_empty() => Matcher::Equals(e),
            (None, Some(g), None) if !g.is_empty() && g.bytes().any(|b| b != b'*') => Matcher::Glob(g),
            (None, None, Some(set)) if !set.is_empty() && set.iter().all(|s| !s.is_empty()) => {
                Matcher::OneOf(set)
            }
            (None, Some(_), None) => {
                return Err(format!(
                    "condition on `{claim}`: a glob of only `*` matches anything; remove the condition"
                ));
            }
            _ => {
                return Err(format!(
                    "condition on `{claim}` needs exactly one non-empty `equals`, `glob` or `one_of`"
                ));
            }
        };
        Ok(Self { claim, matcher })
    }
}

impl TrustPolicy {
    /// Validates a policy. A policy without conditions is refused: it would trust every
    /// job of every repository that can get a token from the issuer.
    pub fn new(
        org_id: &str,
        name: &str,
        issuer: &str,
        conditions: Vec<ConditionInput>,
        grant: PolicyGrant,
        max_ttl: Duration,
        enabled: bool,
    ) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError {
            policy: name.to_owned(),
            message,
        };
        if !valid_name(name) {
            return Err(err("name must be 1–64 characters of A–Z a–z 0–9 . _ -".into()));
        }
        if issuer.is_empty() {
            return Err(err("issuer must name a configured issuer".into()));
        }
        let conditions = conditions
            .into_iter()
            .map(Condition::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let pins_repository = conditions.iter().any(|c| {
            matches!(
                c.claim.as_str(),
                "repository" | "repository_id" | "owner" | "owner_id" | "subject" | "sub"
            )
        });
        if !pins_repository {
            return Err(err(
                "conditions must pin the workload with at least one of repository, repository_id, \
                 owner, owner_id or subject; otherwise every repository on the issuer matches"
                    .into(),
            ));
        }
        if max_ttl < Duration::from_secs(10) || max_ttl > MAX_POLICY_TTL {
            return Err(err("max_ttl must be between 10s and 24h".into()));
        }
        for r in &grant.repositories {
            if r.pattern.is_empty() || r.actions.is_empty() {
                return Err(err("each repository grant needs a pattern and actions".into()));
            }
            if let Some(a) = r
                .actions
                .iter()
                .find(|a| !["pull", "push", "delete"].contains(&a.as_str()))
            {
                return Err(err(format!("repository action `{a}`: use pull, push or delete")));
            }
        }
        if let Some(c) = grant
            .certificates
            .iter()
            .find(|c| !["client", "server"].contains(&c.as_str()))
        {
            return Err(err(format!("certificate profile `{c}`: use client or server")));
        }
        if grant.publish.iter().any(String::is_empty) {
            return Err(err("publish patterns must not be empty".into()));
        }
        Ok(Self {
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            issuer: issuer.to_owned(),
            conditions,
            grant,
            max_ttl,
            enabled,
        })
    }

    /// Evaluates this policy for `workload`: every condition in order, stopping at the first
    /// that fails.
    #[must_use]
    pub fn evaluate(&self, workload: &Workload) -> PolicyOutcome {
        let failed = if !self.enabled {
            Some(FailedCondition {
                claim: "(policy)".into(),
                expected: "policy enabled".into(),
                actual: Some("disabled".into()),
            })
        } else if self.issuer != workload.issuer {
            Some(FailedCondition {
                claim: "(issuer)".into(),
                expected: format!("equals {:?}", self.issuer),
                actual: Some(workload.issuer.clone()),
            })
        } else {
            self.conditions.iter().find_map(|c| {
                let values = workload.values(&c.claim);
                (!values.iter().any(|v| c.matcher.matches(v))).then(|| FailedCondition {
                    claim: c.claim.clone(),
                    expected: c.matcher.describe(),
                    actual: match values.as_slice() {
                        [] => None,
                        [one] => Some(one.clone()),
                        many => Some(format!("{many:?}")),
                    },
                })
            })
        };
        PolicyOutcome {
            org_id: self.org_id.clone(),
            policy: self.name.clone(),
            matched: failed.is_none(),
            failed,
        }
    }
}

/// The condition that did not hold, with what the token had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCondition {
    pub claim: String,
    pub expected: String,
    /// The token's value; `None` when it has no such claim.
    pub actual: Option<String>,
}

impl std::fmt::Display for FailedCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.actual {
            Some(a) => write!(f, "`{}` {} but is {a:?}", self.claim, self.expected),
            None => write!(
                f,
                "`{}` {} but the token has no such claim",
                self.claim, self.expected
            ),
        }
    }
}

/// One policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    pub org_id: String,
    pub policy: String,
    pub matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedCondition>,
}

/// The verdicts of every policy considered, and the one chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub outcomes: Vec<PolicyOutcome>,
}

impl Evaluation {
    /// Evaluates `policies` (one org's, or every org's for the issuer) in name order.
    #[must_use]
    pub fn of<'p>(policies: impl IntoIterator<Item = &'p TrustPolicy>, workload: &Workload) -> Self {
        let mut outcomes: Vec<PolicyOutcome> = policies.into_iter().map(|p| p.evaluate(workload)).collect();
        outcomes.sort_by(|a, b| (&a.org_id, &a.policy).cmp(&(&b.org_id, &b.policy)));
        Self { outcomes }
    }

    /// The matching policies, in name order.
    pub fn matched(&self) -> impl Iterator<Item = &PolicyOutcome> {
        self.outcomes.iter().filter(|o| o.matched)
    }

    /// One line for people: why nothing matched.
    #[must_use]
    pub fn explain_denial(&self, workload: &Workload) -> String {
        if self.outcomes.is_empty() {
            return format!(
                "no trust policy names issuer `{}`; nothing is trusted by default",
                workload.issuer
            );
        }
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .filter_map(|o| o.failed.as_ref().map(|f| format!("policy `{}`: {f}", o.policy)))
            .collect();
        format!(
            "no trust policy matches {}: {}",
            workload.describe(),
            parts.join("; ")
        )
    }
}

/// The lifetime of a job token: the least of what the policy allows, what the server
/// allows, and what is left of the CI token it rests on.
#[must_use]
pub fn job_token_ttl(policy_max: Duration, server_max: Duration, upstream_left: Duration) -> Duration {
    policy_max.min(server_max).min(upstream_left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::workload::GITHUB_ACTIONS;
    use crate::upstream::Claims;
    use proptest::prelude::*;
    use serde_json::json;

    fn workload(claims: serde_json::Value) -> Workload {
        let mapping = GITHUB_ACTIONS
            .iter()
            .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
            .collect();
        let c = Claims::from_verified_payload(claims.to_string().as_bytes()).expect("object");
        Workload::from_claims(
            "github",
            "https://token.actions.githubusercontent.com",
            "s",
            &mapping,
            &c,
        )
    }

    fn cond(claim: &str, equals: Option<&str>, glob: Option<&str>) -> ConditionInput {
        ConditionInput {
            claim: claim.into(),
            equals: equals.map(Into::into),
            glob: glob.map(Into::into),
            one_of: None,
        }
    }

    fn policy(conditions: Vec<ConditionInput>) -> TrustPolicy {
        TrustPolicy::new(
            "org1",
            "release",
            "github",
            conditions,
            PolicyGrant::default(),
            Duration::from_secs(600),
            true,
        )
        .expect("valid")
    }

    #[test]
    fn the_first_failing_condition_is_named_with_the_tokens_value() {
        let p = policy(vec![
            cond("owner_id", Some("7"), None),
            cond("ref", None, Some("refs/tags/v*")),
            cond("ref_protected", Some("true"), None),
        ]);
        let ok =
            workload(json!({"repository_owner_id": "7", "ref": "refs/tags/v1.2", "ref_protected": "true"}));
        assert!(p.evaluate(&ok).matched);
        let wrong_owner =
            workload(json!({"repository_owner_id": "8", "ref": "refs/tags/v1", "ref_protected": "true"}));
        let f = p.evaluate(&wrong_owner).failed.expect("fails");
        assert_eq!((f.claim.as_str(), f.actual.as_deref()), ("owner_id", Some("8")));
        let unprotected =
            workload(json!({"repository_owner_id": "7", "ref": "refs/tags/v1", "ref_protected": "false"}));
        let f = p.evaluate(&unprotected).failed.expect("fails");
        assert_eq!(f.claim, "ref_protected");
        assert_eq!(f.to_string(), "`ref_protected` equals \"true\" but is \"false\"");
        let missing = workload(json!({"repository_owner_id": "7", "ref": "refs/tags/v1"}));
        let f = p.evaluate(&missing).failed.expect("fails");
        assert!(f.to_string().contains("no such claim"), "{f}");
    }

    #[test]
    fn definitions_that_would_trust_too_much_are_refused() {
        let new = |c: Vec<ConditionInput>| {
            TrustPolicy::new(
                "o",
                "p",
                "github",
                c,
                PolicyGrant::default(),
                Duration::from_secs(60),
                true,
            )
        };
        let e = new(vec![cond("ref", Some("refs/heads/main"), None)]).expect_err("no repository pin");
        assert!(e.message.contains("pin"), "{e}");
        let e = new(vec![cond("repository", None, Some("**"))]).expect_err("match-all glob");
        assert!(e.message.contains("matches anything"), "{e}");
        let e = new(vec![cond("repository", Some("a"), Some("b"))]).expect_err("two matchers");
        assert!(e.message.contains("exactly one"), "{e}");
        assert!(new(vec![cond("repository", Some("acme/app"), None)]).is_ok());
    }

    #[test]
    fn a_disabled_policy_or_another_issuer_never_matches() {
        let mut p = policy(vec![cond("repository", Some("acme/app"), None)]);
        let w = workload(json!({"repository": "acme/app"}));
        assert!(p.evaluate(&w).matched);
        p.issuer = "gitlab".into();
        assert_eq!(p.evaluate(&w).failed.expect("issuer").claim, "(issuer)");
        p.issuer = "github".into();
        p.enabled = false;
        assert!(!p.evaluate(&w).matched);
    }

    #[test]
    fn denials_list_every_policy() {
        let a = policy(vec![cond("repository", Some("acme/app"), None)]);
        let mut b = policy(vec![cond("owner", Some("acme"), None)]);
        b.name = "b".into();
        let w = workload(json!({"repository": "evil/app", "repository_owner": "evil"}));
        let e = Evaluation::of([&a, &b], &w);
        assert_eq!(e.matched().count(), 0);
        let msg = e.explain_denial(&w);
        assert!(
            msg.contains("policy `b`") && msg.contains("policy `release`"),
            "{msg}"
        );
        assert!(
            Evaluation::of([], &w)
                .explain_denial(&w)
                .contains("nothing is trusted")
        );
    }

    #[test]
    fn grants_name_their_permissions() {
        let g = PolicyGrant {
            certificates: vec!["client".into()],
            repositories: vec![RepositoryGrant {
                pattern: "acme/*".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
            publish: vec!["acme-*".into()],
            ..PolicyGrant::default()
        };
        assert_eq!(
            g.permissions(),
            [
                "certificate:sign:client",
                "registry:pull",
                "registry:push",
                "packages:publish"
            ]
        );
        assert!(g.allows_publish("acme-cli") && !g.allows_publish("other"));
    }

    proptest! {
        /// An equality condition matches exactly its own value, whatever the value holds
        /// (`*` in a token's value is not a wildcard).
        #[test]
        fn equals_is_exact(expected in "[a-z*/.-]{1,12}", actual in "[a-z*/.-]{0,12}") {
            let p = policy(vec![cond("repository", Some(&expected), None)]);
            let w = workload(json!({"repository": actual}));
            prop_assert_eq!(p.evaluate(&w).matched, expected == actual);
        }

        #[test]
        fn ttl_never_exceeds_any_bound(a in 0u64..10_000, b in 0u64..10_000, c in 0u64..10_000) {
            let t = job_token_ttl(Duration::from_secs(a), Duration::from_secs(b), Duration::from_secs(c));
            prop_assert!(t.as_secs() <= a && t.as_secs() <= b && t.as_secs() <= c);
            prop_assert_eq!(t.as_secs(), a.min(b).min(c));
        }
    }
}
