//! [`ChatService`] and its per-user handle [`ScopedChat`]: send a message, follow the task,
//! confirm or refuse the call it waits on.

use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use serde_json::json;
use uuid::Uuid;

use super::config::{ChatConfig, CHAT_WORKFLOW};
use super::context::task_input;
use super::events::{ChatEvent, Confirmation};
use super::router::ROUTER_INSTRUCTIONS;
use super::store::ChatStore;
use super::types::{
    Attachment, ChatMessage, ChatScope, ChatTask, Conversation, NewUserMessage, TaskId,
};
use crate::agent::Agent;
use crate::engine::{keyed_run_id, Engine, Principal, ScopedEngine, StartRun};
use crate::error::{Error, Result};
use crate::run::{GateSubject, Run, RunStatus, Subject};
use crate::workflow::{ChatNode, NodeKind, Workflow, WorkflowDefinition, WorkflowNode};

/// Id of the router agent the service registers.
pub const ROUTER_AGENT: &str = "builtin.chat.router";
/// Id of the executor agent the service registers.
pub const EXECUTOR_AGENT: &str = "builtin.chat.executor";

/// Longest message accepted, in bytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Chat on an engine. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    engine: Engine,
    store: Arc<dyn ChatStore>,
    config: Arc<ChatConfig>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChatService {
    /// Registers the chat's agents and workflow on `engine`, which must have been built with
    /// the same `store` ([`crate::engine::EngineBuilder::chat_store`]).
    pub async fn install(
        engine: Engine,
        store: Arc<dyn ChatStore>,
        config: ChatConfig,
    ) -> Result<Self> {
        if !engine.has_chat_store() {
            return Err(Error::InvalidInput(
                "the engine has no chat store: build it with EngineBuilder::chat_store".into(),
            ));
        }
        let router = Agent::new(
            ROUTER_AGENT,
            ROUTER_INSTRUCTIONS,
            config.cheap_model.clone(),
        );
        let executor = Agent::new(
            EXECUTOR_AGENT,
            config.executor_instructions.clone(),
            config.main_model.clone(),
        );
        engine.register_agent(&router).await?;
        engine.register_agent(&executor).await?;
        let mut node = ChatNode::new(ROUTER_AGENT, EXECUTOR_AGENT);
        node.tool_source = config.tool_source.clone();
        node.top_n = config.top_n;
        node.limits = config.limits.clone();
        node.confirm = config.confirm.clone();
        let definition = WorkflowDefinition {
            entry: "turn".into(),
            nodes: vec![WorkflowNode::new("turn", NodeKind::Chat(node))],
            edges: Vec::new(),
            condition_agent_id: None,
        };
        let version = crate::engine::args_digest(
            &serde_json::to_value(&definition)
                .map_err(|e| Error::Internal(format!("chat workflow is not serializable: {e}")))?,
        );
        let workflow =
            Workflow::new(CHAT_WORKFLOW, "Chat", definition).with_version(&version[..16]);
        engine.register_workflow(&workflow).await?;
        Ok(ChatService {
            engine,
            store,
            config: Arc::new(config),
        })
    }

    /// The chat of one authenticated user.
    pub fn scoped(&self, principal: Principal) -> Result<ScopedChat> {
        let user = principal
            .user_id
            .clone()
            .ok_or_else(|| Error::PolicyDenied {
                policy_id: None,
                reason: "a chat belongs to an authenticated user".into(),
            })?;
        Ok(ScopedChat {
            scope: ChatScope::new(principal.tenant_id.clone(), user),
            engine: self.engine.scoped(principal),
            service: self.clone(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }
}

/// A task as its user sees it: the stored task and the run's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// The stored task (router decision, answer message).
    pub task: ChatTask,
    /// The run's status (`paused` = awaiting confirmation).
    pub status: RunStatus,
    /// The answer, once written.
    pub answer: Option<String>,
    /// The cap that ended it early, if one did.
    pub limit: Option<String>,
    /// The call it waits on, when paused.
    pub confirmation: Option<Confirmation>,
    /// The error, when failed.
    pub error: Option<String>,
}

/// One user's chat (from [`ChatService::scoped`]): every read and write is scoped to the
/// principal's tenant and user.
#[derive(Clone)]
pub struct ScopedChat {
    service: ChatService,
    engine: ScopedEngine,
    scope: ChatScope,
}

impl std::fmt::Debug for ScopedChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedChat")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ScopedChat {
    fn store(&self) -> &dyn ChatStore {
        self.service.store.as_ref()
    }

    /// Starts a conversation.
    pub async fn create_conversation(&self, title: &str) -> Result<Conversation> {
        self.store().create_conversation(&self.scope, title).await
    }

    /// One conversation.
    pub async fn conversation(&self, id: Uuid) -> Result<Conversation> {
        self.store().get_conversation(&self.scope, id).await
    }

    /// The user's conversations, newest first.
    pub async fn conversations(&self, limit: u32) -> Result<Vec<Conversation>> {
        self.store().list_conversations(&self.scope, limit).await
    }

    /// Messages after `after_seq`, oldest first.
    pub async fn messages(&self, id: Uuid, after_seq: i64, limit: u32) -> Result<Vec<ChatMessage>> {
        self.store()
            .messages(&self.scope, id, after_seq, limit)
            .await
    }

    /// Stores the message, creates its task, enqueues it and returns the task id at once.
    pub async fn send(
        &self,
        conversation_id: Uuid,
        text: &str,
        attachments: Vec<Attachment>,
    ) -> Result<TaskId> {
        if text.trim().is_empty() && attachments.is_empty() {
            return Err(Error::InvalidInput("an empty message".into()));
        }
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::InvalidInput(format!(
                "a message of {} bytes; at most {MAX_MESSAGE_BYTES} are accepted",
                text.len()
            )));
        }
        let conversation = self.conversation(conversation_id).await?;
        let message_id = Uuid::new_v4();
        let key = format!("chat:{message_id}");
        let task_id = keyed_run_id(&self.scope.tenant_id, &key);
        let message = self
            .store()
            .add_user_message(
                &self.scope,
                NewUserMessage {
                    conversation_id,
                    message_id,
                    task_id,
                    content: text.to_string(),
                    attachments,
                },
            )
            .await?;
        let limits = &self.service.config.context;
        let input = task_input(self.store(), &self.scope, &conversation, &message, limits).await?;
        let input = serde_json::to_value(&input)
            .map_err(|e| Error::Internal(format!("chat task input: {e}")))?;
        let subject = Subject {
            user_id: Some(self.scope.user_id.clone()),
            ..Subject::tenant(self.scope.tenant_id.clone())
        };
        let run = self
            .engine
            .start_run(StartRun::new(CHAT_WORKFLOW, input, subject).idempotency_key(key))
            .await?;
        debug_assert_eq!(run.id, task_id);
        Ok(run.id)
    }

    /// The task and where its run stands.
    pub async fn task(&self, task_id: TaskId) -> Result<TaskView> {
        let task = self.store().get_task(&self.scope, task_id).await?;
        let run = self.engine.get_run(task_id).await?;
        Ok(self.view(task, &run).await)
    }

    async fn view(&self, task: ChatTask, run: &Run) -> TaskView {
        let result = run.result.as_ref();
        let text = |k: &str| result.and_then(|r| r[k].as_str()).map(String::from);
        TaskView {
            answer: text("text"),
            limit: text("limit"),
            confirmation: self.confirmation_of(run).await,
            error: run
                .error
                .as_ref()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string()),
            status: run.status,
            task,
        }
    }

    /// The call a paused run waits on, previewed from the exact pending arguments.
    async fn confirmation_of(&self, run: &Run) -> Option<Confirmation> {
        let gate = run.pending_gate.as_ref()?;
        let GateSubject::ToolCall {
            tool_id,
            args_digest,
            arguments,
        } = &gate.subject
        else {
            return None;
        };
        let preview = match self.service.engine.store().get_tool(tool_id).await {
            Ok(spec) => super::preview(&spec, arguments),
            Err(_) => format!("{tool_id} with {arguments}"),
        };
        Some(Confirmation {
            gate_id: gate.gate_id.clone(),
            tool_id: tool_id.clone(),
            preview,
            args_digest: args_digest.clone(),
        })
    }

    /// Runs exactly the call the task waits on at `gate_id` (the approval is bound to the
    /// digest of the previewed arguments). The task's own user confirms.
    pub async fn confirm(&self, task_id: TaskId, gate_id: &str) -> Result<()> {
        self.store().get_task(&self.scope, task_id).await?;
        self.engine.get_run(task_id).await?;
        let engine = &self.service.engine;
        engine
            .approve(task_id, gate_id, &self.scope.user_id, None)
            .await
            .map(|_| ())
    }

    /// Refuses the call the task waits on at `gate_id`: it is not executed, the model is
    /// told it was refused and writes the answer.
    pub async fn deny(&self, task_id: TaskId, gate_id: &str, reason: Option<&str>) -> Result<()> {
        self.store().get_task(&self.scope, task_id).await?;
        self.engine.get_run(task_id).await?;
        let engine = &self.service.engine;
        engine
            .refuse(task_id, gate_id, &self.scope.user_id, reason)
            .await
            .map(|_| ())
    }

    /// Waits until the task finishes or waits for a confirmation.
    pub async fn wait(&self, task_id: TaskId) -> Result<TaskView> {
        self.store().get_task(&self.scope, task_id).await?;
        let run = self.engine.wait(task_id).await?;
        // Read after the wait: the task row changes while the run works.
        let task = self.store().get_task(&self.scope, task_id).await?;
        Ok(self.view(task, &run).await)
    }

    /// The task's progress from its start: stored events as they are committed, merged with
    /// live text deltas; ends after the task finishes (not at a confirmation).
    pub async fn events(&self, task_id: TaskId) -> Result<BoxStream<'static, Result<ChatEvent>>> {
        self.store().get_task(&self.scope, task_id).await?;
        let deltas = self
            .engine
            .progress(task_id)
            .await?
            .filter(|p| std::future::ready(p.tool.is_none()))
            .map(|p| Ok(Item::Event(ChatEvent::Delta { text: p.delta })));
        let stored = self.engine.subscribe(task_id, 0).await?.map(|e| {
            e.map(|e| {
                if e.kind.is_terminal() {
                    Item::End(ChatEvent::from_event(&e))
                } else {
                    ChatEvent::from_event(&e).map_or(Item::Skip, Item::Event)
                }
            })
        });
        let merged = futures::stream::select(stored, deltas);
        // Ends after the terminal event without polling again: the delta stream never ends.
        let stream = futures::stream::unfold(Some(merged), |state| async move {
            let mut merged = state?;
            loop {
                match merged.next().await? {
                    Ok(Item::Skip) => continue,
                    Ok(Item::Event(e)) => return Some((Ok(e), Some(merged))),
                    Ok(Item::End(Some(e))) => return Some((Ok(e), None)),
                    Ok(Item::End(None)) => return None,
                    Err(e) => return Some((Err(e), Some(merged))),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    /// The task's progress so far, as stored (no deltas).
    pub async fn history(&self, task_id: TaskId) -> Result<Vec<ChatEvent>> {
        self.store().get_task(&self.scope, task_id).await?;
        let events = self.engine.events(task_id).await?;
        Ok(events.iter().filter_map(ChatEvent::from_event).collect())
    }

    /// A JSON summary of the task (for hosts that serve it as is).
    pub async fn task_json(&self, task_id: TaskId) -> Result<serde_json::Value> {
        let v = self.task(task_id).await?;
        Ok(json!({
            "id": v.task.id, "conversation_id": v.task.conversation_id,
            "status": v.status, "router": v.task.router, "answer": v.answer,
            "limit": v.limit, "confirmation": v.confirmation, "error": v.error,
        }))
    }
}

/// A stream item before the end is applied.
enum Item {
    Event(ChatEvent),
    End(Option<ChatEvent>),
    Skip,
}
