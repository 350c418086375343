//! Certificates (`POST /v1/certificates/sign`, `GET /v1/ca/chain`).

use crate::{Client, Result, decode, refusal};
use tollgate_proto::certs::{
    CertificateRules, IssuedCertificate, SignCertificateRequest, SignServerCertificateRequest,
};

impl Client {
    /// `POST /v1/certificates/sign` with the user (or CI job) token: a client certificate
    /// for the key of `csr` (PEM), for at most `ttl` (`"30m"`).
    pub async fn sign_client_certificate(&self, csr: &str, ttl: Option<&str>) -> Result<IssuedCertificate> {
        let req = SignCertificateRequest {
            csr: csr.to_owned(),
            ttl: ttl.map(str::to_owned),
        };
        decode(
            self.user(self.http.post(self.url("/v1/certificates/sign")))?
                .json(&req)
                .send()
                .await?,
        )
        .await
    }

    /// `POST /v1/certificates/server` with a service account's token (as the user token):
    /// a server certificate for the names of `csr`.
    pub async fn sign_server_certificate(&self, csr: &str, ttl: Option<&str>) -> Result<IssuedCertificate> {
        let req = SignServerCertificateRequest {
            csr: csr.to_owned(),
            ttl: ttl.map(str::to_owned),
        };
        decode(
            self.user(self.http.post(self.url("/v1/certificates/server")))?
                .json(&req)
                .send()
                .await?,
        )
        .await
    }

    /// `PUT /v1/admin/clients/{client_id}/certificate-rules` (admin token).
    pub async fn set_certificate_rules(
        &self,
        client_id: &str,
        rules: &CertificateRules,
    ) -> Result<CertificateRules> {
        let path = format!(
            "/v1/admin/clients/{}/certificate-rules",
            crate::form_encode(client_id)
        );
        decode(
            self.admin(self.http.put(self.url(&path)))?
                .json(rules)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/ca/chain`: the issuing CA and the root, PEM.
    pub async fn ca_chain(&self) -> Result<String> {
        let resp = self.http.get(self.url("/v1/ca/chain")).send().await?;
        let status = resp.status();
        if status.is_success() {
            Ok(resp.text().await?)
        } else {
            Err(refusal(status, resp).await)
        }
    }
}
