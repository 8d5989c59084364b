//! [`MemoryArtifactIndex`]: artifact metadata in a map.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Artifact, ArtifactFilter, ArtifactIndex, Owner};
use crate::error::{Error, Result};

/// Artifact metadata in memory, with the same owner scoping as the durable index.
#[derive(Debug, Default)]
pub struct MemoryArtifactIndex {
    artifacts: RwLock<HashMap<Uuid, Artifact>>,
}

impl MemoryArtifactIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }
}

fn not_found(id: Uuid) -> Error {
    Error::not_found("artifact", id)
}

#[async_trait]
impl ArtifactIndex for MemoryArtifactIndex {
    async fn insert(&self, artifact: &Artifact) -> Result<()> {
        let mut map = self
            .artifacts
            .write()
            .map_err(|_| Error::Internal("artifact index lock poisoned".into()))?;
        if map.contains_key(&artifact.id) {
            return Err(Error::Conflict(format!("artifact {} exists", artifact.id)));
        }
        map.insert(artifact.id, artifact.clone());
        Ok(())
    }

    async fn get(&self, owner: &Owner, id: Uuid) -> Result<Artifact> {
        let map = self
            .artifacts
            .read()
            .map_err(|_| Error::Internal("artifact index lock poisoned".into()))?;
        map.get(&id)
            .filter(|a| &a.owner == owner)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>> {
        let map = self
            .artifacts
            .read()
            .map_err(|_| Error::Internal("artifact index lock poisoned".into()))?;
        let mut found: Vec<Artifact> = map
            .values()
            .filter(|a| &a.owner == owner)
            .filter(|a| filter.task_id.is_none() || a.task_id == filter.task_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        found.truncate(filter.effective_limit() as usize);
        Ok(found)
    }

    async fn remove(&self, owner: &Owner, id: Uuid) -> Result<Artifact> {
        let mut map = self
            .artifacts
            .write()
            .map_err(|_| Error::Internal("artifact index lock poisoned".into()))?;
        match map.get(&id) {
            Some(a) if &a.owner == owner => map.remove(&id).ok_or_else(|| not_found(id)),
            _ => Err(not_found(id)),
        }
    }
}
