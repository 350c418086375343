//! Where tollgate keeps state: small capability traits and their backends.
//!
//! [`Store`] is the sum of the capability traits ([`SigningKeys`], [`Clients`], …). Each
//! backend implements all of them with the same SQL (SQLite and PostgreSQL accept the
//! same dialect for everything here), with its own migrations, and is checked by the one
//! contract suite in `tests/contract.rs`. Timestamps are Unix seconds (`i64`).
//!
//! This crate knows nothing about HTTP, tokens or crypto: it stores bytes and strings.

mod rate_limits;
mod records;
mod redis_ephemeral;
mod sql;
mod sql_audit;
#[cfg(feature = "test-support")]
pub mod testing;

pub use rate_limits::{MemoryRateLimits, RateLimits};
pub use records::*;
pub use redis_ephemeral::RedisEphemeral;

use async_trait::async_trait;
use std::sync::Arc;

/// A storage failure. Callers map `Unavailable` to 503 and `Conflict` to 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed while executing; retrying may help.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A uniqueness rule or an expected precondition did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data does not have the shape this version expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A value the database cannot store (PostgreSQL refuses NUL characters in text). The
    /// caller sent it; answer 400.
    #[error("a value cannot be stored: {0}")]
    InvalidInput(String),
    /// Opening the database or applying migrations failed.
    #[error("cannot open database: {0}")]
    Open(String),
    /// Redis could not be reached or failed; retrying may help.
    #[error("redis unavailable: {0}")]
    Redis(#[source] redis::RedisError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            // 22021 character_not_in_repertoire, 22P05 untranslatable_character: e.g. NUL in text.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                StoreError::InvalidInput(db.message().to_owned())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::ColumnNotFound(_) | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Unavailable(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Liveness of the backing database.
#[async_trait]
pub trait Health {
    /// A round trip to the database.
    async fn ping(&self) -> Result<()>;
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    fn backend_name(&self) -> &'static str;
    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

/// Signing keys, sealed at rest, with their publication lifecycle.
#[async_trait]
pub trait SigningKeys {
    /// Every stored key of every purpose (published or not yet deleted).
    async fn list_keys(&self) -> Result<Vec<KeyRecord>>;
    /// Inserts a key. At most one `active` and one `next` key per purpose: a second is a
    /// `Conflict` (this is what makes first start safe when replicas race).
    async fn insert_key(&self, key: &KeyRecord) -> Result<()>;
    /// Atomically retires the active key, promotes the next key and inserts a new next key.
    /// `Conflict` if the active or next key is no longer the one the caller saw.
    async fn rotate_keys(&self, rotation: &KeyRotation) -> Result<()>;
    /// Retires a key that is `next` or already `retired`, with a new `publish_until`.
    /// Returns false if no such key is in one of those states.
    async fn retire_key(&self, kid: &str, now: i64, publish_until: i64) -> Result<bool>;
    /// Deletes retired keys whose `publish_until` has passed; returns how many.
    async fn delete_expired_keys(&self, now: i64) -> Result<u64>;
}

/// Versioned server secrets (e.g. the HMAC secret for stored secret hashes), sealed at rest.
#[async_trait]
pub trait ServerSecrets {
    async fn list_server_secrets(&self, purpose: &str) -> Result<Vec<ServerSecretRecord>>;
    /// `Conflict` if that purpose and version exist already.
    async fn insert_server_secret(&self, secret: &ServerSecretRecord) -> Result<()>;
}

/// Service accounts (OAuth clients).
#[async_trait]
pub trait Clients {
    /// `Conflict` if the id or the name is taken.
    async fn create_client(&self, client: &ClientRecord) -> Result<()>;
    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
    async fn list_clients(&self) -> Result<Vec<ClientRecord>>;
    /// Replaces the secret hash only if the stored one is still `(old_version, old_hash)`;
    /// used to re-hash under a newer server secret, and to rotate the secret.
    async fn replace_client_secret(
        &self,
        client_id: &str,
        old: &SecretHash,
        new: &SecretHash,
    ) -> Result<bool>;
    /// An org's service accounts.
    async fn clients_of_org(&self, org_id: &str) -> Result<Vec<ClientRecord>>;
    /// Disables every enabled service account of an org; the ids it disabled.
    async fn disable_org_clients(&self, org_id: &str, now: i64) -> Result<Vec<String>>;
    /// Sets or clears `disabled_at`; false if the client does not exist.
    async fn set_client_disabled(&self, client_id: &str, disabled_at: Option<i64>) -> Result<bool>;
    async fn delete_client(&self, client_id: &str) -> Result<bool>;
}

/// Admin API bearer tokens, stored as keyed hashes.
#[async_trait]
pub trait AdminTokens {
    async fn insert_admin_token(&self, token: &AdminTokenRecord) -> Result<()>;
    async fn find_admin_token(&self, hash: &SecretHash) -> Result<Option<AdminTokenRecord>>;
    async fn count_admin_tokens(&self) -> Result<u64>;
}

/// Upstream issuers managed through the admin API.
#[async_trait]
pub trait Issuers {
    async fn list_issuers(&self) -> Result<Vec<IssuerRecord>>;
    /// `Conflict` if the name is taken.
    async fn create_issuer(&self, issuer: &IssuerRecord) -> Result<()>;
    /// Replaces spec and `updated_at`; false if there is no such issuer.
    async fn update_issuer(&self, issuer: &IssuerRecord) -> Result<bool>;
    async fn delete_issuer(&self, name: &str) -> Result<bool>;
}

/// Local users and their linked upstream identities.
#[async_trait]
pub trait Users {
    /// The user an upstream identity is linked to.
    async fn user_by_identity(&self, iss: &str, sub: &str) -> Result<Option<UserRecord>>;
    /// Creates a user linked to `identities`, in one transaction. `Conflict` (and nothing
    /// written) if any identity is linked already (e.g. another request registered it first).
    async fn create_user(&self, user: &UserRecord, identities: &[IdentityRecord]) -> Result<()>;
    /// Links another identity to an existing user. `Conflict` if it is linked already.
    async fn link_identity(&self, identity: &IdentityRecord) -> Result<()>;
    async fn get_user(&self, id: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>>;
    /// Increments `user_ver` (invalidating every token issued before); the new value, or
    /// `None` if there is no such user.
    async fn bump_user_ver(&self, id: &str) -> Result<Option<i64>>;
    /// Sets or clears `disabled_at` and bumps `user_ver`; false if there is no such user.
    async fn set_user_disabled(&self, id: &str, disabled_at: Option<i64>) -> Result<bool>;
}

/// User sessions and their rotating refresh tokens.
#[async_trait]
pub trait Sessions {
    /// Creates a session with its first refresh token, in one transaction.
    async fn create_session(&self, session: &SessionRecord, first: &SecretHash) -> Result<()>;
    /// The refresh token with this hash and its session.
    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<(RefreshRecord, SessionRecord)>>;
    /// Marks `old` used and stores `new` in the same session, atomically and only if `old`
    /// was unused and the session is neither revoked nor of another `user_ver`: of
    /// concurrent rotations of one token exactly one returns true, and none once the
    /// session has been revoked (the session row is locked first, so a revocation and a
    /// rotation serialize).
    async fn rotate_refresh(
        &self,
        session_id: &str,
        user_ver: i64,
        old: &SecretHash,
        new: &SecretHash,
        now: i64,
    ) -> Result<bool>;
    /// Revokes a session; false if it does not exist or was revoked already.
    async fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool>;
    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// The sessions for an org, newest first.
    async fn sessions_of_org(&self, org_id: &str) -> Result<Vec<SessionRecord>>;
    /// A user's sessions, newest first.
    async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>>;
}

/// Orgs (tenants), their members, custom roles and bound upstream orgs.
#[async_trait]
pub trait Orgs {
    /// Creates an org, with its first member (the owner) if given, in one transaction.
    /// `Conflict` if the name is taken.
    async fn create_org(&self, org: &OrgRecord, first_member: Option<&MembershipRecord>) -> Result<()>;
    /// An org by id or by name.
    async fn find_org(&self, id_or_name: &str) -> Result<Option<OrgRecord>>;
    async fn list_orgs(&self) -> Result<Vec<OrgRecord>>;
    /// Replaces display name and allowed issuers; false if there is no such org.
    async fn update_org(&self, org: &OrgRecord) -> Result<bool>;

    /// Binds an upstream org (`iss`, external id) to an org. `Conflict` if bound already.
    async fn bind_external_org(&self, binding: &ExternalOrgRecord) -> Result<()>;
    async fn unbind_external_org(&self, org_id: &str, iss: &str, external_id: &str) -> Result<bool>;
    async fn org_by_external(&self, iss: &str, external_id: &str) -> Result<Option<OrgRecord>>;
    async fn external_orgs_of(&self, org_id: &str) -> Result<Vec<ExternalOrgRecord>>;

    async fn get_membership(&self, org_id: &str, user_id: &str) -> Result<Option<MembershipRecord>>;
    /// A user's memberships, oldest first.
    async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRecord>>;
    /// An org's members, oldest first.
    async fn members_of(&self, org_id: &str) -> Result<Vec<MembershipRecord>>;
    /// Adds a member or replaces their roles, bumping their `user_ver` and carrying their
    /// live sessions over to it, in one transaction serialized per org. Refused with
    /// [`MembershipChange::LastOwner`] (nothing written) if the org would lose its last owner.
    async fn set_membership(&self, m: &MembershipRecord) -> Result<MembershipChange>;
    /// Removes a member, with the same rules as [`Orgs::set_membership`].
    async fn remove_membership(&self, org_id: &str, user_id: &str, now: i64) -> Result<MembershipChange>;

    async fn list_roles(&self, org_id: &str) -> Result<Vec<RoleRecord>>;
    async fn get_role(&self, org_id: &str, name: &str) -> Result<Option<RoleRecord>>;
    /// Creates or replaces a custom role.
    async fn put_role(&self, role: &RoleRecord) -> Result<()>;
    /// Deletes a custom role; `Conflict` (nothing written) while a member holds it.
    async fn delete_role(&self, org_id: &str, name: &str) -> Result<bool>;
}

/// Registry pull credentials and internal API keys, by keyed hash.
#[async_trait]
pub trait RegistryCredentials {
    async fn insert_pull_credential(&self, c: &PullCredentialRecord) -> Result<()>;
    async fn get_pull_credential(&self, id: &str) -> Result<Option<PullCredentialRecord>>;
    /// Revokes a credential; false if unknown or revoked already.
    async fn revoke_pull_credential(&self, id: &str, now: i64) -> Result<bool>;
    /// Deletes credentials that expired before `before`; how many.
    async fn purge_expired_pull_credentials(&self, before: i64) -> Result<u64>;

    /// `Conflict` if the name is taken.
    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()>;
    async fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key; false if unknown or revoked already.
    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool>;
}

/// The `jti` denylist of revoked tokens; entries go when the token would have expired.
#[async_trait]
pub trait Revocations {
    /// Idempotent: revoking a revoked jti again succeeds.
    async fn revoke_jti(&self, jti: &str, expires_at: i64, revoked_at: i64) -> Result<()>;
    async fn is_revoked(&self, jti: &str) -> Result<bool>;
    async fn purge_expired_revocations(&self, now: i64) -> Result<u64>;
}

/// Trust policies of orgs for CI workloads.
#[async_trait]
pub trait TrustPolicies {
    /// An org's policies, by name.
    async fn trust_policies_of(&self, org_id: &str) -> Result<Vec<TrustPolicyRecord>>;
    /// Every org's policies for one issuer, by org and name.
    async fn trust_policies_for_issuer(&self, issuer: &str) -> Result<Vec<TrustPolicyRecord>>;
    async fn get_trust_policy(&self, org_id: &str, name: &str) -> Result<Option<TrustPolicyRecord>>;
    /// Creates or replaces (keeping `created_at`); true if it was created.
    async fn put_trust_policy(&self, p: &TrustPolicyRecord) -> Result<bool>;
    async fn delete_trust_policy(&self, org_id: &str, name: &str) -> Result<bool>;
}

/// Build sessions, limited per owner.
#[async_trait]
pub trait BuildSessions {
    /// Opens a session unless its owner has `max_active` open, unexpired ones already;
    /// serialized per owner, so concurrent opens never exceed the limit.
    async fn open_build_session(
        &self,
        s: &BuildSessionRecord,
        max_active: u32,
        now: i64,
    ) -> Result<BuildSessionOpen>;
    async fn get_build_session(&self, id: &str) -> Result<Option<BuildSessionRecord>>;
    /// An owner's sessions, newest first.
    async fn build_sessions_of(&self, owner: &str) -> Result<Vec<BuildSessionRecord>>;
    /// An org's sessions, newest first.
    async fn build_sessions_of_org(&self, org_id: &str) -> Result<Vec<BuildSessionRecord>>;
    /// Closes an open session; false if unknown or closed already.
    async fn close_build_session(&self, id: &str, reason: &str, now: i64) -> Result<bool>;
}

/// Device keys of users (public keys that authenticate with RFC 7523 assertions).
#[async_trait]
pub trait UserKeys {
    /// Registers a key unless its user has `max_active` unrevoked keys already; serialized
    /// per user, so concurrent registrations never exceed the limit. `Conflict` (nothing
    /// written) if the id or the thumbprint is taken, or the user does not exist.
    async fn create_user_key(&self, key: &UserKeyRecord, max_active: u32) -> Result<UserKeyCreate>;
    async fn get_user_key(&self, id: &str) -> Result<Option<UserKeyRecord>>;
    /// The key with this thumbprint (revoked or not).
    async fn user_key_by_thumbprint(&self, thumbprint: &str) -> Result<Option<UserKeyRecord>>;
    /// A user's keys, newest first.
    async fn user_keys_of(&self, user_id: &str) -> Result<Vec<UserKeyRecord>>;
    /// Revokes a key and, in the same transaction, the live sessions of its user whose
    /// client id is `session_client_id` (with `reason`): the ids of the sessions it ended,
    /// or `None` if the key does not exist or was revoked already.
    async fn revoke_user_key(
        &self,
        id: &str,
        session_client_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>>;
    /// Records a use of the key.
    async fn touch_user_key(&self, id: &str, now: i64) -> Result<()>;
}

/// The internal CA's keys and certificates (sealed by the caller; the store does no crypto).
#[async_trait]
pub trait CaKeys {
    /// Every stored CA key, by role.
    async fn ca_keys(&self) -> Result<Vec<CaKeyRecord>>;
    /// Stores a set of CA keys in one transaction, unless any role exists: true if stored,
    /// false if another set was there first (that one is kept, whole).
    async fn create_ca_keys(&self, keys: &[CaKeyRecord]) -> Result<bool>;
    /// What a service account's server certificates may name, if anything.
    async fn cert_rules(&self, client_id: &str) -> Result<Option<CertRulesRecord>>;
    /// Sets a service account's rules (replacing them); `Conflict` for an unknown client.
    async fn put_cert_rules(&self, rules: &CertRulesRecord) -> Result<()>;
}

/// Invites into orgs, found by the keyed hash of their token.
#[async_trait]
pub trait Invites {
    /// `Conflict` if the id or the hash is taken, or the org does not exist.
    async fn create_invite(&self, invite: &InviteRecord) -> Result<()>;
    async fn get_invite(&self, id: &str) -> Result<Option<InviteRecord>>;
    async fn find_invite(&self, hash: &SecretHash) -> Result<Option<InviteRecord>>;
    /// An org's invites, newest first.
    async fn invites_of(&self, org_id: &str) -> Result<Vec<InviteRecord>>;
    /// Revokes an invite that is neither redeemed nor revoked; false otherwise.
    async fn revoke_invite(&self, id: &str, now: i64) -> Result<bool>;
    /// Marks the invite redeemed by `user_id` if it is unredeemed, unrevoked and unexpired at
    /// `now`, and in the same transaction records that the user's email was verified at
    /// `now`: of concurrent redemptions exactly one returns true.
    async fn redeem_invite(&self, id: &str, user_id: &str, now: i64) -> Result<bool>;
    /// When the user's email was last verified (`None` if never, or no such user).
    async fn email_verified_at(&self, user_id: &str) -> Result<Option<i64>>;
}

/// Short-lived state: replay caches and small documents with compare-and-swap (publish
/// sessions). Kept in the database, or in Redis when configured, so every replica sees it.
#[async_trait]
pub trait Ephemeral: Send + Sync + std::fmt::Debug {
    /// Records `key` in `namespace` until `expires_at`: true the first time, false while
    /// it is recorded (a replay). Of concurrent calls with one key exactly one gets true.
    async fn first_use(&self, namespace: &str, key: &str, expires_at: i64, now: i64) -> Result<bool>;
    /// Stores a new document (version 1) kept until `keep_until`; `Conflict` if the id exists.
    async fn create_doc(&self, kind: &str, id: &str, doc: &str, keep_until: i64, now: i64) -> Result<()>;
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<VersionedDoc>>;
    /// Replaces the document if its version is still `expected_ver` (and bumps it): of
    /// concurrent replacements from one version exactly one returns true.
    async fn replace_doc(&self, kind: &str, id: &str, expected_ver: i64, doc: &str) -> Result<bool>;
    /// Deletes what is past its time (Redis expires keys itself); how many.
    async fn purge_ephemeral(&self, now: i64) -> Result<u64>;
    /// `sqlite`, `postgres` or `redis`.
    fn ephemeral_backend(&self) -> &'static str;
}

/// The caller's keyed hash of one chain link (the store does no crypto).
pub type ChainLinkFn = dyn Fn(&ChainInput<'_>) -> [u8; 32] + Send + Sync;

/// The append-only audit trail, hash-chained: every event appended here takes the next
/// chain sequence number and stores the hash of its predecessor and its own hash.
#[async_trait]
pub trait Audit {
    /// Appends `event` as the next link of the chain, in one transaction: takes the chain
    /// head (a row lock that serializes concurrent appenders on every backend), stores the
    /// event with `link(seq, prev_hash, event)` as its hash and moves the head to it.
    async fn append_audit(&self, event: &AuditRecord, link: &ChainLinkFn) -> Result<ChainPosition>;
    /// Appends `events` in order, in one transaction (group commit): all or none.
    async fn append_audit_batch(
        &self,
        events: &[AuditRecord],
        link: &ChainLinkFn,
    ) -> Result<Vec<ChainPosition>>;
    /// Events matching `q`, newest first (or oldest first), at most `q.limit`.
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<StoredAudit>>;
    /// Chained events with `chain_seq > after_seq`, in chain order, at most `limit`.
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredAudit>>;
    /// The head of the chain: the last chain sequence number and its hash (0 and all
    /// zeros before the first chained event).
    async fn audit_head(&self) -> Result<ChainPosition>;
}

/// Everything tollgate stores.
pub trait Store:
    Health
    + SigningKeys
    + ServerSecrets
    + Clients
    + AdminTokens
    + Issuers
    + Users
    + Sessions
    + Orgs
    + RegistryCredentials
    + Revocations
    + Audit
    + TrustPolicies
    + BuildSessions
    + UserKeys
    + Invites
    + CaKeys
    + Ephemeral
    + Send
    + Sync
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: Health
        + SigningKeys
        + ServerSecrets
        + Clients
        + AdminTokens
        + Issuers
        + Users
        + Sessions
        + Orgs
        + RegistryCredentials
        + Revocations
        + Audit
        + TrustPolicies
        + BuildSessions
        + UserKeys
        + Invites
        + CaKeys
        + Ephemeral
        + Send
        + Sync
        + std::fmt::Debug
{
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sql::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(sql::PgStore::open(url).await?))
    } else {
        Err(StoreError::Open(format!(
            "database url must start with sqlite:// or postgres://, got `{}`",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
