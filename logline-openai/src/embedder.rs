//! [`OpenAiEmbedder`]: the [`Embedder`] implementation over `POST /embeddings`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use logline_core::llm::Embedder;
use logline_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::client::HttpClient;
use crate::config::OpenAiConfig;
use crate::error::OpenAiError;

const PATH: &str = "/embeddings";

/// Body bytes allowed per input on top of the configured cap: a 3072-dimension vector
/// printed with spaces fits.
const BYTES_PER_VECTOR: usize = 128 << 10;

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Embeds texts with an OpenAI or OpenAI-compatible embeddings endpoint. Inputs are sent in
/// batches of at most [`OpenAiConfig::embedding_batch_size`] (≤ 2048); the vectors come back
/// in input order. A batch's answer may be as large as the greater of
/// [`OpenAiConfig::max_response_bytes`] and 128 KiB per input.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: HttpClient,
}

impl OpenAiEmbedder {
    /// An embedder with `config` (model: [`OpenAiConfig::embedding_model`]).
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        Ok(OpenAiEmbedder {
            client: HttpClient::new(Arc::new(config))?,
        })
    }

    /// An embedder configured from the environment.
    pub fn from_env() -> Result<Self> {
        Self::new(OpenAiConfig::from_env()?)
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let config = self.client.config();
        let body = crate::common::body_bytes(&Request {
            model: &config.embedding_model,
            input: texts,
            encoding_format: "float",
            dimensions: config.embedding_dimensions,
        })?;
        let limit = config
            .max_response_bytes
            .max(texts.len().saturating_mul(BYTES_PER_VECTOR));
        let bytes = self
            .client
            .post_json(PATH, Bytes::from(body), limit)
            .await?;
        let response: Response = serde_json::from_slice(&bytes).map_err(OpenAiError::Decode)?;
        if response.data.len() != texts.len() {
            return Err(Error::backend(
                crate::error::BACKEND,
                logline_core::ErrorKind::Unavailable,
                format!(
                    "embeddings: sent {} inputs, got {} vectors",
                    texts.len(),
                    response.data.len()
                ),
                None,
            ));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in response.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            match out.get_mut(i) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(Error::backend(
                        crate::error::BACKEND,
                        logline_core::ErrorKind::Unavailable,
                        format!("embeddings: bad or duplicate index {i}"),
                        None,
                    ))
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.client.config().embedding_model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.client.config().embedding_batch_size.max(1)) {
            let batch = self
                .embed_batch(batch)
                .await
                .map_err(|e| e.with_backend_name(self.client.config().name.clone()))?;
            vectors.extend(batch);
        }
        Ok(vectors)
    }
}
