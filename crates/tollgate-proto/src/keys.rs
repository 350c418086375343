//! Device keys: enrolling a device's public key with proof of possession, listing and
//! revoking keys. The device then gets tokens at `POST /oauth/token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523) and an assertion
//! signed by the key.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/keys/bootstrap`: a signed-in user asks to enroll a key for a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBootstrapRequest {
    /// A name for the device, shown when listing keys: 1–64 characters, no control
    /// characters.
    #[schema(min_length = 1, max_length = 64)]
    pub device_name: String,
}

/// A key-enrollment token and the nonce the device's proof of possession must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyBootstrapResponse {
    /// A public id of the enrollment (`ke_…`), as in audit events.
    pub id: String,
    /// The key-enrollment token (`tg_ket_…`): the device sends it as
    /// `Authorization: Bearer` to `POST /v1/keys/register`, once. Secret; shown once.
    pub ket: String,
    /// What the proof of possession signs, with the token's hash.
    pub nonce: String,
    /// Seconds until the token and nonce expire.
    pub expires_in: u64,
}

/// `POST /v1/keys/register` (with the key-enrollment token as bearer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRegisterRequest {
    /// The device's public key as a JWK: `{"kty": "OKP", "crv": "Ed25519", "x": …}` or
    /// `{"kty": "EC", "crv": "P-256", "x": …, "y": …}`. Private members (`d`) are refused.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
    /// A compact JWS by the key's private key (`alg` `EdDSA` or `ES256`, `typ`
    /// `tollgate-key-proof+jwt`) over `{"nonce": <nonce>, "ket_hash": <base64url SHA-256 of
    /// the key-enrollment token>, "iat": <now>}`.
    pub proof: String,
}

/// A registered device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserKeyInfo {
    /// `uk_…`: the `kid`, `iss` and `sub` of the device's assertions.
    pub id: String,
    pub user_id: String,
    pub device_name: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// RFC 7638 thumbprint of the public key.
    pub thumbprint: String,
    /// The public key (public members only, with `kid` and `alg`).
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}
