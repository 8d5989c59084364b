//! Helpers of the skills tests: a hub on memory stores, PDFs made here, text read back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use logline_core::artifact::{ArtifactStore, ObjectArtifactStore};
use logline_core::notes::{MemoryNoteStore, NoteStore};
use logline_core::run::Subject;
use logline_core::testing::ScriptedLlm;
use logline_core::tool::ToolContext;
use logline_skills::{SkillLimits, SkillsHub};
use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

pub struct Fixture {
    pub hub: SkillsHub,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub notes: Arc<dyn NoteStore>,
    pub llm: Arc<ScriptedLlm>,
}

pub fn fixture(llm: ScriptedLlm) -> Fixture {
    fixture_with(
        llm,
        Arc::new(ObjectArtifactStore::in_memory()),
        Arc::new(MemoryNoteStore::new()),
        SkillLimits::default(),
    )
}

pub fn fixture_with(
    llm: ScriptedLlm,
    artifacts: Arc<dyn ArtifactStore>,
    notes: Arc<dyn NoteStore>,
    limits: SkillLimits,
) -> Fixture {
    let llm = Arc::new(llm);
    let hub = SkillsHub::builder()
        .artifacts(artifacts.clone())
        .notes(notes.clone())
        .llm(llm.clone(), "cheap-model")
        .limits(limits)
        .build()
        .unwrap();
    Fixture {
        hub,
        artifacts,
        notes,
        llm,
    }
}

pub fn dan() -> Subject {
    Subject::tenant("acme").with_user("dan")
}

pub fn ctx(subject: Subject) -> ToolContext {
    let mut ctx = ToolContext::for_subject(subject);
    ctx.run_id = Some(uuid::Uuid::now_v7());
    ctx
}

/// A PDF with one page per entry, written the way many generators do: one text object per
/// page, Times-Roman, lines advanced with `T*`.
pub fn multi_page_pdf(pages: &[&[&str]]) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Times-Roman",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F7" => font_id } });
    let mut kids = Vec::new();
    for lines in pages {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F7".into(), 12.into()]),
            Operation::new("TL", vec![16.into()]),
            Operation::new("Td", vec![72.into(), 760.into()]),
        ];
        for line in *lines {
            ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }.encode().unwrap();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        kids.push(
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            })
            .into(),
        );
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// Each page's text, read back with lopdf's own extractor.
pub fn pdf_pages(bytes: &[u8]) -> Vec<String> {
    let doc = Document::load_mem(bytes).expect("a valid PDF");
    doc.get_pages()
        .keys()
        .map(|&n| doc.extract_text(&[n]).unwrap())
        .collect()
}
