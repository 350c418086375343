//! The trusted issuers of this replica: those of the config file and those created
//! through the admin API, as one [`IssuerView`] snapshot. It is rebuilt on `SIGHUP` (new
//! file issuers), after every admin change, and on every upkeep round (other replicas'
//! changes), so a disabled issuer stops verifying everywhere within `reload_interval`.
//!
//! File issuers are authoritative for their names: the API cannot change them, and an API
//! issuer that clashes with one (by name or `iss`) is skipped with a warning.

use crate::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use tollgate_core::upstream::issuer::IssuerSet;
use tollgate_core::upstream::{Issuer, IssuerError, IssuerSpec};
use tollgate_store::{IssuerRecord, Store, StoreError};

/// Where an issuer is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File,
    Api,
}

/// One consistent view of the trusted issuers.
#[derive(Debug, Default)]
pub struct IssuerView {
    pub set: IssuerSet,
    /// Name → where it is defined, and the spec as written.
    pub entries: BTreeMap<String, (Source, IssuerSpec)>,
}

/// A failed issuer change.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] IssuerError),
    #[error("issuer `{0}` is defined in the config file; change it there and send SIGHUP")]
    FileManaged(String),
    #[error("no issuer named `{0}`")]
    NotFound(String),
    #[error("an issuer named `{0}` exists already")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct IssuerRegistry {
    store: Arc<dyn Store>,
    file: RwLock<Vec<IssuerSpec>>,
    view: Snapshot<IssuerView>,
    /// Serializes list-and-store, so a slow reload cannot overwrite a newer view (e.g. an
    /// upkeep round that read the database before an admin disabled an issuer).
    reloading: tokio::sync::Mutex<()>,
}

impl IssuerRegistry {
    /// Loads the file issuers (already validated with the config) and the stored ones.
    pub async fn start(store: Arc<dyn Store>, file: Vec<IssuerSpec>) -> Result<Self, RegistryError> {
        let registry = Self {
            store,
            file: RwLock::new(file),
            view: Snapshot::new(IssuerView::default()),
            reloading: tokio::sync::Mutex::new(()),
        };
        registry.reload().await?;
        Ok(registry)
    }

    /// The current view (cheap).
    #[must_use]
    pub fn current(&self) -> Arc<IssuerView> {
        self.view.load()
    }

    /// Replaces the file issuers (on `SIGHUP`) and rebuilds the view.
    pub async fn set_file_issuers(&self, specs: Vec<IssuerSpec>) -> Result<(), RegistryError> {
        *self.file.write().unwrap_or_else(PoisonError::into_inner) = specs;
        self.reload().await
    }

    /// Rebuilds the view from the file issuers and the database.
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let _serial = self.reloading.lock().await;
        let stored = self.store.list_issuers().await?;
        let file = self.file.read().unwrap_or_else(PoisonError::into_inner).clone();
        self.view.store(build_view(file, &stored));
        Ok(())
    }

    /// Creates an API issuer.
    pub async fn create(&self, spec: &IssuerSpec, now: i64) -> Result<Issuer, RegistryError> {
        let issuer = self.check_api_change(spec)?;
        if self.current().entries.contains_key(&spec.name) {
            return Err(RegistryError::NameTaken(spec.name.clone()));
        }
        let record = record(spec, now);
        match self.store.create_issuer(&record).await {
            Err(StoreError::Conflict(_)) => return Err(RegistryError::NameTaken(spec.name.clone())),
            other => other?,
        }
        self.reload().await?;
        Ok(issuer)
    }

    /// Replaces an API issuer's specification (e.g. `enabled = false` for a rollback).
    pub async fn update(&self, spec: &IssuerSpec, now: i64) -> Result<Issuer, RegistryError> {
        let issuer = self.check_api_change(spec)?;
        if !self.store.update_issuer(&record(spec, now)).await? {
            return Err(RegistryError::NotFound(spec.name.clone()));
        }
        self.reload().await?;
        Ok(issuer)
    }

    /// Deletes an API issuer.
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        if self.is_file_issuer(name) {
            return Err(RegistryError::FileManaged(name.to_owned()));
        }
        if !self.store.delete_issuer(name).await? {
            return Err(RegistryError::NotFound(name.to_owned()));
        }
        self.reload().await
    }

    fn is_file_issuer(&self, name: &str) -> bool {
        self.file
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|s| s.name == name)
    }

    /// Validates an API change on its own and together with every other issuer.
    fn check_api_change(&self, spec: &IssuerSpec) -> Result<Issuer, RegistryError> {
        if self.is_file_issuer(&spec.name) {
            return Err(RegistryError::FileManaged(spec.name.clone()));
        }
        let issuer = spec.resolve()?;
        let view = self.current();
        let others = view.set.iter().filter(|i| i.name != spec.name).cloned();
        IssuerSet::new(others.chain(std::iter::once(issuer.clone())).collect())?;
        Ok(issuer)
    }
}

fn record(spec: &IssuerSpec, now: i64) -> IssuerRecord {
    IssuerRecord {
        name: spec.name.clone(),
        spec: serde_json::to_string(spec).unwrap_or_default(),
        created_at: now,
        updated_at: now,
    }
}

/// File issuers first; stored issuers that fail to parse, fail validation or clash are
/// skipped with an error in the log rather than taking verification down.
fn build_view(file: Vec<IssuerSpec>, stored: &[IssuerRecord]) -> IssuerView {
    let mut entries = BTreeMap::new();
    let mut issuers: Vec<Issuer> = Vec::new();
    for spec in file {
        // Validated when the config was loaded.
        if let Ok(i) = spec.resolve() {
            issuers.push(i);
            entries.insert(spec.name.clone(), (Source::File, spec));
        }
    }
    for rec in stored {
        let spec: IssuerSpec = match serde_json::from_str(&rec.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(issuer = %rec.name, error = %e, "stored issuer does not parse; skipped");
                continue;
            }
        };
        let resolved = match spec.resolve() {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "stored issuer is invalid; skipped");
                continue;
            }
        };
        if issuers
            .iter()
            .any(|i| i.name == resolved.name || i.issuer == resolved.issuer)
        {
            tracing::warn!(issuer = %resolved.name, "API issuer clashes with an earlier issuer (file issuers come first); skipped");
            continue;
        }
        issuers.push(resolved);
        entries.insert(spec.name.clone(), (Source::Api, spec));
    }
    // Names and iss values are unique by construction above.
    let set = IssuerSet::new(issuers).unwrap_or_default();
    IssuerView { set, entries }
}
