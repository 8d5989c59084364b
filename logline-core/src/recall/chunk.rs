//! Splitting a resource's text into overlapping chunks for retrieval.

use serde::{Deserialize, Serialize};

/// How [`chunk_text`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// Longest chunk, in characters (at least 16).
    pub max_chars: usize,
    /// Characters the next chunk repeats from the end of the previous one (less than half
    /// of `max_chars`).
    pub overlap: usize,
}

impl Default for ChunkOptions {
    /// 800 characters with 100 of overlap.
    fn default() -> Self {
        ChunkOptions {
            max_chars: 800,
            overlap: 100,
        }
    }
}

/// Splits `text` into chunks of at most `max_chars` characters, preferring to cut after a
/// paragraph, then a sentence, then a word; each chunk after the first starts `overlap`
/// characters before the end of the previous one (at a word start where there is one).
/// Whitespace-only text gives no chunks.
pub fn chunk_text(text: &str, options: ChunkOptions) -> Vec<String> {
    let max = options.max_chars.max(16);
    let overlap = options.overlap.min(max / 2 - 1);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let hard_end = (start + max).min(n);
        let end = if hard_end == n {
            n
        } else {
            cut_point(&chars, start, hard_end)
        };
        let piece = text[byte_at(start)..byte_at(end)].trim();
        if !piece.is_empty() {
            chunks.push(piece.to_string());
        }
        if end >= n {
            break;
        }
        let mut next = end.saturating_sub(overlap).max(start + 1);
        // Start the overlap at a word.
        while next < end && next > start + 1 && !chars[next - 1].1.is_whitespace() {
            next += 1;
        }
        start = next;
    }
    chunks
}

/// The best place to end a chunk starting at `start` no later than `hard_end`: after the last
/// paragraph break, else sentence end, else whitespace in the second half of the window.
fn cut_point(chars: &[(usize, char)], start: usize, hard_end: usize) -> usize {
    let half = start + (hard_end - start) / 2;
    let window = |pred: &dyn Fn(usize) -> bool| (half..hard_end).rev().find(|&i| pred(i));
    let para = window(&|i| i > 0 && chars[i].1 == '\n' && chars[i - 1].1 == '\n');
    let sentence = window(&|i| {
        i > 0 && chars[i].1.is_whitespace() && matches!(chars[i - 1].1, '.' | '!' | '?' | '。')
    });
    let word = window(&|i| chars[i].1.is_whitespace());
    para.or(sentence).or(word).map_or(hard_end, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_chunk_and_blank_is_none() {
        assert_eq!(
            chunk_text("  hello  ", ChunkOptions::default()),
            vec!["hello"]
        );
        assert!(chunk_text(" \n ", ChunkOptions::default()).is_empty());
    }

    #[test]
    fn long_text_cuts_at_sentences_within_the_limit_and_overlaps() {
        let text = "The boiler is serviced every March. Guests get towels daily. \
                    Breakfast runs from seven to ten. The pool closes at nine in winter. "
            .repeat(4);
        let opts = ChunkOptions {
            max_chars: 80,
            overlap: 20,
        };
        let chunks = chunk_text(&text, opts);
        assert!(chunks.len() > 4);
        for c in &chunks {
            assert!(c.chars().count() <= 80, "{c}");
        }
        assert!(chunks[0].ends_with('.'), "{}", chunks[0]);
        // Every sentence survives whole in some chunk.
        for s in [
            "Guests get towels daily.",
            "The pool closes at nine in winter.",
        ] {
            assert!(chunks.iter().any(|c| c.contains(s)), "{s}");
        }
    }

    #[test]
    fn multibyte_text_never_splits_a_character() {
        let text = "東京の天気は晴れです。".repeat(40) + &"é".repeat(100);
        let chunks = chunk_text(
            &text,
            ChunkOptions {
                max_chars: 33,
                overlap: 5,
            },
        );
        assert!(!chunks.is_empty());
        assert!(chunks.iter().all(|c| c.chars().count() <= 33));
    }
}
