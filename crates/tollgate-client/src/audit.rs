//! The audit trail: filtered pages, the JSON-lines export and chain verification.

use crate::{Client, Result, decode, refusal};
use tollgate_proto::audit::{AuditEvent, AuditFilter, AuditPage, AuditVerification};

impl Client {
    /// `GET /v1/admin/audit`: one page of events matching `filter`, newest first. Pass the
    /// page's `next_cursor` as `filter.cursor` for the next one.
    pub async fn audit_page(&self, filter: &AuditFilter) -> Result<AuditPage> {
        let req = self
            .admin(self.http.get(self.url("/v1/admin/audit")))?
            .query(filter);
        decode(req.send().await?).await
    }

    /// The newest `limit` events.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let filter = AuditFilter {
            limit: Some(limit),
            ..AuditFilter::default()
        };
        Ok(self.audit_page(&filter).await?.events)
    }

    /// `GET /v1/admin/audit/export`: every event matching `filter` (its `cursor` and
    /// `limit` do not apply), oldest first, as JSON lines.
    pub async fn audit_export(&self, filter: &AuditFilter) -> Result<String> {
        let resp = self
            .admin(self.http.get(self.url("/v1/admin/audit/export")))?
            .query(filter)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(refusal(status, resp).await);
        }
        Ok(resp.text().await?)
    }

    /// `GET /v1/admin/audit/verify`: walks the audit hash chain.
    pub async fn audit_verify(&self) -> Result<AuditVerification> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/audit/verify")))?
                .send()
                .await?,
        )
        .await
    }
}
