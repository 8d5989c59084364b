//! A PDF from plain text, on `lopdf`: A4 pages, Helvetica 10 pt with WinAnsi encoding,
//! lines wrapped at word boundaries, one text object per line. Characters WinAnsi lacks are
//! written as `?` (the standard fonts carry no other glyphs).

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

use logline_core::{Error, Result};

const PAGE_WIDTH: i64 = 595;
const PAGE_HEIGHT: i64 = 842;
const MARGIN: i64 = 56;
const FONT_SIZE: i64 = 10;
const LEADING: i64 = 14;
/// Characters per line at 10 pt within the margins (Helvetica averages about half an em).
const LINE_CHARS: usize = 88;
const LINES_PER_PAGE: usize = ((PAGE_HEIGHT - 2 * MARGIN) / LEADING) as usize;

/// Renders `pages` (each starts a new page and may run over several) as PDF bytes.
pub(crate) fn render(title: &str, pages: &[String]) -> Result<Vec<u8>> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids: Vec<Object> = Vec::new();
    for page in pages {
        let lines = wrap(page);
        let chunks: Vec<&[String]> = if lines.is_empty() {
            vec![&[]]
        } else {
            lines.chunks(LINES_PER_PAGE).collect()
        };
        for chunk in chunks {
            let content = page_content(chunk);
            let encoded = content
                .encode()
                .map_err(|e| Error::Internal(format!("encoding PDF content: {e}")))?;
            let content_id = doc.add_object(Stream::new(dictionary! {}, encoded));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            });
            kids.push(page_id.into());
        }
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_WIDTH.into(), PAGE_HEIGHT.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    let info_id = doc.add_object(dictionary! {
        "Title" => Object::string_literal(win_ansi(title)),
        "Producer" => Object::string_literal("LogLine"),
    });
    doc.trailer.set("Info", info_id);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| Error::Internal(format!("writing PDF: {e}")))?;
    Ok(out)
}

fn page_content(lines: &[String]) -> Content {
    let mut operations = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let y = PAGE_HEIGHT - MARGIN - (i as i64) * LEADING;
        operations.extend([
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), FONT_SIZE.into()]),
            Operation::new("Td", vec![MARGIN.into(), y.into()]),
            Operation::new("Tj", vec![Object::string_literal(win_ansi(line))]),
            Operation::new("ET", vec![]),
        ]);
    }
    Content { operations }
}

/// Lines of at most [`LINE_CHARS`] characters, broken at spaces where possible.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            // A word longer than a line is cut.
            while word.len() > LINE_CHARS {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(word.drain(..LINE_CHARS).collect());
            }
            let word: String = word.into_iter().collect();
            let needed =
                line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
            if needed > LINE_CHARS && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        lines.push(line);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// `text` in WinAnsiEncoding (Windows-1252); what it lacks becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c as u32 {
            0x20..=0x7E | 0xA0..=0xFF => c as u32 as u8,
            _ => match c {
                '€' => 0x80,
                '‚' => 0x82,
                '„' => 0x84,
                '…' => 0x85,
                '‘' => 0x91,
                '’' => 0x92,
                '“' => 0x93,
                '”' => 0x94,
                '•' => 0x95,
                '–' => 0x96,
                '—' => 0x97,
                '™' => 0x99,
                '\t' => b' ',
                _ => b'?',
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_and_paginates() {
        let text = "word ".repeat(5000);
        let lines = wrap(&text);
        assert!(lines.iter().all(|l| l.chars().count() <= LINE_CHARS));
        let pdf = render("t", &[text]).unwrap();
        let doc = Document::load_mem(&pdf).unwrap();
        assert_eq!(doc.get_pages().len(), lines.len().div_ceil(LINES_PER_PAGE));
    }

    #[test]
    fn characters_outside_win_ansi_become_question_marks() {
        assert_eq!(win_ansi("café – ok"), b"caf\xe9 \x96 ok");
        assert_eq!(win_ansi("γ"), b"?");
    }
}
