//! [`VectorStore`] checks: vectors round-trip exactly, are replaced by id, deleted by id, and
//! spaces never see each other's rows.

use std::sync::Arc;

use crate::search::{text_digest, StoredVector, VectorStore};

fn row(id: &str, text: &str, v: &[f32]) -> StoredVector {
    StoredVector {
        id: id.into(),
        digest: text_digest(text),
        vector: v.to_vec(),
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn by_id(mut rows: Vec<StoredVector>) -> Vec<StoredVector> {
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

/// What is saved loads back bit for bit; ids without a vector are left out.
pub async fn vectors_round_trip(store: Arc<dyn VectorStore>) {
    let saved = vec![
        row(
            "mail.send",
            "send an email",
            &[0.25, -1.5, f32::MIN_POSITIVE, 3.0e-8],
        ),
        row("weather.now", "current weather", &[1.0, 0.0, 0.0, -0.0]),
    ];
    store.save_vectors("m|p|tools", &saved).await.expect("save");
    let loaded = store
        .load_vectors("m|p|tools", &ids(&["weather.now", "mail.send", "missing"]))
        .await
        .expect("load");
    assert_eq!(by_id(loaded), saved);
    let none = store.load_vectors("m|p|tools", &[]).await.expect("empty");
    assert!(none.is_empty());
}

/// Saving an id again replaces its digest and vector.
pub async fn saving_again_replaces(store: Arc<dyn VectorStore>) {
    store
        .save_vectors("s", &[row("a", "old text", &[1.0, 2.0])])
        .await
        .expect("save");
    let newer = row("a", "new text", &[3.0, 4.0, 5.0]);
    store
        .save_vectors("s", std::slice::from_ref(&newer))
        .await
        .expect("replace");
    let loaded = store.load_vectors("s", &ids(&["a"])).await.expect("load");
    assert_eq!(loaded, vec![newer]);
}

/// Deleting removes only the ids named, in the space named; spaces are separate.
pub async fn deletes_and_spaces_are_separate(store: Arc<dyn VectorStore>) {
    let tools = vec![row("x", "x", &[1.0]), row("y", "y", &[2.0])];
    let kits = vec![row("x", "kit x", &[9.0])];
    store.save_vectors("m|tools", &tools).await.expect("save");
    store.save_vectors("m|toolkits", &kits).await.expect("save");
    assert_eq!(
        store
            .load_vectors("m|toolkits", &ids(&["x", "y"]))
            .await
            .expect("load"),
        kits,
        "another space's rows never show"
    );
    store
        .delete_vectors("m|tools", &ids(&["x", "nothing"]))
        .await
        .expect("delete");
    let left = store
        .load_vectors("m|tools", &ids(&["x", "y"]))
        .await
        .expect("load");
    assert_eq!(left, vec![tools[1].clone()]);
    assert_eq!(
        store
            .load_vectors("m|toolkits", &ids(&["x"]))
            .await
            .expect("load"),
        kits,
        "a delete in one space leaves the other"
    );
}
