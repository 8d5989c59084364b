//! Text of a PDF, page by page, on `lopdf`: the page's content stream is walked with each
//! font's encoding, starting a new line where the text moves down a line (`Td`/`TD` with a
//! vertical move, `T*`, `'`, `"`) or a text object ends.

use lopdf::content::Content;
use lopdf::{Document, Encoding, Object};
use std::collections::BTreeMap;

use logline_core::{Error, Result};

/// Why a PDF could not be read.
fn unreadable(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("not a readable PDF: {e}"))
}

/// Opens `bytes`, refusing encrypted documents and more than `max_pages` pages.
pub(crate) fn open(bytes: &[u8], max_pages: u32) -> Result<Document> {
    let doc = Document::load_mem(bytes).map_err(unreadable)?;
    if doc.is_encrypted() {
        return Err(Error::InvalidInput(
            "encrypted PDFs are not supported".into(),
        ));
    }
    let pages = doc.get_pages().len();
    if pages == 0 {
        return Err(unreadable("it has no pages"));
    }
    if pages > max_pages as usize {
        return Err(Error::InvalidInput(format!(
            "the PDF has {pages} pages; at most {max_pages} are processed"
        )));
    }
    Ok(doc)
}

/// The text of every page, in order.
pub(crate) fn page_texts(doc: &Document) -> Result<Vec<String>> {
    doc.get_pages()
        .values()
        .map(|&page| page_text(doc, page))
        .collect()
}

fn page_text(doc: &Document, page: lopdf::ObjectId) -> Result<String> {
    let encodings: BTreeMap<Vec<u8>, Encoding> = doc
        .get_page_fonts(page)
        .map_err(unreadable)?
        .into_iter()
        .filter_map(|(name, font)| font.get_font_encoding(doc).ok().map(|e| (name, e)))
        .collect();
    let content =
        Content::decode(&doc.get_page_content(page).map_err(unreadable)?).map_err(unreadable)?;
    let mut text = String::new();
    let mut encoding = None;
    for op in &content.operations {
        match op.operator.as_str() {
            "Tf" => {
                encoding = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|name| encodings.get(name));
            }
            "Td" | "TD" => {
                let dy = op.operands.get(1).and_then(number).unwrap_or(0.0);
                if dy.abs() > 0.01 {
                    new_line(&mut text);
                }
            }
            "T*" | "ET" => new_line(&mut text),
            "Tj" | "TJ" | "'" | "\"" => {
                if matches!(op.operator.as_str(), "'" | "\"") {
                    new_line(&mut text);
                }
                if let Some(enc) = encoding {
                    collect(&mut text, enc, &op.operands);
                }
            }
            _ => {}
        }
    }
    Ok(text.trim_end().to_string())
}

fn number(o: &Object) -> Option<f32> {
    match o {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

fn new_line(text: &mut String) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
}

fn collect(text: &mut String, encoding: &Encoding, operands: &[Object]) {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => {
                if let Ok(s) = Document::decode_text(encoding, bytes) {
                    text.push_str(&s);
                }
            }
            Object::Array(items) => collect(text, encoding, items),
            // A large negative adjustment in a TJ array is a word gap.
            o if number(o).is_some_and(|n| n < -200.0) && !text.ends_with(' ') => {
                text.push(' ');
            }
            _ => {}
        }
    }
}
