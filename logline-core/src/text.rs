//! Small text helpers shared by the engine and the adapters.

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_on_char_boundaries() {
        assert_eq!(prefix("short", 10), "short");
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
    }
}
