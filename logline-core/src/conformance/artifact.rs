//! Artifact checks, run on an [`ArtifactIndex`] (the metadata backend) behind an
//! [`ObjectArtifactStore`] with in-memory bytes: the whole upload path, owner scoping and the
//! refusal of hostile uploads.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream;
use object_store::memory::InMemory;
use uuid::Uuid;

use crate::artifact::{
    Artifact, ArtifactFilter, ArtifactIndex, ArtifactStore, ArtifactStoreExt, ByteStream,
    NameProblem, NewArtifact, ObjectArtifactStore, UploadLimits, UploadRejection,
};
use crate::error::{Error, ErrorKind};
use crate::owner::Owner;

/// A small PDF header: enough for the sniffer.
pub const PDF_BYTES: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";

fn store(index: Arc<dyn ArtifactIndex>) -> ObjectArtifactStore {
    ObjectArtifactStore::new(Arc::new(InMemory::new()), index)
        .with_limits(UploadLimits::default().max_bytes(64 * 1024))
}

fn dan() -> Owner {
    Owner::user("acme", "dan")
}

fn chunks(parts: Vec<crate::Result<Bytes>>) -> ByteStream {
    Box::pin(stream::iter(parts))
}

fn rejection(e: Error) -> UploadRejection {
    match e {
        Error::UploadRejected(r) => r,
        other => panic!("expected an upload rejection, got {other:?}"),
    }
}

async fn nothing_stored(s: &ObjectArtifactStore, owner: &Owner) {
    let left = s.list(owner, &ArtifactFilter::default()).await.unwrap();
    assert!(left.is_empty(), "a refused upload left {left:?}");
}

pub async fn put_get_round_trips(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let task = Uuid::now_v7();
    let a = s
        .put(
            &dan(),
            NewArtifact::named("report.pdf")
                .with_type("application/pdf")
                .for_task(task),
            Bytes::from_static(PDF_BYTES),
        )
        .await
        .unwrap();
    assert_eq!(a.owner, dan());
    assert_eq!(a.task_id, Some(task));
    assert_eq!(a.name, "report.pdf");
    assert_eq!(a.content_type, "application/pdf");
    assert_eq!(a.size, PDF_BYTES.len() as u64);
    assert_eq!(a.sha256.len(), 64);
    let (meta, bytes) = s.get(&dan(), a.id).await.unwrap();
    assert_eq!(meta, a);
    assert_eq!(bytes.as_ref(), PDF_BYTES);
    assert_eq!(s.head(&dan(), a.id).await.unwrap(), a);
}

pub async fn streamed_uploads_are_assembled(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let text = "γραμμή κειμένου\n".repeat(1500);
    // Chunks cut inside multi-byte characters and across the sniffing window.
    let parts: Vec<crate::Result<Bytes>> = text
        .as_bytes()
        .chunks(777)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let a = s
        .put_stream(
            &dan(),
            NewArtifact::named("notes.md").with_type("text/markdown"),
            chunks(parts),
        )
        .await
        .unwrap();
    assert_eq!(a.content_type, "text/markdown");
    assert_eq!(a.size, text.len() as u64);
    assert_eq!(
        s.get(&dan(), a.id).await.unwrap().1.as_ref(),
        text.as_bytes()
    );
}

pub async fn other_owners_get_not_found(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let a = s
        .put(
            &dan(),
            NewArtifact::named("mine.txt"),
            Bytes::from_static(b"secret"),
        )
        .await
        .unwrap();
    for other in [
        Owner::user("acme", "eve"),
        Owner::user("globex", "dan"),
        Owner::tenant("acme"),
    ] {
        for e in [
            s.head(&other, a.id).await.unwrap_err(),
            s.get(&other, a.id).await.unwrap_err(),
            s.open(&other, a.id).await.map(|_| ()).unwrap_err(),
            s.delete(&other, a.id).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::NotFound, "{other:?}: {e}");
        }
        let listed = s.list(&other, &ArtifactFilter::default()).await.unwrap();
        assert!(listed.is_empty(), "{other:?} lists {listed:?}");
    }
    assert_eq!(s.get(&dan(), a.id).await.unwrap().1.as_ref(), b"secret");
}

pub async fn lists_filter_by_task_newest_first(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut made: Vec<Artifact> = Vec::new();
    for (i, task) in [Some(t1), Some(t2), Some(t1), None].into_iter().enumerate() {
        let mut up = NewArtifact::named(format!("f{i}.txt"));
        up.task_id = task;
        made.push(
            s.put(&dan(), up, format!("file {i}").into_bytes())
                .await
                .unwrap(),
        );
    }
    let all = s.list(&dan(), &ArtifactFilter::default()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["f3.txt", "f2.txt", "f1.txt", "f0.txt"]);
    let of_t1 = s
        .list(
            &dan(),
            &ArtifactFilter {
                task_id: Some(t1),
                limit: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(of_t1, vec![made[2].clone(), made[0].clone()]);
    let one = s
        .list(
            &dan(),
            &ArtifactFilter {
                task_id: None,
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(one, vec![made[3].clone()]);
}

pub async fn delete_removes_record_and_bytes(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let a = s
        .put(
            &dan(),
            NewArtifact::named("gone.txt"),
            Bytes::from_static(b"bye"),
        )
        .await
        .unwrap();
    s.delete(&dan(), a.id).await.unwrap();
    assert_eq!(
        s.get(&dan(), a.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.delete(&dan(), a.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    nothing_stored(&s, &dan()).await;
}

pub async fn oversized_uploads_are_refused(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let limit = s.limits().max_bytes;
    // One big chunk, and many small ones past the sniffing window.
    let big = vec![b'a'; limit as usize + 1];
    let e = s
        .put(&dan(), NewArtifact::named("big.txt"), big)
        .await
        .unwrap_err();
    assert_eq!(rejection(e), UploadRejection::TooLarge { limit });
    let parts: Vec<crate::Result<Bytes>> = (0..=limit / 1000)
        .map(|_| Ok(Bytes::from(vec![b'b'; 1000])))
        .collect();
    let e = s
        .put_stream(&dan(), NewArtifact::named("big2.txt"), chunks(parts))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(rejection(e), UploadRejection::TooLarge { limit });
    nothing_stored(&s, &dan()).await;
}

pub async fn wrong_types_are_refused(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let e = s
        .put(
            &dan(),
            NewArtifact::named("fake.pdf").with_type("application/pdf"),
            Bytes::from_static(b"not a pdf at all"),
        )
        .await
        .unwrap_err();
    assert!(matches!(rejection(e), UploadRejection::TypeMismatch { .. }));
    let elf = Bytes::from_static(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0");
    let e = s
        .put(&dan(), NewArtifact::named("tool"), elf)
        .await
        .unwrap_err();
    assert!(matches!(
        rejection(e),
        UploadRejection::TypeNotAllowed { .. }
    ));
    let e = s
        .put(&dan(), NewArtifact::named("empty.txt"), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(rejection(e), UploadRejection::Empty);
    nothing_stored(&s, &dan()).await;
}

pub async fn hostile_names_are_refused(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let cases = [
        ("../../etc/passwd", NameProblem::PathSeparator),
        ("..\\..\\boot.ini", NameProblem::PathSeparator),
        ("..", NameProblem::DotSegment),
        ("a\0b.txt", NameProblem::ControlCharacter),
        ("x\u{202E}txt.exe", NameProblem::ControlCharacter),
    ];
    for (name, problem) in cases {
        let e = s
            .put(&dan(), NewArtifact::named(name), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(
            rejection(e),
            UploadRejection::BadName { problem },
            "{name:?}"
        );
    }
    let long = "n".repeat(300);
    let e = s
        .put(&dan(), NewArtifact::named(long), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        rejection(e),
        UploadRejection::BadName {
            problem: NameProblem::TooLong
        }
    );
    nothing_stored(&s, &dan()).await;
}

pub async fn failed_streams_store_nothing(index: Arc<dyn ArtifactIndex>) {
    let s = store(index);
    let parts = vec![
        Ok(Bytes::from(vec![b'x'; 10_000])),
        Err(Error::Cancelled("client went away".into())),
    ];
    let e = s
        .put_stream(&dan(), NewArtifact::named("half.txt"), chunks(parts))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    nothing_stored(&s, &dan()).await;
}

pub async fn duplicate_ids_conflict(index: Arc<dyn ArtifactIndex>) {
    let s = store(Arc::clone(&index));
    let a = s
        .put(
            &dan(),
            NewArtifact::named("one.txt"),
            Bytes::from_static(b"1"),
        )
        .await
        .unwrap();
    let e = index.insert(&a).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = index
        .remove(&Owner::user("acme", "eve"), a.id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(index.get(&dan(), a.id).await.unwrap(), a);
}
