//! `tollgate registry config` (a CNCF distribution registry's `auth` section and the
//! certificate bundle it trusts), revoking pull credentials, and `tollgate admin api-key`
//! (the keys internal services mint pull credentials with).

use crate::admin::print_json;
use anyhow::Context as _;
use clap::Subcommand;
use std::path::PathBuf;
use tollgate_client::Client;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Print the registry's `auth:` YAML section and write the certificate bundle it refers to.
    Config {
        /// The registry's service name (its token `aud`); default `registry.service`.
        #[arg(long)]
        service: Option<String>,
        /// The token endpoint as the registry's clients reach it; default `<public_url>/v2/token`.
        #[arg(long)]
        realm: Option<String>,
        /// Where to write the certificate bundle (`rootcertbundle`).
        #[arg(long, default_value = "tollgate-registry-bundle.pem")]
        bundle: PathBuf,
    },
    /// Revoke a pull credential before it expires.
    RevokeCredential { id: String },
}

pub async fn run(c: &Client, command: RegistryCommand) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Config {
            service,
            realm,
            bundle,
        } => {
            let config = c
                .registry_config(realm.as_deref(), service.as_deref())
                .await
                .context("cannot read the registry configuration")?;
            std::fs::write(&bundle, &config.rootcertbundle)
                .with_context(|| format!("cannot write {}", bundle.display()))?;
            let path = std::path::absolute(&bundle).unwrap_or(bundle);
            print!(
                "{}",
                tollgate_client::registry_auth_yaml(&config, &path.display().to_string())
            );
            eprintln!(
                "Wrote {} ({} certificate(s)); the registry must read it. Re-run after a registry key rotation.",
                path.display(),
                config.rootcertbundle.matches("BEGIN CERTIFICATE").count()
            );
            Ok(())
        }
        RegistryCommand::RevokeCredential { id } => {
            c.revoke_pull_credential(&id).await?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an internal service (shown once).
    Create { name: String },
    /// List API keys.
    List,
    /// Revoke an API key.
    Revoke { id: String },
}

pub async fn api_keys(c: &Client, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name } => {
            print_json(&c.create_api_key(&name).await.context("cannot create API key")?)?;
            eprintln!("The key is shown only this once.");
            Ok(())
        }
        ApiKeyCommand::List => print_json(&c.list_api_keys().await?),
        ApiKeyCommand::Revoke { id } => {
            c.revoke_api_key(&id).await?;
            println!("revoked {id}");
            Ok(())
        }
    }
}
