//! [`ObjectArtifactStore`]: artifact bytes in an `object_store` backend, metadata in an
//! [`ArtifactIndex`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::memory::MemoryArtifactIndex;
use super::name::clean_name;
use super::rejection::UploadRejection;
use super::sniff::{resolve_content_type, UploadLimits, SNIFF_BYTES};
use super::{Artifact, ArtifactFilter, ArtifactIndex, ArtifactStore, ByteStream, NewArtifact};
use crate::error::{Error, ErrorKind, Result};
use crate::owner::{now_micros, Owner};

/// Backend name of object storage errors.
const BACKEND: &str = "object_store";

/// Artifacts with their bytes in any `object_store` backend (in memory, a local folder,
/// S3-compatible storage) and their metadata in an [`ArtifactIndex`].
///
/// Objects are laid out as `artifacts/t-<tenant>/u-<user>/<id>` (each part escaped by
/// `object_store`); reads go through the index first, so an object is only ever read for
/// the owner the index names.
#[derive(Clone)]
pub struct ObjectArtifactStore {
    objects: Arc<dyn ObjectStore>,
    index: Arc<dyn ArtifactIndex>,
    limits: UploadLimits,
}

impl std::fmt::Debug for ObjectArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectArtifactStore")
            .field("objects", &self.objects.to_string())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ObjectArtifactStore {
    /// Bytes in `objects`, metadata in `index`, default [`UploadLimits`].
    pub fn new(objects: Arc<dyn ObjectStore>, index: Arc<dyn ArtifactIndex>) -> Self {
        ObjectArtifactStore {
            objects,
            index,
            limits: UploadLimits::default(),
        }
    }

    /// Everything in memory.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(InMemory::new()),
            Arc::new(MemoryArtifactIndex::new()),
        )
    }

    /// Bytes in the storage `url` names: `memory:///`, `file:///some/folder` (which must
    /// exist), or, with the `s3` feature, `s3://bucket/prefix` configured by `options`
    /// (`aws_access_key_id`, `aws_endpoint`, ...) and the `AWS_*` environment variables.
    pub fn from_url<I, K, V>(url: &str, options: I, index: Arc<dyn ArtifactIndex>) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::InvalidInput(format!("artifact storage URL: {e}")))?;
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, options).map_err(object_error)?;
        let objects: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self::new(objects, index))
    }

    /// Sets the caps and allowed types.
    pub fn with_limits(mut self, limits: UploadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The caps and allowed types in force.
    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    fn too_large(&self) -> Error {
        Error::UploadRejected(UploadRejection::TooLarge {
            limit: self.limits.max_bytes,
        })
    }

    /// Reads the first [`SNIFF_BYTES`] (or all) of `body`; `true` when the stream ended.
    async fn read_prefix(&self, body: &mut ByteStream) -> Result<(BytesMut, bool)> {
        let mut prefix = BytesMut::new();
        while prefix.len() < SNIFF_BYTES {
            match body.next().await {
                Some(chunk) => {
                    prefix.extend_from_slice(&chunk?);
                    if prefix.len() as u64 > self.limits.max_bytes {
                        return Err(self.too_large());
                    }
                }
                None => return Ok((prefix, true)),
            }
        }
        Ok((prefix, false))
    }

    /// Writes `prefix` and the rest of `body` to `path`; returns size and digest.
    async fn write(
        &self,
        path: &Path,
        prefix: &[u8],
        mut body: ByteStream,
    ) -> Result<(u64, String)> {
        let upload = self
            .objects
            .put_multipart(path)
            .await
            .map_err(object_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut sha = Sha256::new();
        let mut size = prefix.len() as u64;
        sha.update(prefix);
        writer.write(prefix);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            size += chunk.len() as u64;
            if size > self.limits.max_bytes {
                let _ = writer.abort().await;
                return Err(self.too_large());
            }
            sha.update(&chunk);
            if let Err(e) = writer.wait_for_capacity(4).await {
                return Err(object_error(e));
            }
            writer.write(&chunk);
        }
        writer.finish().await.map_err(object_error)?;
        Ok((size, hex::encode(sha.finalize())))
    }
}

/// Where an artifact's bytes live.
fn object_path(owner: &Owner, id: Uuid) -> Path {
    let tenant = format!("t-{}", owner.tenant_id);
    let user = format!("u-{}", owner.user_key());
    let id = id.to_string();
    Path::from_iter(["artifacts", tenant.as_str(), user.as_str(), id.as_str()])
}

/// An object storage error as a core error.
fn object_error(e: object_store::Error) -> Error {
    use object_store::Error as E;
    let kind = match &e {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } => ErrorKind::Conflict,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::Unauthorized,
        E::UnknownConfigurationKey { .. } | E::NotSupported { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Unavailable,
    };
    Error::backend(BACKEND, kind, e.to_string(), Some(Box::new(e)))
}

#[async_trait]
impl ArtifactStore for ObjectArtifactStore {
    async fn put_stream(
        &self,
        owner: &Owner,
        upload: NewArtifact,
        mut body: ByteStream,
    ) -> Result<Artifact> {
        let name = clean_name(&upload.name).map_err(Error::UploadRejected)?;
        let (prefix, complete) = self.read_prefix(&mut body).await?;
        if prefix.is_empty() {
            return Err(Error::UploadRejected(UploadRejection::Empty));
        }
        let content_type = resolve_content_type(
            upload.content_type.as_deref(),
            &prefix,
            complete,
            &self.limits,
        )
        .map_err(Error::UploadRejected)?;
        let id = Uuid::now_v7();
        let path = object_path(owner, id);
        let (size, sha256) = self.write(&path, &prefix, body).await?;
        let artifact = Artifact {
            id,
            owner: owner.clone(),
            task_id: upload.task_id,
            name,
            content_type,
            size,
            sha256,
            created_at: now_micros(),
        };
        if let Err(e) = self.index.insert(&artifact).await {
            // No metadata, no artifact: the bytes go too.
            let _ = self.objects.delete(&path).await;
            return Err(e);
        }
        Ok(artifact)
    }

    async fn head(&self, owner: &Owner, id: Uuid) -> Result<Artifact> {
        self.index.get(owner, id).await
    }

    async fn get(&self, owner: &Owner, id: Uuid) -> Result<(Artifact, Bytes)> {
        let artifact = self.index.get(owner, id).await?;
        let bytes = async {
            self.objects
                .get(&object_path(owner, id))
                .await?
                .bytes()
                .await
        }
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::not_found("artifact", id),
            e => object_error(e),
        })?;
        Ok((artifact, bytes))
    }

    async fn open(&self, owner: &Owner, id: Uuid) -> Result<(Artifact, ByteStream)> {
        let artifact = self.index.get(owner, id).await?;
        let found = self
            .objects
            .get(&object_path(owner, id))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => Error::not_found("artifact", id),
                e => object_error(e),
            })?;
        let stream = found.into_stream().map(|chunk| chunk.map_err(object_error));
        Ok((artifact, Box::pin(stream)))
    }

    async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>> {
        self.index.list(owner, filter).await
    }

    async fn delete(&self, owner: &Owner, id: Uuid) -> Result<()> {
        self.index.remove(owner, id).await?;
        match self.objects.delete(&object_path(owner, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(e)),
        }
    }
}
