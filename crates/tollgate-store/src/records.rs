//! Plain records as stored; no behaviour beyond conversions.

use std::fmt;
use std::str::FromStr;

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published in JWKS, not yet signing: verifiers learn it before they need it.
    Next,
    /// The one key of its purpose that signs.
    Active,
    /// No longer signs; published until `publish_until`, then deleted.
    Retired,
}

impl KeyState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "next" => Ok(KeyState::Next),
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

/// A signing key row. The private key is sealed with the master key by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    /// Which kind of token it signs (`access`, later `registry` …).
    pub purpose: String,
    pub alg: String,
    pub state: KeyState,
    pub sealed_private_key: Vec<u8>,
    /// The public JWK as JSON.
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    /// For retired keys: when the last token it could have signed expires.
    pub publish_until: Option<i64>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("publish_until", &self.publish_until)
            .finish_non_exhaustive()
    }
}

/// One atomic key rotation for a purpose.
#[derive(Debug, Clone)]
pub struct KeyRotation {
    pub purpose: String,
    pub now: i64,
    /// The active key the caller saw (None if there was none).
    pub expected_active: Option<String>,
    /// The next key to promote; it must still be `next`.
    pub promote: String,
    /// `publish_until` for the key being retired.
    pub retired_publish_until: i64,
    /// The new next key (state must be `Next`).
    pub new_next: KeyRecord,
}

/// A versioned server secret, sealed with the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecretRecord {
    pub purpose: String,
    pub version: i32,
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

impl fmt::Debug for ServerSecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSecretRecord")
            .field("purpose", &self.purpose)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A keyed hash and the server-secret version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash {
    pub version: i32,
    pub hash: Vec<u8>,
}

/// A service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub secret: SecretHash,
    /// Space-separated allowed scopes.
    pub scope: String,
    /// Allowed audiences, first is default.
    pub audiences: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// The org the service account belongs to; `None` for platform service accounts.
    pub org_id: Option<String>,
}

/// An admin API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRecord {
    pub id: String,
    pub label: String,
    pub secret: SecretHash,
    pub created_at: i64,
}

/// One audit event. Never holds a secret, token or PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    /// Who acted: `admin:<id>`, `client:<id>`, `system`.
    pub actor: String,
    /// What was done, e.g. `token.issue`, `client.create`, `key.rotate`.
    pub action: String,
    /// What it was done to: a client id, a kid, a jti.
    pub target: Option<String>,
    /// `success` or `denied`.
    pub outcome: String,
    /// The reason code of a denial.
    pub reason: Option<String>,
    /// Extra facts as a JSON object.
    pub detail: String,
    /// The org the event concerns, if any.
    pub org_id: Option<String>,
    /// The credential acted with or on: a token's `jti` or a certificate serial.
    pub credential_id: Option<String>,
    /// The `x-request-id` of the HTTP request that caused the event.
    pub request_id: Option<String>,
}

/// A place in the audit hash chain: the chain sequence number and the hash there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPosition {
    pub seq: i64,
    pub hash: [u8; 32],
}

/// What the caller's link function of [`crate::Audit::append_audit`] hashes: the event, its
/// chain sequence number and the hash of its predecessor (all zero for the first event).
#[derive(Debug, Clone, Copy)]
pub struct ChainInput<'a> {
    pub seq: i64,
    pub prev_hash: &'a [u8; 32],
    pub event: &'a AuditRecord,
}

/// An audit event as stored, with its place in the table and in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    /// Position in the table, increasing with every append; the pagination cursor.
    pub seq: i64,
    /// Position in the hash chain; `None` for events written before the chain existed.
    pub chain_seq: Option<i64>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
    pub event: AuditRecord,
}

/// Which audit events to read. Every filter is optional; results are newest first unless
/// `oldest_first`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub org_id: Option<String>,
    pub actor: Option<String>,
    /// An exact action, or, ending with `.` (`token.`), every action with that prefix.
    pub action: Option<String>,
    /// Events at or after this Unix time.
    pub since: Option<i64>,
    /// Events before this Unix time (exclusive).
    pub until: Option<i64>,
    /// Events with `seq` below this (the cursor of newest-first pages).
    pub before: Option<i64>,
    /// Events with `seq` above this (the cursor of oldest-first pages).
    pub after: Option<i64>,
    pub oldest_first: bool,
    /// At most this many events.
    pub limit: u32,
}

/// An upstream issuer created through the admin API; `spec` is its JSON specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRecord {
    pub name: String,
    pub spec: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub email: Option<String>,
    /// Incremented on logout-everywhere, disable and role changes; tokens carrying an older
    /// value are refused.
    pub user_ver: i64,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// When an invite to this address was redeemed by the user's identity.
    pub email_verified_at: Option<i64>,
}

/// An upstream identity linked to a user: the issuer's exact `iss` and the `sub` it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub iss: String,
    pub sub: String,
    pub user_id: String,
    pub created_at: i64,
}

/// A user session: one refresh token family, with what its access tokens carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    /// The user's version when the session began; a newer one ends the session.
    pub user_ver: i64,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    /// The upstream subject as JSON (claim `upstream` of the access tokens).
    pub upstream: String,
    pub created_at: i64,
    /// Absolute end of the session.
    pub expires_at: i64,
    pub last_used_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The org the session's tokens are for (its roles are looked up on each refresh).
    pub org_id: Option<String>,
}

/// A refresh token of a session, by its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub session_id: String,
    pub created_at: i64,
    /// When it was exchanged for its successor; presenting it again is reuse.
    pub used_at: Option<i64>,
}

/// An org (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    /// `org_…`
    pub id: String,
    /// Unique, URL-safe; usable wherever an org id is.
    pub name: String,
    pub display_name: Option<String>,
    /// Issuer names allowed to sign in to the org; `None` = every enabled issuer.
    pub issuers: Option<Vec<String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's membership of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub org_id: String,
    pub user_id: String,
    /// Role names: built-in or the org's custom roles.
    pub roles: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A custom role of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub org_id: String,
    pub name: String,
    pub description: Option<String>,
    /// Grants: permissions, `prefix:*` or `*`.
    pub permissions: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An upstream org bound to a tollgate org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalOrgRecord {
    pub iss: String,
    pub external_id: String,
    pub org_id: String,
    pub created_at: i64,
}

/// What a membership change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Done; the user's new `user_ver` (their older access tokens are refused; their
    /// sessions continue and get the new roles on the next refresh).
    Done { user_ver: i64 },
    /// Refused: the org would have no owner left. Nothing was written.
    LastOwner,
    /// The org, the user or (for removals) the membership does not exist.
    NotFound,
}

/// A registry pull credential: a password limited to pulling one repository until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCredentialRecord {
    /// `tgpc_…`, also the username.
    pub id: String,
    pub secret: SecretHash,
    pub repository: String,
    pub org_id: String,
    /// The API key (or admin) that minted it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// An internal service's API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// `tgak_…`
    pub id: String,
    pub name: String,
    pub secret: SecretHash,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A trust policy: which CI workloads of an org may get which credentials. The store keeps
/// the definition as the API's JSON (`spec`); the server validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicyRecord {
    pub org_id: String,
    pub name: String,
    /// The configured name of the workload issuer it applies to.
    pub issuer: String,
    pub spec: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A build session (seed 003): a CI job's or a developer's declared build, limited in
/// number per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSessionRecord {
    pub id: String,
    pub org_id: Option<String>,
    /// Whose quota it counts against: `ci:<issuer>:<repository>` or `user:<id>`.
    pub owner: String,
    /// The credential's subject that opened it.
    pub created_by: String,
    pub description: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub closed_at: Option<i64>,
    pub closed_reason: Option<String>,
}

/// What opening a build session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSessionOpen {
    Opened,
    /// The owner already has this many active sessions (the limit); nothing was written.
    LimitReached {
        active: u64,
    },
}

/// A device key: a public key a user registered (with proof of possession) for one of
/// their devices, which authenticates with RFC 7523 JWT assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeyRecord {
    /// `uk_…`: the `kid` (and `iss`, `sub`) of the device's assertions.
    pub id: String,
    pub user_id: String,
    pub device_name: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// The public JWK (public members only), JSON.
    pub public_jwk: String,
    /// RFC 7638 thumbprint; unique among all keys, revoked ones included.
    pub thumbprint: String,
    /// The scope of the sign-in that enrolled the key (bounds its tokens when that sign-in
    /// had no upstream issuer).
    pub scope: String,
    /// The upstream subject of the enrolling sign-in, JSON (`null` when none).
    pub upstream: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What registering a device key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKeyCreate {
    Created,
    /// The user already has this many active keys (the limit); nothing was written.
    LimitReached {
        active: u64,
    },
}

/// A short-lived document with its version, for compare-and-swap updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedDoc {
    pub ver: i64,
    pub doc: String,
}

/// An invite of an email address into an org with roles; the token is kept only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// `inv_…`
    pub id: String,
    pub org_id: String,
    /// As entered by the inviter; compared case-insensitively.
    pub email: String,
    pub roles: Vec<String>,
    pub secret: SecretHash,
    /// Who created it (a user id or another principal).
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    /// The user who redeemed it.
    pub redeemed_by: Option<String>,
    pub revoked_at: Option<i64>,
}

/// A key of the internal CA (`root` or `issuing`), sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKeyRecord {
    pub role: String,
    pub common_name: String,
    /// The JOSE name of the key's algorithm (`ES256`).
    pub alg: String,
    pub sealed_key: Vec<u8>,
    pub cert_pem: String,
    pub created_at: i64,
}

/// What a service account's server certificates may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRulesRecord {
    pub client_id: String,
    /// `host`, `*.zone` or `**.zone`, as validated by the server.
    pub dns_patterns: Vec<String>,
    /// IP addresses allowed as SANs.
    pub ip_addresses: Vec<String>,
    pub updated_at: i64,
}
