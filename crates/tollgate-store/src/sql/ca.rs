//! [`CaKeys`] for both SQL backends.

use super::{PgStore, SqliteStore, audiences_from_text as words, audiences_to_text as unwords};
use crate::{CaKeyRecord, CaKeys, CertRulesRecord, Result};
use async_trait::async_trait;
use sqlx::Row as _;

macro_rules! ca_store {
    ($store:ty) => {
        #[async_trait]
        impl CaKeys for $store {
            async fn ca_keys(&self) -> Result<Vec<CaKeyRecord>> {
                let rows = sqlx::query(
                    "SELECT role, common_name, alg, sealed_key, cert_pem, created_at FROM ca_keys ORDER BY role",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(CaKeyRecord {
                            role: r.try_get("role")?,
                            common_name: r.try_get("common_name")?,
                            alg: r.try_get("alg")?,
                            sealed_key: r.try_get("sealed_key")?,
                            cert_pem: r.try_get("cert_pem")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn create_ca_keys(&self, keys: &[CaKeyRecord]) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                for k in keys {
                    let inserted = sqlx::query(
                        "INSERT INTO ca_keys (role, common_name, alg, sealed_key, cert_pem, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (role) DO NOTHING",
                    )
                    .bind(&k.role)
                    .bind(&k.common_name)
                    .bind(&k.alg)
                    .bind(&k.sealed_key)
                    .bind(&k.cert_pem)
                    .bind(k.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        // Another replica stored its set first: keep that one, whole.
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn cert_rules(&self, client_id: &str) -> Result<Option<CertRulesRecord>> {
                let row = sqlx::query(
                    "SELECT client_id, dns_patterns, ip_addresses, updated_at FROM cert_rules WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(CertRulesRecord {
                        client_id: r.try_get("client_id")?,
                        dns_patterns: words(r.try_get::<&str, _>("dns_patterns")?),
                        ip_addresses: words(r.try_get::<&str, _>("ip_addresses")?),
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .transpose()
            }

            async fn put_cert_rules(&self, rules: &CertRulesRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO cert_rules (client_id, dns_patterns, ip_addresses, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (client_id) DO UPDATE SET dns_patterns = excluded.dns_patterns, \
                     ip_addresses = excluded.ip_addresses, updated_at = excluded.updated_at",
                )
                .bind(&rules.client_id)
                .bind(unwords(&rules.dns_patterns))
                .bind(unwords(&rules.ip_addresses))
                .bind(rules.updated_at)
                .execute(&self.pool)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        crate::StoreError::Conflict(format!("no client `{}`", rules.client_id))
                    }
                    _ => e.into(),
                })?;
                Ok(())
            }
        }
    };
}

ca_store!(SqliteStore);
ca_store!(PgStore);
