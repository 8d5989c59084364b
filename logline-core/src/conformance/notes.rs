//! Note and to-do checks, run on a [`NoteStore`].

use std::sync::Arc;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::error::ErrorKind;
use crate::notes::{Note, NoteStore, Todo};
use crate::owner::Owner;

pub async fn notes_round_trip_newest_first(store: Arc<dyn NoteStore>) {
    let dan = Owner::user("acme", "dan");
    let task = Uuid::now_v7();
    let first = Note::new(dan.clone(), "Groceries", "milk\neggs", Some(task)).unwrap();
    store.create_note(&first).await.unwrap();
    let second = Note::new(dan.clone(), "Ιδέες", "κείμενο", None).unwrap();
    store.create_note(&second).await.unwrap();
    assert_eq!(
        store.list_notes(&dan, 10).await.unwrap(),
        vec![second.clone(), first]
    );
    assert_eq!(
        store.list_notes(&dan, 1).await.unwrap(),
        vec![second.clone()]
    );
    let e = store.create_note(&second).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

pub async fn todos_round_trip_newest_first(store: Arc<dyn NoteStore>) {
    let dan = Owner::user("acme", "dan");
    let due = NaiveDate::from_ymd_opt(2030, 1, 31);
    let first = Todo::new(dan.clone(), "File taxes", due, None).unwrap();
    store.create_todo(&first).await.unwrap();
    let second = Todo::new(dan.clone(), "Call mum", None, Some(Uuid::now_v7())).unwrap();
    store.create_todo(&second).await.unwrap();
    let listed = store.list_todos(&dan, 10).await.unwrap();
    assert_eq!(listed, vec![second, first]);
    assert!(!listed[1].done);
    assert_eq!(listed[1].due, due);
}

pub async fn other_owners_see_nothing(store: Arc<dyn NoteStore>) {
    let dan = Owner::user("acme", "dan");
    store
        .create_note(&Note::new(dan.clone(), "private", "x", None).unwrap())
        .await
        .unwrap();
    store
        .create_todo(&Todo::new(dan.clone(), "private", None, None).unwrap())
        .await
        .unwrap();
    for other in [
        Owner::user("acme", "eve"),
        Owner::user("globex", "dan"),
        Owner::tenant("acme"),
    ] {
        assert!(store.list_notes(&other, 10).await.unwrap().is_empty());
        assert!(store.list_todos(&other, 10).await.unwrap().is_empty());
    }
    assert_eq!(store.list_notes(&dan, 10).await.unwrap().len(), 1);
}
