//! [`UserKeys`] (device keys) for both SQL backends.

use super::{PgStore, SqliteStore};
use crate::{Result, StoreError, UserKeyCreate, UserKeyRecord, UserKeys};
use async_trait::async_trait;
use sqlx::Row as _;

const KEY_COLUMNS: &str = "id, user_id, device_name, alg, public_jwk, thumbprint, scope, upstream, created_at, \
     last_used_at, revoked_at";

macro_rules! keys_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn user_key_from_row(r: &$row) -> Result<UserKeyRecord> {
                Ok(UserKeyRecord {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    device_name: r.try_get("device_name")?,
                    alg: r.try_get("alg")?,
                    public_jwk: r.try_get("public_jwk")?,
                    thumbprint: r.try_get("thumbprint")?,
                    scope: r.try_get("scope")?,
                    upstream: r.try_get("upstream")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }

            async fn user_key_where(&self, column: &'static str, value: &str) -> Result<Option<UserKeyRecord>> {
                let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM user_keys WHERE {column} = $1"))
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::user_key_from_row).transpose()
            }
        }

        #[async_trait]
        impl UserKeys for $store {
            async fn create_user_key(&self, key: &UserKeyRecord, max_active: u32) -> Result<UserKeyCreate> {
                let mut tx = self.pool.begin().await?;
                // Writing the user's row first takes its lock (PostgreSQL) or the database's
                // write lock (SQLite): concurrent registrations for one user count one after
                // another.
                let users = sqlx::query("UPDATE users SET disabled_at = disabled_at WHERE id = $1")
                    .bind(&key.user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if users != 1 {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict(format!("no user `{}`", key.user_id)));
                }
                let active: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM user_keys WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(&key.user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                let active = u64::try_from(active).unwrap_or(0);
                if active >= u64::from(max_active) {
                    tx.rollback().await?;
                    return Ok(UserKeyCreate::LimitReached { active });
                }
                sqlx::query(&format!(
                    "INSERT INTO user_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(&key.id)
                .bind(&key.user_id)
                .bind(&key.device_name)
                .bind(&key.alg)
                .bind(&key.public_jwk)
                .bind(&key.thumbprint)
                .bind(&key.scope)
                .bind(&key.upstream)
                .bind(key.created_at)
                .bind(key.last_used_at)
                .bind(key.revoked_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(UserKeyCreate::Created)
            }

            async fn get_user_key(&self, id: &str) -> Result<Option<UserKeyRecord>> {
                self.user_key_where("id", id).await
            }

            async fn user_key_by_thumbprint(&self, thumbprint: &str) -> Result<Option<UserKeyRecord>> {
                self.user_key_where("thumbprint", thumbprint).await
            }

            async fn user_keys_of(&self, user_id: &str) -> Result<Vec<UserKeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM user_keys WHERE user_id = $1 ORDER BY created_at DESC, id"
                ))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::user_key_from_row).collect()
            }

            async fn revoke_user_key(
                &self,
                id: &str,
                session_client_id: &str,
                reason: &str,
                now: i64,
            ) -> Result<Option<Vec<String>>> {
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query(
                    "UPDATE user_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING user_id",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let user_id: String = row.try_get("user_id")?;
                let rows = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
                     WHERE user_id = $3 AND client_id = $4 AND revoked_at IS NULL RETURNING id",
                )
                .bind(now)
                .bind(reason)
                .bind(&user_id)
                .bind(session_client_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut ended = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>("id"))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                ended.sort();
                tx.commit().await?;
                Ok(Some(ended))
            }

            async fn touch_user_key(&self, id: &str, now: i64) -> Result<()> {
                sqlx::query("UPDATE user_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

keys_store!(SqliteStore, sqlx::sqlite::SqliteRow);
keys_store!(PgStore, sqlx::postgres::PgRow);
