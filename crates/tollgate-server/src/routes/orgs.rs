//! Orgs: created by operators (`/v1/admin/orgs`), run by their own members under
//! `/v1/orgs/{org}/…` (`{org}` is the id or the name). Every org handler takes an
//! [`OrgAccess`] naming the permission it needs; every change is audited with the org.

use crate::audit::AuditEvent;
use crate::authz::{
    AuditRead, MembersRead, MembersWrite, OrgAccess, OrgIssuers, OrgRead, RolesRead, RolesWrite,
    ServiceAccountsRead, ServiceAccountsWrite, SessionsRead, SessionsRevoke,
};
use crate::error::ApiError;
use crate::extract::admin::Admin;
use crate::extract::json::JsonBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::json;
use tollgate_core::Reason;
use tollgate_core::authz::{BuiltinRole, Grant, PermissionSet, validate_role_name};
use tollgate_proto::ErrorBody;
use tollgate_proto::admin::{ClientInfo, ClientWithSecret, CreateClientRequest, SessionInfo};
use tollgate_proto::audit::{AuditFilter, AuditPage};
use tollgate_proto::orgs::{
    CreateOrgRequest, ExternalOrgId, MemberInfo, OrgInfo, PutRoleRequest, RevokedServiceAccounts, RoleInfo,
    SetIssuersRequest, SetMemberRequest,
};
use tollgate_store::{
    ExternalOrgRecord, MembershipChange, MembershipRecord, OrgRecord, RoleRecord, StoreError,
};

async fn org_info(state: &AppState, org: OrgRecord) -> Result<OrgInfo, ApiError> {
    let external_ids = state
        .store
        .external_orgs_of(&org.id)
        .await?
        .into_iter()
        .map(|e| ExternalOrgId {
            iss: e.iss,
            external_id: e.external_id,
        })
        .collect();
    Ok(OrgInfo {
        id: org.id,
        name: org.name,
        display_name: org.display_name,
        issuers: org.issuers,
        external_ids,
        created_at: crate::rfc3339(org.created_at),
    })
}

pub(crate) fn event<R>(access: &OrgAccess<R>, action: &str) -> AuditEvent {
    AuditEvent::new(access.caller.actor(), action).org(&access.org.id)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidParameter, message)
}

fn valid_org_name(name: &str) -> bool {
    let mut b = name.bytes();
    (2..=63).contains(&name.len())
        && b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        // Names must never be mistaken for ids.
        && !name.starts_with("org_")
}

/// Issuer names must name configured issuers (a typo would lock everyone out silently).
fn check_issuers(state: &AppState, issuers: Option<&Vec<String>>) -> Result<(), ApiError> {
    let view = state.upstream.registry().current();
    for name in issuers.into_iter().flatten() {
        if !view.set.iter().any(|i| i.name == *name) {
            return Err(invalid(format!("no issuer named `{name}`; see GET /v1/issuers")));
        }
    }
    Ok(())
}

/// Create an org, optionally with its first owner (operators only).
#[utoipa::path(post, path = "/v1/admin/orgs", tag = "orgs", security(("admin" = [])),
    request_body = CreateOrgRequest,
    responses((status = 201, body = OrgInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<CreateOrgRequest>,
) -> Result<(StatusCode, Json<OrgInfo>), ApiError> {
    if !valid_org_name(&req.name) {
        return Err(invalid(
            "name must be 2–63 characters of a–z 0–9 -, start with a letter and not with `org_`",
        ));
    }
    if req
        .display_name
        .as_deref()
        .is_some_and(|d| d.len() > 200 || d.chars().any(char::is_control))
    {
        return Err(invalid(
            "display_name must be at most 200 characters, without control characters",
        ));
    }
    check_issuers(&state, req.issuers.as_ref())?;
    if let Some(owner) = &req.owner {
        crate::users::find(&state, owner).await?;
    }
    let now = state.clock.now().0;
    let org = OrgRecord {
        id: tollgate_core::secret_token::mint_id("org_", tollgate_crypto::random_byte_source()),
        name: req.name.clone(),
        display_name: req.display_name.clone(),
        issuers: req.issuers.clone(),
        created_at: now,
        updated_at: now,
    };
    let first = req.owner.as_ref().map(|u| MembershipRecord {
        org_id: org.id.clone(),
        user_id: u.clone(),
        roles: vec![BuiltinRole::Owner.name().to_owned()],
        created_at: now,
        updated_at: now,
    });
    match state.store.create_org(&org, first.as_ref()).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("an org named `{}` exists", req.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let detail = json!({"name": org.name, "owner": req.owner, "issuers": org.issuers});
    crate::audit::record_event(
        &state,
        AuditEvent::new(admin.actor(), "org.create")
            .org(&org.id)
            .target(&org.id)
            .detail(detail),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(org_info(&state, org).await?)))
}

/// Every org (operators only).
#[utoipa::path(get, path = "/v1/admin/orgs", tag = "orgs", security(("admin" = [])),
    responses((status = 200, body = [OrgInfo]), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<OrgInfo>>, ApiError> {
    let mut out = Vec::new();
    for org in state.store.list_orgs().await? {
        out.push(org_info(&state, org).await?);
    }
    Ok(Json(out))
}

async fn find_org(state: &AppState, org: &str) -> Result<OrgRecord, ApiError> {
    state
        .store
        .find_org(org)
        .await?
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no org `{org}`")))
}

/// Bind an upstream org (e.g. Clerk's `org_id` claim) to this org (operators only: an
/// upstream org can be bound to one org, so org admins must not be able to claim one).
#[utoipa::path(post, path = "/v1/admin/orgs/{org}/external-ids", tag = "orgs", security(("admin" = [])),
    params(("org" = String, Path)), request_body = ExternalOrgId,
    responses((status = 200, body = OrgInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn bind_external(
    State(state): State<AppState>,
    admin: Admin,
    Path(org): Path<String>,
    JsonBody(ext): JsonBody<ExternalOrgId>,
) -> Result<Json<OrgInfo>, ApiError> {
    let org = find_org(&state, &org).await?;
    let ok = |v: &str| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control);
    if !ok(&ext.iss) || !ok(&ext.external_id) {
        return Err(invalid(
            "iss and external_id must be 1–512 characters, without control characters",
        ));
    }
    let binding = ExternalOrgRecord {
        iss: ext.iss.clone(),
        external_id: ext.external_id.clone(),
        org_id: org.id.clone(),
        created_at: state.clock.now().0,
    };
    match state.store.bind_external_org(&binding).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Reason::Conflict,
                "that upstream org is bound to an org already",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let detail = json!({"iss": ext.iss, "external_id": ext.external_id});
    crate::audit::record_event(
        &state,
        AuditEvent::new(admin.actor(), "org.external_id.bind")
            .org(&org.id)
            .detail(detail),
    )
    .await?;
    Ok(Json(org_info(&state, org).await?))
}

/// Unbind an upstream org (operators only).
#[utoipa::path(delete, path = "/v1/admin/orgs/{org}/external-ids", tag = "orgs", security(("admin" = [])),
    params(("org" = String, Path)), request_body = ExternalOrgId,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unbind_external(
    State(state): State<AppState>,
    admin: Admin,
    Path(org): Path<String>,
    JsonBody(ext): JsonBody<ExternalOrgId>,
) -> Result<StatusCode, ApiError> {
    let org = find_org(&state, &org).await?;
    if !state
        .store
        .unbind_external_org(&org.id, &ext.iss, &ext.external_id)
        .await?
    {
        return Err(ApiError::new(
            Reason::NotFound,
            "that upstream org is not bound to this org",
        ));
    }
    let detail = json!({"iss": ext.iss, "external_id": ext.external_id});
    crate::audit::record_event(
        &state,
        AuditEvent::new(admin.actor(), "org.external_id.unbind")
            .org(&org.id)
            .detail(detail),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The org. Needs `org:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path, description = "org id or name")),
    responses((status = 200, body = OrgInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    access: OrgAccess<OrgRead>,
) -> Result<Json<OrgInfo>, ApiError> {
    Ok(Json(org_info(&state, access.org).await?))
}

/// Choose the upstream issuers that may sign in to the org (the dual-auth switch). Needs
/// `org:admin` and `org:issuers` (owners).
#[utoipa::path(put, path = "/v1/orgs/{org}/issuers", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)), request_body = SetIssuersRequest,
    responses((status = 200, body = OrgInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_issuers(
    State(state): State<AppState>,
    access: OrgAccess<OrgIssuers>,
    JsonBody(req): JsonBody<SetIssuersRequest>,
) -> Result<Json<OrgInfo>, ApiError> {
    check_issuers(&state, req.issuers.as_ref())?;
    let mut org = access.org.clone();
    let before = org.issuers.clone();
    org.issuers = req.issuers;
    org.updated_at = state.clock.now().0;
    if !state.store.update_org(&org).await? {
        return Err(ApiError::new(Reason::NotFound, "the org was deleted meanwhile"));
    }
    let detail = json!({"before": before, "after": org.issuers});
    crate::audit::record_event(&state, event(&access, "org.issuers.set").detail(detail)).await?;
    Ok(Json(org_info(&state, org).await?))
}

async fn member_info(state: &AppState, m: MembershipRecord) -> Result<MemberInfo, ApiError> {
    let email = state.store.get_user(&m.user_id).await?.and_then(|u| u.email);
    Ok(MemberInfo {
        user_id: m.user_id,
        email,
        roles: m.roles,
        created_at: crate::rfc3339(m.created_at),
        updated_at: crate::rfc3339(m.updated_at),
    })
}

/// The org's members. Needs `members:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/members", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = [MemberInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn members(
    State(state): State<AppState>,
    access: OrgAccess<MembersRead>,
) -> Result<Json<Vec<MemberInfo>>, ApiError> {
    let mut out = Vec::new();
    for m in state.store.members_of(&access.org.id).await? {
        out.push(member_info(&state, m).await?);
    }
    Ok(Json(out))
}

/// Checks role names (built in, or custom roles of the org) and returns what they grant.
pub(crate) async fn roles_grant(
    state: &AppState,
    org_id: &str,
    roles: &[String],
) -> Result<PermissionSet, ApiError> {
    if roles.is_empty() || roles.len() > 32 {
        return Err(invalid("give 1–32 roles"));
    }
    let custom = state.store.list_roles(org_id).await?;
    for r in roles {
        if BuiltinRole::from_name(r).is_none() && !custom.iter().any(|c| c.name == *r) {
            return Err(invalid(format!(
                "no role `{r}` in this org; see GET /v1/orgs/{{org}}/roles"
            )));
        }
    }
    crate::orgs::permissions_of(state, org_id, roles).await
}

/// Add a member or replace their roles. Needs `members:write`, and the caller must hold
/// every permission of both the old and the new roles. The member's existing access tokens
/// stop working (`user-version-stale`); their sessions continue with the new roles.
#[utoipa::path(put, path = "/v1/orgs/{org}/members/{user_id}", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), ("user_id" = String, Path)), request_body = SetMemberRequest,
    responses((status = 200, body = MemberInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_member(
    State(state): State<AppState>,
    access: OrgAccess<MembersWrite>,
    Path((_, user_id)): Path<(String, String)>,
    JsonBody(req): JsonBody<SetMemberRequest>,
) -> Result<Json<MemberInfo>, ApiError> {
    let mut roles = req.roles.clone();
    roles.sort();
    roles.dedup();
    let new = roles_grant(&state, &access.org.id, &roles).await?;
    access
        .check_covers(&state, &new, "giving these roles", ("member.set", &user_id))
        .await?;
    let existing = state.store.get_membership(&access.org.id, &user_id).await?;
    if let Some(old) = &existing {
        let old_grants = crate::orgs::permissions_of(&state, &access.org.id, &old.roles).await?;
        access
            .check_covers(
                &state,
                &old_grants,
                "changing this member's roles",
                ("member.set", &user_id),
            )
            .await?;
    }
    let now = state.clock.now().0;
    let record = MembershipRecord {
        org_id: access.org.id.clone(),
        user_id: user_id.clone(),
        roles,
        created_at: existing.as_ref().map_or(now, |m| m.created_at),
        updated_at: now,
    };
    let user_ver = match state.store.set_membership(&record).await? {
        MembershipChange::Done { user_ver } => user_ver,
        MembershipChange::LastOwner => {
            return Err(access.refused(&state, "member.set", &user_id, last_owner()).await);
        }
        MembershipChange::NotFound => {
            return Err(ApiError::new(
                Reason::NotFound,
                format!("no user with id `{user_id}`"),
            ));
        }
    };
    let detail = json!({"before": existing.map(|m| m.roles), "after": record.roles, "user_ver": user_ver});
    crate::audit::record_event(
        &state,
        event(&access, "member.set").target(&user_id).detail(detail),
    )
    .await?;
    Ok(Json(member_info(&state, record).await?))
}

fn last_owner() -> ApiError {
    ApiError::new(
        Reason::LastOwner,
        "the org would have no owner left; make another member owner first",
    )
}

/// Remove a member. Needs `members:write` and every permission the member holds.
#[utoipa::path(delete, path = "/v1/orgs/{org}/members/{user_id}", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    access: OrgAccess<MembersWrite>,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let not_member = || ApiError::new(Reason::NotFound, format!("`{user_id}` is not a member"));
    let old = state
        .store
        .get_membership(&access.org.id, &user_id)
        .await?
        .ok_or_else(not_member)?;
    let old_grants = crate::orgs::permissions_of(&state, &access.org.id, &old.roles).await?;
    access
        .check_covers(
            &state,
            &old_grants,
            "removing this member",
            ("member.remove", &user_id),
        )
        .await?;
    match state
        .store
        .remove_membership(&access.org.id, &user_id, state.clock.now().0)
        .await?
    {
        MembershipChange::Done { .. } => {}
        MembershipChange::LastOwner => {
            return Err(access
                .refused(&state, "member.remove", &user_id, last_owner())
                .await);
        }
        MembershipChange::NotFound => return Err(not_member()),
    }
    let detail = json!({"roles": old.roles});
    crate::audit::record_event(
        &state,
        event(&access, "member.remove").target(&user_id).detail(detail),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Built-in and custom roles with their permissions. Needs `roles:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/roles", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = [RoleInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn roles(
    State(state): State<AppState>,
    access: OrgAccess<RolesRead>,
) -> Result<Json<Vec<RoleInfo>>, ApiError> {
    let builtin = BuiltinRole::ALL.into_iter().map(|r| RoleInfo {
        name: r.name().to_owned(),
        description: None,
        permissions: r.grants().iter().map(|g| (*g).to_owned()).collect(),
        builtin: true,
    });
    let custom = state
        .store
        .list_roles(&access.org.id)
        .await?
        .into_iter()
        .map(|r| RoleInfo {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            builtin: false,
        });
    Ok(Json(builtin.chain(custom).collect()))
}

/// Create or replace a custom role. Needs `roles:write`, and the caller must hold every
/// permission the role grants (and granted before).
#[utoipa::path(put, path = "/v1/orgs/{org}/roles/{name}", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), ("name" = String, Path)), request_body = PutRoleRequest,
    responses((status = 200, body = RoleInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_role(
    State(state): State<AppState>,
    access: OrgAccess<RolesWrite>,
    Path((_, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<PutRoleRequest>,
) -> Result<Json<RoleInfo>, ApiError> {
    validate_role_name(&name).map_err(|_| {
        invalid(
            "role names are 1–63 characters of a–z 0–9 - _, start with a letter, and are not built-in names",
        )
    })?;
    if req.permissions.is_empty() || req.permissions.len() > 64 {
        return Err(invalid("give 1–64 permissions"));
    }
    if req
        .description
        .as_deref()
        .is_some_and(|d| d.len() > 500 || d.chars().any(char::is_control))
    {
        return Err(invalid(
            "description must be at most 500 characters, without control characters",
        ));
    }
    let grants = PermissionSet::parse(req.permissions.iter().map(String::as_str))
        .map_err(|e| invalid(e.to_string()))?;
    access
        .check_covers(&state, &grants, "this role", ("role.put", &name))
        .await?;
    let existing = state.store.get_role(&access.org.id, &name).await?;
    if let Some(old) = &existing {
        let old_grants = PermissionSet::parse(old.permissions.iter().map(String::as_str)).unwrap_or_default();
        access
            .check_covers(&state, &old_grants, "changing this role", ("role.put", &name))
            .await?;
    }
    let now = state.clock.now().0;
    let permissions: Vec<String> = grants.iter().map(Grant::to_string).collect();
    let role = RoleRecord {
        org_id: access.org.id.clone(),
        name: name.clone(),
        description: req.description.clone(),
        permissions: permissions.clone(),
        created_at: existing.as_ref().map_or(now, |r| r.created_at),
        updated_at: now,
    };
    state.store.put_role(&role).await?;
    let detail = json!({"before": existing.map(|r| r.permissions), "after": permissions});
    crate::audit::record_event(&state, event(&access, "role.put").target(&name).detail(detail)).await?;
    Ok(Json(RoleInfo {
        name,
        description: role.description,
        permissions,
        builtin: false,
    }))
}

/// Delete a custom role; refused (409) while a member holds it. Needs `roles:write`.
#[utoipa::path(delete, path = "/v1/orgs/{org}/roles/{name}", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_role(
    State(state): State<AppState>,
    access: OrgAccess<RolesWrite>,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::new(Reason::NotFound, format!("no custom role `{name}`"));
    let old = state
        .store
        .get_role(&access.org.id, &name)
        .await?
        .ok_or_else(not_found)?;
    let old_grants = PermissionSet::parse(old.permissions.iter().map(String::as_str)).unwrap_or_default();
    access
        .check_covers(&state, &old_grants, "deleting this role", ("role.delete", &name))
        .await?;
    match state.store.delete_role(&access.org.id, &name).await {
        Ok(true) => {}
        Ok(false) => return Err(not_found()),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("members hold `{name}`; change their roles first"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    crate::audit::record_event(&state, event(&access, "role.delete").target(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The org's service accounts. Needs `service-accounts:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/service-accounts", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = [ClientInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn service_accounts(
    State(state): State<AppState>,
    access: OrgAccess<ServiceAccountsRead>,
) -> Result<Json<Vec<ClientInfo>>, ApiError> {
    let list = state.store.clients_of_org(&access.org.id).await?;
    Ok(Json(list.iter().map(crate::clients::info).collect()))
}

/// Create a service account of the org (its tokens carry the org). Needs
/// `service-accounts:write`. The secret is shown once.
#[utoipa::path(post, path = "/v1/orgs/{org}/service-accounts", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)), request_body = CreateClientRequest,
    responses((status = 201, body = ClientWithSecret), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_service_account(
    State(state): State<AppState>,
    access: OrgAccess<ServiceAccountsWrite>,
    JsonBody(req): JsonBody<CreateClientRequest>,
) -> Result<(StatusCode, Json<ClientWithSecret>), ApiError> {
    let created = crate::clients::create(&state, &req, Some(&access.org.id)).await?;
    let detail = json!({"name": req.name, "scope": req.scope, "audiences": req.audiences});
    crate::audit::record_event(
        &state,
        event(&access, "client.create")
            .target(&created.client.client_id)
            .detail(detail),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Disable every service account of the org at once: their secrets stop working and their
/// tokens introspect inactive. Needs `service-accounts:write`.
#[utoipa::path(post, path = "/v1/orgs/{org}/service-accounts/revoke", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = RevokedServiceAccounts), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_service_accounts(
    State(state): State<AppState>,
    access: OrgAccess<ServiceAccountsWrite>,
) -> Result<Json<RevokedServiceAccounts>, ApiError> {
    let disabled = state
        .store
        .disable_org_clients(&access.org.id, state.clock.now().0)
        .await?;
    let detail = json!({"disabled": disabled});
    crate::audit::record_event(&state, event(&access, "client.revoke_all").detail(detail)).await?;
    Ok(Json(RevokedServiceAccounts { disabled }))
}

/// Sessions acting in the org, newest first. Needs `sessions:read` or `sessions:revoke`.
#[utoipa::path(get, path = "/v1/orgs/{org}/sessions", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path)),
    responses((status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    access: OrgAccess<SessionsRead>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let list = state.store.sessions_of_org(&access.org.id).await?;
    Ok(Json(list.into_iter().map(crate::sessions::info).collect()))
}

/// End a session acting in the org. Needs `sessions:revoke`.
#[utoipa::path(post, path = "/v1/orgs/{org}/sessions/{id}/revoke", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    access: OrgAccess<SessionsRevoke>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let session = state
        .store
        .get_session(&id)
        .await?
        .filter(|s| s.org_id.as_deref() == Some(access.org.id.as_str()))
        .ok_or_else(|| ApiError::new(Reason::NotFound, format!("no session `{id}` in this org")))?;
    crate::sessions::revoke(&state, &session, &access.caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The org's audit trail, newest first, paged like `/v1/admin/audit` (the `org` filter is
/// this org). Needs `audit:read`.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path), AuditFilter),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    access: OrgAccess<AuditRead>,
    query: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(mut filter) = query.map_err(|e| invalid(e.body_text()))?;
    filter.org = Some(access.org.id.clone());
    Ok(Json(crate::audit::query_page(&state, &filter).await?))
}
