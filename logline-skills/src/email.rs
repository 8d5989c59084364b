//! `email.draft`: a drafted email (subject and body) for the user to read and send
//! themselves; nothing is ever sent.

use logline_core::llm::{LlmProvider, LlmRequest, Message, OutputSchema};
use logline_core::tool::{RiskLevel, ToolSpec};
use logline_core::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// Tool id.
pub const EMAIL_DRAFT: &str = "email.draft";

/// Longest instruction accepted, in characters.
pub const MAX_BRIEF_CHARS: usize = 4_000;

/// The catalog entry: read-only (a model call, no delivery), idempotent.
pub fn spec() -> ToolSpec {
    ToolSpec::new(
        EMAIL_DRAFT,
        "Draft an email from a short brief. Returns a subject and a body for the user to \
         review; the email is never sent.",
        json!({
            "type": "object",
            "properties": {
                "brief": {"type": "string", "description": "What the email should say."},
                "to": {"type": "string", "description": "Who it is for (name or role)."},
                "tone": {"type": "string", "description": "e.g. formal, friendly, brief."},
                "language": {"type": "string", "description": "Language to write in."}
            },
            "required": ["brief"],
            "additionalProperties": false
        }),
    )
    .in_toolkit("email")
    .with_risk(RiskLevel::Low)
    .with_tags(["read", "draft", "email"])
    .with_side_effects(["llm_call"])
    .idempotent()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftArgs {
    brief: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    tone: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

/// A drafted email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmailDraft {
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
}

fn output_schema() -> OutputSchema {
    OutputSchema {
        name: "email_draft".into(),
        schema: json!({
            "type": "object",
            "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
            "required": ["subject", "body"],
            "additionalProperties": false
        }),
        strict: true,
    }
}

/// Drafts the email `arguments` describe with `llm` on `model`.
pub(crate) async fn draft(llm: &dyn LlmProvider, model: &str, arguments: Value) -> Result<Value> {
    let args: DraftArgs = crate::args::parse(EMAIL_DRAFT, arguments)?;
    if args.brief.trim().is_empty() {
        return Err(Error::InvalidInput("`brief` is empty".into()));
    }
    if args.brief.chars().count() > MAX_BRIEF_CHARS {
        return Err(Error::InvalidInput(format!(
            "`brief` is longer than {MAX_BRIEF_CHARS} characters"
        )));
    }
    let mut prompt = format!("Brief:\n{}\n", args.brief.trim());
    for (label, value) in [
        ("Recipient", &args.to),
        ("Tone", &args.tone),
        ("Language", &args.language),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            prompt.push_str(&format!("{label}: {}\n", v.trim()));
        }
    }
    let request = LlmRequest {
        model: model.to_string(),
        instructions: Some(
            "You draft emails. Write a clear subject line and a complete body that follows \
             the brief. Do not invent facts the brief does not give; use placeholders like \
             [date] instead. Answer with JSON only."
                .into(),
        ),
        messages: vec![Message::user(prompt)],
        output_schema: Some(output_schema()),
        ..Default::default()
    };
    let response = llm.complete(&request).await?;
    let draft: EmailDraft = serde_json::from_value(response.json()?)
        .map_err(|e| Error::ModelOutput(format!("email draft: {e}")))?;
    if draft.subject.trim().is_empty() || draft.body.trim().is_empty() {
        return Err(Error::ModelOutput("email draft is empty".into()));
    }
    Ok(json!({
        "subject": draft.subject.trim(),
        "body": draft.body.trim(),
        "sent": false,
    }))
}
