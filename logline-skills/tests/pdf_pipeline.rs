//! The PDF pipeline: a multi-page PDF made here is uploaded, its text extracted, corrected by
//! a scripted model and laid out as a new PDF artifact whose re-extracted text carries the
//! corrections; caps, foreign artifacts and broken input are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use logline_core::artifact::{ArtifactFilter, ArtifactStoreExt, NewArtifact};
use logline_core::owner::Owner;
use logline_core::testing::ScriptedLlm;
use logline_core::tool::ToolHub;
use logline_core::ErrorKind;
use logline_skills::SkillLimits;
use serde_json::json;
use support::*;
use uuid::Uuid;

const PAGE_ONE: &[&str] = &["Teh quarterly report", "Revenue grew by tenn percent."];
const PAGE_TWO: &[&str] = &["Costs were recieved in March.", "Outlook: stabel."];
const PAGE_THREE: &[&str] = &["Apendix A", "Contact: finance@example.com"];

async fn upload(f: &Fixture, name: &str, bytes: Vec<u8>) -> Uuid {
    let owner = Owner::from(&dan());
    f.artifacts
        .put(&owner, NewArtifact::named(name), bytes)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn corrected_pdf_carries_the_corrections() {
    let corrected = json!({"pages": [
        "The quarterly report\nRevenue grew by ten percent.",
        "Costs were received in March.\nOutlook: stable.",
        "Appendix A\nContact: finance@example.com",
    ]});
    let f = fixture(ScriptedLlm::new().reply_json(corrected));
    let source = multi_page_pdf(&[PAGE_ONE, PAGE_TWO, PAGE_THREE]);
    let id = upload(&f, "Q3 report.pdf", source).await;
    let ctx = ctx(dan());

    let out = f
        .hub
        .execute(
            "pdf.correct",
            json!({"artifact_id": id, "instructions": "fix typos"}),
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(out["pages_in"], 3);
    assert_eq!(out["source_artifact_id"], json!(id));

    // The model saw every page's extracted text, and the user's instructions.
    let requests = f.llm.requests();
    assert_eq!(requests.len(), 1);
    let prompt = format!("{:?}", requests[0].messages);
    for line in PAGE_ONE.iter().chain(PAGE_TWO).chain(PAGE_THREE) {
        assert!(prompt.contains(line), "{line} missing from {prompt}");
    }
    assert!(prompt.contains("fix typos"));
    assert!(requests[0].output_schema.is_some());

    // A new artifact of the caller, linked to the task, a valid PDF with the corrections.
    let new_id: Uuid = serde_json::from_value(out["artifact"]["id"].clone()).unwrap();
    let owner = Owner::from(&dan());
    let (meta, bytes) = f.artifacts.get(&owner, new_id).await.unwrap();
    assert_eq!(meta.content_type, "application/pdf");
    assert_eq!(meta.name, "Q3 report-corrected.pdf");
    assert_eq!(meta.task_id, ctx.run_id);
    let pages = pdf_pages(&bytes);
    assert_eq!(pages.len(), 3);
    let text = pages.join("\n");
    for fixed in [
        "The quarterly report",
        "ten percent",
        "received",
        "stable",
        "Appendix A",
    ] {
        assert!(text.contains(fixed), "{fixed:?} missing from {text:?}");
    }
    for typo in ["Teh", "tenn", "recieved", "stabel", "Apendix"] {
        assert!(!text.contains(typo), "{typo:?} still in {text:?}");
    }
    // The original is untouched, and the task lists the output.
    let listed = f
        .artifacts
        .list(
            &owner,
            &ArtifactFilter {
                task_id: ctx.run_id,
                limit: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(f.artifacts.head(&owner, id).await.is_ok());
}

#[tokio::test]
async fn page_and_size_caps_are_enforced_before_the_model() {
    let limits = SkillLimits {
        pdf_max_pages: 2,
        ..SkillLimits::default()
    };
    let f = fixture_with(
        ScriptedLlm::new(),
        std::sync::Arc::new(logline_core::artifact::ObjectArtifactStore::in_memory()),
        std::sync::Arc::new(logline_core::notes::MemoryNoteStore::new()),
        limits,
    );
    let id = upload(
        &f,
        "long.pdf",
        multi_page_pdf(&[PAGE_ONE, PAGE_TWO, PAGE_THREE]),
    )
    .await;
    let e = f
        .hub
        .execute("pdf.correct", json!({"artifact_id": id}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at most 2"), "{e}");

    let f = fixture_with(
        ScriptedLlm::new(),
        std::sync::Arc::new(logline_core::artifact::ObjectArtifactStore::in_memory()),
        std::sync::Arc::new(logline_core::notes::MemoryNoteStore::new()),
        SkillLimits {
            pdf_max_bytes: 100,
            ..SkillLimits::default()
        },
    );
    let id = upload(&f, "big.pdf", multi_page_pdf(&[PAGE_ONE])).await;
    let e = f
        .hub
        .execute("pdf.correct", json!({"artifact_id": id}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(f.llm.calls(), 0, "no model call past a cap");
}

#[tokio::test]
async fn foreign_missing_and_wrong_artifacts_are_refused() {
    let f = fixture(ScriptedLlm::new());
    let id = upload(&f, "mine.pdf", multi_page_pdf(&[PAGE_ONE])).await;
    for other in [
        logline_core::run::Subject::tenant("acme").with_user("eve"),
        logline_core::run::Subject::tenant("globex").with_user("dan"),
    ] {
        let e = f
            .hub
            .execute("pdf.correct", json!({"artifact_id": id}), &ctx(other))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    let text = upload(&f, "notes.txt", b"plain text".to_vec()).await;
    let e = f
        .hub
        .execute("pdf.correct", json!({"artifact_id": text}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Bytes that start like a PDF but are not one: an input error, not a panic.
    let broken = upload(&f, "broken.pdf", b"%PDF-1.4\n\x00\xff garbage".to_vec()).await;
    let e = f
        .hub
        .execute("pdf.correct", json!({"artifact_id": broken}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = f
        .hub
        .execute("pdf.correct", json!({"artifact_id": "nope"}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(f.llm.calls(), 0);
}

#[tokio::test]
async fn unusable_model_output_is_a_model_error_and_stores_nothing() {
    let f = fixture(
        ScriptedLlm::new()
            .reply_json(json!({"pages": []}))
            .reply_text("not json"),
    );
    let id = upload(&f, "a.pdf", multi_page_pdf(&[PAGE_ONE])).await;
    for _ in 0..2 {
        let e = f
            .hub
            .execute("pdf.correct", json!({"artifact_id": id}), &ctx(dan()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ModelOutput, "{e}");
    }
    let all = f
        .artifacts
        .list(&Owner::from(&dan()), &ArtifactFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "only the upload");
}

#[tokio::test]
async fn deeply_nested_objects_are_an_input_error() {
    let f = fixture(ScriptedLlm::new());
    for depth in [1_000usize, 200_000] {
        let mut bytes = b"%PDF-1.4\n1 0 obj\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'[', depth));
        bytes.extend(b"\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
        let id = upload(&f, "nested.pdf", bytes).await;
        let e = f
            .hub
            .execute("pdf.correct", json!({"artifact_id": id}), &ctx(dan()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}
