//! One query's Top-k without scoring every tool: MaxScore (Turtle & Flood 1995, "Query
//! evaluation: strategies and optimizations") over the scoring lists, term at a time.
//!
//! A term adds at most its weight times its list's largest impact to a tool's own score.
//! Taking the terms by that bound, the cheapest ones whose bounds together cannot lift a
//! tool past the current threshold are never scanned ("lazy"): the other lists are summed
//! into accumulators, and a tool whose partial score plus the lazy bounds still reaches the
//! threshold is scored exactly (its lazy terms looked up by binary search). Common words
//! have long lists and small bounds, so most postings are skipped.
//!
//! The fused score `own / max(own) + kit / max(kit)` (then the router's boosts) needs both
//! maxima exact, so a search runs in steps:
//! 1. toolkit scores are complete already (one entry per toolkit and term); the members of
//!    the best `k` toolkits and of the candidate apps enter the ranking whether they match a
//!    term or not, so they are scored first, exactly, and give the first thresholds;
//! 2. `max(kit)` is the score of the best toolkit with a member that counts: one the gate
//!    shows that matched a term, or any shown member of a toolkit of step 1;
//! 3. the lists are summed but for the lazy ones, whose bounds stay below the best own score
//!    of step 1; `max(own)` is then exact after scoring the few tools that could still reach
//!    it;
//! 4. lazy lists are summed until a tool found only in the rest cannot reach the k-th score
//!    (its toolkit score is at most the best one outside the toolkits of step 1), and the
//!    tools whose bound reaches the k-th score are scored exactly and ranked.
//!
//! Exact own scores are summed in term order, as the exhaustive scan sums them, so the
//! results are the same to the last bit (tested against it).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::search::impacts::ToolImpact;

use super::{
    Boosts, CompiledGate, Fusion, QueryTerm, ToolIndex, TopK, HIDDEN, NO_KIT, SHOWN, UNSEEN,
};

/// What a member's lookup of one term costs, in postings summed: a binary search over a
/// list against an addition in order.
const LOOKUP_COST: usize = 8;

/// Relative slack on score bounds: a sum in another order may round differently.
const SLACK: f32 = 1.0 + 1e-4;

/// Per-slot state beside `UNSEEN`, `SHOWN` and `HIDDEN`: a member of a toolkit of step 1,
/// ranked already.
const ENTERED: u8 = 3;
/// `MISSING + i`: a shown tool whose partial score holds the lazy terms but the `i` with the
/// smallest bounds (all of them: `MISSING`).
const MISSING: u8 = 8;
/// At most this many lists are lazy (so `MISSING + i` fits a byte).
const MAX_LAZY: usize = 200;

/// Buffers of a pruned search, left all zero (`UNSEEN`) between searches: only the slots in
/// `marked` are written, and only they are reset.
#[derive(Default)]
pub(super) struct PrunedScratch {
    partial: Vec<f32>,
    state: Vec<u8>,
    marked: Vec<u32>,
    /// The shown tools some summed list holds, and their toolkits.
    touched: Vec<u32>,
    touched_kits: Vec<u32>,
}

impl PrunedScratch {
    fn prepare(&mut self, slots: usize) {
        self.reset();
        self.partial.resize(slots, 0.0);
        self.state.resize(slots, UNSEEN);
    }

    fn mark(&mut self, slot: u32, state: u8) {
        self.state[slot as usize] = state;
        self.marked.push(slot);
    }

    fn reset(&mut self) {
        for &slot in &self.marked {
            self.partial[slot as usize] = 0.0;
            self.state[slot as usize] = UNSEEN;
        }
        self.marked.clear();
        self.touched.clear();
        self.touched_kits.clear();
    }
}

impl ToolIndex {
    /// The `k` best tools for the single query of `terms`, as the exhaustive scan ranks them;
    /// `None` where scanning every list is cheaper (short lists, or `k` toolkits holding
    /// about as many tools as the lists).
    pub(super) fn top_pruned(
        &self,
        terms: &[QueryTerm],
        gate: &CompiledGate<'_>,
        boosts: &Boosts,
        kit_acc: &[f32],
        k: usize,
        scratch: &mut PrunedScratch,
    ) -> Option<TopK> {
        let kit_score = |kit: u32| {
            if kit != NO_KIT {
                kit_acc.get(kit as usize).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        };
        let mut kits = KitRanking::new(kit_acc, k + boosts.apps.len() + 8);
        let mut entered: Vec<u32> = boosts.apps.clone();
        entered.extend((0..k).map_while(|i| kits.get(i)).map(|(_, kit)| kit));
        entered.sort_unstable();
        entered.dedup();
        // A member costs a lookup per term (a binary search), a posting one addition.
        let members_cost: usize = (entered.iter())
            .map(|&kit| self.kit_docs[kit as usize].len() * terms.len())
            .sum();
        let postings: usize = terms.iter().map(|t| t.list.tools.len()).sum();
        if !pruning_pays(members_cost, postings) {
            return None;
        }
        scratch.prepare(self.docs.len());

        // Step 1: the members of those toolkits, scored exactly.
        let mut members: Vec<(u32, u32, f32)> = Vec::new();
        let mut shown_kits: Vec<u32> = Vec::new();
        for &kit in &entered {
            for &slot in &self.kit_docs[kit as usize] {
                if gate.allows(self, slot) {
                    members.push((slot, kit, self.own_score(slot, terms)));
                    scratch.mark(slot, ENTERED);
                    if shown_kits.last() != Some(&kit) {
                        shown_kits.push(kit);
                    }
                }
            }
        }

        // Step 2: max(kit), and the best toolkit score of a tool outside `entered`.
        let (kit_max, outside_kit) = self.kit_maxima(&mut kits, &entered, &shown_kits, gate, terms);

        // Step 3: the lists but the lazy ones, and max(own).
        let bounds: Vec<f32> = terms
            .iter()
            .map(|t| weight(t) * t.list.max_impact)
            .collect();
        let mut by_bound: Vec<usize> = (0..terms.len()).collect();
        by_bound.sort_by(|&a, &b| bounds[a].total_cmp(&bounds[b]));
        let members_max = members.iter().map(|m| m.2).fold(0.0, f32::max);
        let mut lazy = 0;
        while lazy < by_bound.len().min(MAX_LAZY)
            && lazy_bound(&bounds, &by_bound[..=lazy]) < members_max
        {
            lazy += 1;
        }
        let mut is_lazy = vec![false; terms.len()];
        for &t in &by_bound[..lazy] {
            is_lazy[t] = true;
        }
        for (t, term) in terms.iter().enumerate() {
            if !is_lazy[t] {
                self.add_list(term, gate, scratch);
            }
        }
        let mut tool_max = members_max;
        if lazy == 0 {
            // Every list summed in term order: the sums are exact.
            for &slot in &scratch.touched {
                tool_max = tool_max.max(scratch.partial[slot as usize]);
            }
        } else {
            // The tools that could still hold max(own) get their lazy terms added, the
            // largest first; after each, those that cannot reach the best own score known
            // to be reached drop out (their state says which lazy terms they lack).
            let mut reached = (scratch.touched.iter())
                .map(|&slot| scratch.partial[slot as usize] / SLACK)
                .fold(members_max, f32::max);
            let rest = lazy_bound(&bounds, &by_bound[..lazy]);
            let mut close: Vec<u32> = (scratch.touched.iter().copied())
                .filter(|&slot| scratch.partial[slot as usize] * SLACK + rest >= reached)
                .collect();
            // `touched` is one ascending run per summed list: a merge sort is cheap.
            close.sort();
            for (i, &t) in by_bound[..lazy].iter().enumerate().rev() {
                add_for(&terms[t], &close, &mut scratch.partial);
                let rest = lazy_bound(&bounds, &by_bound[..i]);
                for &slot in &close {
                    scratch.state[slot as usize] = MISSING + i as u8;
                    reached = reached.max(scratch.partial[slot as usize] / SLACK);
                }
                close.retain(|&slot| scratch.partial[slot as usize] * SLACK + rest >= reached);
            }
            for &slot in &close {
                if scratch.partial[slot as usize] * SLACK >= reached {
                    tool_max = tool_max.max(self.own_score(slot, terms));
                }
            }
        }

        // Step 4: the Top-k.
        let fusion = Fusion::new(tool_max, kit_max);
        let score = |slot: u32, kit: u32, own: f32| {
            let lexical = fusion.lexical(own, kit_score(kit));
            (boosts.apply(self, slot, kit, lexical), lexical)
        };
        let mut top = TopK::new(k);
        let mut floor = Floor::new(k);
        for &(slot, kit, own) in &members {
            // Like the exhaustive scan: a subnormal own score counts neither as a match nor
            // as none.
            if own == 0.0 || own > f32::MIN_POSITIVE {
                let (s, lexical) = score(slot, kit, own);
                top.offer(s, lexical, slot, self);
                floor.add(s);
            }
        }
        // The k-th best of the tools' lowest possible scores: no lower score can rank.
        for (&slot, &kit) in scratch.touched.iter().zip(&scratch.touched_kits) {
            floor.add(score(slot, kit, scratch.partial[slot as usize] / SLACK).0);
        }
        let outside = |own: f32| boosts.outside_apps_factor() * fusion.lexical(own, outside_kit);
        while lazy > 0 && outside(lazy_bound(&bounds, &by_bound[..lazy])) >= floor.get() {
            lazy -= 1;
            self.add_list(&terms[by_bound[lazy]], gate, scratch);
        }
        // The bound of the `i` smallest lazy terms.
        let missing: Vec<f32> = (0..=by_bound.len().min(MAX_LAZY))
            .map(|i| lazy_bound(&bounds, &by_bound[..i]))
            .collect();
        // How many of the smallest lazy terms a tool's partial score lacks.
        let lacks = |state: u8| match state {
            SHOWN => Some(lazy),
            state if state >= MISSING => Some((state - MISSING) as usize),
            _ => None,
        };
        let threshold = floor.get();
        let reaches = |scratch: &PrunedScratch, slot: u32, kit: u32| {
            let s = slot as usize;
            lacks(scratch.state[s]).is_some_and(|n| {
                score(slot, kit, scratch.partial[s] * SLACK + missing[n]).0 >= threshold
            })
        };
        // The tools that may still rank get their missing terms, the largest first, and drop
        // out once their bound falls below the threshold.
        let mut contenders: Vec<(u32, u32)> = (scratch.touched.iter().copied())
            .zip(scratch.touched_kits.iter().copied())
            .filter(|&(slot, kit)| reaches(scratch, slot, kit))
            .collect();
        contenders.sort_by_key(|c| c.0);
        let most = (contenders.iter())
            .filter_map(|c| lacks(scratch.state[c.0 as usize]))
            .max()
            .unwrap_or(0);
        let mut need: Vec<u32> = Vec::new();
        for i in (0..most).rev() {
            need.clear();
            need.extend(
                (contenders.iter().map(|c| c.0))
                    .filter(|&slot| lacks(scratch.state[slot as usize]).is_some_and(|n| n > i)),
            );
            add_for(&terms[by_bound[i]], &need, &mut scratch.partial);
            for &slot in &need {
                scratch.state[slot as usize] = MISSING + i as u8;
            }
            contenders.retain(|&(slot, kit)| reaches(scratch, slot, kit));
        }
        for &(slot, kit) in &contenders {
            let own = self.own_score(slot, terms);
            if own > f32::MIN_POSITIVE {
                let (s, lexical) = score(slot, kit, own);
                top.offer(s, lexical, slot, self);
            }
        }
        scratch.reset();
        Some(top)
    }

    /// Step 2 of [`Self::top_pruned`]: the best score of a toolkit with a member that counts,
    /// and the best score of a toolkit outside `entered`.
    fn kit_maxima(
        &self,
        kits: &mut KitRanking<'_>,
        entered: &[u32],
        shown_kits: &[u32],
        gate: &CompiledGate<'_>,
        terms: &[QueryTerm],
    ) -> (f32, f32) {
        let mut kit_max = None;
        let mut outside = None;
        let mut i = 0;
        while kit_max.is_none() || outside.is_none() {
            let Some((score, kit)) = kits.get(i) else {
                break;
            };
            i += 1;
            let is_entered = entered.binary_search(&kit).is_ok();
            if outside.is_none() && !is_entered {
                outside = Some(score);
            }
            if kit_max.is_none() {
                let counts = if is_entered {
                    shown_kits.binary_search(&kit).is_ok()
                } else {
                    self.kit_docs[kit as usize]
                        .iter()
                        .any(|&slot| gate.allows(self, slot) && self.matches(slot, terms))
                };
                if counts {
                    kit_max = Some(score);
                }
            }
        }
        (kit_max.unwrap_or(0.0), outside.unwrap_or(0.0))
    }

    /// Adds `term`'s list to the partial own scores of the tools `gate` shows.
    fn add_list(&self, term: &QueryTerm, gate: &CompiledGate<'_>, scratch: &mut PrunedScratch) {
        let w = weight(term);
        for tool in term.list.tools.iter() {
            let s = tool.slot as usize;
            match scratch.state[s] {
                SHOWN => scratch.partial[s] += w * tool.impact,
                UNSEEN => {
                    if gate.allows_tool(self, tool.slot, tool.class, tool.kit) {
                        scratch.mark(tool.slot, SHOWN);
                        scratch.touched.push(tool.slot);
                        scratch.touched_kits.push(tool.kit);
                        scratch.partial[s] += w * tool.impact;
                    } else {
                        scratch.mark(tool.slot, HIDDEN);
                    }
                }
                _ => {}
            }
        }
    }

    /// The own BM25F score of the tool in `slot`, summed in term order.
    fn own_score(&self, slot: u32, terms: &[QueryTerm]) -> f32 {
        let Some(doc) = self.doc(slot) else {
            return 0.0;
        };
        terms
            .iter()
            .filter(|t| doc.terms.binary_search(&t.term).is_ok())
            .fold(0.0, |own, t| {
                let tools = &t.list.tools;
                match tools.binary_search_by_key(&slot, |x| x.slot) {
                    Ok(i) => own + weight(t) * tools[i].impact,
                    Err(_) => own,
                }
            })
    }

    /// Whether the tool in `slot` holds a term of `terms`.
    fn matches(&self, slot: u32, terms: &[QueryTerm]) -> bool {
        self.doc(slot)
            .is_some_and(|d| terms.iter().any(|t| d.terms.binary_search(&t.term).is_ok()))
    }
}

#[cfg(test)]
thread_local! {
    /// Tests rank with pruning even where the full scan would be cheaper.
    static ALWAYS_PRUNE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether pruning beats the full scan: the members of the entered toolkits cost
/// `members_cost` lookups, the full scan `postings` additions.
fn pruning_pays(members_cost: usize, postings: usize) -> bool {
    #[cfg(test)]
    if ALWAYS_PRUNE.get() {
        return true;
    }
    members_cost * LOOKUP_COST < postings
}

/// The summed bounds of the terms `lazy` (with slack for rounding).
fn lazy_bound(bounds: &[f32], lazy: &[usize]) -> f32 {
    lazy.iter().map(|&t| bounds[t]).sum::<f32>() * SLACK
}

/// Adds `term`'s part to `partial` of each tool in `slots` (ascending) that holds it,
/// galloping through the list.
fn add_for(term: &QueryTerm, slots: &[u32], partial: &mut [f32]) {
    let w = weight(term);
    let mut list: &[ToolImpact] = &term.list.tools;
    for &slot in slots {
        let mut step = 1;
        while step < list.len() && list[step].slot < slot {
            step *= 2;
        }
        let hi = (step + 1).min(list.len());
        let at = step / 2 + list[step / 2..hi].partition_point(|t| t.slot < slot);
        list = &list[at..];
        match list.first() {
            Some(t) if t.slot == slot => partial[slot as usize] += w * t.impact,
            Some(_) => {}
            None => break,
        }
    }
}

/// The k-th best of a stream of scores (a min-heap of the best k).
struct Floor {
    k: usize,
    best: BinaryHeap<Reverse<Score>>,
}

/// A score ordered totally (`f32::total_cmp`).
#[derive(PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Floor {
    fn new(k: usize) -> Self {
        Floor {
            k,
            best: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn add(&mut self, score: f32) {
        if self.best.len() < self.k {
            self.best.push(Reverse(Score(score)));
        } else if self.best.peek().is_some_and(|Reverse(w)| score > w.0) {
            self.best.pop();
            self.best.push(Reverse(Score(score)));
        }
    }

    /// The k-th best score added, or minus infinity before k.
    fn get(&self) -> f32 {
        match self.best.peek() {
            Some(Reverse(w)) if self.best.len() == self.k => w.0,
            _ => f32::NEG_INFINITY,
        }
    }
}

/// A term's weight in the single query (as the exhaustive scan computes it).
fn weight(term: &QueryTerm) -> f32 {
    term.qw[0] * term.idf
}

/// Toolkits by score, best first (ties by id): the best `keep` found in one pass, all of
/// them sorted if a search asks for more.
struct KitRanking<'a> {
    kit_acc: &'a [f32],
    ranked: Vec<(f32, u32)>,
    complete: bool,
}

/// A toolkit's rank: by score, then lower id first.
type KitRank = (Score, Reverse<u32>);

fn kit_rank(score: f32, kit: u32) -> KitRank {
    (Score(score), Reverse(kit))
}

impl<'a> KitRanking<'a> {
    fn new(kit_acc: &'a [f32], keep: usize) -> Self {
        let mut best: BinaryHeap<Reverse<KitRank>> = BinaryHeap::with_capacity(keep + 1);
        let mut scored = 0;
        for (kit, &s) in kit_acc.iter().enumerate() {
            if s > 0.0 {
                scored += 1;
                let rank = kit_rank(s, kit as u32);
                if best.len() < keep {
                    best.push(Reverse(rank));
                } else if best.peek().is_some_and(|Reverse(worst)| rank > *worst) {
                    best.pop();
                    best.push(Reverse(rank));
                }
            }
        }
        KitRanking {
            kit_acc,
            complete: scored == best.len(),
            ranked: best
                .into_sorted_vec()
                .into_iter()
                .map(|Reverse((Score(s), Reverse(kit)))| (s, kit))
                .collect(),
        }
    }

    /// The toolkit at rank `i`, if that many have a score.
    fn get(&mut self, i: usize) -> Option<(f32, u32)> {
        if i >= self.ranked.len() && !self.complete {
            let mut all: Vec<KitRank> = (self.kit_acc.iter().enumerate())
                .filter(|(_, &s)| s > 0.0)
                .map(|(kit, &s)| kit_rank(s, kit as u32))
                .collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            self.ranked = (all.into_iter())
                .map(|(Score(s), Reverse(kit))| (s, kit))
                .collect();
            self.complete = true;
        }
        self.ranked.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use serde_json::json;

    use super::super::RankHints;
    use super::*;
    use crate::search::gate::{Connected, GateRules, ToolGate};
    use crate::tool::{RiskLevel, ToolSpec};

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A word index, small ones far more often (as word frequencies go).
        fn zipf(&mut self, n: usize) -> usize {
            let x = (self.next() % 1_000_000) as f64 / 1_000_000.0;
            ((n as f64).powf(x) as usize).saturating_sub(1).min(n - 1)
        }
    }

    const WORDS: [&str; 40] = [
        "get",
        "data",
        "list",
        "user",
        "search",
        "weather",
        "email",
        "send",
        "create",
        "report",
        "city",
        "forecast",
        "price",
        "stock",
        "image",
        "video",
        "translate",
        "text",
        "qr",
        "code",
        "password",
        "domain",
        "whois",
        "track",
        "package",
        "currency",
        "convert",
        "recipe",
        "movie",
        "book",
        "flight",
        "hotel",
        "crypto",
        "news",
        "sport",
        "score",
        "lyrics",
        "song",
        "map",
        "route",
    ];

    fn words(rng: &mut Rng, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[rng.zipf(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn catalog(rng: &mut Rng, n: usize) -> Vec<ToolSpec> {
        (0..n)
            .map(|i| {
                let len = 2 + rng.below(10);
                let mut t = ToolSpec::new(
                    format!("T{i}_{}", words(rng, 2).replace(' ', "_")),
                    words(rng, len),
                    json!({"type": "object", "properties": {}}),
                );
                if rng.below(10) > 0 {
                    t = t.in_toolkit(format!("kit{}", rng.zipf(60)));
                }
                t.requires_connection = rng.below(4) > 0;
                let risk = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High][rng.below(3)];
                let tags: Vec<String> = (0..rng.below(3))
                    .map(|_| match rng.below(3) {
                        0 => ["read", "write", "send", "delete"][rng.below(4)].to_string(),
                        _ => format!("x{}", rng.below(90)),
                    })
                    .collect();
                t.with_risk(risk).with_tags(tags)
            })
            .collect()
    }

    fn gates(rng: &mut Rng) -> Vec<ToolGate> {
        let kits = |rng: &mut Rng| -> HashSet<String> {
            (0..8).map(|_| format!("kit{}", rng.zipf(60))).collect()
        };
        vec![
            ToolGate::new(GateRules::permissive(), Connected::Unrestricted),
            ToolGate::new(GateRules::default(), Connected::Toolkits(kits(rng))),
            ToolGate::new(
                GateRules::permissive().blocked_tags(["x70", "delete", "x3"]),
                Connected::Unrestricted,
            ),
            ToolGate::new(
                GateRules::default()
                    .max_risk(RiskLevel::Medium)
                    .only_toolkits(kits(rng)),
                Connected::Unrestricted,
            ),
        ]
    }

    fn hints(rng: &mut Rng) -> Vec<RankHints> {
        vec![
            RankHints::default(),
            RankHints {
                candidate_apps: vec![format!("kit{}", rng.zipf(60)), "kit1".into()],
                intent_tags: vec![],
            },
            RankHints {
                candidate_apps: vec![],
                intent_tags: vec!["send".into(), "x80".into()],
            },
        ]
    }

    #[test]
    fn toolkits_rank_by_score_then_id_past_the_kept_few() {
        let scores = [0.5, 0.0, 2.0, 0.5, 1.0, 2.0];
        let mut kits = KitRanking::new(&scores, 2);
        let ranked: Vec<(f32, u32)> = (0..6).map_while(|i| kits.get(i)).collect();
        assert_eq!(
            ranked,
            [(2.0, 2), (2.0, 5), (1.0, 4), (0.5, 0), (0.5, 3)],
            "kits without a score are not ranked"
        );
        let mut floor = Floor::new(3);
        for s in [1.0, 4.0, 2.0] {
            floor.add(s);
        }
        floor.add(3.0);
        assert_eq!(floor.get(), 2.0);
        assert_eq!(Floor::new(2).get(), f32::NEG_INFINITY);
    }

    #[test]
    fn pruned_search_ranks_exactly_as_the_full_scan() {
        for seed in 1..=8u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let size = 300 + rng.below(300);
            let tools = catalog(&mut rng, size);
            let mut index = ToolIndex::from_tools(tools.iter().cloned());
            // Removals and re-inserts: freed slots are reused, lists stay in slot order.
            for t in tools.iter().step_by(3) {
                index.remove(&t.id);
            }
            index.compact();
            for t in tools.iter().step_by(6) {
                index.upsert(t.clone());
            }
            let gates = gates(&mut rng);
            let hints = hints(&mut rng);
            for _ in 0..20 {
                let len = 1 + rng.below(8);
                let query = format!("{} zzz", words(&mut rng, len));
                for gate in &gates {
                    for hint in &hints {
                        for k in [1, 3, 8, 30] {
                            let full = index
                                .search_many(&[&query, &query], gate, hint, k)
                                .swap_remove(0);
                            // The cost model's choice, then pruning wherever it would not.
                            assert_eq!(index.search(&query, gate, hint, k), full);
                            ALWAYS_PRUNE.set(true);
                            let pruned = index.search(&query, gate, hint, k);
                            ALWAYS_PRUNE.set(false);
                            assert_eq!(pruned, full, "seed {seed}, `{query}`, k {k}");
                        }
                    }
                }
            }
        }
    }
}
