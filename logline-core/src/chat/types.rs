//! Conversations, messages, attachments and tasks as the chat store keeps them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::run::{RunId, Subject};

/// A chat task is a run of the chat workflow: its id is the run's id.
pub type TaskId = RunId;

/// Whose chat data an operation touches: always from the trusted context (the principal or
/// the run's subject), never from model output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatScope {
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
}

impl ChatScope {
    /// The scope of `user_id` in `tenant_id`.
    pub fn new(tenant_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        ChatScope {
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
        }
    }

    /// The scope of a run's subject; a chat needs a user.
    pub fn of_subject(subject: &Subject) -> Result<Self> {
        let user = subject.user_id.as_deref().ok_or_else(|| {
            Error::InvalidInput("a chat belongs to a user; the subject has none".into())
        })?;
        Ok(ChatScope::new(subject.tenant_id.clone(), user))
    }
}

/// A conversation of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Owner.
    pub user_id: String,
    /// Title.
    pub title: String,
    /// Rolling summary of the messages up to `summary_upto` (kept by a cheap model).
    pub summary: Option<String>,
    /// Sequence number of the last message the summary covers (0: none).
    pub summary_upto: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user.
    User,
    /// The assistant (the answer of a task).
    Assistant,
}

impl Role {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses [`Role::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// A file attached to a message: a reference into the host's upload store, not its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Id in the upload store.
    pub id: String,
    /// File name as uploaded.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Content type (`application/pdf`).
    pub content_type: String,
}

impl From<&crate::artifact::Artifact> for Attachment {
    /// An uploaded artifact attached to a message.
    fn from(a: &crate::artifact::Artifact) -> Self {
        Attachment {
            id: a.id.to_string(),
            name: a.name.clone(),
            size_bytes: a.size,
            content_type: a.content_type.clone(),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Position in the conversation, from 1, gap-free.
    pub seq: i64,
    /// Who wrote it.
    pub role: Role,
    /// Text.
    pub content: String,
    /// Attachments (user messages).
    pub attachments: Vec<Attachment>,
    /// The task the message started (user) or answered (assistant).
    pub task_id: Option<TaskId>,
    /// Written.
    pub created_at: DateTime<Utc>,
}

/// A user message to store together with the task it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUserMessage {
    /// Conversation.
    pub conversation_id: Uuid,
    /// Message id.
    pub message_id: Uuid,
    /// Task id (the id of the run that will answer it).
    pub task_id: TaskId,
    /// Text.
    pub content: String,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

/// A chat task as the chat store keeps it; its status, trace and result are the run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTask {
    /// Id (= the run's id).
    pub id: TaskId,
    /// Conversation.
    pub conversation_id: Uuid,
    /// The user message that started it.
    pub message_id: Uuid,
    /// The router's decision, once made.
    pub router: Option<Value>,
    /// The assistant message that answered it, once written.
    pub answer_message_id: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
}
