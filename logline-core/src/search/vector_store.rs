//! Tool and toolkit vectors kept beside the catalog, so that a process that starts (or a
//! second replica) loads them instead of embedding the whole catalog again.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// A stored vector: whose it is, what text it embeds, the vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// Tool id (or toolkit key).
    pub id: String,
    /// [`text_digest`] of the text embedded: a vector is reused only for the same text.
    pub digest: [u8; 32],
    /// The vector as the embedder returned it.
    pub vector: Vec<f32>,
}

/// Where [`DenseRetriever`](super::DenseRetriever) keeps its vectors. A `space` names one
/// embedding model, its text prefix and the kind of row (tools or toolkits); ids are unique
/// within a space.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// The stored vectors of `space` among `ids` (ids without one are left out).
    async fn load_vectors(&self, space: &str, ids: &[String]) -> Result<Vec<StoredVector>>;
    /// Inserts or replaces vectors of `space`.
    async fn save_vectors(&self, space: &str, vectors: &[StoredVector]) -> Result<()>;
    /// Removes the vectors of `ids` from `space` (missing ids are ignored).
    async fn delete_vectors(&self, space: &str, ids: &[String]) -> Result<()>;
}

/// SHA-256 of an embedded text: stable across processes and releases.
pub fn text_digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}
