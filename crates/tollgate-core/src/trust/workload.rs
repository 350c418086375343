//! CI workloads: the attributes trust policies match on, read from a verified OIDC token
//! through the issuer's mapping (GitHub Actions and GitLab CI presets, or a custom one).

use crate::upstream::Claims;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The attribute names conditions may use, in the order explanations show them. A
/// condition on any other name reads that claim (dotted path) as is.
pub const ATTRIBUTES: &[&str] = &[
    "subject",
    "repository",
    "repository_id",
    "owner",
    "owner_id",
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "event",
    "workflow_ref",
    "job_workflow_ref",
    "runner_environment",
    "actor",
    "sha",
    "run_id",
];

/// GitHub Actions: attribute → claim (interop.md; match ids as well as names, since names
/// can be re-registered).
pub const GITHUB_ACTIONS: &[(&str, &str)] = &[
    ("subject", "sub"),
    ("repository", "repository"),
    ("repository_id", "repository_id"),
    ("owner", "repository_owner"),
    ("owner_id", "repository_owner_id"),
    ("ref", "ref"),
    ("ref_type", "ref_type"),
    ("ref_protected", "ref_protected"),
    ("environment", "environment"),
    ("event", "event_name"),
    ("workflow_ref", "workflow_ref"),
    ("job_workflow_ref", "job_workflow_ref"),
    ("runner_environment", "runner_environment"),
    ("actor", "actor"),
    ("sha", "sha"),
    ("run_id", "run_id"),
];

/// GitLab CI `id_tokens`. GitLab has no reusable-workflow claim; `ci_config_ref_uri` (the
/// pipeline definition actually running, with its ref) is the nearest and serves both.
pub const GITLAB: &[(&str, &str)] = &[
    ("subject", "sub"),
    ("repository", "project_path"),
    ("repository_id", "project_id"),
    ("owner", "namespace_path"),
    ("owner_id", "namespace_id"),
    ("ref", "ref"),
    ("ref_type", "ref_type"),
    ("ref_protected", "ref_protected"),
    ("environment", "environment"),
    ("event", "pipeline_source"),
    ("workflow_ref", "ci_config_ref_uri"),
    ("job_workflow_ref", "ci_config_ref_uri"),
    ("runner_environment", "runner_environment"),
    ("actor", "user_login"),
    ("sha", "sha"),
    ("run_id", "pipeline_id"),
];

/// A CI job as its verified token describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// The configured issuer's name.
    pub issuer: String,
    /// The upstream `iss`.
    pub iss: String,
    pub subject: String,
    /// Every mapped attribute the token has, as strings.
    pub attributes: BTreeMap<String, String>,
    #[serde(skip)]
    claims: Claims,
}

impl Workload {
    /// Reads the workload from verified `claims` with `mapping` (attribute → claim path).
    #[must_use]
    pub fn from_claims(
        issuer: &str,
        iss: &str,
        subject: &str,
        mapping: &BTreeMap<String, String>,
        claims: &Claims,
    ) -> Self {
        let attributes = mapping
            .iter()
            .filter_map(|(attr, path)| Some((attr.clone(), scalar(claims.get(path)?)?)))
            .collect();
        Self {
            issuer: issuer.to_owned(),
            iss: iss.to_owned(),
            subject: subject.to_owned(),
            attributes,
            claims: claims.clone(),
        }
    }

    /// The values of `name`: a mapped attribute, else the claim at that dotted path (an
    /// array claim gives each of its scalar elements).
    #[must_use]
    pub fn values(&self, name: &str) -> Vec<String> {
        if let Some(v) = self.attributes.get(name) {
            return vec![v.clone()];
        }
        if ATTRIBUTES.contains(&name) {
            return Vec::new();
        }
        match self.claims.get(name) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
        }
    }

    /// An attribute, if the token has it.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// A short description for audit and explanations: `repository@ref` or the subject.
    #[must_use]
    pub fn describe(&self) -> String {
        match (self.attribute("repository"), self.attribute("ref")) {
            (Some(r), Some(git_ref)) => format!("{r}@{git_ref}"),
            (Some(r), None) => r.to_owned(),
            _ => self.subject.clone(),
        }
    }
}

/// Strings as they are, numbers in decimal, booleans as `true`/`false` (GitHub sends
/// `ref_protected` as a string, other issuers as a boolean: both match `"true"`).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.contains('\0') => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(m: &[(&str, &str)]) -> BTreeMap<String, String> {
        m.iter()
            .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn claims(v: Value) -> Claims {
        Claims::from_verified_payload(v.to_string().as_bytes()).expect("object")
    }

    #[test]
    fn github_and_gitlab_claims_map_to_the_same_attributes() {
        let gh = claims(json!({
            "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app", "repository_id": "42",
            "repository_owner": "acme", "repository_owner_id": 7, "ref": "refs/heads/main",
            "ref_protected": "true", "event_name": "push", "job_workflow_ref": "acme/wf/.github/workflows/p.yml@refs/tags/v1"
        }));
        let w = Workload::from_claims("gh", "https://gh", "s", &mapping(GITHUB_ACTIONS), &gh);
        assert_eq!(w.attribute("owner_id"), Some("7"));
        assert_eq!(w.attribute("event"), Some("push"));
        assert_eq!(w.describe(), "acme/app@refs/heads/main");
        let gl = claims(json!({
            "sub": "project_path:acme/app:ref_type:branch:ref:main", "project_path": "acme/app",
            "namespace_path": "acme", "namespace_id": "7", "ref": "main", "ref_protected": true,
            "pipeline_source": "push"
        }));
        let w = Workload::from_claims("gl", "https://gl", "s", &mapping(GITLAB), &gl);
        assert_eq!(w.attribute("owner"), Some("acme"));
        assert_eq!(w.attribute("ref_protected"), Some("true"));
        assert_eq!(w.attribute("event"), Some("push"));
    }

    #[test]
    fn unmapped_names_read_raw_claims_but_known_attributes_never_fall_back() {
        let c = claims(json!({"sha": "abc", "groups": ["a", "b"], "repository": "acme/app"}));
        let w = Workload::from_claims("x", "https://x", "s", &mapping(&[("sha", "sha")]), &c);
        assert_eq!(w.values("groups"), vec!["a", "b"]);
        assert_eq!(w.values("sha"), vec!["abc"]);
        // `repository` is an attribute this issuer does not map: not read from the raw claim.
        assert!(w.values("repository").is_empty());
    }
}
