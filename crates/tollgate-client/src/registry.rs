//! The registry token server's administration and the internal pull-credential endpoint.

use crate::{Client, Result, decode, expect_empty, form_encode};
use tollgate_proto::registry::{
    ApiKeyInfo, CreateApiKeyRequest, PullCredential, PullCredentialRequest, RegistryConfigResponse,
    RegistryTokenResponse,
};

impl Client {
    /// `GET /v1/admin/registry/config`: the registry's `auth.token` values and its
    /// `rootcertbundle`.
    pub async fn registry_config(
        &self,
        realm: Option<&str>,
        service: Option<&str>,
    ) -> Result<RegistryConfigResponse> {
        let mut query = Vec::new();
        if let Some(r) = realm {
            query.push(("realm", r));
        }
        if let Some(s) = service {
            query.push(("service", s));
        }
        let req = self
            .admin(self.http.get(self.url("/v1/admin/registry/config")))?
            .query(&query);
        decode(req.send().await?).await
    }

    /// Creates an API key for an internal service; its `key` is shown this once.
    pub async fn create_api_key(&self, name: &str) -> Result<ApiKeyInfo> {
        let body = CreateApiKeyRequest {
            name: name.to_owned(),
        };
        decode(
            self.admin(self.http.post(self.url("/v1/admin/api-keys")))?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        decode(
            self.admin(self.http.get(self.url("/v1/admin/api-keys")))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn revoke_api_key(&self, id: &str) -> Result<()> {
        let url = self.url(&format!("/v1/admin/api-keys/{}/revoke", form_encode(id)));
        expect_empty(self.admin(self.http.post(url))?.send().await?).await
    }

    /// `POST /internal/registry/pull-credentials` with an API key.
    pub async fn pull_credential(
        &self,
        api_key: &str,
        req: &PullCredentialRequest,
    ) -> Result<PullCredential> {
        let url = self.url("/internal/registry/pull-credentials");
        decode(
            self.http
                .post(url)
                .header("x-api-key", api_key)
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn revoke_pull_credential(&self, id: &str) -> Result<()> {
        let url = self.url(&format!(
            "/v1/admin/registry/pull-credentials/{}/revoke",
            form_encode(id)
        ));
        expect_empty(self.admin(self.http.post(url))?.send().await?).await
    }

    /// `GET /v2/token` as a registry client would ask, with HTTP Basic credentials if given.
    pub async fn registry_token(
        &self,
        service: &str,
        scopes: &[&str],
        creds: Option<(&str, &str)>,
    ) -> Result<RegistryTokenResponse> {
        let mut query = vec![("service", service)];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let mut req = self.http.get(self.url("/v2/token")).query(&query);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        decode(req.send().await?).await
    }
}

/// The `auth:` section of a CNCF distribution registry's config.yml for `config`, with the
/// certificate bundle at `bundle_path` (what `tollgate registry config` prints).
#[must_use]
pub fn registry_auth_yaml(config: &RegistryConfigResponse, bundle_path: &str) -> String {
    // JSON strings are YAML double-quoted scalars.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
        q(&config.realm),
        q(&config.service),
        q(&config.issuer),
        q(bundle_path)
    )
}
