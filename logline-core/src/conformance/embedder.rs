//! Embedder checks. They need no script: a model embeds the same text the same way (up to
//! float noise, so vectors compare by cosine similarity) and different texts differently.

use std::sync::Arc;

use crate::llm::Embedder;

/// What an embedder guarantees beyond consistent vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderCapabilities {
    /// Every vector has unit length.
    pub normalized: bool,
}

impl EmbedderCapabilities {
    /// Everything: every check runs.
    pub fn all() -> Self {
        EmbedderCapabilities { normalized: true }
    }
}

const SENTENCES: [&str; 8] = [
    "No hot water in room 305",
    "Late check-in request for tonight",
    "Water leak in the lobby ceiling",
    "Question about breakfast hours",
    "The invoice for March is overdue",
    "Café au lait ☕ in 東京, s'il vous plaît",
    "Schedule the quarterly security review",
    "Refund the duplicate card payment",
];

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{} (ticket {i})", SENTENCES[i % SENTENCES.len()]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na * nb)
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && cosine(a, b) > 0.999
}

async fn embed(embedder: &dyn Embedder, texts: &[String]) -> Vec<Vec<f32>> {
    let vectors = embedder.embed(texts).await.expect("embed");
    assert_eq!(vectors.len(), texts.len(), "one vector per input");
    vectors
}

/// The model is named.
pub async fn model_is_named(embedder: Arc<dyn Embedder>) {
    assert!(!embedder.model().is_empty());
}

/// No input, no vectors (and no error).
pub async fn empty_input_gives_no_vectors(embedder: Arc<dyn Embedder>) {
    assert!(embedder.embed(&[]).await.expect("embed").is_empty());
}

/// Short, long and non-ASCII texts give vectors of one non-zero dimension, all finite.
pub async fn vectors_share_one_dimension(embedder: Arc<dyn Embedder>) {
    let mut inputs = texts(4);
    inputs.push("ok".into());
    inputs.push("The night auditor reports a broken lock. ".repeat(40));
    let vectors = embed(embedder.as_ref(), &inputs).await;
    let dims = vectors[0].len();
    assert!(dims > 0);
    for v in &vectors {
        assert_eq!(v.len(), dims, "every vector has the same dimension");
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(
            v.iter().any(|x| *x != 0.0),
            "a text embeds to a non-zero vector"
        );
    }
    let again = embed(embedder.as_ref(), &inputs[..1]).await;
    assert_eq!(again[0].len(), dims, "the dimension holds across calls");
}

/// The i-th vector of a batch is the vector of the i-th text.
pub async fn batch_order_is_preserved(embedder: Arc<dyn Embedder>) {
    let inputs = texts(SENTENCES.len());
    let batch = embed(embedder.as_ref(), &inputs).await;
    for (i, text) in inputs.iter().enumerate() {
        let single = embed(embedder.as_ref(), std::slice::from_ref(text)).await;
        assert!(
            same(&batch[i], &single[0]),
            "vector {i} belongs to text {i}"
        );
        for (j, other) in batch.iter().enumerate() {
            if j != i {
                assert!(!same(other, &single[0]), "vector {j} is not text {i}'s");
            }
        }
    }
}

/// The same text embeds the same way within a batch and across calls.
pub async fn identical_texts_embed_identically(embedder: Arc<dyn Embedder>) {
    let inputs: Vec<String> = ["alpha beta", "gamma delta", "alpha beta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let first = embed(embedder.as_ref(), &inputs).await;
    assert!(same(&first[0], &first[2]));
    let second = embed(embedder.as_ref(), &inputs).await;
    for (a, b) in first.iter().zip(&second) {
        assert!(same(a, b), "embedding is deterministic");
    }
}

/// Unrelated texts get different vectors.
pub async fn distinct_texts_embed_differently(embedder: Arc<dyn Embedder>) {
    let inputs: Vec<String> = vec![SENTENCES[0].into(), SENTENCES[4].into()];
    let v = embed(embedder.as_ref(), &inputs).await;
    assert!(!same(&v[0], &v[1]), "cosine {}", cosine(&v[0], &v[1]));
}

/// A batch larger than any backend's request size keeps its order, also reversed.
pub async fn large_batches_keep_their_order(embedder: Arc<dyn Embedder>) {
    let inputs = texts(300);
    let batch = embed(embedder.as_ref(), &inputs).await;
    let reversed_inputs: Vec<String> = inputs.iter().rev().cloned().collect();
    let reversed = embed(embedder.as_ref(), &reversed_inputs).await;
    for (i, v) in batch.iter().enumerate() {
        assert!(same(v, &reversed[inputs.len() - 1 - i]), "position {i}");
    }
    for i in [0, 1, 157, 299] {
        let single = embed(embedder.as_ref(), std::slice::from_ref(&inputs[i])).await;
        assert!(same(&batch[i], &single[0]), "position {i}");
    }
}

/// Every vector has unit length.
pub async fn vectors_are_normalized(embedder: Arc<dyn Embedder>) {
    for v in embed(embedder.as_ref(), &texts(5)).await {
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
}
