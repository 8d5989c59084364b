//! [`MemoryChatStore`]: the chat store in memory (same semantics as PostgreSQL's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::store::ChatStore;
use super::types::{ChatMessage, ChatScope, ChatTask, Conversation, NewUserMessage, Role, TaskId};
use crate::engine::lock;
use crate::error::{Error, Result};

#[derive(Default)]
struct Data {
    conversations: HashMap<Uuid, Conversation>,
    /// Messages per conversation, in sequence order.
    messages: HashMap<Uuid, Vec<ChatMessage>>,
    tasks: HashMap<TaskId, ChatTask>,
}

impl Data {
    fn conversation(&self, scope: &ChatScope, id: Uuid) -> Result<&Conversation> {
        self.conversations
            .get(&id)
            .filter(|c| owned(scope, c))
            .ok_or_else(|| conversation_not_found(id))
    }

    fn task(&self, scope: &ChatScope, id: TaskId) -> Result<&ChatTask> {
        self.tasks
            .get(&id)
            .filter(|t| {
                self.conversations
                    .get(&t.conversation_id)
                    .is_some_and(|c| owned(scope, c))
            })
            .ok_or_else(|| task_not_found(id))
    }

    fn append(&mut self, conversation_id: Uuid, mut msg: ChatMessage) -> ChatMessage {
        let list = self.messages.entry(conversation_id).or_default();
        msg.seq = list.len() as i64 + 1;
        list.push(msg.clone());
        msg
    }
}

fn owned(scope: &ChatScope, c: &Conversation) -> bool {
    c.tenant_id == scope.tenant_id && c.user_id == scope.user_id
}

/// The error for a conversation that is missing or not the caller's.
pub(crate) fn conversation_not_found(id: Uuid) -> Error {
    Error::NotFound {
        entity: "conversation".into(),
        id: id.to_string(),
    }
}

/// The error for a task that is missing or not the caller's.
pub(crate) fn task_not_found(id: TaskId) -> Error {
    Error::NotFound {
        entity: "chat task".into(),
        id: id.to_string(),
    }
}

/// Chats in memory. Cheap to clone; clones share the data.
#[derive(Clone, Default)]
pub struct MemoryChatStore {
    data: Arc<Mutex<Data>>,
}

impl MemoryChatStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryChatStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryChatStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl ChatStore for MemoryChatStore {
    async fn create_conversation(&self, scope: &ChatScope, title: &str) -> Result<Conversation> {
        let c = Conversation {
            id: Uuid::new_v4(),
            tenant_id: scope.tenant_id.clone(),
            user_id: scope.user_id.clone(),
            title: crate::nul::replace_nul_str(title).into_owned(),
            summary: None,
            summary_upto: 0,
            created_at: Utc::now(),
        };
        lock(&self.data).conversations.insert(c.id, c.clone());
        Ok(c)
    }

    async fn get_conversation(&self, scope: &ChatScope, id: Uuid) -> Result<Conversation> {
        lock(&self.data).conversation(scope, id).cloned()
    }

    async fn list_conversations(&self, scope: &ChatScope, limit: u32) -> Result<Vec<Conversation>> {
        let data = lock(&self.data);
        let mut list: Vec<Conversation> = data
            .conversations
            .values()
            .filter(|c| owned(scope, c))
            .cloned()
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        list.truncate(limit as usize);
        Ok(list)
    }

    async fn add_user_message(
        &self,
        scope: &ChatScope,
        msg: NewUserMessage,
    ) -> Result<ChatMessage> {
        let mut data = lock(&self.data);
        data.conversation(scope, msg.conversation_id)?;
        if data.tasks.contains_key(&msg.task_id) {
            return Err(Error::Conflict(format!("chat task {} exists", msg.task_id)));
        }
        let now = Utc::now();
        let stored = data.append(
            msg.conversation_id,
            ChatMessage {
                id: msg.message_id,
                conversation_id: msg.conversation_id,
                seq: 0,
                role: Role::User,
                content: crate::nul::replace_nul_str(&msg.content).into_owned(),
                attachments: msg.attachments,
                task_id: Some(msg.task_id),
                created_at: now,
            },
        );
        data.tasks.insert(
            msg.task_id,
            ChatTask {
                id: msg.task_id,
                conversation_id: msg.conversation_id,
                message_id: msg.message_id,
                router: None,
                answer_message_id: None,
                created_at: now,
            },
        );
        Ok(stored)
    }

    async fn add_assistant_message(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        content: &str,
    ) -> Result<ChatMessage> {
        let mut data = lock(&self.data);
        let task = data.task(scope, task_id)?.clone();
        if let Some(id) = task.answer_message_id {
            let list = data.messages.get(&task.conversation_id);
            if let Some(m) = list.and_then(|l| l.iter().find(|m| m.id == id)) {
                return Ok(m.clone());
            }
        }
        let stored = data.append(
            task.conversation_id,
            ChatMessage {
                id: Uuid::new_v4(),
                conversation_id: task.conversation_id,
                seq: 0,
                role: Role::Assistant,
                content: crate::nul::replace_nul_str(content).into_owned(),
                attachments: Vec::new(),
                task_id: Some(task_id),
                created_at: Utc::now(),
            },
        );
        if let Some(t) = data.tasks.get_mut(&task_id) {
            t.answer_message_id = Some(stored.id);
        }
        Ok(stored)
    }

    async fn messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let data = lock(&self.data);
        data.conversation(scope, conversation_id)?;
        Ok(data
            .messages
            .get(&conversation_id)
            .map(|l| {
                l.iter()
                    .filter(|m| m.seq > after_seq)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn recent_messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let data = lock(&self.data);
        data.conversation(scope, conversation_id)?;
        let Some(list) = data.messages.get(&conversation_id) else {
            return Ok(Vec::new());
        };
        let before: Vec<&ChatMessage> = list.iter().filter(|m| m.seq < before_seq).collect();
        let skip = before.len().saturating_sub(limit as usize);
        Ok(before.into_iter().skip(skip).cloned().collect())
    }

    async fn set_summary(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        summary: &str,
        upto_seq: i64,
    ) -> Result<bool> {
        let mut data = lock(&self.data);
        data.conversation(scope, conversation_id)?;
        let Some(c) = data.conversations.get_mut(&conversation_id) else {
            return Err(conversation_not_found(conversation_id));
        };
        if upto_seq <= c.summary_upto {
            return Ok(false);
        }
        c.summary = Some(crate::nul::replace_nul_str(summary).into_owned());
        c.summary_upto = upto_seq;
        Ok(true)
    }

    async fn get_task(&self, scope: &ChatScope, task_id: TaskId) -> Result<ChatTask> {
        lock(&self.data).task(scope, task_id).cloned()
    }

    async fn tasks(&self, scope: &ChatScope, conversation_id: Uuid) -> Result<Vec<ChatTask>> {
        let data = lock(&self.data);
        data.conversation(scope, conversation_id)?;
        let mut list: Vec<ChatTask> = data
            .tasks
            .values()
            .filter(|t| t.conversation_id == conversation_id)
            .cloned()
            .collect();
        list.sort_by_key(|t| (t.created_at, t.id));
        Ok(list)
    }

    async fn set_router_output(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        decision: &Value,
    ) -> Result<()> {
        let mut data = lock(&self.data);
        data.task(scope, task_id)?;
        if let Some(t) = data.tasks.get_mut(&task_id) {
            let mut v = decision.clone();
            crate::nul::replace_nul(&mut v);
            t.router = Some(v);
        }
        Ok(())
    }
}
