//! Chat store checks: every backend of [`ChatStore`] keeps conversations, messages and tasks
//! per tenant and user (another scope's are `NotFound`), numbers messages gap-free, writes one
//! answer per task and never moves a summary back. [`super::chat_flow`] runs whole chat
//! tasks on the same backends.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::chat::{Attachment, ChatScope, ChatStore, NewUserMessage, Role};
use crate::error::ErrorKind;
use crate::queue::Queue;
use crate::store::Store;

/// A backend's chat store, with the engine store and queue of the same backend.
#[derive(Clone)]
pub struct ChatFixture {
    /// Engine store.
    pub store: Arc<dyn Store>,
    /// Run queue.
    pub queue: Arc<dyn Queue>,
    /// Chat store.
    pub chat: Arc<dyn ChatStore>,
}

fn alice() -> ChatScope {
    ChatScope::new("tenant-a", "alice")
}

fn user_message(conversation_id: Uuid, text: &str) -> NewUserMessage {
    NewUserMessage {
        conversation_id,
        message_id: Uuid::new_v4(),
        task_id: Uuid::new_v4(),
        content: text.into(),
        attachments: Vec::new(),
    }
}

/// Conversations, messages and tasks of one scope are `NotFound` in every other scope.
pub async fn chat_data_is_scoped_to_tenant_and_user(f: ChatFixture) {
    let s = f.chat.as_ref();
    let others = [
        ChatScope::new("tenant-a", "carol"),
        ChatScope::new("tenant-b", "alice"),
    ];
    let c = s
        .create_conversation(&alice(), "Plans")
        .await
        .expect("create");
    let msg = user_message(c.id, "hello");
    let task_id = msg.task_id;
    s.add_user_message(&alice(), msg).await.expect("message");
    for other in &others {
        let nf = |r: crate::Result<()>| {
            assert_eq!(
                r.expect_err("foreign").kind(),
                ErrorKind::NotFound,
                "{other:?}"
            )
        };
        nf(s.get_conversation(other, c.id).await.map(|_| ()));
        nf(s.messages(other, c.id, 0, 10).await.map(|_| ()));
        nf(s.recent_messages(other, c.id, 10, 10).await.map(|_| ()));
        nf(s.get_task(other, task_id).await.map(|_| ()));
        nf(s.tasks(other, c.id).await.map(|_| ()));
        nf(s.set_router_output(other, task_id, &json!({})).await);
        nf(s.set_summary(other, c.id, "x", 5).await.map(|_| ()));
        nf(s.add_assistant_message(other, task_id, "x")
            .await
            .map(|_| ()));
        nf(s.add_user_message(other, user_message(c.id, "x"))
            .await
            .map(|_| ()));
        assert!(s
            .list_conversations(other, 10)
            .await
            .expect("list")
            .is_empty());
    }
    let mine = s.list_conversations(&alice(), 10).await.expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].title, "Plans");
    assert_eq!(
        s.messages(&alice(), c.id, 0, 10)
            .await
            .expect("messages")
            .len(),
        1
    );
}

/// Messages are numbered from 1 without gaps; an answer is written once per task; recent
/// and paged reads are bounded and ordered; attachments and router output round-trip.
pub async fn messages_are_numbered_and_answers_written_once(f: ChatFixture) {
    let s = f.chat.as_ref();
    let c = s.create_conversation(&alice(), "t").await.expect("create");
    let mut first = user_message(c.id, "with a file");
    first.attachments = vec![Attachment {
        id: "up_1".into(),
        name: "report.pdf".into(),
        size_bytes: 1234,
        content_type: "application/pdf".into(),
    }];
    let task = first.task_id;
    let m1 = s
        .add_user_message(&alice(), first.clone())
        .await
        .expect("m1");
    assert_eq!((m1.seq, m1.role), (1, Role::User));
    let dup = s.add_user_message(&alice(), first).await;
    assert_eq!(
        dup.expect_err("same task twice").kind(),
        ErrorKind::Conflict
    );
    let a1 = s
        .add_assistant_message(&alice(), task, "answer")
        .await
        .expect("a1");
    let again = s
        .add_assistant_message(&alice(), task, "other")
        .await
        .expect("again");
    assert_eq!((a1.seq, a1.id), (2, again.id));
    assert_eq!(again.content, "answer", "the first answer stays");
    for i in 0..5 {
        s.add_user_message(&alice(), user_message(c.id, &format!("m{i}")))
            .await
            .expect("more");
    }
    let all = s.messages(&alice(), c.id, 0, 100).await.expect("all");
    let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(all[0].attachments[0].name, "report.pdf");
    assert_eq!(all[1].task_id, Some(task));
    let page = s.messages(&alice(), c.id, 2, 2).await.expect("page");
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    let recent = s
        .recent_messages(&alice(), c.id, 7, 3)
        .await
        .expect("recent");
    assert_eq!(recent.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5, 6]);
    let stored = s.get_task(&alice(), task).await.expect("task");
    assert_eq!(stored.answer_message_id, Some(a1.id));
    assert_eq!(stored.message_id, m1.id);
    s.set_router_output(&alice(), task, &json!({"intent": "x"}))
        .await
        .expect("router");
    let stored = s.get_task(&alice(), task).await.expect("task");
    assert_eq!(stored.router, Some(json!({"intent": "x"})));
    assert_eq!(s.tasks(&alice(), c.id).await.expect("tasks").len(), 6);
}

/// A summary replaces the stored one only when it covers newer messages.
pub async fn summaries_never_go_back(f: ChatFixture) {
    let s = f.chat.as_ref();
    let c = s.create_conversation(&alice(), "t").await.expect("create");
    assert!(s
        .set_summary(&alice(), c.id, "up to 4", 4)
        .await
        .expect("set"));
    assert!(!s
        .set_summary(&alice(), c.id, "up to 3", 3)
        .await
        .expect("older"));
    assert!(!s
        .set_summary(&alice(), c.id, "again 4", 4)
        .await
        .expect("same"));
    let got = s.get_conversation(&alice(), c.id).await.expect("get");
    assert_eq!(
        (got.summary.as_deref(), got.summary_upto),
        (Some("up to 4"), 4)
    );
}

/// Text with NUL characters is stored (replaced), never a failed write.
pub async fn nul_characters_are_stored_replaced(f: ChatFixture) {
    let s = f.chat.as_ref();
    let c = s
        .create_conversation(&alice(), "a\0b")
        .await
        .expect("create");
    let msg = user_message(c.id, "x\0y");
    let task = msg.task_id;
    s.add_user_message(&alice(), msg).await.expect("message");
    s.add_assistant_message(&alice(), task, "p\0q")
        .await
        .expect("answer");
    let all = s.messages(&alice(), c.id, 0, 10).await.expect("all");
    assert_eq!(all[0].content, "x\u{FFFD}y");
    assert_eq!(all[1].content, "p\u{FFFD}q");
}
