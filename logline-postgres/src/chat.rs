//! [`PgChatStore`]: the chat store on PostgreSQL. Every statement carries the caller's
//! tenant and user in its `WHERE` clause (through the conversation), so another scope's rows
//! are never read: they are `NotFound`, exactly as missing ones.

use std::sync::Arc;

use async_trait::async_trait;
use logline_core::chat::{
    Attachment, ChatMessage, ChatScope, ChatStore, ChatTask, Conversation, NewUserMessage, Role,
    TaskId,
};
use logline_core::nul::{replace_nul, replace_nul_str};
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::db::Db;
use crate::error::{corrupt, db, is_unique_violation};

const CONVERSATION: &str = "id, tenant_id, user_id, title, summary, summary_upto, created_at";
const MESSAGE: &str =
    "m.id, m.conversation_id, m.seq, m.role, m.content, m.attachments, m.task_id, m.created_at";
const TASK: &str =
    "t.id, t.conversation_id, t.message_id, t.router, t.answer_message_id, t.created_at";

/// Chats on PostgreSQL (tables of migration `0002_chat`), from
/// [`crate::PgBackend::chat_store`].
#[derive(Clone)]
pub struct PgChatStore {
    db: Arc<Db>,
}

impl std::fmt::Debug for PgChatStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChatStore").finish_non_exhaustive()
    }
}

impl PgChatStore {
    pub(crate) fn on(db: Arc<Db>) -> Self {
        PgChatStore { db }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.db.pool.begin().await.map_err(db)
    }

    /// Fails with `NotFound` unless the conversation is the scope's.
    async fn owned(&self, scope: &ChatScope, id: Uuid) -> Result<()> {
        let found = sqlx::query(
            "SELECT 1 FROM chat_conversations WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
        )
        .bind(id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?;
        found
            .map(|_| ())
            .ok_or_else(|| not_found("conversation", id))
    }
    /// Runs a page query of messages (`$1` conversation, `$2`/`$3` tenant and user, `$4` the
    /// sequence bound, `$5` the limit) joined to the caller's conversation. The ownership
    /// check costs a second round trip only when the page is empty: another caller's
    /// conversation is then `NotFound`, not an empty page.
    async fn message_page(
        &self,
        sql: &str,
        scope: &ChatScope,
        conversation_id: Uuid,
        seq_bound: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let rows = sqlx::query(sql)
            .bind(conversation_id)
            .bind(&scope.tenant_id)
            .bind(&scope.user_id)
            .bind(seq_bound)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        if rows.is_empty() {
            self.owned(scope, conversation_id).await?;
        }
        rows.iter().map(message).collect()
    }
}

fn not_found(entity: &'static str, id: Uuid) -> Error {
    Error::NotFound {
        entity: entity.into(),
        id: id.to_string(),
    }
}

fn text(s: &str) -> String {
    replace_nul_str(s).into_owned()
}

fn conversation(row: &PgRow) -> Result<Conversation> {
    Ok(Conversation {
        id: row.try_get("id").map_err(db)?,
        tenant_id: row.try_get("tenant_id").map_err(db)?,
        user_id: row.try_get("user_id").map_err(db)?,
        title: row.try_get("title").map_err(db)?,
        summary: row.try_get("summary").map_err(db)?,
        summary_upto: row.try_get("summary_upto").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn message(row: &PgRow) -> Result<ChatMessage> {
    let role: String = row.try_get("role").map_err(db)?;
    let attachments: Value = row.try_get("attachments").map_err(db)?;
    Ok(ChatMessage {
        id: row.try_get("id").map_err(db)?,
        conversation_id: row.try_get("conversation_id").map_err(db)?,
        seq: row.try_get("seq").map_err(db)?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("chat message role `{role}`")))?,
        content: row.try_get("content").map_err(db)?,
        attachments: serde_json::from_value::<Vec<Attachment>>(attachments)
            .map_err(|e| corrupt(format!("chat message attachments: {e}")))?,
        task_id: row.try_get("task_id").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn task(row: &PgRow) -> Result<ChatTask> {
    Ok(ChatTask {
        id: row.try_get("id").map_err(db)?,
        conversation_id: row.try_get("conversation_id").map_err(db)?,
        message_id: row.try_get("message_id").map_err(db)?,
        router: row.try_get("router").map_err(db)?,
        answer_message_id: row.try_get("answer_message_id").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

/// Takes the next sequence number of a conversation of the scope (locks its row).
async fn next_seq(
    tx: &mut Transaction<'static, Postgres>,
    scope: &ChatScope,
    conversation_id: Uuid,
) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE chat_conversations SET next_seq = next_seq + 1 \
         WHERE id = $1 AND tenant_id = $2 AND user_id = $3 RETURNING next_seq - 1 AS seq",
    )
    .bind(conversation_id)
    .bind(&scope.tenant_id)
    .bind(&scope.user_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let row = row.ok_or_else(|| not_found("conversation", conversation_id))?;
    row.try_get("seq").map_err(db)
}

async fn insert_message(
    tx: &mut Transaction<'static, Postgres>,
    m: &ChatMessage,
) -> Result<ChatMessage> {
    let attachments = serde_json::to_value(&m.attachments)
        .map_err(|e| Error::Internal(format!("attachments: {e}")))?;
    let row = sqlx::query(&format!(
        "INSERT INTO chat_messages AS m (id, conversation_id, seq, role, content, attachments, task_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {MESSAGE}"
    ))
    .bind(m.id)
    .bind(m.conversation_id)
    .bind(m.seq)
    .bind(m.role.as_str())
    .bind(text(&m.content))
    .bind(attachments)
    .bind(m.task_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict(format!("chat message {} exists", m.id))
        } else {
            db(e)
        }
    })?;
    message(&row)
}

#[async_trait]
impl ChatStore for PgChatStore {
    async fn create_conversation(&self, scope: &ChatScope, title: &str) -> Result<Conversation> {
        let row = sqlx::query(&format!(
            "INSERT INTO chat_conversations (id, tenant_id, user_id, title) \
             VALUES ($1, $2, $3, $4) RETURNING {CONVERSATION}"
        ))
        .bind(Uuid::new_v4())
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .bind(text(title))
        .fetch_one(&self.db.pool)
        .await
        .map_err(db)?;
        conversation(&row)
    }

    async fn get_conversation(&self, scope: &ChatScope, id: Uuid) -> Result<Conversation> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION} FROM chat_conversations \
             WHERE id = $1 AND tenant_id = $2 AND user_id = $3"
        ))
        .bind(id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?;
        conversation(&row.ok_or_else(|| not_found("conversation", id))?)
    }

    async fn list_conversations(&self, scope: &ChatScope, limit: u32) -> Result<Vec<Conversation>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONVERSATION} FROM chat_conversations WHERE tenant_id = $1 AND user_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter().map(conversation).collect()
    }

    async fn add_user_message(
        &self,
        scope: &ChatScope,
        msg: NewUserMessage,
    ) -> Result<ChatMessage> {
        let mut tx = self.begin().await?;
        let seq = next_seq(&mut tx, scope, msg.conversation_id).await?;
        let stored = insert_message(
            &mut tx,
            &ChatMessage {
                id: msg.message_id,
                conversation_id: msg.conversation_id,
                seq,
                role: Role::User,
                content: msg.content,
                attachments: msg.attachments,
                task_id: Some(msg.task_id),
                created_at: chrono::Utc::now(),
            },
        )
        .await?;
        sqlx::query("INSERT INTO chat_tasks (id, conversation_id, message_id) VALUES ($1, $2, $3)")
            .bind(msg.task_id)
            .bind(msg.conversation_id)
            .bind(msg.message_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!("chat task {} exists", msg.task_id))
                } else {
                    db(e)
                }
            })?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn add_assistant_message(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        content: &str,
    ) -> Result<ChatMessage> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT t.conversation_id, t.answer_message_id FROM chat_tasks t \
             JOIN chat_conversations c ON c.id = t.conversation_id \
             WHERE t.id = $1 AND c.tenant_id = $2 AND c.user_id = $3 FOR UPDATE OF t",
        )
        .bind(task_id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| not_found("chat task", task_id))?;
        let conversation_id: Uuid = row.try_get("conversation_id").map_err(db)?;
        let answered: Option<Uuid> = row.try_get("answer_message_id").map_err(db)?;
        if let Some(id) = answered {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE} FROM chat_messages m WHERE m.id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            return message(&row);
        }
        let seq = next_seq(&mut tx, scope, conversation_id).await?;
        let stored = insert_message(
            &mut tx,
            &ChatMessage {
                id: Uuid::new_v4(),
                conversation_id,
                seq,
                role: Role::Assistant,
                content: content.to_string(),
                attachments: Vec::new(),
                task_id: Some(task_id),
                created_at: chrono::Utc::now(),
            },
        )
        .await?;
        sqlx::query("UPDATE chat_tasks SET answer_message_id = $2 WHERE id = $1")
            .bind(task_id)
            .bind(stored.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let sql = format!(
            "SELECT {MESSAGE} FROM chat_messages m JOIN chat_conversations c \
             ON c.id = m.conversation_id AND c.tenant_id = $2 AND c.user_id = $3 \
             WHERE m.conversation_id = $1 AND m.seq > $4 ORDER BY m.seq LIMIT $5"
        );
        self.message_page(&sql, scope, conversation_id, after_seq, limit)
            .await
    }

    async fn recent_messages(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let sql = format!(
            "SELECT * FROM (SELECT {MESSAGE} FROM chat_messages m JOIN chat_conversations c \
             ON c.id = m.conversation_id AND c.tenant_id = $2 AND c.user_id = $3 \
             WHERE m.conversation_id = $1 AND m.seq < $4 ORDER BY m.seq DESC LIMIT $5) r \
             ORDER BY seq"
        );
        self.message_page(&sql, scope, conversation_id, before_seq, limit)
            .await
    }

    async fn set_summary(
        &self,
        scope: &ChatScope,
        conversation_id: Uuid,
        summary: &str,
        upto_seq: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE chat_conversations SET summary = $4, summary_upto = $5 \
             WHERE id = $1 AND tenant_id = $2 AND user_id = $3 AND summary_upto < $5",
        )
        .bind(conversation_id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .bind(text(summary))
        .bind(upto_seq)
        .execute(&self.db.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.owned(scope, conversation_id).await?;
        Ok(false)
    }

    async fn get_task(&self, scope: &ChatScope, task_id: TaskId) -> Result<ChatTask> {
        let row = sqlx::query(&format!(
            "SELECT {TASK} FROM chat_tasks t JOIN chat_conversations c ON c.id = t.conversation_id \
             WHERE t.id = $1 AND c.tenant_id = $2 AND c.user_id = $3"
        ))
        .bind(task_id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?;
        task(&row.ok_or_else(|| not_found("chat task", task_id))?)
    }

    async fn tasks(&self, scope: &ChatScope, conversation_id: Uuid) -> Result<Vec<ChatTask>> {
        self.owned(scope, conversation_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {TASK} FROM chat_tasks t JOIN chat_conversations c ON c.id = t.conversation_id \
             WHERE t.conversation_id = $1 AND c.tenant_id = $2 AND c.user_id = $3 \
             ORDER BY t.created_at, t.id"
        ))
        .bind(conversation_id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter().map(task).collect()
    }

    async fn set_router_output(
        &self,
        scope: &ChatScope,
        task_id: TaskId,
        decision: &Value,
    ) -> Result<()> {
        let mut decision = decision.clone();
        replace_nul(&mut decision);
        let done = sqlx::query(
            "UPDATE chat_tasks t SET router = $4 FROM chat_conversations c \
             WHERE t.id = $1 AND c.id = t.conversation_id AND c.tenant_id = $2 AND c.user_id = $3",
        )
        .bind(task_id)
        .bind(&scope.tenant_id)
        .bind(&scope.user_id)
        .bind(decision)
        .execute(&self.db.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(not_found("chat task", task_id));
        }
        Ok(())
    }
}
