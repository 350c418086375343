//! `tollgate login` (RFC 8628 device flow), `whoami`, `token`, `logout`: a person's session
//! from the command line. The refresh token is kept in an encrypted file (see
//! `token_store`); every command that needs an access token refreshes it through the SDK's
//! [`UserSession`], which saves each rotated refresh token before using the new tokens.

use crate::admin::{print_json, print_text};
use crate::token_store::{self, Login, Store};
use anyhow::{Context as _, bail};
use secrecy::{ExposeSecret as _, SecretString};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tollgate_client::{Client, UserSession};

/// Where the refresh token is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenStoreKind {
    /// The OS keyring where there is one, else the encrypted file.
    Auto,
    /// The OS keyring (Linux keyutils, macOS Keychain, Windows Credential Manager).
    Keyring,
    /// An encrypted file, mode 0600 (`--token-file`).
    File,
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Where to keep the refresh token.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    token_store: TokenStoreKind,
    /// The token file (default `$XDG_CONFIG_HOME/tollgate/credentials.json`). Sealed with a
    /// key from `TOLLGATE_TOKEN_PASSPHRASE`, or from this machine's id without one.
    #[arg(long, env = "TOLLGATE_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// The keyring entry (account) of this sign-in: one entry per sign-in you keep.
    #[arg(long, default_value = "login", global = true)]
    keyring_account: String,
}

impl StoreArgs {
    /// The store: an explicit `--token-file` means the file.
    pub(crate) fn store(&self) -> anyhow::Result<Store> {
        let path = || self.token_file.clone().map_or_else(token_store::default_path, Ok);
        Ok(match (self.token_store, &self.token_file) {
            (TokenStoreKind::Keyring, _) => Store::keyring(&self.keyring_account),
            (TokenStoreKind::File, _) | (TokenStoreKind::Auto, Some(_)) => Store::File(path()?),
            (TokenStoreKind::Auto, None) => Store::Auto {
                path: path()?,
                account: self.keyring_account.clone(),
            },
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The tollgate server.
    #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The client id this CLI shows on the approval page.
    #[arg(long, default_value = "tollgate-cli")]
    client_id: String,
    /// Scopes to ask for (space-separated).
    #[arg(long)]
    scope: Option<String>,
    /// Do not try to open a browser.
    #[arg(long)]
    no_browser: bool,
    /// Sign in with a device key from `tollgate key add` instead of a code to approve.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Give up after this long (at most the code's own lifetime).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs the device flow: shows the code, the URL and a QR code, opens a browser when it
/// can, polls at the server's interval (growing by 5 s on every `slow-down`) and keeps
/// the refresh token.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    if let Some(key_file) = &args.key_file {
        return crate::device_key::login_with_key(key_file, &args.store).await;
    }
    let store = args.store.store()?;
    let client = Client::new(&args.server)?;
    let auth = client
        .device_authorization(&args.client_id, args.scope.as_deref(), None)
        .await
        .context("cannot start the sign-in")?;
    eprintln!(
        "To sign in, open {} and enter the code\n\n    {}\n\nor open {}",
        auth.verification_uri, auth.user_code, auth.verification_uri_complete
    );
    if let Ok(qr) = qrcode::QrCode::new(auth.verification_uri_complete.as_bytes()) {
        eprintln!(
            "{}",
            qr.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        );
    }
    if !args.no_browser {
        open_browser(&auth.verification_uri_complete);
    }
    let deadline = Instant::now() + args.timeout.min(Duration::from_secs(auth.expires_in));
    let mut interval = Duration::from_secs(auth.interval.max(1));
    let tokens = loop {
        if Instant::now() + interval > deadline {
            bail!(
                "no approval within {}; run `tollgate login` again",
                humantime::format_duration(args.timeout)
            );
        }
        tokio::time::sleep(interval).await;
        match client.device_token(&auth.device_code, &args.client_id).await {
            Ok(tokens) => break tokens,
            Err(e) => match e.reason() {
                Some("authorization-pending") => {}
                // RFC 8628 §3.5: this and every later poll waits 5 s longer.
                Some("slow-down") => interval += Duration::from_secs(5),
                Some("device-access-denied") => bail!("the sign-in was denied"),
                Some("device-code-expired") => bail!("the code expired; run `tollgate login` again"),
                _ => return Err(e).context("the sign-in failed"),
            },
        }
    };
    let refresh = tokens
        .refresh_token
        .context("the server gave no refresh token; its upstream issuer has refresh_tokens = false")?;
    store.save(&Login {
        server: args.server.clone(),
        client_id: args.client_id.clone(),
        refresh_token: SecretString::from(refresh),
    })?;
    let status = client.auth_status(&tokens.access_token).await?;
    eprintln!(
        "signed in as {}{}; the refresh token is in {}",
        status.sub,
        status.org.map(|o| format!(" (org {o})")).unwrap_or_default(),
        store.describe()
    );
    Ok(())
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    // Best effort: without a desktop the user opens the URL shown above.
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// The stored session, ready to refresh; every rotation is written back to the file.
pub(crate) fn session(store: &StoreArgs) -> anyhow::Result<(UserSession, Login)> {
    let store = store.store()?;
    let login = store.load()?.context("not signed in; run `tollgate login`")?;
    let (server, client_id) = (login.server.clone(), login.client_id.clone());
    let persist: tollgate_client::Persist = Box::new(move |next: &str| {
        let login = Login {
            server: server.clone(),
            client_id: client_id.clone(),
            refresh_token: SecretString::from(next.to_owned()),
        };
        store.save(&login).map_err(std::io::Error::other)
    });
    let client = Client::new(&login.server)?;
    let session = UserSession::new(client, login.refresh_token.clone(), persist);
    Ok((session, login))
}

/// `tollgate whoami`: who the stored session is, in which org, until when.
pub async fn whoami(store: &StoreArgs) -> anyhow::Result<()> {
    let (session, login) = session(store)?;
    let token = session
        .access_token()
        .await
        .context("the stored session no longer works; run `tollgate login`")?;
    let status = Client::new(&login.server)?.auth_status(&token).await?;
    print_json(&status)
}

/// `tollgate token`: a fresh access token on stdout, for scripts.
pub async fn token(store: &StoreArgs) -> anyhow::Result<()> {
    let (session, _) = session(store)?;
    let token = session
        .access_token()
        .await
        .context("the stored session no longer works; run `tollgate login`")?;
    print_text(&token)
}

/// `tollgate logout`: ends the session at the server and forgets it here.
pub async fn logout(store: &StoreArgs) -> anyhow::Result<()> {
    let store = store.store()?;
    if let Some(login) = store.load()? {
        let client = Client::new(&login.server)?;
        if let Err(e) = client
            .revoke_refresh_token(login.refresh_token.expose_secret())
            .await
        {
            eprintln!("warning: the server did not end the session ({e}); forgetting it here anyway");
        }
    }
    store.remove()?;
    eprintln!("signed out");
    Ok(())
}
