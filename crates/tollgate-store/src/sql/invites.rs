//! [`Invites`] for both SQL backends (one macro body, like the parent module).

use super::{PgStore, SqliteStore, audiences_from_text as words, audiences_to_text as unwords};
use crate::{InviteRecord, Invites, Result, SecretHash};
use async_trait::async_trait;
use sqlx::Row as _;

const INVITE_COLUMNS: &str = "id, org_id, email, roles, hash_version, hash, created_by, created_at, expires_at, \
                              redeemed_at, redeemed_by, revoked_at";

macro_rules! invites_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn invite_from_row(r: &$row) -> Result<InviteRecord> {
                Ok(InviteRecord {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    email: r.try_get("email")?,
                    roles: words(r.try_get::<&str, _>("roles")?),
                    secret: SecretHash { version: r.try_get("hash_version")?, hash: r.try_get("hash")? },
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    redeemed_at: r.try_get("redeemed_at")?,
                    redeemed_by: r.try_get("redeemed_by")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }
        }

        #[async_trait]
        impl Invites for $store {
            async fn create_invite(&self, i: &InviteRecord) -> Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO invites ({INVITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(&i.id)
                .bind(&i.org_id)
                .bind(&i.email)
                .bind(unwords(&i.roles))
                .bind(i.secret.version)
                .bind(&i.secret.hash)
                .bind(&i.created_by)
                .bind(i.created_at)
                .bind(i.expires_at)
                .bind(i.redeemed_at)
                .bind(&i.redeemed_by)
                .bind(i.revoked_at)
                .execute(&self.pool)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        crate::StoreError::Conflict(format!("org `{}` does not exist", i.org_id))
                    }
                    _ => e.into(),
                })?;
                Ok(())
            }

            async fn get_invite(&self, id: &str) -> Result<Option<InviteRecord>> {
                let row = sqlx::query(&format!("SELECT {INVITE_COLUMNS} FROM invites WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::invite_from_row).transpose()
            }

            async fn find_invite(&self, h: &SecretHash) -> Result<Option<InviteRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {INVITE_COLUMNS} FROM invites WHERE hash = $1 AND hash_version = $2"
                ))
                .bind(&h.hash)
                .bind(h.version)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::invite_from_row).transpose()
            }

            async fn invites_of(&self, org_id: &str) -> Result<Vec<InviteRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {INVITE_COLUMNS} FROM invites WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::invite_from_row).collect()
            }

            async fn revoke_invite(&self, id: &str, now: i64) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND redeemed_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn redeem_invite(&self, id: &str, user_id: &str, now: i64) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE invites SET redeemed_at = $1, redeemed_by = $2 WHERE id = $3 \
                     AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn email_verified_at(&self, user_id: &str) -> Result<Option<i64>> {
                let row = sqlx::query("SELECT email_verified_at FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => r.try_get("email_verified_at")?,
                    None => None,
                })
            }
        }
    };
}

invites_store!(SqliteStore, sqlx::sqlite::SqliteRow);
invites_store!(PgStore, sqlx::postgres::PgRow);
