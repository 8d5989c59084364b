//! The demo model's chat side: rule-based answers to the chat's router, summary and
//! executor requests and to the skills' model calls, so the zero-configuration server chats
//! with no API key. It understands notes, to-dos, email drafts, email sends (which the
//! chat confirms first) and Telegram bot scaffolds; anything else is echoed.

use logline_core::llm::{LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::tool::{RiskLevel, ToolSpec};
use serde_json::{json, Value};

/// Id of the demo email tool: it says it sent, and sends nothing.
pub const EMAIL_SEND_TOOL: &str = "email.send";

/// The demo `email.send` tool: high risk and tagged `send`, so a chat confirms every call.
pub fn email_send_spec() -> ToolSpec {
    ToolSpec::new(
        EMAIL_SEND_TOOL,
        "Send an email to a recipient (demo: nothing leaves the server).",
        json!({"type": "object", "properties": {"to": {"type": "string"},
               "subject": {"type": "string"}, "body": {"type": "string"}},
               "required": ["to", "subject", "body"], "additionalProperties": false}),
    )
    .in_toolkit("email")
    .with_risk(RiskLevel::High)
    .with_tags(["send", "email"])
}

/// What a message asks for, by its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    SendEmail,
    DraftEmail,
    ListNotes,
    CreateNote,
    CreateTask,
    Scaffold,
    Chat,
}

impl Intent {
    fn of(text: &str) -> Self {
        let t = text.to_lowercase();
        let has = |w: &str| t.contains(w);
        if has("email") && has("send") {
            Intent::SendEmail
        } else if has("email") || has("draft") {
            Intent::DraftEmail
        } else if has("note") && (has("list") || has("what") || has("show")) {
            Intent::ListNotes
        } else if has("note") {
            Intent::CreateNote
        } else if has("todo") || has("to-do") || has("task") {
            Intent::CreateTask
        } else if has("telegram") || has("bot") {
            Intent::Scaffold
        } else {
            Intent::Chat
        }
    }

    fn name(self) -> &'static str {
        match self {
            Intent::SendEmail => "send_email",
            Intent::DraftEmail => "draft_email",
            Intent::ListNotes => "list_notes",
            Intent::CreateNote => "create_note",
            Intent::CreateTask => "create_task",
            Intent::Scaffold => "scaffold_bot",
            Intent::Chat => "chat",
        }
    }

    /// The tool it calls (as a function-name prefix) and the app it is in.
    fn tool(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Intent::SendEmail => ("email_send", "email"),
            Intent::DraftEmail => ("email_draft", "email"),
            Intent::ListNotes => ("notes_list", "notes"),
            Intent::CreateNote => ("notes_create", "notes"),
            Intent::CreateTask => ("tasks_create", "tasks"),
            Intent::Scaffold => ("scaffold_telegram_bot", "scaffold"),
            Intent::Chat => return None,
        })
    }
}

/// The last user message of a request.
pub(super) fn latest_user_text(req: &LlmRequest) -> &str {
    req.messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// The demo's answer to a chat or skill request, or `None` when the request is not one.
pub(super) fn answer(req: &LlmRequest) -> Option<LlmResponse> {
    if let Some(schema) = &req.output_schema {
        let props = &schema.schema["properties"];
        return if props.get("needs_tools").is_some() {
            Some(route(latest_user_text(req)))
        } else if props.get("subject").is_some() && props.get("body").is_some() {
            Some(draft(latest_user_text(req)))
        } else if props.get("pages").is_some() {
            Some(proofread(latest_user_text(req)))
        } else {
            None
        };
    }
    let instructions = req.instructions.as_deref().unwrap_or_default();
    if instructions.starts_with("You keep a short running summary") {
        return Some(LlmResponse::text("A conversation with the demo assistant."));
    }
    (!req.tools.is_empty()).then(|| execute(req))
}

/// The router's strict JSON decision.
fn route(text: &str) -> LlmResponse {
    let intent = Intent::of(text);
    let apps: Vec<&str> = intent.tool().map(|(_, app)| app).into_iter().collect();
    let risk = if intent == Intent::SendEmail {
        "high"
    } else {
        "low"
    };
    let needs_tools = intent != Intent::Chat;
    let answer = (!needs_tools).then(|| format!("You said: {text}"));
    LlmResponse::text(
        json!({"intent": intent.name(), "needs_tools": needs_tools, "candidate_apps": apps,
               "risk_level": risk, "needs_files": false,
               "requires_confirmation": intent == Intent::SendEmail, "answer": answer})
        .to_string(),
    )
}

/// An email draft from the brief in the prompt.
fn draft(prompt: &str) -> LlmResponse {
    let brief = prompt
        .strip_prefix("Brief:")
        .unwrap_or(prompt)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("your request");
    LlmResponse::text(
        json!({"subject": "Draft", "body": format!("Hello,\n\n{brief}\n\nBest regards,\n[name]")})
            .to_string(),
    )
}

/// "Corrections" of PDF pages: each page's whitespace tidied.
fn proofread(prompt: &str) -> LlmResponse {
    let pages: Vec<String> = prompt
        .split("=== Page ")
        .skip(1)
        .map(|chunk| {
            let body = chunk.split_once('\n').map_or("", |(_, b)| b);
            body.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    LlmResponse::text(json!({ "pages": pages }).to_string())
}

/// The executor: one tool call for the request, then an answer from its result.
fn execute(req: &LlmRequest) -> LlmResponse {
    if let Some(Message::Tool { content, .. }) = req.messages.last() {
        return LlmResponse::text(reply_to_result(content));
    }
    let text = latest_user_text(req);
    let intent = Intent::of(text);
    let Some((prefix, _)) = intent.tool() else {
        return LlmResponse::text(format!("You said: {text}"));
    };
    // Not offered (another agent's tools): answer as the plain demo model does.
    let Some(tool) = req.tools.iter().find(|t| t.name.starts_with(prefix)) else {
        return LlmResponse::text(format!("You said: {text}"));
    };
    let after_colon = text
        .split_once(':')
        .map_or(text, |(_, t)| t)
        .trim()
        .to_string();
    let arguments = match intent {
        Intent::SendEmail => {
            let to = text
                .split_whitespace()
                .find(|w| w.contains('@'))
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.'))
                .unwrap_or("team@example.com");
            json!({"to": to, "subject": "Message from chat", "body": text})
        }
        Intent::DraftEmail => json!({ "brief": after_colon }),
        Intent::ListNotes => json!({}),
        Intent::CreateNote | Intent::CreateTask => json!({ "title": after_colon }),
        Intent::Scaffold => json!({ "name": "demo_bot" }),
        Intent::Chat => return LlmResponse::text(format!("You said: {text}")),
    };
    LlmResponse {
        tool_calls: vec![ToolCallRequest {
            id: "call_1".into(),
            name: tool.name.clone(),
            arguments,
        }],
        ..Default::default()
    }
}

/// The answer after a tool call, from its framed result.
fn reply_to_result(content: &str) -> String {
    let framed: Value = serde_json::from_str(content).unwrap_or_default();
    let Some(v) = framed.get("tool_result") else {
        return "I did not do it: the action was refused or failed.".into();
    };
    if v["sent"] == true {
        format!("Email sent to {}.", v["to"].as_str().unwrap_or("them"))
    } else if let (Some(subject), Some(body)) = (v["subject"].as_str(), v["body"].as_str()) {
        format!("Here is a draft (not sent).\nSubject: {subject}\n\n{body}")
    } else if let Some(items) = v["notes"].as_array().or_else(|| v["tasks"].as_array()) {
        let titles: Vec<&str> = items.iter().filter_map(|n| n["title"].as_str()).collect();
        format!("You have {} item(s): {}", titles.len(), titles.join("; "))
    } else if let Some(title) = v["note"]["title"].as_str() {
        format!("Noted: {title}.")
    } else if let Some(title) = v["task"]["title"].as_str() {
        format!("Added to your to-dos: {title}.")
    } else if let Some(name) = v["artifact"]["name"].as_str() {
        format!("Done: {name} is ready to download.")
    } else {
        format!("Done: {v}")
    }
}
