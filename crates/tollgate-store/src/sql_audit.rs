//! The audit trail on both SQL backends: a hash chain appended under one head-row lock,
//! filtered reads by the table's `seq`, and the chain read back in order for verification.
//!
//! Appending is one transaction that starts with `UPDATE audit_chain_head … RETURNING`:
//! PostgreSQL locks the row until commit and SQLite takes its single write lock, so
//! concurrent appenders (on any number of replicas) queue there and each sees its
//! predecessor's hash. The hash itself comes from the caller's `link` function.

use crate::sql::{PgStore, SqliteStore};
use crate::{
    Audit, AuditQuery, AuditRecord, ChainInput, ChainLinkFn, ChainPosition, Result, StoreError, StoredAudit,
};
use async_trait::async_trait;
use sqlx::Row as _;

const AUDIT_COLUMNS: &str = "seq, id, at, actor, action, target, outcome, reason, detail, org_id, credential_id, \
     request_id, chain_seq, prev_hash, hash";

/// A bound value of a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
}

/// The SELECT for `q` and its arguments, in placeholder order.
fn audit_query_sql(q: &AuditQuery) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1");
    let mut args = Vec::new();
    let mut cond = |sql: &mut String, op: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&format!(" AND {op} ${}", args.len()));
    };
    if let Some(org) = &q.org_id {
        cond(&mut sql, "org_id =", Arg::Text(org.clone()));
    }
    if let Some(actor) = &q.actor {
        cond(&mut sql, "actor =", Arg::Text(actor.clone()));
    }
    if let Some(action) = &q.action {
        match action.strip_suffix('.') {
            // A prefix `a.` is the byte range [`a.`, `a/`): index-friendly and, unlike LIKE,
            // case sensitive on both backends (PostgreSQL's `action` has collation "C").
            Some(stem) => {
                cond(&mut sql, "action >=", Arg::Text(action.clone()));
                cond(&mut sql, "action <", Arg::Text(format!("{stem}/")));
            }
            None => cond(&mut sql, "action =", Arg::Text(action.clone())),
        }
    }
    if let Some(since) = q.since {
        cond(&mut sql, "at >=", Arg::Int(since));
    }
    if let Some(until) = q.until {
        cond(&mut sql, "at <", Arg::Int(until));
    }
    if let Some(before) = q.before {
        cond(&mut sql, "seq <", Arg::Int(before));
    }
    if let Some(after) = q.after {
        cond(&mut sql, "seq >", Arg::Int(after));
    }
    args.push(Arg::Int(i64::from(q.limit)));
    let order = if q.oldest_first { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", args.len()));
    (sql, args)
}

fn head_hash(bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("the audit chain head hash is not 32 bytes".into()))
}

impl SqliteStore {
    /// This process's turn to append (see [`SqliteStore::audit_appends`]).
    async fn append_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.audit_appends.lock().await)
    }
}

impl PgStore {
    /// PostgreSQL queues appenders on the head row's lock, without sleeping: no local turn.
    #[allow(clippy::unused_async)]
    async fn append_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

macro_rules! sql_audit {
    ($store:ty, $row:ty) => {
        impl $store {
            fn audit_from_row(r: &$row) -> Result<StoredAudit> {
                Ok(StoredAudit {
                    seq: r.try_get("seq")?,
                    chain_seq: r.try_get("chain_seq")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                    event: AuditRecord {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor: r.try_get("actor")?,
                        action: r.try_get("action")?,
                        target: r.try_get("target")?,
                        outcome: r.try_get("outcome")?,
                        reason: r.try_get("reason")?,
                        detail: r.try_get("detail")?,
                        org_id: r.try_get("org_id")?,
                        credential_id: r.try_get("credential_id")?,
                        request_id: r.try_get("request_id")?,
                    },
                })
            }
        }

        #[async_trait]
        impl Audit for $store {
            async fn append_audit(&self, e: &AuditRecord, link: &ChainLinkFn) -> Result<ChainPosition> {
                let mut positions = self.append_audit_batch(std::slice::from_ref(e), link).await?;
                positions
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt("an append of one event appended none".into()))
            }

            async fn append_audit_batch(
                &self,
                events: &[AuditRecord],
                link: &ChainLinkFn,
            ) -> Result<Vec<ChainPosition>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let count = i64::try_from(events.len()).map_err(|_| StoreError::InvalidInput("batch too large".into()))?;
                let _turn = self.append_turn().await;
                let mut tx = self.pool.begin().await?;
                // One head update reserves seqs for the whole batch (and locks the head).
                let head = sqlx::query("UPDATE audit_chain_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
                    .bind(count)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
                let last: i64 = head.try_get("seq")?;
                let mut prev = head_hash(head.try_get("hash")?)?;
                let mut positions = Vec::with_capacity(events.len());
                for (seq, e) in (last - count + 1..=last).zip(events) {
                    let hash = link(&ChainInput {
                        seq,
                        prev_hash: &prev,
                        event: e,
                    });
                    sqlx::query(
                        "INSERT INTO audit_events (id, at, actor, action, target, outcome, reason, detail, org_id, \
                         credential_id, request_id, chain_seq, prev_hash, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    )
                    .bind(&e.id)
                    .bind(e.at)
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.target)
                    .bind(&e.outcome)
                    .bind(&e.reason)
                    .bind(&e.detail)
                    .bind(&e.org_id)
                    .bind(&e.credential_id)
                    .bind(&e.request_id)
                    .bind(seq)
                    .bind(&prev[..])
                    .bind(&hash[..])
                    .execute(&mut *tx)
                    .await?;
                    positions.push(ChainPosition { seq, hash });
                    prev = hash;
                }
                sqlx::query("UPDATE audit_chain_head SET hash = $1 WHERE id = 1")
                    .bind(&prev[..])
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(positions)
            }

            async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<StoredAudit>> {
                let (sql, args) = audit_query_sql(q);
                let mut query = sqlx::query(&sql);
                for arg in &args {
                    query = match arg {
                        Arg::Text(s) => query.bind(s.as_str()),
                        Arg::Int(n) => query.bind(*n),
                    };
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter().map(Self::audit_from_row).collect()
            }

            async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredAudit>> {
                let rows = sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::audit_from_row).collect()
            }

            async fn audit_head(&self) -> Result<ChainPosition> {
                let row = sqlx::query("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("the audit chain head row is missing".into()))?;
                Ok(ChainPosition {
                    seq: row.try_get("seq")?,
                    hash: head_hash(row.try_get("hash")?)?,
                })
            }
        }
    };
}

sql_audit!(SqliteStore, sqlx::sqlite::SqliteRow);
sql_audit!(PgStore, sqlx::postgres::PgRow);
