//! Query decomposition for multi-intent requests.
//!
//! A chat request often asks for several things at once ("Find a 7-letter word starting with
//! 'fru'. Also fetch the income data for the ZIP code 98765."). Ranked as one bag of words,
//! the intent with the most (or the rarest) matching words fills the Top-N and the others are
//! crowded out. The standard remedy (query decomposition / multi-intent retrieval) is to split
//! the request into sub-requests, rank the catalog for each of them and for the whole request,
//! and merge the rankings so that every intent gets slots.
//!
//! The split is purely language-level (English request grammar), never catalog-specific:
//!
//! 1. **sentences**: at `.`, `!`, `?`, `;` or a line break followed by white space, except
//!    after a one-letter word (initials, `U.S.`) or a common abbreviation (`e.g.`, `etc.`);
//! 2. **clause connectors** inside a sentence: a new sub-request starts at `also`,
//!    `additionally`, `in addition`, `as well as`, `moreover`, `furthermore`; at `plus`,
//!    `besides` and `then` when a comma or an `and` precedes them; and at `and` when an
//!    imperative request verb follows (`..., and find ...`);
//! 3. **small pieces merge**: a piece with fewer than [`DecomposeConfig::min_words`] content
//!    words (words that are not function or request words such as "please", "can", "me") is
//!    glued to its neighbour, so "Can you help me?" never becomes a sub-request of its own; at
//!    most [`DecomposeConfig::max_parts`] pieces are kept (the rest join the last one).
//!
//! The per-request rankings are merged with Reciprocal Rank Fusion (Cormack, Clarke &
//! Büttcher 2009) over the whole request's ranking and each sub-request's ranking: a tool that
//! leads its sub-request's list enters the Top-N even when another intent dominates the whole
//! request, and a tool only a context sentence ("I'm planning a trip") likes does not outrank
//! the tools both the whole request and a sub-request agree on. Round-robin interleaving is
//! available as the alternative ([`PartFusion::RoundRobin`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::gate::ToolGate;
use super::index::{RankHints, ScoredTool, ToolIndex};
use super::tokenize::{is_stop_word, split_words};
use crate::tool::ToolSpec;

/// How the per-request rankings are merged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum PartFusion {
    /// Two rankers fused with Reciprocal Rank Fusion, `1/(k + rank) + 1/(k + rank')`: the
    /// whole request's ranking, and the sub-requests' rankings interleaved round-robin (a
    /// tool ranks by its best rank in any sub-request: it serves one intent, so its ranks
    /// for the other intents are no evidence).
    Rrf {
        /// Rank offset (60 in the original paper).
        k: f32,
    },
    /// Reciprocal Rank Fusion over the whole request's list and every sub-request's list as
    /// separate voters, `Σ_lists 1/(k + rank)` (ablation: summing over sub-requests rewards
    /// tools that weakly match every sentence).
    RrfAll {
        /// Rank offset.
        k: f32,
    },
    /// Round-robin interleaving: the whole request's first tool, then each sub-request's
    /// first, then the second of each, … (duplicates skipped).
    RoundRobin,
}

impl Default for PartFusion {
    fn default() -> Self {
        PartFusion::Rrf { k: 60.0 }
    }
}

/// Settings of query decomposition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecomposeConfig {
    /// Split multi-intent requests (off: the whole request is ranked once).
    pub enabled: bool,
    /// A sub-request needs at least this many content words; smaller pieces merge into a
    /// neighbour.
    pub min_words: usize,
    /// At most this many sub-requests (bounds the cost: one lexical search each).
    pub max_parts: usize,
    /// How the rankings are merged.
    pub fusion: PartFusion,
    /// Each ranking (the whole request's and every sub-request's) is cut at
    /// `max(depth, k)` before merging: rank fusion needs lists deeper than the Top-N, or a
    /// tool that one list ranks just below the cut loses the evidence of that list.
    pub depth: usize,
}

impl Default for DecomposeConfig {
    fn default() -> Self {
        DecomposeConfig {
            enabled: true,
            min_words: 2,
            max_parts: 6,
            fusion: PartFusion::default(),
            depth: 30,
        }
    }
}

impl DecomposeConfig {
    /// Decomposition switched off.
    pub fn off() -> Self {
        DecomposeConfig {
            enabled: false,
            ..Default::default()
        }
    }

    /// The sub-requests of `query` (empty when disabled or when the request is one piece).
    pub fn parts(&self, query: &str) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let parts = decompose(query, self.min_words, self.max_parts);
        if parts.len() < 2 {
            Vec::new()
        } else {
            parts
        }
    }
}

impl ToolIndex {
    /// The `k` best tools for `query` as [`ToolSearch::search`](super::ToolSearch::search)
    /// ranks them before the policy check and the rerank: with `decompose` on, the whole
    /// request and each of its sub-requests are ranked and the rankings merged; otherwise
    /// (or for a request that does not split) this is [`ToolIndex::search`]. Evaluation
    /// harnesses use it to measure the ranking on its own.
    pub fn search_decomposed(
        &self,
        query: &str,
        decompose: &DecomposeConfig,
        gate: &ToolGate,
        hints: &RankHints,
        k: usize,
    ) -> Vec<ScoredTool> {
        let parts = decompose.parts(query);
        search_parts(self, query, &parts, decompose, gate, hints, k)
    }
}

/// The `k` best tools for `query` over `index`: with `parts` (sub-requests of `query`, see
/// [`DecomposeConfig::parts`]) the whole request and each part are ranked and the rankings
/// merged with `config.fusion`; without parts, the plain [`ToolIndex::search`].
pub(crate) fn search_parts(
    index: &ToolIndex,
    query: &str,
    parts: &[String],
    config: &DecomposeConfig,
    gate: &ToolGate,
    hints: &RankHints,
    k: usize,
) -> Vec<ScoredTool> {
    if parts.len() < 2 || k == 0 {
        return index.search(query, gate, hints, k);
    }
    let depth = config.depth.max(k);
    let queries: Vec<&str> = std::iter::once(query)
        .chain(parts.iter().map(String::as_str))
        .collect();
    merge(
        index.search_many(&queries, gate, hints, depth),
        config.fusion,
        k,
    )
}

/// Words after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "eg", "ie", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "no", "approx",
    "incl", "jr", "sr", "inc", "ltd", "corp", "dept", "fig",
];

/// Word sequences (lower case) that open a new sub-request wherever they stand in a sentence.
const CONNECTORS: &[&[&str]] = &[
    &["additionally"],
    &["also"],
    &["in", "addition"],
    &["as", "well", "as"],
    &["moreover"],
    &["furthermore"],
];

/// Connectors that also have other uses ("Disney Plus", "if ... then"): they open a new
/// sub-request only after a comma or an "and".
const WEAK_CONNECTORS: &[&[&str]] = &[&["plus"], &["besides"], &["then"]];

/// Imperative verbs that open a request ("and find ...", "and then show ...").
const REQUEST_VERBS: &[&str] = &[
    "get",
    "find",
    "fetch",
    "provide",
    "show",
    "give",
    "tell",
    "list",
    "search",
    "check",
    "suggest",
    "recommend",
    "generate",
    "create",
    "retrieve",
    "send",
    "convert",
    "calculate",
    "translate",
    "look",
    "lookup",
    "share",
    "display",
    "obtain",
    "compute",
    "verify",
    "validate",
    "download",
    "identify",
    "explore",
    "analyze",
    "analyse",
    "compare",
    "help",
    "let",
    "make",
    "book",
    "schedule",
    "add",
    "update",
    "delete",
    "remove",
    "post",
    "upload",
];

/// Splits `query` into sub-requests (see the module docs). Always returns at least one piece
/// for a non-blank query; the pieces are substrings of `query`, trimmed.
pub(crate) fn decompose(query: &str, min_words: usize, max_parts: usize) -> Vec<String> {
    let mut pieces: Vec<&str> = Vec::new();
    for sentence in sentences(query) {
        pieces.extend(clauses(sentence));
    }
    let mut parts: Vec<(String, usize)> = Vec::new();
    let mut pending: Option<(String, usize)> = None;
    for p in pieces {
        let words = content_words(p);
        let (text, n) = match pending.take() {
            Some((t, n)) => (format!("{t} {p}"), n + words),
            None => (p.to_string(), words),
        };
        if n >= min_words {
            parts.push((text, n));
        } else {
            pending = Some((text, n));
        }
    }
    if let Some((t, n)) = pending {
        match parts.last_mut() {
            Some(last) => {
                last.0.push(' ');
                last.0.push_str(&t);
                last.1 += n;
            }
            None => parts.push((t, n)),
        }
    }
    let max_parts = max_parts.max(1);
    if parts.len() > max_parts {
        let tail: Vec<String> = parts.drain(max_parts - 1..).map(|(t, _)| t).collect();
        parts.push((tail.join(" "), 0));
    }
    parts
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| !t.trim().is_empty())
        .collect()
}

fn content_words(text: &str) -> usize {
    split_words(text)
        .iter()
        .filter(|w| w.chars().count() > 1 && !is_stop_word(w))
        .count()
}

/// Sentence pieces of `text`, trimmed, non-empty.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let ends = match c {
            '\n' => true,
            '!' | '?' | ';' => next_is_space(&chars, i),
            '.' => next_is_space(&chars, i) && !abbreviation(&text[start..at]),
            _ => false,
        };
        if ends {
            let end = at + c.len_utf8();
            push_trimmed(&mut out, &text[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut out, &text[start..]);
    out
}

fn next_is_space(chars: &[(usize, char)], i: usize) -> bool {
    chars.get(i + 1).is_none_or(|(_, c)| c.is_whitespace())
}

/// Whether the sentence so far ends with a one-letter word or a known abbreviation.
fn abbreviation(before: &str) -> bool {
    let last = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    let last = last.trim_start_matches(|c: char| !c.is_alphanumeric());
    if last.is_empty() {
        return false;
    }
    let lower = last.to_lowercase();
    lower.chars().count() == 1
        || ABBREVIATIONS.contains(&lower.as_str())
        // dotted initials such as "U.S" or "a.m"
        || lower.split('.').all(|s| s.chars().count() == 1)
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s.trim();
    if !t.is_empty() {
        out.push(t);
    }
}

/// Clause pieces of one sentence: it is cut before each connector.
fn clauses(sentence: &str) -> Vec<&str> {
    // Word spans: (start byte, end byte, lower-case word without surrounding punctuation).
    let mut words: Vec<(usize, usize, String)> = Vec::new();
    let mut start = None;
    for (i, c) in sentence.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                words.push(word(sentence, s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(word(sentence, s, sentence.len()));
    }
    let mut cuts: Vec<usize> = Vec::new();
    let mut i = 1; // never cut before the first word
    while i < words.len() {
        let at = |j: usize| words.get(j).map(|w| w.2.as_str()).unwrap_or("");
        let matches = |c: &&&[&str]| c.iter().enumerate().all(|(o, w)| at(i + o) == *w);
        let after_comma = sentence[..words[i].0].trim_end().ends_with(',');
        let connector = CONNECTORS.iter().find(matches).or_else(|| {
            (after_comma || at(i - 1) == "and")
                .then(|| WEAK_CONNECTORS.iter().find(matches))
                .flatten()
        });
        if let Some(c) = connector {
            // "..., and also ..." / "and then": the cut goes before the "and".
            let cut = if at(i - 1) == "and" && i >= 2 {
                words[i - 1].0
            } else {
                words[i].0
            };
            if cuts.last() != Some(&cut) {
                cuts.push(cut);
            }
            i += c.len();
            continue;
        }
        if at(i) == "and" && REQUEST_VERBS.contains(&at(i + 1)) {
            cuts.push(words[i].0);
            i += 2;
            continue;
        }
        i += 1;
    }
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        push_trimmed(&mut out, sentence[from..cut].trim_end_matches([',', ' ']));
        from = cut;
    }
    push_trimmed(&mut out, &sentence[from..]);
    out
}

fn word(sentence: &str, start: usize, end: usize) -> (usize, usize, String) {
    let w = sentence[start..end]
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    (start, end, w)
}

/// Merges the whole request's ranking (`lists[0]`) and the sub-requests' rankings into one
/// list of at most `k` tools, best first. Each tool keeps its best lexical score; its `score`
/// becomes the fused score. A tool is identified by its catalog entry (the `Arc` the index
/// hands out, cheaper to hash than its id), so the lists must come from one index snapshot,
/// as [`ToolIndex::search_many`] returns them.
pub(crate) fn merge(
    mut lists: Vec<Vec<ScoredTool>>,
    fusion: PartFusion,
    k: usize,
) -> Vec<ScoredTool> {
    if lists.len() < 2 {
        let mut v = lists.pop().unwrap_or_default();
        v.truncate(k);
        return v;
    }
    let mut out = match fusion {
        PartFusion::Rrf { k: offset } => {
            let parts = lists.split_off(1);
            lists.push(interleave(parts));
            rrf(lists, offset)
        }
        PartFusion::RrfAll { k: offset } => rrf(lists, offset),
        PartFusion::RoundRobin => {
            let mut v = interleave(lists);
            let n = v.len() as f32;
            for (i, hit) in v.iter_mut().enumerate() {
                hit.score = (n - i as f32) / n.max(1.0);
            }
            v
        }
    };
    out.truncate(k);
    out
}

/// Round-robin interleaving of `lists` (first of each list, then second of each, …),
/// duplicates dropped (a tool keeps its best lexical score).
fn interleave(lists: Vec<Vec<ScoredTool>>) -> Vec<ScoredTool> {
    let depth = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut at: HashMap<*const ToolSpec, usize> = HashMap::new();
    let mut order: Vec<(usize, usize)> = Vec::new();
    for rank in 0..depth {
        for (l, list) in lists.iter().enumerate() {
            let Some(hit) = list.get(rank) else { continue };
            match at.get(&Arc::as_ptr(&hit.tool)) {
                Some(&i) => {
                    let (bl, br) = order[i];
                    if hit.lexical > lists[bl][br].lexical {
                        order[i] = (l, rank);
                    }
                }
                None => {
                    at.insert(Arc::as_ptr(&hit.tool), order.len());
                    order.push((l, rank));
                }
            }
        }
    }
    // The first occurrence fixes the position, the best occurrence the scores.
    order.iter().map(|&(l, r)| lists[l][r].clone()).collect()
}

/// Reciprocal Rank Fusion of `lists`: `Σ 1/(offset + rank)`, best first; a tool keeps its
/// best lexical score.
fn rrf(lists: Vec<Vec<ScoredTool>>, offset: f32) -> Vec<ScoredTool> {
    // Catalog entry → (fused score, list and rank of its best lexical score).
    let mut fused: HashMap<*const ToolSpec, (f32, usize, usize)> = HashMap::new();
    for (l, list) in lists.iter().enumerate() {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (offset + (rank + 1) as f32);
            let e = fused
                .entry(Arc::as_ptr(&hit.tool))
                .or_insert((0.0, l, rank));
            e.0 += add;
            if hit.lexical > lists[e.1][e.2].lexical {
                (e.1, e.2) = (l, rank);
            }
        }
    }
    let mut out: Vec<ScoredTool> = fused
        .into_values()
        .map(|(s, l, r)| {
            let mut t = lists[l][r].clone();
            t.score = s;
            t
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.lexical.total_cmp(&a.lexical))
            .then_with(|| a.tool.id.cmp(&b.tool.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(q: &str) -> Vec<String> {
        decompose(q, 2, 6)
    }

    #[test]
    fn sentences_become_sub_requests() {
        let q = "Help me find a 7-letter word starting with 'fru'. Also fetch the income data \
                 for the ZIP code 98765.";
        assert_eq!(
            parts(q),
            [
                "Help me find a 7-letter word starting with 'fru'.",
                "Also fetch the income data for the ZIP code 98765."
            ]
        );
    }

    #[test]
    fn connectors_inside_a_sentence_split() {
        assert_eq!(
            parts("Shorten the party invitation link with bitly, and also suggest a domain name"),
            [
                "Shorten the party invitation link with bitly",
                "and also suggest a domain name"
            ]
        );
        assert_eq!(
            parts("List the supported languages and check the URL for phishing"),
            [
                "List the supported languages",
                "and check the URL for phishing"
            ]
        );
    }

    #[test]
    fn small_pieces_merge_into_a_neighbour() {
        // "Can you help me?" has no content word: it joins the next piece.
        assert_eq!(
            parts("Can you help me? Fetch the weather forecast for Paris."),
            ["Can you help me? Fetch the weather forecast for Paris."]
        );
        // A trailing fragment joins the previous piece.
        assert_eq!(
            parts("Fetch the weather forecast for Paris. Thanks!"),
            ["Fetch the weather forecast for Paris. Thanks!"]
        );
    }

    #[test]
    fn decimals_urls_and_abbreviations_do_not_split() {
        let q = "Check the URL https://example.com/a.b for version 3.5 of the app, e.g. the \
                 beta, made in the U.S. by Dr. Smith";
        assert_eq!(parts(q), [q]);
    }

    #[test]
    fn the_number_of_parts_is_bounded() {
        let q = "Get the weather forecast. Find cheap flights. Book hotel rooms. Translate \
                 menu text. Convert currency amounts.";
        let p = decompose(q, 2, 3);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[2],
            "Book hotel rooms. Translate menu text. Convert currency amounts."
        );
    }

    #[test]
    fn single_intent_requests_are_not_decomposed() {
        let c = DecomposeConfig::default();
        assert!(c.parts("email my boss the report").is_empty());
        assert!(DecomposeConfig::off()
            .parts("Get the weather forecast. Find cheap flights.")
            .is_empty());
        assert_eq!(
            c.parts("Get the weather forecast. Find cheap flights.")
                .len(),
            2
        );
        assert!(decompose("   ", 2, 6).is_empty());
    }

    /// One catalog entry per id, as an index hands them out.
    fn hit(id: &str, lexical: f32) -> ScoredTool {
        thread_local! {
            static CATALOG: std::cell::RefCell<HashMap<String, Arc<ToolSpec>>> =
                std::cell::RefCell::new(HashMap::new());
        }
        let tool = CATALOG.with(|c| {
            c.borrow_mut()
                .entry(id.to_string())
                .or_insert_with(|| {
                    Arc::new(ToolSpec::new(id, "", serde_json::json!({"type": "object"})))
                })
                .clone()
        });
        ScoredTool {
            tool,
            score: lexical,
            lexical,
        }
    }

    fn ids(v: &[ScoredTool]) -> Vec<&str> {
        v.iter().map(|h| h.tool.id.as_str()).collect()
    }

    #[test]
    fn rrf_gives_every_intent_a_slot() {
        // The whole request is dominated by intent A; the second sub-request wants B.
        let whole = vec![
            hit("a1", 9.0),
            hit("a2", 8.0),
            hit("a3", 7.0),
            hit("b1", 1.0),
        ];
        let part_a = vec![hit("a1", 9.0), hit("a2", 8.0), hit("a3", 7.0)];
        let part_b = vec![hit("b1", 5.0), hit("b2", 4.0)];
        let merged = merge(vec![whole, part_a, part_b], PartFusion::default(), 3);
        assert_eq!(ids(&merged), ["a1", "a2", "b1"], "b1 displaces a3");
        assert_eq!(merged[2].lexical, 5.0, "the best lexical score is kept");
    }

    #[test]
    fn round_robin_interleaves_and_dedups() {
        let whole = vec![hit("a1", 9.0), hit("a2", 8.0)];
        let part_a = vec![hit("a1", 9.0), hit("a3", 7.0)];
        let part_b = vec![hit("b1", 5.0), hit("b2", 4.0)];
        let merged = merge(vec![whole, part_a, part_b], PartFusion::RoundRobin, 4);
        assert_eq!(ids(&merged), ["a1", "b1", "a2", "a3"]);
    }
}
