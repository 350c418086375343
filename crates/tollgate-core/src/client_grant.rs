//! The `client_credentials` decision: what a service account may get for what it asks.

use crate::audience::Audience;
use crate::reason::Reason;
use crate::scope::Scope;
use std::time::Duration;

/// What an administrator allowed a service account (or the tokens exchanged from an issuer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    pub allowed_scope: Scope,
    /// Audiences the client may ask for; the first is the default.
    pub allowed_audiences: Vec<Audience>,
}

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct ClientRequest {
    /// `None` when the request had no `scope` parameter.
    pub scope: Option<Scope>,
    /// From `resource` and `audience` parameters; empty when none was sent.
    pub audiences: Vec<Audience>,
}

/// Server-wide limits that apply to every grant.
#[derive(Debug, Clone)]
pub struct GrantLimits {
    /// Audience used when neither client nor request names one.
    pub default_audience: Audience,
    pub access_ttl: Duration,
}

/// What the token will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    pub audience: Audience,
    pub ttl: Duration,
}

/// A refusal with its reason and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub message: String,
}

/// Decides a `client_credentials` grant.
///
/// * scope: requested ∩ allowed; no request means everything allowed; a request with
///   nothing allowed is refused (`invalid_scope`) rather than answered with an empty token.
/// * audience: at most one; it must be on the client's allowlist. Without a request the
///   client's first allowed audience is used, and without one of those the server default.
pub fn decide(policy: &ClientPolicy, req: &ClientRequest, limits: &GrantLimits) -> Result<Grant, Denial> {
    let scope = match &req.scope {
        None => policy.allowed_scope.clone(),
        Some(asked) if asked.is_empty() => policy.allowed_scope.clone(),
        Some(asked) => {
            let granted = asked.intersect(&policy.allowed_scope);
            if granted.is_empty() {
                return Err(Denial {
                    reason: Reason::ScopeNotAllowed,
                    message: format!("none of the requested scopes ({asked}) is allowed for this client"),
                });
            }
            granted
        }
    };

    let audience = match req.audiences.as_slice() {
        [] => policy
            .allowed_audiences
            .first()
            .cloned()
            .unwrap_or_else(|| limits.default_audience.clone()),
        [one] => {
            let allowed = policy.allowed_audiences.contains(one)
                || (policy.allowed_audiences.is_empty() && *one == limits.default_audience);
            if !allowed {
                return Err(Denial {
                    reason: Reason::AudienceNotAllowed,
                    message: format!("audience `{one}` is not allowed for this client"),
                });
            }
            one.clone()
        }
        [_, _, ..] => {
            return Err(Denial {
                reason: Reason::AudienceNotAllowed,
                message: "ask for one audience per token; request a token per resource".to_owned(),
            });
        }
    };

    Ok(Grant {
        scope,
        audience,
        ttl: limits.access_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aud(s: &str) -> Audience {
        Audience::parse(s).expect("valid audience")
    }

    fn policy() -> ClientPolicy {
        ClientPolicy {
            allowed_scope: Scope::parse("read write").expect("valid"),
            allowed_audiences: vec![aud("https://api.example.com"), aud("billing")],
        }
    }

    fn limits() -> GrantLimits {
        GrantLimits {
            default_audience: aud("http://127.0.0.1:8080"),
            access_ttl: Duration::from_secs(900),
        }
    }

    #[test]
    fn no_scope_requested_grants_everything_allowed() {
        let g = decide(&policy(), &ClientRequest::default(), &limits()).expect("granted");
        assert_eq!(g.scope.to_string(), "read write");
        assert_eq!(g.audience, aud("https://api.example.com"));
    }

    #[test]
    fn requested_scope_is_intersected() {
        let req = ClientRequest {
            scope: Some(Scope::parse("read admin").expect("valid")),
            audiences: vec![],
        };
        let g = decide(&policy(), &req, &limits()).expect("granted");
        assert_eq!(g.scope.to_string(), "read");
    }

    #[test]
    fn nothing_allowed_is_refused() {
        let req = ClientRequest {
            scope: Some(Scope::parse("admin").expect("valid")),
            audiences: vec![],
        };
        let d = decide(&policy(), &req, &limits()).expect_err("denied");
        assert_eq!(d.reason, Reason::ScopeNotAllowed);
    }

    #[test]
    fn audience_must_be_on_allowlist() {
        let req = ClientRequest {
            scope: None,
            audiences: vec![aud("https://evil.example")],
        };
        assert_eq!(
            decide(&policy(), &req, &limits()).expect_err("denied").reason,
            Reason::AudienceNotAllowed
        );
        let req = ClientRequest {
            scope: None,
            audiences: vec![aud("billing")],
        };
        assert_eq!(
            decide(&policy(), &req, &limits()).expect("granted").audience,
            aud("billing")
        );
    }

    #[test]
    fn client_without_audiences_gets_only_the_default() {
        let p = ClientPolicy {
            allowed_scope: Scope::default(),
            allowed_audiences: vec![],
        };
        let g = decide(&p, &ClientRequest::default(), &limits()).expect("granted");
        assert_eq!(g.audience, limits().default_audience);
        let req = ClientRequest {
            scope: None,
            audiences: vec![aud("billing")],
        };
        assert!(decide(&p, &req, &limits()).is_err());
    }

    #[test]
    fn two_audiences_are_refused() {
        let req = ClientRequest {
            scope: None,
            audiences: vec![aud("billing"), aud("https://api.example.com")],
        };
        assert_eq!(
            decide(&policy(), &req, &limits()).expect_err("denied").reason,
            Reason::AudienceNotAllowed
        );
    }
}
