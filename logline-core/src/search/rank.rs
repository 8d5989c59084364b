//! Ranking parameters: BM25F over the tool fields, and the router's intent/app boosts.
//!
//! Scoring is BM25F (Robertson, Zaragoza & Taylor 2004, "Simple BM25 extension to multiple
//! weighted fields"; Robertson & Zaragoza 2009): per query term `t` and tool `d`,
//!
//! ```text
//! tf~(t,d)  = Σ_f w_f · tf(t,d,f) / ((1 − b_f) + b_f · len(d,f) / avglen(f))
//! score(d)  = Σ_t qw(t) · idf(t) · tf~ · (k1 + 1) / (k1 + tf~)
//! idf(t)    = ln(1 + (N − df + 0.5) / (df + 0.5))
//! qw(t)     = qtf · (k3 + 1) / (k3 + qtf)
//! ```
//!
//! with the standard `k1 = 1.2`, `b = 0.75` and `k3 = 8`. Field weights follow the usual
//! practice of weighting short, descriptive fields (titles) above the body: the tool name
//! counts three times, the toolkit twice, the description once, parameter names and
//! descriptions and the output's property names half. The parameter field also holds the
//! short string values the input schema names (`enum`, `default`, `examples`; at most 64 per
//! parameter): a request says "trending gaming videos" or quotes an id in the format a tool's
//! example shows, in the words of those values, not of the parameter's name.
//!
//! Tools are also scored as members of their toolkit: the toolkit is one document made of all
//! its tools (BM25 over the members' summed field-weighted term frequencies, normalised by the
//! toolkit's field-weighted length, with a toolkit-level idf), because a request usually names
//! or describes an app and the tools it needs come from the same app (cluster-based
//! retrieval, Liu & Croft 2004). The two scores are fused by CombSUM over max-normalised scores (Fox &
//! Shaw 1994): `score = tool / max(tool) + toolkit / max(toolkit)`, so neither needs a weight.

use serde::{Deserialize, Serialize};

use super::tokenize::split_words;

/// Number of indexed fields.
pub(crate) const FIELD_COUNT: usize = 5;

/// The indexed fields of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Field {
    /// Display name and the words of the id (slug) not already in it.
    Name = 0,
    /// Toolkit slug.
    Toolkit = 1,
    /// Description.
    Description = 2,
    /// Parameter names and descriptions from the input schema, and the values it names
    /// (`enum`, `default`, `examples`; short strings only).
    Parameters = 3,
    /// Property names of the output schema (what the tool returns).
    Returns = 4,
}

/// BM25F parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bm25Params {
    /// Term-frequency saturation.
    pub(crate) k1: f32,
    /// Query term-frequency saturation.
    pub(crate) k3: f32,
    /// Weight of each [`Field`], by its discriminant.
    pub(crate) field_weight: [f32; FIELD_COUNT],
    /// Length normalisation of each field.
    pub(crate) field_b: [f32; FIELD_COUNT],
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params {
            k1: 1.2,
            k3: 8.0,
            field_weight: [3.0, 2.0, 1.0, 0.5, 0.5],
            field_b: [0.75; FIELD_COUNT],
        }
    }
}

/// Boosts from the router's output (candidate apps and intent tags).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct BoostParams {
    /// Multiplier added for a tool whose toolkit is one of the router's candidate apps.
    pub(crate) candidate_app: f32,
    /// Multiplier added for a tool carrying one of the intent's tags.
    pub(crate) intent_tag: f32,
    /// Score given to a candidate app's tool that matched no query term, so the model still
    /// sees the app's tools when the wording differs.
    pub(crate) candidate_app_floor: f32,
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams {
            candidate_app: 1.0,
            intent_tag: 0.25,
            candidate_app_floor: 0.01,
        }
    }
}

/// Maps a router intent (`send_email`, `list open tickets`, `read`) to catalog tags
/// (`read`, `write`, `send`, `delete`, `money`, `admin`) by its verbs; tag names given
/// directly pass through.
pub(crate) fn intent_tags(intent: &str) -> Vec<String> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "read",
            &[
                "read",
                "get",
                "list",
                "search",
                "find",
                "fetch",
                "show",
                "lookup",
                "view",
                "retrieve",
                "query",
                "check",
                "count",
                "download",
                "export",
                "summarize",
                "analyze",
            ],
        ),
        (
            "write",
            &[
                "write", "create", "update", "add", "edit", "modify", "set", "insert", "upload",
                "save", "rename", "move", "copy", "assign", "schedule", "book", "enable",
                "disable", "star", "archive", "draft",
            ],
        ),
        (
            "send",
            &[
                "send", "post", "reply", "forward", "share", "publish", "notify", "message",
                "invite", "email", "tweet", "dm",
            ],
        ),
        (
            "delete",
            &[
                "delete", "remove", "destroy", "purge", "erase", "trash", "drop", "cancel",
            ],
        ),
        (
            "money",
            &[
                "pay", "payment", "charge", "refund", "payout", "purchase", "buy", "transfer",
                "invoice", "checkout",
            ],
        ),
        (
            "admin",
            &[
                "admin",
                "permission",
                "role",
                "grant",
                "revoke",
                "ban",
                "suspend",
            ],
        ),
    ];
    let mut out: Vec<String> = Vec::new();
    for w in split_words(intent) {
        for (tag, words) in TABLE {
            if (w == *tag || words.contains(&w.as_str())) && !out.iter().any(|t| t == tag) {
                out.push(tag.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_map_to_tags() {
        assert_eq!(intent_tags("send_email"), ["send"]);
        assert_eq!(intent_tags("list open tickets"), ["read"]);
        assert_eq!(intent_tags("createAndShare"), ["write", "send"]);
        assert!(intent_tags("smalltalk").is_empty());
    }
}
