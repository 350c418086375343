//! [`Orgs`] for both SQL backends (one macro body, like the parent module).

use super::{PgStore, SqliteStore, audiences_from_text as words, audiences_to_text as unwords};
use crate::{
    ExternalOrgRecord, MembershipChange, MembershipRecord, OrgRecord, Orgs, Result, RoleRecord, StoreError,
};
use async_trait::async_trait;
use sqlx::Row as _;

const ORG_COLUMNS: &str = "id, name, display_name, issuers, created_at, updated_at";
const MEMBER_COLUMNS: &str = "org_id, user_id, roles, created_at, updated_at";
const ROLE_COLUMNS: &str = "org_id, name, description, permissions, created_at, updated_at";
/// Counts an org's owners (roles are stored space-separated).
const COUNT_OWNERS: &str =
    "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND (' ' || roles || ' ') LIKE '% owner %'";

fn issuers_to_text(issuers: Option<&Vec<String>>) -> Option<String> {
    issuers.map(|i| unwords(i))
}

fn issuers_from_text(s: Option<String>) -> Option<Vec<String>> {
    s.map(|s| words(&s))
}

macro_rules! orgs_store {
    ($store:ty, $db:ty, $row:ty) => {
        impl $store {
            fn org_from_row(r: &$row) -> Result<OrgRecord> {
                Ok(OrgRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    display_name: r.try_get("display_name")?,
                    issuers: issuers_from_text(r.try_get("issuers")?),
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn member_from_row(r: &$row) -> Result<MembershipRecord> {
                Ok(MembershipRecord {
                    org_id: r.try_get("org_id")?,
                    user_id: r.try_get("user_id")?,
                    roles: words(r.try_get::<&str, _>("roles")?),
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn role_from_row(r: &$row) -> Result<RoleRecord> {
                Ok(RoleRecord {
                    org_id: r.try_get("org_id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    permissions: words(r.try_get::<&str, _>("permissions")?),
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn external_from_row(r: &$row) -> Result<ExternalOrgRecord> {
                Ok(ExternalOrgRecord {
                    iss: r.try_get("iss")?,
                    external_id: r.try_get("external_id")?,
                    org_id: r.try_get("org_id")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            /// Runs a membership change: locks the org row (serializing changes per org, so
            /// two concurrent demotions cannot both see the other owner), applies it, refuses
            /// if the org had an owner and would have none, then bumps the user's version and
            /// carries their live sessions over to it.
            async fn change_membership(
                &self,
                org_id: &str,
                user_id: &str,
                now: i64,
                set: Option<&MembershipRecord>,
            ) -> Result<MembershipChange> {
                let mut tx = self.pool.begin().await?;
                let org = sqlx::query("UPDATE orgs SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(org_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let user_exists = sqlx::query("SELECT 1 AS one FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if org != 1 || !user_exists {
                    tx.rollback().await?;
                    return Ok(MembershipChange::NotFound);
                }
                let before: i64 = sqlx::query(COUNT_OWNERS).bind(org_id).fetch_one(&mut *tx).await?.try_get("n")?;
                let changed = match set {
                    Some(m) => sqlx::query(&format!(
                        "INSERT INTO memberships ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (org_id, user_id) DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at"
                    ))
                    .bind(&m.org_id)
                    .bind(&m.user_id)
                    .bind(unwords(&m.roles))
                    .bind(m.created_at)
                    .bind(m.updated_at)
                    .execute(&mut *tx)
                    .await?,
                    None => sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?,
                };
                if changed.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(MembershipChange::NotFound);
                }
                let after: i64 = sqlx::query(COUNT_OWNERS).bind(org_id).fetch_one(&mut *tx).await?.try_get("n")?;
                if before > 0 && after == 0 {
                    tx.rollback().await?;
                    return Ok(MembershipChange::LastOwner);
                }
                let user_ver: i64 =
                    sqlx::query("UPDATE users SET user_ver = user_ver + 1 WHERE id = $1 RETURNING user_ver")
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("user_ver")?;
                sqlx::query(
                    "UPDATE sessions SET user_ver = $1 WHERE user_id = $2 AND user_ver = $3 AND revoked_at IS NULL",
                )
                .bind(user_ver)
                .bind(user_id)
                .bind(user_ver - 1)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(MembershipChange::Done { user_ver })
            }
        }

        #[async_trait]
        impl Orgs for $store {
            async fn create_org(&self, o: &OrgRecord, first: Option<&MembershipRecord>) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&format!("INSERT INTO orgs ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                    .bind(&o.id)
                    .bind(&o.name)
                    .bind(&o.display_name)
                    .bind(issuers_to_text(o.issuers.as_ref()))
                    .bind(o.created_at)
                    .bind(o.updated_at)
                    .execute(&mut *tx)
                    .await?;
                if let Some(m) = first {
                    sqlx::query(&format!("INSERT INTO memberships ({MEMBER_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"))
                        .bind(&m.org_id)
                        .bind(&m.user_id)
                        .bind(unwords(&m.roles))
                        .bind(m.created_at)
                        .bind(m.updated_at)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE users SET user_ver = user_ver + 1 WHERE id = $1")
                        .bind(&m.user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_org(&self, id_or_name: &str) -> Result<Option<OrgRecord>> {
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1 OR name = $1"))
                    .bind(id_or_name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::org_from_row).transpose()
            }

            async fn list_orgs(&self) -> Result<Vec<OrgRecord>> {
                let rows = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::org_from_row).collect()
            }

            async fn update_org(&self, o: &OrgRecord) -> Result<bool> {
                let n = sqlx::query("UPDATE orgs SET display_name = $1, issuers = $2, updated_at = $3 WHERE id = $4")
                    .bind(&o.display_name)
                    .bind(issuers_to_text(o.issuers.as_ref()))
                    .bind(o.updated_at)
                    .bind(&o.id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn bind_external_org(&self, b: &ExternalOrgRecord) -> Result<()> {
                sqlx::query("INSERT INTO org_external_ids (iss, external_id, org_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&b.iss)
                    .bind(&b.external_id)
                    .bind(&b.org_id)
                    .bind(b.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn unbind_external_org(&self, org_id: &str, iss: &str, external_id: &str) -> Result<bool> {
                let n = sqlx::query("DELETE FROM org_external_ids WHERE org_id = $1 AND iss = $2 AND external_id = $3")
                    .bind(org_id)
                    .bind(iss)
                    .bind(external_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn org_by_external(&self, iss: &str, external_id: &str) -> Result<Option<OrgRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {ORG_COLUMNS} FROM orgs WHERE id = \
                     (SELECT org_id FROM org_external_ids WHERE iss = $1 AND external_id = $2)"
                ))
                .bind(iss)
                .bind(external_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::org_from_row).transpose()
            }

            async fn external_orgs_of(&self, org_id: &str) -> Result<Vec<ExternalOrgRecord>> {
                let rows = sqlx::query(
                    "SELECT iss, external_id, org_id, created_at FROM org_external_ids WHERE org_id = $1 \
                     ORDER BY created_at, iss, external_id",
                )
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::external_from_row).collect()
            }

            async fn get_membership(&self, org_id: &str, user_id: &str) -> Result<Option<MembershipRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM memberships WHERE org_id = $1 AND user_id = $2"
                ))
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::member_from_row).transpose()
            }

            async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id"
                ))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::member_from_row).collect()
            }

            async fn members_of(&self, org_id: &str) -> Result<Vec<MembershipRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM memberships WHERE org_id = $1 ORDER BY created_at, user_id"
                ))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::member_from_row).collect()
            }

            async fn set_membership(&self, m: &MembershipRecord) -> Result<MembershipChange> {
                self.change_membership(&m.org_id, &m.user_id, m.updated_at, Some(m)).await
            }

            async fn remove_membership(&self, org_id: &str, user_id: &str, now: i64) -> Result<MembershipChange> {
                self.change_membership(org_id, user_id, now, None).await
            }

            async fn list_roles(&self, org_id: &str) -> Result<Vec<RoleRecord>> {
                let rows = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM org_roles WHERE org_id = $1 ORDER BY name"))
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::role_from_row).collect()
            }

            async fn get_role(&self, org_id: &str, name: &str) -> Result<Option<RoleRecord>> {
                let row = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM org_roles WHERE org_id = $1 AND name = $2"))
                    .bind(org_id)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::role_from_row).transpose()
            }

            async fn put_role(&self, r: &RoleRecord) -> Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO org_roles ({ROLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (org_id, name) DO UPDATE SET description = excluded.description, \
                     permissions = excluded.permissions, updated_at = excluded.updated_at"
                ))
                .bind(&r.org_id)
                .bind(&r.name)
                .bind(&r.description)
                .bind(unwords(&r.permissions))
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_role(&self, org_id: &str, name: &str) -> Result<bool> {
                // One statement: the role goes only if no membership names it at that instant.
                let n = sqlx::query(
                    "DELETE FROM org_roles WHERE org_id = $1 AND name = $2 AND NOT EXISTS \
                     (SELECT 1 FROM memberships WHERE org_id = $1 AND (' ' || roles || ' ') LIKE ('% ' || $2 || ' %'))",
                )
                .bind(org_id)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 1 {
                    return Ok(true);
                }
                match self.get_role(org_id, name).await? {
                    Some(_) => Err(StoreError::Conflict(format!("role `{name}` is held by a member"))),
                    None => Ok(false),
                }
            }
        }
    };
}

orgs_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
orgs_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);
