//! Claims of the tokens tollgate issues.

use crate::time::UnixTime;
use serde::{Deserialize, Serialize};

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// An RFC 9068 access token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    /// One audience; RFC 9068 allows an array, but tollgate issues one token per audience.
    pub aud: String,
    pub client_id: String,
    /// Space-separated scopes; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub iat: UnixTime,
    pub nbf: UnixTime,
    pub exp: UnixTime,
    pub jti: String,
    /// For exchanged tokens: who the upstream issuer said the subject is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSubject>,
    /// RFC 8693 §4.1: the party acting on behalf of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// For tokens of local users: the user's version when the token was issued; a token
    /// whose version is older than the user's is refused (`user-version-stale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ver: Option<i64>,
    /// The active org (its id): the tenant the token acts in. Tokens without one act in none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The subject's roles in `org` when the token was issued (RFC 9068 §7.2.1.1). tollgate's
    /// own guard reads roles live; this is for the services behind it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// For job tokens: the CI workload and the trust policy that admitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<JobClaims>,
}

/// What a job token says about its CI workload: the deciding trust policy and the
/// workload's attributes (`repository`, `ref`, `job_workflow_ref`, `run_id`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobClaims {
    pub policy: String,
    #[serde(flatten)]
    pub workload: std::collections::BTreeMap<String, String>,
}

/// The JOSE `typ` of combined publish tokens: not `at+jwt`, so no API takes one for an
/// access token.
pub const PUBLISH_TOKEN_TYP: &str = "publish+jwt";

/// A combined publish token: the user who asked (`sub`) and the CI job that does the work
/// (`act`, RFC 8693 §4.1), for one package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishTokenClaims {
    pub iss: String,
    /// The local user who started the publish.
    pub sub: String,
    pub aud: String,
    pub iat: UnixTime,
    pub nbf: UnixTime,
    pub exp: UnixTime,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The CI workload: its issuer's `iss` and its `sub` there.
    pub act: Actor,
    pub publish: PublishClaim,
}

/// What is being published, by which session, under which policy, from which run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishClaim {
    pub session: String,
    pub package: String,
    pub version: String,
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The upstream identity an exchanged token was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSubject {
    /// The upstream `iss`.
    pub iss: String,
    /// The upstream `sub`.
    pub sub: String,
    /// The issuer's name in tollgate's configuration.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
}

impl From<&crate::upstream::UpstreamIdentity> for UpstreamSubject {
    fn from(id: &crate::upstream::UpstreamIdentity) -> Self {
        Self {
            iss: id.issuer.clone(),
            sub: id.subject.clone(),
            name: id.issuer_name.clone(),
            email: id.email.clone(),
            org_id: id.org_id.clone(),
            org_role: id.org_role.clone(),
        }
    }
}

/// RFC 8693 `act` claim: the actor, with the actor's own actor nested for chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl AccessTokenClaims {
    /// Whether the token is within its validity window at `now`, allowing `leeway` seconds.
    pub fn check_times(&self, now: UnixTime, leeway: u64) -> Result<(), TimeCheck> {
        let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
        if now.0 >= self.exp.0.saturating_add(leeway) {
            return Err(TimeCheck::Expired);
        }
        if self.nbf.0 > now.0.saturating_add(leeway) || self.iat.0 > now.0.saturating_add(leeway) {
            return Err(TimeCheck::NotYetValid);
        }
        Ok(())
    }
}

/// Why a token's time claims do not hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeCheck {
    Expired,
    NotYetValid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "tgc_x".into(),
            aud: "api".into(),
            client_id: "tgc_x".into(),
            scope: String::new(),
            iat: UnixTime(iat),
            nbf: UnixTime(iat),
            exp: UnixTime(exp),
            jti: "j".into(),
            upstream: None,
            act: None,
            user_ver: None,
            org: None,
            roles: Vec::new(),
            ci: None,
        }
    }

    #[test]
    fn expiry_is_exclusive_and_leeway_applies() {
        let c = claims(100, 200);
        assert_eq!(c.check_times(UnixTime(199), 0), Ok(()));
        assert_eq!(c.check_times(UnixTime(200), 0), Err(TimeCheck::Expired));
        assert_eq!(c.check_times(UnixTime(200), 5), Ok(()));
        assert_eq!(c.check_times(UnixTime(90), 0), Err(TimeCheck::NotYetValid));
        assert_eq!(c.check_times(UnixTime(95), 5), Ok(()));
    }

    #[test]
    fn empty_scope_is_omitted_on_the_wire() {
        let json = serde_json::to_value(claims(1, 2)).expect("serializes");
        assert!(json.get("scope").is_none());
    }
}
