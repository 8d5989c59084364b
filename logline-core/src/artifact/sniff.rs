//! Content types of uploads: sniffed from the first bytes (the `infer` crate, plus a UTF-8
//! text check), compared with the declared type and checked against an allow list.

use super::rejection::UploadRejection;

/// How many leading bytes are read before the type is decided.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// Caps and allowed types of an [`super::ObjectArtifactStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest upload in bytes.
    pub max_bytes: u64,
    /// Allowed content types; `text/*` allows every text type.
    pub allowed_types: Vec<String>,
}

impl Default for UploadLimits {
    /// 25 MiB; plain text, Markdown, CSV, JSON, PDF, ZIP and common images.
    fn default() -> Self {
        UploadLimits {
            max_bytes: 25 * 1024 * 1024,
            allowed_types: [
                "text/plain",
                "text/markdown",
                "text/csv",
                "application/json",
                "application/pdf",
                "application/zip",
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl UploadLimits {
    /// Sets the size cap.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Replaces the allowed types.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.allowed_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `content_type` is allowed.
    pub fn allows(&self, content_type: &str) -> bool {
        self.allowed_types
            .iter()
            .any(|a| match a.strip_suffix("/*") {
                Some(family) => content_type.split('/').next() == Some(family),
                None => a == content_type,
            })
    }
}

/// The content type an upload is stored as: what its first bytes (`prefix`; `complete`
/// when that is the whole upload) are, given the `declared` type. Text the sniffer cannot
/// name takes the declared text type (`text/markdown`, `application/json`, ...) or
/// `text/plain`. Refuses a declared type the bytes contradict, and a type `limits` does not
/// allow.
pub fn resolve_content_type(
    declared: Option<&str>,
    prefix: &[u8],
    complete: bool,
    limits: &UploadLimits,
) -> Result<String, UploadRejection> {
    let declared = declared.map(normalize).filter(|d| !d.is_empty());
    let sniffed = infer::get(prefix).map(|t| t.mime_type().to_string());
    let effective = match (sniffed, declared) {
        (Some(s), Some(d)) if s == d => s,
        // Text the sniffer recognised (HTML, XML, a script) declared as another text type is
        // kept as the declared one: it is served as that.
        (Some(s), Some(d)) if is_text_type(&s) && is_text_type(&d) => d,
        (Some(s), Some(d)) => {
            return Err(UploadRejection::TypeMismatch {
                declared: d,
                sniffed: s,
            })
        }
        (Some(s), None) => s,
        (None, declared) if is_text(prefix, complete) => match declared {
            Some(d) if is_text_type(&d) => d,
            Some(d) => {
                return Err(UploadRejection::TypeMismatch {
                    declared: d,
                    sniffed: "text/plain".into(),
                })
            }
            None => "text/plain".into(),
        },
        (None, Some(d)) if d != OCTET_STREAM => {
            return Err(UploadRejection::TypeMismatch {
                declared: d,
                sniffed: OCTET_STREAM.into(),
            })
        }
        (None, _) => OCTET_STREAM.into(),
    };
    if limits.allows(&effective) {
        Ok(effective)
    } else {
        Err(UploadRejection::TypeNotAllowed {
            content_type: effective,
        })
    }
}

const OCTET_STREAM: &str = "application/octet-stream";

/// `Text/Plain; charset=utf-8` → `text/plain`.
fn normalize(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_text_type(t: &str) -> bool {
    t.starts_with("text/")
        || matches!(
            t,
            "application/json" | "application/xml" | "application/x-sh" | "application/csv"
        )
}

/// UTF-8 without control characters other than tab, line feed, form feed and carriage
/// return. A prefix of a longer upload may end inside a character.
fn is_text(prefix: &[u8], complete: bool) -> bool {
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        Err(e) if !complete && e.error_len().is_none() => {
            // Cut inside the last character: the valid part decides.
            match std::str::from_utf8(&prefix[..e.valid_up_to()]) {
                Ok(t) => t,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(declared: Option<&str>, bytes: &[u8]) -> Result<String, UploadRejection> {
        resolve_content_type(declared, bytes, true, &UploadLimits::default())
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(resolve(None, b"%PDF-1.7\n...").unwrap(), "application/pdf");
        assert_eq!(
            resolve(Some("Application/PDF; x=y"), b"%PDF-1.4\n").unwrap(),
            "application/pdf"
        );
        assert_eq!(resolve(None, "γειά σου".as_bytes()).unwrap(), "text/plain");
        assert_eq!(
            resolve(Some("text/markdown"), b"# Title").unwrap(),
            "text/markdown"
        );
        assert_eq!(
            resolve(Some("application/json"), b"{}").unwrap(),
            "application/json"
        );
    }

    #[test]
    fn contradicting_or_disallowed_types_are_refused() {
        assert_eq!(
            resolve(Some("application/pdf"), b"just text"),
            Err(UploadRejection::TypeMismatch {
                declared: "application/pdf".into(),
                sniffed: "text/plain".into()
            })
        );
        assert!(matches!(
            resolve(Some("image/png"), b"%PDF-1.4\n"),
            Err(UploadRejection::TypeMismatch { .. })
        ));
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        assert!(matches!(
            resolve(None, elf),
            Err(UploadRejection::TypeNotAllowed { .. })
        ));
        assert!(matches!(
            resolve(None, b"\0\x01\x02binary"),
            Err(UploadRejection::TypeNotAllowed { .. })
        ));
        assert!(matches!(
            resolve(Some("text/html"), b"<html><body></body></html>"),
            Err(UploadRejection::TypeNotAllowed { .. })
        ));
    }

    #[test]
    fn a_prefix_may_end_inside_a_character() {
        let bytes = "ααα".as_bytes();
        let cut = &bytes[..bytes.len() - 1];
        let limits = UploadLimits::default();
        assert_eq!(
            resolve_content_type(None, cut, false, &limits).unwrap(),
            "text/plain"
        );
        assert!(resolve_content_type(None, cut, true, &limits).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_and_declared_type_give_a_result(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            declared in proptest::option::of("[ -~]{0,40}"),
            complete in proptest::prelude::any::<bool>(),
        ) {
            let limits = UploadLimits::default();
            if let Ok(t) = resolve_content_type(declared.as_deref(), &bytes, complete, &limits) {
                proptest::prop_assert!(limits.allows(&t));
            }
        }

        #[test]
        fn cleaned_names_are_single_safe_components(raw in "(?s).{0,300}") {
            if let Ok(name) = crate::artifact::clean_name(&raw) {
                proptest::prop_assert!(!name.is_empty() && name.len() <= crate::artifact::MAX_NAME_BYTES);
                proptest::prop_assert!(!name.contains(['/', '\\']) && name != "..");
                proptest::prop_assert!(!name.chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn wildcards_allow_a_family() {
        let limits = UploadLimits::default().allow(["text/*"]);
        assert!(limits.allows("text/html"));
        assert!(!limits.allows("application/pdf"));
    }
}
