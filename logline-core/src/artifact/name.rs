//! File names of uploads: a name, never a path.

use super::rejection::{NameProblem, UploadRejection};

/// Longest name kept, in bytes (common file systems allow 255).
pub const MAX_NAME_BYTES: usize = 255;

/// Cleans an upload's file name: trims spaces, replaces characters that file systems or
/// shells treat specially (`<>:"|?*`) with `_`, and refuses a name that is empty, holds a
/// path separator, is `.` or `..`, holds a control or bidirectional-override character, or
/// is longer than [`MAX_NAME_BYTES`].
///
/// ```
/// use logline_core::artifact::{clean_name, NameProblem, UploadRejection};
///
/// assert_eq!(clean_name(" report?.pdf ").unwrap(), "report_.pdf");
/// assert_eq!(
///     clean_name("../../etc/passwd"),
///     Err(UploadRejection::BadName { problem: NameProblem::PathSeparator })
/// );
/// ```
pub fn clean_name(raw: &str) -> Result<String, UploadRejection> {
    let bad = |problem| UploadRejection::BadName { problem };
    let name = raw.trim();
    if name.is_empty() {
        return Err(bad(NameProblem::Empty));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(bad(NameProblem::ControlCharacter));
    }
    if name.contains(['/', '\\']) {
        return Err(bad(NameProblem::PathSeparator));
    }
    if name == "." || name == ".." {
        return Err(bad(NameProblem::DotSegment));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad(NameProblem::TooLong));
    }
    Ok(name
        .chars()
        .map(|c| if "<>:\"|?*".contains(c) { '_' } else { c })
        .collect())
}

/// Characters that reorder displayed text (a name like `txt.exe` shown as `exe.txt`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(raw: &str) -> NameProblem {
        match clean_name(raw) {
            Err(UploadRejection::BadName { problem }) => problem,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(problem("   "), NameProblem::Empty);
        assert_eq!(problem("..\\win.ini"), NameProblem::PathSeparator);
        assert_eq!(problem("/etc/passwd"), NameProblem::PathSeparator);
        assert_eq!(problem(".."), NameProblem::DotSegment);
        assert_eq!(problem("a\u{0}b.txt"), NameProblem::ControlCharacter);
        assert_eq!(problem("a\nb.txt"), NameProblem::ControlCharacter);
        assert_eq!(problem("cod\u{202E}fdp.exe"), NameProblem::ControlCharacter);
        assert_eq!(problem(&"é".repeat(200)), NameProblem::TooLong);
    }

    #[test]
    fn ordinary_names_are_kept() {
        assert_eq!(clean_name("Αναφορά 2024.pdf").unwrap(), "Αναφορά 2024.pdf");
        assert_eq!(clean_name(".env").unwrap(), ".env");
        assert_eq!(clean_name("a:b*c.txt").unwrap(), "a_b_c.txt");
    }
}
