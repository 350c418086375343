//! The data directory and the master key.

use base64::Engine as _;
use std::io::Write as _;
use std::path::Path;
use tollgate_crypto::MasterKey;

const KEY_FILE: &str = "master.key";

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "TOLLGATE_MASTER_KEY must be base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)"
    )]
    BadEnv,
    #[error(
        "master key file {path} is not base64 of 32 bytes; restore it from backup (keys sealed with another key cannot be opened)"
    )]
    BadFile { path: String },
    #[error("cannot create data directory or key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Creates the data directory (mode 0700 on Unix) if needed.
pub fn ensure_data_dir(dir: &Path) -> Result<(), MasterKeyError> {
    let io = |source| MasterKeyError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn decode(text: &str) -> Option<MasterKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
        .ok()?;
    Some(MasterKey::from_bytes(bytes.try_into().ok()?))
}

/// The master key: from `env_value` (TOLLGATE_MASTER_KEY) if given, else from
/// `<dir>/master.key`, which is created (mode 0600) with a new random key on first start.
pub fn load_or_create_master_key(dir: &Path, env_value: Option<&str>) -> Result<MasterKey, MasterKeyError> {
    if let Some(v) = env_value {
        return decode(v).ok_or(MasterKeyError::BadEnv);
    }
    let path = dir.join(KEY_FILE);
    let io = |source| MasterKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return decode(&text).ok_or_else(|| MasterKeyError::BadFile {
                path: path.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = MasterKey::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(&path).map_err(io)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(key.expose_bytes());
    file.write_all(format!("{encoded}\n").as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    tracing::info!(path = %path.display(), "created master key file; back it up, sealed keys cannot be opened without it");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create_master_key(dir.path(), None).expect("created");
        let b = load_or_create_master_key(dir.path(), None).expect("read back");
        assert_eq!(a.expose_bytes(), b.expose_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn env_key_wins_and_bad_env_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let k = load_or_create_master_key(dir.path(), Some(&env)).expect("env key");
        assert_eq!(k.expose_bytes(), &[3u8; 32]);
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(matches!(
            load_or_create_master_key(dir.path(), Some("short")),
            Err(MasterKeyError::BadEnv)
        ));
    }
}
