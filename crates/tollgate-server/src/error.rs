//! The one place where failures become HTTP responses.
//!
//! Handlers return [`ApiError`]; its [`Reason`] decides the status and the RFC 6749 error
//! code through [`classify`]. Bodies are always `{error, error_description, reason}`.
//! Internal failures are logged here with their cause and answered without it.

use crate::hashing::HashingError;
use crate::keyring::KeyError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_core::Reason;
use tollgate_proto::ErrorBody;
use tollgate_store::StoreError;

/// A refusal or failure, ready to be sent. Small on purpose (it travels in every `Result`);
/// the rarely used parts live behind one box.
#[derive(Debug)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Default)]
struct Extra {
    /// `WWW-Authenticate` challenge to send with a 401.
    challenge: Option<String>,
    /// For refused upstream tokens: the issuer and key they named.
    issuer: Option<String>,
    kid: Option<String>,
    /// `Retry-After` seconds, for 429.
    retry_after: Option<u64>,
    /// For `policy-denied` on CI tokens: how each trust policy judged the workload.
    policies: Option<Box<tollgate_proto::ci::PolicyEvaluation>>,
    /// Overrides the status and error code of [`classify`] (e.g. `invalid_grant` on the
    /// token endpoint for a token that elsewhere is `invalid_token`).
    overridden: Option<(StatusCode, &'static str)>,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            extra: None,
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Adds a `WWW-Authenticate` challenge.
    #[must_use]
    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.extra().challenge = Some(challenge.into());
        self
    }

    /// The `WWW-Authenticate` challenge, if any.
    #[must_use]
    pub fn challenge(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.challenge.as_deref())
    }

    /// Adds `Retry-After` (seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.extra().retry_after = Some(seconds);
        self
    }

    /// Attaches the trust-policy evaluation that explains a refusal.
    #[must_use]
    pub fn with_policies(mut self, evaluation: tollgate_proto::ci::PolicyEvaluation) -> Self {
        self.extra().policies = Some(Box::new(evaluation));
        self
    }

    /// The `iss` a refused upstream token named.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.issuer.as_deref())
    }

    /// The `kid` a refused upstream token named.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.kid.as_deref())
    }

    /// A refused upstream token, with the issuer and kid it named.
    #[must_use]
    pub fn refused_token(r: tollgate_core::upstream::Refusal) -> Self {
        let mut e = Self::new(r.reason, r.message);
        let extra = e.extra();
        extra.issuer = r.issuer;
        extra.kid = r.kid;
        e
    }

    /// On the token endpoint a refused subject or actor token is `invalid_grant` (RFC 6749
    /// §5.2), except when its keys were unavailable, which stays a 503.
    #[must_use]
    pub fn as_invalid_grant(mut self) -> Self {
        if !classify(self.reason).0.is_server_error() {
            self.extra().overridden = Some((StatusCode::BAD_REQUEST, "invalid_grant"));
        }
        self
    }

    /// The same refusal as failed client authentication: `401 invalid_client` (RFC 6749
    /// §5.2, RFC 7523 §3.2 for client assertions), except for a 503 or a rate limit.
    #[must_use]
    pub fn as_invalid_client(mut self) -> Self {
        let (status, _) = classify(self.reason);
        if !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS {
            self.extra().overridden = Some((StatusCode::UNAUTHORIZED, "invalid_client"));
        }
        self
    }

    /// A backing-service failure: logged with its cause, answered 503 without it.
    pub fn unavailable(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %DisplayChain(cause), "backing service failed; refusing request");
        Self::new(
            Reason::ServiceUnavailable,
            "a backing service is unavailable; retry later",
        )
    }

    /// A bug or broken invariant: logged with its cause, answered 500 without it.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %DisplayChain(cause), "internal error");
        Self::new(Reason::InternalError, "internal error; it has been logged")
    }
}

/// HTTP status and `error` code for each reason.
#[must_use]
pub fn classify(reason: Reason) -> (StatusCode, &'static str) {
    use Reason::*;
    match reason {
        MalformedRequest | InvalidUtf8 | DuplicateParameter | MissingParameter | InvalidParameter => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        UnsupportedContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request"),
        BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
        UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        ClientAuthAmbiguous => (StatusCode::BAD_REQUEST, "invalid_request"),
        ClientAuthMissing | SecretMalformed | ClientAuthFailed | ClientDisabled => {
            (StatusCode::UNAUTHORIZED, "invalid_client")
        }
        RefreshTokenUnknown | RefreshTokenReused | SessionExpired | SessionRevoked => {
            (StatusCode::BAD_REQUEST, "invalid_grant")
        }
        ScopeMalformed | ScopeNotAllowed => (StatusCode::BAD_REQUEST, "invalid_scope"),
        AudienceNotAllowed => (StatusCode::BAD_REQUEST, "invalid_target"),
        UnknownIssuer | IssuerDisabled | AudMissing | AudMismatch | AzpNotAllowed | TokenTooOld => {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        }
        JwksUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        PolicyDenied | RegistrationClosed => (StatusCode::FORBIDDEN, "access_denied"),
        UserDisabled | UserVersionStale => (StatusCode::UNAUTHORIZED, "invalid_token"),
        Malformed | TokenTooLarge | AlgNotAllowed | KidNotFound | InvalidSignature | WrongTokenType
        | IssuerMismatch | Expired | NotYetValid | ClaimMissing | Revoked => {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        }
        TokenNotOwned => (StatusCode::BAD_REQUEST, "unauthorized_client"),
        TokenMissing | AdminAuthRequired | AdminAuthFailed => (StatusCode::UNAUTHORIZED, "unauthorized"),
        NotFound => (StatusCode::NOT_FOUND, "not_found"),
        MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        Conflict | InvalidKeyState | LastOwner => (StatusCode::CONFLICT, "conflict"),
        PermissionDenied | OrgNotMember | OrgMismatch | IssuerNotEnabledForOrg | GrantExceedsCaller => {
            (StatusCode::FORBIDDEN, "access_denied")
        }
        NotAWorkload | OrgAmbiguous => (StatusCode::BAD_REQUEST, "invalid_request"),
        TokenReplayed | PublishAuthFailed => (StatusCode::UNAUTHORIZED, "invalid_token"),
        PublishSessionUnknown => (StatusCode::NOT_FOUND, "not_found"),
        PublishSessionExpired => (StatusCode::GONE, "expired"),
        PublishSessionState | BuildSessionLimit => (StatusCode::CONFLICT, "conflict"),
        PublishNonceMismatch => (StatusCode::FORBIDDEN, "access_denied"),
        // RFC 8628 §3.5: the device token errors are 400s with these codes.
        AuthorizationPending => (StatusCode::BAD_REQUEST, "authorization_pending"),
        SlowDown => (StatusCode::BAD_REQUEST, "slow_down"),
        DeviceCodeExpired => (StatusCode::BAD_REQUEST, "expired_token"),
        DeviceAccessDenied => (StatusCode::BAD_REQUEST, "access_denied"),
        DeviceCodeUnknown | DeviceCodeUsed => (StatusCode::BAD_REQUEST, "invalid_grant"),
        UserCodeUnknown => (StatusCode::NOT_FOUND, "not_found"),
        KeyEnrollmentTokenUnknown | KeyEnrollmentTokenExpired => (StatusCode::UNAUTHORIZED, "invalid_token"),
        KeyEnrollmentTokenUsed | KeyAlreadyRegistered | KeyLimit => (StatusCode::CONFLICT, "conflict"),
        PublicKeyUnsupported | PublicKeyInvalid | ProofOfPossessionInvalid => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        // RFC 7523 §3.1: a refused assertion is `invalid_grant`.
        KeyUnknown | KeyRevoked | AssertionInvalid | AssertionTooLongLived | AssertionReplayed => {
            (StatusCode::BAD_REQUEST, "invalid_grant")
        }
        InviteUnknown => (StatusCode::NOT_FOUND, "not_found"),
        InviteExpired | InviteRevoked => (StatusCode::GONE, "expired"),
        InviteRedeemed => (StatusCode::CONFLICT, "conflict"),
        InviteEmailMismatch => (StatusCode::FORBIDDEN, "access_denied"),
        WebLoginDisabled => (StatusCode::NOT_FOUND, "not_found"),
        NotSignedIn => (StatusCode::UNAUTHORIZED, "login_required"),
        LoginStateInvalid | LoginFailed => (StatusCode::BAD_REQUEST, "access_denied"),
        IdpUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        CsrfInvalid => (StatusCode::FORBIDDEN, "access_denied"),
        CsrInvalid | CsrSignatureInvalid | KeyTypeNotAllowed | SanNotAllowed | WildcardDepth => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        ClientCertMissing | ClientCertInvalid | RouteNotAllowed => (StatusCode::FORBIDDEN, "access_denied"),
        CaUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let extra = self.extra.map(|b| *b).unwrap_or_default();
        let (status, error) = extra.overridden.unwrap_or_else(|| classify(self.reason));
        let body = ErrorBody {
            error: error.to_owned(),
            error_description: self.message,
            reason: self.reason.code().to_owned(),
            issuer: extra.issuer,
            kid: extra.kid,
            policies: extra.policies,
        };
        let mut resp = (status, Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = extra.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(secs) = extra.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Ok(v) = HeaderValue::from_str(self.reason.code()) {
            headers.insert("x-tollgate-reason", v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidInput(m) => {
                tracing::debug!(detail = %m, "store refused a value");
                ApiError::new(
                    Reason::InvalidParameter,
                    "a value contains a character that cannot be stored (such as NUL)",
                )
            }
            StoreError::Conflict(m) => {
                tracing::debug!(detail = %m, "store conflict");
                ApiError::new(Reason::Conflict, "the request conflicts with existing state")
            }
            other => ApiError::unavailable(&other),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(s) => s.into(),
            KeyError::InvalidState(m) => ApiError::new(Reason::InvalidKeyState, m),
            KeyError::NotFound(kid) => {
                ApiError::new(Reason::NotFound, format!("no signing key with kid `{kid}`"))
            }
            other @ (KeyError::Seal { .. } | KeyError::Crypto { .. }) => ApiError::internal(&other),
        }
    }
}

impl From<HashingError> for ApiError {
    fn from(e: HashingError) -> Self {
        match e {
            HashingError::Store(s) => s.into(),
            other @ HashingError::Seal { .. } => ApiError::internal(&other),
        }
    }
}

/// Displays an error with its `source()` chain: `outer: inner: root`.
#[derive(Debug)]
pub struct DisplayChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_4xx_or_a_deliberate_5xx() {
        for r in Reason::ALL {
            let (status, error) = classify(*r);
            assert!(!error.is_empty());
            if status.is_server_error() {
                assert!(
                    matches!(
                        r,
                        Reason::ServiceUnavailable
                            | Reason::InternalError
                            | Reason::JwksUnavailable
                            | Reason::IdpUnavailable
                            | Reason::CaUnavailable
                    ),
                    "{r} maps to {status}"
                );
            } else {
                assert!(status.is_client_error(), "{r} maps to {status}");
            }
        }
    }

    #[test]
    fn documented_statuses_match_the_code() {
        let doc = include_str!("../../../docs/reasons.md");
        for r in Reason::ALL {
            let (status, _) = classify(*r);
            let row = format!("| `{}` | {} |", r.code(), status.as_u16());
            assert!(doc.contains(&row), "docs/reasons.md should say {row}");
        }
    }
}
