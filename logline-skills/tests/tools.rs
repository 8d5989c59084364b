//! Email drafts, notes and to-dos through the hub: typed arguments, the caller's ownership,
//! and the catalog's risk tags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use logline_core::owner::Owner;
use logline_core::run::Subject;
use logline_core::testing::ScriptedLlm;
use logline_core::tool::{PageRequest, RiskLevel, ToolHub};
use logline_core::ErrorKind;
use logline_skills::{SkillsHub, SKILLS_HUB};
use serde_json::json;
use support::*;

#[tokio::test]
async fn email_draft_returns_subject_and_body_and_sends_nothing() {
    let f = fixture(ScriptedLlm::new().reply_json(json!({
        "subject": "Meeting on Friday",
        "body": "Hi Anna,\n\ncould we meet on Friday at [time]?\n\nDan"
    })));
    let out = f
        .hub
        .execute(
            "email.draft",
            json!({"brief": "ask Anna to meet Friday", "to": "Anna", "tone": "friendly"}),
            &ctx(dan()),
        )
        .await
        .unwrap();
    assert_eq!(out["subject"], "Meeting on Friday");
    assert!(out["body"].as_str().unwrap().starts_with("Hi Anna"));
    assert_eq!(out["sent"], false);
    let request = &f.llm.requests()[0];
    assert_eq!(request.model, "cheap-model");
    assert!(request.tools.is_empty(), "the drafter gets no tools");
    let prompt = format!("{:?}", request.messages);
    assert!(prompt.contains("ask Anna to meet Friday") && prompt.contains("friendly"));

    let e = f
        .hub
        .execute("email.draft", json!({"brief": "  "}), &ctx(dan()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = f
        .hub
        .execute(
            "email.draft",
            json!({"brief": "x", "send": true}),
            &ctx(dan()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidInput,
        "unknown arguments are refused"
    );
}

#[tokio::test]
async fn notes_and_todos_belong_to_the_caller() {
    let f = fixture(ScriptedLlm::new());
    let c = ctx(dan());
    let note = f
        .hub
        .execute(
            "notes.create",
            json!({"title": "Ideas", "body": "ship it"}),
            &c,
        )
        .await
        .unwrap();
    assert_eq!(note["note"]["title"], "Ideas");
    f.hub
        .execute(
            "tasks.create",
            json!({"title": "Pay rent", "due": "2030-02-01"}),
            &c,
        )
        .await
        .unwrap();
    let listed = f.hub.execute("notes.list", json!({}), &c).await.unwrap();
    assert_eq!(listed["notes"][0]["body"], "ship it");
    let listed = f
        .hub
        .execute("tasks.list", json!({"limit": 5}), &c)
        .await
        .unwrap();
    assert_eq!(listed["tasks"][0]["due"], "2030-02-01");
    let stored = f.notes.list_notes(&Owner::from(&dan()), 10).await.unwrap();
    assert_eq!(stored[0].task_id, c.run_id, "linked to the run");

    let eve = ctx(Subject::tenant("acme").with_user("eve"));
    let theirs = f.hub.execute("notes.list", json!({}), &eve).await.unwrap();
    assert_eq!(theirs["notes"], json!([]));
    let theirs = f.hub.execute("tasks.list", json!({}), &eve).await.unwrap();
    assert_eq!(theirs["tasks"], json!([]));

    for (tool, args) in [
        ("notes.create", json!({"title": ""})),
        ("notes.create", json!({"title": "x".repeat(300)})),
        ("tasks.create", json!({"title": "t", "due": "tomorrow"})),
        ("notes.create", json!({"title": "t", "owner": "eve"})),
    ] {
        let e = f.hub.execute(tool, args.clone(), &c).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{tool} {args}");
    }
    let e = f
        .hub
        .execute("notes.delete", json!({}), &c)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn catalog_tags_are_honest() {
    let f = fixture(ScriptedLlm::new());
    let page = f.hub.list_tools(PageRequest::default()).await.unwrap();
    assert_eq!(page.tools, SkillsHub::specs());
    assert_eq!(page.tools.len(), 7);
    for spec in &page.tools {
        assert_eq!(spec.hub, SKILLS_HUB);
        assert_eq!(spec.risk_level, RiskLevel::Low, "{}", spec.id);
        assert!(!spec.requires_connection);
        for tag in ["send", "delete", "money", "admin"] {
            assert!(
                !spec.tags.iter().any(|t| t == tag),
                "{} is tagged {tag}",
                spec.id
            );
        }
        let reads = spec.tags.iter().any(|t| t == "read");
        let creates = spec.tags.iter().any(|t| t == "create");
        assert!(reads != creates, "{} either reads or creates", spec.id);
        assert_eq!(spec.input_schema["type"], "object");
    }
}
