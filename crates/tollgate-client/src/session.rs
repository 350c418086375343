//! A signed-in user's session on the client side: an access token kept until shortly before
//! it expires, a rotating refresh token, and one retry after a refresh when the server says
//! the token predates a role change (`user-version-stale`) or has expired.
//!
//! Where the refresh token lives between runs is the caller's business (the CLI keeps it in
//! an encrypted file): every rotation is handed to `persist` before the new access token is
//! used, so a crash never leaves only a spent refresh token on disk.

use crate::{Client, Error, Result};
use secrecy::{ExposeSecret as _, SecretString};
use std::time::{Duration, Instant};

/// Refreshed this long before the access token expires.
const EARLY: Duration = Duration::from_secs(30);

/// Saves a rotated refresh token; an error stops the call (the new token would be lost).
pub type Persist = Box<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

struct Cached {
    refresh: SecretString,
    access: Option<(String, Instant)>,
}

/// A user's session: the SDK client plus the tokens to authenticate as them.
pub struct UserSession {
    client: Client,
    state: tokio::sync::Mutex<Cached>,
    persist: Persist,
}

impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSession")
            .field("server", &self.client.base_url())
            .finish_non_exhaustive()
    }
}

impl UserSession {
    /// A session continuing from `refresh_token`; `persist` receives every rotated one.
    #[must_use]
    pub fn new(client: Client, refresh_token: SecretString, persist: Persist) -> Self {
        Self {
            client,
            state: tokio::sync::Mutex::new(Cached {
                refresh: refresh_token,
                access: None,
            }),
            persist,
        }
    }

    /// A live access token: the cached one, or a new one from a refresh (which rotates
    /// and persists the refresh token).
    pub async fn access_token(&self) -> Result<String> {
        let mut state = self.state.lock().await;
        if let Some((token, until)) = &state.access
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let resp = self
            .client
            .refresh(state.refresh.expose_secret(), None, None)
            .await?;
        if let Some(next) = &resp.refresh_token {
            (self.persist)(next).map_err(|e| Error::Unexpected {
                status: reqwest::StatusCode::OK,
                text: format!("the rotated refresh token could not be saved: {e}"),
            })?;
            state.refresh = SecretString::from(next.clone());
        }
        let until = Instant::now() + Duration::from_secs(resp.expires_in).saturating_sub(EARLY);
        state.access = Some((resp.access_token.clone(), until));
        Ok(resp.access_token)
    }

    /// Forgets the cached access token: the next call refreshes.
    pub async fn invalidate(&self) {
        self.state.lock().await.access = None;
    }

    /// Runs `call` with a client authenticated as the user; if the server refuses the access
    /// token as stale (`user-version-stale`: roles changed) or expired, refreshes once and
    /// runs it again.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let first = call(self.client.clone().with_user_token(self.access_token().await?)).await;
        match first {
            Err(e) if matches!(e.reason(), Some("user-version-stale" | "expired")) => {
                self.invalidate().await;
                call(self.client.clone().with_user_token(self.access_token().await?)).await
            }
            other => other,
        }
    }

    /// The current refresh token (for revoking it at logout).
    pub async fn refresh_token(&self) -> SecretString {
        self.state.lock().await.refresh.clone()
    }
}
