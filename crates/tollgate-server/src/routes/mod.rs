//! HTTP routes, one module per area; `router` assembles them with the middleware stack.

pub mod admin;
pub mod audit;
pub mod builds;
pub mod certs;
pub mod device;
pub mod discovery;
pub mod invites;
pub mod issuers;
pub mod keys;
pub mod me;
pub mod oauth;
pub mod ops;
pub mod orgs;
pub mod publish;
pub mod registry;
pub mod status;
pub mod trust;
pub mod users;
pub mod web;

use crate::authz;
use crate::error::ApiError;
use crate::state::AppState;
use axum::routing::{any, get, post, put};
use axum::{Router, middleware};
use tollgate_core::Reason;

/// Every route of the server (without the outer middleware). Each route is public by
/// name (the first group) or guarded by its handler's extractor; [`authz::enforce`] refuses
/// any success that no guard decided on.
pub fn routes(device_verification_path: &str) -> Router<AppState> {
    // RFC 6749 endpoints authenticate clients inside the protocol handler, as the RFCs say.
    let public = Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/device_authorization", post(device::authorize))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        // Registry clients ask anonymously first; their Basic credentials are checked inside.
        .route("/v2/token", get(registry::token_get).post(registry::token_post))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        // The CA's certificates are public: every verifier needs them.
        .route("/v1/ca/chain", get(certs::chain))
        // Envoy ext_authz: the client certificate in x-forwarded-client-cert, checked inside
        // (and believed only from server.trusted_proxies).
        .route("/v1/gateway/authorize", any(certs::gateway_authorize))
        .route("/v1/gateway/authorize/{*path}", any(certs::gateway_authorize))
        // The runner's publish steps authenticate inside: the CI OIDC token (attest), then
        // the runner secret; finalize and the session view also take the session's user.
        .route("/v1/publish/attest", post(publish::attest))
        .route("/v1/publish/combined", get(publish::combined))
        .route("/v1/publish/status", post(publish::status))
        .route("/v1/publish/finalize", post(publish::finalize))
        .route("/v1/publish/sessions/{id}", get(publish::get))
        // A device registers its key with the key-enrollment token (checked inside): the
        // user's browser session is not needed on the device.
        .route("/v1/keys/register", post(keys::register))
        // Invites: the link's page shows only what its token names; redemption is
        // authenticated inside by the invite token and an upstream identity token.
        .route("/verify", get(invites::verify_page).post(invites::accept))
        // Pages for people: sign-in, and the device verification page (a browser session
        // from the sign-in, checked inside, with an anti-forgery token on every form).
        .route("/login", get(web::login))
        .route("/login/callback", get(web::callback))
        .route("/logout", post(web::logout))
        .route(
            device_verification_path,
            get(web::device_page).post(web::device_decision),
        )
        .route("/v1/invites/redeem", post(invites::redeem))
        .route_layer(middleware::from_fn(authz::public));
    let guarded = Router::new()
        .route("/auth/status", get(status::auth_status))
        .route(
            "/v1/admin/clients",
            post(admin::create_client).get(admin::list_clients),
        )
        .route(
            "/v1/admin/clients/{client_id}",
            get(admin::get_client).delete(admin::delete_client),
        )
        .route(
            "/v1/admin/clients/{client_id}/secret",
            post(admin::rotate_client_secret),
        )
        .route(
            "/v1/admin/clients/{client_id}/disable",
            post(admin::disable_client),
        )
        .route("/v1/admin/clients/{client_id}/enable", post(admin::enable_client))
        .route("/v1/admin/keys", get(admin::list_keys))
        .route("/v1/admin/keys/rotate", post(admin::rotate_keys))
        .route("/v1/admin/keys/{kid}/retire", post(admin::retire_key))
        .route("/v1/admin/secrets/rotate", post(admin::rotate_secrets))
        .route("/v1/admin/audit", get(audit::list))
        .route("/v1/admin/audit/export", get(audit::export))
        .route("/v1/admin/audit/verify", get(audit::verify))
        .route("/v1/admin/users", get(users::list).post(users::create))
        .route("/v1/admin/users/{id}", get(users::get))
        .route("/v1/admin/users/{id}/identities", post(users::link))
        .route("/v1/admin/users/{id}/sessions", get(users::sessions))
        .route("/v1/admin/sessions/{id}/revoke", post(users::revoke_session))
        .route("/v1/admin/users/{id}/logout", post(users::logout))
        .route("/v1/admin/users/{id}/disable", post(users::disable))
        .route("/v1/admin/users/{id}/enable", post(users::enable))
        .route("/v1/admin/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/v1/admin/orgs/{org}/external-ids",
            post(orgs::bind_external).delete(orgs::unbind_external),
        )
        .route("/v1/orgs/{org}", get(orgs::get))
        .route("/v1/orgs/{org}/issuers", put(orgs::set_issuers))
        .route("/v1/orgs/{org}/members", get(orgs::members))
        .route(
            "/v1/orgs/{org}/members/{user_id}",
            put(orgs::set_member).delete(orgs::remove_member),
        )
        .route("/v1/orgs/{org}/roles", get(orgs::roles))
        .route("/v1/orgs/{org}/invites", get(invites::list).post(invites::create))
        .route("/v1/invites", post(invites::create_by_body))
        .route("/v1/orgs/{org}/invites/{id}/revoke", post(invites::revoke))
        .route(
            "/v1/orgs/{org}/roles/{name}",
            put(orgs::put_role).delete(orgs::delete_role),
        )
        .route(
            "/v1/orgs/{org}/service-accounts",
            get(orgs::service_accounts).post(orgs::create_service_account),
        )
        .route(
            "/v1/orgs/{org}/service-accounts/revoke",
            post(orgs::revoke_service_accounts),
        )
        .route("/v1/orgs/{org}/sessions", get(orgs::sessions))
        .route("/v1/orgs/{org}/sessions/{id}/revoke", post(orgs::revoke_session))
        .route("/v1/orgs/{org}/audit", get(orgs::audit))
        .route("/v1/orgs/{org}/trust-policies", get(trust::list))
        .route("/v1/orgs/{org}/trust-policies/evaluate", post(trust::evaluate))
        .route(
            "/v1/orgs/{org}/trust-policies/{name}",
            get(trust::get).put(trust::put).delete(trust::delete),
        )
        .route("/v1/orgs/{org}/build-sessions", get(builds::list_org))
        .route(
            "/v1/orgs/{org}/build-sessions/{id}/close",
            post(builds::close_org),
        )
        .route("/v1/publish/init", post(publish::init))
        .route("/v1/build/sessions", post(builds::open).get(builds::list_own))
        .route("/v1/build/sessions/{id}/close", post(builds::close_own))
        .route("/v1/certificates/sign", post(certs::sign))
        .route("/v1/certificates/server", post(certs::sign_server))
        .route(
            "/v1/admin/clients/{client_id}/certificate-rules",
            get(certs::get_rules).put(certs::put_rules),
        )
        .route("/v1/me", get(me::get))
        .route("/v1/me/sessions", get(me::sessions))
        .route("/v1/me/sessions/{id}/revoke", post(me::revoke_session))
        .route("/v1/me/logout", post(me::logout))
        .route("/v1/me/tokens/revoke", post(me::revoke_token))
        .route("/v1/device", get(device::lookup))
        .route("/v1/device/approve", post(device::approve))
        .route("/v1/device/deny", post(device::deny))
        .route("/v1/keys/bootstrap", post(keys::bootstrap))
        .route("/v1/me/keys", get(keys::mine))
        .route("/v1/me/keys/{id}/revoke", post(keys::revoke_mine))
        .route("/v1/admin/users/{id}/keys", get(keys::of_user))
        .route("/v1/admin/user-keys/{id}/revoke", post(keys::revoke_any))
        .route(
            "/internal/registry/pull-credentials",
            post(registry::pull_credentials),
        )
        .route("/v1/admin/registry/config", get(registry::config))
        .route(
            "/v1/admin/registry/pull-credentials/{id}/revoke",
            post(registry::revoke_pull_credential),
        )
        .route(
            "/v1/admin/api-keys",
            get(registry::list_api_keys).post(registry::create_api_key),
        )
        .route("/v1/admin/api-keys/{id}/revoke", post(registry::revoke_api_key))
        .route("/v1/issuers", get(issuers::list).post(issuers::create))
        .route("/v1/issuers/{name}", put(issuers::update).delete(issuers::delete))
        .route("/v1/verify", post(issuers::verify));
    public
        .merge(guarded)
        .fallback(not_found)
        // axum's own 405 carries the `Allow` header; give it tollgate's body as well.
        .layer(middleware::map_response(method_not_allowed))
        .layer(middleware::from_fn(authz::enforce))
}

async fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound, "no such endpoint; see /openapi.json")
}

async fn method_not_allowed(resp: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if resp.status() != http::StatusCode::METHOD_NOT_ALLOWED
        || resp.headers().contains_key(http::header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(http::header::ALLOW).cloned();
    let mut json = ApiError::new(
        Reason::MethodNotAllowed,
        "this endpoint does not accept that method; see /openapi.json",
    )
    .into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(http::header::ALLOW, allow);
    }
    json
}
