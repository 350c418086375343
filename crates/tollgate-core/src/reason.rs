//! Reason codes: the closed vocabulary tollgate uses to explain every refusal.
//!
//! Each refusal carries exactly one [`Reason`]. The table in `docs/reasons.md` lists them
//! all; a test keeps the two in step. Codes are stable: rename one only with a migration
//! note, since clients match on them.

use std::fmt;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $desc:literal; )*) => {
        /// Why tollgate refused (or could not serve) a request.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in documentation order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The stable kebab-case code sent as `reason` in error bodies.
            #[must_use]
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)* }
            }

            /// One sentence for people: what happened and what to do next.
            #[must_use]
            pub fn description(self) -> &'static str {
                match self { $(Reason::$variant => $desc,)* }
            }

            /// Looks a code up; `None` for codes this version does not know.
            #[must_use]
            pub fn from_code(code: &str) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    // Request shape
    MalformedRequest = "malformed-request", "The request body or query could not be parsed; send application/x-www-form-urlencoded or JSON as documented.";
    UnsupportedContentType = "unsupported-content-type", "The Content-Type is not the one this endpoint accepts.";
    BodyTooLarge = "body-too-large", "The request body exceeds the endpoint's size limit.";
    InvalidUtf8 = "invalid-utf8", "A parameter is not valid UTF-8 after percent-decoding.";
    DuplicateParameter = "duplicate-parameter", "A parameter that may appear once was sent more than once (RFC 6749 §3.2).";
    MissingParameter = "missing-parameter", "A required parameter is missing.";
    InvalidParameter = "invalid-parameter", "A parameter has a value outside what the endpoint accepts.";
    UnsupportedGrantType = "unsupported-grant-type", "The grant_type is not one tollgate supports or is not enabled.";
    // Client authentication
    ClientAuthMissing = "client-auth-missing", "The endpoint requires client authentication (HTTP Basic or client_secret_post).";
    ClientAuthAmbiguous = "client-auth-ambiguous", "The client used more than one authentication method in one request.";
    SecretMalformed = "secret-malformed", "The secret does not have tollgate's prefix and checksum; it was mistyped or truncated.";
    ClientAuthFailed = "client-auth-failed", "Unknown client or wrong secret.";
    ClientDisabled = "client-disabled", "The client has been disabled by an administrator.";
    // Grant decisions
    ScopeMalformed = "scope-malformed", "The scope parameter is not a space-separated list of RFC 6749 scope tokens.";
    ScopeNotAllowed = "scope-not-allowed", "None of the requested scopes is allowed for this client.";
    AudienceNotAllowed = "audience-not-allowed", "The requested audience or resource is not on the client's allowlist.";
    // Refresh tokens and sessions
    RefreshTokenUnknown = "refresh-token-unknown", "The refresh token is not one tollgate issued (or it was mistyped).";
    RefreshTokenReused = "refresh-token-reused", "The refresh token was used before; its whole session has been revoked. Sign in again.";
    SessionExpired = "session-expired", "The session reached its absolute lifetime or was idle too long. Sign in again.";
    SessionRevoked = "session-revoked", "The session was revoked (logout, reuse of a refresh token, or an administrator).";
    // Token verification
    TokenMissing = "token-missing", "The endpoint requires a bearer token (`Authorization: Bearer …`).";
    UnknownIssuer = "unknown-issuer", "The token's iss is not an issuer tollgate trusts; compare it with GET /v1/issuers (exact match).";
    IssuerDisabled = "issuer-disabled", "The token's issuer is configured but disabled.";
    JwksUnavailable = "jwks-unavailable", "The issuer's keys could not be fetched and none are cached; the token was not judged. Retry later.";
    AudMissing = "aud-missing", "The issuer requires an aud claim and the token has none.";
    AudMismatch = "aud-mismatch", "The token's aud is not among the audiences accepted for its issuer.";
    AzpNotAllowed = "azp-not-allowed", "The token's azp (authorized party) is not on the issuer's allowlist.";
    PolicyDenied = "policy-denied", "The token is valid, but the policy's conditions on its claims do not hold; the message names the condition.";
    RegistrationClosed = "registration-closed", "The upstream identity is not linked to a user, and registration_mode = invite_only; an administrator must create or invite the user first.";
    UserDisabled = "user-disabled", "The user has been disabled by an administrator.";
    UserVersionStale = "user-version-stale", "The token predates a logout-everywhere, disable or role change of its user; get a new one.";
    TokenTooOld = "token-too-old", "The token was issued longer ago than the issuer's max_token_age allows.";
    Malformed = "malformed", "The token is not a well-formed compact JWS.";
    TokenTooLarge = "token-too-large", "The token exceeds the size limit and was not parsed.";
    AlgNotAllowed = "alg-not-allowed", "The token's alg is not allowed (none, HMAC and unlisted algorithms are always refused).";
    KidNotFound = "kid-not-found", "No published key has the token's kid.";
    InvalidSignature = "invalid-signature", "The signature does not verify with the key named by kid.";
    WrongTokenType = "wrong-token-type", "The token's typ header is not the one expected here (e.g. at+jwt).";
    IssuerMismatch = "issuer-mismatch", "The token's iss is not this server.";
    Expired = "expired", "The token's exp is in the past.";
    NotYetValid = "not-yet-valid", "The token's nbf or iat is in the future.";
    ClaimMissing = "claim-missing", "A required claim is missing or has the wrong type.";
    Revoked = "revoked", "The token has been revoked.";
    TokenNotOwned = "token-not-owned", "The token was issued to another client, which alone may revoke it.";
    // Administration
    AdminAuthRequired = "admin-auth-required", "This endpoint requires an admin bearer token.";
    AdminAuthFailed = "admin-auth-failed", "The admin token is unknown or malformed.";
    NotFound = "not-found", "The addressed resource does not exist.";
    MethodNotAllowed = "method-not-allowed", "The resource exists but not with this HTTP method.";
    Conflict = "conflict", "The request conflicts with existing state (e.g. a name already taken).";
    InvalidKeyState = "invalid-key-state", "The signing key is not in a state that allows this operation.";
    // Orgs and permissions
    PermissionDenied = "permission-denied", "The caller's roles in the org do not grant what the operation needs; the message names the missing permissions.";
    OrgNotMember = "org-not-member", "The user is not a member of the org the request names (by parameter or by the upstream token's org claim).";
    OrgMismatch = "org-mismatch", "The token was issued for another org; exchange for a token in this org first.";
    IssuerNotEnabledForOrg = "issuer-not-enabled-for-org", "The org does not accept sign-ins from this upstream issuer (see the org's issuers setting).";
    LastOwner = "last-owner", "The change would leave the org without an owner; make another member owner first.";
    GrantExceedsCaller = "grant-exceeds-caller", "A role may only grant, and a member may only be given, permissions the caller holds.";
    // CI workloads and publishing
    NotAWorkload = "not-a-workload", "The token's issuer describes users; this endpoint needs a CI job's OIDC token from an issuer of kind workloads (github-actions, gitlab).";
    TokenReplayed = "token-replayed", "This CI token was presented before; each is accepted once. Request a fresh OIDC token in the job.";
    OrgAmbiguous = "org-ambiguous", "Trust policies of several orgs match this workload; name one with the org parameter.";
    PublishSessionUnknown = "publish-session-unknown", "No publish session has this id (or it ended long ago); start one with POST /v1/publish/init.";
    PublishSessionExpired = "publish-session-expired", "The publish session expired before this step; start a new one.";
    PublishSessionState = "publish-session-state", "The publish session is not in a state that allows this step (e.g. attested or finalized already); the message names both.";
    PublishNonceMismatch = "publish-nonce-mismatch", "The nonce does not belong to this publish session; pass the session id and nonce from init unchanged.";
    PublishAuthFailed = "publish-auth-failed", "The runner secret or user token does not belong to this publish session.";
    BuildSessionLimit = "build-session-limit", "The owner has as many active build sessions as ci.max_active_per_owner allows; close one first.";
    // Device authorization (RFC 8628)
    AuthorizationPending = "authorization-pending", "The user has not approved or denied the device yet; poll again after the interval.";
    SlowDown = "slow-down", "The device polled sooner than the interval allows; the interval grew by 5 seconds for this and every later poll.";
    DeviceCodeExpired = "device-code-expired", "The device code (and its user code) expired before the user decided or the device collected its tokens; start again.";
    DeviceAccessDenied = "device-access-denied", "The user denied the device's request.";
    DeviceCodeUnknown = "device-code-unknown", "The device code is not one tollgate issued, was mistyped, or was issued to another client_id.";
    DeviceCodeUsed = "device-code-used", "The device code was already exchanged for tokens; each is used once.";
    UserCodeUnknown = "user-code-unknown", "No device authorization has this user code (or it ended long ago); check the code the device shows.";
    // Device keys (key enrollment with proof of possession, RFC 7523 assertions)
    KeyEnrollmentTokenUnknown = "key-enrollment-token-unknown", "The key-enrollment token (tg_ket_…) is not one tollgate issued, was mistyped, or ended long ago; ask for a new one with POST /v1/keys/bootstrap.";
    KeyEnrollmentTokenExpired = "key-enrollment-token-expired", "The key-enrollment token expired before a key was registered with it; ask for a new one.";
    KeyEnrollmentTokenUsed = "key-enrollment-token-used", "The key-enrollment token already registered a key; each registers one. Ask for a new one.";
    PublicKeyUnsupported = "public-key-unsupported", "The public key is not an Ed25519 (OKP) or P-256 (EC) JWK; only those can be registered.";
    PublicKeyInvalid = "public-key-invalid", "The public JWK is malformed, or carries private key material (d); send only the public members (and replace a key whose private part was sent).";
    ProofOfPossessionInvalid = "proof-of-possession-invalid", "The proof is not a JWS by the registered key's private key over this enrollment's nonce and token hash; the message says which part failed.";
    KeyAlreadyRegistered = "key-already-registered", "This public key is registered already (keys are unique by RFC 7638 thumbprint, revoked ones included); generate a new key.";
    KeyLimit = "key-limit", "The user has as many active device keys as device_keys.max_keys_per_user allows; revoke one first.";
    KeyUnknown = "key-unknown", "The assertion's kid names no registered device key.";
    KeyRevoked = "key-revoked", "The device key has been revoked; its sessions ended with it. Enroll a new key.";
    AssertionInvalid = "assertion-invalid", "The JWT assertion (RFC 7523) breaks a rule the message names: iss and sub must be the key id in kid, jti must be present.";
    AssertionTooLongLived = "assertion-too-long-lived", "The assertion's exp is further away than device_keys.assertion_max_age allows; make short-lived assertions.";
    AssertionReplayed = "assertion-replayed", "An assertion with this jti was accepted before; each is accepted once. Make a new one with a fresh jti.";
    // Invites
    InviteUnknown = "invite-unknown", "The invite token (tg_inv_…) is not one tollgate issued, or was mistyped; ask the org admin for a new invite.";
    InviteExpired = "invite-expired", "The invite expired before it was redeemed; ask the org admin for a new one.";
    InviteRedeemed = "invite-redeemed", "The invite was redeemed already; each is redeemed once. Sign in as usual.";
    InviteRevoked = "invite-revoked", "An org admin revoked the invite; ask them for a new one.";
    InviteEmailMismatch = "invite-email-mismatch", "The upstream identity's email is not the address the invite was sent to; sign in with that address.";
    // Browser sign-in to tollgate's pages
    WebLoginDisabled = "web-login-disabled", "Browser sign-in to tollgate's pages is not configured (web_login.issuer); use the API or the CLI instead.";
    NotSignedIn = "not-signed-in", "This page needs a browser sign-in to tollgate, which this browser does not have (or it ended); sign in and try again.";
    LoginStateInvalid = "login-state-invalid", "The sign-in callback's state is unknown, expired, used, or was started in another browser; start the sign-in again.";
    LoginFailed = "login-failed", "The upstream issuer refused the authorization code or answered without a usable ID token (the message says which); start the sign-in again.";
    IdpUnavailable = "idp-unavailable", "The upstream issuer's discovery or token endpoint could not be reached; the sign-in was not completed. Retry later.";
    CsrfInvalid = "csrf-invalid", "The form's anti-forgery token does not belong to this browser's sign-in, or the form was posted from another site; reload the page and try again.";
    // Certificates
    CsrInvalid = "csr-invalid", "The CSR is not a well-formed PKCS #10 request (PEM or base64 DER).";
    CsrSignatureInvalid = "csr-signature-invalid", "The CSR's signature does not verify with the public key it carries: it was altered, or signed by another key.";
    KeyTypeNotAllowed = "key-type-not-allowed", "The CSR's key type is not accepted; use P-256, P-384, Ed25519 or RSA of 2048–8192 bits.";
    SanNotAllowed = "san-not-allowed", "The CSR names a subject alternative name this certificate may not carry (the message names it and the account's patterns).";
    WildcardDepth = "wildcard-depth", "A wildcard DNS name is misplaced (only a whole left-most `*` label over two or more labels) or reaches deeper than the account's patterns allow.";
    ClientCertMissing = "client-cert-missing", "The gateway check found no client certificate in x-forwarded-client-cert; the route needs one from tollgate's CA.";
    ClientCertInvalid = "client-cert-invalid", "The forwarded client certificate is not one tollgate's CA issued, is not valid now, is not for TLS clients, or came from a peer outside server.trusted_proxies.";
    RouteNotAllowed = "route-not-allowed", "The client certificate's holder (kind and org) is not allowed on this path by gateway.routes, or no route matches the path.";
    CaUnavailable = "ca-unavailable", "The certificate authority could not sign (an external CA is down or refused); nothing was issued. Retry later.";
    // Rate limits
    RateLimited = "rate-limited", "Too many requests from this address or with this credential; wait for Retry-After seconds.";
    // Server side
    ServiceUnavailable = "service-unavailable", "A backing service (database) failed; the request was refused to fail closed. Retry later.";
    InternalError = "internal-error", "An unexpected internal error; it has been logged with its cause.";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.code()), "duplicate code {}", r.code());
            assert!(
                r.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit())
            );
            assert_eq!(Reason::from_code(r.code()), Some(*r));
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/reasons.md");
        for r in Reason::ALL {
            assert!(
                doc.contains(&format!("`{}`", r.code())),
                "docs/reasons.md lacks `{}`",
                r.code()
            );
        }
    }
}
