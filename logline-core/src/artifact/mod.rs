//! Artifacts and uploads: files a user uploads or a tool produces, owned by a tenant and user
//! and optionally linked to a task (a run).
//!
//! - [`ArtifactStore`] is what hosts and tools use: put (bytes or a stream, under a size
//!   cap), head, get, list by task, delete, always for an [`Owner`] taken from the trusted
//!   context. Another tenant's or user's artifact is [`Error::NotFound`](crate::Error).
//! - [`ObjectArtifactStore`] implements it over the `object_store` crate for the bytes
//!   (in memory, a local folder, or S3-compatible storage with the `s3` feature) and an
//!   [`ArtifactIndex`] for the metadata ([`MemoryArtifactIndex`] here, a PostgreSQL one in
//!   `logline-postgres`).
//! - Uploads are checked before a byte is stored: the name is cleaned ([`clean_name`]), the
//!   content type is sniffed from the bytes and must agree with the declared one and be
//!   allowed ([`UploadLimits`]), and the size is counted while the stream is read. A refusal
//!   is an [`Error::UploadRejected`](crate::Error::UploadRejected) naming the
//!   [`UploadRejection`].
//!
//! ```
//! # tokio_test_block_on(async {
//! use logline_core::artifact::{ArtifactStore, ArtifactStoreExt, NewArtifact, ObjectArtifactStore};
//! use logline_core::owner::Owner;
//!
//! let store = ObjectArtifactStore::in_memory();
//! let me = Owner::user("acme", "dan");
//! let a = store.put(&me, NewArtifact::named("notes.txt"), b"hello".to_vec()).await.unwrap();
//! assert_eq!(a.content_type, "text/plain");
//! assert_eq!(store.get(&me, a.id).await.unwrap().1.as_ref(), b"hello");
//! let other = Owner::user("acme", "eve");
//! assert!(store.get(&other, a.id).await.is_err());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f)
//! # }
//! ```

mod memory;
mod name;
mod object;
mod rejection;
mod sniff;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;
pub use crate::owner::Owner;

pub use memory::MemoryArtifactIndex;
pub use name::{clean_name, MAX_NAME_BYTES};
pub use object::ObjectArtifactStore;
pub use rejection::{NameProblem, UploadRejection};
pub use sniff::{resolve_content_type, UploadLimits, SNIFF_BYTES};

/// A stream of upload chunks; an `Err` item aborts the upload.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A stored artifact's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Id.
    pub id: Uuid,
    /// Who owns it.
    pub owner: Owner,
    /// The task (run) it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// Cleaned file name.
    pub name: String,
    /// Content type, confirmed from the bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// What the caller says about an upload; the owner comes separately, from the trusted
/// context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewArtifact {
    /// File name as given (it is cleaned or refused).
    pub name: String,
    /// Declared content type; it must agree with the sniffed one.
    pub content_type: Option<String>,
    /// Task (run) to link it to.
    pub task_id: Option<Uuid>,
}

impl NewArtifact {
    /// An upload named `name`, type left to sniffing.
    pub fn named(name: impl Into<String>) -> Self {
        NewArtifact {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Declares the content type.
    pub fn with_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Links it to a task (run).
    pub fn for_task(mut self, task_id: Uuid) -> Self {
        self.task_id = Some(task_id);
        self
    }
}

/// Which of an owner's artifacts to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactFilter {
    /// Only those linked to this task.
    pub task_id: Option<Uuid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl ArtifactFilter {
    /// The artifacts of one task.
    pub fn for_task(mut self, task_id: Uuid) -> Self {
        self.task_id = Some(task_id);
        self
    }

    /// The effective page size.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// Artifact storage for hosts and tools; every call acts for `owner`.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores `body` as a new artifact, checking name, type and size while it is read.
    async fn put_stream(
        &self,
        owner: &Owner,
        upload: NewArtifact,
        body: ByteStream,
    ) -> Result<Artifact>;
    /// The metadata of the owner's artifact `id`.
    async fn head(&self, owner: &Owner, id: Uuid) -> Result<Artifact>;
    /// The owner's artifact `id` and its bytes.
    async fn get(&self, owner: &Owner, id: Uuid) -> Result<(Artifact, Bytes)>;
    /// The owner's artifact `id` and its bytes as a stream (downloads of large files).
    async fn open(&self, owner: &Owner, id: Uuid) -> Result<(Artifact, ByteStream)>;
    /// The owner's artifacts, newest first.
    async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>>;
    /// Deletes the owner's artifact `id` (metadata and bytes).
    async fn delete(&self, owner: &Owner, id: Uuid) -> Result<()>;
}

/// Helpers on every [`ArtifactStore`].
#[async_trait]
pub trait ArtifactStoreExt: ArtifactStore {
    /// Stores `bytes` in one piece.
    async fn put(
        &self,
        owner: &Owner,
        upload: NewArtifact,
        bytes: impl Into<Bytes> + Send + 'static,
    ) -> Result<Artifact> {
        let chunk: Result<Bytes> = Ok(bytes.into());
        self.put_stream(owner, upload, Box::pin(futures::stream::iter([chunk])))
            .await
    }
}

impl<T: ArtifactStore + ?Sized> ArtifactStoreExt for T {}

/// Where artifact metadata is kept; every read and delete is scoped to the owner in the
/// backend (in SQL for PostgreSQL), not filtered after loading.
#[async_trait]
pub trait ArtifactIndex: Send + Sync {
    /// Records a new artifact; an existing id is a `Conflict`.
    async fn insert(&self, artifact: &Artifact) -> Result<()>;
    /// The owner's artifact `id`.
    async fn get(&self, owner: &Owner, id: Uuid) -> Result<Artifact>;
    /// The owner's artifacts, newest first.
    async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>>;
    /// Removes the owner's artifact `id` and returns what it was.
    async fn remove(&self, owner: &Owner, id: Uuid) -> Result<Artifact>;
}
