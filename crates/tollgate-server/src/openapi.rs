//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use tollgate_proto::{ErrorBody, admin, discovery, oauth, ops};
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
        routes::admin::rotate_secrets, routes::admin::list_audit,
        routes::ops::healthz, routes::ops::readyz, routes::ops::metrics, routes::ops::openapi,
    ),
    components(schemas(
        ErrorBody, oauth::TokenRequest, oauth::TokenResponse, oauth::TokenTypeHintRequest,
        oauth::IntrospectionResponse, discovery::ServerMetadata, ops::Health, ops::AuthStatus,
        admin::CreateClientRequest, admin::ClientInfo, admin::ClientWithSecret, admin::KeyInfo,
        admin::RotateKeysRequest, admin::RotateKeysResponse, admin::RetireKeyRequest,
        admin::SecretRotation, admin::AuditEvent,
    )),
    modifiers(&Security),
    tags(
        (name = "oauth", description = "OAuth 2.0 token, introspection and revocation endpoints"),
        (name = "discovery", description = "JWKS and server metadata"),
        (name = "tokens", description = "Token diagnostics"),
        (name = "admin", description = "Administration (admin bearer token)"),
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
    }
}
