//! Where `tollgate login` keeps the refresh token: the OS credential store (the `keyring`
//! crate: Linux kernel keyutils, macOS Keychain, Windows Credential Manager), or a file only
//! its owner can read (mode 0600, directory 0700), sealed with AES-256-GCM under a key
//! derived by PBKDF2 from `TOLLGATE_TOKEN_PASSPHRASE` or, without one, from this machine's
//! id. The machine key only keeps a copied file useless elsewhere; the passphrase also
//! protects it from other programs of the same user.
//!
//! [`Store::Auto`] (the default) is the keyring on macOS and Windows (the file where that
//! fails) and the file on Linux: Linux's kernel keyrings are emptied by every reboot and the
//! persistent one expires after days unused, and where a process cannot link into it (many
//! containers) a key "stored" there dies with the process, with no error to notice. A
//! refresh token that silently vanishes is worse than a sealed file; Linux users who want
//! the kernel keyring ask for it with `--token-store keyring`.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tollgate_crypto::MasterKey;

/// PBKDF2 rounds for a passphrase (OWASP's figure for PBKDF2-HMAC-SHA256).
const PASSPHRASE_ROUNDS: u32 = 600_000;
/// The machine id is random already; stretching it adds nothing.
const MACHINE_ROUNDS: u32 = 1;
const PASSPHRASE_ENV: &str = "TOLLGATE_TOKEN_PASSPHRASE";

/// Whether `auto` prefers the OS keyring (see the module docs for Linux).
const RELIABLE_KEYRING: bool = cfg!(any(target_os = "macos", target_os = "windows"));

/// The keyring entries' service name.
const KEYRING_SERVICE: &str = "tollgate";

/// Where a sign-in is kept.
#[derive(Debug, Clone)]
pub enum Store {
    /// The sealed file.
    File(PathBuf),
    /// The OS keyring, under `(service, account)`; an error where there is none.
    Keyring { service: String, account: String },
    /// The OS keyring (entry `account`) where it keeps sign-ins reliably, else the file.
    Auto { path: PathBuf, account: String },
}

/// What the keyring entry holds.
#[derive(Serialize, Deserialize)]
struct KeyringEntry {
    server: String,
    client_id: String,
    refresh_token: String,
}

impl Store {
    /// tollgate's keyring entry `account`.
    #[must_use]
    pub fn keyring(account: &str) -> Self {
        Self::Keyring {
            service: KEYRING_SERVICE.to_owned(),
            account: account.to_owned(),
        }
    }

    fn entry(service: &str, account: &str) -> keyring::Result<keyring::Entry> {
        keyring::Entry::new(service, account)
    }

    fn keyring_save(service: &str, account: &str, login: &Login) -> anyhow::Result<()> {
        let value = serde_json::to_string(&KeyringEntry {
            server: login.server.clone(),
            client_id: login.client_id.clone(),
            refresh_token: login.refresh_token.expose_secret().to_owned(),
        })?;
        Self::entry(service, account)
            .and_then(|e| e.set_password(&value))
            .context("the OS keyring cannot store the sign-in (use --token-store file)")
    }

    fn keyring_load(service: &str, account: &str) -> anyhow::Result<Option<Login>> {
        let value = match Self::entry(service, account).and_then(|e| e.get_password()) {
            Ok(v) => v,
            Err(keyring::Error::NoEntry) => return Ok(None),
            Err(e) => return Err(e).context("the OS keyring cannot be read (use --token-store file)"),
        };
        let entry: KeyringEntry =
            serde_json::from_str(&value).context("the keyring entry is not a tollgate sign-in")?;
        Ok(Some(Login {
            server: entry.server,
            client_id: entry.client_id,
            refresh_token: SecretString::from(entry.refresh_token),
        }))
    }

    fn keyring_remove(service: &str, account: &str) -> anyhow::Result<()> {
        match Self::entry(service, account).and_then(|e| e.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e).context("the OS keyring entry cannot be removed"),
        }
    }

    /// Keeps `login` (replacing what was kept).
    pub fn save(&self, login: &Login) -> anyhow::Result<()> {
        match self {
            Self::File(path) => save(path, login),
            Self::Keyring { service, account } => Self::keyring_save(service, account, login),
            Self::Auto { path, .. } if !RELIABLE_KEYRING => save(path, login),
            Self::Auto { path, account } => match Self::keyring_save(KEYRING_SERVICE, account, login) {
                // An older sign-in in the file must not outlive this one.
                Ok(()) => remove(path),
                Err(e) => {
                    tracing::debug!("no OS keyring ({e:#}); keeping the sign-in in {}", path.display());
                    save(path, login)
                }
            },
        }
    }

    /// The kept sign-in, if any.
    pub fn load(&self) -> anyhow::Result<Option<Login>> {
        match self {
            Self::File(path) => load(path),
            Self::Keyring { service, account } => Self::keyring_load(service, account),
            Self::Auto { path, .. } if !RELIABLE_KEYRING => load(path),
            Self::Auto { path, account } => match Self::keyring_load(KEYRING_SERVICE, account) {
                Ok(Some(login)) => Ok(Some(login)),
                Ok(None) | Err(_) => load(path),
            },
        }
    }

    /// Forgets the sign-in (fine if there is none).
    pub fn remove(&self) -> anyhow::Result<()> {
        match self {
            Self::File(path) => remove(path),
            Self::Keyring { service, account } => Self::keyring_remove(service, account),
            Self::Auto { path, account } => {
                let _ = Self::keyring_remove(KEYRING_SERVICE, account);
                remove(path)
            }
        }
    }

    /// Where the sign-in is (for messages).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Keyring { .. } => "the OS keyring".to_owned(),
            Self::Auto { path, .. } if !RELIABLE_KEYRING => path.display().to_string(),
            Self::Auto { path, .. } => format!("the OS keyring (or {} where there is none)", path.display()),
        }
    }

    /// The directory for files kept beside the sign-in (a device key).
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        let path = match self {
            Self::File(path) | Self::Auto { path, .. } => path.clone(),
            Self::Keyring { .. } => default_path()?,
        };
        Ok(path
            .parent()
            .context("the token file needs a directory")?
            .to_owned())
    }
}

/// What is kept of a sign-in.
#[derive(Debug)]
pub struct Login {
    pub server: String,
    pub client_id: String,
    pub refresh_token: SecretString,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    server: String,
    client_id: String,
    /// `passphrase` or `machine`.
    key_source: String,
    rounds: u32,
    salt: String,
    sealed: String,
}

/// The default file: `$XDG_CONFIG_HOME/tollgate/credentials.json` (or `~/.config/…`).
pub fn default_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --token-file")?)
            .join(".config"),
    };
    Ok(base.join("tollgate").join("credentials.json"))
}

fn secret(source: &str) -> anyhow::Result<Vec<u8>> {
    match source {
        "passphrase" => std::env::var(PASSPHRASE_ENV)
            .map(String::into_bytes)
            .with_context(|| format!("this token file is sealed with a passphrase: set {PASSPHRASE_ENV}")),
        _ => {
            let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .with_context(|| format!("no machine id to derive a key from: set {PASSPHRASE_ENV}"))?;
            let home = std::env::var("HOME").unwrap_or_default();
            Ok(format!("tollgate-machine:{id}:{home}").into_bytes())
        }
    }
}

fn key(source: &str, salt: &[u8], rounds: u32) -> anyhow::Result<MasterKey> {
    Ok(MasterKey::from_bytes(tollgate_crypto::derive_key(
        &secret(source)?,
        salt,
        rounds,
    )))
}

fn context(server: &str, client_id: &str) -> String {
    format!("tollgate-cli-login:{server}:{client_id}")
}

/// Seals and writes `login` to `path` (atomically: a temporary file renamed over it).
pub fn save(path: &Path, login: &Login) -> anyhow::Result<()> {
    save_secret(
        path,
        &login.server,
        &login.client_id,
        login.refresh_token.expose_secret().as_bytes(),
    )
}

/// Reads and opens the login at `path`; `None` if there is none.
pub fn load(path: &Path) -> anyhow::Result<Option<Login>> {
    let Some((server, client_id, plain)) = load_secret(path)? else {
        return Ok(None);
    };
    Ok(Some(Login {
        server,
        client_id,
        refresh_token: SecretString::from(String::from_utf8(plain).context("token file: not UTF-8")?),
    }))
}

/// Seals `secret` for `server` under `label` (a client id, a key id) into `path`.
pub fn save_secret(path: &Path, server: &str, label: &str, secret: &[u8]) -> anyhow::Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let passphrase = std::env::var_os(PASSPHRASE_ENV).is_some_and(|v| !v.is_empty());
    let (source, rounds) = if passphrase {
        ("passphrase", PASSPHRASE_ROUNDS)
    } else {
        ("machine", MACHINE_ROUNDS)
    };
    let mut salt = [0u8; 16];
    tollgate_crypto::random_bytes(&mut salt);
    let sealed = key(source, &salt, rounds)?.seal(&context(server, label), secret);
    let file = File {
        version: 1,
        server: server.to_owned(),
        client_id: label.to_owned(),
        key_source: source.to_owned(),
        rounds,
        salt: b64.encode(salt),
        sealed: b64.encode(sealed),
    };
    let dir = path.parent().context("the file needs a directory")?;
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".tollgate.{}.tmp", std::process::id()));
    write_private(&tmp, serde_json::to_vec_pretty(&file)?.as_slice())?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Opens what [`save_secret`] wrote: server, label and the secret; `None` if no file.
pub fn load_secret(path: &Path) -> anyhow::Result<Option<(String, String, Vec<u8>)>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    check_private(path)?;
    let file: File = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a tollgate credentials file", path.display()))?;
    if file.version != 1 {
        bail!("{}: file version {} is not known", path.display(), file.version);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(&file.salt).context("credentials file: salt")?;
    let sealed = b64
        .decode(&file.sealed)
        .context("credentials file: sealed part")?;
    let plain = key(&file.key_source, &salt, file.rounds)?
        .open(&context(&file.server, &file.client_id), &sealed)
        .map_err(|_| {
            anyhow::anyhow!(
                "{} cannot be opened here (another machine, or another passphrase)",
                path.display()
            )
        })?;
    Ok(Some((file.server, file.client_id, plain)))
}

/// Removes the file; fine if there is none.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Refuses a token file others can read or write (like ssh does with keys).
#[cfg(unix)]
fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is accessible by others (mode {:o}); run `chmod 600` on it or sign in again",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_login_opens_again_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("credentials.json");
        let login = Login {
            server: "http://127.0.0.1:1".into(),
            client_id: "tollgate-cli".into(),
            refresh_token: SecretString::from("tg_rt_secret".to_owned()),
        };
        save(&path, &login).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("tg_rt_secret"), "sealed, not stored in the clear");
        let back = load(&path).expect("load").expect("present");
        assert_eq!(back.refresh_token.expose_secret(), "tg_rt_secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(
                load(&path)
                    .expect_err("too open")
                    .to_string()
                    .contains("chmod 600")
            );
        }
        remove(&path).expect("remove");
        assert!(load(&path).expect("no file").is_none());
    }

    fn sample(token: &str) -> Login {
        Login {
            server: "http://127.0.0.1:1".into(),
            client_id: "tollgate-cli".into(),
            refresh_token: SecretString::from(token.to_owned()),
        }
    }

    /// The keyring round trip, in an account of its own (the user's sign-in is untouched).
    /// Linux keeps it in the kernel's keyutils, which every Linux kernel this runs on has.
    #[test]
    fn the_keyring_keeps_replaces_and_forgets_a_login() {
        let account = format!("test-{}", std::process::id());
        let store = Store::Keyring {
            service: "tollgate-test".into(),
            account,
        };
        assert!(store.load().expect("empty keyring entry").is_none());
        store.save(&sample("tg_rt_one")).expect("save");
        store.save(&sample("tg_rt_two")).expect("replace");
        let back = store.load().expect("load").expect("present");
        assert_eq!(back.refresh_token.expose_secret(), "tg_rt_two");
        assert_eq!(back.server, "http://127.0.0.1:1");
        store.remove().expect("remove");
        assert!(store.load().expect("gone").is_none());
        store.remove().expect("removing nothing is fine");
    }
}
