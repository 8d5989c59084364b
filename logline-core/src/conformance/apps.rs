//! App store checks ([`AppStore`]).

use std::sync::Arc;

use serde_json::json;

use crate::app::{App, AppStore, ImportOutcome, Manifest};
use crate::store::Page;
use crate::ErrorKind;

/// A valid manifest of app `id` at `version` whose tool scope is `tool`.
pub fn manifest(id: &str, version: &str, tool: &str) -> Manifest {
    Manifest::from_value(json!({
        "version": version,
        "app": {
            "id": id, "name": format!("App {id}"), "visibility": "org",
            "scopes": {"tools": [tool], "memory": ["user", "tenant:read"]},
            "workflows": [{"id": "flow", "workflow_ref": "wf", "label": "Flow", "default_mode": "auto"}],
            "actions": [{"id": "go", "label": "Go", "workflow_id": "flow",
                         "input_mapping": {"hotel_id": "$context.hotel_id"}}]
        }
    }))
    .expect("valid manifest")
}

fn app(id: &str, version: &str, tool: &str) -> App {
    App::new(manifest(id, version, tool)).expect("app")
}

/// Import is created, then unchanged for the same manifest, updated for a higher version;
/// the same version with other content and a lower version are conflicts.
pub async fn imports_are_versioned_and_idempotent(store: Arc<dyn AppStore>) {
    let v1 = app("console", "1.0.0", "a.read");
    assert_eq!(
        store.put_app(&v1).await.expect("put"),
        ImportOutcome::Created
    );
    assert_eq!(
        store.put_app(&v1).await.expect("again"),
        ImportOutcome::Unchanged
    );
    let got = store.get_app("console").await.expect("get");
    assert_eq!(got.manifest, v1.manifest);
    assert_eq!(got.digest, v1.digest);

    let changed = app("console", "1.0.0", "b.write");
    let err = store
        .put_app(&changed)
        .await
        .expect_err("same version, other content");
    assert_eq!(err.kind(), ErrorKind::Conflict);

    let v2 = app("console", "1.1.0", "b.write");
    assert_eq!(
        store.put_app(&v2).await.expect("v2"),
        ImportOutcome::Updated
    );
    let got = store.get_app("console").await.expect("get");
    assert_eq!(got.version(), "1.1.0");
    assert_eq!(got.manifest.app.scopes.tools, vec!["b.write"]);
    assert!((got.created_at - v1.created_at).num_milliseconds().abs() <= 1);
    assert!(got.allows_tool("b.write", "local") && !got.allows_tool("a.read", "local"));

    let err = store.put_app(&v1).await.expect_err("downgrade");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        store.get_app("console").await.expect("get").version(),
        "1.1.0"
    );
}

/// Lists page by id; delete removes; missing apps are not found.
pub async fn apps_list_and_delete(store: Arc<dyn AppStore>) {
    for id in ["c", "a", "b"] {
        store.put_app(&app(id, "1.0.0", "t")).await.expect("put");
    }
    let ids = |apps: Vec<App>| apps.iter().map(|a| a.id().to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_apps(Page::default()).await.expect("list")),
        ["a", "b", "c"]
    );
    let page = Page {
        offset: 1,
        limit: 1,
    };
    assert_eq!(ids(store.list_apps(page).await.expect("page")), ["b"]);
    store.delete_app("b").await.expect("delete");
    assert_eq!(
        store.get_app("b").await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_app("b").await.expect_err("again").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        ids(store.list_apps(Page::default()).await.expect("list")),
        ["a", "c"]
    );
    let got = store.get_app("a").await.expect("a");
    assert_eq!(got.manifest.app.workflows[0].workflow_ref, "wf");
    assert_eq!(got.memory_grants().len(), 2);
}
