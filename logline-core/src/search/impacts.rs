//! Scoring lists: what a search reads per query term, derived from the posting lists once
//! per index state and kept until the next change.
//!
//! A posting holds raw term frequencies per field; scoring it needs the tool's length norms
//! and its metadata (liveness, toolkit, risk, tags), read at random from arrays as large as
//! the catalog. A term's scoring list holds, per live tool, the saturated BM25F weight
//! `tf~ / (k1 + tf~)` (so a search adds one product per posting, reading memory in order),
//! and per toolkit the members' summed field-weighted frequency, grouped by what the gate
//! reads of a member (risk and the first 64 tag bits), so toolkit evidence costs one entry
//! per group instead of one per member.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One term's scoring list.
#[derive(Debug, Default)]
pub(super) struct TermImpacts {
    /// Live tools holding the term, by slot.
    pub(super) tools: Box<[ToolImpact]>,
    /// The largest `impact` in `tools`.
    pub(super) max_impact: f32,
    /// Toolkit evidence of the term's live tools that belong to a toolkit.
    pub(super) kits: Box<[KitImpact]>,
    /// Per toolkit in `kits`, its saturated toolkit-level weight `tfn / (k1 + tfn)` from all
    /// its groups: what a search whose gate may show every group adds, read in order.
    pub(super) kit_weights: Box<[(u32, f32)]>,
    /// The highest risk and every tag bit of `kits`: a gate that may show a tool with these
    /// may show every group.
    pub(super) kits_risk: u8,
    pub(super) kits_tag_bits: u64,
}

/// A live tool holding the term: what scoring and the gate read of it, side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ToolImpact {
    pub(super) slot: u32,
    /// The saturated BM25F weight `tf~ / (k1 + tf~)`.
    pub(super) impact: f32,
    pub(super) kit: u32,
    /// The tool's gate class (what the gate reads of the tool itself).
    pub(super) class: u32,
}

/// Members of one toolkit that share risk and tag bits: their summed field-weighted term
/// frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct KitImpact {
    pub(super) kit: u32,
    pub(super) risk: u8,
    pub(super) tag_bits: u64,
    pub(super) wtf: f32,
}

impl TermImpacts {
    /// The approximate heap size.
    fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.tools)
            + std::mem::size_of_val(&*self.kits)
            + std::mem::size_of_val(&*self.kit_weights)
    }
}

/// Groups toolkit evidence by `(kit, risk, tag_bits)`, summing `wtf` in the order added.
pub(super) struct KitGroups {
    /// Per toolkit, its latest group; per group, the toolkit's group before it. A toolkit's
    /// members rarely differ in risk or tags, so a chain is one or two groups long.
    head: Vec<u32>,
    before: Vec<u32>,
    groups: Vec<KitImpact>,
}

impl KitGroups {
    const END: u32 = u32::MAX;

    /// Groups for toolkit ids below `kit_count`.
    pub(super) fn new(kit_count: usize) -> Self {
        KitGroups {
            head: vec![Self::END; kit_count],
            before: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, m: KitImpact) {
        let mut g = self.head[m.kit as usize];
        while g != Self::END {
            let group = &mut self.groups[g as usize];
            if group.risk == m.risk && group.tag_bits == m.tag_bits {
                group.wtf += m.wtf;
                return;
            }
            g = self.before[g as usize];
        }
        self.before.push(self.head[m.kit as usize]);
        self.head[m.kit as usize] = self.groups.len() as u32;
        self.groups.push(m);
    }

    pub(super) fn finish(self) -> Box<[KitImpact]> {
        self.groups.into_boxed_slice()
    }
}

/// The scoring lists built so far for the current index state. The index clears it on
/// every change (it holds `&mut` then), so a list is never older than the index.
#[derive(Debug, Default)]
pub(super) struct ImpactCache {
    terms: RwLock<HashMap<u32, Arc<TermImpacts>>>,
}

impl ImpactCache {
    /// The list of `term`, built by `build` on first use.
    pub(super) fn get_or_build(
        &self,
        term: u32,
        build: impl FnOnce() -> TermImpacts,
    ) -> Arc<TermImpacts> {
        if let Some(hit) = self.read().get(&term) {
            return hit.clone();
        }
        let built = Arc::new(build());
        let mut terms = self.terms.write().unwrap_or_else(|e| e.into_inner());
        terms.entry(term).or_insert(built).clone()
    }

    /// Forgets every list (the index changed).
    pub(super) fn clear(&mut self) {
        let terms = self.terms.get_mut().unwrap_or_else(|e| e.into_inner());
        if !terms.is_empty() {
            *terms = HashMap::new();
        }
    }

    /// Heap bytes the built lists hold.
    pub(super) fn bytes(&self) -> usize {
        self.read().values().map(|t| t.bytes()).sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, Arc<TermImpacts>>> {
        self.terms.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit(kit: u32, risk: u8, tag_bits: u64, wtf: f32) -> KitImpact {
        KitImpact {
            kit,
            risk,
            tag_bits,
            wtf,
        }
    }

    fn tool(slot: u32, impact: f32) -> ToolImpact {
        ToolImpact {
            slot,
            impact,
            kit: 0,
            class: 0,
        }
    }

    #[test]
    fn members_sharing_what_the_gate_reads_are_summed() {
        let mut groups = KitGroups::new(3);
        for m in [
            kit(1, 0, 0b1, 1.0),
            kit(2, 0, 0b1, 0.5),
            kit(1, 0, 0b1, 2.0),
            kit(1, 2, 0b1, 4.0),
            kit(1, 0, 0b10, 8.0),
        ] {
            groups.add(m);
        }
        assert_eq!(
            &*groups.finish(),
            &[
                kit(1, 0, 0b1, 3.0),
                kit(2, 0, 0b1, 0.5),
                kit(1, 2, 0b1, 4.0),
                kit(1, 0, 0b10, 8.0),
            ]
        );
    }

    #[test]
    fn a_list_is_built_once_until_cleared() {
        let mut cache = ImpactCache::default();
        let mut builds = 0;
        for _ in 0..3 {
            let list = cache.get_or_build(7, || {
                builds += 1;
                TermImpacts {
                    tools: vec![tool(3, 0.5)].into_boxed_slice(),
                    max_impact: 0.5,
                    ..Default::default()
                }
            });
            assert_eq!(&*list.tools, &[tool(3, 0.5)]);
        }
        assert_eq!(builds, 1);
        assert!(cache.bytes() > 0);
        cache.clear();
        assert_eq!(cache.bytes(), 0);
        cache.get_or_build(7, || {
            builds += 1;
            TermImpacts::default()
        });
        assert_eq!(builds, 2);
    }
}
