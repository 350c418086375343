//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use tollgate_proto::{
    ErrorBody, admin, audit, certs, ci, device, discovery, invites, keys, oauth, ops, orgs, registry,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "tollgate", description = "Security token service and credential broker. Every refusal carries a `reason` code (docs/reasons.md)."),
    paths(
        routes::discovery::jwks, routes::discovery::metadata, routes::discovery::openid_configuration,
        routes::oauth::token, routes::oauth::introspect, routes::oauth::revoke,
        routes::status::auth_status,
        routes::admin::create_client, routes::admin::list_clients, routes::admin::get_client,
        routes::admin::delete_client, routes::admin::rotate_client_secret,
        routes::admin::disable_client, routes::admin::enable_client,
        routes::admin::list_keys, routes::admin::rotate_keys, routes::admin::retire_key,
        routes::admin::rotate_secrets,
        routes::audit::list, routes::audit::export, routes::audit::verify,
        routes::issuers::list, routes::issuers::create, routes::issuers::update, routes::issuers::delete,
        routes::issuers::verify,
        routes::users::list, routes::users::create, routes::users::get, routes::users::link,
        routes::users::logout, routes::users::disable, routes::users::enable,
        routes::users::sessions, routes::users::revoke_session,
        routes::orgs::create, routes::orgs::list, routes::orgs::bind_external, routes::orgs::unbind_external,
        routes::orgs::get, routes::orgs::set_issuers, routes::orgs::members, routes::orgs::set_member,
        routes::orgs::remove_member, routes::orgs::roles, routes::orgs::put_role, routes::orgs::delete_role,
        routes::orgs::service_accounts, routes::orgs::create_service_account,
        routes::orgs::revoke_service_accounts, routes::orgs::sessions, routes::orgs::revoke_session,
        routes::orgs::audit,
        routes::me::get, routes::me::sessions, routes::me::revoke_session, routes::me::logout, routes::me::revoke_token,
        routes::registry::token_get, routes::registry::token_post, routes::registry::pull_credentials,
        routes::registry::revoke_pull_credential, routes::registry::create_api_key,
        routes::registry::list_api_keys, routes::registry::revoke_api_key, routes::registry::config,
        routes::ops::healthz, routes::ops::readyz, routes::ops::metrics, routes::ops::openapi,
        routes::trust::list, routes::trust::get, routes::trust::put, routes::trust::delete, routes::trust::evaluate,
        routes::publish::init, routes::publish::attest, routes::publish::combined, routes::publish::status,
        routes::publish::finalize, routes::publish::get,
        routes::builds::open, routes::builds::list_own, routes::builds::close_own, routes::builds::list_org,
        routes::builds::close_org,
        routes::device::authorize, routes::device::lookup, routes::device::approve, routes::device::deny,
        routes::keys::bootstrap, routes::keys::register, routes::keys::mine, routes::keys::revoke_mine,
        routes::keys::of_user, routes::keys::revoke_any,
        routes::invites::create, routes::invites::create_by_body, routes::invites::list, routes::invites::revoke, routes::invites::redeem,
        routes::invites::verify_page, routes::invites::accept,
        routes::web::login, routes::web::callback, routes::web::logout, routes::web::device_page,
        routes::web::device_decision,
        routes::certs::chain, routes::certs::sign, routes::certs::sign_server, routes::certs::put_rules,
        routes::certs::get_rules, routes::certs::gateway_authorize,
    ),
    components(schemas(
        ErrorBody, oauth::TokenRequest, oauth::TokenResponse, oauth::TokenTypeHintRequest,
        oauth::IntrospectionResponse, discovery::ServerMetadata, ops::Health, ops::AuthStatus,
        admin::CreateClientRequest, admin::ClientInfo, admin::ClientWithSecret, admin::KeyInfo,
        admin::RotateKeysRequest, admin::RotateKeysResponse, admin::RetireKeyRequest,
        admin::SecretRotation, admin::AuditEvent, admin::IssuerInfo, admin::VerifyRequest,
        admin::VerifyResponse, admin::VerifyStep, ops::UpstreamInfo,
        admin::IdentityInfo, admin::UserInfo, admin::CreateUserRequest, admin::SessionInfo,
        audit::AuditPage, audit::AuditVerification,
        orgs::CreateOrgRequest, orgs::ExternalOrgId, orgs::OrgInfo, orgs::SetIssuersRequest, orgs::MemberInfo,
        orgs::SetMemberRequest, orgs::RoleInfo, orgs::PutRoleRequest, orgs::RevokedServiceAccounts,
        orgs::MembershipInfo, orgs::MeInfo, orgs::RevokeTokenRequest,
        registry::RegistryTokenResponse, registry::RegistryTokenForm, registry::PullCredentialRequest, registry::PullCredential,
        registry::CreateApiKeyRequest, registry::ApiKeyInfo, registry::RegistryConfigResponse,
        ci::PolicyCondition, ci::RepositoryGrant, ci::PolicyGrant, ci::TrustPolicySpec, ci::TrustPolicyInfo,
        ci::TrustPolicyList, ci::FailedCondition, ci::PolicyOutcome, ci::PolicyEvaluation,
        ci::PublishInitRequest, ci::PublishInitResponse, ci::PublishAttestRequest, ci::PublishAttestResponse,
        ci::CombinedTokenResponse, ci::PublishStatusRequest, ci::PublishFinalizeRequest, ci::PublishStatusUpdate,
        ci::PublishSessionInfo, ci::OpenBuildSessionRequest, ci::BuildSessionInfo, ci::BuildSessionList,
        device::DeviceAuthorizationRequest, device::DeviceAuthorizationResponse, device::DeviceDecisionRequest,
        device::DeviceInfo, device::DeviceGrantInfo,
        keys::KeyBootstrapRequest, keys::KeyBootstrapResponse, keys::KeyRegisterRequest, keys::UserKeyInfo,
        invites::CreateInviteRequest, invites::CreateOrgInviteRequest, invites::EmailStatus, invites::CreatedInvite, invites::InviteInfo,
        invites::RedeemInviteRequest, invites::RedeemedInvite,
        certs::SignCertificateRequest, certs::IssuedCertificate, certs::SignServerCertificateRequest,
        certs::CertificateRules,
        routes::invites::AcceptForm, routes::web::LogoutForm, routes::web::DecisionForm,
    )),
    modifiers(&Security, &StandardErrors),
    tags(
        (name = "oauth", description = "OAuth 2.0 token, introspection and revocation endpoints"),
        (name = "discovery", description = "JWKS and server metadata"),
        (name = "tokens", description = "Token diagnostics"),
        (name = "admin", description = "Administration (admin bearer token)"),
        (name = "issuers", description = "Trusted upstream issuers and token diagnostics (admin bearer token)"),
        (name = "orgs", description = "Orgs, members, roles, org service accounts, sessions and audit (user token with the org's permissions, or admin token)"),
        (name = "invites", description = "Invites into orgs by email: create, list, revoke (org members:write / members:read), redeem with an upstream token, and the invite link's page"),
        (name = "me", description = "The calling user's own profile and sessions (user token)"),
        (name = "registry", description = "Container registry token server (distribution token authentication), pull credentials, API keys"),
        (name = "ci", description = "CI workloads: trust policies per org, build sessions (job tokens come from POST /oauth/token, token exchange)"),
        (name = "publish", description = "The combined user + CI runner publish flow (docs/ci.md)"),
        (name = "device", description = "Device authorization (RFC 8628): a signed-in user looks up, approves or denies a device's user code (user token)"),
        (name = "keys", description = "Device keys: enrollment with proof of possession (the device then gets tokens with RFC 7523 assertions at POST /oauth/token)"),
        (name = "web", description = "Pages for people: browser sign-in through the upstream issuer (web_login), and the device verification page"),
        (name = "certificates", description = "X.509 client certificates from tollgate's CA for users and CI jobs, and the CA chain"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        // OAuth client authentication: HTTP Basic (or client_id/client_secret in the form).
        components.add_security_scheme("client", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        // A CI runner's secret for one publish session (`tg_pr_…`), checked inside the handler.
        components.add_security_scheme("runner", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        // A key-enrollment token (`tg_ket_…`) for one device key, checked inside the handler.
        components.add_security_scheme("ket", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::new("X-API-Key"),
            )),
        );
    }
}

/// Documents the refusals every operation can give, so the document matches behaviour:
/// 503 when the database is down, and for operations with a body 400 (malformed),
/// 413 (too large) and 415 (wrong content type).
struct StandardErrors;

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in &mut openapi.paths.paths {
            let rate_limited = crate::rate_limit::limited_per_ip(path);
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(description));
                };
                add("503", "A backing service is unavailable (`service-unavailable`)");
                if rate_limited {
                    add("429", "Too many requests (`rate-limited`); see `Retry-After`");
                }
                add("405", "Method not allowed (`method-not-allowed`)");
                if has_body {
                    add("400", "Malformed request (see `reason`)");
                    add("413", "Body too large (`body-too-large`)");
                    add("415", "Wrong Content-Type (`unsupported-content-type`)");
                }
            }
        }
    }
}
