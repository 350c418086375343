//! The one authorization guard, and the rule that no handler answers without a decision.
//!
//! Every request carries a [`DecisionSlot`]. Whatever authorizes it records the outcome
//! there: the [`OrgAccess`] and [`Me`] extractors (user and org API), the
//! [`Admin`](crate::extract::admin::Admin) extractor (operator API), the [`public`] layer
//! (discovery, health, and the OAuth endpoints, which authenticate clients themselves as
//! RFC 6749 prescribes). [`enforce`] runs around everything: a successful response from a
//! handler that recorded no decision is replaced by a 500 and logged, so a route added
//! without a guard fails closed and fails its tests (`tests/it/guards.rs` walks them all).
//! The decision is also sent as `X-Tollgate-Decision` for those tests and for debugging.
//!
//! Org permissions are checked by [`OrgAccess<R>`]: `R` names a [`Requirement`] (require
//! all by default; `Any` is written out where an operation accepts alternatives).

use crate::error::ApiError;
use crate::extract::bearer::bearer_token;
use crate::orgs;
use crate::state::AppState;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tollgate_core::authz::{self, PermissionSet, Requirement};
use tollgate_core::{AccessTokenClaims, Reason};
use tollgate_store::{OrgRecord, UserRecord};

/// What authorized (or refused) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    None = 0,
    Public = 1,
    Granted = 2,
    Denied = 3,
}

impl Decision {
    fn name(self) -> &'static str {
        match self {
            Decision::None => "none",
            Decision::Public => "public",
            Decision::Granted => "granted",
            Decision::Denied => "denied",
        }
    }
}

/// Where a request's authorization decision is recorded (a request extension).
#[derive(Debug, Clone, Default)]
pub struct DecisionSlot(Arc<AtomicU8>);

impl DecisionSlot {
    /// Records a decision; a denial is never overwritten.
    pub fn decide(&self, d: Decision) {
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
            (old != Decision::Denied as u8).then_some(d as u8)
        });
    }

    #[must_use]
    pub fn get(&self) -> Decision {
        match self.0.load(Ordering::Acquire) {
            1 => Decision::Public,
            2 => Decision::Granted,
            3 => Decision::Denied,
            _ => Decision::None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DecisionSlot {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(slot(parts))
    }
}

/// The request's slot. Outside [`enforce`] (unit tests of extractors) a detached one.
fn slot(parts: &Parts) -> DecisionSlot {
    parts
        .extensions
        .get::<DecisionSlot>()
        .cloned()
        .unwrap_or_default()
}

/// Records `result`'s outcome in the request's slot and passes it on.
fn decided<T>(parts: &Parts, result: Result<T, ApiError>) -> Result<T, ApiError> {
    slot(parts).decide(if result.is_ok() {
        Decision::Granted
    } else {
        Decision::Denied
    });
    result
}

/// Middleware around every route: gives the request a slot and refuses to send a success
/// that no guard decided on.
pub async fn enforce(mut req: Request, next: Next) -> Response {
    let slot = DecisionSlot::default();
    req.extensions_mut().insert(slot.clone());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let mut resp = next.run(req).await;
    let decision = slot.get();
    if decision == Decision::None && (resp.status().is_success() || resp.status().is_redirection()) {
        tracing::error!(%method, %path, "handler answered without an authorization decision; refused");
        resp = ApiError::new(
            Reason::InternalError,
            "this route made no authorization decision; it has been logged",
        )
        .into_response();
    }
    resp.headers_mut()
        .insert("x-tollgate-decision", HeaderValue::from_static(decision.name()));
    resp
}

/// Layer for routes anyone may call (they may still authenticate inside, like OAuth's).
pub async fn public(req: Request, next: Next) -> Response {
    if let Some(s) = req.extensions().get::<DecisionSlot>() {
        s.decide(Decision::Public);
    }
    next.run(req).await
}

/// Who is calling the user and org API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A platform operator (admin token): may act in every org.
    Operator { id: String },
    /// A user, with the access token they called with.
    User {
        user: UserRecord,
        claims: Box<AccessTokenClaims>,
    },
}

impl Caller {
    /// The audit actor string.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Caller::Operator { id } => format!("admin:{id}"),
            Caller::User { user, .. } => format!("user:{}", user.id),
        }
    }
}

const CHALLENGE: &str = "Bearer realm=\"tollgate\"";

/// Authenticates the bearer: an admin token, or a live user access token for tollgate's API.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let token = bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::new(
            Reason::TokenMissing,
            "send a user access token (audience `tollgate`) or an admin token as `Authorization: Bearer …`",
        )
        .with_challenge(CHALLENGE)
    })?;
    if token.starts_with("tg_adm_") {
        return match crate::admin_tokens::authenticate(state, token).await? {
            Some(id) => Ok(Caller::Operator { id }),
            None => {
                Err(ApiError::new(Reason::AdminAuthFailed, "unknown admin token").with_challenge(CHALLENGE))
            }
        };
    }
    let claims = api_token(state, token).await?;
    if claims.user_ver.is_none() {
        return Err(ApiError::new(
            Reason::PermissionDenied,
            "only users (and operators) call this API; service-account tokens do not",
        ));
    }
    // verify_live has checked that the user exists and is enabled.
    let user = state
        .store
        .get_user(&claims.sub)
        .await?
        .ok_or_else(|| ApiError::new(Reason::Revoked, "the token's user has been deleted"))?;
    Ok(Caller::User {
        user,
        claims: Box::new(claims),
    })
}

/// A live tollgate access token for tollgate's own API (audience `users.api_audience`):
/// tokens minted for other services are refused here.
async fn api_token(state: &AppState, token: &str) -> Result<AccessTokenClaims, ApiError> {
    let challenge = || format!("{CHALLENGE}, error=\"invalid_token\"");
    let claims = crate::tokens::verify_live(state, token)
        .await?
        .map_err(|r| ApiError::new(r.reason, r.message).with_challenge(challenge()))?;
    let audience = &state.config.users.api_audience;
    if claims.aud != *audience {
        return Err(ApiError::new(
            Reason::AudMismatch,
            format!(
                "this token is for `{}`; tollgate's API accepts audience `{audience}`",
                claims.aud
            ),
        )
        .with_challenge(challenge()));
    }
    Ok(claims)
}

/// Any live tollgate access token for tollgate's own API (`users.api_audience`): a user's or
/// a CI job's (job tokens whose policy grants that audience). For APIs that serve both,
/// such as build sessions.
#[derive(Debug, Clone)]
pub struct TokenCaller {
    pub claims: AccessTokenClaims,
}

/// The claims of the bearer access token for tollgate's API, if `kind_ok` accepts its kind
/// (`refusal` otherwise); the guard's decision is recorded either way.
async fn api_caller(
    parts: &Parts,
    state: &AppState,
    who: &str,
    kind_ok: fn(&AccessTokenClaims) -> bool,
    refusal: &str,
) -> Result<AccessTokenClaims, ApiError> {
    let result = async {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::new(
                Reason::TokenMissing,
                format!("send {who} access token as `Authorization: Bearer …`"),
            )
            .with_challenge(CHALLENGE)
        })?;
        let claims = api_token(state, token).await?;
        if !kind_ok(&claims) {
            return Err(ApiError::new(Reason::PermissionDenied, refusal.to_owned()));
        }
        Ok(claims)
    }
    .await;
    decided(parts, result)
}

/// Whether the token is a service account's (neither a user's nor a CI job's).
fn is_service(c: &AccessTokenClaims) -> bool {
    c.user_ver.is_none() && c.ci.is_none()
}

impl FromRequestParts<AppState> for TokenCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let refusal = "only users and CI jobs call this API; service-account tokens do not";
        let claims = api_caller(parts, state, "a user or job", |c| !is_service(c), refusal).await?;
        Ok(TokenCaller { claims })
    }
}

/// A service account's access token for tollgate's API (client credentials): for server
/// certificates.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub claims: AccessTokenClaims,
}

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let refusal = "only service accounts call this API; users and CI jobs get client certificates";
        let claims = api_caller(parts, state, "a service account's", is_service, refusal).await?;
        Ok(ServiceCaller { claims })
    }
}

/// An authenticated user (not an operator): for the self-service API under `/v1/me`.
#[derive(Debug, Clone)]
pub struct Me {
    pub user: UserRecord,
    pub claims: AccessTokenClaims,
}

impl FromRequestParts<AppState> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let result = match authenticate(parts, state).await {
            Ok(Caller::User { user, claims }) => Ok(Me {
                user,
                claims: *claims,
            }),
            Ok(Caller::Operator { .. }) => Err(ApiError::new(
                Reason::PermissionDenied,
                "this is a user's own API; operators use /v1/admin",
            )),
            Err(e) => Err(e),
        };
        decided(parts, result)
    }
}

/// A [`Requirement`] as a type, so a handler's signature states what it needs.
pub trait Require: Send + Sync + 'static {
    const REQUIREMENT: Requirement;
}

macro_rules! requirements {
    ($( $(#[$doc:meta])* $name:ident = $req:expr; )*) => {
        $( $(#[$doc])* #[derive(Debug)] pub struct $name;
           impl Require for $name { const REQUIREMENT: Requirement = $req; } )*

        /// Every requirement type with its requirement, for documentation and tests.
        pub const ALL_REQUIREMENTS: &[(&str, Requirement)] = &[$((stringify!($name), $req)),*];
    };
}

requirements! {
    OrgRead = Requirement::All(&["org:read"]);
    /// Choosing issuers decides who can sign in at all: org admins who are also granted it.
    OrgIssuers = Requirement::All(&["org:admin", "org:issuers"]);
    MembersRead = Requirement::All(&["members:read"]);
    MembersWrite = Requirement::All(&["members:write"]);
    RolesRead = Requirement::All(&["roles:read"]);
    RolesWrite = Requirement::All(&["roles:write"]);
    ServiceAccountsRead = Requirement::All(&["service-accounts:read"]);
    ServiceAccountsWrite = Requirement::All(&["service-accounts:write"]);
    /// Whoever may end sessions may also see them.
    SessionsRead = Requirement::Any(&["sessions:read", "sessions:revoke"]);
    SessionsRevoke = Requirement::All(&["sessions:revoke"]);
    AuditRead = Requirement::All(&["audit:read"]);
    TrustPoliciesRead = Requirement::All(&["trust-policies:read"]);
    TrustPoliciesWrite = Requirement::All(&["trust-policies:write"]);
    BuildsRead = Requirement::All(&["builds:read"]);
    BuildsWrite = Requirement::All(&["builds:write"]);
}

/// A caller authorized for `R` in the org named by the route's `{org}` segment (id or name).
///
/// Refusals: an org that does not exist, or of which the user is not a member, is 404 (a
/// non-member learns nothing about it); a token issued for another org is 403
/// `org-mismatch`; missing permissions are 403 `permission-denied` naming them. Refusals of
/// authenticated users are audited with the org.
#[derive(Debug)]
pub struct OrgAccess<R> {
    pub caller: Caller,
    pub org: OrgRecord,
    /// What the caller holds in the org (`*` for operators).
    pub permissions: PermissionSet,
    _requirement: PhantomData<fn() -> R>,
}

impl<R> OrgAccess<R> {
    /// Refuses unless the caller holds everything `wanted` grants: nobody hands out (or
    /// takes away from others) more than they hold. A refusal is audited as `action` on
    /// `target`.
    pub async fn check_covers(
        &self,
        state: &AppState,
        wanted: &PermissionSet,
        what: &str,
        (action, target): (&str, &str),
    ) -> Result<(), ApiError> {
        let missing = self.permissions.uncovered(wanted);
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let e = ApiError::new(
            Reason::GrantExceedsCaller,
            format!("{what} needs permissions you do not hold: {}", missing.join(", ")),
        );
        Err(self.refused(state, action, target, e).await)
    }

    /// Audits the refusal `e` of a privileged action (`action` on `target`) in the org and
    /// returns it (or the audit failure, failing closed).
    pub async fn refused(&self, state: &AppState, action: &str, target: &str, e: ApiError) -> ApiError {
        let event = crate::audit::AuditEvent::new(self.caller.actor(), action)
            .org(&self.org.id)
            .target(target)
            .denied(e.reason)
            .detail(json!({"why": e.message}));
        match crate::audit::record_event(state, event).await {
            Ok(()) => e,
            Err(audit_failure) => audit_failure,
        }
    }
}

impl<R: Require> FromRequestParts<AppState> for OrgAccess<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let result = authorize(parts, state, R::REQUIREMENT).await;
        decided(parts, result).map(|(caller, org, permissions)| OrgAccess {
            caller,
            org,
            permissions,
            _requirement: PhantomData,
        })
    }
}

/// Refuses a request to a guarded route whose body did not parse (so the guard, which
/// needs the body, cannot run): still a decision — the caller's authentication failure if
/// there is one (an anonymous caller learns nothing more), else `e`.
pub async fn refused_unparsed(parts: &Parts, state: &AppState, e: ApiError) -> ApiError {
    let refusal = match authenticate(parts, state).await {
        Ok(_) => e,
        Err(unauthenticated) => unauthenticated,
    };
    slot(parts).decide(Decision::Denied);
    refusal
}

impl<R: Require> OrgAccess<R> {
    /// The guard for an org named elsewhere than the path (in a request body): the same
    /// decision, audit and refusals as the extractor.
    pub async fn for_org(parts: &mut Parts, state: &AppState, org_ref: &str) -> Result<Self, ApiError> {
        let result = authorize_in(parts, state, R::REQUIREMENT, org_ref.to_owned()).await;
        decided(parts, result).map(|(caller, org, permissions)| OrgAccess {
            caller,
            org,
            permissions,
            _requirement: PhantomData,
        })
    }
}

async fn authorize(
    parts: &mut Parts,
    state: &AppState,
    requirement: Requirement,
) -> Result<(Caller, OrgRecord, PermissionSet), ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(org_ref) = params
        .iter()
        .find(|(k, _)| *k == "org")
        .map(|(_, v)| v.to_owned())
    else {
        return Err(ApiError::internal(&std::io::Error::other(
            "org route without {org}",
        )));
    };
    authorize_in(parts, state, requirement, org_ref).await
}

async fn authorize_in(
    parts: &mut Parts,
    state: &AppState,
    requirement: Requirement,
    org_ref: String,
) -> Result<(Caller, OrgRecord, PermissionSet), ApiError> {
    let caller = authenticate(parts, state).await?;
    let org = state.store.find_org(&org_ref).await?;
    let no_such_org = || ApiError::new(Reason::NotFound, format!("no org `{org_ref}`"));
    let (user, token_org) = match &caller {
        Caller::Operator { .. } => {
            let org = org.ok_or_else(no_such_org)?;
            let all = PermissionSet::parse(["*"]).unwrap_or_default();
            return Ok((caller, org, all));
        }
        Caller::User { user, claims } => (user.clone(), claims.org.clone()),
    };
    // Nothing to protect (or to audit) when the org does not exist.
    let org = org.ok_or_else(no_such_org)?;
    let refusal = match orgs::membership(state, &org, &user.id).await? {
        None => (Reason::OrgNotMember, None),
        Some(_) if token_org.as_deref() != Some(org.id.as_str()) => (Reason::OrgMismatch, None),
        Some(active) => match authz::decide(requirement, &active.permissions) {
            Ok(()) => return Ok((caller, org, active.permissions)),
            Err(d) => (Reason::PermissionDenied, Some(d.to_string())),
        },
    };
    let (reason, why) = refusal;
    let detail = json!({"method": parts.method.as_str(), "path": parts.uri.path(), "requires": requirement.to_string()});
    crate::audit::record_event(
        state,
        crate::audit::AuditEvent::new(caller.actor(), "org.access")
            .org(&org.id)
            .credential(match &caller {
                Caller::User { claims, .. } => claims.jti.clone(),
                Caller::Operator { id } => id.clone(),
            })
            .denied(reason)
            .detail(detail),
    )
    .await?;
    Err(match reason {
        // Non-members learn nothing about the org: the same answer as for no org at all.
        Reason::OrgNotMember => no_such_org(),
        Reason::OrgMismatch => ApiError::new(
            reason,
            format!(
                "this token acts in {}; exchange for a token with org={}",
                token_org.as_deref().unwrap_or("no org"),
                org.name
            ),
        ),
        _ => ApiError::new(reason, why.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt as _;

    async fn call(router: Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .layer(axum::middleware::from_fn(enforce))
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let decision = resp.headers()["x-tollgate-decision"]
            .to_str()
            .expect("ascii")
            .to_owned();
        (resp.status(), decision)
    }

    #[tokio::test]
    async fn a_success_without_a_decision_is_refused() {
        let unguarded = Router::new().route("/x", get(|| async { "secret" }));
        assert_eq!(
            call(unguarded, "/x").await,
            (StatusCode::INTERNAL_SERVER_ERROR, "none".into())
        );
    }

    #[tokio::test]
    async fn decided_routes_pass_and_errors_pass_through() {
        let public = Router::new()
            .route("/p", get(|| async { "hello" }))
            .route_layer(axum::middleware::from_fn(public));
        assert_eq!(call(public, "/p").await, (StatusCode::OK, "public".into()));
        let granted = Router::new().route(
            "/g",
            get(|slot: DecisionSlot| async move {
                slot.decide(Decision::Granted);
                "ok"
            }),
        );
        assert_eq!(call(granted, "/g").await, (StatusCode::OK, "granted".into()));
        // A refusal without a decision (e.g. a body that did not parse) is no leak.
        let refused = Router::new().route("/r", get(|| async { StatusCode::BAD_REQUEST }));
        assert_eq!(
            call(refused, "/r").await,
            (StatusCode::BAD_REQUEST, "none".into())
        );
    }

    #[test]
    fn a_denial_sticks() {
        let slot = DecisionSlot::default();
        slot.decide(Decision::Denied);
        slot.decide(Decision::Granted);
        assert_eq!(slot.get(), Decision::Denied);
    }
}
