//! `tollgate key add` and `tollgate login --key-file`: a device key of the signed-in user.
//! `key add` enrolls a fresh Ed25519 key with proof of possession (key-enrollment token and
//! nonce from the stored sign-in) and keeps its private key sealed in a file of mode 0600;
//! `login --key-file` signs in with it (an RFC 7523 assertion), no browser needed.

use crate::login::StoreArgs;
use crate::token_store::{self, Login};
use anyhow::Context as _;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use tollgate_client::Client;
use tollgate_core::SigningAlg;
use tollgate_crypto::{SigningKey, device_key};

/// How long an assertion is good for (the server caps it at `device_keys.assertion_max_age`).
const ASSERTION_SECS: i64 = 60;

#[derive(Debug, clap::Args)]
pub struct KeyAddArgs {
    /// A name for this device, shown in `GET /v1/me/keys`.
    #[arg(long)]
    device: String,
    /// Where to keep the private key (default: `device-key.json` next to the token file).
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn key_path(explicit: Option<&Path>, store: &StoreArgs) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_owned()),
        None => Ok(store.store()?.dir()?.join("device-key.json")),
    }
}

/// `tollgate key add`: enrolls a new key for this device as the stored user.
pub async fn add(args: KeyAddArgs) -> anyhow::Result<()> {
    let (session, login) = crate::login::session(&args.store)?;
    let token = session
        .access_token()
        .await
        .context("the stored sign-in no longer works; run `tollgate login`")?;
    let client = Client::new(&login.server)?;
    let enrollment = client
        .clone()
        .with_user_token(token)
        .key_bootstrap(&args.device)
        .await
        .context("cannot start the key enrollment")?;
    let (key, pkcs8) = SigningKey::generate(SigningAlg::EdDSA).context("cannot generate a key")?;
    let proof = device_key::proof(&key, &enrollment.ket, &enrollment.nonce, now())?;
    let registered = client
        .key_register(&enrollment.ket, &device_key::public_jwk(&key), &proof)
        .await
        .context("the server refused the key")?;
    let path = key_path(args.key_file.as_deref(), &args.store)?;
    token_store::save_secret(&path, &login.server, &registered.id, &pkcs8)?;
    eprintln!(
        "enrolled key {} for device `{}`; its private key is in {}",
        registered.id,
        registered.device_name,
        path.display()
    );
    Ok(())
}

/// Signs in with the device key at `path`: an assertion for the token endpoint, then the
/// refresh token kept like `tollgate login` keeps it.
pub async fn login_with_key(path: &Path, store: &StoreArgs) -> anyhow::Result<()> {
    let (server, key_id, pkcs8) =
        token_store::load_secret(path)?.with_context(|| format!("no device key in {}", path.display()))?;
    let key = SigningKey::from_pkcs8(SigningAlg::EdDSA, &pkcs8).context("the device key file is damaged")?;
    let client = Client::new(&server)?;
    // The audience is the token endpoint as the server names itself (its public URL), which
    // may differ from the address this CLI reaches it at.
    let audience = client
        .metadata()
        .await
        .context("cannot read the server's metadata")?
        .token_endpoint;
    let assertion = device_key::assertion(&key, &key_id, &audience, now(), ASSERTION_SECS)?;
    let tokens = client
        .jwt_bearer(&assertion, None, None, None)
        .await
        .context("the server refused the device key")?;
    let refresh = tokens.refresh_token.context(
        "the server gave no refresh token; the enrolling sign-in's issuer has refresh_tokens = false",
    )?;
    store.store()?.save(&Login {
        server: server.clone(),
        client_id: format!("key:{key_id}"),
        refresh_token: SecretString::from(refresh),
    })?;
    let status = client.auth_status(&tokens.access_token).await?;
    eprintln!("signed in as {} with device key {key_id}", status.sub);
    Ok(())
}
