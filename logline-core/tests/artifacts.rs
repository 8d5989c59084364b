//! Artifacts on a local folder through `ObjectArtifactStore::from_url`: bytes land under the
//! folder whatever the tenant and user ids hold, and leave with the artifact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use logline_core::artifact::{
    ArtifactStore, ArtifactStoreExt, MemoryArtifactIndex, NewArtifact, ObjectArtifactStore,
};
use logline_core::owner::Owner;
use logline_core::ErrorKind;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("logline-artifacts-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn local_folder_keeps_bytes_inside_it() {
    let root = scratch_dir();
    let url = format!("file://{}", root.display());
    let store = ObjectArtifactStore::from_url(
        &url,
        std::iter::empty::<(&str, &str)>(),
        Arc::new(MemoryArtifactIndex::new()),
    )
    .unwrap();
    // Ids that would climb out of the folder if they were used as paths.
    let owner = Owner::user("../../escape", "../..");
    let a = store
        .put(&owner, NewArtifact::named("a.txt"), b"inside".to_vec())
        .await
        .unwrap();
    let files = files_under(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&root));
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"inside");
    assert_eq!(store.get(&owner, a.id).await.unwrap().1.as_ref(), b"inside");
    assert!(!root.parent().unwrap().join("escape").exists());

    store.delete(&owner, a.id).await.unwrap();
    assert!(files_under(&root).is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn storage_urls_are_checked() {
    let index = Arc::new(MemoryArtifactIndex::new());
    let none = std::iter::empty::<(&str, &str)>;
    let e = ObjectArtifactStore::from_url("not a url", none(), index.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(ObjectArtifactStore::from_url("memory:///", none(), index.clone()).is_ok());
    let e = ObjectArtifactStore::from_url("ftp://host/x", none(), index).unwrap_err();
    assert_ne!(e.kind(), ErrorKind::Internal, "{e}");
}
