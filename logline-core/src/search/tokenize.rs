//! Text analysis shared by the index and the queries: word splitting that understands slugs
//! (`GMAIL_SEND_EMAIL`, `getUserByID`, `PopularSitesForQuery`), lowercasing, stop words and
//! Porter stemming.

use super::stem::stem;

/// English function words plus words that phrase a chat request rather than name its
/// subject ("can you please help me ..."). Removed from documents and queries alike.
///
/// The function words are the classic IR list (as in NLTK's English list); the request words
/// are generic to conversational queries and do not describe any tool.
const STOP_WORDS: &[&str] = &[
    // function words
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "also",
    "may",
    "might",
    "must",
    "shall",
    // request phrasing
    "please",
    "kindly",
    "help",
    "want",
    "wanted",
    "need",
    "needs",
    "like",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "let",
    "know",
    "tell",
    "provide",
    "give",
    "additionally",
    "furthermore",
    "moreover",
    "interested",
    "curious",
    "eager",
    "appreciate",
    "sure",
];

/// Splits text into lowercase words, breaking at non-alphanumerics, at lower→upper case
/// changes (`sendEmail`), at the end of an upper-case run followed by a lower-case letter
/// (`HTTPServer` → `http`, `server`) and between letters and digits (`v3` → `v`, `3`).
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut cur = String::new();
    for i in 0..chars.len() {
        let c = chars[i];
        if !c.is_alphanumeric() {
            flush(&mut cur, &mut out);
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            if prev.is_alphanumeric() && boundary(prev, c, chars.get(i + 1).copied()) {
                flush(&mut cur, &mut out);
            }
        }
        cur.extend(c.to_lowercase());
    }
    flush(&mut cur, &mut out);
    out
}

fn boundary(prev: char, c: char, next: Option<char>) -> bool {
    (prev.is_lowercase() && c.is_uppercase())
        || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
        || (prev.is_alphabetic() && c.is_numeric())
        || (prev.is_numeric() && c.is_alphabetic())
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    if !cur.is_empty() {
        out.push(std::mem::take(cur));
    }
}

/// Whether `word` (lowercase) is a stop word.
pub(crate) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// The analysis chain: split, drop stop words and one-letter words, stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Analyzer {
    /// Apply the Porter stemmer.
    pub(crate) stem: bool,
    /// Remove stop words.
    pub(crate) stop_words: bool,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer {
            stem: true,
            stop_words: true,
        }
    }
}

impl Analyzer {
    /// Terms of `text`, in order, with repeats.
    pub(crate) fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.terms_into(text, &mut out);
        out
    }

    /// Appends the terms of `text` to `out`.
    pub(crate) fn terms_into(&self, text: &str, out: &mut Vec<String>) {
        for w in split_words(text) {
            let single_letter = w.chars().count() == 1 && !w.chars().all(char::is_numeric);
            if single_letter || (self.stop_words && is_stop_word(&w)) {
                continue;
            }
            out.push(if self.stem { stem(&w) } else { w });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_slugs_and_camel_case() {
        assert_eq!(split_words("GMAIL_SEND_EMAIL"), ["gmail", "send", "email"]);
        assert_eq!(
            split_words("PopularSitesForQuery"),
            ["popular", "sites", "for", "query"]
        );
        assert_eq!(split_words("getUserByID"), ["get", "user", "by", "id"]);
        assert_eq!(split_words("HTTPServer v3"), ["http", "server", "v", "3"]);
        assert_eq!(split_words("base64Encode"), ["base", "64", "encode"]);
        assert_eq!(
            split_words("Kick.com API | Kick API"),
            ["kick", "com", "api", "kick", "api"]
        );
    }

    #[test]
    fn analyzer_drops_stop_words_and_stems() {
        let a = Analyzer::default();
        assert_eq!(
            a.terms("Can you please fetch the channel clips for me?"),
            ["fetch", "channel", "clip"]
        );
        assert_eq!(a.terms("GetChannelClips"), ["get", "channel", "clip"]);
        assert_eq!(a.terms("Messi's career"), ["messi", "career"]);
    }

    #[test]
    fn keeps_numbers_and_non_ascii_words() {
        let a = Analyzer::default();
        assert_eq!(a.terms("top 50 Ünïcode"), ["top", "50", "ünïcode"]);
    }
}
