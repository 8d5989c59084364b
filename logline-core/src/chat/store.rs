//! [`ChatStore`]: conversations, messages and tasks, every operation scoped to one user of
//! one tenant. Another user's (or tenant's) conversation or task is `NotFound`, exactly as a
//! missing one.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::types::{ChatMessage, ChatScope, ChatTask, Conversation, NewUserMessage, TaskId};
use crate::error::Result;

/// Where chats live. The memory backend is [`super::MemoryChatStore`]; PostgreSQL's is in
/// `logline-postgres`. Both pass [`crate::conformance::chat`].
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Creates a conversation owned by the scope's user.
    async fn create_conversation(&self, scope: &ChatScope, title: &str) -> Result<Conversation>;

    /// One conversation of the scope.
    async fn get_conversation(&self, scope: &ChatScope, id: Uuid) -> Result<Conversation>;

    /// The scope's conversations, newest first, at most `limit`.
    async fn list_conversations(&self, scope: &ChatScope, limit: u32) -> Result<Vec<Conversation>>;

    /// Appends a user message and creates the task it starts, as one write. The message gets
    /// the next sequence number of its conversation.
    async fn add_user_message(&self, scope: &ChatScope, msg: NewUserMessage)
        -> Result<ChatMessage>;

    /// Appends the answer of `task_id`. Idempotent: a task has at most one answer, and
    /// writing it again returns the first one unchanged.
    async fn add_assistant_message(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        content: &str,
    ) -> Result<ChatMessage>;

    /// Messages of a conversation with `seq > after_seq`, oldest first, at most `limit`.
    async fn messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>>;

    /// The last `limit` messages with `seq < before_seq`, oldest first.
    async fn recent_messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>>;

    /// Replaces the rolling summary when `upto_seq` is newer than the stored one; returns
    /// whether it did (summaries never go back).
    async fn set_summary(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        summary: &str,
        upto_seq: i64,
    ) -> Result<bool>;

    /// One task of the scope.
    async fn get_task(&self, scope: &ChatScope, task_id: TaskId) -> Result<ChatTask>;

    /// The tasks of a conversation, oldest first.
    async fn tasks(&self, scope: &ChatScope, conversation_id: Uuid) -> Result<Vec<ChatTask>>;

    /// Stores the router's decision on the task (the last write wins).
    async fn set_router_output(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        decision: &Value,
    ) -> Result<()>;
}
