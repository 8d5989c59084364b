//! Tool hub checks, run through a [`HubFixture`]: the hub under test plus what its tools'
//! side received.
//!
//! The fixture protocol: the hub offers an *echo tool* that answers an object whose `echo`
//! member is the arguments it received and that reports failure (`ErrorKind::ToolFailed`)
//! when its arguments contain `"fail": true`. The fixture names arguments the tool accepts
//! and arguments its input schema rejects, a user with connections (for hubs with accounts),
//! and reports every execution as the tool's side saw it ([`SeenExecution`]).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::ErrorKind;
use crate::run::Subject;
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolSpec};

/// The tenant of every check's subject.
pub const TENANT: &str = "conformance";

/// The user every execution acts for.
pub const USER: &str = "conformance-user";

/// A tool id no hub knows.
pub const UNKNOWN_TOOL: &str = "conformance_no_such_tool";

/// What a tool hub supports beyond listing and executing tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubCapabilities {
    /// The hub, or the service behind it, checks arguments against the tool's input schema.
    pub validates_arguments: bool,
    /// The context's idempotency key reaches the tool's side.
    pub idempotency_keys: bool,
    /// Users connect accounts and [`ToolHub::connections`] lists them.
    pub connections: bool,
}

impl HubCapabilities {
    /// Everything: every check runs.
    pub fn all() -> Self {
        HubCapabilities {
            validates_arguments: true,
            idempotency_keys: true,
            connections: true,
        }
    }
}

/// One execution as the tool's side received it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenExecution {
    /// The tool.
    pub tool_id: String,
    /// Its arguments.
    pub arguments: Value,
    /// The user it acted for.
    pub user_id: Option<String>,
    /// The idempotency key that came with it.
    pub idempotency_key: Option<String>,
}

impl SeenExecution {
    /// What a double that records `(tool, arguments, context)` saw.
    pub fn from_call(tool_id: &str, arguments: &Value, ctx: &ToolContext) -> Self {
        SeenExecution {
            tool_id: tool_id.to_string(),
            arguments: arguments.clone(),
            user_id: ctx.subject.user_id.clone(),
            idempotency_key: ctx.idempotency_key.clone(),
        }
    }
}

/// A hub under test and what its tools' side saw.
pub trait HubFixture: Send + Sync {
    /// The hub under test.
    fn hub(&self) -> &dyn ToolHub;
    /// Id of the echo tool (see the module docs).
    fn echo_tool(&self) -> String;
    /// Arguments the echo tool accepts.
    fn valid_arguments(&self) -> Value;
    /// Arguments the echo tool's input schema rejects.
    fn invalid_arguments(&self) -> Value;
    /// A user and the connections the hub must list for them (hubs with `connections`).
    fn connected_user(&self) -> (Subject, Vec<Connection>) {
        (Subject::tenant(TENANT), Vec::new())
    }
    /// Every execution the tools' side received, oldest first.
    fn seen(&self) -> Vec<SeenExecution>;
}

/// The echo tool's spec for doubles: requires a string `text`, allows a boolean `fail`.
pub fn echo_spec(id: &str) -> ToolSpec {
    ToolSpec::new(
        id,
        "Answers with its arguments.",
        json!({"type": "object",
               "properties": {"text": {"type": "string"}, "fail": {"type": "boolean"}},
               "required": ["text"]}),
    )
}

/// The echo tool's behaviour for doubles: `{"echo": arguments}`, or a tool failure when the
/// arguments say `"fail": true`.
pub fn echo(tool_id: &str, arguments: &Value) -> crate::Result<Value> {
    if arguments["fail"] == json!(true) {
        return Err(crate::Error::ToolFailed {
            tool_id: tool_id.to_string(),
            message: "asked to fail".into(),
            retryable: false,
        });
    }
    Ok(json!({ "echo": arguments }))
}

fn context() -> ToolContext {
    ToolContext::for_subject(Subject::tenant(TENANT).with_user(USER))
}

fn last_seen(fixture: &dyn HubFixture) -> SeenExecution {
    fixture
        .seen()
        .pop()
        .expect("the tool's side received the execution")
}

/// The echo tool's output comes back; the tool saw the arguments and the user.
pub async fn execute_returns_the_tool_output(fixture: Arc<dyn HubFixture>) {
    let (tool, args) = (fixture.echo_tool(), fixture.valid_arguments());
    let out = fixture
        .hub()
        .execute(&tool, args.clone(), &context())
        .await
        .expect("execute");
    assert_eq!(out["echo"], args, "{out}");
    let seen = last_seen(fixture.as_ref());
    assert_eq!(seen.tool_id, tool);
    assert_eq!(seen.arguments, args);
    assert_eq!(seen.user_id.as_deref(), Some(USER));
}

/// A tool the hub does not know is a final `NotFound`.
pub async fn unknown_tool_is_not_found(fixture: Arc<dyn HubFixture>) {
    let e = fixture
        .hub()
        .execute(UNKNOWN_TOOL, fixture.valid_arguments(), &context())
        .await
        .expect_err("unknown tool");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains(UNKNOWN_TOOL),
        "the error names the tool: {e}"
    );
}

/// Arguments that break the tool's input schema are a final `InvalidInput`.
pub async fn invalid_arguments_are_rejected(fixture: Arc<dyn HubFixture>) {
    let e = fixture
        .hub()
        .execute(
            &fixture.echo_tool(),
            fixture.invalid_arguments(),
            &context(),
        )
        .await
        .expect_err("invalid arguments");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable(), "{e}");
}

/// A tool that reports failure gives a `ToolFailed` naming the tool.
pub async fn tool_failure_is_typed(fixture: Arc<dyn HubFixture>) {
    let tool = fixture.echo_tool();
    let mut args = fixture.valid_arguments();
    args["fail"] = json!(true);
    let e = fixture
        .hub()
        .execute(&tool, args, &context())
        .await
        .expect_err("the tool fails");
    assert_eq!(e.kind(), ErrorKind::ToolFailed, "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains(&tool),
        "the error names the tool: {e}"
    );
}

/// The context's `run/step/seq` key reaches the tool's side with each execution.
pub async fn idempotency_key_is_passed_on(fixture: Arc<dyn HubFixture>) {
    let (run, step) = (Uuid::new_v4(), Uuid::new_v4());
    let keys: Vec<String> = (0..2).map(|seq| format!("{run}/{step}/{seq}")).collect();
    for key in &keys {
        let mut ctx = context();
        (ctx.run_id, ctx.step_id, ctx.idempotency_key) = (Some(run), Some(step), Some(key.clone()));
        fixture
            .hub()
            .execute(&fixture.echo_tool(), fixture.valid_arguments(), &ctx)
            .await
            .expect("execute");
    }
    let seen: Vec<Option<String>> = fixture
        .seen()
        .into_iter()
        .rev()
        .take(2)
        .rev()
        .map(|s| s.idempotency_key)
        .collect();
    assert_eq!(seen, keys.into_iter().map(Some).collect::<Vec<_>>());
}

fn sorted(mut c: Vec<Connection>) -> Vec<Connection> {
    c.sort_by(|a, b| (&a.toolkit, &a.account_id).cmp(&(&b.toolkit, &b.account_id)));
    c
}

/// A user's usable connections are listed; a user without any, or no user, has none.
pub async fn connections_are_listed(fixture: Arc<dyn HubFixture>) {
    let (subject, expected) = fixture.connected_user();
    assert!(
        !expected.is_empty(),
        "the fixture names a user with connections"
    );
    let got = fixture
        .hub()
        .connections(&subject)
        .await
        .expect("connections");
    assert!(got.iter().all(|c| c.active), "{got:?}");
    assert_eq!(sorted(got), sorted(expected));
    let stranger = Subject::tenant(TENANT).with_user("conformance-stranger");
    assert!(fixture
        .hub()
        .connections(&stranger)
        .await
        .expect("connections")
        .is_empty());
    assert!(fixture
        .hub()
        .connections(&Subject::tenant(TENANT))
        .await
        .expect("connections")
        .is_empty());
}

async fn list_all(hub: &dyn ToolHub, limit: Option<u32>) -> Vec<ToolSpec> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let page = hub
            .list_tools(PageRequest {
                cursor: cursor.clone(),
                limit,
                updated_since: None,
            })
            .await
            .expect("list_tools");
        tools.extend(page.tools);
        match page.next_cursor {
            Some(next) => {
                assert_ne!(Some(&next), cursor.as_ref(), "the cursor moves on");
                cursor = Some(next);
            }
            None => return tools,
        }
    }
    panic!("the catalog listing never ends")
}

/// Following cursors with small pages (the limit is a hint) lists the same tools as the
/// default pages, each once, each naming this hub; the echo tool is among them.
pub async fn catalog_pages_cover_every_tool(fixture: Arc<dyn HubFixture>) {
    let hub = fixture.hub();
    assert!(!hub.name().is_empty(), "a hub is named");
    let whole = list_all(hub, None).await;
    let paged = list_all(hub, Some(2)).await;
    let ids = |tools: &[ToolSpec]| -> Vec<String> {
        let mut v: Vec<String> = tools.iter().map(|t| t.id.clone()).collect();
        v.sort();
        v
    };
    let (whole_ids, paged_ids) = (ids(&whole), ids(&paged));
    assert_eq!(
        whole_ids.iter().collect::<HashSet<_>>().len(),
        whole_ids.len(),
        "each tool once"
    );
    assert_eq!(paged_ids, whole_ids, "small pages list the same tools");
    assert!(whole_ids.contains(&fixture.echo_tool()), "{whole_ids:?}");
    assert!(whole.iter().all(|t| t.hub == hub.name()));
}
