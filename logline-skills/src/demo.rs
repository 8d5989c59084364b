//! [`DemoModel`]: a rule-based stand-in for every model call of a chat with the skills, so a
//! chat works end to end with no network and no API key — in examples, in a server started
//! without configuration, and in tests. It plays the router (strict JSON), the summariser,
//! the executor (one tool call chosen from the tools it is shown, then an answer from the
//! result) and the skills' own calls (email drafts, PDF corrections).
//!
//! It understands: take a note / list notes, add a to-do, draft an email, send an email
//! (a tool that needs confirmation, when the host offers one), correct an attached PDF, make
//! a Telegram bot; anything else is answered directly by the router.

use async_trait::async_trait;
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::Result;
use serde_json::{json, Value};

/// Name of the provider.
pub const DEMO_PROVIDER: &str = "demo";

/// Common misspellings the demo proofreader fixes (`pdf.correct`).
const CORRECTIONS: &[(&str, &str)] = &[
    ("teh", "the"),
    ("recieve", "receive"),
    ("adress", "address"),
    ("seperate", "separate"),
    ("occured", "occurred"),
    ("untill", "until"),
    ("wich", "which"),
    ("becuase", "because"),
];

/// A deterministic model for chats with the skills (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct DemoModel;

/// What the user asked for, as the demo understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    SendEmail,
    DraftEmail,
    CorrectPdf,
    TelegramBot,
    ListNotes,
    CreateNote,
    CreateTask,
    Chat,
}

impl Intent {
    fn of(text: &str) -> Intent {
        let lower = text.to_lowercase();
        let has = |w: &str| lower.contains(w);
        if has("pdf") || (has("attached files") && (has("correct") || has("proofread"))) {
            Intent::CorrectPdf
        } else if has("telegram") || has(" bot") {
            Intent::TelegramBot
        } else if has("email") && has("draft") {
            Intent::DraftEmail
        } else if has("email") {
            Intent::SendEmail
        } else if has("to-do") || has("todo") || has("remind me") {
            Intent::CreateTask
        } else if has("notes") && (has("list") || has("what") || has("show")) {
            Intent::ListNotes
        } else if has("note") {
            Intent::CreateNote
        } else {
            Intent::Chat
        }
    }

    fn name(self) -> &'static str {
        match self {
            Intent::SendEmail => "send_email",
            Intent::DraftEmail => "draft_email",
            Intent::CorrectPdf => "correct_pdf",
            Intent::TelegramBot => "scaffold_telegram_bot",
            Intent::ListNotes => "list_notes",
            Intent::CreateNote => "create_note",
            Intent::CreateTask => "create_task",
            Intent::Chat => "chat",
        }
    }

    /// The toolkit the intent needs.
    fn app(self) -> Option<&'static str> {
        match self {
            Intent::SendEmail | Intent::DraftEmail => Some("email"),
            Intent::CorrectPdf => Some("pdf"),
            Intent::TelegramBot => Some("scaffold"),
            Intent::ListNotes | Intent::CreateNote => Some("notes"),
            Intent::CreateTask => Some("tasks"),
            Intent::Chat => None,
        }
    }

    /// Tool id prefixes that serve the intent, best first.
    fn tools(self) -> &'static [&'static str] {
        match self {
            Intent::SendEmail => &["email.send", "gmail.send", "email"],
            Intent::DraftEmail => &["email.draft"],
            Intent::CorrectPdf => &["pdf.correct"],
            Intent::TelegramBot => &["scaffold.telegram_bot"],
            Intent::ListNotes => &["notes.list"],
            Intent::CreateNote => &["notes.create"],
            Intent::CreateTask => &["tasks.create"],
            Intent::Chat => &[],
        }
    }
}

#[async_trait]
impl LlmProvider for DemoModel {
    fn name(&self) -> &str {
        DEMO_PROVIDER
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        let schema = request.output_schema.as_ref().map(|s| s.name.as_str());
        let text = latest_user_text(request);
        let reply = match schema {
            Some("email_draft") => json_reply(draft(&text)),
            Some("corrected_pages") => json_reply(corrected_pages(&text)),
            Some(_) => json_reply(route(&text)),
            None if request.tools.is_empty() => {
                LlmResponse::text(format!("The user asked: {}", first_line(&text)))
            }
            None => execute(request, &text),
        };
        Ok(LlmResponse {
            model: request.model.clone(),
            ..reply
        })
    }
}

fn json_reply(value: Value) -> LlmResponse {
    LlmResponse::text(value.to_string())
}

/// The router's decision (strict JSON of the chat's router schema).
fn route(text: &str) -> Value {
    let intent = Intent::of(text);
    let needs_tools = intent != Intent::Chat;
    let risk = match intent {
        Intent::SendEmail => "high",
        Intent::Chat | Intent::ListNotes => "low",
        _ => "medium",
    };
    json!({
        "intent": intent.name(),
        "needs_tools": needs_tools,
        "candidate_apps": intent.app().into_iter().collect::<Vec<_>>(),
        "risk_level": risk,
        "needs_files": intent == Intent::CorrectPdf,
        "requires_confirmation": intent == Intent::SendEmail,
        "answer": (!needs_tools).then(|| format!("You said: {}", first_line(text))),
    })
}

/// One executor turn: a tool call for the request, or the answer from a tool's result.
fn execute(request: &LlmRequest, text: &str) -> LlmResponse {
    if let Some(Message::Tool { content, .. }) = request.messages.last() {
        let framed: Value = serde_json::from_str(content).unwrap_or_default();
        return LlmResponse::text(answer_from(&framed["tool_result"]));
    }
    let intent = Intent::of(text);
    let tool = intent.tools().iter().find_map(|prefix| {
        request
            .tools
            .iter()
            .find(|t| dotted(&t.name).starts_with(prefix))
    });
    let Some(tool) = tool else {
        return LlmResponse::text("None of the tools I was given can do that.");
    };
    LlmResponse {
        tool_calls: vec![ToolCallRequest {
            id: "call_1".into(),
            name: tool.name.clone(),
            arguments: arguments(intent, text),
        }],
        ..Default::default()
    }
}

/// The arguments of the call serving `intent`, taken from the user's words.
fn arguments(intent: Intent, text: &str) -> Value {
    let request = first_line(text);
    let after_colon = request
        .split_once(':')
        .map_or(request, |(_, t)| t)
        .trim()
        .to_string();
    match intent {
        Intent::SendEmail => json!({
            "to": text.split_whitespace().find(|w| w.contains('@'))
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.'))
                .unwrap_or("team@example.com"),
            "subject": "Message from chat",
            "body": after_colon,
        }),
        Intent::DraftEmail => json!({"brief": after_colon}),
        Intent::CorrectPdf => match attachment_id(text) {
            Some(id) => json!({"artifact_id": id}),
            None => json!({}),
        },
        Intent::TelegramBot => json!({
            "name": "demo bot",
            "description": after_colon,
            "commands": [{"command": "about", "reply": after_colon}],
        }),
        Intent::ListNotes => json!({}),
        Intent::CreateNote | Intent::CreateTask => json!({"title": after_colon}),
        Intent::Chat => json!({}),
    }
}

/// The assistant's answer from a tool result.
fn answer_from(result: &Value) -> String {
    if let Some(artifact) = result.get("artifact") {
        return format!(
            "Done: {} ({} bytes) is ready to download.",
            artifact["name"].as_str().unwrap_or("the file"),
            artifact["size"]
        );
    }
    if let (Some(subject), Some(body)) = (result["subject"].as_str(), result["body"].as_str()) {
        return format!("Here is a draft (not sent).\nSubject: {subject}\n\n{body}");
    }
    if result["sent"] == true {
        return format!("Email sent to {}.", result["to"].as_str().unwrap_or("them"));
    }
    if let Some(items) = result["notes"].as_array().or(result["tasks"].as_array()) {
        let titles: Vec<&str> = items.iter().filter_map(|n| n["title"].as_str()).collect();
        if titles.is_empty() {
            return "You have none yet.".into();
        }
        return format!("You have {}: {}", titles.len(), titles.join("; "));
    }
    if let Some(title) = ["note", "task"]
        .iter()
        .find_map(|k| result[*k]["title"].as_str())
    {
        return format!("Saved: {title}.");
    }
    if result.is_null() {
        return "I did not do it: the action was refused or failed.".into();
    }
    format!("Done: {result}")
}

/// A draft for the `email_draft` schema from the brief in the prompt.
fn draft(prompt: &str) -> Value {
    let brief = prompt
        .strip_prefix("Brief:")
        .unwrap_or(prompt)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("a note");
    json!({
        "subject": format!("About: {}", brief.chars().take(60).collect::<String>()),
        "body": format!("Hello,\n\n{brief}\n\nBest regards,\n[your name]"),
    })
}

/// The pages of a `=== Page n ===` prompt with common misspellings fixed.
fn corrected_pages(prompt: &str) -> Value {
    let pages: Vec<String> = prompt
        .split("=== Page ")
        .skip(1)
        .map(|chunk| {
            let body = chunk.split_once("===\n").map_or("", |(_, b)| b);
            correct(body.trim_end())
        })
        .collect();
    json!({ "pages": pages })
}

/// `text` with the words of [`CORRECTIONS`] fixed (whole words, lower case).
fn correct(text: &str) -> String {
    text.split_inclusive(|c: char| !c.is_alphanumeric())
        .map(|piece| {
            let word = piece.trim_end_matches(|c: char| !c.is_alphanumeric());
            let tail = &piece[word.len()..];
            match CORRECTIONS.iter().find(|(wrong, _)| *wrong == word) {
                Some((_, right)) => format!("{right}{tail}"),
                None => piece.to_string(),
            }
        })
        .collect()
}

/// The id of the first attached file (`Attached files: name (type, n bytes, id X)`).
fn attachment_id(text: &str) -> Option<&str> {
    let files = text.split_once("Attached files:")?.1;
    let id = files.split_once(", id ")?.1;
    Some(id.split([')', ';']).next()?.trim())
}

/// A tool name as the catalog spells it (providers may have replaced the dots).
fn dotted(name: &str) -> String {
    name.replace(['_', '-'], ".")
        .replace("telegram.bot", "telegram_bot")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// The user's latest words in a request.
fn latest_user_text(request: &LlmRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User { content } => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_follow_the_words() {
        assert_eq!(Intent::of("take a note: buy milk"), Intent::CreateNote);
        assert_eq!(Intent::of("what notes do I have?"), Intent::ListNotes);
        assert_eq!(
            Intent::of("draft an email to Ann about Friday"),
            Intent::DraftEmail
        );
        assert_eq!(
            Intent::of("send an email to a@b.c saying hi"),
            Intent::SendEmail
        );
        assert_eq!(
            Intent::of("correct this\n\nAttached files: r.pdf (application/pdf, 9 bytes, id x)"),
            Intent::CorrectPdf
        );
        assert_eq!(Intent::of("make me a telegram bot"), Intent::TelegramBot);
        assert_eq!(Intent::of("hello there"), Intent::Chat);
    }

    #[test]
    fn corrections_keep_everything_else() {
        assert_eq!(
            correct("teh cat, wich sat.\nUntil teh end"),
            "the cat, which sat.\nUntil the end"
        );
    }

    #[test]
    fn pages_come_back_in_order() {
        let prompt = "=== Page 1 ===\nteh one\n=== Page 2 ===\ntwo\n";
        assert_eq!(
            corrected_pages(prompt),
            json!({"pages": ["the one", "two"]})
        );
    }

    #[test]
    fn attachment_ids_are_read_from_the_request() {
        let text = "fix it\n\nAttached files: a.pdf (application/pdf, 10 bytes, id 42); b";
        assert_eq!(attachment_id(text), Some("42"));
        assert_eq!(attachment_id("no files"), None);
    }
}
