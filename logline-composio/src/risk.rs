//! Risk tagging: from a tool's hint tags, slug words and HTTP verb to `risk_level`,
//! `side_effects`, `requires_confirmation` and category tags.
//!
//! # The default mapping
//!
//! A tool gets one or more **categories**:
//!
//! | source | rule |
//! |---|---|
//! | verb | the first word of the slug (after the toolkit's own words) or name that is in a category's word list decides `read` / `write` / `send` / `delete` |
//! | HTTP verb | only when no word decided: `GET`/`HEAD` → `read`, `POST`/`PUT`/`PATCH` → `write`; `DELETE` → `delete` always |
//! | domain words | unless the verb is a read: a `money` or `admin` word anywhere in the slug or name adds that category (`CREATE_REFUND` is money, `LIST_REFUNDS` is not) |
//! | hint tags | `destructiveHint` → `delete`, a tag that names a category (`send`, `money`, ...) → that category: added to what the slug says; `readOnlyHint` (or any hint that means `read`) → `read`, only when neither a word nor the HTTP verb said anything |
//! | nothing matched | `write` (unknown effects are treated as writes) |
//!
//! Hints come from the remote catalog, so they can **raise** a tool's risk but never lower
//! it below what its slug and verb say: `GMAIL_SEND_EMAIL` tagged `readOnlyHint` is still a
//! `send` (high risk, confirmation required).
//!
//! `read` is dropped from the categories when any other category is present. Each category
//! then has an effect:
//!
//! | category | risk | confirmation | side effect |
//! |---|---|---|---|
//! | `read` | low | no | `data_read` |
//! | `write` | medium | yes | `data_write` |
//! | `send` | high | yes | `message_send` |
//! | `delete` | high | yes | `data_delete` |
//! | `money` | high | yes | `money_movement` |
//! | `admin` | high | yes | `admin_change` |
//!
//! The tool's risk is the highest of its categories (a dropped `read` included); it needs
//! confirmation if any of them does. Its tags are the category names followed by its original tags.
//!
//! Everything is data: change the word lists, effects or defaults, or pin single tools with
//! [`RiskRules::with_override`]; [`RiskRules`] also (de)serialises as JSON.

use std::collections::{BTreeMap, BTreeSet};

use logline_core::search::tokenize::split_words;
use logline_core::tool::{RiskLevel, ToolSpec};
use serde::{Deserialize, Serialize};

/// What a tool does, for risk purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCategory {
    /// Reads only.
    Read,
    /// Creates or changes data.
    Write,
    /// Sends something to other people.
    Send,
    /// Deletes or destroys.
    Delete,
    /// Moves money.
    Money,
    /// Changes permissions, members or settings.
    Admin,
}

impl RiskCategory {
    /// Every category.
    pub const ALL: [RiskCategory; 6] = [
        RiskCategory::Read,
        RiskCategory::Write,
        RiskCategory::Send,
        RiskCategory::Delete,
        RiskCategory::Money,
        RiskCategory::Admin,
    ];

    /// The tag name (`read`, `write`, ...).
    pub fn tag(self) -> &'static str {
        match self {
            RiskCategory::Read => "read",
            RiskCategory::Write => "write",
            RiskCategory::Send => "send",
            RiskCategory::Delete => "delete",
            RiskCategory::Money => "money",
            RiskCategory::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.tag() == s)
    }
}

/// The effect of one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryEffect {
    /// Risk level.
    pub risk: RiskLevel,
    /// Calls pause for confirmation.
    pub requires_confirmation: bool,
    /// Side effect name.
    pub side_effect: String,
}

impl CategoryEffect {
    fn new(risk: RiskLevel, confirm: bool, side_effect: &str) -> Self {
        CategoryEffect {
            risk,
            requires_confirmation: confirm,
            side_effect: side_effect.into(),
        }
    }
}

/// A fixed assessment for one tool slug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskOverride {
    /// Categories (their effects apply unless overridden below).
    pub categories: Vec<RiskCategory>,
    /// Risk level instead of the categories' highest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskLevel>,
    /// Confirmation instead of the categories'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_confirmation: Option<bool>,
}

/// What the rules look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct RiskInput<'a> {
    /// Tool slug (`GMAIL_SEND_EMAIL`).
    pub slug: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Toolkit slug (its words are skipped when looking for the verb).
    pub toolkit: Option<&'a str>,
    /// Hub tags (`readOnlyHint`, `destructiveHint`, ...).
    pub tags: &'a [String],
    /// HTTP method, when the catalog says (RapidAPI-style catalogs do).
    pub http_method: Option<&'a str>,
}

/// The outcome for one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAssessment {
    /// Categories.
    pub categories: BTreeSet<RiskCategory>,
    /// Risk level.
    pub risk_level: RiskLevel,
    /// Whether calls need confirmation.
    pub requires_confirmation: bool,
    /// Side effects.
    pub side_effects: Vec<String>,
    /// Category tags followed by the original tags.
    pub tags: Vec<String>,
}

impl RiskAssessment {
    /// Writes the assessment into `tool`.
    pub fn apply(&self, tool: &mut ToolSpec) {
        tool.risk_level = self.risk_level;
        tool.requires_confirmation = self.requires_confirmation;
        tool.side_effects = self.side_effects.clone();
        tool.tags = self.tags.clone();
    }
}

/// The mapping (see the module docs for the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRules {
    /// Words of slugs and names per category (lowercase).
    pub words: BTreeMap<RiskCategory, Vec<String>>,
    /// Hub tags (lowercase) per category; `readonlyhint` means `read` (see the module docs).
    pub hint_tags: BTreeMap<String, RiskCategory>,
    /// HTTP methods (uppercase) per category.
    pub http_methods: BTreeMap<String, RiskCategory>,
    /// Effect of each category.
    pub effects: BTreeMap<RiskCategory, CategoryEffect>,
    /// Category of a tool nothing matched.
    pub unknown: RiskCategory,
    /// Fixed assessments by tool slug.
    #[serde(default)]
    pub overrides: BTreeMap<String, RiskOverride>,
}

const READ_ONLY_HINT: &str = "readonlyhint";

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for RiskRules {
    fn default() -> Self {
        use RiskCategory::*;
        let mut w = BTreeMap::new();
        w.insert(
            Read,
            words(&[
                "get",
                "list",
                "search",
                "find",
                "fetch",
                "read",
                "retrieve",
                "query",
                "count",
                "check",
                "describe",
                "view",
                "lookup",
                "download",
                "export",
                "show",
                "browse",
                "verify",
                "validate",
                "calculate",
                "convert",
                "detect",
                "analyze",
                "translate",
                "generate",
                "predict",
                "estimate",
                "compare",
                "info",
                "details",
                "status",
                "stats",
            ]),
        );
        w.insert(
            Write,
            words(&[
                "create",
                "update",
                "add",
                "insert",
                "set",
                "edit",
                "modify",
                "patch",
                "put",
                "upload",
                "move",
                "copy",
                "rename",
                "star",
                "upsert",
                "write",
                "enable",
                "disable",
                "assign",
                "merge",
                "close",
                "reopen",
                "schedule",
                "save",
                "import",
                "append",
                "replace",
                "restore",
                "label",
                "mark",
                "pin",
                "unpin",
                "tag",
                "book",
                "register",
                "subscribe",
                "unsubscribe",
                "start",
                "stop",
                "run",
                "trigger",
                "execute",
                "sync",
            ]),
        );
        w.insert(
            Send,
            words(&[
                "send",
                "post",
                "reply",
                "forward",
                "share",
                "publish",
                "notify",
                "invite",
                "tweet",
                "retweet",
                "broadcast",
                "dm",
                "email",
                "message",
                "comment",
                "mention",
                "sms",
                "call",
            ]),
        );
        w.insert(
            Delete,
            words(&[
                "delete",
                "remove",
                "destroy",
                "purge",
                "erase",
                "trash",
                "drop",
                "wipe",
                "clear",
                "archive",
                "cancel",
                "terminate",
                "uninstall",
                "discard",
            ]),
        );
        w.insert(
            Money,
            words(&[
                "pay",
                "payment",
                "payments",
                "charge",
                "refund",
                "payout",
                "purchase",
                "buy",
                "checkout",
                "withdraw",
                "deposit",
                "invoice",
                "transfer",
                "transaction",
                "subscription",
                "order",
                "wallet",
            ]),
        );
        w.insert(
            Admin,
            words(&[
                "admin",
                "permission",
                "permissions",
                "role",
                "roles",
                "grant",
                "revoke",
                "ban",
                "suspend",
                "impersonate",
                "ownership",
                "member",
                "members",
                "collaborator",
                "collaborators",
                "acl",
                "policy",
                "secret",
                "secrets",
                "key",
                "token",
                "webhook",
                "sso",
                "saml",
            ]),
        );
        let mut hint_tags = BTreeMap::new();
        hint_tags.insert("destructivehint".into(), Delete);
        let mut http = BTreeMap::new();
        for m in ["GET", "HEAD", "OPTIONS"] {
            http.insert(m.into(), Read);
        }
        for m in ["POST", "PUT", "PATCH"] {
            http.insert(m.into(), Write);
        }
        http.insert("DELETE".into(), Delete);
        let mut effects = BTreeMap::new();
        effects.insert(
            Read,
            CategoryEffect::new(RiskLevel::Low, false, "data_read"),
        );
        effects.insert(
            Write,
            CategoryEffect::new(RiskLevel::Medium, true, "data_write"),
        );
        effects.insert(
            Send,
            CategoryEffect::new(RiskLevel::High, true, "message_send"),
        );
        effects.insert(
            Delete,
            CategoryEffect::new(RiskLevel::High, true, "data_delete"),
        );
        effects.insert(
            Money,
            CategoryEffect::new(RiskLevel::High, true, "money_movement"),
        );
        effects.insert(
            Admin,
            CategoryEffect::new(RiskLevel::High, true, "admin_change"),
        );
        RiskRules {
            words: w,
            hint_tags,
            http_methods: http,
            effects,
            unknown: Write,
            overrides: BTreeMap::new(),
        }
    }
}

impl RiskRules {
    /// Pins the assessment of one tool slug.
    pub fn with_override(mut self, slug: impl Into<String>, o: RiskOverride) -> Self {
        self.overrides.insert(slug.into(), o);
        self
    }

    /// Adds a word to a category.
    pub fn with_word(mut self, category: RiskCategory, word: impl Into<String>) -> Self {
        self.words
            .entry(category)
            .or_default()
            .push(word.into().to_lowercase());
        self
    }

    /// Replaces a category's effect.
    pub fn with_effect(mut self, category: RiskCategory, effect: CategoryEffect) -> Self {
        self.effects.insert(category, effect);
        self
    }

    /// Loads rules from JSON (the serialised form of [`RiskRules`]).
    pub fn from_json(json: &str) -> logline_core::Result<Self> {
        serde_json::from_str(json)
            .map_err(|e| logline_core::Error::InvalidInput(format!("risk rules: {e}")))
    }

    fn category_of_word(&self, word: &str, only: &[RiskCategory]) -> Option<RiskCategory> {
        let forms = word_forms(word);
        only.iter().copied().find(|c| {
            self.words
                .get(c)
                .is_some_and(|ws| ws.iter().any(|w| forms.iter().any(|f| f == w)))
        })
    }

    /// Assesses one tool.
    pub fn assess(&self, input: &RiskInput<'_>) -> RiskAssessment {
        let mut found: BTreeSet<RiskCategory> = BTreeSet::new();
        let mut fixed: Option<&RiskOverride> = None;
        if let Some(o) = self.overrides.get(input.slug) {
            found.extend(o.categories.iter().copied());
            fixed = Some(o);
        } else {
            self.categorise(input, &mut found);
        }
        if found.is_empty() {
            found.insert(self.unknown);
        }
        // Risk and confirmation look at every category found, so that adding one (a hint)
        // can never lower them, whatever the effects are configured to be.
        let all_effects = || found.iter().filter_map(|c| self.effects.get(c));
        let mut risk = all_effects()
            .map(|e| e.risk)
            .max()
            .unwrap_or(RiskLevel::Medium);
        let mut confirm = all_effects().any(|e| e.requires_confirmation);
        if let Some(o) = fixed {
            risk = o.risk.unwrap_or(risk);
            confirm = o.requires_confirmation.unwrap_or(confirm);
        }
        let mut cats = found.clone();
        if cats.len() > 1 {
            cats.remove(&RiskCategory::Read);
        }
        let mut side_effects: Vec<String> = Vec::new();
        for e in cats.iter().filter_map(|c| self.effects.get(c)) {
            if !side_effects.contains(&e.side_effect) {
                side_effects.push(e.side_effect.clone());
            }
        }
        let mut tags: Vec<String> = cats.iter().map(|c| c.tag().to_string()).collect();
        for t in input.tags {
            if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tags.push(t.clone());
            }
        }
        RiskAssessment {
            categories: cats,
            risk_level: risk,
            requires_confirmation: confirm,
            side_effects,
            tags,
        }
    }

    /// What the slug, name and HTTP verb say, plus what the hint tags add. A hint that means
    /// `read` decides only when the words and the verb say nothing: remote hints raise the
    /// risk, never lower it.
    fn categorise(&self, input: &RiskInput<'_>, cats: &mut BTreeSet<RiskCategory>) {
        self.categorise_words(input, cats);
        let mut read_hint = false;
        for tag in input.tags {
            let hint = tag.to_lowercase();
            let category = if hint == READ_ONLY_HINT {
                Some(RiskCategory::Read)
            } else {
                self.hint_tags
                    .get(&hint)
                    .copied()
                    .or_else(|| RiskCategory::parse(&hint))
            };
            match category {
                Some(RiskCategory::Read) => read_hint = true,
                Some(c) => {
                    cats.insert(c);
                }
                None => {}
            }
        }
        if read_hint && cats.is_empty() {
            cats.insert(RiskCategory::Read);
        }
    }

    /// The categories of the slug and name words and of the HTTP verb.
    fn categorise_words(&self, input: &RiskInput<'_>, cats: &mut BTreeSet<RiskCategory>) {
        use RiskCategory::*;
        let kit: BTreeSet<String> = input
            .toolkit
            .map(split_words)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut ws: Vec<String> = split_words(input.slug)
            .into_iter()
            .filter(|w| !kit.contains(w))
            .collect();
        ws.extend(split_words(input.name));
        let method = input.http_method.map(str::to_ascii_uppercase);
        let verb = ws
            .iter()
            .find_map(|w| self.category_of_word(w, &[Read, Write, Send, Delete]));
        match verb {
            Some(c) => {
                cats.insert(c);
            }
            None => {
                if let Some(c) = method.as_deref().and_then(|m| self.http_methods.get(m)) {
                    cats.insert(*c);
                }
            }
        }
        if method.as_deref().and_then(|m| self.http_methods.get(m)) == Some(&Delete) {
            cats.insert(Delete);
        }
        if verb == Some(Read) {
            return;
        }
        for w in &ws {
            if let Some(c) = self.category_of_word(w, &[Money, Admin]) {
                cats.insert(c);
            }
        }
    }
}

/// A word and its simple inflection-stripped forms (`emails` → `email`, `deleted` →
/// `delete`, `sending` → `send`).
fn word_forms(word: &str) -> Vec<String> {
    let w = word.to_lowercase();
    let mut out = vec![w.clone()];
    let mut push = |s: &str| {
        if s.len() >= 2 && !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    };
    if let Some(s) = w.strip_suffix("ies") {
        push(&format!("{s}y"));
    }
    if let Some(s) = w.strip_suffix("es") {
        push(s);
    }
    if let Some(s) = w.strip_suffix('s') {
        push(s);
    }
    if let Some(s) = w.strip_suffix("ed") {
        push(s);
        push(&format!("{s}e"));
    }
    if let Some(s) = w.strip_suffix("ing") {
        push(s);
        push(&format!("{s}e"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assess(slug: &str, tags: &[&str], method: Option<&str>) -> RiskAssessment {
        let tags: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
        RiskRules::default().assess(&RiskInput {
            slug,
            name: "",
            toolkit: slug.split('_').next(),
            tags: &tags,
            http_method: method,
        })
    }

    #[test]
    fn hints_decide_first() {
        let a = assess(
            "NOTION_ARCHIVE_NOTION_PAGE",
            &["destructiveHint", "openWorldHint"],
            None,
        );
        assert_eq!(a.risk_level, RiskLevel::High);
        assert!(a.requires_confirmation);
        assert!(a.tags.contains(&"delete".to_string()));
        assert!(a.tags.contains(&"destructiveHint".to_string()));
        let r = assess("HACKERNEWS_FROBNICATE", &["readOnlyHint"], None);
        assert_eq!(r.categories, BTreeSet::from([RiskCategory::Read]));
        assert_eq!(r.risk_level, RiskLevel::Low);
        assert!(!r.requires_confirmation);
    }

    #[test]
    fn a_read_only_hint_never_lowers_what_the_slug_says() {
        let plain = assess("GMAIL_SEND_EMAIL", &[], None);
        let hinted = assess("GMAIL_SEND_EMAIL", &["readOnlyHint"], None);
        assert_eq!(hinted.categories, BTreeSet::from([RiskCategory::Send]));
        assert_eq!(hinted.risk_level, RiskLevel::High);
        assert!(hinted.requires_confirmation);
        assert_eq!(hinted.side_effects, plain.side_effects);
        assert!(hinted.tags.contains(&"readOnlyHint".to_string()));
        let write = assess(
            "ASANA_CREATE_TASK",
            &["readOnlyHint", "idempotentHint"],
            None,
        );
        assert_eq!(write.risk_level, RiskLevel::Medium);
        assert!(write.requires_confirmation);
        let by_method = assess("Songkick concert", &["readOnlyHint"], Some("DELETE"));
        assert!(by_method.categories.contains(&RiskCategory::Delete));
        // A hint that raises still counts.
        let raised = assess("GMAIL_LIST_EMAILS", &["destructiveHint"], None);
        assert_eq!(raised.risk_level, RiskLevel::High);
    }

    #[test]
    fn risk_counts_every_category_found_even_a_dropped_read() {
        let rules = RiskRules::default().with_effect(
            RiskCategory::Read,
            CategoryEffect::new(RiskLevel::High, true, "data_read"),
        );
        let tags = vec!["write".to_string()];
        let a = rules.assess(&RiskInput {
            slug: "GITHUB_GET_REPO",
            toolkit: Some("github"),
            tags: &tags,
            ..Default::default()
        });
        assert_eq!(a.categories, BTreeSet::from([RiskCategory::Write]));
        assert_eq!(a.risk_level, RiskLevel::High);
    }

    #[test]
    fn verbs_and_domains() {
        let s = assess("GMAIL_SEND_EMAIL", &[], None);
        assert_eq!(s.categories, BTreeSet::from([RiskCategory::Send]));
        assert_eq!(s.risk_level, RiskLevel::High);
        assert_eq!(s.side_effects, ["message_send"]);
        let l = assess("GMAIL_LIST_EMAILS", &[], None);
        assert_eq!(l.categories, BTreeSet::from([RiskCategory::Read]));
        let d = assess("GITHUB_DELETE_A_REPOSITORY", &[], None);
        assert!(d.categories.contains(&RiskCategory::Delete));
        assert_eq!(
            assess("STRIPE_LIST_REFUNDS", &[], None).categories,
            BTreeSet::from([RiskCategory::Read])
        );
        let m = assess("STRIPE_CREATE_REFUND", &[], None);
        assert_eq!(
            m.categories,
            BTreeSet::from([RiskCategory::Write, RiskCategory::Money])
        );
        let a = assess("GITHUB_ADD_COLLABORATOR", &[], None);
        assert!(a.categories.contains(&RiskCategory::Admin));
        let w = assess("ASANA_CREATE_TASK", &[], None);
        assert_eq!(w.risk_level, RiskLevel::Medium);
        assert!(w.requires_confirmation);
        let inflected = assess("TRELLO_DELETED_CARDS_PURGE", &[], None);
        assert!(inflected.categories.contains(&RiskCategory::Delete));
    }

    #[test]
    fn http_verbs_and_unknowns() {
        assert_eq!(
            assess("Songkick concert", &[], Some("GET")).categories,
            BTreeSet::from([RiskCategory::Read])
        );
        assert!(assess("Get thing", &[], Some("DELETE"))
            .categories
            .contains(&RiskCategory::Delete));
        assert_eq!(
            assess("MYSTERY_FROBNICATE", &[], None).categories,
            BTreeSet::from([RiskCategory::Write])
        );
    }

    #[test]
    fn overrides_and_json() {
        let rules = RiskRules::default().with_override(
            "GMAIL_SEND_EMAIL",
            RiskOverride {
                categories: vec![RiskCategory::Send],
                risk: Some(RiskLevel::Medium),
                requires_confirmation: Some(false),
            },
        );
        let a = rules.assess(&RiskInput {
            slug: "GMAIL_SEND_EMAIL",
            ..Default::default()
        });
        assert_eq!(a.risk_level, RiskLevel::Medium);
        assert!(!a.requires_confirmation);
        let json = serde_json::to_string(&rules).unwrap_or_default();
        assert_eq!(RiskRules::from_json(&json).ok(), Some(rules));
    }
}
