//! Vector helpers shared by the backends: cosine similarity, exact top-k, and the inverted
//! file (IVF) index that backends without a vector extension search through.
//!
//! The IVF index partitions vectors into `lists` by their nearest centroid (centroids from
//! k-means over a sample); a search scores only the vectors of the `probes` lists whose
//! centroids are nearest to the query, then ranks those exactly.
//!
//! [`Quantized`] vectors (one signed byte per dimension and a scale) make a first, cheap
//! pass over many candidates; the best few are then ranked again on their `f32` vectors.

use std::cmp::Ordering;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// `v` scaled to unit length (unchanged when it is zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = norm(v);
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

/// Cosine similarity (0 when either vector is zero or they differ in length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot(a, b) / (na * nb)
    }
}

/// Orders scores descending (NaN last).
pub fn by_score_desc(a: f32, b: f32) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

/// The `k` best of `(score, value)` pairs, best first.
pub fn top_k<T>(mut scored: Vec<(f32, T)>, k: usize) -> Vec<(f32, T)> {
    if scored.len() > k {
        scored.select_nth_unstable_by(k, |a, b| by_score_desc(a.0, b.0));
        scored.truncate(k);
    }
    scored.sort_by(|a, b| by_score_desc(a.0, b.0));
    scored
}

/// Centroids of an IVF index: `lists` unit vectors of `dims` dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Centroids {
    dims: usize,
    data: Vec<f32>,
}

impl Centroids {
    /// Centroids from their vectors (all of one length, at least one).
    pub fn from_vectors(vectors: &[Vec<f32>]) -> Option<Self> {
        let dims = vectors.first()?.len();
        if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
            return None;
        }
        Some(Centroids {
            dims,
            data: vectors.iter().flat_map(|v| normalized(v)).collect(),
        })
    }

    /// Trains `lists` centroids on `sample` (unit-normalized internally) with spherical
    /// k-means: `iterations` rounds, seeded deterministically. `None` when the sample is
    /// empty or its vectors differ in length.
    pub fn train(sample: &[Vec<f32>], lists: usize, iterations: usize, seed: u64) -> Option<Self> {
        let dims = sample.first()?.len();
        if dims == 0 || sample.iter().any(|v| v.len() != dims) {
            return None;
        }
        let points: Vec<Vec<f32>> = sample.iter().map(|v| normalized(v)).collect();
        let lists = lists.clamp(1, points.len());
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.shuffle(&mut rng);
        let mut centroids = Centroids {
            dims,
            data: order[..lists]
                .iter()
                .flat_map(|&i| points[i].iter().copied())
                .collect(),
        };
        for _ in 0..iterations {
            let mut sums = vec![0.0f32; lists * dims];
            let mut counts = vec![0usize; lists];
            for p in &points {
                let c = centroids.nearest(p, 1)[0];
                counts[c] += 1;
                sums[c * dims..(c + 1) * dims]
                    .iter_mut()
                    .zip(p)
                    .for_each(|(s, x)| *s += x);
            }
            for c in 0..lists {
                // An empty list keeps its centroid.
                if counts[c] > 0 {
                    let unit = normalized(&sums[c * dims..(c + 1) * dims]);
                    centroids.data[c * dims..(c + 1) * dims].copy_from_slice(&unit);
                }
            }
        }
        Some(centroids)
    }

    /// Number of lists.
    pub fn lists(&self) -> usize {
        self.data.len() / self.dims
    }

    /// Dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Centroid `i`.
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    /// The `probes` lists whose centroids are nearest to `v` (most similar first); empty when
    /// `v` has other dimensions.
    pub fn nearest(&self, v: &[f32], probes: usize) -> Vec<usize> {
        if v.len() != self.dims {
            return Vec::new();
        }
        let scored: Vec<(f32, usize)> = (0..self.lists())
            .map(|i| (dot(self.centroid(i), v), i))
            .collect();
        top_k(scored, probes.max(1))
            .into_iter()
            .map(|(_, i)| i)
            .collect()
    }

    /// The list `v` belongs to; `None` when its dimensions differ.
    pub fn assign(&self, v: &[f32]) -> Option<usize> {
        self.nearest(v, 1).first().copied()
    }

    /// The centroids as vectors.
    pub fn to_vectors(&self) -> Vec<Vec<f32>> {
        (0..self.lists())
            .map(|i| self.centroid(i).to_vec())
            .collect()
    }
}

/// A unit vector quantized to one signed byte per dimension: `codes[i] * scale` approximates
/// its component `i`, so the dot product of two quantized vectors approximates their cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// Components divided by `scale`, rounded (within ±127).
    pub codes: Vec<i8>,
    /// The largest absolute component over 127 (0 for a zero vector).
    pub scale: f32,
}

impl Quantized {
    /// Quantizes `v` after scaling it to unit length.
    pub fn new(v: &[f32]) -> Self {
        let unit = normalized(v);
        let max = unit.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if !(max > 0.0 && max.is_finite()) {
            return Quantized {
                codes: vec![0; unit.len()],
                scale: 0.0,
            };
        }
        let scale = max / 127.0;
        let codes = unit
            .iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Quantized { codes, scale }
    }

    /// Reads codes stored as bytes ([`Quantized::code_bytes`]).
    pub fn from_parts(bytes: &[u8], scale: f32) -> Self {
        Quantized {
            codes: bytes.iter().map(|b| i8::from_le_bytes([*b])).collect(),
            scale,
        }
    }

    /// The codes as bytes (two's complement).
    pub fn code_bytes(&self) -> Vec<u8> {
        self.codes.iter().map(|c| c.to_le_bytes()[0]).collect()
    }

    /// Approximate cosine similarity with `other` (0 when the dimensions differ).
    pub fn similarity(&self, other: &Quantized) -> f32 {
        self.similarity_codes(&other.codes, other.scale)
    }

    /// Approximate cosine similarity with the vector `codes` × `scale`.
    pub fn similarity_codes(&self, codes: &[i8], scale: f32) -> f32 {
        if codes.len() != self.codes.len() {
            return 0.0;
        }
        dot_i8(&self.codes, codes) as f32 * self.scale * scale
    }
}

/// Dot product of byte vectors of equal length, in lanes the compiler vectorizes.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        // Indexed lanes over fixed-size chunks: the form the compiler turns into SIMD.
        #[allow(clippy::needless_range_loop)]
        for i in 0..LANES {
            acc[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// Vectors as little-endian `f32` bytes (how the PostgreSQL fallback stores them).
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads [`to_bytes`] output; `None` when the length is not a multiple of 4.
pub fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    let chunks = b.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_top_k() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        let best = top_k(vec![(0.1, 'a'), (0.9, 'b'), (0.5, 'c'), (0.7, 'd')], 2);
        assert_eq!(best, vec![(0.9, 'b'), (0.7, 'd')]);
    }

    #[test]
    fn bytes_round_trip() {
        let v = vec![0.5, -1.25, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v));
        assert_eq!(from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn quantized_similarity_tracks_cosine() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for _ in 0..50 {
            let a: Vec<f32> = (0..384).map(|_| next()).collect();
            let b: Vec<f32> = a.iter().map(|x| x + 0.5 * next()).collect();
            let (qa, qb) = (Quantized::new(&a), Quantized::new(&b));
            assert!((qa.similarity(&qb) - cosine(&a, &b)).abs() < 0.02);
            assert_eq!(Quantized::from_parts(&qa.code_bytes(), qa.scale), qa);
        }
        let zero = Quantized::new(&[0.0, 0.0]);
        assert_eq!(zero.scale, 0.0);
        assert_eq!(zero.similarity(&Quantized::new(&[1.0, 0.0])), 0.0);
        assert_eq!(
            Quantized::new(&[1.0]).similarity(&Quantized::new(&[1.0, 0.0])),
            0.0
        );
        assert_eq!(dot_i8(&[127; 37], &[-127; 37]), -127 * 127 * 37);
    }

    #[test]
    fn kmeans_separates_clusters_and_probes_the_nearest() {
        let mut sample = Vec::new();
        for i in 0..30 {
            let e = i as f32 * 0.01;
            sample.push(vec![1.0, e, 0.0]);
            sample.push(vec![0.0, 1.0, e]);
            sample.push(vec![e, 0.0, 1.0]);
        }
        let c = Centroids::train(&sample, 3, 10, 7).unwrap();
        assert_eq!(c.lists(), 3);
        let a = c.assign(&[1.0, 0.0, 0.0]).unwrap();
        let b = c.assign(&[0.0, 1.0, 0.0]).unwrap();
        let z = c.assign(&[0.0, 0.0, 1.0]).unwrap();
        assert!(a != b && b != z && a != z);
        assert_eq!(c.nearest(&[0.9, 0.1, 0.0], 1), vec![a]);
        assert_eq!(c.assign(&[1.0]), None);
        assert!(Centroids::train(&[], 3, 1, 1).is_none());
    }
}
