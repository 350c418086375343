//! [`RegistryCredentials`] for both SQL backends.

use super::{PgStore, SqliteStore};
use crate::{ApiKeyRecord, PullCredentialRecord, RegistryCredentials, Result, SecretHash};
use async_trait::async_trait;
use sqlx::Row as _;

const PULL_COLUMNS: &str =
    "id, hash_version, hash, repository, org_id, created_by, created_at, expires_at, revoked_at";
const KEY_COLUMNS: &str = "id, name, hash_version, hash, created_at, revoked_at";

macro_rules! registry_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn pull_from_row(r: &$row) -> Result<PullCredentialRecord> {
                Ok(PullCredentialRecord {
                    id: r.try_get("id")?,
                    secret: SecretHash { version: r.try_get("hash_version")?, hash: r.try_get("hash")? },
                    repository: r.try_get("repository")?,
                    org_id: r.try_get("org_id")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }

            /// Sets `revoked_at` of the row `id` of `table` (one of this module's tables, never
            /// input) unless it is set already.
            async fn revoke_row(&self, table: &'static str, id: &str, now: i64) -> Result<bool> {
                let n = sqlx::query(&format!("UPDATE {table} SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"))
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            fn api_key_from_row(r: &$row) -> Result<ApiKeyRecord> {
                Ok(ApiKeyRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    secret: SecretHash { version: r.try_get("hash_version")?, hash: r.try_get("hash")? },
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }
        }

        #[async_trait]
        impl RegistryCredentials for $store {
            async fn insert_pull_credential(&self, c: &PullCredentialRecord) -> Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO pull_credentials ({PULL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&c.id)
                .bind(c.secret.version)
                .bind(&c.secret.hash)
                .bind(&c.repository)
                .bind(&c.org_id)
                .bind(&c.created_by)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.revoked_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_pull_credential(&self, id: &str) -> Result<Option<PullCredentialRecord>> {
                let row = sqlx::query(&format!("SELECT {PULL_COLUMNS} FROM pull_credentials WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::pull_from_row).transpose()
            }

            async fn revoke_pull_credential(&self, id: &str, now: i64) -> Result<bool> {
                self.revoke_row("pull_credentials", id, now).await
            }

            async fn purge_expired_pull_credentials(&self, before: i64) -> Result<u64> {
                let n = sqlx::query("DELETE FROM pull_credentials WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n)
            }

            async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
                sqlx::query(&format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                    .bind(&k.id)
                    .bind(&k.name)
                    .bind(k.secret.version)
                    .bind(&k.secret.hash)
                    .bind(k.created_at)
                    .bind(k.revoked_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_api_key(&self, h: &SecretHash) -> Result<Option<ApiKeyRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1 AND hash_version = $2"
                ))
                .bind(&h.hash)
                .bind(h.version)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::api_key_from_row).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
                let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::api_key_from_row).collect()
            }

            async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool> {
                self.revoke_row("api_keys", id, now).await
            }
        }
    };
}

registry_store!(SqliteStore, sqlx::sqlite::SqliteRow);
registry_store!(PgStore, sqlx::postgres::PgRow);
