//! [`MemoryAppStore`]: imported apps in process memory.

use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;

use crate::app::{replace_outcome, App, AppStore, ImportOutcome};
use crate::error::{Error, Result};
use crate::store::Page;

/// An [`AppStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAppStore {
    apps: RwLock<BTreeMap<String, App>>,
}

impl MemoryAppStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AppStore for MemoryAppStore {
    async fn put_app(&self, app: &App) -> Result<ImportOutcome> {
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        match apps.get(app.id()) {
            None => {
                apps.insert(app.id().to_string(), app.clone());
                Ok(ImportOutcome::Created)
            }
            Some(old) => match replace_outcome(old, app)? {
                None => Ok(ImportOutcome::Unchanged),
                Some(outcome) => {
                    let mut new = app.clone();
                    new.created_at = old.created_at;
                    apps.insert(app.id().to_string(), new);
                    Ok(outcome)
                }
            },
        }
    }

    async fn get_app(&self, id: &str) -> Result<App> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        apps.get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("app", id))
    }

    async fn list_apps(&self, page: Page) -> Result<Vec<App>> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        Ok(apps
            .values()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn delete_app(&self, id: &str) -> Result<()> {
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        apps.remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("app", id))
    }
}
