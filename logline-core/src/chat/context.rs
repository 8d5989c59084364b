//! What a chat task is given: the new message plus a bounded context — the last N messages
//! and the rolling summary, never the whole history — taken when the message is sent, so a
//! resumed task sees exactly what it saw first.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::store::ChatStore;
use super::types::{Attachment, ChatMessage, ChatScope, Conversation, Role};
use crate::error::Result;
use crate::llm::Message;
use crate::text::prefix;

/// How much of a conversation a task sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextLimits {
    /// Last messages shown to the router and the executor.
    pub last_n: u32,
    /// Most bytes of one message shown (longer ones are cut and marked).
    pub max_message_bytes: usize,
    /// Most bytes of the rolling summary.
    pub max_summary_bytes: usize,
    /// Most older messages folded into the summary per task (the rest on later tasks).
    pub summarize_batch: u32,
}

impl Default for ContextLimits {
    fn default() -> Self {
        ContextLimits {
            last_n: 8,
            max_message_bytes: 2000,
            max_summary_bytes: 2000,
            summarize_batch: 16,
        }
    }
}

/// One message as a task sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextMessage {
    /// Its sequence number.
    pub seq: i64,
    /// Who wrote it.
    pub role: Role,
    /// Its text, cut to [`ContextLimits::max_message_bytes`].
    pub content: String,
}

/// The input of a chat task (the run input of the chat workflow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTaskInput {
    /// Conversation.
    pub conversation_id: Uuid,
    /// The message this task answers.
    pub message_id: Uuid,
    /// Its sequence number.
    pub message_seq: i64,
    /// Its text, cut to the per-message limit.
    pub text: String,
    /// Its attachments.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The rolling summary when the message was sent.
    #[serde(default)]
    pub summary: Option<String>,
    /// The last message the summary covers.
    #[serde(default)]
    pub summary_upto: i64,
    /// Older messages the summary does not cover yet (at most a batch), oldest first.
    #[serde(default)]
    pub to_summarize: Vec<ContextMessage>,
    /// The last N messages before this one, oldest first.
    #[serde(default)]
    pub recent: Vec<ContextMessage>,
    /// Most bytes of the summary the task keeps.
    pub max_summary_bytes: usize,
}

fn shown(m: &ChatMessage, limits: &ContextLimits) -> ContextMessage {
    ContextMessage {
        seq: m.seq,
        role: m.role,
        content: cut(&m.content, limits.max_message_bytes),
    }
}

/// `text` cut to at most `max` bytes (on a char boundary), marked when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!(
        "{}… [cut: {} of {} bytes]",
        prefix(text, max),
        max,
        text.len()
    )
}

/// Reads the context of `message` (just stored in `conversation`) from the store: two
/// bounded reads, whatever the conversation's length.
pub async fn task_input(
    store: &dyn ChatStore,
    scope: &ChatScope,
    conversation: &Conversation,
    message: &ChatMessage,
    limits: &ContextLimits,
) -> Result<ChatTaskInput> {
    let recent = store
        .recent_messages(scope, conversation.id, message.seq, limits.last_n)
        .await?;
    let first_recent = recent.first().map_or(message.seq, |m| m.seq);
    let to_summarize = if conversation.summary_upto + 1 < first_recent {
        store
            .messages(
                scope,
                conversation.id,
                conversation.summary_upto,
                limits.summarize_batch,
            )
            .await?
            .into_iter()
            .filter(|m| m.seq < first_recent)
            .collect()
    } else {
        Vec::new()
    };
    Ok(ChatTaskInput {
        conversation_id: conversation.id,
        message_id: message.id,
        message_seq: message.seq,
        text: cut(&message.content, limits.max_message_bytes),
        attachments: message.attachments.clone(),
        summary: conversation
            .summary
            .as_deref()
            .map(|s| cut(s, limits.max_summary_bytes)),
        summary_upto: conversation.summary_upto,
        to_summarize: to_summarize.iter().map(|m| shown(m, limits)).collect(),
        recent: recent.iter().map(|m| shown(m, limits)).collect(),
        max_summary_bytes: limits.max_summary_bytes,
    })
}

impl ChatTaskInput {
    /// The conversation as model messages: the summary (if any), the recent messages, then
    /// the new message with its attachments listed. `summary` overrides the stored one (a
    /// summary updated by this task).
    pub fn conversation(&self, summary: Option<&str>) -> Vec<Message> {
        let mut out = Vec::with_capacity(self.recent.len() + 2);
        if let Some(s) = summary.or(self.summary.as_deref()) {
            out.push(Message::user(format!(
                "Summary of the earlier conversation (context, not a request): {s}"
            )));
        }
        for m in &self.recent {
            out.push(match m.role {
                Role::User => Message::user(m.content.clone()),
                Role::Assistant => Message::Assistant {
                    content: Some(m.content.clone()),
                    tool_calls: Vec::new(),
                },
            });
        }
        out.push(Message::user(self.request()));
        out
    }

    /// The new message with its attachments listed by name, type and size.
    pub fn request(&self) -> String {
        if self.attachments.is_empty() {
            return self.text.clone();
        }
        let files: Vec<String> = self
            .attachments
            .iter()
            .map(|a| {
                format!(
                    "{} ({}, {} bytes, id {})",
                    cut(&a.name, 200),
                    cut(&a.content_type, 100),
                    a.size_bytes,
                    cut(&a.id, 100)
                )
            })
            .collect();
        format!("{}\n\nAttached files: {}", self.text, files.join("; "))
    }

    /// The messages the summary does not cover yet, as one transcript.
    pub fn unsummarized_transcript(&self) -> String {
        self.to_summarize
            .iter()
            .map(|m| format!("{}: {}", m.role.as_str(), m.content))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
