//! Apps: packaged workflows, actions and scopes, declared by a manifest and imported as
//! configuration.
//!
//! - [`Manifest`]: format v1, parsed from JSON or YAML with every problem located by its path
//!   ([`ManifestError`]).
//! - [`App`]: an imported manifest (its version and digest); [`AppStore`] keeps them (in
//!   memory: [`crate::memory::MemoryAppStore`]; PostgreSQL in `logline-postgres`).
//! - [`Engine::import_app`](crate::engine::Engine::import_app) checks the manifest's workflow
//!   references against the store and upserts the app;
//!   [`Engine::run_action`](crate::engine::Engine::run_action) builds an action's input
//!   ([`build_input`]) and runs its workflow tagged with the app and the action.
//! - Scopes are enforced at call time: a run of an app calls only the tools its manifest
//!   lists, and reaches only the memory owner kinds it grants.

mod input;
mod manifest;
mod validate;

pub use input::build_input;
pub use manifest::{
    AppAction, AppSpec, AppVisibility, AppWorkflow, Manifest, ManifestError, ManifestIssue, Scopes,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::recall::{OwnerKind, MEMORY_HUB, TOOL_DELETE, TOOL_RETRIEVE, TOOL_SEARCH, TOOL_STORE};
use crate::run::{RunId, RunStatus};
use crate::store::Page;

/// One entry of `scopes.memory`: an owner kind, read-only or read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryGrant {
    /// Owner kind.
    pub kind: OwnerKind,
    /// Whether writes (store, delete) are allowed.
    pub write: bool,
}

impl MemoryGrant {
    /// Parses `user`, `tenant:read`, `app:write`, ...
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (kind, access) = s.split_once(':').unwrap_or((s, "write"));
        let kind = OwnerKind::parse(kind).ok_or_else(|| {
            format!("`{s}`: the owner kind is one of user, tenant, app, agent, run")
        })?;
        let write = match access {
            "write" => true,
            "read" => false,
            _ => return Err(format!("`{s}`: the access is `read` or `write`")),
        };
        Ok(MemoryGrant { kind, write })
    }
}

/// An imported app: its manifest, and the digest that tells re-imports apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// The validated manifest.
    pub manifest: Manifest,
    /// SHA-256 of the manifest's canonical JSON.
    pub digest: String,
    /// First imported.
    pub created_at: DateTime<Utc>,
    /// Last imported with a change.
    pub updated_at: DateTime<Utc>,
}

impl App {
    /// An app of a validated manifest, imported now.
    pub fn new(manifest: Manifest) -> Result<Self> {
        let canonical = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Internal(format!("manifest does not serialize: {e}")))?;
        let now = Utc::now();
        Ok(App {
            digest: hex::encode(Sha256::digest(&canonical)),
            manifest,
            created_at: now,
            updated_at: now,
        })
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.manifest.app.id
    }

    /// Its manifest version.
    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// The action `id` and the workflow it runs.
    pub fn action(&self, id: &str) -> Option<(&AppAction, &AppWorkflow)> {
        let app = &self.manifest.app;
        let action = app.actions.iter().find(|a| a.id == id)?;
        let wf = app.workflows.iter().find(|w| w.id == action.workflow_id)?;
        Some((action, wf))
    }

    /// The memory grants (invalid entries never pass validation; any left are ignored).
    pub fn memory_grants(&self) -> Vec<(OwnerKind, bool)> {
        self.manifest
            .app
            .scopes
            .memory
            .iter()
            .filter_map(|s| MemoryGrant::parse(s).ok())
            .map(|g| (g.kind, g.write))
            .collect()
    }

    /// Whether its runs may call `tool_id` on `hub`: a tool its scopes list, or a memory tool
    /// when it grants memory.
    pub fn allows_tool(&self, tool_id: &str, hub: &str) -> bool {
        let scopes = &self.manifest.app.scopes;
        scopes.tools.iter().any(|t| t == tool_id)
            || (hub == MEMORY_HUB && !scopes.memory.is_empty())
    }

    /// The tool ids its runs may be offered: the tools its scopes list and, when it grants
    /// memory, the memory tools.
    pub fn offered_tool_ids(&self) -> Vec<String> {
        let scopes = &self.manifest.app.scopes;
        let memory: &[&str] = if scopes.memory.is_empty() {
            &[]
        } else {
            &[TOOL_STORE, TOOL_RETRIEVE, TOOL_SEARCH, TOOL_DELETE]
        };
        scopes
            .tools
            .iter()
            .cloned()
            .chain(memory.iter().map(|t| t.to_string()))
            .collect()
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// The app did not exist.
    Created,
    /// A higher version replaced the stored one.
    Updated,
    /// The same version with the same content was already there (nothing written).
    Unchanged,
}

/// What `run_action` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    /// The run.
    pub run_id: RunId,
    /// Its status when the call returned.
    pub status: RunStatus,
    /// Its result, when completed.
    pub result: Option<Value>,
}

/// Where apps live.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Stores `app`: `Created` when new; `Unchanged` when the stored app has the same
    /// version and digest; `Updated` when `app`'s version is higher (scopes, workflows and
    /// actions are replaced as a whole). The same version with other content, or a lower
    /// version, is a `Conflict`.
    async fn put_app(&self, app: &App) -> Result<ImportOutcome>;
    /// An app.
    async fn get_app(&self, id: &str) -> Result<App>;
    /// Apps ordered by id.
    async fn list_apps(&self, page: Page) -> Result<Vec<App>>;
    /// Removes an app (`NotFound` when missing).
    async fn delete_app(&self, id: &str) -> Result<()>;
}

/// The outcome of storing `new` over `old` (shared by the backends): `Ok(None)` when nothing
/// changes, `Ok(Some(Updated))` for a higher version, `Conflict` otherwise.
pub fn replace_outcome(old: &App, new: &App) -> Result<Option<ImportOutcome>> {
    if old.version() == new.version() {
        return if old.digest == new.digest {
            Ok(None)
        } else {
            Err(Error::Conflict(format!(
                "app `{}` version {} was imported with other content; raise the version",
                new.id(),
                new.version()
            )))
        };
    }
    match (
        old.manifest.version_numbers(),
        new.manifest.version_numbers(),
    ) {
        (Some(o), Some(n)) if n > o => Ok(Some(ImportOutcome::Updated)),
        _ => Err(Error::Conflict(format!(
            "app `{}` is at version {}; version {} is not newer",
            new.id(),
            old.version(),
            new.version()
        ))),
    }
}
