//! Exact inner-product search over unit vectors stored contiguously.
//!
//! Each row may belong to a group (a tool to its toolkit); a search can add a per-group
//! score to every row of the group, which is how toolkit similarity reaches the tools.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Row without a group.
pub(crate) const NO_GROUP: u32 = u32::MAX;

/// Unit vectors of the tools, stored contiguously, searched exactly.
#[derive(Debug, Default)]
pub struct VectorIndex {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<String>,
    fingerprints: Vec<u64>,
    groups: Vec<u32>,
    by_id: HashMap<String, usize>,
}

impl VectorIndex {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No vector yet.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Vector length (0 before the first vector).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether `id` has a vector of content `fingerprint`.
    pub fn is_current(&self, id: &str, fingerprint: u64) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|&i| self.fingerprints[i] == fingerprint)
    }

    /// The unit vector of `id`.
    pub fn vector(&self, id: &str) -> Option<&[f32]> {
        let &i = self.by_id.get(id)?;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// Inserts or replaces the vector of `id` (normalised here). The first vector fixes the
    /// dimension; a vector of another length or with no magnitude is refused.
    pub fn upsert(&mut self, id: &str, fingerprint: u64, vector: &[f32]) -> Result<()> {
        self.upsert_in(id, fingerprint, vector, NO_GROUP)
    }

    /// [`VectorIndex::upsert`] with the row's group.
    pub(crate) fn upsert_in(
        &mut self,
        id: &str,
        fingerprint: u64,
        vector: &[f32],
        group: u32,
    ) -> Result<()> {
        if self.ids.is_empty() && self.dim == 0 {
            self.dim = vector.len();
        }
        if vector.len() != self.dim || self.dim == 0 {
            return Err(Error::Internal(format!(
                "vector of length {} for {id}; the index holds length {}",
                vector.len(),
                self.dim
            )));
        }
        let unit = normalized(vector)
            .ok_or_else(|| Error::Internal(format!("vector for {id} is zero or not finite")))?;
        match self.by_id.get(id) {
            Some(&i) => {
                self.data[i * self.dim..(i + 1) * self.dim].copy_from_slice(&unit);
                self.fingerprints[i] = fingerprint;
                self.groups[i] = group;
            }
            None => {
                self.by_id.insert(id.to_string(), self.ids.len());
                self.ids.push(id.to_string());
                self.fingerprints.push(fingerprint);
                self.groups.push(group);
                self.data.extend_from_slice(&unit);
            }
        }
        Ok(())
    }

    /// Removes the vector of `id`; returns whether it had one.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if i != last {
            let (d, n) = (self.dim, last);
            self.data.copy_within(n * d..(n + 1) * d, i * d);
            self.ids.swap(i, last);
            self.fingerprints.swap(i, last);
            self.groups.swap(i, last);
            self.by_id.insert(self.ids[i].clone(), i);
        }
        self.ids.pop();
        self.fingerprints.pop();
        self.groups.pop();
        self.data.truncate(last * self.dim);
        true
    }

    /// Ids of the rows.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.ids.iter().map(String::as_str)
    }

    /// The `k` tools most similar to any of `queries` (unit vectors; a tool scores its best
    /// similarity), best first, among those `allow` accepts. Exact.
    pub fn nearest(
        &self,
        queries: &[Arc<Vec<f32>>],
        k: usize,
        allow: impl FnMut(&str) -> bool,
    ) -> Vec<(String, f32)> {
        self.nearest_with(queries, &[], k, allow)
    }

    /// [`VectorIndex::nearest`] where a row scores, for query `q`, its similarity plus
    /// `group_scores[q][its group]` (nothing when the list or the group is missing).
    pub(crate) fn nearest_with(
        &self,
        queries: &[Arc<Vec<f32>>],
        group_scores: &[Vec<f32>],
        k: usize,
        mut allow: impl FnMut(&str) -> bool,
    ) -> Vec<(String, f32)> {
        let queries: Vec<(usize, &[f32])> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| (i, q.as_slice()))
            .filter(|(_, q)| q.len() == self.dim)
            .collect();
        if k == 0 || queries.is_empty() || self.is_empty() {
            return Vec::new();
        }
        let bonus = |q: usize, row: usize| -> f32 {
            group_scores
                .get(q)
                .and_then(|g| g.get(self.groups[row] as usize))
                .copied()
                .unwrap_or(0.0)
        };
        let mut scored: Vec<(f32, u32)> = self
            .data
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, v)| {
                let s = queries
                    .iter()
                    .map(|&(qi, q)| dot(q, v) + bonus(qi, i))
                    .fold(f32::NEG_INFINITY, f32::max);
                (s, i as u32)
            })
            .collect();
        let order = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.ids[a.1 as usize].cmp(&self.ids[b.1 as usize]))
        };
        // Most candidates pass the gate: sort a head a few times `k` long first, the whole
        // list only when the gate rejects too many of it.
        let head = (k * 4).min(scored.len());
        if head < scored.len() {
            scored.select_nth_unstable_by(head, order);
        }
        scored[..head].sort_unstable_by(order);
        let mut out = Vec::with_capacity(k);
        let mut take = |(s, i): (f32, u32), out: &mut Vec<(String, f32)>| {
            let id = &self.ids[i as usize];
            if allow(id) {
                out.push((id.clone(), s));
            }
            out.len() == k
        };
        for &c in &scored[..head] {
            if take(c, &mut out) {
                return out;
            }
        }
        let mut rest = scored.split_off(head);
        rest.sort_unstable_by(order);
        for c in rest {
            if take(c, &mut out) {
                break;
            }
        }
        out
    }

    /// Similarity of `query` (a unit vector) to every row, by row, into `out` indexed by
    /// each row's group (rows without one are skipped).
    pub(crate) fn group_similarities(&self, query: &[f32], out: &mut [f32]) {
        if query.len() != self.dim || self.dim == 0 {
            return;
        }
        for (v, &g) in self.data.chunks_exact(self.dim).zip(&self.groups) {
            if let Some(slot) = out.get_mut(g as usize) {
                *slot = dot(query, v);
            }
        }
    }
}

pub(crate) fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
