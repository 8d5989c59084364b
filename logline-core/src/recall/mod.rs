//! Agent memory ("recall"): what agents remember between runs, and documents chunked for
//! retrieval-augmented generation.
//!
//! (The [`crate::memory`] module holds the *in-memory backends*; this one is about memory as
//! agents use it.)
//!
//! - [`MemoryItem`]: content with a kind (short-term, long-term, profile), an [`Owner`] (user,
//!   tenant, app, agent or run), a [`Visibility`], an optional expiry and metadata. Every item
//!   belongs to exactly one tenant; no read, search or delete crosses tenants.
//! - [`RecallStore`]: the backend contract (in memory: [`crate::memory::MemoryRecallStore`];
//!   PostgreSQL in `logline-postgres`), checked by one conformance suite.
//! - [`Recall`]: store + [`Embedder`](crate::llm::Embedder): remember, retrieve, semantic
//!   search with metadata filters, forget, and [`Recall::ingest`] for chunked resources.
//! - [`RecallHub`]: the same operations as agent tools (`memory.store`, `memory.retrieve`,
//!   `memory.search`, `memory.delete`). The owner id always comes from the trusted
//!   [`ToolContext`](crate::tool::ToolContext) of the call, never from the arguments; an app's
//!   manifest names which owner kinds its runs may read and write.
//! - [`MemoryPurge`]: deletes expired items on a timer (or add the purge to the engine's
//!   retention passes).

mod chunk;
mod hub;
mod purge;
mod service;
mod types;
pub mod vector;

pub use chunk::{chunk_text, ChunkOptions};
pub use hub::{RecallHub, MEMORY_HUB, TOOL_DELETE, TOOL_RETRIEVE, TOOL_SEARCH, TOOL_STORE};
pub use purge::{MemoryPurge, PurgeOptions, PurgeReport};
pub use service::{Ingested, Recall, Remember, TrustedOwners};
pub use types::{
    MemoryFilter, MemoryItem, MemoryKind, Owner, OwnerKind, ReadScope, ScoredItem, Visibility,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;

/// Where memory items live.
///
/// Every operation is confined to one tenant, in the backend's query (never by filtering
/// after loading); an item outside the caller's reach is reported exactly like a missing one.
/// Expired items are never returned.
#[async_trait]
pub trait RecallStore: Send + Sync {
    /// Inserts an item, or replaces the item with its id when tenant and owner are the
    /// same. An id taken by another tenant or owner is a `Conflict`.
    async fn put(&self, item: &MemoryItem) -> Result<()>;

    /// The item `id` when `scope` may read it (`NotFound` otherwise).
    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<MemoryItem>;

    /// Items `scope` may read that match `filter`, newest first, at most `limit`.
    async fn list(
        &self,
        scope: &ReadScope,
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<MemoryItem>>;

    /// The items `scope` may read that match `filter`, most similar to `query` (cosine)
    /// first, at most `limit`. Backends may answer from an approximate index.
    async fn search(
        &self,
        scope: &ReadScope,
        query: &[f32],
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<ScoredItem>>;

    /// Deletes the items matching `filter` that one of `owners` of `tenant_id` owns (other
    /// items are never deleted, whatever their visibility); `ids` narrows to those ids when
    /// not empty. Returns how many were deleted.
    async fn delete(
        &self,
        tenant_id: &str,
        owners: &[Owner],
        ids: &[Uuid],
        filter: &MemoryFilter,
    ) -> Result<u64>;

    /// Deletes up to `limit` items that expired before `now`; call again until 0.
    async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> Result<u64>;
}
