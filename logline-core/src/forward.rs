//! Every backend trait is implemented for `Arc<T>`, `Box<T>` and `&T` (with `T: ?Sized`), so
//! a shared handle (`engine.store().clone()`, an `Arc<dyn LlmProvider>`, a
//! `Box<dyn ToolHub>`, a borrowed backend) is accepted wherever a generic backend is.
//!
//! One macro writes the three impls of each trait from the trait's method list. Every method,
//! default ones included, is forwarded: a pointer never falls back to a default body the
//! pointee overrides. A method added to a trait must be added to its list here too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agent::Agent;
use crate::app::{App, AppStore, ImportOutcome};
use crate::artifact::{
    Artifact, ArtifactFilter, ArtifactIndex, ArtifactStore, ByteStream, NewArtifact,
};
use crate::chat::{
    ChatMessage, ChatScope, ChatStore, ChatTask, Conversation, NewUserMessage, TaskId,
};
use crate::engine::RunStarter;
use crate::error::{Error, Result};
use crate::event::{Event, NewEvent};
use crate::llm::{Embedder, LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent};
use crate::notes::{Note, NoteStore, Todo};
use crate::owner::Owner;
use crate::policy::{Decision, Policy, PolicyEngine, PolicyRequest, PolicySource};
use crate::queue::{
    Backoff, FailOutcome, Job, JobHandler, JobId, JobRecord, NewJob, Queue, QueueStats,
};
use crate::recall::{
    MemoryFilter, MemoryItem, Owner as RecallOwner, ReadScope, RecallStore, ScoredItem,
};
use crate::retention::RunRetirement;
use crate::run::{Run, RunId, Step};
use crate::search::{CatalogObserver, Ranked, Reranked, Reranker};
use crate::store::{
    Checkpoint, Committed, DefinitionStore, EffectRecord, Page, RunFilter, RunStore, ToolQuery,
};
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use crate::workflow::Workflow;

/// Implements `$trait` for `Arc<T>`, `Box<T>` and `&T` by forwarding each listed method to
/// `T`. Methods are listed as `fn` (plain) or `async fn` (through `async_trait`), each with
/// `&self` and named arguments.
macro_rules! forward {
    (
        $(#[$attr:meta])*
        trait $trait:ident {
            $(fn $sync:ident(&self $(, $sarg:ident: $sty:ty)* $(,)?) $(-> $sret:ty)?;)*
            $(async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*
        }
    ) => {
        forward!(@impl [T] [Arc<T>] $trait
            { $(fn $sync(&self $(, $sarg: $sty)*) $(-> $sret)?;)* }
            { $(async fn $method(&self $(, $arg: $ty)*) -> $ret;)* });
        forward!(@impl [T] [Box<T>] $trait
            { $(fn $sync(&self $(, $sarg: $sty)*) $(-> $sret)?;)* }
            { $(async fn $method(&self $(, $arg: $ty)*) -> $ret;)* });
        forward!(@impl ['a, T] [&'a T] $trait
            { $(fn $sync(&self $(, $sarg: $sty)*) $(-> $sret)?;)* }
            { $(async fn $method(&self $(, $arg: $ty)*) -> $ret;)* });
    };
    (@impl [$($gen:tt)*] [$ptr:ty] $trait:ident
        { $(fn $sync:ident(&self $(, $sarg:ident: $sty:ty)*) $(-> $sret:ty)?;)* }
        { $(async fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }
    ) => {
        #[async_trait]
        impl<$($gen)*> $trait for $ptr
        where
            T: $trait + ?Sized,
        {
            $(
                fn $sync(&self $(, $sarg: $sty)*) $(-> $sret)? {
                    (**self).$sync($($sarg),*)
                }
            )*
            $(
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    (**self).$method($($arg),*).await
                }
            )*
        }
    };
}

forward! {
    trait DefinitionStore {
        async fn put_workflow(&self, workflow: &Workflow) -> Result<()>;
        async fn get_workflow(&self, id: &str, version: Option<&str>) -> Result<Workflow>;
        async fn latest_workflow_version(&self, id: &str) -> Result<String>;
        async fn list_workflows(&self, page: Page) -> Result<Vec<Workflow>>;
        async fn delete_workflow(&self, id: &str) -> Result<()>;
        async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()>;
        async fn get_tool(&self, id: &str) -> Result<ToolSpec>;
        async fn get_tool_spec(&self, id: &str) -> Result<Arc<ToolSpec>>;
        async fn list_tools(&self, query: &ToolQuery) -> Result<Vec<ToolSpec>>;
        async fn list_tool_specs(&self, query: &ToolQuery) -> Result<Vec<Arc<ToolSpec>>>;
        async fn delete_tool(&self, id: &str) -> Result<()>;
        async fn put_agent(&self, agent: &Agent) -> Result<()>;
        async fn get_agent(&self, id: &str) -> Result<Agent>;
        async fn list_agents(&self, page: Page) -> Result<Vec<Agent>>;
        async fn put_policy(&self, policy: &Policy) -> Result<()>;
        async fn list_policies(&self) -> Result<Vec<Policy>>;
        async fn delete_policy(&self, id: &str) -> Result<()>;
    }
}

forward! {
    trait RunStore {
        async fn create_run(&self, run: &Run, events: &[NewEvent]) -> Result<Committed>;
        async fn get_run(&self, id: RunId) -> Result<Run>;
        async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>>;
        async fn commit(&self, checkpoint: Checkpoint<'_>) -> Result<Committed>;
        async fn events(&self, run_id: RunId, after_seq: u64, limit: usize) -> Result<Vec<Event>>;
        async fn last_seq(&self, run_id: RunId) -> Result<u64>;
        async fn steps(&self, run_id: RunId) -> Result<Vec<Step>>;
        async fn record_effect(&self, effect: &EffectRecord) -> Result<EffectRecord>;
        async fn record_intent(&self, intent: &EffectRecord, fence: i64)
            -> Result<Option<EffectRecord>>;
        async fn release_intent(&self, run_id: RunId, step_index: u32, seq: u32) -> Result<()>;
        async fn effects(&self, run_id: RunId, step_index: u32) -> Result<Vec<EffectRecord>>;
        async fn wait_for_events(
            &self,
            run_id: RunId,
            after_seq: u64,
            timeout: Duration,
        ) -> Result<()>;
        async fn wait_for_settled(
            &self,
            run_id: RunId,
            after_seq: u64,
            timeout: Duration,
        ) -> Result<()>;
        async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
    }
}

forward! {
    trait LlmProvider {
        fn name(&self) -> &str;
        async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse>;
        async fn stream(
            &self,
            request: &LlmRequest,
        ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>>;
    }
}

forward! {
    trait Embedder {
        fn model(&self) -> &str;
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
    }
}

forward! {
    trait ToolHub {
        fn name(&self) -> &str;
        fn honours_idempotency_keys(&self) -> bool;
        async fn list_tools(&self, page: PageRequest) -> Result<ToolPage>;
        async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext)
            -> Result<Value>;
        async fn connections(&self, subject: &crate::run::Subject) -> Result<Vec<Connection>>;
    }
}

forward! {
    trait PolicyEngine {
        async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision>;
    }
}

forward! {
    trait PolicySource {
        async fn policies(&self) -> Result<Arc<Vec<Policy>>>;
    }
}

forward! {
    trait Queue {
        async fn enqueue(&self, job: NewJob) -> Result<JobId>;
        async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>>;
        async fn claim(
            &self,
            queue: &str,
            worker: &str,
            max: usize,
            lease: Duration,
        ) -> Result<Vec<Job>>;
        async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>>;
        async fn complete(&self, job: &Job) -> Result<()>;
        async fn complete_batch(&self, jobs: &[Job]) -> Result<()>;
        async fn fail(
            &self,
            job: &Job,
            error: &str,
            retryable: bool,
            backoff: Backoff,
        ) -> Result<FailOutcome>;
        async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>>;
        async fn retry_dead_letter(&self, id: JobId) -> Result<()>;
        async fn job(&self, id: JobId) -> Result<JobRecord>;
        async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()>;
        async fn live_key_prefixes(&self, queue: &str, prefixes: &[String])
            -> Result<Vec<String>>;
        async fn stats(&self, queue: &str) -> Result<QueueStats>;
        async fn withdraw(&self, queue: &str, key: &str) -> Result<bool>;
        async fn purge_completed(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
    }
}

forward! {
    trait JobHandler {
        fn describe_error(&self, error: &Error) -> String;
        async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()>;
        async fn dead_lettered(&self, job: &Job, error: &Error) -> Result<()>;
    }
}

forward! {
    trait RunStarter {
        async fn create_run_and_enqueue(
            &self,
            run: &Run,
            events: &[NewEvent],
            job: NewJob,
        ) -> Result<(Committed, JobId)>;
    }
}

forward! {
    trait RunRetirement {
        async fn retire_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
    }
}

forward! {
    trait Reranker {
        fn pool(&self) -> usize;
        fn forget(&self, tool_id: &str);
        async fn rerank(
            &self,
            query: &str,
            parts: &[String],
            candidates: Vec<Ranked>,
        ) -> Result<Reranked>;
    }
}

forward! {
    trait CatalogObserver {
        fn catalog_changed(&self, upserted: &[ToolSpec], removed: &[String]);
    }
}

forward! {
    trait ArtifactStore {
        async fn put_stream(
            &self,
            owner: &Owner,
            upload: NewArtifact,
            body: ByteStream,
        ) -> Result<Artifact>;
        async fn head(&self, owner: &Owner, id: uuid::Uuid) -> Result<Artifact>;
        async fn get(&self, owner: &Owner, id: uuid::Uuid) -> Result<(Artifact, bytes::Bytes)>;
        async fn open(&self, owner: &Owner, id: uuid::Uuid) -> Result<(Artifact, ByteStream)>;
        async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>>;
        async fn delete(&self, owner: &Owner, id: uuid::Uuid) -> Result<()>;
    }
}

forward! {
    trait AppStore {
        async fn put_app(&self, app: &App) -> Result<ImportOutcome>;
        async fn get_app(&self, id: &str) -> Result<App>;
        async fn list_apps(&self, page: Page) -> Result<Vec<App>>;
        async fn delete_app(&self, id: &str) -> Result<()>;
    }
}

forward! {
    trait ArtifactIndex {
        async fn insert(&self, artifact: &Artifact) -> Result<()>;
        async fn get(&self, owner: &Owner, id: uuid::Uuid) -> Result<Artifact>;
        async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>>;
        async fn remove(&self, owner: &Owner, id: uuid::Uuid) -> Result<Artifact>;
    }
}

forward! {
    trait NoteStore {
        async fn create_note(&self, note: &Note) -> Result<()>;
        async fn list_notes(&self, owner: &Owner, limit: u32) -> Result<Vec<Note>>;
        async fn create_todo(&self, todo: &Todo) -> Result<()>;
        async fn list_todos(&self, owner: &Owner, limit: u32) -> Result<Vec<Todo>>;
    }
}

forward! {
    trait ChatStore {
        async fn create_conversation(&self, scope: &ChatScope, title: &str) -> Result<Conversation>;
        async fn get_conversation(&self, scope: &ChatScope, id: Uuid) -> Result<Conversation>;
        async fn list_conversations(&self, scope: &ChatScope, limit: u32) -> Result<Vec<Conversation>>;
        async fn add_user_message(&self, scope: &ChatScope, msg: NewUserMessage) -> Result<ChatMessage>;
        async fn add_assistant_message(
            &self,
            scope: &ChatScope,
            task_id: TaskId,
            content: &str,
        ) -> Result<ChatMessage>;
        async fn messages(
            &self,
            scope: &ChatScope,
            conversation_id: Uuid,
            after_seq: i64,
            limit: u32,
        ) -> Result<Vec<ChatMessage>>;
        async fn recent_messages(
            &self,
            scope: &ChatScope,
            conversation_id: Uuid,
            before_seq: i64,
            limit: u32,
        ) -> Result<Vec<ChatMessage>>;
        async fn set_summary(
            &self,
            scope: &ChatScope,
            conversation_id: Uuid,
            summary: &str,
            upto_seq: i64,
        ) -> Result<bool>;
        async fn get_task(&self, scope: &ChatScope, task_id: TaskId) -> Result<ChatTask>;
        async fn tasks(&self, scope: &ChatScope, conversation_id: Uuid) -> Result<Vec<ChatTask>>;
        async fn set_router_output(
            &self,
            scope: &ChatScope,
            task_id: TaskId,
            decision: &Value,
        ) -> Result<()>;
    }
}

forward! {
    trait RecallStore {
        async fn put(&self, item: &MemoryItem) -> Result<()>;
        async fn get(&self, scope: &ReadScope, id: uuid::Uuid) -> Result<MemoryItem>;
        async fn list(&self, scope: &ReadScope, filter: &MemoryFilter, limit: usize)
            -> Result<Vec<MemoryItem>>;
        async fn search(&self, scope: &ReadScope, query: &[f32], filter: &MemoryFilter,
            limit: usize) -> Result<Vec<ScoredItem>>;
        async fn delete(&self, tenant_id: &str, owners: &[RecallOwner], ids: &[uuid::Uuid],
            filter: &MemoryFilter) -> Result<u64>;
        async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> Result<u64>;
    }
}
