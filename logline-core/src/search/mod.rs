//! Tool search over large catalogs: policy gate first, then Top-N ranking.
//!
//! The system "has all the tools" (thousands of hub actions) yet shows a model only the few
//! that fit the request. [`ToolSearch::search`]:
//!
//! 1. **gate** ([`ToolGate`], configured by [`GateRules`]): only toolkits the user has
//!    connected (plus tools that need no connection), no blocked tag (`delete`, `money`,
//!    `admin` by default), risk at most the allowed level, inside the app's scope; then the
//!    [`crate::policy::PolicyEngine`] is asked (`ToolExposure`) per candidate. A denied tool is
//!    never returned;
//! 2. **rank** ([`ToolIndex`]): BM25F over the tool name, toolkit, description and
//!    parameters, with a tokeniser that splits `snake_case` and `CamelCase` slugs and stems
//!    words; the router's candidate apps and intent tags boost ([`RankHints`]); a multi-intent
//!    request is split into sub-requests, each ranked along with the whole request, and the
//!    rankings merged so every intent gets slots ([`DecomposeConfig`]); optionally fused
//!    with a dense list — the tools whose embeddings are nearest the request, exact search
//!    over vectors kept in step with the catalog ([`DenseRetriever`]) — so a request worded
//!    unlike its tools still reaches the rerank pool;
//! 3. **rerank** (optional, any [`Reranker`]): the best candidates re-ordered by embedding
//!    similarity to the request or its closest sub-request ([`EmbeddingReranker`]) or by an
//!    LLM reading the request and the numbered candidates ([`LlmReranker`]); a reranker only
//!    re-orders what the gate passed;
//! 4. the Top-N (default [`DEFAULT_TOP_N`]) come back as LLM function definitions whose
//!    names fit `^[a-zA-Z0-9_-]{1,64}$`, with a map back to tool ids ([`names`]).
//!
//! The index updates tool by tool ([`ToolIndex::upsert`], [`ToolIndex::remove`]); a catalog
//! sync reports changes through [`CatalogObserver`], and [`ToolSearch::refresh_from_store`]
//! catches up from the store.
//!
//! ```
//! # use logline_core::search::*;
//! # use logline_core::tool::{ToolSpec, Connection};
//! # use logline_core::run::Subject;
//! # use serde_json::json;
//! # tokio_test_block(async {
//! let mut send = ToolSpec::new("GMAIL_SEND_EMAIL", "Send an email", json!({"type": "object"}))
//!     .in_toolkit("gmail");
//! send.requires_connection = true;
//! let search = ToolSearch::new(ToolIndex::from_tools([send]));
//! let request = SearchRequest::new("email my boss", Subject::tenant("t"))
//!     .gate(GateRules::default().max_risk(logline_core::tool::RiskLevel::High))
//!     .connections(vec![Connection { toolkit: "gmail".into(), account_id: "ca_1".into(), active: true }]);
//! let result = search.search(&request).await.unwrap();
//! assert_eq!(result.tool_ids(), ["GMAIL_SEND_EMAIL"]);
//! assert_eq!(result.tool_id(&result.hits[0].definition.name), Some("GMAIL_SEND_EMAIL"));
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod decompose;
mod dense;
mod gate;
mod impacts;
// Public only for `index::fingerprint`, which logline-composio's catalog sync still imports;
// everything else the index offers is re-exported below.
#[doc(hidden)]
pub mod index;
mod llm_rerank;
mod rank;
mod rerank;
mod service;
mod source;
mod stem;
// Public only for `tokenize::split_words`, which logline-composio's risk rules use to read
// slugs the way the index does.
#[doc(hidden)]
pub mod tokenize;
mod vector_store;
mod vectors;

#[cfg(test)]
mod dense_tests;
#[cfg(test)]
mod tests;

pub use decompose::{DecomposeConfig, PartFusion};
pub use dense::{DenseConfig, DenseRetriever};
pub use gate::{toolkit_key, Connected, DenyReason, GateRules, ToolGate, DEFAULT_BLOCKED_TAGS};
pub use index::{IndexConfig, RankHints, ScoredTool, ToolIndex};
pub use llm_rerank::{LlmRerankConfig, LlmReranker};
pub use rerank::{
    EmbeddingReranker, Fusion, Ranked, RerankConfig, RerankUsage, Reranked, Reranker,
};
pub use service::{
    CatalogObserver, ConnectionScope, RefreshReport, RefreshTask, SearchHit, SearchRequest,
    SearchResult, ToolSearch, DEFAULT_TOP_N,
};
pub use source::SearchToolSource;
pub use vector_store::{text_digest, StoredVector, VectorStore};
pub use vectors::VectorIndex;
