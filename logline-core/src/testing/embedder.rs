use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::error::Result;
use crate::llm::Embedder;

/// A deterministic [`Embedder`]: each lower-cased word of a text adds ±1 to one of
/// `dimensions` buckets picked by a stable hash, and the sum is normalized to unit length. A
/// text without words hashes as a whole. Texts sharing words get similar vectors, the same
/// text always the same one. Counts its calls.
#[derive(Debug)]
pub struct FakeEmbedder {
    model: String,
    dimensions: usize,
    calls: AtomicUsize,
}

impl FakeEmbedder {
    /// An embedder of `dimensions` (at least 1) named `fake-embedding`.
    pub fn new(dimensions: usize) -> Self {
        FakeEmbedder {
            model: "fake-embedding".into(),
            dimensions: dimensions.max(1),
            calls: AtomicUsize::new(0),
        }
    }

    /// The vector of `text` (what [`Embedder::embed`] returns for it; fake servers can
    /// answer with it too).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let lower = text.to_lowercase();
        let mut words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            words.push(&lower);
        }
        let mut v = vec![0.0f32; self.dimensions];
        for w in words {
            let h = fnv1a(w);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % self.dimensions as u64) as usize] += sign;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            // Every word cancelled out: fall back to the text's own bucket.
            v[(fnv1a(&lower) % self.dimensions as u64) as usize] = 1.0;
        }
        v
    }

    /// How many times [`Embedder::embed`] was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[async_trait]
impl Embedder for FakeEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}
