//! The SQL backends. SQLite and PostgreSQL run the same statements (`$n` placeholders,
//! `ON CONFLICT`, partial unique indexes), so one macro body implements every trait for
//! both; only connecting and the migrations differ.

mod ca;
mod ci;
mod invites;
mod keys;
mod orgs;
mod registry;

use crate::{
    AdminTokenRecord, AdminTokens, ClientRecord, Clients, Health, IdentityRecord, IssuerRecord, Issuers,
    KeyRecord, KeyRotation, KeyState, RefreshRecord, Result, Revocations, SecretHash, ServerSecretRecord,
    ServerSecrets, SessionRecord, Sessions, SigningKeys, StoreError, UserRecord, Users,
};
use async_trait::async_trait;
use sqlx::Row as _;
use std::str::FromStr as _;
use std::time::Duration;

/// The embedded SQLite backend (default; one file in the data directory).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    /// Audit appends queue here rather than in SQLite's busy handler, which sleeps (1, 2,
    /// 5 … 100 ms) between retries of a locked database: SQLite has one writer anyway.
    pub(crate) audit_appends: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The PostgreSQL backend (for several replicas).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn open_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open(format!("{what}: {e}"))
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_error("invalid sqlite url", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| open_error("cannot open sqlite database", e))?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| open_error("sqlite migration failed", e))?;
        Ok(Self {
            pool,
            audit_appends: std::sync::Arc::default(),
        })
    }
}

impl PgStore {
    pub async fn open(url: &str) -> Result<Self> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let opts = PgConnectOptions::from_str(url).map_err(|e| open_error("invalid postgres url", e))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| open_error("cannot connect to postgres", e))?;
        PG_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| open_error("postgres migration failed", e))?;
        Ok(Self { pool })
    }
}

fn key_state(s: &str) -> Result<KeyState> {
    KeyState::from_str(s).map_err(StoreError::Corrupt)
}

fn audiences_to_text(a: &[String]) -> String {
    a.join(" ")
}

fn audiences_from_text(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

const KEY_COLUMNS: &str = "kid, purpose, alg, state, sealed_private_key, public_jwk, created_at, activated_at, retired_at, publish_until";
fn insert_key_sql() -> String {
    format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
}

const USER_COLUMNS: &str = "id, email, user_ver, created_at, disabled_at, email_verified_at";

const SESSION_COLUMNS: &str = "id, user_id, user_ver, client_id, scope, audience, upstream, created_at, expires_at, \
     last_used_at, revoked_at, revoked_reason, org_id";

const CLIENT_COLUMNS: &str =
    "client_id, name, secret_version, secret_hash, scope, audiences, created_at, disabled_at, org_id";

macro_rules! sql_store {
    ($store:ty, $db:ty, $row:ty, $name:literal) => {
        impl $store {
            fn insert_key_query<'q>(
                sql: &'q str,
                k: &'q KeyRecord,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                sqlx::query(sql)
                    .bind(&k.kid)
                    .bind(&k.purpose)
                    .bind(&k.alg)
                    .bind(k.state.as_str())
                    .bind(&k.sealed_private_key)
                    .bind(&k.public_jwk)
                    .bind(k.created_at)
                    .bind(k.activated_at)
                    .bind(k.retired_at)
                    .bind(k.publish_until)
            }

            fn key_from_row(r: &$row) -> Result<KeyRecord> {
                Ok(KeyRecord {
                    kid: r.try_get("kid")?,
                    purpose: r.try_get("purpose")?,
                    alg: r.try_get("alg")?,
                    state: key_state(r.try_get::<&str, _>("state")?)?,
                    sealed_private_key: r.try_get("sealed_private_key")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    activated_at: r.try_get("activated_at")?,
                    retired_at: r.try_get("retired_at")?,
                    publish_until: r.try_get("publish_until")?,
                })
            }

            fn user_from_row(r: &$row) -> Result<UserRecord> {
                Ok(UserRecord {
                    id: r.try_get("id")?,
                    email: r.try_get("email")?,
                    user_ver: r.try_get("user_ver")?,
                    created_at: r.try_get("created_at")?,
                    disabled_at: r.try_get("disabled_at")?,
                    email_verified_at: r.try_get("email_verified_at")?,
                })
            }

            fn session_from_row(r: &$row) -> Result<SessionRecord> {
                Ok(SessionRecord {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    user_ver: r.try_get("user_ver")?,
                    client_id: r.try_get("client_id")?,
                    scope: r.try_get("scope")?,
                    audience: r.try_get("audience")?,
                    upstream: r.try_get("upstream")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    revoked_reason: r.try_get("revoked_reason")?,
                    org_id: r.try_get("org_id")?,
                })
            }

            fn client_from_row(r: &$row) -> Result<ClientRecord> {
                Ok(ClientRecord {
                    client_id: r.try_get("client_id")?,
                    name: r.try_get("name")?,
                    secret: SecretHash { version: r.try_get("secret_version")?, hash: r.try_get("secret_hash")? },
                    scope: r.try_get("scope")?,
                    audiences: audiences_from_text(r.try_get::<&str, _>("audiences")?),
                    created_at: r.try_get("created_at")?,
                    disabled_at: r.try_get("disabled_at")?,
                    org_id: r.try_get("org_id")?,
                })
            }
        }

        #[async_trait]
        impl Health for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
            fn backend_name(&self) -> &'static str {
                $name
            }
            async fn close(&self) {
                self.pool.close().await;
            }
        }

        #[async_trait]
        impl SigningKeys for $store {
            async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn insert_key(&self, k: &KeyRecord) -> Result<()> {
                Self::insert_key_query(&insert_key_sql(), k)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn rotate_keys(&self, r: &KeyRotation) -> Result<()> {
                if r.new_next.state != KeyState::Next || r.new_next.purpose != r.purpose {
                    return Err(StoreError::Conflict("new key must be a `next` key of the same purpose".into()));
                }
                let mut tx = self.pool.begin().await?;
                let retired = match &r.expected_active {
                    Some(kid) => sqlx::query(
                        "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 \
                         WHERE kid = $3 AND purpose = $4 AND state = 'active'",
                    )
                    .bind(r.now)
                    .bind(r.retired_publish_until)
                    .bind(kid)
                    .bind(&r.purpose)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    None => {
                        let n: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM signing_keys WHERE purpose = $1 AND state = 'active'",
                        )
                        .bind(&r.purpose)
                        .fetch_one(&mut *tx)
                        .await?;
                        if n == 0 { 1 } else { 0 }
                    }
                };
                if retired != 1 {
                    return Err(StoreError::Conflict("the active key changed; reload and retry".into()));
                }
                let promoted = sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activated_at = $1 \
                     WHERE kid = $2 AND purpose = $3 AND state = 'next'",
                )
                .bind(r.now)
                .bind(&r.promote)
                .bind(&r.purpose)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if promoted != 1 {
                    return Err(StoreError::Conflict("the next key changed; reload and retry".into()));
                }
                let k = &r.new_next;
                Self::insert_key_query(&insert_key_sql(), k)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn retire_key(&self, kid: &str, now: i64, publish_until: i64) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = COALESCE(retired_at, $1), \
                     publish_until = $2 WHERE kid = $3 AND state IN ('next', 'retired')",
                )
                .bind(now)
                .bind(publish_until)
                .bind(kid)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn delete_expired_keys(&self, now: i64) -> Result<u64> {
                let n = sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND publish_until <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n)
            }
        }

        #[async_trait]
        impl ServerSecrets for $store {
            async fn list_server_secrets(&self, purpose: &str) -> Result<Vec<ServerSecretRecord>> {
                let rows = sqlx::query(
                    "SELECT purpose, version, sealed, created_at FROM server_secrets WHERE purpose = $1 ORDER BY version",
                )
                .bind(purpose)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ServerSecretRecord {
                            purpose: r.try_get("purpose")?,
                            version: r.try_get("version")?,
                            sealed: r.try_get("sealed")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn insert_server_secret(&self, s: &ServerSecretRecord) -> Result<()> {
                sqlx::query("INSERT INTO server_secrets (purpose, version, sealed, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&s.purpose)
                    .bind(s.version)
                    .bind(&s.sealed)
                    .bind(s.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl Clients for $store {
            async fn create_client(&self, c: &ClientRecord) -> Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&c.client_id)
                .bind(&c.name)
                .bind(c.secret.version)
                .bind(&c.secret.hash)
                .bind(&c.scope)
                .bind(audiences_to_text(&c.audiences))
                .bind(c.created_at)
                .bind(c.disabled_at)
                .bind(&c.org_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
                let row = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"))
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::client_from_row).transpose()
            }

            async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
                let rows = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::client_from_row).collect()
            }

            async fn replace_client_secret(&self, client_id: &str, old: &SecretHash, new: &SecretHash) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE clients SET secret_version = $1, secret_hash = $2 \
                     WHERE client_id = $3 AND secret_version = $4 AND secret_hash = $5",
                )
                .bind(new.version)
                .bind(&new.hash)
                .bind(client_id)
                .bind(old.version)
                .bind(&old.hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn clients_of_org(&self, org_id: &str) -> Result<Vec<ClientRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE org_id = $1 ORDER BY created_at, client_id"
                ))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::client_from_row).collect()
            }

            async fn disable_org_clients(&self, org_id: &str, now: i64) -> Result<Vec<String>> {
                let rows = sqlx::query(
                    "UPDATE clients SET disabled_at = $1 WHERE org_id = $2 AND disabled_at IS NULL RETURNING client_id",
                )
                .bind(now)
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| r.try_get("client_id").map_err(StoreError::from)).collect()
            }

            async fn set_client_disabled(&self, client_id: &str, disabled_at: Option<i64>) -> Result<bool> {
                let n = sqlx::query("UPDATE clients SET disabled_at = $1 WHERE client_id = $2")
                    .bind(disabled_at)
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn delete_client(&self, client_id: &str) -> Result<bool> {
                let n = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }
        }

        #[async_trait]
        impl AdminTokens for $store {
            async fn insert_admin_token(&self, t: &AdminTokenRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO admin_tokens (id, label, secret_version, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&t.id)
                .bind(&t.label)
                .bind(t.secret.version)
                .bind(&t.secret.hash)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_admin_token(&self, h: &SecretHash) -> Result<Option<AdminTokenRecord>> {
                let row = sqlx::query(
                    "SELECT id, label, secret_version, secret_hash, created_at FROM admin_tokens \
                     WHERE secret_version = $1 AND secret_hash = $2",
                )
                .bind(h.version)
                .bind(&h.hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(AdminTokenRecord {
                        id: r.try_get("id")?,
                        label: r.try_get("label")?,
                        secret: SecretHash { version: r.try_get("secret_version")?, hash: r.try_get("secret_hash")? },
                        created_at: r.try_get("created_at")?,
                    })
                })
                .transpose()
            }

            async fn count_admin_tokens(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens").fetch_one(&self.pool).await?;
                Ok(count(n))
            }
        }

        #[async_trait]
        impl Issuers for $store {
            async fn list_issuers(&self) -> Result<Vec<IssuerRecord>> {
                let rows = sqlx::query("SELECT name, spec, created_at, updated_at FROM issuers ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(IssuerRecord {
                            name: r.try_get("name")?,
                            spec: r.try_get("spec")?,
                            created_at: r.try_get("created_at")?,
                            updated_at: r.try_get("updated_at")?,
                        })
                    })
                    .collect()
            }

            async fn create_issuer(&self, i: &IssuerRecord) -> Result<()> {
                sqlx::query("INSERT INTO issuers (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4)")
                    .bind(&i.name)
                    .bind(&i.spec)
                    .bind(i.created_at)
                    .bind(i.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn update_issuer(&self, i: &IssuerRecord) -> Result<bool> {
                let n = sqlx::query("UPDATE issuers SET spec = $1, updated_at = $2 WHERE name = $3")
                    .bind(&i.spec)
                    .bind(i.updated_at)
                    .bind(&i.name)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn delete_issuer(&self, name: &str) -> Result<bool> {
                let n = sqlx::query("DELETE FROM issuers WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }
        }

        #[async_trait]
        impl Users for $store {
            async fn user_by_identity(&self, iss: &str, sub: &str) -> Result<Option<UserRecord>> {
                let row = sqlx::query(
                    "SELECT u.id, u.email, u.user_ver, u.created_at, u.disabled_at, u.email_verified_at FROM users u \
                     JOIN identities i ON i.user_id = u.id WHERE i.iss = $1 AND i.sub = $2",
                )
                .bind(iss)
                .bind(sub)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn create_user(&self, user: &UserRecord, identities: &[IdentityRecord]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(user.user_ver)
                    .bind(user.created_at)
                    .bind(user.disabled_at)
                    .bind(user.email_verified_at)
                    .execute(&mut *tx)
                    .await?;
                for i in identities {
                    sqlx::query("INSERT INTO identities (iss, sub, user_id, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(&i.iss)
                        .bind(&i.sub)
                        .bind(&i.user_id)
                        .bind(i.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn link_identity(&self, i: &IdentityRecord) -> Result<()> {
                sqlx::query("INSERT INTO identities (iss, sub, user_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&i.iss)
                    .bind(&i.sub)
                    .bind(&i.user_id)
                    .bind(i.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_user(&self, id: &str) -> Result<Option<UserRecord>> {
                let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn list_users(&self) -> Result<Vec<UserRecord>> {
                let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::user_from_row).collect()
            }

            async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>> {
                let rows = sqlx::query(
                    "SELECT iss, sub, user_id, created_at FROM identities WHERE user_id = $1 ORDER BY created_at, iss, sub",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(IdentityRecord {
                            iss: r.try_get("iss")?,
                            sub: r.try_get("sub")?,
                            user_id: r.try_get("user_id")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn bump_user_ver(&self, id: &str) -> Result<Option<i64>> {
                let row = sqlx::query("UPDATE users SET user_ver = user_ver + 1 WHERE id = $1 RETURNING user_ver")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| r.try_get("user_ver").map_err(StoreError::from)).transpose()
            }

            async fn set_user_disabled(&self, id: &str, disabled_at: Option<i64>) -> Result<bool> {
                let n = sqlx::query("UPDATE users SET disabled_at = $1, user_ver = user_ver + 1 WHERE id = $2")
                    .bind(disabled_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }
        }

        #[async_trait]
        impl Sessions for $store {
            async fn create_session(&self, x: &SessionRecord, first: &SecretHash) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(&x.id)
                .bind(&x.user_id)
                .bind(x.user_ver)
                .bind(&x.client_id)
                .bind(&x.scope)
                .bind(&x.audience)
                .bind(&x.upstream)
                .bind(x.created_at)
                .bind(x.expires_at)
                .bind(x.last_used_at)
                .bind(x.revoked_at)
                .bind(&x.revoked_reason)
                .bind(&x.org_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO refresh_tokens (hash, hash_version, session_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&first.hash)
                    .bind(first.version)
                    .bind(&x.id)
                    .bind(x.created_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_refresh(&self, h: &SecretHash) -> Result<Option<(RefreshRecord, SessionRecord)>> {
                let row = sqlx::query(
                    "SELECT session_id, created_at, used_at FROM refresh_tokens WHERE hash = $1 AND hash_version = $2",
                )
                .bind(&h.hash)
                .bind(h.version)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                let refresh = RefreshRecord {
                    session_id: r.try_get("session_id")?,
                    created_at: r.try_get("created_at")?,
                    used_at: r.try_get("used_at")?,
                };
                let session = self.get_session(&refresh.session_id).await?;
                Ok(session.map(|s| (refresh, s)))
            }

            async fn rotate_refresh(
                &self,
                session_id: &str,
                user_ver: i64,
                old: &SecretHash,
                new: &SecretHash,
                now: i64,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Session first: locks its row, so a concurrent revocation either lands
                // before (and this matches nothing) or waits for this commit.
                let live = sqlx::query(
                    "UPDATE sessions SET last_used_at = $1 WHERE id = $2 AND revoked_at IS NULL AND user_ver = $3",
                )
                .bind(now)
                .bind(session_id)
                .bind(user_ver)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let spent = live
                    && sqlx::query(
                        "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND hash_version = $3 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(&old.hash)
                    .bind(old.version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                if !spent {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("INSERT INTO refresh_tokens (hash, hash_version, session_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&new.hash)
                    .bind(new.version)
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>> {
                let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::session_from_row).transpose()
            }

            async fn sessions_of_org(&self, org_id: &str) -> Result<Vec<SessionRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE org_id = $1 ORDER BY created_at DESC, id"
                ))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::session_from_row).collect()
            }

            async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id"
                ))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::session_from_row).collect()
            }
        }

        #[async_trait]
        impl Revocations for $store {
            async fn revoke_jti(&self, jti: &str, expires_at: i64, revoked_at: i64) -> Result<()> {
                sqlx::query(
                    "INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .bind(revoked_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn is_revoked(&self, jti: &str) -> Result<bool> {
                let row = sqlx::query("SELECT 1 FROM revoked_jtis WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn purge_expired_revocations(&self, now: i64) -> Result<u64> {
                let n = sqlx::query("DELETE FROM revoked_jtis WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n)
            }
        }
    };
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "sqlite");
sql_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, "postgres");
