//! Chat with tools, as a module a host embeds: conversations, messages and tasks in a
//! [`ChatStore`], and a chat task that *is* a run of the built-in chat workflow — so it gets
//! durability, the trace, policies, budgets, tenancy and streaming from the engine.
//!
//! [`ChatService::send`] stores the user message and its task, starts the run (queued for a
//! worker) and returns the task id at once. The run's one `chat` node works through the
//! plan's steps with bounded prompts (the last N messages and a rolling summary):
//!
//! 1. **summary** (cheap model) of the older messages the summary does not cover yet;
//! 2. **router** (cheap model, strict JSON: [`RouterDecision`]), stored on the task; when no
//!    tools are needed its answer is the reply (one model call in all);
//! 3. **gate + Top-N**: the engine's tool source (a [`crate::search::ToolSearch`]) offers the
//!    tools the gate passes (connected toolkits, no `delete`/`money`/`admin`, risk ceiling),
//!    ranked with the router's intent and candidate apps;
//! 4. **executor** (main model) sees only those tools; calls go through the engine's tool
//!    runtime, one at a time, within the caps ([`ChatLimits`]);
//! 5. **confirmation**: a write/send/high-risk call ([`ConfirmRules`]) pauses the task with a
//!    [`preview`] of exactly that call; [`ScopedChat::confirm`] runs exactly that call (the
//!    approval is bound to the digest of its arguments), [`ScopedChat::deny`] tells the model
//!    it was refused;
//! 6. the **answer** is saved as the assistant message.
//!
//! Progress is a stream of [`ChatEvent`]s read from the run's events and streamed deltas.

mod config;
mod context;
mod events;
mod memory;
mod preview;
mod router;
mod service;
mod store;
mod types;

pub use crate::workflow::{ChatLimits, ChatNode, ConfirmRules};
pub use config::{ChatConfig, CHAT_WORKFLOW};
pub use context::{cut, task_input, ChatTaskInput, ContextLimits, ContextMessage};
pub use events::{ChatEvent, Confirmation};
pub use memory::MemoryChatStore;
pub use preview::preview;
pub use router::{router_schema, RouterDecision, ROUTER_INSTRUCTIONS};
pub use service::{ChatService, ScopedChat, TaskView};
pub use store::ChatStore;
pub use types::{
    Attachment, ChatMessage, ChatScope, ChatTask, Conversation, NewUserMessage, Role, TaskId,
};
