//! `scaffold.telegram_bot`: a zip artifact of a small Python Telegram bot project
//! (python-telegram-bot, polling, one reply per command). The project is generated as data,
//! never run; every user-supplied string reaches the code only as a quoted string literal.

use std::io::{Cursor, Write};

use logline_core::artifact::{ArtifactStore, ArtifactStoreExt, NewArtifact};
use logline_core::tool::{RiskLevel, ToolContext, ToolSpec};
use logline_core::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use zip::write::SimpleFileOptions;

/// Tool id.
pub const TELEGRAM_BOT: &str = "scaffold.telegram_bot";

/// Most commands a scaffold gets.
pub const MAX_COMMANDS: usize = 20;

/// The catalog entry: creates one artifact the caller owns; nothing runs.
pub fn spec() -> ToolSpec {
    ToolSpec::new(
        TELEGRAM_BOT,
        "Generate a small Python Telegram bot project (python-telegram-bot) as a zip file the \
         user can download. Each command replies with a fixed text. The code is not run.",
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": "string", "maxLength": 500},
                "commands": {
                    "type": "array",
                    "maxItems": MAX_COMMANDS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "command": {"type": "string", "pattern": "^[a-z0-9_]{1,32}$"},
                            "description": {"type": "string", "maxLength": 256},
                            "reply": {"type": "string", "maxLength": 4096}
                        },
                        "required": ["command", "reply"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["name"],
            "additionalProperties": false
        }),
    )
    .in_toolkit("scaffold")
    .with_risk(RiskLevel::Low)
    .with_tags(["create", "code", "artifact"])
    .with_side_effects(["artifact_create"])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaffoldArgs {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    commands: Vec<Command>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    command: String,
    #[serde(default)]
    description: String,
    reply: String,
}

/// Builds the project and stores it as a zip artifact of the caller, linked to the run.
pub(crate) async fn telegram_bot(
    artifacts: &dyn ArtifactStore,
    arguments: Value,
    ctx: &ToolContext,
) -> Result<Value> {
    let args: ScaffoldArgs = crate::args::parse(TELEGRAM_BOT, arguments)?;
    let project = Project::new(args)?;
    let zip = project.zip()?;
    let mut upload =
        NewArtifact::named(format!("{}.zip", project.slug)).with_type("application/zip");
    upload.task_id = ctx.run_id;
    let artifact = artifacts.put(&crate::args::owner(ctx), upload, zip).await?;
    Ok(json!({
        "artifact": crate::pdf::artifact_summary(&artifact),
        "files": project.files().iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        "executed": false,
    }))
}

struct Project {
    slug: String,
    name: String,
    description: String,
    commands: Vec<Command>,
}

/// A Python string literal holding `s` (JSON string syntax is valid Python).
fn py(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl Project {
    fn new(args: ScaffoldArgs) -> Result<Self> {
        let name = args.name.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Error::InvalidInput(
                "`name` must be a non-empty line".into(),
            ));
        }
        if args.commands.len() > MAX_COMMANDS {
            return Err(Error::InvalidInput(format!(
                "at most {MAX_COMMANDS} commands"
            )));
        }
        let mut commands: Vec<Command> = Vec::new();
        for c in args.commands {
            let valid = (1..=32).contains(&c.command.len())
                && c.command
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(Error::InvalidInput(format!(
                    "command `{}` must be 1-32 of a-z, 0-9 and _",
                    c.command.escape_debug()
                )));
            }
            if matches!(c.command.as_str(), "start" | "help")
                || commands.iter().any(|k| k.command == c.command)
            {
                return Err(Error::InvalidInput(format!(
                    "command `{}` is given twice or reserved",
                    c.command
                )));
            }
            commands.push(c);
        }
        let slug: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
            .split('_')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let slug = match slug.get(..40) {
            Some(s) => s.trim_end_matches('_').to_string(),
            None => slug,
        };
        Ok(Project {
            slug: if slug.is_empty() {
                "telegram_bot".into()
            } else {
                slug
            },
            name,
            description: args.description.trim().to_string(),
            commands,
        })
    }

    /// Every file: (path inside the zip, contents).
    fn files(&self) -> Vec<(String, String)> {
        let root = &self.slug;
        let mut table = String::new();
        for c in &self.commands {
            table.push_str(&format!(
                "    {}: ({}, {}),\n",
                py(&c.command),
                py(&c.description),
                py(&c.reply)
            ));
        }
        let mut command_list = String::new();
        for c in &self.commands {
            command_list.push_str(&format!(
                "- `/{}`: {}\n",
                c.command,
                one_line(&c.description)
            ));
        }
        vec![
            (
                format!("{root}/README.md"),
                readme(&self.name, &self.description, &command_list),
            ),
            (
                format!("{root}/requirements.txt"),
                "python-telegram-bot>=21,<23\n".into(),
            ),
            (
                format!("{root}/.env.example"),
                "TELEGRAM_BOT_TOKEN=\n".into(),
            ),
            (
                format!("{root}/bot/__init__.py"),
                format!(
                    "\"\"\"Telegram bot {}.\"\"\"\n\nNAME = {}\n",
                    self.slug,
                    py(&self.name)
                ),
            ),
            (format!("{root}/bot/config.py"), CONFIG_PY.into()),
            (
                format!("{root}/bot/handlers.py"),
                handlers_py(&py(&self.description), &table),
            ),
            (format!("{root}/bot/__main__.py"), MAIN_PY.into()),
        ]
    }

    fn zip(&self) -> Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("building zip: {e}"));
        for (path, contents) in self.files() {
            zip.start_file(path, options).map_err(|e| failed(&e))?;
            zip.write_all(contents.as_bytes()).map_err(|e| failed(&e))?;
        }
        Ok(zip.finish().map_err(|e| failed(&e))?.into_inner())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn readme(name: &str, description: &str, commands: &str) -> String {
    format!(
        "# {}\n\n{}\n\n## Commands\n\n- `/start`, `/help`: what the bot does\n{}\n\
         ## Run\n\n```sh\npython -m venv .venv && . .venv/bin/activate\n\
         pip install -r requirements.txt\nexport TELEGRAM_BOT_TOKEN=...   # from @BotFather\n\
         python -m bot\n```\n",
        one_line(name),
        description,
        commands
    )
}

const CONFIG_PY: &str = r#""""Settings read from the environment."""

import os


def bot_token() -> str:
    """The bot token from TELEGRAM_BOT_TOKEN; exits with a message when it is missing."""
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise SystemExit("Set TELEGRAM_BOT_TOKEN (see .env.example).")
    return token
"#;

/// `handlers.py`, by concatenation: user text never passes through a template.
fn handlers_py(about_literal: &str, command_table: &str) -> String {
    [
        HANDLERS_HEAD,
        "ABOUT = ",
        about_literal,
        "\n\n# command -> (description, reply)\nCOMMANDS = {\n",
        command_table,
        "}\n\n",
        HANDLERS_TAIL,
    ]
    .concat()
}

const HANDLERS_HEAD: &str = r#""""Command handlers: each command answers with a fixed text."""

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

"#;

const HANDLERS_TAIL: &str = r#"
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lines = [ABOUT] if ABOUT else []
    lines += [f"/{name} - {description}" for name, (description, _) in COMMANDS.items()]
    await update.message.reply_text("\n".join(lines) or "Hello!")


def reply_with(text: str):
    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(text)

    return handler


def all_handlers() -> list:
    handlers = [CommandHandler(["start", "help"], start)]
    for name, (_, reply) in COMMANDS.items():
        handlers.append(CommandHandler(name, reply_with(reply)))
    return handlers
"#;

const MAIN_PY: &str = r#""""Entry point: python -m bot"""

from telegram.ext import Application

from .config import bot_token
from .handlers import all_handlers


def main() -> None:
    app = Application.builder().token(bot_token()).build()
    app.add_handlers(all_handlers())
    app.run_polling()


if __name__ == "__main__":
    main()
"#;
