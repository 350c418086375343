//! `tollgate cert request`: a key made here (it never leaves this machine), a CSR for it,
//! and the certificate and CA chain tollgate issues for it, written next to each other.
//!
//! `--client` asks as a person (the stored sign-in, refreshed) or as whoever's access token
//! `--token`/`TOLLGATE_TOKEN` holds (a CI job's); `--server` asks as a service account
//! (`--client-id` and `TOLLGATE_CLIENT_SECRET`) for the `--dns`/`--ip` names.

use crate::login::StoreArgs;
use anyhow::{Context as _, bail};
use secrecy::SecretString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tollgate_client::{Client, ClientCredentials};
use tollgate_core::SigningAlg;
use tollgate_crypto::{SigningKey, csr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256.
    P256,
    Ed25519,
    /// RSA 2048.
    Rsa,
}

#[derive(Debug, clap::Args)]
pub struct CertRequestArgs {
    /// A client certificate (TLS client authentication) for you or this CI job.
    #[arg(long, conflicts_with = "server", required_unless_present = "server")]
    client: bool,
    /// A server certificate for a service account, naming `--dns`/`--ip`.
    #[arg(long)]
    server: bool,
    /// DNS names of a server certificate (repeatable; Unicode or punycode).
    #[arg(long, requires = "server")]
    dns: Vec<String>,
    /// IP addresses of a server certificate (repeatable; the account must allow them).
    #[arg(long, requires = "server")]
    ip: Vec<IpAddr>,
    /// The service account of a server certificate (its secret in TOLLGATE_CLIENT_SECRET).
    #[arg(long, requires = "server", env = "TOLLGATE_CLIENT_ID")]
    client_id: Option<String>,
    /// An access token to ask with instead of the stored sign-in (a CI job's token).
    #[arg(
        long,
        env = "TOLLGATE_TOKEN",
        hide_env_values = true,
        conflicts_with = "server"
    )]
    token: Option<String>,
    /// The tollgate server (for `--token` and `--server`; the stored sign-in knows its own).
    #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The key to generate.
    #[arg(long, value_enum, default_value = "p256")]
    key_type: KeyType,
    /// Wanted lifetime (`30m`, `24h`); the server caps it.
    #[arg(long)]
    ttl: Option<String>,
    /// Directory for `<name>.key`, `<name>.crt` and `<name>-chain.pem`.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Base name of the files.
    #[arg(long, default_value = "tollgate")]
    name: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// Writes `bytes` to `path`, readable only by its owner when `private`.
fn write(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write as _;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `tollgate cert request`.
pub async fn request(args: CertRequestArgs) -> anyhow::Result<()> {
    let alg = match args.key_type {
        KeyType::P256 => SigningAlg::ES256,
        KeyType::Ed25519 => SigningAlg::EdDSA,
        KeyType::Rsa => SigningAlg::RS256,
    };
    if args.server && args.dns.is_empty() && args.ip.is_empty() {
        bail!("a server certificate needs at least one --dns name");
    }
    let (key, pkcs8) = SigningKey::generate(alg).context("cannot generate a key")?;
    let dns: Vec<String> = args.dns.clone();
    let csr = csr::request(&key, &args.name, &dns, &args.ip).context("cannot make the CSR")?;
    let ttl = args.ttl.as_deref();
    let issued = if args.server {
        let client_id = args
            .client_id
            .clone()
            .context("--server needs --client-id (or TOLLGATE_CLIENT_ID)")?;
        let secret = std::env::var("TOLLGATE_CLIENT_SECRET")
            .context("set TOLLGATE_CLIENT_SECRET to the service account's secret")?;
        let client = Client::new(&args.url)?;
        let creds = ClientCredentials {
            client_id,
            client_secret: SecretString::from(secret),
        };
        let token = client
            .client_credentials(&creds, Some("certificate:sign:server"), Some("tollgate"))
            .await
            .context("the service account could not get a token")?
            .access_token;
        client
            .with_user_token(token)
            .sign_server_certificate(&csr, ttl)
            .await
            .context("the server certificate was refused")?
    } else if let Some(token) = &args.token {
        Client::new(&args.url)?
            .with_user_token(token.clone())
            .sign_client_certificate(&csr, ttl)
            .await
            .context("the client certificate was refused")?
    } else {
        let (session, login) = crate::login::session(&args.store)?;
        let token = session
            .access_token()
            .await
            .context("the stored sign-in no longer works; run `tollgate login`")?;
        Client::new(&login.server)?
            .with_user_token(token)
            .sign_client_certificate(&csr, ttl)
            .await
            .context("the client certificate was refused")?
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let key_path = args.out.join(format!("{}.key", args.name));
    let cert_path = args.out.join(format!("{}.crt", args.name));
    let chain_path = args.out.join(format!("{}-chain.pem", args.name));
    write(
        &key_path,
        tollgate_crypto::pem_encode("PRIVATE KEY", &pkcs8).as_bytes(),
        true,
    )?;
    write(&cert_path, issued.certificate.as_bytes(), false)?;
    write(&chain_path, issued.chain.as_bytes(), false)?;
    eprintln!(
        "certificate {} until {} (serial {}); key {}, certificate {}, CA chain {}",
        if args.server {
            "for the server"
        } else {
            "for TLS clients"
        },
        issued.not_after,
        issued.serial,
        key_path.display(),
        cert_path.display(),
        chain_path.display()
    );
    Ok(())
}
