//! [`CaKeys`] for both SQL backends.

use super::{PgStore, SqliteStore};
use crate::{CaKeyRecord, CaKeys, Result};
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
        }
    };
}

ca_store!(SqliteStore);
ca_store!(PgStore);
