//! Tool ids as LLM function names, and back.
//!
//! Providers accept function names matching `^[a-zA-Z0-9_-]{1,64}$`; tool ids are anything a
//! hub calls its tools (`ticketing.list_open`, `GMAIL_SEND_EMAIL`, `Kick.com API::Get Clips`,
//! MCP names in any script, slugs past 64 characters). [`function_name`] gives an id its
//! preferred name from the id alone:
//!
//! - an id that already fits the pattern is its own name;
//! - otherwise every run of other characters becomes one `_` (none at either end), so
//!   `ticketing.list_open` is `ticketing_list_open`;
//! - a name that would be empty or longer than 64 characters is cut to 55 and gets `_` and 8
//!   hex digits of the id's SHA-256.
//!
//! A [`ToolNameMap`] holds the names of one request's tools: unique, and reversible
//! ([`ToolNameMap::tool_id`]). An id keeps its preferred name unless another id of the map
//! already holds it; then it gets the hashed form (8 hex digits of its SHA-256, re-hashed with
//! a counter in the unlikely case that one is taken too). Names depend only on the ids, never
//! on time or process, so history replayed in a later request maps the same way.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest function name providers accept.
pub const MAX_FUNCTION_NAME: usize = 64;

/// Hex digits of the id's digest in a hashed name.
const DIGEST_HEX: usize = 8;

/// Characters of the readable part kept in a hashed name (`<prefix>_<8 hex>` is 64).
const HASHED_PREFIX: usize = MAX_FUNCTION_NAME - 1 - DIGEST_HEX;

/// Readable part of a hashed name for an id without any valid character.
const EMPTY_PREFIX: &str = "tool";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `name` is a valid function name (`^[a-zA-Z0-9_-]{1,64}$`).
pub fn is_function_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_FUNCTION_NAME && name.chars().all(is_name_char)
}

/// The preferred function name of `tool_id`, from the id alone (see the [module](self) doc).
/// Different ids can share one; a [`ToolNameMap`] keeps the names of a request unique.
pub fn function_name(tool_id: &str) -> String {
    if is_function_name(tool_id) {
        return tool_id.to_string();
    }
    let readable = readable_part(tool_id);
    if readable.is_empty() || readable.len() > MAX_FUNCTION_NAME {
        hashed_name(&readable, tool_id, 0)
    } else {
        readable
    }
}

/// `tool_id` with each run of invalid characters replaced by one `_`, none at either end.
fn readable_part(tool_id: &str) -> String {
    let mut out = String::with_capacity(tool_id.len());
    let mut gap = false;
    for c in tool_id.chars() {
        if is_name_char(c) {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// `<readable prefix>_<8 hex>`: the digest of the id, salted with `round` after the first.
fn hashed_name(readable: &str, tool_id: &str, round: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tool_id.as_bytes());
    if round > 0 {
        hasher.update([0]);
        hasher.update(round.to_le_bytes());
    }
    let digest = hex::encode(&hasher.finalize()[..DIGEST_HEX / 2]);
    let prefix = if readable.is_empty() {
        EMPTY_PREFIX
    } else {
        // `readable` is ASCII: any byte index is a character boundary.
        &readable[..readable.len().min(HASHED_PREFIX)]
    };
    format!("{prefix}_{digest}")
}

/// Function names of one request's tools: unique, reversible and stable (see the
/// [module](self) doc). Serialises as a map from function name to tool id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct ToolNameMap {
    to_id: HashMap<String, String>,
    to_name: HashMap<String, String>,
}

impl ToolNameMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `ids` whose names do not depend on their order: ids that are valid function
    /// names are their own names, the others are named in sorted order. Duplicates count
    /// once.
    pub fn from_ids<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut others: Vec<S> = Vec::new();
        let mut map = ToolNameMap::new();
        for id in ids {
            if is_function_name(id.as_ref()) {
                map.insert(id.as_ref());
            } else {
                others.push(id);
            }
        }
        others.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        for id in &others {
            map.insert(id.as_ref());
        }
        map
    }

    /// Adds `tool_id` (if new) and returns its function name: its preferred name when no
    /// other id holds it, else a hashed one.
    pub fn insert(&mut self, tool_id: &str) -> String {
        if let Some(name) = self.to_name.get(tool_id) {
            return name.clone();
        }
        let preferred = function_name(tool_id);
        let name = if self.to_id.contains_key(&preferred) {
            let readable = readable_part(tool_id);
            let mut round = 0;
            loop {
                let candidate = hashed_name(&readable, tool_id, round);
                if !self.to_id.contains_key(&candidate) {
                    break candidate;
                }
                round += 1;
            }
        } else {
            preferred
        };
        self.to_id.insert(name.clone(), tool_id.to_string());
        self.to_name.insert(tool_id.to_string(), name.clone());
        name
    }

    /// The tool id behind a function name the model called.
    pub fn tool_id(&self, function_name: &str) -> Option<&str> {
        self.to_id.get(function_name).map(String::as_str)
    }

    /// The function name of a tool id in this map.
    pub fn function_name(&self, tool_id: &str) -> Option<&str> {
        self.to_name.get(tool_id).map(String::as_str)
    }

    /// `(function name, tool id)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.to_id.iter().map(|(n, id)| (n.as_str(), id.as_str()))
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.to_id.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.to_id.is_empty()
    }
}

impl From<ToolNameMap> for BTreeMap<String, String> {
    fn from(map: ToolNameMap) -> Self {
        map.to_id.into_iter().collect()
    }
}

impl TryFrom<BTreeMap<String, String>> for ToolNameMap {
    type Error = String;

    fn try_from(names: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        let mut map = ToolNameMap::new();
        for (name, id) in names {
            if !is_function_name(&name) {
                return Err(format!("`{name}` is not a valid function name"));
            }
            if map.to_name.insert(id.clone(), name.clone()).is_some() {
                return Err(format!("tool `{id}` has two function names"));
            }
            map.to_id.insert(name, id);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_their_own_names() {
        assert_eq!(function_name("GMAIL_SEND_EMAIL"), "GMAIL_SEND_EMAIL");
        assert_eq!(function_name("notes-create"), "notes-create");
        assert_eq!(function_name("a"), "a");
    }

    #[test]
    fn other_characters_become_one_underscore() {
        assert_eq!(function_name("ticketing.list_open"), "ticketing_list_open");
        assert_eq!(function_name("count.b"), "count_b");
        assert_eq!(
            function_name("Kick.com API::Get Channel Clips"),
            "Kick_com_API_Get_Channel_Clips"
        );
        assert_eq!(function_name(" /Ünïcode/ "), "n_code");
    }

    #[test]
    fn empty_and_long_names_are_hashed() {
        let empty = function_name("...");
        assert!(empty.starts_with("tool_") && empty.len() == 13, "{empty}");
        assert_ne!(function_name("..."), function_name("::"));
        assert_eq!(function_name(""), hashed_name("", "", 0));
        let long = "x".repeat(65);
        let name = function_name(&long);
        assert_eq!(name.len(), MAX_FUNCTION_NAME);
        assert!(name.starts_with(&"x".repeat(HASHED_PREFIX)));
        assert_ne!(name, function_name(&"x".repeat(66)));
        assert_eq!(function_name(&"x".repeat(64)), "x".repeat(64));
    }

    #[test]
    fn a_taken_name_falls_back_to_the_hashed_form() {
        let mut m = ToolNameMap::new();
        assert_eq!(m.insert("a.b"), "a_b");
        let second = m.insert("a:b");
        assert_eq!(second, hashed_name("a_b", "a:b", 0));
        assert_eq!(m.insert("a.b"), "a_b", "an id keeps its name");
        // A valid id that happens to equal the fallback gets the next round.
        let mut m = ToolNameMap::new();
        m.insert(&hashed_name("a_b", "a:b", 0));
        m.insert("a_b");
        assert_eq!(m.insert("a:b"), hashed_name("a_b", "a:b", 1));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn from_ids_ignores_order_and_lets_valid_ids_keep_their_names() {
        let ids = ["a.b", "a_b", "a:b", "a b"];
        let forward = ToolNameMap::from_ids(ids);
        let backward = ToolNameMap::from_ids(ids.iter().rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.function_name("a_b"), Some("a_b"));
        assert_eq!(forward.len(), 4);
        for id in ids {
            let name = forward.function_name(id).unwrap_or_default();
            assert_eq!(forward.tool_id(name), Some(id));
        }
        assert_eq!(forward.tool_id("nope"), None);
    }

    #[test]
    fn serialises_as_name_to_id() {
        let m = ToolNameMap::from_ids(["a.b", "c"]);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json, serde_json::json!({"a_b": "a.b", "c": "c"}));
        let back: ToolNameMap = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        let bad = serde_json::from_value::<ToolNameMap>(serde_json::json!({"a.b": "a.b"}));
        assert!(bad.is_err());
        let twice = serde_json::json!({"a_b": "a.b", "a_b2": "a.b"});
        assert!(serde_json::from_value::<ToolNameMap>(twice).is_err());
    }
}
