//! [`TrustPolicies`], [`BuildSessions`] and [`Ephemeral`] for both SQL backends.

use super::{PgStore, SqliteStore};
use crate::{
    BuildSessionOpen, BuildSessionRecord, BuildSessions, Ephemeral, Result, StoreError, TrustPolicies,
    TrustPolicyRecord, VersionedDoc,
};
use async_trait::async_trait;
use sqlx::Row as _;

const POLICY_COLUMNS: &str = "org_id, name, issuer, spec, created_at, updated_at";
const BUILD_COLUMNS: &str =
    "id, org_id, owner, created_by, description, created_at, expires_at, closed_at, closed_reason";

macro_rules! ci_store {
    ($store:ty, $row:ty, $backend:literal) => {
        impl $store {
            fn policy_from_row(r: &$row) -> Result<TrustPolicyRecord> {
                Ok(TrustPolicyRecord {
                    org_id: r.try_get("org_id")?,
                    name: r.try_get("name")?,
                    issuer: r.try_get("issuer")?,
                    spec: r.try_get("spec")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn build_from_row(r: &$row) -> Result<BuildSessionRecord> {
                Ok(BuildSessionRecord {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    owner: r.try_get("owner")?,
                    created_by: r.try_get("created_by")?,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    closed_at: r.try_get("closed_at")?,
                    closed_reason: r.try_get("closed_reason")?,
                })
            }

            async fn policies_where(&self, column: &'static str, value: &str) -> Result<Vec<TrustPolicyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {POLICY_COLUMNS} FROM trust_policies WHERE {column} = $1 ORDER BY org_id, name"
                ))
                .bind(value)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::policy_from_row).collect()
            }

            async fn builds_where(&self, column: &'static str, value: &str) -> Result<Vec<BuildSessionRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {BUILD_COLUMNS} FROM build_sessions WHERE {column} = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(value)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::build_from_row).collect()
            }
        }

        #[async_trait]
        impl TrustPolicies for $store {
            async fn trust_policies_of(&self, org_id: &str) -> Result<Vec<TrustPolicyRecord>> {
                self.policies_where("org_id", org_id).await
            }

            async fn trust_policies_for_issuer(&self, issuer: &str) -> Result<Vec<TrustPolicyRecord>> {
                self.policies_where("issuer", issuer).await
            }

            async fn get_trust_policy(&self, org_id: &str, name: &str) -> Result<Option<TrustPolicyRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {POLICY_COLUMNS} FROM trust_policies WHERE org_id = $1 AND name = $2"
                ))
                .bind(org_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::policy_from_row).transpose()
            }

            async fn put_trust_policy(&self, p: &TrustPolicyRecord) -> Result<bool> {
                // `created_at` is only written by the insert; an update keeps the stored one.
                let row = sqlx::query(&format!(
                    "INSERT INTO trust_policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (org_id, name) DO UPDATE SET issuer = excluded.issuer, spec = excluded.spec, \
                     updated_at = excluded.updated_at RETURNING created_at"
                ))
                .bind(&p.org_id)
                .bind(&p.name)
                .bind(&p.issuer)
                .bind(&p.spec)
                .bind(p.created_at)
                .bind(p.updated_at)
                .fetch_one(&self.pool)
                .await?;
                let created_at: i64 = row.try_get("created_at")?;
                Ok(created_at == p.created_at)
            }

            async fn delete_trust_policy(&self, org_id: &str, name: &str) -> Result<bool> {
                let n = sqlx::query("DELETE FROM trust_policies WHERE org_id = $1 AND name = $2")
                    .bind(org_id)
                    .bind(name)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }
        }

        #[async_trait]
        impl BuildSessions for $store {
            async fn open_build_session(
                &self,
                s: &BuildSessionRecord,
                max_active: u32,
                now: i64,
            ) -> Result<BuildSessionOpen> {
                let mut tx = self.pool.begin().await?;
                // Writing the owner's row first takes its lock (PostgreSQL) or the database's
                // write lock (SQLite): concurrent opens for one owner count one after another.
                sqlx::query(
                    "INSERT INTO build_owners (owner, updated_at) VALUES ($1, $2) \
                     ON CONFLICT (owner) DO UPDATE SET updated_at = excluded.updated_at",
                )
                .bind(&s.owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let active: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM build_sessions WHERE owner = $1 AND closed_at IS NULL AND expires_at > $2",
                )
                .bind(&s.owner)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                let active = u64::try_from(active).unwrap_or(0);
                if active >= u64::from(max_active) {
                    tx.rollback().await?;
                    return Ok(BuildSessionOpen::LimitReached { active });
                }
                sqlx::query(&format!(
                    "INSERT INTO build_sessions ({BUILD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&s.id)
                .bind(&s.org_id)
                .bind(&s.owner)
                .bind(&s.created_by)
                .bind(&s.description)
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(s.closed_at)
                .bind(&s.closed_reason)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(BuildSessionOpen::Opened)
            }

            async fn get_build_session(&self, id: &str) -> Result<Option<BuildSessionRecord>> {
                let row = sqlx::query(&format!("SELECT {BUILD_COLUMNS} FROM build_sessions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::build_from_row).transpose()
            }

            async fn build_sessions_of(&self, owner: &str) -> Result<Vec<BuildSessionRecord>> {
                self.builds_where("owner", owner).await
            }

            async fn build_sessions_of_org(&self, org_id: &str) -> Result<Vec<BuildSessionRecord>> {
                self.builds_where("org_id", org_id).await
            }

            async fn close_build_session(&self, id: &str, reason: &str, now: i64) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE build_sessions SET closed_at = $1, closed_reason = $2 WHERE id = $3 AND closed_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }
        }

        #[async_trait]
        impl Ephemeral for $store {
            async fn first_use(&self, namespace: &str, key: &str, expires_at: i64, now: i64) -> Result<bool> {
                // A row whose time has passed counts as absent and is taken over.
                let n = sqlx::query(
                    "INSERT INTO replay_keys (namespace, key, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (namespace, key) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE replay_keys.expires_at <= $4",
                )
                .bind(namespace)
                .bind(key)
                .bind(expires_at)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn create_doc(&self, kind: &str, id: &str, doc: &str, keep_until: i64, now: i64) -> Result<()> {
                // A document whose time has passed is replaced; a live one is a conflict.
                let n = sqlx::query(
                    "INSERT INTO ephemeral_docs (kind, id, ver, doc, keep_until) VALUES ($1, $2, 1, $3, $4) \
                     ON CONFLICT (kind, id) DO UPDATE SET ver = 1, doc = excluded.doc, keep_until = excluded.keep_until \
                     WHERE ephemeral_docs.keep_until <= $5",
                )
                .bind(kind)
                .bind(id)
                .bind(doc)
                .bind(keep_until)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 1 {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!("{kind} `{id}` exists")))
                }
            }

            async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<VersionedDoc>> {
                let row = sqlx::query("SELECT ver, doc FROM ephemeral_docs WHERE kind = $1 AND id = $2")
                    .bind(kind)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(VersionedDoc {
                        ver: r.try_get("ver")?,
                        doc: r.try_get("doc")?,
                    })
                })
                .transpose()
            }

            async fn replace_doc(&self, kind: &str, id: &str, expected_ver: i64, doc: &str) -> Result<bool> {
                let n = sqlx::query(
                    "UPDATE ephemeral_docs SET ver = ver + 1, doc = $1 WHERE kind = $2 AND id = $3 AND ver = $4",
                )
                .bind(doc)
                .bind(kind)
                .bind(id)
                .bind(expected_ver)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn purge_ephemeral(&self, now: i64) -> Result<u64> {
                let keys = sqlx::query("DELETE FROM replay_keys WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                let docs = sqlx::query("DELETE FROM ephemeral_docs WHERE keep_until <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(keys + docs)
            }

            fn ephemeral_backend(&self) -> &'static str {
                $backend
            }
        }
    };
}

ci_store!(SqliteStore, sqlx::sqlite::SqliteRow, "sqlite");
ci_store!(PgStore, sqlx::postgres::PgRow, "postgres");
